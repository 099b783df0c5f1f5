/* Stage 3 of the pipeline (api-core §0.3, §11). Skeleton until the
 * abuse-controls work lands: lets every request through. */
#include "api/api.h"

bool api_ratelimit_hook(struct http_req *r)
{
    (void)r;
    return false;
}
