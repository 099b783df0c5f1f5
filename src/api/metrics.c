/* GET /metrics (config-ops §8): open in development. Elsewhere it needs an
 * admin principal (api-admin §2.1); until admin authentication exists the
 * route refuses every caller with the contract's 401 rather than exposing
 * the numbers. */
#include "api/api.h"
#include "app.h"

#include <stdlib.h>

void api_metrics(struct http_req *r)
{
    if (!http_req_development(r)) {
        http_reply_error(r, 401, "invalid_token", "Invalid token.");
        return;
    }
    struct buf b;
    buf_init(&b, 4 * 1024 * 1024);
    http_server_metrics(http_req_server(r), &b);
    http_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
    buf_free(&b);
}
