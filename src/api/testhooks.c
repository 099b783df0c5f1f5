/* Test-only routes, mounted only with APP__TEST_HOOKS=true (refused in
 * production by the configuration): they let the black-box suite exercise
 * the JSON body rules and the offload path before real endpoints use them. */
#include "api/api.h"
#include "app.h"
#include "util/str.h"

#include <errno.h>
#include <time.h>

void api_test_echo(struct http_req *r)
{
    json_t *out = json_object();
    json_object_set(out, "received", http_req_json(r));
    http_reply_json(r, 200, out);
}

static void sleep_work(struct http_req *r)
{
    const char *ms_s = http_req_query(r, "ms");
    int64_t ms = 0;
    if (!str_parse_i64(ms_s, &ms))
        ms = 0;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    json_t *out = json_object();
    json_object_set_new(out, "slept_ms", json_integer(ms));
    http_reply_json(r, 200, out);
}

void api_test_sleep(struct http_req *r)
{
    const char *ms_s = http_req_query(r, "ms");
    int64_t ms;
    if (!ms_s || !str_parse_i64(ms_s, &ms) || ms < 0 || ms > 10000) {
        http_reply_invalid(r, "query.ms: integer 0..10000 required");
        return;
    }
    struct app *app = http_req_app(r);
    http_req_offload(r, app->blocking, sleep_work, 10000);
}

size_t api_test_routes(const struct http_route **out)
{
    static const struct http_route routes[] = {
        {HTTP_POST, "/_test/echo", api_test_echo, ROUTE_JSON_BODY, NULL},
        {HTTP_GET, "/_test/sleep", api_test_sleep, 0, NULL},
    };
    *out = routes;
    return sizeof routes / sizeof *routes;
}
