/* Audit events: turns a caller's struct audit_event into a storable row
 * (validation, canonical forms, metadata sanitisation), writes it through
 * src/store/audit.c, and serves the history page with its cursor.
 *
 * Invariant: everything bound to the INSERT is valid for both backends
 * before the statement runs (uuid text, inet text, jsonb-compatible JSON,
 * UTF-8 without U+0000, varchar(128) lengths), so an audit row inside a
 * caller's transaction cannot abort that transaction for data reasons.
 *
 * Detached writes go through the group-commit writer when one is running
 * for that database (audit_writer_start): they are prepared in the caller
 * and queued, and one thread commits whatever has accumulated in one
 * transaction. Four indexed INSERTs per event in a transaction of their
 * own cost a refresh more than a third of its throughput (bench/RESULTS.md);
 * api-admin §9.2 lets these rows land after the response. Readers of the
 * audit table call audit_flush first, so a request sees the rows of every
 * request answered before it on this instance. */
#define _GNU_SOURCE /* memmem */
#include "svc/audit.h"
#include "crypto/enc.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "util/unicat.h"
#include "util/thread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDACTED "***REDACTED***"

/* ---- text ------------------------------------------------------------- */

/* s[0..n) as a new NUL-terminated string that PostgreSQL accepts as text:
 * valid UTF-8 is kept, U+0000 becomes U+FFFD, and input that is not UTF-8
 * is decoded byte by byte as Latin-1 (lossless, always valid). */
static char *text_clean(const char *s, size_t n, size_t *out_len)
{
    bool utf8 = utf8_valid(s, n);
    char *o = xmalloc(n * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b == 0) {
            memcpy(o + k, "\xef\xbf\xbd", 3);
            k += 3;
        } else if (b < 0x80 || utf8) {
            o[k++] = (char)b;
        } else {
            o[k++] = (char)(0xc0 | (b >> 6));
            o[k++] = (char)(0x80 | (b & 0x3f));
        }
    }
    o[k] = '\0';
    if (out_len)
        *out_len = k;
    return o;
}

/* Trimmed (ASCII whitespace) and cleaned copy, or NULL when s is NULL or
 * blank. */
static char *text_field(const char *s, size_t *out_len)
{
    struct str t = str_trim(str_of(s));
    if (t.len == 0)
        return NULL;
    return text_clean(t.p, t.len, out_len);
}

/* Python's str.isspace() set, which is what \s matches in a str regex. */
static bool is_space_cp(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Whole-string match of [^@\s]+@[^@\s]+\.[^@\s]+ on valid UTF-8: no
 * whitespace, exactly one '@' with something before it, and a '.' in the
 * domain with something on both sides. */
static bool looks_like_email(const char *s, size_t n)
{
    size_t at = SIZE_MAX;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = utf8_decode(s + i, &cp);
        if (len <= 0 || is_space_cp(cp))
            return false;
        if (cp == '@') {
            if (at != SIZE_MAX)
                return false;
            at = i;
        }
        i += (size_t)len;
    }
    if (at == SIZE_MAX || at == 0)
        return false;
    const char *d = s + at + 1;
    size_t dn = n - at - 1;
    for (size_t i = 1; i + 1 < dn; i++)
        if (d[i] == '.')
            return true;
    return false;
}

/* ---- metadata --------------------------------------------------------- */

static const char *const sensitive[] = {"api_key", "apikey",   "authorization", "cookie", "email",
                                        "otp",     "password", "secret",        "token"};

/* key.strip().lower().replace("-", "_") contains a sensitive word. Trimming
 * cannot change a substring test for words without spaces, so it is
 * skipped. Python's lower() maps exactly two non-ASCII characters to
 * something containing ASCII letters: U+212A KELVIN SIGN → "k", and U+0130
 * → "i" + U+0307, which can never complete a word (no word ends in 'i'), so
 * only the Kelvin sign needs mapping; other non-ASCII bytes never match. */
static bool key_sensitive(const char *k, size_t n)
{
    char small[256];
    char *norm = n < sizeof small ? small : xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)k[i];
        if (b == 0xe2 && i + 2 < n && (unsigned char)k[i + 1] == 0x84 &&
            (unsigned char)k[i + 2] == 0xaa) {
            norm[o++] = 'k';
            i += 2;
            continue;
        }
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b + 32);
        else if (b == '-')
            b = '_';
        norm[o++] = (char)b;
    }
    bool hit = false;
    for (size_t i = 0; i < sizeof sensitive / sizeof *sensitive && !hit; i++)
        hit = memmem(norm, o, sensitive[i], strlen(sensitive[i])) != NULL;
    if (norm != small)
        free(norm);
    return hit;
}

