/* svc/ratelimit tests (api-core §11, data-model §10.5, spec R2): path
 * limits and exemptions, fail-open/closed paths, identity rules, bucket
 * keys, the sliding log driven through ratelimit_check with a simulated
 * clock, and store failures. The store cases run against the in-process
 * store and a redis-server started here on a free port (skipped with a
 * message only when redis-server is missing), stopped by pid at the end,
 * at exit and by PR_SET_PDEATHSIG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <jansson.h>

#include "config/config.h"
#include "crypto/enc.h"
#include "db/db.h"
#include "kv/kv.h"
#include "store/migrate.h"
#include "svc/keys.h"
#include "svc/ratelimit.h"
#include "svc/secrets.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#define assert_ok(expr) assert_int_equal((expr), RC_OK)

static struct kv *g_kv;
static pid_t g_redis_pid;

/* ---- redis-server for the Redis group ---- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

static void redis_stop(void)
{
    if (g_redis_pid <= 0)
        return;
    kill(g_redis_pid, SIGKILL);
    waitpid(g_redis_pid, NULL, 0);
    g_redis_pid = 0;
}

static bool redis_ready(int port)
{
    for (int i = 0; i < 500; i++) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        bool ok = r != NULL;
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
        if (ok)
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool redis_start(int port)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execlp("redis-server", "redis-server", "--port", ps, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", "/tmp", (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return false;
    g_redis_pid = pid;
    if (!redis_ready(port)) {
        redis_stop();
        return false;
    }
    return true;
}

static bool have_redis_server(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

/* ---- configuration and limiter ---- */

/* A development config with the given extra NAME=value entries. */
static struct config *cfg_with(const char *const *extra)
{
    char *envp[32];
    int n = 0;
    bool env_set = false;
    for (; extra && *extra && n < 30; extra++) {
        env_set |= strncmp(*extra, "APP__ENVIRONMENT=", 17) == 0;
        envp[n++] = (char *)*extra;
    }
    if (!env_set)
        envp[n++] = "APP__ENVIRONMENT=development";
    envp[n] = NULL;
    struct config *cfg = NULL;
    char err[512] = "";
    if (config_load(envp, "/nonexistent/authd-test.env", &cfg, err, sizeof err, NULL) != RC_OK)
        fail_msg("config_load: %s", err);
    return cfg;
}

struct rl_fx {
    struct config *cfg;
    struct ratelimit *rl;
};

static struct rl_fx rl_new(struct kv *kv, const char *const *extra)
{
    struct rl_fx f = {cfg_with(extra), NULL};
    assert_ok(ratelimit_new(kv, f.cfg, &f.rl));
    return f;
}

static void rl_free(struct rl_fx *f)
{
    ratelimit_free(f->rl);
    config_free(f->cfg);
}

static struct ratelimit_caller ip_caller(const char *ip)
{
    return (struct ratelimit_caller){.client_ip = ip};
}

static const char *identity(const struct rl_fx *f, const char *path,
                            const struct ratelimit_caller *c)
{
    static char out[RATELIMIT_IDENTITY_MAX];
    bool kf = true;
    ratelimit_identity(f->rl, NULL, path, c, time_now_us() / 1000000, out, &kf);
    assert_false(kf);
    return out;
}

static enum ratelimit_verdict hit(struct rl_fx *f, const char *path, const char *ip, int64_t now_ms,
                                  int64_t *retry)
{
    struct ratelimit_caller c = ip_caller(ip);
    struct ratelimit_result res;
    assert_ok(ratelimit_check(f->rl, NULL, path, &c, now_ms, &res));
    if (retry)
        *retry = res.retry_after_s;
    if (res.verdict != RATELIMIT_LIMITED)
        assert_int_equal(res.retry_after_s, 0);
    return res.verdict;
}

/* A client IP no other case (or earlier run against the same Redis) uses. */
static void fresh_ip(char out[48])
{
    unsigned char b[4];
    rand_bytes(b, sizeof b);
    snprintf(out, 48, "2001:db8:%x:%x::%x", b[0] | b[1] << 8, b[2], b[3] + 1);
}

/* ---- pure cases ---- */

