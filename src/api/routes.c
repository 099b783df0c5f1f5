/* The one route table (conventions: every route declared in one place with
 * its policy, so a check cannot be forgotten on one route). */
#include "api/api.h"

static const struct http_route routes[] = {
    {HTTP_GET, "/health/live", api_health_live, 0},
    {HTTP_GET, "/health/ready", api_health_ready, 0},
    {HTTP_GET, "/metrics", api_metrics, 0},
    /* test hooks last, so the table without them is a prefix */
    {HTTP_POST, "/_test/echo", api_test_echo, ROUTE_JSON_BODY},
    {HTTP_GET, "/_test/sleep", api_test_sleep, 0},
};

#define N_TEST_HOOKS 2

const struct http_route *api_routes(bool test_hooks, size_t *out_n)
{
    size_t n = sizeof routes / sizeof *routes;
    *out_n = test_hooks ? n : n - N_TEST_HOOKS;
    return routes;
}