static json_t *san_string(const char *s, size_t n)
{
    size_t len;
    char *c = text_clean(s, n, &len);
    json_t *j = looks_like_email(c, len) ? json_string(REDACTED) : json_stringn(c, len);
    free(c);
    return j ? j : json_null();
}

static json_t *san_value(const json_t *v, int depth);

static json_t *san_object(const json_t *obj, int depth)
{
    json_t *out = json_object();
    const char *key;
    size_t key_len;
    json_t *val;
    json_object_keylen_foreach((json_t *)obj, key, key_len, val)
    {
        size_t clen;
        char *ckey = text_clean(key, key_len, &clen);
        json_t *nv = key_sensitive(key, key_len) ? json_string(REDACTED) : san_value(val, depth);
        json_object_setn_new(out, ckey, clen, nv);
        free(ckey);
    }
    return out;
}

static json_t *san_value(const json_t *v, int depth)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (depth >= AUDIT_METADATA_MAX_DEPTH)
            return json_null();
        return san_object(v, depth + 1);
    case JSON_ARRAY: {
        if (depth >= AUDIT_METADATA_MAX_DEPTH)
            return json_null();
        json_t *out = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) json_array_append_new(out, san_value(e, depth + 1));
        return out;
    }
    case JSON_STRING:
        return san_string(json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
    case JSON_REAL:
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        return json_deep_copy(v);
    }
    return json_null();
}

json_t *audit_metadata_sanitise(const json_t *metadata)
{
    if (!metadata || !json_is_object(metadata) || json_object_size(metadata) == 0)
        return NULL;
    return san_object(metadata, 1);
}

/* ---- identifiers and addresses ---------------------------------------- */

static bool uuid_field(const char *s, char out[UUID_STR_LEN + 1])
{
    return s && uuid_parse(s, strlen(s), out);
}

/* Removes every non-overlapping occurrence of w (left to right), like
 * Python's str.replace(w, ""). */
static void remove_all(char *s, const char *w)
{
    size_t wn = strlen(w), o = 0;
    for (size_t i = 0; s[i];) {
        if (strncmp(s + i, w, wn) == 0) {
            i += wn;
            continue;
        }
        s[o++] = s[i++];
    }
    s[o] = '\0';
}

/* Python uuid.UUID(s) without int()'s own leniency (sign, '_', spaces). */
static bool python_uuid(const char *s, char out[UUID_STR_LEN + 1])
{
    char *t = xstrdup(s);
    remove_all(t, "urn:");
    remove_all(t, "uuid:");
    size_t n = strlen(t), a = 0;
    while (a < n && (t[a] == '{' || t[a] == '}'))
        a++;
    while (n > a && (t[n - 1] == '{' || t[n - 1] == '}'))
        n--;
    char hex[33];
    size_t k = 0;
    bool ok = true;
    for (size_t i = a; i < n && ok; i++) {
        if (t[i] == '-')
            continue;
        if (k == 32)
            ok = false;
        else
            hex[k++] = t[i];
    }
    free(t);
    /* uuid_parse checks the 32 characters are hex. */
    return ok && k == 32 && uuid_parse(hex, 32, out);
}

/* uuid5(NAMESPACE_URL, name): SHA-1 over namespace bytes || name, version
 * and variant bits set (RFC 4122 §4.3). */
static bool uuid_v5_url(const char *name, size_t n, char out[UUID_STR_LEN + 1])
{
    static const unsigned char ns_url[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                             0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, ns_url, sizeof ns_url) == 1 &&
              EVP_DigestUpdate(ctx, name, n) == 1 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 &&
              mdlen >= 16;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return false;
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    static const char hexd[] = "0123456789abcdef";
    char hex[32];
    for (int i = 0; i < 16; i++) {
        hex[2 * i] = hexd[md[i] >> 4];
        hex[2 * i + 1] = hexd[md[i] & 15];
    }
    return uuid_parse(hex, 32, out);
}

bool audit_correlation_uuid(const char *s, char out[UUID_STR_LEN + 1])
{
    if (!s || !*s)
        return false;
    return python_uuid(s, out) || uuid_v5_url(s, strlen(s), out);
}

/* Canonical text of a bare IPv4/IPv6 address (inet_ntop: dotted quad,
 * compressed lower-case IPv6, IPv4-mapped kept as IPv6). */
