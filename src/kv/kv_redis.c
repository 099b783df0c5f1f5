/* Redis kv backend over hiredis synchronous contexts.
 *
 * Connections live in a small pool (mutex + condvar): a caller takes an
 * idle connection or creates one while fewer than KV_REDIS_POOL_MAX exist,
 * otherwise waits up to KV_REDIS_POOL_WAIT_MS. A pooled slot whose context
 * is NULL (never connected, or dropped after an error) connects when next
 * taken; an idle context the server has closed (restart) is noticed with a
 * non-blocking peek and replaced before use. Any I/O error or timeout frees
 * the context and fails that call with RC_UNAVAILABLE — we never retry a
 * command that may already have run.
 *
 * Every key operation is one Redis command or one Lua script (EVALSHA with
 * the SHA returned by SCRIPT LOAD at connect, EVAL on NOSCRIPT), so each is
 * atomic on the server. Values can be secrets and are never logged; the
 * link state (up/down) is logged once per transition, not per call.
 *
 * hiredis 0.14 writes with write(2), which raises SIGPIPE on a socket the
 * server closed; each command blocks SIGPIPE in the calling thread and
 * discards one it caused (libpq's technique), so the process does not die
 * even when nobody ignores SIGPIPE. */
#include "kv/kv_int.h"

#include <assert.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/uuid.h"

enum script_id {
    SCRIPT_GETDEL,
    SCRIPT_INCR,
    SCRIPT_WINDOW,
    SCRIPT_SADD,
    SCRIPT_PFADD,
    SCRIPT_DEREF,
    SCRIPT_COUNT
};

/* KEYS[1] = key. GETDEL is Redis >= 6.2, so emulate it. */
static const char *const script_src[SCRIPT_COUNT] = {
    [SCRIPT_GETDEL] = "local v = redis.call('GET', KEYS[1])\n"
                      "if v then redis.call('DEL', KEYS[1]) end\n"
                      "return v\n",
    /* ARGV: ttl_ms ("0" = leave the TTL alone), always ("1") / on create ("0"). */
    [SCRIPT_INCR] = "local n = redis.call('INCR', KEYS[1])\n"
                    "if ARGV[1] ~= '0' and (ARGV[2] == '1' or n == 1) then\n"
                    "  redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
                    "end\n"
                    "return n\n",
    /* data-model §10.5. ARGV: cutoff (now - window), now, limit, member, ttl.
     * Numbers travel as strings so Lua never reformats them. */
    [SCRIPT_WINDOW] = "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])\n"
                      "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then\n"
                      "  local o = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
                      "  return {0, o[2]}\n"
                      "end\n"
                      "redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])\n"
                      "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
                      "return {1, '0'}\n",
    /* ARGV: member, ttl_ms ("0" = leave the TTL alone). */
    [SCRIPT_SADD] = "redis.call('SADD', KEYS[1], ARGV[1])\n"
                    "if ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
                    "return redis.call('SCARD', KEYS[1])\n",
    /* KEYS[1] = guard; ARGV: ref key, prefix, key length limit. The
     * dereferenced key cannot be declared up front (it is read here):
     * fine on a single Redis, which is what authd supports. */
    [SCRIPT_DEREF] = "if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end\n"
                     "local ref = redis.call('GET', ARGV[1])\n"
                     "if not ref then return {0} end\n"
                     "local k = ARGV[2] .. ref\n"
                     "if #k > tonumber(ARGV[3]) then return {0, ref} end\n"
                     "return {0, ref, redis.call('GET', k)}\n",
    [SCRIPT_PFADD] = "redis.call('PFADD', KEYS[1], ARGV[1])\n"
                     "if ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
                     "return redis.call('PFCOUNT', KEYS[1])\n",
};

#define SHA_HEX 40

struct rconn {
    redisContext *ctx;                   /* NULL: connect on next use */
    char sha[SCRIPT_COUNT][SHA_HEX + 1]; /* "" when SCRIPT LOAD failed: use EVAL */
};

enum link_state { LINK_UNKNOWN, LINK_UP, LINK_DOWN };

struct kv_redis {
    struct kv base;
    char *host;
    int port;
    char *user; /* NULL: AUTH <pass> */
    char *pass; /* NULL: no AUTH */
    int db;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rconn *idle[KV_REDIS_POOL_MAX];
    int nidle;
    int total; /* idle + in use */
    atomic_int link;
};

