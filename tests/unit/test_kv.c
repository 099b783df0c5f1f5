/* kv tests. The same cases run against the in-process store and against a
 * redis-server this test starts itself on a free port (skipped with a
 * message only when redis-server is not installed). Redis-only cases cover
 * URL parsing, AUTH/SELECT, an unreachable server, a killed and restarted
 * server, a stalled server (command timeout) and a flushed script cache.
 * Every server started here is stopped by pid: in the group teardown, at
 * exit, and by PR_SET_PDEATHSIG if this process dies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kv/kv.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#define NTHREADS 8
#define ROUNDS 30

#define assert_between(v, lo, hi)                                                                  \
    do {                                                                                           \
        long long v_ = (long long)(v);                                                             \
        if (v_ < (long long)(lo) || v_ > (long long)(hi))                                          \
            fail_msg("%s = %lld not in [%lld, %lld]", #v, v_, (long long)(lo), (long long)(hi));   \
    } while (0)

#define assert_ok(expr) assert_int_equal((expr), RC_OK)

struct fx {
    struct kv *kv;
    bool redis;
    char prefix[48]; /* unique per test so cases never see each other's keys */
};

static struct fx g_mem, g_redis;

/* ---- helpers ---- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int64_t mono_ms(void)
{
    return time_mono_us() / 1000;
}

static void mk(const struct fx *f, char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s%s", f->prefix, name);
}

static int per_test_setup(void **state)
{
    struct fx *f = *state;
    char u[UUID_STR_LEN + 1];
    uuid_v4(u);
    snprintf(f->prefix, sizeof f->prefix, "t:%.8s:", u);
    return 0;
}

typedef void *(*thread_fn)(void *);

static void run_threads(int n, thread_fn fn, void *args, size_t arg_size)
{
    pthread_t t[NTHREADS];
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * arg_size), 0);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* ---- redis-server management ---- */

#define MAX_SERVERS 8
static pid_t g_started[MAX_SERVERS];
static int g_redis_port;
static pid_t g_redis_pid;

static bool have_redis_server(void)
{
    const char *d = getenv("PATH");
    while (d && *d) {
        const char *end = strchr(d, ':');
        size_t n = end ? (size_t)(end - d) : strlen(d);
        char p[4096];
        snprintf(p, sizeof p, "%.*s/redis-server", (int)n, d);
        if (n && access(p, X_OK) == 0)
            return true;
        d = end ? end + 1 : NULL;
    }
    return false;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

static void track(pid_t pid, bool add)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (add ? g_started[i] == 0 : g_started[i] == pid) {
            g_started[i] = add ? pid : 0;
            return;
        }
}

/* Stops one server we started: SIGTERM, then SIGKILL after 2 s. */
static void srv_stop(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    kill(pid, sig);
    kill(pid, SIGCONT); /* in case a test left it stopped */
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            track(pid, false);
            return;
        }
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    track(pid, false);
}

static void stop_all_servers(void)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (g_started[i] > 0)
            srv_stop(g_started[i], SIGKILL);
}

static bool srv_ready(int port)
{
    for (int i = 0; i < 500; i++) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        bool ok = false;
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            ok = r != NULL; /* any answer, even NOAUTH, means it is serving */
            if (r)
                freeReplyObject(r);
        }
        if (c)
            redisFree(c);
        if (ok)
            return true;
        sleep_ms(10);
    }
    return false;
}

/* Starts redis-server on 127.0.0.1:port in the foreground of a child;
 * requirepass may be NULL. Returns its pid, or -1. */
static pid_t srv_start(int port, const char *requirepass)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        const char *argv[16] = {"redis-server", "--port", portstr, "--bind", "127.0.0.1"};
        int n = 5;
        const char *rest[] = {"--save", "", "--appendonly", "no", "--dir", "/tmp"};
        for (size_t i = 0; i < sizeof rest / sizeof *rest; i++)
            argv[n++] = rest[i];
        if (requirepass) {
            argv[n++] = "--requirepass";
            argv[n++] = requirepass;
        }
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    track(pid, true);
    if (!srv_ready(port)) {
        srv_stop(pid, SIGKILL);
        return -1;
    }
    return pid;
}

/* Raw hiredis command against the test server, outside the module. */
static void raw_cmd(int port, const char *cmd)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r = redisCommand(c, cmd);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(c);
}

/* ---- group setup ---- */

static int mem_group_setup(void **state)
{
    g_mem.redis = false;
    if (kv_open(NULL, &g_mem.kv) != RC_OK)
        return -1;
    *state = &g_mem;
    return 0;
}

static int redis_group_setup(void **state)
{
    g_redis_port = free_port();
    g_redis_pid = srv_start(g_redis_port, NULL);
    if (g_redis_pid < 0)
        return -1;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", g_redis_port);
    g_redis.redis = true;
    if (kv_open(url, &g_redis.kv) != RC_OK)
        return -1;
    *state = &g_redis;
    return 0;
}

static int group_teardown(void **state)
{
    struct fx *f = *state;
    kv_close(f->kv);
    f->kv = NULL;
    if (f->redis) {
        srv_stop(g_redis_pid, SIGTERM);
        g_redis_pid = 0;
    }
    return 0;
}

/* ---- shared cases ---- */

static void test_basic(void **state)
{
    struct fx *f = *state;
    char k[96], *v = (char *)1;
    mk(f, k, sizeof k, "basic");
    assert_ok(kv_get(f->kv, k, &v));
    assert_null(v);
    assert_ok(kv_set(f->kv, k, "{\"a\": \"b c\", \"\xc3\xa9\": 1}", 0));
    assert_ok(kv_get(f->kv, k, &v));
    assert_string_equal(v, "{\"a\": \"b c\", \"\xc3\xa9\": 1}");
    free(v);
    assert_ok(kv_set(f->kv, k, "second", 0));
    assert_ok(kv_get(f->kv, k, &v));
    assert_string_equal(v, "second");
    free(v);
    assert_ok(kv_set(f->kv, k, "", 0));
    assert_ok(kv_get(f->kv, k, &v));
    assert_string_equal(v, "");
    free(v);
    assert_ok(kv_del(f->kv, k));
    assert_ok(kv_get(f->kv, k, &v));
    assert_null(v);
    assert_ok(kv_del(f->kv, k)); /* absent is fine */
    assert_ok(kv_ping(f->kv));
    assert_int_equal(kv_is_shared(f->kv), f->redis);
}