static bool ip_field(const char *s, char out[INET6_ADDRSTRLEN])
{
    struct str t = str_trim(str_of(s));
    char tmp[INET6_ADDRSTRLEN + 1];
    unsigned char a[16];
    if (t.len == 0 || t.len >= sizeof tmp)
        return false;
    memcpy(tmp, t.p, t.len);
    tmp[t.len] = '\0';
    if (inet_pton(AF_INET, tmp, a) == 1)
        return inet_ntop(AF_INET, a, out, INET6_ADDRSTRLEN) != NULL;
    if (inet_pton(AF_INET6, tmp, a) == 1)
        return inet_ntop(AF_INET6, a, out, INET6_ADDRSTRLEN) != NULL;
    return false;
}

const char *audit_actor_name(enum audit_actor a)
{
    switch (a) {
    case AUDIT_ACTOR_USER:
        return "user";
    case AUDIT_ACTOR_SERVICE:
        return "service";
    case AUDIT_ACTOR_ADMIN:
        return "admin";
    case AUDIT_ACTOR_SYSTEM:
        break;
    }
    return "system";
}

/* ---- writing ---------------------------------------------------------- */

struct prep {
    char id[UUID_STR_LEN + 1], actor[UUID_STR_LEN + 1], target[UUID_STR_LEN + 1];
    char corr[UUID_STR_LEN + 1], ip[INET6_ADDRSTRLEN];
    char *event_type, *target_type, *user_agent, *failure_reason, *metadata;
    struct audit_row row;
};

static void prep_free(struct prep *p)
{
    free(p->event_type);
    free(p->target_type);
    free(p->user_agent);
    free(p->failure_reason);
    free(p->metadata);
}

/* Cuts s (valid UTF-8, len bytes) to at most max bytes on a code point
 * boundary. */
static void cap_utf8(char *s, size_t len, size_t max)
{
    if (len <= max)
        return;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    s[n] = '\0';
}

static char *metadata_text(const struct audit_event *ev)
{
    json_t *san = audit_metadata_sanitise(ev->metadata);
    char *txt = san ? json_dumps(san, JSON_COMPACT) : NULL;
    json_decref(san);
    if (txt && strlen(txt) > AUDIT_METADATA_MAX_BYTES) {
        struct log_line l;
        log_begin(&l, LOG_WARNING, "audit_metadata_dropped", ev->correlation_id);
        log_str(&l, "event_type", ev->event_type);
        log_int(&l, "metadata_bytes", (int64_t)strlen(txt));
        log_end(&l);
        free(txt);
        txt = NULL;
    }
    return txt;
}

static rc_t prepare(const struct audit_event *ev, int64_t now_us, struct prep *p)
{
    memset(p, 0, sizeof *p);
    size_t len = 0;
    if (ev->metadata && !json_is_object(ev->metadata) && !json_is_null(ev->metadata))
        return RC_INVALID;
    p->event_type = text_field(ev->event_type, &len);
    if (!p->event_type || utf8_len(p->event_type, len) > AUDIT_EVENT_TYPE_MAX)
        return RC_INVALID;
    p->target_type = text_field(ev->target_type, &len);
    if (p->target_type && utf8_len(p->target_type, len) > AUDIT_TARGET_TYPE_MAX)
        return RC_INVALID;
    p->failure_reason = text_field(ev->failure_reason, NULL);
    p->user_agent = text_field(ev->user_agent, &len);
    if (p->user_agent)
        cap_utf8(p->user_agent, len, AUDIT_USER_AGENT_MAX);
    p->metadata = metadata_text(ev);
    uuid_v7(now_us / 1000, p->id);
    p->row = (struct audit_row){
        .id = p->id,
        .event_type = p->event_type,
        .actor_id = uuid_field(ev->actor_id, p->actor) ? p->actor : NULL,
        .actor_type = audit_actor_name(ev->actor_type),
        .target_id = uuid_field(ev->target_id, p->target) ? p->target : NULL,
        .target_type = p->target_type,
        .ip_address = ip_field(ev->ip_address, p->ip) ? p->ip : NULL,
        .user_agent = p->user_agent,
        .correlation_id = audit_correlation_uuid(ev->correlation_id, p->corr) ? p->corr : NULL,
        .success = ev->success,
        .failure_reason = p->failure_reason,
        .metadata_json = p->metadata,
        .created_at_us = now_us,
    };
    return RC_OK;
}

