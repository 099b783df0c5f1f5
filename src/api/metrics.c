/* GET /metrics (config-ops §8): an admin route (ROUTE_ADMIN), which the
 * admin principal hook leaves open in development. */
#include "api/api.h"
#include "app.h"

#include <stdlib.h>

void api_metrics(struct http_req *r)
{
    struct buf b;
    buf_init(&b, 4 * 1024 * 1024);
    http_server_metrics(http_req_server(r), &b);
    http_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
    buf_free(&b);
}