static void test_ttl_expiry(void **state)
{
    struct fx *f = *state;
    char k[96], *v;
    int64_t ttl;
    mk(f, k, sizeof k, "ttl");
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_int_equal(ttl, -2);
    assert_ok(kv_set(f->kv, k, "x", 150));
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_between(ttl, 1, 150);
    assert_ok(kv_get(f->kv, k, &v));
    assert_string_equal(v, "x");
    free(v);
    sleep_ms(200);
    assert_ok(kv_get(f->kv, k, &v));
    assert_null(v);
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_int_equal(ttl, -2);
    /* No TTL, and a later SET without TTL clears an earlier one. */
    assert_ok(kv_set(f->kv, k, "y", 0));
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_int_equal(ttl, -1);
    assert_ok(kv_set(f->kv, k, "y", 60000));
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_between(ttl, 59000, 60000);
    assert_ok(kv_set(f->kv, k, "y", -5));
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_int_equal(ttl, -1);
    assert_ok(kv_del(f->kv, k));
}

static void test_set_nx(void **state)
{
    struct fx *f = *state;
    char k[96], *v;
    bool set;
    mk(f, k, sizeof k, "nx");
    assert_ok(kv_set_nx(f->kv, k, "first", 100, &set));
    assert_true(set);
    assert_ok(kv_set_nx(f->kv, k, "second", 100, &set));
    assert_false(set);
    assert_ok(kv_get(f->kv, k, &v));
    assert_string_equal(v, "first");
    free(v);
    sleep_ms(150); /* expired counts as absent */
    assert_ok(kv_set_nx(f->kv, k, "third", 0, &set));
    assert_true(set);
    assert_ok(kv_get(f->kv, k, &v));
    assert_string_equal(v, "third");
    free(v);
}

struct race {
    struct kv *kv;
    const char *key;
    pthread_barrier_t *bar;
    int idx;
    int wins;
    int errors;
    char *got;
    int64_t last;
};

static void *nx_thread(void *p)
{
    struct race *r = p;
    char val[16];
    snprintf(val, sizeof val, "v%d", r->idx);
    bool set = false;
    pthread_barrier_wait(r->bar);
    if (kv_set_nx(r->kv, r->key, val, 60000, &set) != RC_OK)
        r->errors++;
    r->wins = set;
    return NULL;
}

static void test_set_nx_race(void **state)
{
    struct fx *f = *state;
    pthread_barrier_t bar;
    for (int round = 0; round < ROUNDS; round++) {
        char k[96], name[32], *v;
        snprintf(name, sizeof name, "nxrace%d", round);
        mk(f, k, sizeof k, name);
        struct race r[NTHREADS];
        pthread_barrier_init(&bar, NULL, NTHREADS);
        for (int i = 0; i < NTHREADS; i++)
            r[i] = (struct race){.kv = f->kv, .key = k, .bar = &bar, .idx = i};
        run_threads(NTHREADS, nx_thread, r, sizeof *r);
        pthread_barrier_destroy(&bar);
        int wins = 0, winner = -1;
        for (int i = 0; i < NTHREADS; i++) {
            assert_int_equal(r[i].errors, 0);
            wins += r[i].wins;
            if (r[i].wins)
                winner = i;
        }
        assert_int_equal(wins, 1);
        char want[16];
        snprintf(want, sizeof want, "v%d", winner);
        assert_ok(kv_get(f->kv, k, &v));
        assert_string_equal(v, want);
        free(v);
    }
}

static void test_getdel(void **state)
{
    struct fx *f = *state;
    char k[96], *v;
    mk(f, k, sizeof k, "getdel");
    assert_ok(kv_getdel(f->kv, k, &v));
    assert_null(v);
    assert_ok(kv_set(f->kv, k, "state-json", 600000));
    assert_ok(kv_getdel(f->kv, k, &v));
    assert_string_equal(v, "state-json");
    free(v);
    assert_ok(kv_get(f->kv, k, &v));
    assert_null(v);
    assert_ok(kv_getdel(f->kv, k, &v));
    assert_null(v);
    assert_ok(kv_set(f->kv, k, "short", 50));
    sleep_ms(100);
    assert_ok(kv_getdel(f->kv, k, &v));
    assert_null(v);
}

static void *getdel_thread(void *p)
{
    struct race *r = p;
    pthread_barrier_wait(r->bar);
    if (kv_getdel(r->kv, r->key, &r->got) != RC_OK)
        r->errors++;
    return NULL;
}

static void test_getdel_race(void **state)
{
    struct fx *f = *state;
    pthread_barrier_t bar;
    for (int round = 0; round < ROUNDS; round++) {
        char k[96], name[32];
        snprintf(name, sizeof name, "gdrace%d", round);
        mk(f, k, sizeof k, name);
        assert_ok(kv_set(f->kv, k, "once", 60000));
        struct race r[NTHREADS];
        pthread_barrier_init(&bar, NULL, NTHREADS);
        for (int i = 0; i < NTHREADS; i++)
            r[i] = (struct race){.kv = f->kv, .key = k, .bar = &bar, .idx = i};
        run_threads(NTHREADS, getdel_thread, r, sizeof *r);
        pthread_barrier_destroy(&bar);
        int got = 0;
        for (int i = 0; i < NTHREADS; i++) {
            assert_int_equal(r[i].errors, 0);
            if (r[i].got) {
                assert_string_equal(r[i].got, "once");
                got++;
                free(r[i].got);
            }
        }
        assert_int_equal(got, 1);
    }
}