rc_t audit_write(struct db_conn *c, const struct audit_event *ev)
{
    if (!c || !ev)
        return RC_INVALID;
    struct prep p;
    rc_t rc = prepare(ev, time_now_us(), &p);
    if (rc == RC_OK) {
        bool in_tx = db_in_tx(c);
        rc = audit_store_insert(c, &p.row);
        /* Outside a transaction the PostgreSQL driver retries a statement
         * once after a broken connection; a duplicate of our fresh v4 id
         * then means the first attempt was applied. */
        if (rc == RC_CONFLICT && !in_tx)
            rc = RC_OK;
    }
    prep_free(&p);
    return rc;
}

void audit_log_write_failed(const struct audit_event *ev, rc_t rc, const char *detail)
{
    char err[LOG_FIELD_MAX];
    bool more = detail && *detail;
    snprintf(err, sizeof err, "%s%s%s", rc_str(rc), more ? ": " : "", more ? detail : "");
    struct log_line l;
    log_begin(&l, LOG_ERROR, "audit_write_failed", ev ? ev->correlation_id : NULL);
    log_str(&l, "event_type", ev ? ev->event_type : NULL);
    log_str(&l, "actor_type", ev ? audit_actor_name(ev->actor_type) : NULL);
    if (ev)
        log_bool(&l, "success", ev->success);
    else
        log_raw(&l, "success", "null");
    log_str(&l, "error", err);
    log_end(&l);
}

/* ---- group-commit writer ------------------------------------------------ */

struct aq_item {
    struct aq_item *next;
    struct prep p;
    enum audit_actor actor_type;
    char *corr_raw; /* the request's correlation id as logged */
    int group;      /* items of one detached_many call share a group number */
};

struct audit_writer {
    struct db *db;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work; /* items queued, flush wanted or stop */
    pthread_cond_t done; /* `written` advanced */
    struct aq_item *head, *tail;
    size_t queued;
    uint64_t enqueued, written; /* items ever queued / ever finished */
    int flush_waiters, next_group;
    bool stop;
    uint64_t dropped;       /* rows refused since the last summary line */
    int64_t dropped_log_us; /* when that line was written */
};

static _Atomic(struct audit_writer *) g_writer;

static void item_log_failed(const struct aq_item *it, rc_t rc, const char *detail)
{
    struct audit_event ev = {.event_type = it->p.event_type,
                             .actor_type = it->actor_type,
                             .success = it->p.row.success,
                             .correlation_id = it->corr_raw};
    audit_log_write_failed(&ev, rc, detail);
}

/* One transaction for the whole list; when it fails, each request's group
 * again on its own, so one bad row costs only its own request's rows. */
static void write_batch(struct db *db, struct aq_item *list)
{
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(db, DB_WRITE, &c);
    if (rc == RC_OK)
        rc = db_begin(c);
    for (struct aq_item *it = list; rc == RC_OK && it; it = it->next)
        rc = audit_store_insert(c, &it->p.row);
    if (rc == RC_OK)
        rc = db_commit(c);
    else if (c && db_in_tx(c))
        db_rollback(c);
    if (rc == RC_OK || !c) {
        if (rc)
            for (struct aq_item *it = list; it; it = it->next)
                item_log_failed(it, rc, NULL);
        db_release(c);
        return;
    }
    for (struct aq_item *g = list; g;) {
        struct aq_item *end = g;
        while (end->next && end->next->group == g->group)
            end = end->next;
        rc = db_begin(c);
        for (struct aq_item *it = g; rc == RC_OK; it = it->next) {
            rc = audit_store_insert(c, &it->p.row);
            if (it == end)
                break;
        }
        if (rc == RC_OK)
            rc = db_commit(c);
        else if (db_in_tx(c))
            db_rollback(c);
        for (struct aq_item *it = g; rc; it = it->next) {
            item_log_failed(it, rc, db_conn_error(c));
            if (it == end)
                break;
        }
        g = end->next;
    }
    db_release(c);
}

