/* GET /health/live and /health/ready (api-core §2): readiness asks the
 * database for SELECT 1 and, when a shared KV store is configured, Redis for
 * PING, on every call, so it turns 503 while one is down and 200 again once
 * it is back. */
#include "api/api.h"
#include "app.h"

void api_health_live(struct http_req *r)
{
    static const char body[] = "{\"status\":\"live\"}";
    http_reply_raw(r, 200, "application/json", body, sizeof body - 1);
}

void api_health_ready(struct http_req *r)
{
    struct app *app = http_req_app(r);
    if (db_ping(app->db) != RC_OK || kv_ping(app->kv) != RC_OK) {
        http_reply_error(r, 503, "service_unavailable", "Service not ready.");
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}";
    http_reply_raw(r, 200, "application/json", body, sizeof body - 1);
}

size_t api_health_routes(const struct http_route **out)
{
    static const struct http_route routes[] = {
        {HTTP_GET, "/health/live", api_health_live, 0, NULL},
        {HTTP_GET, "/health/ready", api_health_ready, 0, NULL},
        {HTTP_GET, "/metrics", api_metrics, ROUTE_ADMIN, NULL},
    };
    *out = routes;
    return sizeof routes / sizeof *routes;
}