static void test_incr_basic(void **state)
{
    struct fx *f = *state;
    char k[96], *v;
    int64_t n, ttl;
    mk(f, k, sizeof k, "incr");
    for (int i = 1; i <= 3; i++) {
        assert_ok(kv_incr(f->kv, k, 0, KV_TTL_ON_CREATE, &n));
        assert_int_equal(n, i);
    }
    assert_ok(kv_get(f->kv, k, &v));
    assert_string_equal(v, "3");
    free(v);
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_int_equal(ttl, -1); /* ttl_ms 0: no expiry */
    assert_ok(kv_set(f->kv, k, "41", 0));
    assert_ok(kv_incr(f->kv, k, 0, KV_TTL_ALWAYS, &n));
    assert_int_equal(n, 42);
    assert_ok(kv_set(f->kv, k, "-5", 0));
    assert_ok(kv_incr(f->kv, k, 0, KV_TTL_ALWAYS, &n));
    assert_int_equal(n, -4);
    assert_ok(kv_set(f->kv, k, "abc", 0));
    assert_int_equal(kv_incr(f->kv, k, 1000, KV_TTL_ALWAYS, &n), RC_CONFLICT);
    assert_ok(kv_set(f->kv, k, "9223372036854775807", 0));
    assert_int_equal(kv_incr(f->kv, k, 1000, KV_TTL_ALWAYS, &n), RC_CONFLICT);
    assert_ok(kv_get(f->kv, k, &v));
    assert_string_equal(v, "9223372036854775807"); /* unchanged */
    free(v);
    assert_ok(kv_del(f->kv, k));
}

static void test_incr_ttl_on_create(void **state)
{
    struct fx *f = *state;
    char k[96], *v;
    int64_t n, ttl;
    mk(f, k, sizeof k, "incr_create");
    assert_ok(kv_incr(f->kv, k, 400, KV_TTL_ON_CREATE, &n));
    assert_int_equal(n, 1);
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_between(ttl, 300, 400);
    sleep_ms(150);
    assert_ok(kv_incr(f->kv, k, 400, KV_TTL_ON_CREATE, &n));
    assert_int_equal(n, 2);
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_between(ttl, 1, 250); /* not re-applied */
    sleep_ms(300);
    assert_ok(kv_get(f->kv, k, &v));
    assert_null(v); /* expired 400 ms after the first increment */
    assert_ok(kv_incr(f->kv, k, 400, KV_TTL_ON_CREATE, &n));
    assert_int_equal(n, 1);
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_between(ttl, 300, 400);
    assert_ok(kv_del(f->kv, k));
}

static void test_incr_ttl_always(void **state)
{
    struct fx *f = *state;
    char k[96], *v;
    int64_t n, ttl;
    mk(f, k, sizeof k, "incr_always");
    assert_ok(kv_incr(f->kv, k, 400, KV_TTL_ALWAYS, &n));
    assert_int_equal(n, 1);
    for (int i = 2; i <= 4; i++) {
        sleep_ms(150);
        assert_ok(kv_incr(f->kv, k, 400, KV_TTL_ALWAYS, &n));
        assert_int_equal(n, i); /* 450 ms after the first: alive because rolling */
        assert_ok(kv_ttl(f->kv, k, &ttl));
        assert_between(ttl, 300, 400);
    }
    sleep_ms(500);
    assert_ok(kv_get(f->kv, k, &v));
    assert_null(v);
}

static void *incr_thread(void *p)
{
    struct race *r = p;
    pthread_barrier_wait(r->bar);
    for (int i = 0; i < 250; i++) {
        int64_t n;
        if (kv_incr(r->kv, r->key, 60000, r->idx % 2 ? KV_TTL_ALWAYS : KV_TTL_ON_CREATE, &n))
            r->errors++;
        else if (n <= r->last)
            r->errors++; /* each thread must see strictly increasing values */
        else
            r->last = n;
    }
    return NULL;
}

static void test_incr_concurrent(void **state)
{
    struct fx *f = *state;
    char k[96];
    int64_t n;
    mk(f, k, sizeof k, "incr_conc");
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NTHREADS);
    struct race r[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        r[i] = (struct race){.kv = f->kv, .key = k, .bar = &bar, .idx = i};
    run_threads(NTHREADS, incr_thread, r, sizeof *r);
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(r[i].errors, 0);
    assert_ok(kv_incr(f->kv, k, 60000, KV_TTL_ON_CREATE, &n));
    assert_int_equal(n, NTHREADS * 250 + 1);
}

static void hit(struct fx *f, const char *k, int64_t now, int64_t window, int64_t limit,
                bool want_allowed, int64_t want_retry)
{
    bool allowed = !want_allowed;
    int64_t retry = -1;
    assert_ok(kv_window_hit(f->kv, k, now, window, limit, &allowed, &retry));
    if (allowed != want_allowed || retry != want_retry)
        fail_msg("hit at +%lld: allowed=%d retry=%lld, want allowed=%d retry=%lld",
                 (long long)(now - 1000000), allowed, (long long)retry, want_allowed,
                 (long long)want_retry);
}

static void test_window_semantics(void **state)
{
    struct fx *f = *state;
    char k[96];
    int64_t ttl;
    const int64_t T = 1000000, W = 1000;
    mk(f, k, sizeof k, "rate_limit:/auth/login:ip:127.0.0.1");
    hit(f, k, T, W, 3, true, 0);
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_between(ttl, W, W + 1000); /* window + 1000 ms */
    hit(f, k, T + 100, W, 3, true, 0);
    hit(f, k, T + 200, W, 3, true, 0);
    hit(f, k, T + 300, W, 3, false, 700); /* oldest + window - now */
    hit(f, k, T + 999, W, 3, false, 1);
    hit(f, k, T + 1000, W, 3, true, 0); /* T is <= now - window: slid out */
    hit(f, k, T + 1001, W, 3, false, 99);
    hit(f, k, T + 1050, W, 3, false, 50);
    hit(f, k, T + 1100, W, 3, true, 0); /* T+100 slid out; rejected hits left no trace */
    hit(f, k, T + 1150, W, 3, false, 50);
    /* A lower limit on the same key rejects without growing the log. */
    hit(f, k, T + 1150, W, 1, false, 50);
    /* Everything slides out after a quiet window. */
    hit(f, k, T + 5000, W, 3, true, 0);
    hit(f, k, T + 5000, W, 3, true, 0);
    hit(f, k, T + 5000, W, 3, true, 0);
    hit(f, k, T + 5000, W, 3, false, W);
}