static void *writer_main(void *arg)
{
    struct audit_writer *w = arg;
    thread_set_name("audit-writer");
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->work, &w->mu);
        if (!w->head)
            break; /* stopping and drained */
        /* Linger so the rows of concurrent requests share one commit,
         * unless someone waits for them or the batch is already large. */
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_nsec += AUDIT_LINGER_MS * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        while (!w->stop && !w->flush_waiters && w->queued < AUDIT_BATCH_ROWS)
            if (pthread_cond_timedwait(&w->work, &w->mu, &dl) == ETIMEDOUT)
                break;
        struct aq_item *list = w->head;
        size_t n = w->queued;
        w->head = w->tail = NULL;
        w->queued = 0;
        pthread_mutex_unlock(&w->mu);
        write_batch(w->db, list);
        while (list) {
            struct aq_item *next = list->next;
            prep_free(&list->p);
            free(list->corr_raw);
            free(list);
            list = next;
        }
        pthread_mutex_lock(&w->mu);
        w->written += n;
        pthread_cond_broadcast(&w->done);
        /* Overload drops are summarised (one line a second at most): a
         * line per dropped row would turn an audit backlog into a log
         * flood. */
        int64_t now = time_mono_us();
        if (w->dropped && now - w->dropped_log_us >= 1000000) {
            struct log_line l;
            log_begin(&l, LOG_ERROR, "audit_rows_dropped", NULL);
            log_int(&l, "count", (int64_t)w->dropped);
            log_int(&l, "queue_max", AUDIT_QUEUE_MAX);
            log_end(&l);
            w->dropped = 0;
            w->dropped_log_us = now;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

rc_t audit_writer_start(struct db *db)
{
    if (!db || atomic_load(&g_writer))
        return RC_INVALID;
    struct audit_writer *w = xcalloc(1, sizeof *w);
    w->db = db;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->work, &ca);
    pthread_cond_init(&w->done, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->work);
        pthread_cond_destroy(&w->done);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return RC_INTERNAL;
    }
    atomic_store(&g_writer, w);
    return RC_OK;
}

