/* Unit tests for src/http pure parts: router, client ip, JSON body rules,
 * metrics rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/clientip.h"
#include "http/jsonbody.h"
#include "http/metrics.h"
#include "http/router.h"

static const char *const pats[] = {"/health/live", "/auth/sessions", "/auth/sessions/{session_id}",
                                   "/auth/sessions/{session_id}",
                                   "/admin/users/{user_id}/sessions/{sid}"};
static const enum http_method meths[] = {HTTP_GET, HTTP_GET, HTTP_DELETE, HTTP_GET, HTTP_GET};

static void test_router_match(void **st)
{
    (void)st;
    struct router *r = router_new(pats, meths, 5);
    assert_non_null(r);
    struct route_match m;
    router_match(r, HTTP_GET, "/health/live", &m);
    assert_int_equal(m.status, 0);
    assert_int_equal(m.route, 0);
    router_match(r, HTTP_POST, "/health/live", &m);
    assert_int_equal(m.status, 405);
    router_match(r, HTTP_HEAD, "/health/live", &m); /* HEAD is not implied by GET */
    assert_int_equal(m.status, 405);
    router_match(r, HTTP_GET, "/health/live/", &m); /* trailing slash: 404 */
    assert_int_equal(m.status, 404);
    router_match(r, HTTP_GET, "/health", &m);
    assert_int_equal(m.status, 404);
    router_match(r, HTTP_GET, "", &m);
    assert_int_equal(m.status, 404);
    router_match(r, HTTP_GET, "health/live", &m);
    assert_int_equal(m.status, 404);
    router_match(r, HTTP_DELETE, "/auth/sessions/abc", &m);
    assert_int_equal(m.status, 0);
    assert_int_equal(m.route, 2);
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.names[0], "session_id");
    assert_int_equal(m.values[0].len, 3);
    assert_memory_equal(m.values[0].p, "abc", 3);
    router_match(r, HTTP_GET, "/auth/sessions/abc", &m);
    assert_int_equal(m.route, 3);
    router_match(r, HTTP_GET, "/auth/sessions/", &m); /* empty param segment */
    assert_int_equal(m.status, 404);
    router_match(r, HTTP_GET, "/admin/users/u1/sessions/s2", &m);
    assert_int_equal(m.status, 0);
    assert_int_equal(m.nparams, 2);
    assert_memory_equal(m.values[1].p, "s2", 2);
    /* more segments than any route may have */
    router_match(r, HTTP_GET, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o", &m);
    assert_int_equal(m.status, 404);
    router_free(r);
}

static void test_router_bad_pattern(void **st)
{
    (void)st;
    const char *bad[] = {"no-slash"};
    enum http_method mm[] = {HTTP_GET};
    assert_null(router_new(bad, mm, 1));
    assert_int_equal(http_method_parse("GET"), HTTP_GET);
    assert_int_equal(http_method_parse("get"), HTTP_OTHER);
    assert_int_equal(http_method_parse("BREW"), HTTP_OTHER);
}

static void resolve(const char *const *cidrs, int n, const char *peer, const char *xff,
                    const char *want)
{
    struct cidrset *s = cidrset_new(cidrs, n);
    char out[IP_STR_MAX];
    clientip_resolve(s, peer, xff, out);
    assert_string_equal(out, want);
    cidrset_free(s);
}

static void test_clientip(void **st)
{
    (void)st;
    const char *lo[] = {"127.0.0.0/8"};
    const char *two[] = {"127.0.0.1", "10.0.0.0/8", "garbage", "1.2.3.4/99", " "};
    /* untrusted peer: XFF ignored */
    resolve(NULL, 0, "127.0.0.1", "1.1.1.1", "127.0.0.1");
    resolve(two + 1, 1, "127.0.0.1", "1.1.1.1", "127.0.0.1");
    /* trusted peer: rightmost untrusted */
    resolve(lo, 1, "127.0.0.1", "1.1.1.1, 2.2.2.2", "2.2.2.2");
    resolve(two, 5, "127.0.0.1", "1.1.1.1, 2.2.2.2, 10.1.2.3", "2.2.2.2");
    /* all trusted: leftmost */
    resolve(two, 5, "127.0.0.1", "10.0.0.1, 10.0.0.2", "10.0.0.1");
    /* ports and garbage dropped; none left → peer */
    resolve(lo, 1, "127.0.0.1", "1.1.1.1:80, nonsense, [::1]:443", "127.0.0.1");
    resolve(lo, 1, "127.0.0.1", "3.3.3.3, 4.4.4.4:80", "3.3.3.3");
    /* IPv6 canonicalised */
    resolve(lo, 1, "127.0.0.1", "2001:DB8:0:0:0:0:0:1", "2001:db8::1");
    /* unknown peer */
    resolve(lo, 1, NULL, "1.1.1.1", "unknown");
    struct cidrset *s = cidrset_new(two, 5);
    assert_int_equal(cidrset_count(s), 2); /* garbage and bad prefix ignored */
    cidrset_free(s);
    char out[IP_STR_MAX];
    assert_true(ip_canonical("::FFFF:1.2.3.4", 14, out));
    assert_string_equal(out, "::ffff:1.2.3.4");
    assert_false(ip_canonical("1.2.3", 5, out));
    assert_false(ip_canonical("", 0, out));
}

