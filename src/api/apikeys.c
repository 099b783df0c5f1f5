/* API keys (api-core §10, §6.8; api-admin §8.1–§8.3). Placeholder: the
 * routes land with the API-key slice. */
#include "api/api.h"

size_t api_apikeys_routes(const struct http_route **out)
{
    *out = NULL;
    return 0;
}
