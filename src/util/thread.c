/* Thread names (see thread.h). prctl instead of pthread_setname_np: the
 * latter needs _GNU_SOURCE, which the build does not define. */
#include "util/thread.h"

#include <sys/prctl.h>

void thread_set_name(const char *name)
{
    (void)prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}