/* ---- URL ---- */

/* Percent-decodes s[0..n) into a new string; false on a bad escape or NUL. */
static bool pct_decode(const char *s, size_t n, char **out)
{
    char *d = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = n - i >= 3 ? str_hex_digit(s[i + 1]) : -1;
            int lo = n - i >= 3 ? str_hex_digit(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                xfree_secret(d, n + 1);
                return false;
            }
            c = hi * 16 + lo;
            i += 2;
        }
        d[o++] = (char)c;
    }
    d[o] = '\0';
    *out = d;
    return true;
}

/* Decimal s[0..n) in [lo, hi]. */
static bool parse_num(const char *s, size_t n, long lo, long hi, int *out)
{
    if (n == 0 || n > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

/* "user:pass" in [p, at). An empty user means plain AUTH <pass>; an empty
 * password means no AUTH at all. */
static rc_t parse_userinfo(struct kv_redis *r, const char *p, const char *at)
{
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon)
        return RC_INVALID;
    char *user = NULL, *pass = NULL;
    if (!pct_decode(p, (size_t)(colon - p), &user) ||
        !pct_decode(colon + 1, (size_t)(at - colon - 1), &pass)) {
        free(user);
        return RC_INVALID;
    }
    if (*pass) {
        r->pass = pass;
        r->user = *user ? user : NULL;
        if (!*user)
            free(user);
        return RC_OK;
    }
    free(user);
    free(pass);
    return RC_OK;
}

/* redis://[[user]:pass@]host[:port][/db]; the caller checked the scheme. */
static rc_t parse_url(struct kv_redis *r, const char *url)
{
    const char *p = url + strlen("redis://");
    if (strpbrk(p, "?#"))
        return RC_INVALID;
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        if (parse_userinfo(r, p, at) != RC_OK)
            return RC_INVALID;
        p = at + 1;
    }
    const char *hs = p, *he;
    if (*p == '[') {
        hs = p + 1;
        he = memchr(hs, ']', (size_t)(end - hs));
        if (!he)
            return RC_INVALID;
        p = he + 1;
    } else {
        he = memchr(p, ':', (size_t)(end - p));
        he = he ? he : end;
        p = he;
    }
    if (he == hs)
        return RC_INVALID;
    r->host = xstrndup(hs, (size_t)(he - hs));
    r->port = KV_REDIS_DEFAULT_PORT;
    if (p < end && (*p != ':' || !parse_num(p + 1, (size_t)(end - p - 1), 1, 65535, &r->port)))
        return RC_INVALID;
    r->db = 0;
    if (slash && slash[1] && !parse_num(slash + 1, strlen(slash + 1), 0, KV_REDIS_DB_MAX, &r->db))
        return RC_INVALID;
    return RC_OK;
}

/* ---- link state and SIGPIPE ---- */

static void link_up(struct kv_redis *r)
{
    if (atomic_load_explicit(&r->link, memory_order_relaxed) == LINK_UP)
        return; /* the common case stays a plain read */
    int was = atomic_exchange(&r->link, LINK_UP);
    if (was == LINK_DOWN)
        log_msg(LOG_INFO, "kv_redis_up", "redis %s:%d reachable again", r->host, r->port);
    else if (was == LINK_UNKNOWN)
        log_msg(LOG_INFO, "kv_redis_up", "connected to redis %s:%d", r->host, r->port);
}

static void link_down(struct kv_redis *r, const char *why)
{
    if (atomic_exchange(&r->link, LINK_DOWN) != LINK_DOWN)
        log_msg(LOG_WARNING, "kv_redis_down", "redis %s:%d unavailable: %s", r->host, r->port, why);
}

