/* OAuth (M2M) clients (api-admin §8.4) and the client-credentials grant
 * (api-core §6.4 A). Placeholder until the clients slice lands. */
#include "api/api.h"

void api_token_client_credentials(struct http_req *r)
{
    http_reply_error(r, 400, "invalid_credentials", "Unsupported grant type.");
}

size_t api_clients_routes(const struct http_route **out)
{
    *out = NULL;
    return 0;
}