static void test_limits_per_path(void **st)
{
    (void)st;
    const char *env[] = {"RATE_LIMIT__DEFAULT_REQUESTS_PER_MINUTE=7",
                         "RATE_LIMIT__LOGIN_REQUESTS_PER_MINUTE=3",
                         "RATE_LIMIT__TOKEN_REQUESTS_PER_MINUTE=4", NULL};
    struct rl_fx f = rl_new(NULL, env);
    static const struct {
        const char *path;
        int limit;
    } cases[] = {
        {"/health/live", 0},
        {"/health/ready", 0},
        {"/metrics", 0},
        {"/auth/validate", 0},
        {"/auth/introspect", 0},
        {"/.well-known/jwks.json", 0},
        {"/auth/login", 3},
        {"/auth/token", 4},
        {"/auth/signup", 7},
        {"/admin/users", 7},
        {"/nope", 7},
        {"/", 7},
        {"/health/live/", 7},
        {"/health/livex", 7},
        {"/metrics/", 7},
        {"/auth/login/", 7},
        {"/AUTH/LOGIN", 7},
        {"/auth/token/x", 7},
        {"/auth/validate/x", 7},
        {"/auth/sessions/abc", 7},
        {"", 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (ratelimit_limit(f.rl, cases[i].path) != cases[i].limit)
            fail_msg("%s: limit %d, want %d", cases[i].path, ratelimit_limit(f.rl, cases[i].path),
                     cases[i].limit);
    rl_free(&f);

    const char *svc[] = {"RATE_LIMIT__SERVICE_REQUESTS_PER_MINUTE=9", NULL};
    f = rl_new(NULL, svc);
    assert_int_equal(ratelimit_limit(f.rl, "/auth/validate"), 9);
    assert_int_equal(ratelimit_limit(f.rl, "/auth/introspect"), 9);
    assert_int_equal(ratelimit_limit(f.rl, "/.well-known/jwks.json"), 9);
    assert_int_equal(ratelimit_limit(f.rl, "/health/live"), 0);
    assert_int_equal(ratelimit_limit(f.rl, "/metrics"), 0);
    assert_int_equal(ratelimit_limit(f.rl, "/auth/login"), 10);
    assert_int_equal(ratelimit_limit(f.rl, "/auth/token"), 30);
    assert_int_equal(ratelimit_limit(f.rl, "/x"), 120);
    rl_free(&f);
}

static void test_fail_closed_paths(void **st)
{
    (void)st;
    static const char *const closed[] = {
        "/auth/login",
        "/auth/token",
        "/auth/otp/verify/login",
        "/auth/otp/",
        "/auth/password/reset",
        "/auth/password/forgot",
        "/auth/verify-email",
        "/auth/verify-email/resend",
        "/auth/reauth",
        "/auth/reauth/otp",
    };
    static const char *const open_[] = {
        "/auth/login/", "/auth/loginx", "/auth/token/",   "/auth/otp", "/auth/password",
        "/auth/signup", "/health/live", "/auth/validate", "/nope",     "/auth/sessions",
        "/admin/users", "/auth/verify", "/auth/rea",      "",
    };
    for (size_t i = 0; i < sizeof closed / sizeof *closed; i++)
        if (!ratelimit_fail_closed(closed[i]))
            fail_msg("%s should fail closed", closed[i]);
    for (size_t i = 0; i < sizeof open_ / sizeof *open_; i++)
        if (ratelimit_fail_closed(open_[i]))
            fail_msg("%s should fail open", open_[i]);
}

static void test_identity_ip(void **st)
{
    (void)st;
    struct rl_fx f = rl_new(NULL, NULL);
    struct ratelimit_caller c = ip_caller("203.0.113.5");
    assert_string_equal(identity(&f, "/x", &c), "ip:203.0.113.5");
    c = ip_caller("2001:db8::1");
    assert_string_equal(identity(&f, "/x", &c), "ip:2001:db8::1");
    c = ip_caller("unknown");
    assert_string_equal(identity(&f, "/x", &c), "ip:unknown");
    c = ip_caller(NULL);
    assert_string_equal(identity(&f, "/x", &c), "ip:unknown");
    c = ip_caller("");
    assert_string_equal(identity(&f, "/x", &c), "ip:unknown");
    /* Tokens that cannot be verified fall through silently. */
    c = (struct ratelimit_caller){.client_ip = "203.0.113.5", .access_token = "a.b.c"};
    assert_string_equal(identity(&f, "/x", &c), "ip:203.0.113.5");
    rl_free(&f);
}

static void test_identity_admin_bootstrap(void **st)
{
    (void)st;
    const char *env[] = {"ADMIN_API_KEY=dev-admin-key-123", NULL};
    struct rl_fx f = rl_new(NULL, env);
    char want[128], hex[CRYPTO_SHA256_HEX_LEN + 1];
    crypto_sha256_hex("dev-admin-key-123", 17, hex);
    snprintf(want, sizeof want, "admin_bootstrap:%s", hex);
    struct ratelimit_caller c = {.client_ip = "203.0.113.5", .admin_key = "dev-admin-key-123"};
    assert_string_equal(identity(&f, "/auth/apikeys", &c), want);
    c.admin_key = "  dev-admin-key-123\t"; /* trimmed, like the check of §10.1 */
    assert_string_equal(identity(&f, "/auth/apikeys", &c), want);
    /* Any other value keeps the IP bucket (no bucket per random header). */
    static const char *const other[] = {"dev-admin-key-12", "dev-admin-key-1234", "x", "   ", ""};
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        c.admin_key = other[i];
        assert_string_equal(identity(&f, "/auth/apikeys", &c), "ip:203.0.113.5");
    }
    rl_free(&f);

    /* No configured key (or not development): the header is ignored. */
    f = rl_new(NULL, NULL);
    c.admin_key = "dev-admin-key-123";
    assert_string_equal(identity(&f, "/x", &c), "ip:203.0.113.5");
    rl_free(&f);
    const char *staging[] = {"APP__ENVIRONMENT=staging", "ADMIN_API_KEY=dev-admin-key-123", NULL};
    f = rl_new(NULL, staging);
    assert_string_equal(identity(&f, "/x", &c), "ip:203.0.113.5");
    rl_free(&f);
}

static const char *token_identity(const struct rl_fx *f, const char *ct, const char *body)
{
    struct ratelimit_caller c = {.client_ip = "198.51.100.4",
                                 .content_type = ct,
                                 .body = body,
                                 .body_len = body ? strlen(body) : 0};
    return identity(f, "/auth/token", &c);
}

static void test_identity_client_credentials(void **st)
{
    (void)st;
    struct rl_fx f = rl_new(NULL, NULL);
    const char *form = "application/x-www-form-urlencoded";
    static const struct {
        const char *ct, *body, *want;
    } cases[] = {
        {"application/x-www-form-urlencoded",
         "grant_type=client_credentials&client_id=client_abc&client_secret=cs_x",
         "client:client_abc"},
        {"Application/X-WWW-Form-Urlencoded; charset=utf-8",
         "client_id=client_abc&grant_type=client_credentials", "client:client_abc"},
        {"text/plain; application/x-www-form-urlencoded", /* substring test (§6.4) */
         "grant_type=client_credentials&client_id=c1", "client:c1"},
        {NULL, "grant_type=client_credentials&client_id=c1", "ip:198.51.100.4"},
        {"application/json", "grant_type=client_credentials&client_id=c1", "ip:198.51.100.4"},
        {NULL, NULL, NULL},
    };
    for (size_t i = 0; cases[i].want; i++)
        assert_string_equal(token_identity(&f, cases[i].ct, cases[i].body), cases[i].want);
    /* Decoding, trimming, first occurrence of each field. */
    assert_string_equal(
        token_identity(&f, form, "grant_type=client%5Fcredentials&client%5Fid=a%2Bb+c%21"),
        "client:a+b c!");
    assert_string_equal(token_identity(&f, form, "grant_type=+client_credentials+&client_id=+c2+"),
                        "client:c2");
    assert_string_equal(
        token_identity(&f, form, "grant_type=client_credentials&client_id=first&client_id=second"),
        "client:first");
    assert_string_equal(token_identity(&f, form,
                                       "client_id=c3&grant_type=client_credentials&"
                                       "grant_type=refresh_token"),
                        "client:c3");
    /* Not the client identity: wrong grant, blank or missing id, first
     * occurrence blank, bad bytes, a NUL, an absurdly long id. */
    static const char *const no[] = {
        "grant_type=refresh_token&client_id=c1",
        "grant_type=client_credentials",
        "grant_type=client_credentials&client_id=",
        "grant_type=client_credentials&client_id=+%20+",
        "grant_type=client_credentials&client_id=&client_id=c1",
        "grant_type=client_credentials&client_id=%ff%fe",
        "grant_type=client_credentials&client_id=a%00b",
        "grant_type=Client_Credentials&client_id=c1",
        "client_id=c1",
        "",
    };
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (strcmp(token_identity(&f, form, no[i]), "ip:198.51.100.4") != 0)
            fail_msg("body %s gave %s", no[i], token_identity(&f, form, no[i]));
    char big[600];
    int n = snprintf(big, sizeof big, "grant_type=client_credentials&client_id=");
    memset(big + n, 'a', sizeof big - (size_t)n - 1);
    big[sizeof big - 1] = '\0';
    assert_string_equal(token_identity(&f, form, big), "ip:198.51.100.4");
    /* A malformed escape stays literal. */
    assert_string_equal(token_identity(&f, form, "grant_type=client_credentials&client_id=a%zz%4"),
                        "client:a%zz%4");
    /* Only /auth/token looks at the body. */
    struct ratelimit_caller c = {.client_ip = "198.51.100.4",
                                 .content_type = form,
                                 .body = "grant_type=client_credentials&client_id=c1",
                                 .body_len = 42};
    assert_string_equal(identity(&f, "/auth/login", &c), "ip:198.51.100.4");
    assert_string_equal(identity(&f, "/auth/token/", &c), "ip:198.51.100.4");
    /* body_len bounds the body: a shorter view drops the id. */
    c.body_len = 30;
    assert_string_equal(identity(&f, "/auth/token", &c), "ip:198.51.100.4");
    rl_free(&f);
}

/* ---- store cases ---- */

static int mem_setup(void **st)
{
    (void)st;
    return kv_open(NULL, &g_kv) == RC_OK ? 0 : -1;
}

static int redis_setup(void **st)
{
    (void)st;
    int port = free_port();
    if (port < 0 || !redis_start(port))
        return -1;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    return kv_open(url, &g_kv) == RC_OK ? 0 : -1;
}

static int group_teardown(void **st)
{
    (void)st;
    kv_close(g_kv);
    g_kv = NULL;
    redis_stop();
    return 0;
}

static const char *const five[] = {"RATE_LIMIT__DEFAULT_REQUESTS_PER_MINUTE=5", NULL};

static void test_sliding_log(void **st)
{
    (void)st;
    struct rl_fx f = rl_new(g_kv, five);
    char ip[48];
    fresh_ip(ip);
    int64_t t0 = time_now_us() / 1000, retry = 0;
    for (int i = 0; i < 5; i++)
        assert_int_equal(hit(&f, "/r", ip, t0 + i * 1000, NULL), RATELIMIT_PASS);
    /* The sixth within the minute is refused; Retry-After counts down to
     * the moment the oldest entry (t0) leaves the window. */
    assert_int_equal(hit(&f, "/r", ip, t0 + 5000, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 55);
    assert_int_equal(hit(&f, "/r", ip, t0 + 5001, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 55); /* ceil(54.999) */
    assert_int_equal(hit(&f, "/r", ip, t0 + 59001, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 1);
    assert_int_equal(hit(&f, "/r", ip, t0 + 59999, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 1); /* never 0 */
    /* At t0 + 60 000 the first entry is out (score <= now - 60 000). The
     * refused hits were not recorded: exactly one slot opens per second. */
    assert_int_equal(hit(&f, "/r", ip, t0 + 60000, NULL), RATELIMIT_PASS);
    assert_int_equal(hit(&f, "/r", ip, t0 + 60000, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 1);
    assert_int_equal(hit(&f, "/r", ip, t0 + 61000, NULL), RATELIMIT_PASS);
    assert_int_equal(hit(&f, "/r", ip, t0 + 62000, NULL), RATELIMIT_PASS);
    assert_int_equal(hit(&f, "/r", ip, t0 + 63000, NULL), RATELIMIT_PASS);
    assert_int_equal(hit(&f, "/r", ip, t0 + 64000, NULL), RATELIMIT_PASS);
    assert_int_equal(hit(&f, "/r", ip, t0 + 64000, &retry), RATELIMIT_LIMITED);
    assert_int_equal(retry, 56); /* oldest is now t0 + 60 000 */
    rl_free(&f);
}

static void test_buckets(void **st)
{
    (void)st;
    struct rl_fx f = rl_new(g_kv, five);
    char a[48], b[48];
    fresh_ip(a);
    fresh_ip(b);
    int64_t t = time_now_us() / 1000;
    for (int i = 0; i < 5; i++)
        assert_int_equal(hit(&f, "/p/1", a, t, NULL), RATELIMIT_PASS);
    assert_int_equal(hit(&f, "/p/1", a, t, NULL), RATELIMIT_LIMITED);
    /* Raw path, not a template; other identities have their own bucket. */
    assert_int_equal(hit(&f, "/p/2", a, t, NULL), RATELIMIT_PASS);
    assert_int_equal(hit(&f, "/p/1/", a, t, NULL), RATELIMIT_PASS);
    assert_int_equal(hit(&f, "/p/1", b, t, NULL), RATELIMIT_PASS);
    /* The bucket is exactly rate_limit:<path>:<identity>, TTL 61 s. */
    char key[128];
    snprintf(key, sizeof key, "rate_limit:/p/1:ip:%s", a);
    int64_t ms;
    assert_ok(kv_ttl(g_kv, key, &ms));
    if (ms < 59000 || ms > 61000)
        fail_msg("bucket TTL %lld ms", (long long)ms);
    rl_free(&f);
}

static void test_unlimited_paths(void **st)
{
    (void)st;
    /* A service limit of 0 and the exemptions never reach the store: a
     * store that fails every call proves it. */
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
    struct kv *down;
    assert_ok(kv_open(url, &down));
    struct rl_fx f = rl_new(down, five);
    static const char *const paths[] = {"/health/live",     "/health/ready",
                                        "/metrics",         "/auth/validate",
                                        "/auth/introspect", "/.well-known/jwks.json"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        for (int k = 0; k < 20; k++)
            assert_int_equal(hit(&f, paths[i], "1.2.3.4", 1000, NULL), RATELIMIT_PASS);
    rl_free(&f);
    kv_close(down);

    /* With RATE_LIMIT__SERVICE_REQUESTS_PER_MINUTE set, they are limited
     * per default-style bucket; health stays exempt. */
    const char *svc[] = {"RATE_LIMIT__SERVICE_REQUESTS_PER_MINUTE=2", NULL};
    f = rl_new(g_kv, svc);
    char ip[48];
    fresh_ip(ip);
    int64_t t = time_now_us() / 1000;
    assert_int_equal(hit(&f, "/auth/validate", ip, t, NULL), RATELIMIT_PASS);
    assert_int_equal(hit(&f, "/auth/validate", ip, t, NULL), RATELIMIT_PASS);
    assert_int_equal(hit(&f, "/auth/validate", ip, t, NULL), RATELIMIT_LIMITED);
    assert_int_equal(hit(&f, "/auth/introspect", ip, t, NULL), RATELIMIT_PASS);
    for (int k = 0; k < 5; k++)
        assert_int_equal(hit(&f, "/health/live", ip, t, NULL), RATELIMIT_PASS);
    rl_free(&f);
}

static void test_store_failure(void **st)
{
    (void)st;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
    struct kv *down;
    assert_ok(kv_open(url, &down));
    struct rl_fx f = rl_new(down, five);
    static const struct {
        const char *path;
        enum ratelimit_verdict v;
    } cases[] = {
        {"/auth/login", RATELIMIT_UNAVAILABLE},
        {"/auth/token", RATELIMIT_UNAVAILABLE},
        {"/auth/otp/verify/login", RATELIMIT_UNAVAILABLE},
        {"/auth/password/reset", RATELIMIT_UNAVAILABLE},
        {"/auth/verify-email/resend", RATELIMIT_UNAVAILABLE},
        {"/auth/reauth", RATELIMIT_UNAVAILABLE},
        {"/auth/signup", RATELIMIT_PASS},
        {"/auth/sessions", RATELIMIT_PASS},
        {"/nope", RATELIMIT_PASS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct ratelimit_caller c = ip_caller("1.2.3.4");
        struct ratelimit_result res = {RATELIMIT_LIMITED, 9, true};
        assert_int_equal(ratelimit_check(f.rl, NULL, cases[i].path, &c, 1000, &res),
                         RC_UNAVAILABLE);
        if (res.verdict != cases[i].v)
            fail_msg("%s: verdict %d, want %d", cases[i].path, res.verdict, cases[i].v);
        assert_int_equal(res.retry_after_s, 0);
    }
    rl_free(&f);
    kv_close(down);
}

static void test_long_path_key(void **st)
{
    (void)st;
    struct rl_fx f = rl_new(g_kv, five);
    size_t n = RATELIMIT_PATH_KEY_MAX + 100;
    char *path = malloc(n + 1);
    path[0] = '/';
    memset(path + 1, 'p', n - 1);
    path[n] = '\0';
    char ip[48];
    fresh_ip(ip);
    int64_t t = time_now_us() / 1000;
    for (int i = 0; i < 5; i++)
        assert_int_equal(hit(&f, path, ip, t, NULL), RATELIMIT_PASS);
    assert_int_equal(hit(&f, path, ip, t, NULL), RATELIMIT_LIMITED);
    char hex[CRYPTO_SHA256_HEX_LEN + 1], key[256];
    crypto_sha256_hex(path, n, hex);
    snprintf(key, sizeof key, "rate_limit:sha256:%s:ip:%s", hex, ip);
    int64_t ms;
    assert_ok(kv_ttl(g_kv, key, &ms));
    assert_true(ms > 0);
    /* A path one byte shorter is a different bucket. */
    path[n - 1] = '\0';
    assert_int_equal(hit(&f, path, ip, t, NULL), RATELIMIT_PASS);
    free(path);
    rl_free(&f);
}

/* ---- token identities, with a real keys service on a temp SQLite ---- */

struct tok_fx {
    char dir[64];
    struct rl_fx rl;
    struct db *db;
    struct secrets *sec;
    struct keys *keys;
};

static struct tok_fx g_tok;

static int tok_setup(void **st)
{
    (void)st;
    snprintf(g_tok.dir, sizeof g_tok.dir, "/tmp/authd-rl-test-XXXXXX");
    if (!mkdtemp(g_tok.dir))
        return -1;
    char url[128];
    snprintf(url, sizeof url, "sqlite:///%s/authd.db", g_tok.dir);
    const char *env[] = {"RATE_LIMIT__DEFAULT_REQUESTS_PER_MINUTE=5",
                         "ADMIN_API_KEY=dev-admin-key-123", NULL};
    g_tok.rl = rl_new(NULL, env);
    int applied;
    if (db_open(url, NULL, &g_tok.db) != RC_OK || migrate_apply(g_tok.db, &applied) != RC_OK ||
        secrets_load(g_tok.rl.cfg, g_tok.dir, &g_tok.sec) != RC_OK ||
        keys_new(g_tok.db, g_tok.rl.cfg, g_tok.sec, &g_tok.keys) != RC_OK)
        return -1;
    return 0;
}

static int tok_teardown(void **st)
{
    (void)st;
    keys_free(g_tok.keys);
    secrets_free(g_tok.sec);
    db_close(g_tok.db);
    rl_free(&g_tok.rl);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tok.dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A signed token; exp_delta relative to now; aud NULL → no aud claim. */
static char *mint(const char *type, const char *sub, const char *aud, int64_t exp_delta)
{
    int64_t now = time_now_us() / 1000000;
    char jti[UUID_STR_LEN + 1];
    uuid_v4(jti);
    json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "sub", sub, "type", type, "jti", jti, "iat",
                          (json_int_t)now - 10, "exp", (json_int_t)(now + exp_delta));
    if (aud)
        json_object_set_new(c, "aud", json_string(aud));
    char *jwt = NULL;
    assert_ok(keys_sign(g_tok.keys, c, &jwt));
    json_decref(c);
    return jwt;
}

static const char *tok_identity(const char *path, const struct ratelimit_caller *c)
{
    static char out[RATELIMIT_IDENTITY_MAX];
    bool kf = true;
    ratelimit_identity(g_tok.rl.rl, g_tok.keys, path, c, time_now_us() / 1000000, out, &kf);
    assert_false(kf);
    return out;
}

static void test_identity_access_token(void **st)
{
    (void)st;
    const char *uid = "0b6f9a52-6d3e-4c1e-8a51-3f2b9c7d4e10";
    char *good = mint("access", uid, "auth-service", 900);
    char *refresh = mint("refresh", uid, "auth-service", 900);
    char *expired = mint("access", uid, "auth-service", -5);
    char *other_aud = mint("access", uid, "other-service", 900);
    char *no_aud = mint("access", uid, NULL, 900);
    struct ratelimit_caller c = {.client_ip = "203.0.113.1", .access_token = good};
    char want[64];
    snprintf(want, sizeof want, "user:%s", uid);
    assert_string_equal(tok_identity("/auth/sessions", &c), want);
    assert_string_equal(tok_identity("/nope", &c), want);
    /* Beats the bootstrap key (rule 2 before rule 3). */
    c.admin_key = "dev-admin-key-123";
    assert_string_equal(tok_identity("/auth/apikeys", &c), want);
    /* Falls through silently: wrong type, expired, foreign or missing
     * audience, tampered, garbage. */
    const char *bad[] = {refresh, expired, other_aud, no_aud, "a.b.c", "garbage", "", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        c.access_token = bad[i];
        c.admin_key = "dev-admin-key-123";
        assert_true(strncmp(tok_identity("/x", &c), "admin_bootstrap:", 16) == 0);
        c.admin_key = NULL;
        assert_string_equal(tok_identity("/x", &c), "ip:203.0.113.1");
    }
    /* Whitespace around the token is trimmed. */
    char padded[4096];
    snprintf(padded, sizeof padded, "  %s \t", good);
    c.access_token = padded;
    assert_string_equal(tok_identity("/x", &c), want);
    char *tampered = strdup(good);
    tampered[strlen(tampered) - 3] ^= 1;
    c.access_token = tampered;
    assert_string_equal(tok_identity("/x", &c), "ip:203.0.113.1");
    c.access_token = expired;
    assert_string_equal(tok_identity("/x", &c), "ip:203.0.113.1");
    free(tampered);
    free(good);
    free(refresh);
    free(expired);
    free(other_aud);
    free(no_aud);
}

static void test_identity_token_endpoint(void **st)
{
    (void)st;
    const char *u1 = "11111111-1111-4111-8111-111111111111";
    const char *u2 = "22222222-2222-4222-8222-222222222222";
    char *r1 = mint("refresh", u1, "auth-service", 600);
    char *a2 = mint("access", u2, "auth-service", 600);
    char *r_expired = mint("refresh", u1, "auth-service", -5);
    char body[4096], w1[64], w2[64];
    snprintf(w1, sizeof w1, "user:%s", u1);
    snprintf(w2, sizeof w2, "user:%s", u2);

    /* JSON body refresh token (content type is not looked at). */
    snprintf(body, sizeof body, "{\"refresh_token\": \"%s\"}", r1);
    struct ratelimit_caller c = {
        .client_ip = "203.0.113.2", .body = body, .body_len = strlen(body)};
    assert_string_equal(tok_identity("/auth/token", &c), w1);
    c.content_type = "text/plain";
    assert_string_equal(tok_identity("/auth/token", &c), w1);
    /* Only /auth/token reads the body. */
    assert_string_equal(tok_identity("/auth/logout", &c), "ip:203.0.113.2");
    /* Refresh cookie. */
    c = (struct ratelimit_caller){.client_ip = "203.0.113.2", .refresh_cookie = r1};
    assert_string_equal(tok_identity("/auth/token", &c), w1);
    /* Client credentials beat a refresh token. */
    const char *form = "grant_type=client_credentials&client_id=client_x";
    c.content_type = "application/x-www-form-urlencoded";
    c.body = form;
    c.body_len = strlen(form);
    assert_string_equal(tok_identity("/auth/token", &c), "client:client_x");
    /* Refresh token that does not verify → the access token (rule 2). */
    snprintf(body, sizeof body, "{\"refresh_token\": \"%s\"}", r_expired);
    c = (struct ratelimit_caller){
        .client_ip = "203.0.113.2", .access_token = a2, .body = body, .body_len = strlen(body)};
    assert_string_equal(tok_identity("/auth/token", &c), w2);
    /* An access token where a refresh token is expected does not count as
     * one; nor do broken bodies. */
    static const char *const bodies[] = {
        "{\"refresh_token\": 5}", "{\"refresh_token\": \"x\"}", "[1]", "{", "",
        "{\"a\":1,\"a\":2}"};
    snprintf(body, sizeof body, "{\"refresh_token\": \"%s\"}", a2);
    c = (struct ratelimit_caller){
        .client_ip = "203.0.113.2", .body = body, .body_len = strlen(body)};
    assert_string_equal(tok_identity("/auth/token", &c), "ip:203.0.113.2");
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        c.body = bodies[i];
        c.body_len = strlen(bodies[i]);
        assert_string_equal(tok_identity("/auth/token", &c), "ip:203.0.113.2");
    }
    /* A body the caller already parsed is read instead of the raw text. */
    json_t *parsed[] = {json_pack("{s:s}", "refresh_token", r1), json_pack("[s]", r1),
                        json_pack("{s:i}", "refresh_token", 5),
                        json_pack("{s:s}", "refresh_token", a2)};
    const char *want[] = {w1, "ip:203.0.113.2", "ip:203.0.113.2", "ip:203.0.113.2"};
    for (size_t i = 0; i < sizeof parsed / sizeof *parsed; i++) {
        c = (struct ratelimit_caller){.client_ip = "203.0.113.2",
                                      .body = body,
                                      .body_len = strlen(body),
                                      .body_json = parsed[i]};
        assert_string_equal(tok_identity("/auth/token", &c), want[i]);
        json_decref(parsed[i]);
    }
    free(r1);
    free(a2);
    free(r_expired);
}

#define STORE_TESTS                                                                                \
    cmocka_unit_test(test_sliding_log), cmocka_unit_test(test_buckets),                            \
        cmocka_unit_test(test_unlimited_paths), cmocka_unit_test(test_long_path_key)

int main(void)
{
    log_init(LOG_ERROR, "test", "test");
    atexit(redis_stop);
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_limits_per_path),
        cmocka_unit_test(test_fail_closed_paths),
        cmocka_unit_test(test_identity_ip),
        cmocka_unit_test(test_identity_admin_bootstrap),
        cmocka_unit_test(test_identity_client_credentials),
        cmocka_unit_test(test_store_failure),
    };
    const struct CMUnitTest store[] = {STORE_TESTS};
    const struct CMUnitTest tokens[] = {
        cmocka_unit_test(test_identity_access_token),
        cmocka_unit_test(test_identity_token_endpoint),
    };
    if (sodium_init() < 0)
        return 1;
    int failed = cmocka_run_group_tests_name("ratelimit", pure, NULL, NULL);
    failed += cmocka_run_group_tests_name("ratelimit_tokens", tokens, tok_setup, tok_teardown);
    failed += cmocka_run_group_tests_name("ratelimit_memory", store, mem_setup, group_teardown);
    if (have_redis_server())
        failed +=
            cmocka_run_group_tests_name("ratelimit_redis", store, redis_setup, group_teardown);
    else
        fprintf(stderr, "SKIP ratelimit_redis: redis-server is not installed (not on PATH)\n");
    return failed ? 1 : 0;
}