struct sigpipe_guard {
    sigset_t old;
    bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
    sigpending(&pend);
    g->was_pending = sigismember(&pend, SIGPIPE) == 1;
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pend);
    if (!g->was_pending && sigismember(&pend, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- connections ---- */

static void conn_drop(struct rconn *c)
{
    if (c->ctx)
        redisFree(c->ctx);
    c->ctx = NULL;
}

/* False when the server closed the idle connection or sent something
 * unsolicited: either way the context cannot be trusted. */
static bool conn_alive(const struct rconn *c)
{
    char b;
    ssize_t n;
    do
        n = recv(c->ctx->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* One command on a connected context. NULL reply → the context is broken:
 * drop it and report the link down. Error replies are returned as they are. */
static rc_t conn_cmd(struct kv_redis *r, struct rconn *c, int argc, const char **argv,
                     redisReply **out)
{
    struct sigpipe_guard g;
    sigpipe_block(&g);
    *out = redisCommandArgv(c->ctx, argc, argv, NULL);
    int err = errno;
    sigpipe_restore(&g);
    if (*out)
        return RC_OK;
    if (c->ctx->err == REDIS_ERR_IO && (err == EAGAIN || err == EWOULDBLOCK))
        link_down(r, "command timed out");
    else
        link_down(r, c->ctx->errstr[0] ? c->ctx->errstr : "connection lost");
    conn_drop(c);
    return RC_UNAVAILABLE;
}

/* Setup command that must answer +OK. */
static rc_t conn_expect_ok(struct kv_redis *r, struct rconn *c, int argc, const char **argv)
{
    redisReply *rep;
    rc_t rc = conn_cmd(r, c, argc, argv, &rep);
    if (rc)
        return rc;
    if (rep->type != REDIS_REPLY_STATUS) {
        /* Typically WRONGPASS/NOAUTH or a db index the server does not have. */
        link_down(r, rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        conn_drop(c);
        rc = RC_UNAVAILABLE;
    }
    freeReplyObject(rep);
    return rc;
}

static rc_t conn_load_scripts(struct kv_redis *r, struct rconn *c)
{
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", script_src[i]};
        redisReply *rep;
        rc_t rc = conn_cmd(r, c, 3, argv, &rep);
        if (rc)
            return rc;
        bool ok = rep->type == REDIS_REPLY_STRING && rep->len == SHA_HEX;
        memcpy(c->sha[i], ok ? rep->str : "", ok ? SHA_HEX + 1 : 1);
        freeReplyObject(rep);
    }
    return RC_OK;
}

static rc_t conn_connect(struct kv_redis *r, struct rconn *c)
{
    struct timeval ct = {KV_REDIS_CONNECT_TIMEOUT_MS / 1000,
                         (KV_REDIS_CONNECT_TIMEOUT_MS % 1000) * 1000};
    struct timeval cmd = {KV_REDIS_COMMAND_TIMEOUT_MS / 1000,
                          (KV_REDIS_COMMAND_TIMEOUT_MS % 1000) * 1000};
    c->ctx = redisConnectWithTimeout(r->host, r->port, ct);
    if (!c->ctx || c->ctx->err) {
        link_down(r, c->ctx ? c->ctx->errstr : "out of memory");
        conn_drop(c);
        return RC_UNAVAILABLE;
    }
    redisSetTimeout(c->ctx, cmd);
    redisEnableKeepAlive(c->ctx);
    rc_t rc = RC_OK;
    if (r->pass && r->user)
        rc = conn_expect_ok(r, c, 3, (const char *[]){"AUTH", r->user, r->pass});
    else if (r->pass)
        rc = conn_expect_ok(r, c, 2, (const char *[]){"AUTH", r->pass});
    if (!rc && r->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->db);
        rc = conn_expect_ok(r, c, 2, (const char *[]){"SELECT", db});
    }
    if (!rc)
        rc = conn_load_scripts(r, c);
    return rc;
}

/* ---- pool ---- */

static void pool_put(struct kv_redis *r, struct rconn *c)
{
    pthread_mutex_lock(&r->mu);
    r->idle[r->nidle++] = c;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static rc_t pool_get(struct kv_redis *r, struct rconn **out)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += KV_REDIS_POOL_WAIT_MS / 1000;
    deadline.tv_nsec += (KV_REDIS_POOL_WAIT_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    struct rconn *c = NULL;
    pthread_mutex_lock(&r->mu);
    while (!r->nidle && r->total >= KV_REDIS_POOL_MAX)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &deadline) == ETIMEDOUT)
            break;
    if (r->nidle) {
        c = r->idle[--r->nidle];
    } else if (r->total < KV_REDIS_POOL_MAX) {
        c = xcalloc(1, sizeof *c);
        r->total++;
    }
    pthread_mutex_unlock(&r->mu);
    if (!c)
        return RC_UNAVAILABLE;
    if (c->ctx && !conn_alive(c))
        conn_drop(c);
    rc_t rc = c->ctx ? RC_OK : conn_connect(r, c);
    if (rc) {
        pool_put(r, c); /* keeps its slot; reconnects on its next use */
        return rc;
    }
    *out = c;
    return RC_OK;
}

/* ---- commands ---- */

/* Maps an error reply. Messages are matched anywhere: inside scripts older
 * servers wrap them ("ERR Error running script ...: WRONGTYPE ..."). */
static rc_t reply_error(const redisReply *rep)
{
    static const char *const conflict[] = {"WRONGTYPE", "not an integer", "overflow"};
    static const char *const unavailable[] = {"LOADING",  "BUSY",       "MASTERDOWN", "READONLY",
                                              "NOAUTH",   "WRONGPASS",  "MISCONF",    "OOM",
                                              "TRYAGAIN", "CLUSTERDOWN"};
    for (size_t i = 0; i < sizeof conflict / sizeof *conflict; i++)
        if (strstr(rep->str, conflict[i]))
            return RC_CONFLICT;
    for (size_t i = 0; i < sizeof unavailable / sizeof *unavailable; i++)
        if (strncmp(rep->str, unavailable[i], strlen(unavailable[i])) == 0)
            return RC_UNAVAILABLE;
    log_msg(LOG_ERROR, "kv_redis_error", "unexpected redis error: %.200s", rep->str);
    return RC_INTERNAL;
}

/* Runs one command on a pooled connection. On RC_OK *out is a non-error
 * reply the caller frees; error replies are mapped and freed here. */
static rc_t call(struct kv_redis *r, int argc, const char **argv, redisReply **out)
{
    struct rconn *c;
    *out = NULL;
    rc_t rc = pool_get(r, &c);
    if (rc)
        return rc;
    rc = conn_cmd(r, c, argc, argv, out);
    pool_put(r, c);
    if (rc)
        return rc;
    link_up(r);
    if ((*out)->type == REDIS_REPLY_ERROR) {
        rc = reply_error(*out);
        freeReplyObject(*out);
        *out = NULL;
    }
    return rc;
}

/* EVALSHA script key args...; EVAL when the server lost the script cache
 * (restart, SCRIPT FLUSH) or SCRIPT LOAD did not work. */
static rc_t call_script(struct kv_redis *r, enum script_id id, const char *key, int nargs,
                        const char **args, redisReply **out)
{
    const char *argv[4 + 8] = {"EVALSHA", NULL, "1", key};
    for (int i = 0; i < nargs; i++)
        argv[4 + i] = args[i];
    struct rconn *c;
    *out = NULL;
    rc_t rc = pool_get(r, &c);
    if (rc)
        return rc;
    if (c->sha[id][0]) {
        argv[1] = c->sha[id];
        rc = conn_cmd(r, c, 4 + nargs, argv, out);
        if (!rc && (*out)->type == REDIS_REPLY_ERROR && strncmp((*out)->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(*out);
            *out = NULL;
        }
    }
    if (!rc && !*out) {
        argv[0] = "EVAL";
        argv[1] = script_src[id];
        rc = conn_cmd(r, c, 4 + nargs, argv, out);
    }
    pool_put(r, c);
    if (rc)
        return rc;
    link_up(r);
    if ((*out)->type == REDIS_REPLY_ERROR) {
        rc = reply_error(*out);
        freeReplyObject(*out);
        *out = NULL;
    }
    return rc;
}

static rc_t unexpected(redisReply *rep)
{
    log_msg(LOG_ERROR, "kv_redis_error", "unexpected redis reply type %d", rep->type);
    return RC_INTERNAL;
}

/* ---- ops ---- */

static rc_t redis_get(struct kv *kv, const char *key, size_t klen, char **out)
{
    (void)klen;
    redisReply *rep;
    rc_t rc = call((struct kv_redis *)kv, 2, (const char *[]){"GET", key}, &rep);
    if (rc)
        return rc;
    if (rep->type == REDIS_REPLY_STRING)
        *out = xstrndup(rep->str, rep->len);
    else if (rep->type != REDIS_REPLY_NIL)
        rc = unexpected(rep);
    freeReplyObject(rep);
    return rc;
}

static rc_t redis_set(struct kv *kv, const char *key, size_t klen, const char *val, int64_t ttl_ms,
                      bool nx, bool *out_set)
{
    (void)klen;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    const char *argv[6] = {"SET", key, val};
    int argc = 3;
    if (ttl_ms > 0) {
        argv[argc++] = "PX";
        argv[argc++] = ttl;
    }
    if (nx)
        argv[argc++] = "NX";
    redisReply *rep;
    rc_t rc = call((struct kv_redis *)kv, argc, argv, &rep);
    if (rc)
        return rc;
    if (rep->type == REDIS_REPLY_STATUS)
        *out_set = true;
    else if (rep->type != REDIS_REPLY_NIL)
        rc = unexpected(rep);
    freeReplyObject(rep);
    return rc;
}

static rc_t redis_del(struct kv *kv, const char *key, size_t klen)
{
    (void)klen;
    redisReply *rep;
    rc_t rc = call((struct kv_redis *)kv, 2, (const char *[]){"DEL", key}, &rep);
    if (rc)
        return rc;
    if (rep->type != REDIS_REPLY_INTEGER)
        rc = unexpected(rep);
    freeReplyObject(rep);
    return rc;
}

static rc_t redis_getdel(struct kv *kv, const char *key, size_t klen, char **out)
{
    (void)klen;
    redisReply *rep;
    rc_t rc = call_script((struct kv_redis *)kv, SCRIPT_GETDEL, key, 0, NULL, &rep);
    if (rc)
        return rc;
    if (rep->type == REDIS_REPLY_STRING)
        *out = xstrndup(rep->str, rep->len);
    else if (rep->type != REDIS_REPLY_NIL)
        rc = unexpected(rep);
    freeReplyObject(rep);
    return rc;
}

static rc_t redis_get_deref(struct kv *kv, const char *guard, const char *ref_key,
                            const char *prefix, bool *out_guarded, char **out_ref, char **out_val)
{
    char limit[16];
    snprintf(limit, sizeof limit, "%d", KV_KEY_MAX);
    const char *args[] = {ref_key, prefix, limit};
    redisReply *rep;
    rc_t rc = call_script((struct kv_redis *)kv, SCRIPT_DEREF, guard, 3, args, &rep);
    if (rc)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || rep->elements > 3 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        rc = unexpected(rep);
    } else if (rep->element[0]->integer == 1) {
        *out_guarded = true;
    } else {
        for (size_t i = 1; i < rep->elements && !rc; i++) {
            const redisReply *e = rep->element[i];
            char **dst = i == 1 ? out_ref : out_val;
            if (e->type == REDIS_REPLY_STRING)
                *dst = xstrndup(e->str, e->len);
            else if (e->type != REDIS_REPLY_NIL)
                rc = unexpected(rep);
        }
    }
    freeReplyObject(rep);
    return rc;
}

static rc_t redis_incr(struct kv *kv, const char *key, size_t klen, int64_t ttl_ms,
                       enum kv_ttl_mode mode, int64_t *out)
{
    (void)klen;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 0));
    const char *args[] = {ttl, mode == KV_TTL_ALWAYS ? "1" : "0"};
    redisReply *rep;
    rc_t rc = call_script((struct kv_redis *)kv, SCRIPT_INCR, key, 2, args, &rep);
    if (rc)
        return rc;
    if (rep->type == REDIS_REPLY_INTEGER)
        *out = rep->integer;
    else
        rc = unexpected(rep);
    freeReplyObject(rep);
    return rc;
}