void audit_writer_stop(void)
{
    struct audit_writer *w = atomic_exchange(&g_writer, NULL);
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

void audit_flush(struct db *db)
{
    struct audit_writer *w = atomic_load(&g_writer);
    if (!w || w->db != db)
        return;
    pthread_mutex_lock(&w->mu);
    uint64_t target = w->enqueued;
    w->flush_waiters++;
    pthread_cond_signal(&w->work);
    while (w->written < target)
        pthread_cond_wait(&w->done, &w->mu);
    w->flush_waiters--;
    pthread_mutex_unlock(&w->mu);
}

/* Queues n prepared events as one group; false when no writer runs for db
 * (the caller writes synchronously). Events that fail preparation are
 * logged here and left out. */
static bool enqueue(struct db *db, const struct audit_event *const *evs, int n)
{
    struct audit_writer *w = atomic_load(&g_writer);
    if (!w || w->db != db)
        return false;
    struct aq_item *first = NULL, **link = &first, *last = NULL;
    int64_t now = time_now_us();
    int count = 0;
    for (int i = 0; i < n; i++) {
        struct aq_item *it = xcalloc(1, sizeof *it);
        rc_t rc = evs[i] ? prepare(evs[i], now, &it->p) : RC_INVALID;
        if (rc) {
            audit_log_write_failed(evs[i], rc, NULL);
            prep_free(&it->p);
            free(it);
            continue;
        }
        /* prepare() points the row at the prep's own buffers, which
         * move with the item: nothing borrowed from the caller stays. */
        it->actor_type = evs[i]->actor_type;
        it->corr_raw = evs[i]->correlation_id ? xstrdup(evs[i]->correlation_id) : NULL;
        *link = last = it;
        link = &it->next;
        count++;
    }
    if (!first)
        return true;
    pthread_mutex_lock(&w->mu);
    if (w->queued + (size_t)count > AUDIT_QUEUE_MAX) {
        w->dropped += (uint64_t)count;
        pthread_mutex_unlock(&w->mu);
        for (struct aq_item *it = first; it;) {
            struct aq_item *next = it->next;
            prep_free(&it->p);
            free(it->corr_raw);
            free(it);
            it = next;
        }
        return true;
    }
    int group = w->next_group++;
    for (struct aq_item *it = first; it; it = it->next)
        it->group = group;
    if (w->tail)
        w->tail->next = first;
    else
        w->head = first;
    w->tail = last;
    size_t before = w->queued;
    w->queued += (size_t)count;
    w->enqueued += (uint64_t)count;
    /* Wake the writer only when it has a reason to stop waiting: the first
     * row (it sleeps on an empty queue) or a full batch (it lingers). A
     * signal per row would wake it once per request for nothing while it
     * lingers: a context switch per row on the hot paths. */
    if (before == 0 || (before < AUDIT_BATCH_ROWS && w->queued >= AUDIT_BATCH_ROWS))
        pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    return true;
}

void audit_write_detached(struct db *db, const struct audit_event *ev)
{
    if (db && ev && enqueue(db, &ev, 1))
        return;
    struct db_conn *c = NULL;
    rc_t rc = db && ev ? db_acquire(db, DB_WRITE, &c) : RC_INVALID;
    if (rc == RC_OK)
        rc = audit_write(c, ev);
    if (rc)
        audit_log_write_failed(ev, rc, c ? db_conn_error(c) : NULL);
    db_release(c);
}

void audit_write_detached_many(struct db *db, const struct audit_event *const *evs, int n)
{
    if (db && n > 0 && enqueue(db, evs, n))
        return;
    struct db_conn *c = NULL;
    rc_t rc = db && n > 0 ? db_acquire(db, DB_WRITE, &c) : RC_INVALID;
    if (rc == RC_OK)
        rc = db_begin(c);
    for (int i = 0; rc == RC_OK && i < n; i++)
        rc = audit_write(c, evs[i]);
    if (rc == RC_OK)
        rc = db_commit(c);
    else if (c)
        db_rollback(c);
    if (rc)
        for (int i = 0; i < n; i++)
            audit_log_write_failed(evs[i], rc, c ? db_conn_error(c) : NULL);
    db_release(c);
}

/* ---- history and cursor ------------------------------------------------ */

char *audit_cursor_encode(int64_t created_at_us, const char *id)
{
    char canon[UUID_STR_LEN + 1], ts[TIME_STR_MAX], json[160];
    if (!uuid_field(id, canon))
        return NULL;
    time_format(created_at_us, TIME_STYLE_O, ts);
    int n = snprintf(json, sizeof json, "{\"created_at\":\"%s\",\"id\":\"%s\"}", ts, canon);
    return crypto_b64_encode_new(CRYPTO_B64_URL_PAD, json, (size_t)n);
}

/* ISO 8601 date-time with or without offset (none = UTC), or a bare date
 * (midnight UTC). */
static bool parse_iso(const char *s, int64_t *out_us)
{
    char tmp[64];
    size_t n = strlen(s);
    if (n == 0 || n + 10 >= sizeof tmp)
        return false;
    if (time_parse(s, out_us))
        return true;
    snprintf(tmp, sizeof tmp, "%s%s", s, n == 10 ? "T00:00:00Z" : "Z");
    return time_parse(tmp, out_us);
}

rc_t audit_cursor_decode(const char *cursor, struct audit_keyset *out)
{
    size_t n = cursor ? strlen(cursor) : 0;
    unsigned char raw[CRYPTO_B64_DECODED_MAX(AUDIT_CURSOR_MAX)];
    size_t len = 0;
    if (n == 0 || n > AUDIT_CURSOR_MAX ||
        crypto_b64_decode(CRYPTO_B64_URL, cursor, n, raw, sizeof raw, &len) != RC_OK)
        return RC_INVALID;
    json_t *j = json_loadb((const char *)raw, len, 0, NULL);
    const char *ts = json_string_value(json_object_get(j, "created_at"));
    const char *id = json_string_value(json_object_get(j, "id"));
    struct audit_keyset k;
    bool ok = ts && id && parse_iso(ts, &k.created_at_us) && uuid_field(id, k.id);
    json_decref(j);
    if (!ok)
        return RC_INVALID;
    *out = k;
    return RC_OK;
}

void audit_page_free(struct audit_page *p)
{
    if (!p)
        return;
    json_decref(p->items);
    free(p->next_cursor);
    memset(p, 0, sizeof *p);
}

rc_t audit_history(struct db *db, const char *user_id, const char *cursor, int limit,
                   enum audit_item_shape shape, struct audit_page *out)
{
    memset(out, 0, sizeof *out);
    char uid[UUID_STR_LEN + 1];
    struct audit_keyset after, last;
    bool paged = cursor && *cursor;
    if (!db || !uuid_field(user_id, uid) || limit < 1 || limit > AUDIT_PAGE_MAX)
        return RC_INVALID;
    if (paged && audit_cursor_decode(cursor, &after) != RC_OK)
        return RC_INVALID;
    audit_flush(db);
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(db, DB_READ, &c);
    if (rc == RC_OK)
        rc = audit_store_user_history(c, uid, paged ? &after : NULL, limit, shape, &out->items,
                                      &out->has_more, &last);
    db_release(c);
    if (rc == RC_OK && out->has_more) {
        out->next_cursor = audit_cursor_encode(last.created_at_us, last.id);
        if (!out->next_cursor)
            rc = RC_INTERNAL;
    }
    if (rc)
        audit_page_free(out);
    return rc;
}