/* Reference model of the §10.5 sliding log: a plain sorted array. */
struct wmodel {
    int64_t ts[256];
    int n;
};

static void model_hit(struct wmodel *m, int64_t now, int64_t w, int64_t limit, bool *allowed,
                      int64_t *retry)
{
    int drop = 0;
    while (drop < m->n && m->ts[drop] <= now - w)
        drop++;
    memmove(m->ts, m->ts + drop, (size_t)(m->n - drop) * sizeof m->ts[0]);
    m->n -= drop;
    if (m->n >= limit) {
        *allowed = false;
        *retry = m->ts[0] + w - now;
        return;
    }
    int at = m->n;
    while (at > 0 && m->ts[at - 1] > now)
        at--;
    memmove(m->ts + at + 1, m->ts + at, (size_t)(m->n - at) * sizeof m->ts[0]);
    m->ts[at] = now;
    m->n++;
    *allowed = true;
    *retry = 0;
}

/* Long runs against the model: logs that fill, slide and refill (so the
 * in-process ring wraps and grows), hits a few ms in the past (callers'
 * clocks differ), quiet gaps longer than the window. */
static void test_window_model(void **state)
{
    struct fx *f = *state;
    char k[96];
    const int64_t W = 1000, limits[] = {1, 3, 37, 200};
    uint64_t seed = 12345;
    for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
        char name[32];
        snprintf(name, sizeof name, "window_model_%zu", li);
        mk(f, k, sizeof k, name);
        struct wmodel m = {.n = 0};
        int64_t now = 1000000;
        for (int i = 0; i < 4000; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            unsigned r = (unsigned)(seed >> 33);
            now += r % 16 == 0   ? -(int64_t)((r >> 4) % 5)
                   : r % 97 == 0 ? 1500
                                 : (int64_t)((r >> 4) % 10);
            bool want_allowed;
            int64_t want_retry;
            model_hit(&m, now, W, limits[li], &want_allowed, &want_retry);
            hit(f, k, now, W, limits[li], want_allowed, want_retry);
        }
    }
}

static void test_window_not_recorded(void **state)
{
    struct fx *f = *state;
    char k[96];
    int64_t ttl1, ttl2;
    const int64_t T = 1000000, W = 1000;
    mk(f, k, sizeof k, "window_rejects");
    hit(f, k, T, W, 2, true, 0);
    hit(f, k, T + 1, W, 2, true, 0);
    assert_ok(kv_ttl(f->kv, k, &ttl1));
    for (int i = 2; i < 102; i++)
        hit(f, k, T + i, W, 2, false, W - i);
    assert_ok(kv_ttl(f->kv, k, &ttl2));
    assert_true(ttl2 <= ttl1); /* a rejection does not refresh the TTL */
    /* If the 100 rejections had been recorded, these would be rejected. */
    hit(f, k, T + 1001, W, 2, true, 0);
    hit(f, k, T + 1002, W, 2, true, 0);
    hit(f, k, T + 1003, W, 2, false, 998);
}

static void test_window_expiry(void **state)
{
    struct fx *f = *state;
    char k[96];
    int64_t ttl;
    mk(f, k, sizeof k, "window_ttl");
    hit(f, k, 5000, 1, 1, true, 0); /* 1 ms window → TTL 1001 ms */
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_between(ttl, 900, 1001);
    hit(f, k, 5000, 1, 1, false, 1);
    sleep_ms(1100);
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_int_equal(ttl, -2);
}

static void *window_thread(void *p)
{
    struct race *r = p;
    pthread_barrier_wait(r->bar);
    for (int i = 0; i < 50; i++) {
        bool allowed;
        int64_t retry;
        if (kv_window_hit(r->kv, r->key, 7000000, 60000, 100, &allowed, &retry))
            r->errors++;
        else if (allowed)
            r->wins++;
        else if (retry != 60000)
            r->errors++;
    }
    return NULL;
}

static void test_window_concurrent(void **state)
{
    struct fx *f = *state;
    char k[96];
    mk(f, k, sizeof k, "window_conc");
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NTHREADS);
    struct race r[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        r[i] = (struct race){.kv = f->kv, .key = k, .bar = &bar, .idx = i};
    run_threads(NTHREADS, window_thread, r, sizeof *r);
    pthread_barrier_destroy(&bar);
    int allowed = 0;
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(r[i].errors, 0);
        allowed += r[i].wins;
    }
    /* Same now_ms for all 400 hits: members must still be distinct. */
    assert_int_equal(allowed, 100);
}

static void test_wrong_type(void **state)
{
    struct fx *f = *state;
    char k[96], *v = (char *)1;
    int64_t n, ttl;
    bool allowed;
    mk(f, k, sizeof k, "wrongtype");
    hit(f, k, 1000, 1000, 5, true, 0);
    assert_int_equal(kv_get(f->kv, k, &v), RC_CONFLICT);
    assert_null(v);
    assert_int_equal(kv_getdel(f->kv, k, &v), RC_CONFLICT);
    assert_null(v);
    assert_int_equal(kv_incr(f->kv, k, 0, KV_TTL_ALWAYS, &n), RC_CONFLICT);
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_true(ttl > 0);
    assert_ok(kv_set(f->kv, k, "now a string", 0)); /* SET replaces any kind */
    assert_ok(kv_get(f->kv, k, &v));
    assert_string_equal(v, "now a string");
    free(v);
    assert_int_equal(kv_window_hit(f->kv, k, 1000, 1000, 5, &allowed, &n), RC_CONFLICT);
    assert_ok(kv_del(f->kv, k));
    hit(f, k, 1000, 1000, 5, true, 0);
    assert_ok(kv_del(f->kv, k));
}