static rc_t redis_ttl(struct kv *kv, const char *key, size_t klen, int64_t *out_ms)
{
    (void)klen;
    redisReply *rep;
    rc_t rc = call((struct kv_redis *)kv, 2, (const char *[]){"PTTL", key}, &rep);
    if (rc)
        return rc;
    if (rep->type == REDIS_REPLY_INTEGER)
        *out_ms = rep->integer;
    else
        rc = unexpected(rep);
    freeReplyObject(rep);
    return rc;
}

static rc_t redis_window_hit(struct kv *kv, const char *key, size_t klen, int64_t now_ms,
                             int64_t window_ms, int64_t limit, bool *out_allowed,
                             int64_t *out_retry_after_ms)
{
    (void)klen;
    char cutoff[24], now[24], lim[24], ttl[24], uuid[UUID_STR_LEN + 1];
    char member[24 + 1 + UUID_STR_LEN + 1];
    snprintf(cutoff, sizeof cutoff, "%lld", (long long)(now_ms - window_ms));
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(lim, sizeof lim, "%lld", (long long)limit);
    snprintf(ttl, sizeof ttl, "%lld", (long long)(window_ms + 1000));
    uuid_v4(uuid);
    snprintf(member, sizeof member, "%s:%s", now, uuid);
    const char *args[] = {cutoff, now, lim, member, ttl};
    redisReply *rep;
    rc_t rc = call_script((struct kv_redis *)kv, SCRIPT_WINDOW, key, 5, args, &rep);
    if (rc)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        rc = unexpected(rep);
    } else {
        *out_allowed = rep->element[0]->integer == 1;
        /* Scores come back as text ("%.17g"); integral for our inputs. */
        double oldest = strtod(rep->element[1]->str, NULL);
        *out_retry_after_ms = *out_allowed ? 0 : (int64_t)oldest + window_ms - now_ms;
    }
    freeReplyObject(rep);
    return rc;
}