static void test_json_content_types(void **st)
{
    (void)st;
    assert_true(jsonbody_content_type_ok(NULL));
    assert_true(jsonbody_content_type_ok("application/json"));
    assert_true(jsonbody_content_type_ok("Application/JSON; charset=utf-8"));
    assert_true(jsonbody_content_type_ok("application/vnd.api+json"));
    assert_true(jsonbody_content_type_ok("application/merge-patch+json;x=y"));
    assert_false(jsonbody_content_type_ok("text/plain"));
    assert_false(jsonbody_content_type_ok("application/x-www-form-urlencoded"));
    assert_false(jsonbody_content_type_ok("application/+json"));
    assert_false(jsonbody_content_type_ok("application/a/b+json"));
    assert_false(jsonbody_content_type_ok("text/json"));
    assert_false(jsonbody_content_type_ok(""));
}

static void test_json_body_rules(void **st)
{
    (void)st;
    struct {
        const char *body;
        size_t len;
        bool ok;
    } cases[] = {
        {"{\"a\":1}", 7, true},
        {"{\"a\":1,\"a\":2}", 13, false},   /* duplicate key */
        {"[1,2]", 5, false},                /* not an object */
        {"\"str\"", 5, false},              /* scalar */
        {"{\"a\":", 5, false},              /* malformed */
        {"", 0, false},                     /* empty */
        {"{\"a\":\"\xff\"}", 9, false},     /* invalid UTF-8 */
        {"{\"a\":\"\\u0000\"}", 13, false}, /* NUL escape */
        {"{\"a\":1}\x00", 8, false},        /* trailing NUL byte */
        {"{\"a\":\"caf\xc3\xa9\"}", 13, true},
        {"{\"nested\":{\"a\":1,\"a\":1}}", 24, false}, /* nested duplicate */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = NULL;
        char problem[128] = "";
        bool ok = jsonbody_parse("application/json", cases[i].body, cases[i].len, &j, problem,
                                 sizeof problem);
        if (ok != cases[i].ok)
            fail_msg("case %zu: got %d (%s)", i, ok, problem);
        if (ok)
            json_decref(j);
        else
            assert_true(problem[0] != '\0');
    }
    json_t *j = NULL;
    char problem[128];
    assert_false(jsonbody_parse("text/plain", "{}", 2, &j, problem, sizeof problem));
}

/* The fast path either declines or agrees with jansson exactly: the
 * refresh-body shape, whitespace variants, every near miss (escapes,
 * other characters, numbers, nesting, duplicates, trailing bytes) and
 * random mutations of them. */
static void check_simple(const char *text, size_t len, bool want_fast)
{
    json_t *fast = jsonbody_parse_simple(text, len);
    json_t *ref = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (want_fast)
        assert_non_null(fast);
    if (fast) {
        if (!ref || !json_equal(fast, ref))
            fail_msg("fast path disagrees with jansson on: %.*s", (int)len, text);
    }
    json_decref(fast);
    json_decref(ref);
}

