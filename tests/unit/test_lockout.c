/* svc/lockout tests (api-core §12, data-model §10.3). The same cases run
 * against the in-process store and against a redis-server started here on
 * a free port (skipped with a message only when redis-server is missing);
 * a store on a closed port checks the RC_UNAVAILABLE paths. The server is
 * stopped by pid at the end, at exit, and by PR_SET_PDEATHSIG. */
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

#include "kv/kv.h"
#include "svc/lockout.h"
#include "util/log.h"
#include "util/uuid.h"

#define assert_ok(expr) assert_int_equal((expr), RC_OK)
#define assert_between(v, lo, hi)                                                                  \
    do {                                                                                           \
        long long v_ = (long long)(v);                                                             \
        if (v_ < (long long)(lo) || v_ > (long long)(hi))                                          \
            fail_msg("%s = %lld not in [%lld, %lld]", #v, v_, (long long)(lo), (long long)(hi));   \
    } while (0)

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

/* Starts redis-server on 127.0.0.1:port; false when it cannot. */
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

/* ---- helpers ---- */

static void new_uid(char out[UUID_STR_LEN + 1])
{
    uuid_v4(out);
}

static int64_t ttl_ms(const char *fmt, const char *uid)
{
    char key[256];
    snprintf(key, sizeof key, fmt, uid);
    int64_t ms;
    assert_ok(kv_ttl(g_kv, key, &ms));
    return ms;
}

static void del_key(const char *fmt, const char *uid)
{
    char key[256];
    snprintf(key, sizeof key, fmt, uid);
    assert_ok(kv_del(g_kv, key));
}

struct failure {
    bool locked, distributed;
    int64_t retry, count;
};

static struct failure fail_once(const char *uid, const char *ip, bool password)
{
    struct failure f;
    assert_ok(lockout_record_failure(g_kv, uid, ip, password, &f.locked, &f.retry, &f.count,
                                     &f.distributed));
    return f;
}

/* ---- cases ---- */

static void test_ladder_values(void **st)
{
    (void)st;
    static const int64_t want[][2] = {{-1, 0},  {0, 0},   {1, 0},    {4, 0},    {5, 60},
                                      {6, 300}, {7, 900}, {8, 3600}, {9, 3600}, {1000, 3600}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        assert_int_equal(lockout_ladder_s(want[i][0]), want[i][1]);
}

static void test_failures_walk_the_ladder(void **st)
{
    (void)st;
    char uid[UUID_STR_LEN + 1];
    new_uid(uid);
    bool locked;
    int64_t retry;
    assert_ok(lockout_check(g_kv, uid, &locked, &retry));
    assert_false(locked);
    assert_int_equal(retry, 0);
    static const int64_t ladder[] = {0, 0, 0, 0, 60, 300, 900, 3600, 3600, 3600};
    for (int i = 0; i < 10; i++) {
        /* The caller never records while locked; the ladder is about the
         * counter only, so each step overwrites the lock. */
        struct failure f = fail_once(uid, "203.0.113.7", true);
        assert_int_equal(f.count, i + 1);
        assert_false(f.distributed);
        assert_int_equal(f.locked, ladder[i] > 0);
        assert_int_equal(f.retry, ladder[i]);
        assert_ok(lockout_check(g_kv, uid, &locked, &retry));
        assert_int_equal(locked, ladder[i] > 0);
        if (ladder[i])
            assert_between(retry, ladder[i] - 1, ladder[i]);
        /* Lock written with the duration, replacing any earlier lock. */
        if (ladder[i])
            assert_between(ttl_ms("lockout:%s", uid), (ladder[i] - 2) * 1000, ladder[i] * 1000);
    }
}

static void test_counter_ttl_rolls(void **st)
{
    (void)st;
    char uid[UUID_STR_LEN + 1], key[128];
    new_uid(uid);
    struct failure f = fail_once(uid, NULL, true);
    assert_int_equal(f.count, 1);
    assert_between(ttl_ms("failed_attempts:%s", uid), 3590 * 1000, 3600 * 1000);
    /* Shorten the counter's life, then fail again: the hour starts over. */
    snprintf(key, sizeof key, "failed_attempts:%s", uid);
    assert_ok(kv_set(g_kv, key, "2", 2000));
    f = fail_once(uid, NULL, false);
    assert_int_equal(f.count, 3);
    assert_between(ttl_ms("failed_attempts:%s", uid), 3590 * 1000, 3600 * 1000);
    /* An expired counter starts from zero. */
    assert_ok(kv_set(g_kv, key, "4", 50));
    sleep_ms(120);
    f = fail_once(uid, NULL, false);
    assert_int_equal(f.count, 1);
    assert_false(f.locked);
}

static void test_lock_expires_and_retry_after_rounds_up(void **st)
{
    (void)st;
    char uid[UUID_STR_LEN + 1], key[128];
    new_uid(uid);
    snprintf(key, sizeof key, "lockout:%s", uid);
    bool locked;
    int64_t retry;
    assert_ok(kv_set(g_kv, key, "1", 1500));
    assert_ok(lockout_check(g_kv, uid, &locked, &retry));
    assert_true(locked);
    assert_int_equal(retry, 2); /* ceil(1.5 s) */
    assert_ok(kv_set(g_kv, key, "1", 150));
    assert_ok(lockout_check(g_kv, uid, &locked, &retry));
    assert_true(locked);
    assert_int_equal(retry, 1); /* never 0 */
    sleep_ms(250);
    assert_ok(lockout_check(g_kv, uid, &locked, &retry));
    assert_false(locked);
    assert_int_equal(retry, 0);
    /* A lock without expiry (written by hand) reports the longest lock. */
    assert_ok(kv_set(g_kv, key, "1", 0));
    assert_ok(lockout_check(g_kv, uid, &locked, &retry));
    assert_true(locked);
    assert_int_equal(retry, LOCKOUT_MAX_S);
}

static void test_distributed_attack_threshold(void **st)
{
    (void)st;
    char uid[UUID_STR_LEN + 1], ip[32];
    new_uid(uid);
    /* Keep the counter at 1 so only the detector can lock. */
    for (int i = 1; i <= 9; i++) {
        snprintf(ip, sizeof ip, "198.51.100.%d", i);
        struct failure f = fail_once(uid, ip, true);
        assert_false(f.distributed);
        assert_false(f.locked);
        /* The same IP again never adds to the distinct count. */
        f = fail_once(uid, "198.51.100.1", true);
        assert_false(f.distributed);
        del_key("failed_attempts:%s", uid);
    }
    /* Not counted: OTP failures, unknown or absent IPs. */
    struct failure f = fail_once(uid, "198.51.100.200", false);
    assert_false(f.distributed);
    f = fail_once(uid, "unknown", true);
    assert_false(f.distributed);
    f = fail_once(uid, NULL, true);
    assert_false(f.distributed);
    f = fail_once(uid, "", true);
    assert_false(f.distributed);
    del_key("failed_attempts:%s", uid);
    bool locked;
    int64_t retry;
    assert_ok(lockout_check(g_kv, uid, &locked, &retry));
    assert_false(locked);
    /* The tenth distinct IP locks for an hour at once. */
    f = fail_once(uid, "2001:db8::10", true);
    assert_true(f.distributed);
    assert_true(f.locked);
    assert_int_equal(f.retry, 3600);
    assert_int_equal(f.count, 1);
    assert_ok(lockout_check(g_kv, uid, &locked, &retry));
    assert_true(locked);
    assert_between(retry, 3599, 3600);
    /* Detector state is one key (data-model §10.3) re-armed to 300 s. */
    assert_between(ttl_ms("distributed_attack:%s", uid), 290 * 1000, 300 * 1000);
    assert_int_equal(ttl_ms("distributed_attack:%s:198.51.100.1", uid), -2);
}

static void test_distributed_attack_per_account(void **st)
{
    (void)st;
    char a[UUID_STR_LEN + 1], b[UUID_STR_LEN + 1], ip[32];
    new_uid(a);
    new_uid(b);
    for (int i = 1; i <= 9; i++) {
        snprintf(ip, sizeof ip, "192.0.2.%d", i);
        assert_false(fail_once(a, ip, true).distributed);
        del_key("failed_attempts:%s", a);
    }
    /* a's nine IPs do not count for b, and b's IP does not shadow a's. */
    assert_false(fail_once(b, "192.0.2.10", true).distributed);
    assert_true(fail_once(a, "192.0.2.10", true).distributed);
    bool locked;
    int64_t retry;
    assert_ok(lockout_check(g_kv, b, &locked, &retry));
    assert_false(locked);
}

static void test_success_clears_and_flags(void **st)
{
    (void)st;
    char uid[UUID_STR_LEN + 1];
    new_uid(uid);
    for (int i = 0; i < 5; i++)
        fail_once(uid, "203.0.113.9", true);
    bool locked;
    int64_t retry;
    assert_ok(lockout_check(g_kv, uid, &locked, &retry));
    assert_true(locked);

    struct lockout_flags fl;
    assert_ok(lockout_record_success(g_kv, uid, "203.0.113.9", "Mozilla/5.0 test", &fl));
    assert_int_equal(fl.prior_failures, 5);
    assert_true(fl.many_failures);
    assert_true(fl.new_ip); /* first login: always new */
    assert_true(fl.new_user_agent);
    assert_true(fl.suspicious);
    assert_ok(lockout_check(g_kv, uid, &locked, &retry));
    assert_false(locked);
    assert_int_equal(ttl_ms("failed_attempts:%s", uid), -2);
    assert_between(ttl_ms("seen_ips:%s", uid), (LOCKOUT_SEEN_TTL_S - 10) * 1000LL,
                   LOCKOUT_SEEN_TTL_S * 1000LL);
    assert_between(ttl_ms("seen_agents:%s", uid), (LOCKOUT_SEEN_TTL_S - 10) * 1000LL,
                   LOCKOUT_SEEN_TTL_S * 1000LL);

    /* Same IP, same agent (trimmed): nothing suspicious. */
    assert_ok(lockout_record_success(g_kv, uid, "203.0.113.9", "  Mozilla/5.0 test \t", &fl));
    assert_int_equal(fl.prior_failures, 0);
    assert_false(fl.new_ip);
    assert_false(fl.new_user_agent);
    assert_false(fl.many_failures);
    assert_false(fl.suspicious);

    /* A new IP alone flags; a new agent alone flags. */
    assert_ok(lockout_record_success(g_kv, uid, "2001:db8::1", "Mozilla/5.0 test", &fl));
    assert_true(fl.new_ip);
    assert_false(fl.new_user_agent);
    assert_true(fl.suspicious);
    assert_ok(lockout_record_success(g_kv, uid, "203.0.113.9", "curl/8", &fl));
    assert_false(fl.new_ip);
    assert_true(fl.new_user_agent);

    /* Unknown IP and blank agent never count as new (nor get remembered). */
    assert_ok(lockout_record_success(g_kv, uid, "unknown", "   ", &fl));
    assert_false(fl.new_ip);
    assert_false(fl.new_user_agent);
    assert_false(fl.suspicious);
    assert_ok(lockout_record_success(g_kv, uid, NULL, NULL, &fl));
    assert_false(fl.suspicious);

    /* Two prior failures are not suspicious, three are. */
    fail_once(uid, "203.0.113.9", true);
    fail_once(uid, "203.0.113.9", true);
    assert_ok(lockout_record_success(g_kv, uid, "203.0.113.9", "curl/8", &fl));
    assert_int_equal(fl.prior_failures, 2);
    assert_false(fl.suspicious);
    for (int i = 0; i < 3; i++)
        fail_once(uid, "203.0.113.9", false);
    assert_ok(lockout_record_success(g_kv, uid, "203.0.113.9", "curl/8", &fl));
    assert_int_equal(fl.prior_failures, 3);
    assert_true(fl.many_failures);
    assert_true(fl.suspicious);
}

static void test_success_leaves_distributed_window(void **st)
{
    (void)st;
    char uid[UUID_STR_LEN + 1], ip[32];
    new_uid(uid);
    for (int i = 1; i <= 9; i++) {
        snprintf(ip, sizeof ip, "198.18.0.%d", i);
        fail_once(uid, ip, true);
    }
    struct lockout_flags fl;
    assert_ok(lockout_record_success(g_kv, uid, "198.18.0.1", "ua", &fl));
    /* The distinct-IP set is left to expire, so one more IP still fires. */
    struct failure f = fail_once(uid, "198.18.0.10", true);
    assert_true(f.distributed);
    assert_int_equal(f.count, 1);
}

static void test_otp_issuance_block(void **st)
{
    (void)st;
    char uid[UUID_STR_LEN + 1];
    new_uid(uid);
    bool blocked;
    int64_t retry;
    assert_ok(lockout_otp_blocked(g_kv, uid, &blocked, &retry));
    assert_false(blocked);
    for (int i = 1; i <= LOCKOUT_OTP_FAILED_MAX; i++) {
        assert_ok(lockout_record_otp_failure(g_kv, uid, &blocked));
        assert_false(blocked);
    }
    /* otp_failed keeps the TTL of its first increment (fixed hour). */
    assert_between(ttl_ms("otp_failed:%s", uid), 3590 * 1000, 3600 * 1000);
    assert_ok(lockout_otp_blocked(g_kv, uid, &blocked, &retry));
    assert_false(blocked);
    assert_ok(lockout_record_otp_failure(g_kv, uid, &blocked)); /* 11 > 10 */
    assert_true(blocked);
    assert_ok(lockout_otp_blocked(g_kv, uid, &blocked, &retry));
    assert_true(blocked);
    assert_between(retry, 899, 900);
    /* Set only if absent: a later failure does not extend the block. */
    char key[128];
    snprintf(key, sizeof key, "otp_issuance_blocked:%s", uid);
    assert_ok(kv_set(g_kv, key, "1", 5000));
    assert_ok(lockout_record_otp_failure(g_kv, uid, &blocked));
    assert_true(blocked);
    assert_ok(lockout_otp_blocked(g_kv, uid, &blocked, &retry));
    assert_between(retry, 4, 5);
    /* Unknown remaining time → 900. */
    assert_ok(kv_set(g_kv, key, "1", 0));
    assert_ok(lockout_otp_blocked(g_kv, uid, &blocked, &retry));
    assert_int_equal(retry, LOCKOUT_OTP_BLOCK_S);
    /* The OTP counter is separate from the shared failure counter. */
    assert_int_equal(ttl_ms("failed_attempts:%s", uid), -2);
}

static void test_bad_user_id(void **st)
{
    (void)st;
    char big[LOCKOUT_USER_ID_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *bad[] = {NULL, "", big};
    for (size_t i = 0; i < 3; i++) {
        bool b = true, d = true;
        int64_t r = 9, c = 9;
        struct lockout_flags fl = {.suspicious = true};
        assert_int_equal(lockout_check(g_kv, bad[i], &b, &r), RC_INVALID);
        assert_false(b);
        assert_int_equal(lockout_record_failure(g_kv, bad[i], "1.2.3.4", true, &b, &r, &c, &d),
                         RC_INVALID);
        assert_int_equal(c, 0);
        assert_int_equal(lockout_record_success(g_kv, bad[i], "1.2.3.4", "ua", &fl), RC_INVALID);
        assert_false(fl.suspicious);
        assert_int_equal(lockout_otp_blocked(g_kv, bad[i], &b, &r), RC_INVALID);
        assert_int_equal(lockout_record_otp_failure(g_kv, bad[i], &b), RC_INVALID);
    }
}

static void test_store_unavailable(void **st)
{
    (void)st;
    struct kv *down = NULL;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
    assert_ok(kv_open(url, &down));
    const char *uid = "6f1c7d0e-3c1b-4d6e-9a4c-2b7f0e1d2c3b";
    bool b = true, d = true;
    int64_t r = 7, c = 7;
    struct lockout_flags fl = {.new_ip = true, .suspicious = true};
    assert_int_equal(lockout_check(down, uid, &b, &r), RC_UNAVAILABLE);
    assert_false(b);
    assert_int_equal(r, 0);
    assert_int_equal(lockout_record_failure(down, uid, "1.2.3.4", true, &b, &r, &c, &d),
                     RC_UNAVAILABLE);
    assert_false(b);
    assert_false(d);
    assert_int_equal(c, 0);
    assert_int_equal(lockout_record_success(down, uid, "1.2.3.4", "ua", &fl), RC_UNAVAILABLE);
    assert_false(fl.new_ip);
    assert_false(fl.suspicious);
    assert_int_equal(lockout_otp_blocked(down, uid, &b, &r), RC_UNAVAILABLE);
    assert_false(b);
    assert_int_equal(lockout_record_otp_failure(down, uid, &b), RC_UNAVAILABLE);
    kv_close(down);
}

static bool have_redis_server(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

#define SHARED_TESTS                                                                               \
    cmocka_unit_test(test_failures_walk_the_ladder), cmocka_unit_test(test_counter_ttl_rolls),     \
        cmocka_unit_test(test_lock_expires_and_retry_after_rounds_up),                             \
        cmocka_unit_test(test_distributed_attack_threshold),                                       \
        cmocka_unit_test(test_distributed_attack_per_account),                                     \
        cmocka_unit_test(test_success_clears_and_flags),                                           \
        cmocka_unit_test(test_success_leaves_distributed_window),                                  \
        cmocka_unit_test(test_otp_issuance_block), cmocka_unit_test(test_bad_user_id)

int main(void)
{
    log_init(LOG_ERROR, "test", "test");
    atexit(redis_stop);
    const struct CMUnitTest common[] = {
        cmocka_unit_test(test_ladder_values),
        cmocka_unit_test(test_store_unavailable),
    };
    const struct CMUnitTest shared[] = {SHARED_TESTS};
    int failed = cmocka_run_group_tests_name("lockout_common", common, NULL, NULL);
    failed += cmocka_run_group_tests_name("lockout_memory", shared, mem_setup, group_teardown);
    if (have_redis_server())
        failed += cmocka_run_group_tests_name("lockout_redis", shared, redis_setup, group_teardown);
    else
        fprintf(stderr, "SKIP lockout_redis: redis-server is not installed (not on PATH)\n");
    return failed ? 1 : 0;
}