static rc_t redis_set_add(struct kv *kv, const char *key, size_t klen, const char *member,
                          int64_t ttl_ms, bool approx, int64_t *out_card)
{
    (void)klen;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 0));
    const char *args[] = {member, ttl};
    redisReply *rep;
    rc_t rc =
        call_script((struct kv_redis *)kv, approx ? SCRIPT_PFADD : SCRIPT_SADD, key, 2, args, &rep);
    if (rc)
        return rc;
    if (rep->type == REDIS_REPLY_INTEGER)
        *out_card = rep->integer;
    else
        rc = unexpected(rep);
    freeReplyObject(rep);
    return rc;
}

static rc_t redis_set_has(struct kv *kv, const char *key, size_t klen, const char *member,
                          bool *out)
{
    (void)klen;
    redisReply *rep;
    rc_t rc = call((struct kv_redis *)kv, 3, (const char *[]){"SISMEMBER", key, member}, &rep);
    if (rc)
        return rc;
    if (rep->type == REDIS_REPLY_INTEGER)
        *out = rep->integer == 1;
    else
        rc = unexpected(rep);
    freeReplyObject(rep);
    return rc;
}

static rc_t redis_ping(struct kv *kv)
{
    redisReply *rep;
    rc_t rc = call((struct kv_redis *)kv, 1, (const char *[]){"PING"}, &rep);
    if (rc)
        return rc;
    if (rep->type != REDIS_REPLY_STATUS)
        rc = unexpected(rep);
    freeReplyObject(rep);
    return rc;
}