static void test_json_simple_matches_jansson(void **st)
{
    (void)st;
    static const char *const accepted[] = {
        "{\"refresh_token\":\"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_x\"}",
        " {\r\n\t\"a\" :\"b\" , \"c\":\"\" }\n",
        "{\"\":\"x\"}",
        "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\"}",
    };
    for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++)
        check_simple(accepted[i], strlen(accepted[i]), true);
    static const char *const declined[] = {
        "",
        "{}",
        "[]",
        "{\"a\":\"b\"",
        "{\"a\":\"b\"}x",
        "{\"a\":\"b\",}",
        "{\"a\":\"b\"}}",
        "{\"a\":\"b\\n\"}",
        "{\"a\":\"b c\"}",
        "{\"a\":\"b/c\"}",
        "{\"a\":\"\xc3\xa9\"}",
        "{\"a\":1}",
        "{\"a\":null}",
        "{\"a\":{\"b\":\"c\"}}",
        "{\"a\":\"b\",\"a\":\"c\"}",
        "{\"a\" \"b\"}",
        "{a:\"b\"}",
        "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\",\"e\":\"5\"}",
        "\xef\xbb\xbf{\"a\":\"b\"}",
        "{\"a\":\"b\"}\v",
        "{\"a\"\f:\"b\"}",
        "{\"a\":'b'}",
    };
    for (size_t i = 0; i < sizeof declined / sizeof *declined; i++) {
        json_t *fast = jsonbody_parse_simple(declined[i], strlen(declined[i]));
        if (fast)
            fail_msg("fast path took: %s", declined[i]);
    }
    /* Embedded NUL: declined, and the length is respected. */
    check_simple("{\"a\":\"b\"}\0", 10, false);
    assert_null(jsonbody_parse_simple("{\"a\":\"b\0\"}", 10));
    check_simple("{\"a\":\"b\"}garbage", 9, true);
    /* Mutations of the accepted shapes: any byte replaced, inserted, removed. */
    static const char alphabet[] = "{}[]\":, \t\r\n\\/aZ09_-.x\x01\x7f\xc3\xa9";
    unsigned seed = 12345;
    for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++) {
        size_t n = strlen(accepted[i]);
        for (int round = 0; round < 4000; round++) {
            char buf[256];
            memcpy(buf, accepted[i], n);
            size_t len = n;
            for (int k = 0; k < 1 + round % 3; k++) {
                seed = seed * 1103515245u + 12345u;
                size_t pos = (seed >> 8) % (len + 1);
                char c = alphabet[(seed >> 20) % (sizeof alphabet - 1)];
                switch ((seed >> 4) % 3) {
                case 0:
                    if (pos < len)
                        buf[pos] = c;
                    break;
                case 1:
                    if (len < sizeof buf) {
                        memmove(buf + pos + 1, buf + pos, len - pos);
                        buf[pos] = c;
                        len++;
                    }
                    break;
                default:
                    if (pos < len) {
                        memmove(buf + pos, buf + pos + 1, len - pos - 1);
                        len--;
                    }
                }
            }
            check_simple(buf, len, false);
        }
    }
}

static void test_metrics_render(void **st)
{
    (void)st;
    const char *const tpl[] = {"/b/{id}", "/a"};
    struct metrics *m = metrics_new(tpl, 2);
    metrics_observe(m, 0, HTTP_GET, 200, 1500);
    metrics_observe(m, 0, HTTP_GET, 200, 500);
    metrics_observe(m, 1, HTTP_POST, 422, 100);
    metrics_observe(m, -1, HTTP_GET, 404, 10);
    metrics_inflight_add(m, 2);
    metrics_inflight_add(m, -1);
    struct buf b;
    buf_init(&b, 1 << 20);
    metrics_render(m, &b);
    assert_false(b.err);
    const char *t = b.data;
    assert_non_null(strstr(t, "# TYPE auth_service_http_requests_total counter\n"));
    assert_non_null(strstr(t, "auth_service_http_requests_total{method=\"GET\",path=\"/b/{id}\","
                              "status=\"200\"} 2\n"));
    assert_non_null(strstr(t, "auth_service_http_request_duration_seconds_sum{method=\"GET\","
                              "path=\"/b/{id}\",status=\"200\"} 0.002000\n"));
    assert_non_null(strstr(t, "path=\"__unmatched__\",status=\"404\"} 1\n"));
    assert_non_null(strstr(t, "auth_service_http_requests_in_flight 1\n"));
    /* sorted by (method, path, status) */
    const char *get_b = strstr(t, "requests_total{method=\"GET\",path=\"/b");
    const char *get_u = strstr(t, "requests_total{method=\"GET\",path=\"__un");
    const char *post_a = strstr(t, "requests_total{method=\"POST\",path=\"/a\"");
    assert_true(get_b && get_u && post_a && get_b < get_u && get_u < post_a);
    assert_true(t[b.len - 1] == '\n');
    buf_free(&b);
    /* many distinct statuses in one cell never lose the count */
    for (int s = 100; s < 140; s++)
        metrics_observe(m, 1, HTTP_GET, s, 1);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_match),
        cmocka_unit_test(test_router_bad_pattern),
        cmocka_unit_test(test_clientip),
        cmocka_unit_test(test_json_content_types),
        cmocka_unit_test(test_json_body_rules),
        cmocka_unit_test(test_metrics_render),
        cmocka_unit_test(test_json_simple_matches_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