/* kv_get_deref: guarded (any kind), no reference, a reference to an absent
 * or expired value, a reference that would make an over-long key, and the
 * whole hop; bad arguments refused with every output cleared. */
static void test_get_deref(void **state)
{
    struct fx *f = *state;
    char g[96], ref[96], pfx[96], target[200], w[96];
    mk(f, g, sizeof g, "deref-guard");
    mk(f, ref, sizeof ref, "deref-ref");
    mk(f, pfx, sizeof pfx, "deref-val:");
    mk(f, w, sizeof w, "deref-window");
    bool guarded = true;
    char *r = (char *)1, *v = (char *)1;
    assert_ok(kv_get_deref(f->kv, g, ref, pfx, &guarded, &r, &v));
    assert_false(guarded);
    assert_null(r);
    assert_null(v);
    assert_ok(kv_set(f->kv, ref, "s1", 60000));
    assert_ok(kv_get_deref(f->kv, g, ref, pfx, &guarded, &r, &v));
    assert_string_equal(r, "s1");
    assert_null(v);
    free(r);
    snprintf(target, sizeof target, "%ss1", pfx);
    assert_ok(kv_set(f->kv, target, "{\"state\":1}", 60000));
    assert_ok(kv_get_deref(f->kv, g, ref, pfx, &guarded, &r, &v));
    assert_false(guarded);
    assert_string_equal(r, "s1");
    assert_string_equal(v, "{\"state\":1}");
    free(r);
    free(v);
    /* The guard wins, and reads nothing else. */
    assert_ok(kv_set(f->kv, g, "1", 60000));
    assert_ok(kv_get_deref(f->kv, g, ref, pfx, &guarded, &r, &v));
    assert_true(guarded);
    assert_null(r);
    assert_null(v);
    assert_ok(kv_del(f->kv, g));
    hit(f, w, 1000, 1000, 5, true, 0); /* a guard of another kind still exists */
    assert_ok(kv_get_deref(f->kv, w, ref, pfx, &guarded, &r, &v));
    assert_true(guarded);
    /* A reference that expired, and one too long to follow. */
    assert_ok(kv_set(f->kv, ref, "s1", 50));
    usleep(120 * 1000);
    assert_ok(kv_get_deref(f->kv, g, ref, pfx, &guarded, &r, &v));
    assert_null(r);
    assert_null(v);
    char longref[KV_KEY_MAX + 1];
    memset(longref, 'x', KV_KEY_MAX - 4);
    longref[KV_KEY_MAX - 4] = '\0';
    assert_ok(kv_set(f->kv, ref, longref, 60000));
    assert_ok(kv_get_deref(f->kv, g, ref, pfx, &guarded, &r, &v));
    assert_string_equal(r, longref);
    assert_null(v);
    free(r);
    /* Bad arguments. */
    guarded = true;
    r = v = (char *)1;
    assert_int_equal(kv_get_deref(f->kv, "", ref, pfx, &guarded, &r, &v), RC_INVALID);
    assert_false(guarded);
    assert_null(r);
    assert_null(v);
    assert_int_equal(kv_get_deref(f->kv, g, ref, NULL, &guarded, &r, &v), RC_INVALID);
    assert_ok(kv_del(f->kv, ref));
    assert_ok(kv_del(f->kv, target));
    assert_ok(kv_del(f->kv, w));
}

/* Sets (data-model §10.3): add re-arms the TTL of the whole set, counts
 * distinct members, membership works; approx counts on both backends. */
static void test_sets(void **state)
{
    struct fx *f = *state;
    char k[96], h[96], s[96], *v = NULL;
    int64_t n = -1, ttl;
    bool has = true;
    mk(f, k, sizeof k, "set");
    assert_ok(kv_set_has(f->kv, k, "a", &has));
    assert_false(has); /* absent key = empty set */
    assert_ok(kv_set_add(f->kv, k, "a", 60000, false, &n));
    assert_int_equal(n, 1);
    assert_ok(kv_set_add(f->kv, k, "a", 60000, false, &n));
    assert_int_equal(n, 1);
    assert_ok(kv_set_add(f->kv, k, "Mozilla/5.0 (X11; Linux) \xc3\xa9", 120000, false, &n));
    assert_int_equal(n, 2);
    assert_ok(kv_set_has(f->kv, k, "a", &has));
    assert_true(has);
    assert_ok(kv_set_has(f->kv, k, "Mozilla/5.0 (X11; Linux) \xc3\xa9", &has));
    assert_true(has);
    assert_ok(kv_set_has(f->kv, k, "A", &has));
    assert_false(has); /* byte-exact */
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_true(ttl > 60000 && ttl <= 120000);          /* re-armed by the last add */
    assert_ok(kv_set_add(f->kv, k, "b", 0, false, &n)); /* ttl 0 leaves it */
    assert_ok(kv_ttl(f->kv, k, &ttl));
    assert_true(ttl > 60000 && ttl <= 120000);
    /* Expiry drops the whole set. */
    assert_ok(kv_set_add(f->kv, k, "c", 50, false, &n));
    assert_int_equal(n, 4);
    sleep_ms(120);
    assert_ok(kv_set_has(f->kv, k, "a", &has));
    assert_false(has);
    assert_ok(kv_set_add(f->kv, k, "z", 60000, false, &n));
    assert_int_equal(n, 1);
    /* Wrong kinds. */
    assert_int_equal(kv_get(f->kv, k, &v), RC_CONFLICT);
    mk(f, s, sizeof s, "str");
    assert_ok(kv_set(f->kv, s, "x", 0));
    assert_int_equal(kv_set_add(f->kv, s, "m", 0, false, &n), RC_CONFLICT);
    assert_int_equal(kv_set_has(f->kv, s, "m", &has), RC_CONFLICT);
    assert_int_equal(kv_set_add(f->kv, NULL, "m", 0, false, &n), RC_INVALID);
    assert_int_equal(kv_set_add(f->kv, k, NULL, 0, false, &n), RC_INVALID);
    /* Distinct counting (HyperLogLog on Redis: exact for small sets). */
    mk(f, h, sizeof h, "hll");
    for (int i = 0; i < 12; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "198.51.100.%d", i % 10);
        assert_ok(kv_set_add(f->kv, h, ip, 300000, true, &n));
    }
    assert_int_equal(n, 10);
    assert_ok(kv_ttl(f->kv, h, &ttl));
    assert_true(ttl > 290000 && ttl <= 300000);
    assert_ok(kv_del(f->kv, h));
    assert_ok(kv_del(f->kv, k));
    /* The in-process set is capped: a flood cannot grow it without bound. */
    if (!kv_is_shared(f->kv)) {
        for (int i = 0; i < KV_SET_MAX + 50; i++) {
            char m[32];
            snprintf(m, sizeof m, "m%d", i);
            assert_ok(kv_set_add(f->kv, k, m, 60000, false, &n));
        }
        assert_int_equal(n, KV_SET_MAX);
        assert_ok(kv_set_has(f->kv, k, "m0", &has));
        assert_true(has);
        assert_ok(kv_set_has(f->kv, k, "m4120", &has));
        assert_false(has);
        assert_ok(kv_del(f->kv, k));
    }
}