static int redis_sweep(struct kv *kv)
{
    (void)kv; /* the server expires keys itself */
    return 0;
}

static void redis_close(struct kv *kv)
{
    struct kv_redis *r = (struct kv_redis *)kv;
    assert(r->nidle == r->total); /* no call may be in flight */
    for (int i = 0; i < r->nidle; i++) {
        conn_drop(r->idle[i]);
        free(r->idle[i]);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->host);
    free(r->user);
    xfree_secret_str(r->pass);
    free(r);
}

static const struct kv_ops redis_ops = {
    .name = "redis",
    .shared = true,
    .close = redis_close,
    .get = redis_get,
    .get_deref = redis_get_deref,
    .set = redis_set,
    .del = redis_del,
    .getdel = redis_getdel,
    .incr = redis_incr,
    .ttl = redis_ttl,
    .window_hit = redis_window_hit,
    .set_add = redis_set_add,
    .set_has = redis_set_has,
    .ping = redis_ping,
    .sweep = redis_sweep,
};

rc_t kv_redis_new(const char *url, struct kv **out)
{
    struct kv_redis *r = xcalloc(1, sizeof *r);
    r->base.ops = &redis_ops;
    atomic_init(&r->link, LINK_UNKNOWN);
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (parse_url(r, url) != RC_OK) {
        redis_close(&r->base);
        return RC_INVALID;
    }
    *out = &r->base;
    return RC_OK;
}
