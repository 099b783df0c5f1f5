/* GET /.well-known/jwks.json (api-core §4.3, config-ops §5.5): the public
 * keys of the active and retiring signing keys. Public, service-endpoint rate limit (R2),
 * no cache headers (the dispatcher adds only the security headers). The
 * document comes from the keys service's cached serialization. */
#include "api/api.h"
#include "app.h"
#include "svc/keys.h"

#include <stdlib.h>

static void api_jwks(struct http_req *r)
{
    struct app *app = http_req_app(r);
    char *body = NULL;
    size_t len = 0;
    rc_t rc = keys_jwks(app->keys, &body, &len);
    if (rc != RC_OK) {
        /* Not a documented failure: the contract's 500 (the detail is
         * replaced outside development). */
        http_reply_error(r, 500, "internal_server_error", rc_str(rc));
        return;
    }
    http_reply_raw(r, 200, "application/json", body, len);
    free(body);
}

size_t api_jwks_routes(const struct http_route **out)
{
    static const struct http_route routes[] = {
        {HTTP_GET, "/.well-known/jwks.json", api_jwks, 0, NULL},
    };
    *out = routes;
    return sizeof routes / sizeof *routes;
}