static void test_invalid_args(void **state)
{
    struct fx *f = *state;
    char *v = (char *)1, *big = malloc(KV_VAL_MAX + 2);
    int64_t n;
    bool b;
    assert_int_equal(kv_get(f->kv, NULL, &v), RC_INVALID);
    assert_null(v);
    assert_int_equal(kv_get(f->kv, "", &v), RC_INVALID);
    memset(big, 'k', KV_KEY_MAX + 1);
    big[KV_KEY_MAX + 1] = '\0';
    assert_int_equal(kv_set(f->kv, big, "v", 0), RC_INVALID);
    big[KV_KEY_MAX] = '\0'; /* exactly the limit is fine */
    big[0] = 't';
    assert_ok(kv_set(f->kv, big, "v", 1000));
    assert_ok(kv_getdel(f->kv, big, &v));
    assert_string_equal(v, "v");
    free(v);
    memset(big, 'v', KV_VAL_MAX + 1);
    big[KV_VAL_MAX + 1] = '\0';
    assert_int_equal(kv_set(f->kv, "k", big, 0), RC_INVALID);
    assert_int_equal(kv_set(f->kv, "k", NULL, 0), RC_INVALID);
    assert_int_equal(kv_set(f->kv, "k", "v", KV_TTL_MAX_MS + 1), RC_INVALID);
    assert_int_equal(kv_set_nx(f->kv, NULL, "v", 0, &b), RC_INVALID);
    assert_int_equal(kv_del(f->kv, ""), RC_INVALID);
    assert_int_equal(kv_ttl(f->kv, NULL, &n), RC_INVALID);
    assert_int_equal(kv_incr(f->kv, "k", 0, (enum kv_ttl_mode)7, &n), RC_INVALID);
    assert_int_equal(kv_window_hit(f->kv, "k", 0, 1000, 0, &b, &n), RC_INVALID);
    assert_int_equal(kv_window_hit(f->kv, "k", 0, 0, 5, &b, &n), RC_INVALID);
    assert_int_equal(kv_window_hit(f->kv, "k", -1, 1000, 5, &b, &n), RC_INVALID);
    assert_int_equal(kv_window_hit(f->kv, "k", KV_TIME_MAX_MS + 1, 1000, 5, &b, &n), RC_INVALID);
    assert_int_equal(kv_window_hit(f->kv, "k", 0, 1000, KV_WINDOW_LIMIT_MAX + 1, &b, &n),
                     RC_INVALID);
    free(big);
}

static void test_many_keys(void **state)
{
    struct fx *f = *state;
    enum { N = 5000 };
    char k[96], name[32], *v;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "many%d", i);
        mk(f, k, sizeof k, name);
        assert_ok(kv_set(f->kv, k, name, 60000));
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "many%d", i);
        mk(f, k, sizeof k, name);
        assert_ok(kv_getdel(f->kv, k, &v));
        assert_non_null(v);
        assert_string_equal(v, name);
        free(v);
    }
}

static void test_sweep(void **state)
{
    struct fx *f = *state;
    struct kv *kv = f->kv;
    if (!f->redis)
        assert_ok(kv_open(NULL, &kv)); /* private store: count only our entries */
    char k[96], name[32], *v;
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "sweep%d", i);
        mk(f, k, sizeof k, name);
        assert_ok(kv_set(kv, k, "x", i < 200 ? 50 : 0));
    }
    assert_int_equal(kv_sweep(kv), 0); /* nothing expired yet */
    sleep_ms(100);
    assert_int_equal(kv_sweep(kv), f->redis ? 0 : 200);
    assert_int_equal(kv_sweep(kv), 0);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "sweep%d", i);
        mk(f, k, sizeof k, name);
        assert_ok(kv_get(kv, k, &v));
        if (i < 200) {
            assert_null(v);
        } else {
            assert_non_null(v);
            free(v);
            assert_ok(kv_del(kv, k));
        }
    }
    if (!f->redis)
        kv_close(kv);
}

/* ---- Redis-only cases ---- */

