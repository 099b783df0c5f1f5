/* Rate limiting (see ratelimit.h). Skeleton until the abuse-controls work
 * lands. */
#include "svc/ratelimit.h"
#include "util/mem.h"

#include <stdlib.h>

struct ratelimit {
    struct kv *kv;
};

rc_t ratelimit_new(struct kv *kv, const struct config *cfg, struct ratelimit **out)
{
    (void)cfg;
    struct ratelimit *rl = xcalloc(1, sizeof *rl);
    rl->kv = kv;
    *out = rl;
    return RC_OK;
}

void ratelimit_free(struct ratelimit *rl)
{
    free(rl);
}
