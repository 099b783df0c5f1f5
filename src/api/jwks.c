/* GET /.well-known/jwks.json (api-core §4.3). Skeleton until the
 * signing-keys work lands. */
#include "api/api.h"

size_t api_jwks_routes(const struct http_route **out)
{
    *out = NULL;
    return 0;
}