static void test_redis_script_flush(void **state)
{
    struct fx *f = *state;
    char k[96], *v;
    int64_t n;
    bool allowed;
    char w[96];
    mk(f, k, sizeof k, "flush");
    mk(f, w, sizeof w, "flush_window");
    assert_ok(kv_incr(f->kv, k, 0, KV_TTL_ALWAYS, &n));
    raw_cmd(g_redis_port, "SCRIPT FLUSH"); /* EVALSHA now gets NOSCRIPT → EVAL */
    assert_ok(kv_incr(f->kv, k, 0, KV_TTL_ALWAYS, &n));
    assert_int_equal(n, 2);
    assert_ok(kv_window_hit(f->kv, w, 1, 1000, 1, &allowed, &n));
    assert_true(allowed);
    assert_ok(kv_getdel(f->kv, k, &v));
    assert_string_equal(v, "2");
    free(v);
    assert_ok(kv_del(f->kv, w));
}

static int count_in_file(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, fp))
        n += strstr(line, needle) != NULL;
    fclose(fp);
    return n;
}

struct restart_arg {
    struct kv *kv;
    pthread_barrier_t *bar;
    rc_t first;
    int later_errors;
};

static void *restart_thread(void *p)
{
    struct restart_arg *a = p;
    pthread_barrier_wait(a->bar);
    a->first = kv_ping(a->kv);
    for (int i = 0; i < 10; i++) {
        int64_t n;
        if (kv_incr(a->kv, "restart:count", 0, KV_TTL_ALWAYS, &n))
            a->later_errors++;
    }
    return NULL;
}

/* All pooled connections go stale at once; count first-call failures. */
static int parallel_after_restart(struct kv *kv)
{
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NTHREADS);
    struct restart_arg a[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        a[i] = (struct restart_arg){.kv = kv, .bar = &bar};
    run_threads(NTHREADS, restart_thread, a, sizeof *a);
    pthread_barrier_destroy(&bar);
    int unavailable = 0;
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(a[i].later_errors, 0);
        if (a[i].first == RC_UNAVAILABLE)
            unavailable++;
        else
            assert_ok(a[i].first);
    }
    return unavailable;
}

static void test_redis_restart(void **state)
{
    struct fx *f = *state;
    char logpath[] = "/tmp/test_kv_log_XXXXXX", *v;
    int logfd = mkstemp(logpath);
    assert_true(logfd >= 0);
    log_set_fd(logfd);
    const char *secret = "s3cret-value-never-logged";
    assert_ok(kv_set(f->kv, "restart:secret", secret, 0));
    parallel_after_restart(f->kv); /* warm the pool with NTHREADS connections */

    srv_stop(g_redis_pid, SIGKILL);
    g_redis_pid = 0;
    int64_t t0 = mono_ms();
    for (int i = 0; i < 50; i++) {
        assert_int_equal(kv_ping(f->kv), RC_UNAVAILABLE);
        assert_int_equal(kv_get(f->kv, "restart:secret", &v), RC_UNAVAILABLE);
        assert_null(v);
    }
    int64_t down_ms = mono_ms() - t0;
    print_message("redis down: 100 failing calls took %lld ms\n", (long long)down_ms);
    assert_true(down_ms < 2000); /* refused connections fail fast */

    g_redis_pid = srv_start(g_redis_port, NULL);
    assert_true(g_redis_pid > 0);
    rc_t first = kv_set(f->kv, "restart:secret", secret, 0);
    assert_true(first == RC_OK || first == RC_UNAVAILABLE);
    for (int i = 0; i < 20; i++)
        assert_ok(kv_ping(f->kv));
    assert_ok(kv_get(f->kv, "restart:secret", &v));
    assert_string_equal(v, secret);
    free(v);

    /* Restart again with idle pooled connections and no call in between. */
    parallel_after_restart(f->kv);
    srv_stop(g_redis_pid, SIGKILL);
    g_redis_pid = srv_start(g_redis_port, NULL);
    assert_true(g_redis_pid > 0);
    int stale = parallel_after_restart(f->kv);
    print_message("after restart: first calls RC_UNAVAILABLE in %d of %d threads "
                  "(first serial call: %s)\n",
                  stale, NTHREADS, rc_str(first));

    log_set_fd(1);
    close(logfd);
    /* One line per transition however many calls failed: the first outage
     * is seen by 100 calls; the second only if a stale connection slipped
     * past the liveness check. */
    int outages = 1 + (stale > 0);
    assert_int_equal(count_in_file(logpath, "kv_redis_down"), outages);
    assert_int_equal(count_in_file(logpath, "kv_redis_up"), outages);
    assert_int_equal(count_in_file(logpath, secret), 0);
    unlink(logpath);
}

static void test_redis_stall(void **state)
{
    struct fx *f = *state;
    char *v;
    assert_ok(kv_ping(f->kv));
    kill(g_redis_pid, SIGSTOP);
    int64_t t0 = mono_ms();
    rc_t rc = kv_get(f->kv, "stall", &v);
    int64_t took = mono_ms() - t0;
    kill(g_redis_pid, SIGCONT);
    print_message("stalled server: kv_get gave %s after %lld ms\n", rc_str(rc), (long long)took);
    assert_int_equal(rc, RC_UNAVAILABLE);
    assert_between(took, 900, 2500);
    assert_ok(kv_ping(f->kv));
    assert_ok(kv_get(f->kv, "stall", &v));
    assert_null(v);
}

static void test_redis_auth_select(void **state)
{
    (void)state;
    int port = free_port();
    pid_t pid = srv_start(port, "p@ss:w/rd");
    assert_true(pid > 0);
    char url[160];
    struct kv *bad = NULL, *db3 = NULL, *db0 = NULL, *acl = NULL;
    char *v = NULL;
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d/3", port);
    assert_ok(kv_open(url, &bad));
    snprintf(url, sizeof url, "redis://:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d/3", port);
    assert_ok(kv_open(url, &db3));
    snprintf(url, sizeof url, "redis://:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d", port);
    assert_ok(kv_open(url, &db0));
    snprintf(url, sizeof url, "redis://default:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d/3", port);
    assert_ok(kv_open(url, &acl));
    rc_t bad_rc = kv_ping(bad);
    rc_t set_rc = kv_set(db3, "sel", "three", 0);
    rc_t get0 = kv_get(db0, "sel", &v);
    char *v0 = v;
    rc_t get3 = kv_get(acl, "sel", &v);
    kv_close(bad);
    kv_close(db3);
    kv_close(db0);
    kv_close(acl);
    srv_stop(pid, SIGTERM);
    assert_int_equal(bad_rc, RC_UNAVAILABLE);
    assert_ok(set_rc);
    assert_ok(get0);
    assert_null(v0);
    assert_ok(get3);
    assert_string_equal(v, "three");
    free(v);
}

/* ---- cases that need no server ---- */

static void test_url_parsing(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "rediss://127.0.0.1:6379", "redis://",      "redis://:6379",  "redis://h:0",
        "redis://h:65536",         "redis://h:12x", "redis://h/abc",  "redis://h/-1",
        "redis://h?db=1",          "redis://h#x",   "redis://user@h", "redis://:p%zz@h",
        "redis://:p%00@h",         "redis://[::1",  "http://h",       "redis://h:",
        "redis://h/99999999",
    };
    static const char *const good[] = {
        "redis://127.0.0.1:1",
        "redis://[::1]:6379/2",
        "redis://u:p%40ss@h:1/0",
        "REDIS://h",
        "redis://h/",
        "redis://:@h:7000",
        "redis://:pw@localhost",
        "redis://h:6379/15",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct kv *kv = (struct kv *)1;
        if (kv_open(bad[i], &kv) != RC_INVALID)
            fail_msg("accepted %s", bad[i]);
        assert_null(kv);
    }
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        struct kv *kv = NULL;
        if (kv_open(good[i], &kv) != RC_OK)
            fail_msg("rejected %s", good[i]);
        assert_true(kv_is_shared(kv));
        kv_close(kv);
    }
    struct kv *kv = NULL;
    assert_ok(kv_open("", &kv));
    assert_false(kv_is_shared(kv));
    kv_close(kv);
    kv_close(NULL);
}

static void test_redis_unreachable(void **state)
{
    (void)state;
    char url[64], *v = (char *)1;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
    struct kv *kv;
    assert_ok(kv_open(url, &kv)); /* opening does not connect */
    int64_t n, t0 = mono_ms();
    bool b;
    assert_int_equal(kv_ping(kv), RC_UNAVAILABLE);
    assert_int_equal(kv_get(kv, "k", &v), RC_UNAVAILABLE);
    assert_null(v);
    assert_int_equal(kv_set(kv, "k", "v", 0), RC_UNAVAILABLE);
    assert_int_equal(kv_incr(kv, "k", 0, KV_TTL_ALWAYS, &n), RC_UNAVAILABLE);
    assert_int_equal(kv_window_hit(kv, "k", 1, 1000, 5, &b, &n), RC_UNAVAILABLE);
    assert_false(b);
    assert_int_equal(kv_sweep(kv), 0);
    assert_true(mono_ms() - t0 < 1000);
    kv_close(kv);
}

#define SHARED_TESTS                                                                               \
    cmocka_unit_test_setup(test_basic, per_test_setup),                                            \
        cmocka_unit_test_setup(test_ttl_expiry, per_test_setup),                                   \
        cmocka_unit_test_setup(test_set_nx, per_test_setup),                                       \
        cmocka_unit_test_setup(test_set_nx_race, per_test_setup),                                  \
        cmocka_unit_test_setup(test_getdel, per_test_setup),                                       \
        cmocka_unit_test_setup(test_getdel_race, per_test_setup),                                  \
        cmocka_unit_test_setup(test_incr_basic, per_test_setup),                                   \
        cmocka_unit_test_setup(test_incr_ttl_on_create, per_test_setup),                           \
        cmocka_unit_test_setup(test_incr_ttl_always, per_test_setup),                              \
        cmocka_unit_test_setup(test_incr_concurrent, per_test_setup),                              \
        cmocka_unit_test_setup(test_window_semantics, per_test_setup),                             \
        cmocka_unit_test_setup(test_window_not_recorded, per_test_setup),                          \
        cmocka_unit_test_setup(test_window_model, per_test_setup),                                 \
        cmocka_unit_test_setup(test_window_expiry, per_test_setup),                                \
        cmocka_unit_test_setup(test_window_concurrent, per_test_setup),                            \
        cmocka_unit_test_setup(test_wrong_type, per_test_setup),                                   \
        cmocka_unit_test_setup(test_get_deref, per_test_setup),                                    \
        cmocka_unit_test_setup(test_sets, per_test_setup),                                         \
        cmocka_unit_test_setup(test_invalid_args, per_test_setup),                                 \
        cmocka_unit_test_setup(test_many_keys, per_test_setup),                                    \
        cmocka_unit_test_setup(test_sweep, per_test_setup)

int main(void)
{
    /* Link transitions are logged to stdout, like in the server. */
    log_init(LOG_INFO, "test", "test");
    atexit(stop_all_servers);
    const struct CMUnitTest common[] = {
        cmocka_unit_test(test_url_parsing),
        cmocka_unit_test(test_redis_unreachable),
    };
    const struct CMUnitTest mem[] = {SHARED_TESTS};
    const struct CMUnitTest redis[] = {
        SHARED_TESTS,
        cmocka_unit_test_setup(test_redis_script_flush, per_test_setup),
        cmocka_unit_test_setup(test_redis_auth_select, per_test_setup),
        cmocka_unit_test_setup(test_redis_stall, per_test_setup),
        cmocka_unit_test_setup(test_redis_restart, per_test_setup),
    };
    int failed = cmocka_run_group_tests_name("kv_common", common, NULL, NULL);
    failed += cmocka_run_group_tests_name("kv_memory", mem, mem_group_setup, group_teardown);
    if (have_redis_server())
        failed += cmocka_run_group_tests_name("kv_redis", redis, redis_group_setup, group_teardown);
    else
        fprintf(stderr, "SKIP kv_redis: redis-server is not installed (not on PATH)\n");
    stop_all_servers();
    return failed ? 1 : 0;
}
