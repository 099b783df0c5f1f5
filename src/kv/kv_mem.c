/* In-process kv backend (data-model §10.7): a hash table split into
 * KV_MEM_SHARDS shards, each with its own mutex and chained buckets.
 *
 * Invariants:
 * - A key lives in shard (top KV_MEM_SHARD_BITS of h) and bucket (h & (nbuckets - 1)) where h
 *   is SipHash-2-4 of the key under a per-store random seed, so clients
 *   cannot aim many keys at one chain.
 * - Every access to a shard holds its mutex; no lock is ever held while
 *   taking another, so there is no lock order to respect.
 * - expires_us is absolute on the monotonic clock (0 = never). An entry
 *   with expires_us <= now is invisible: lookups unlink expired entries
 *   they walk over, and kv_sweep drops the rest.
 * - A window log is a sorted array of timestamps; it only grows when a hit
 *   is accepted, which needs n < limit, so n <= the largest limit used.
 * - A set holds at most KV_SET_MAX members, found by a linear scan of their
 *   SipHash values (sets here are per-user and small).
 * - Values may be secrets: they are wiped when freed. */
#include "kv/kv_int.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "util/uuid.h"

enum ent_type { ENT_STR, ENT_LOG, ENT_SET };

struct member {
    uint64_t hash;
    char *p; /* owned, NUL-terminated */
    size_t len;
};

struct ent {
    struct ent *next;
    uint64_t hash;
    int64_t expires_us; /* monotonic; 0 = no expiry */
    enum ent_type type;
    union {
        struct {
            char *p; /* owned, NUL-terminated */
            size_t len;
        } str;
        struct {
            int64_t *ts; /* owned ring: n ascending entries from ts[head] */
            size_t head, n, cap;
        } log;
        struct {
            struct member *m; /* owned, unordered; found by hash then bytes */
            size_t n, cap;
        } set;
    } u;
    size_t klen;
    char key[]; /* klen bytes + NUL */
};

struct shard {
    pthread_mutex_t mu;
    struct ent **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
};

/* Padding keeps the mutexes of neighbouring shards off one cache line. */
union shard_slot {
    struct shard s;
    char pad[128];
};

struct kv_mem {
    struct kv base;
    uint64_t seed[2];
    union shard_slot shards[KV_MEM_SHARDS];
};

/* ---- SipHash-2-4 (Aumasson & Bernstein), 64-bit output ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load64_le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash(const uint64_t k[2], const char *data, size_t len)
{
    const unsigned char *in = (const unsigned char *)data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ k[0], v1 = 0x646f72616e646f6dULL ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ k[0], v3 = 0x7465646279746573ULL ^ k[1];
    const unsigned char *end = in + (len & ~(size_t)7);
    for (; in != end; in += 8) {
        uint64_t m = load64_le(in);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- entries ---- */

static struct ent *ent_new_str(uint64_t h, const char *key, size_t klen, const char *val,
                               size_t vlen, int64_t expires_us)
{
    struct ent *e = xcalloc(1, sizeof *e + klen + 1);
    e->hash = h;
    e->expires_us = expires_us;
    e->type = ENT_STR;
    e->u.str.p = xstrndup(val, vlen);
    e->u.str.len = vlen;
    e->klen = klen;
    memcpy(e->key, key, klen);
    return e;
}

static void ent_free(struct ent *e)
{
    if (!e)
        return;
    if (e->type == ENT_STR) {
        xfree_secret(e->u.str.p, e->u.str.len);
    } else if (e->type == ENT_SET) {
        for (size_t i = 0; i < e->u.set.n; i++)
            free(e->u.set.m[i].p);
        free(e->u.set.m);
    } else {
        free(e->u.log.ts);
    }
    free(e);
}

static void ent_free_list(struct ent *e)
{
    while (e) {
        struct ent *next = e->next;
        ent_free(e);
        e = next;
    }
}

static bool expired(const struct ent *e, int64_t now_us)
{
    return e->expires_us != 0 && e->expires_us <= now_us;
}

static int64_t expiry_for(int64_t now_us, int64_t ttl_ms)
{
    return ttl_ms > 0 ? now_us + ttl_ms * 1000 : 0;
}

/* ---- shards ---- */

static struct shard *shard_of(struct kv_mem *m, uint64_t h)
{
    return &m->shards[h >> (64 - KV_MEM_SHARD_BITS)].s;
}

static void shard_grow(struct shard *s)
{
    size_t nb = s->nbuckets * 2;
    struct ent **b = xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct ent *e = s->buckets[i];
        while (e) {
            struct ent *next = e->next;
            size_t j = e->hash & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

/* Locks the key's shard and returns the link that points at the key's
 * entry, or the NULL link at the end of its chain when absent (insert
 * there). Expired entries met on the way are unlinked onto *dead, which the
 * caller frees after unlocking. Grows the table first when it is full, so
 * an insert at the returned link stays valid. */
static struct ent **lock_find(struct kv_mem *m, uint64_t h, const char *key, size_t klen,
                              int64_t now_us, struct ent **dead)
{
    struct shard *s = shard_of(m, h);
    pthread_mutex_lock(&s->mu);
    if (s->count >= s->nbuckets)
        shard_grow(s);
    struct ent **pp = &s->buckets[h & (s->nbuckets - 1)];
    while (*pp) {
        struct ent *e = *pp;
        if (expired(e, now_us)) {
            *pp = e->next;
            e->next = *dead;
            *dead = e;
            s->count--;
            continue;
        }
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return pp;
        pp = &e->next;
    }
    return pp;
}

static void unlock_free(struct kv_mem *m, uint64_t h, struct ent *dead)
{
    pthread_mutex_unlock(&shard_of(m, h)->mu);
    ent_free_list(dead);
}

static void link_new(struct kv_mem *m, uint64_t h, struct ent **pp, struct ent *e)
{
    e->next = NULL;
    *pp = e;
    shard_of(m, h)->count++;
}

static struct ent *unlink_at(struct kv_mem *m, uint64_t h, struct ent **pp)
{
    struct ent *e = *pp;
    *pp = e->next;
    e->next = NULL;
    shard_of(m, h)->count--;
    return e;
}

/* ---- ops ---- */

static rc_t mem_get(struct kv *kv, const char *key, size_t klen, char **out)
{
    struct kv_mem *m = (struct kv_mem *)kv;
    uint64_t h = siphash(m->seed, key, klen);
    struct ent *dead = NULL;
    rc_t rc = RC_OK;
    struct ent **pp = lock_find(m, h, key, klen, time_mono_us(), &dead);
    if (*pp && (*pp)->type != ENT_STR)
        rc = RC_CONFLICT;
    else if (*pp)
        *out = xstrndup((*pp)->u.str.p, (*pp)->u.str.len);
    unlock_free(m, h, dead);
    return rc;
}

static rc_t mem_get_deref(struct kv *kv, const char *guard, const char *ref_key, const char *prefix,
                          bool *out_guarded, char **out_ref, char **out_val)
{
    char *g = NULL;
    rc_t rc = mem_get(kv, guard, strlen(guard), &g);
    free(g);
    if (rc == RC_CONFLICT || (rc == RC_OK && g)) {
        *out_guarded = true; /* exists, whatever its kind */
        return RC_OK;
    }
    if (rc)
        return rc;
    if ((rc = mem_get(kv, ref_key, strlen(ref_key), out_ref)) != RC_OK || !*out_ref)
        return rc;
    char key[KV_KEY_MAX + 1];
    int n = snprintf(key, sizeof key, "%s%s", prefix, *out_ref);
    if (n < 0 || (size_t)n > KV_KEY_MAX)
        return RC_OK;
    return mem_get(kv, key, (size_t)n, out_val);
}

static rc_t mem_set(struct kv *kv, const char *key, size_t klen, const char *val, int64_t ttl_ms,
                    bool nx, bool *out_set)
{
    struct kv_mem *m = (struct kv_mem *)kv;
    uint64_t h = siphash(m->seed, key, klen);
    int64_t now = time_mono_us();
    /* Copy the value before taking the lock; free what we drop after. */
    struct ent *fresh = ent_new_str(h, key, klen, val, strlen(val), expiry_for(now, ttl_ms));
    struct ent *dead = NULL;
    struct ent **pp = lock_find(m, h, key, klen, now, &dead);
    if (!*pp) {
        link_new(m, h, pp, fresh);
        *out_set = true;
    } else if (!nx) {
        struct ent *old = *pp;
        fresh->next = old->next;
        *pp = fresh;
        old->next = dead;
        dead = old;
        *out_set = true;
    } else {
        fresh->next = dead;
        dead = fresh;
    }
    unlock_free(m, h, dead);
    return RC_OK;
}

static rc_t mem_del(struct kv *kv, const char *key, size_t klen)
{
    struct kv_mem *m = (struct kv_mem *)kv;
    uint64_t h = siphash(m->seed, key, klen);
    struct ent *dead = NULL;
    struct ent **pp = lock_find(m, h, key, klen, time_mono_us(), &dead);
    if (*pp) {
        struct ent *e = unlink_at(m, h, pp);
        e->next = dead;
        dead = e;
    }
    unlock_free(m, h, dead);
    return RC_OK;
}

static rc_t mem_getdel(struct kv *kv, const char *key, size_t klen, char **out)
{
    struct kv_mem *m = (struct kv_mem *)kv;
    uint64_t h = siphash(m->seed, key, klen);
    struct ent *dead = NULL;
    rc_t rc = RC_OK;
    struct ent **pp = lock_find(m, h, key, klen, time_mono_us(), &dead);
    if (*pp && (*pp)->type != ENT_STR) {
        rc = RC_CONFLICT;
    } else if (*pp) {
        struct ent *e = unlink_at(m, h, pp);
        *out = e->u.str.p; /* hand the buffer over instead of copying it */
        e->u.str.p = NULL;
        e->u.str.len = 0;
        e->next = dead;
        dead = e;
    }
    unlock_free(m, h, dead);
    return rc;
}

/* Increments the decimal string held by e; RC_CONFLICT if it is none. */
static rc_t incr_value(struct ent *e, int64_t *out)
{
    int64_t v;
    if (e->type != ENT_STR || !str_parse_i64(e->u.str.p, &v) || v == INT64_MAX)
        return RC_CONFLICT;
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", (long long)(v + 1));
    xfree_secret(e->u.str.p, e->u.str.len);
    e->u.str.p = xstrndup(num, (size_t)n);
    e->u.str.len = (size_t)n;
    *out = v + 1;
    return RC_OK;
}

static rc_t mem_incr(struct kv *kv, const char *key, size_t klen, int64_t ttl_ms,
                     enum kv_ttl_mode mode, int64_t *out)
{
    struct kv_mem *m = (struct kv_mem *)kv;
    uint64_t h = siphash(m->seed, key, klen);
    int64_t now = time_mono_us();
    struct ent *dead = NULL;
    rc_t rc = RC_OK;
    struct ent **pp = lock_find(m, h, key, klen, now, &dead);
    if (!*pp) {
        link_new(m, h, pp, ent_new_str(h, key, klen, "1", 1, expiry_for(now, ttl_ms)));
        *out = 1;
    } else {
        rc = incr_value(*pp, out);
        if (rc == RC_OK && ttl_ms > 0 && (mode == KV_TTL_ALWAYS || *out == 1))
            (*pp)->expires_us = expiry_for(now, ttl_ms);
    }
    unlock_free(m, h, dead);
    return rc;
}

static rc_t mem_ttl(struct kv *kv, const char *key, size_t klen, int64_t *out_ms)
{
    struct kv_mem *m = (struct kv_mem *)kv;
    uint64_t h = siphash(m->seed, key, klen);
    int64_t now = time_mono_us();
    struct ent *dead = NULL;
    struct ent **pp = lock_find(m, h, key, klen, now, &dead);
    if (!*pp)
        *out_ms = -2;
    else if ((*pp)->expires_us == 0)
        *out_ms = -1;
    else
        *out_ms = ((*pp)->expires_us - now + 999) / 1000; /* > 0: entry not expired */
    unlock_free(m, h, dead);
    return RC_OK;
}

/* The log is a ring so that hits sliding out of the window cost O(1),
 * not a move of every live hit (a limit near KV_WINDOW_LIMIT_MAX holds
 * ~800 KB of them). */
static int64_t *log_at(struct ent *e, size_t i)
{
    return &e->u.log.ts[(e->u.log.head + i) % e->u.log.cap];
}

/* Number of entries <= v (entries are ascending). */
static size_t log_upper_bound(struct ent *e, int64_t v)
{
    size_t lo = 0, hi = e->u.log.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (*log_at(e, mid) <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void log_grow(struct ent *e, int64_t limit)
{
    size_t cap = e->u.log.cap ? e->u.log.cap * 2 : 4;
    if (cap > (size_t)limit)
        cap = (size_t)limit;
    int64_t *ts = xmalloc(cap * sizeof *ts);
    for (size_t i = 0; i < e->u.log.n; i++)
        ts[i] = *log_at(e, i);
    free(e->u.log.ts);
    e->u.log.ts = ts;
    e->u.log.cap = cap;
    e->u.log.head = 0;
}

/* The §10.5 step on a log entry; the caller holds the shard lock. */
static void log_hit(struct ent *e, int64_t now_ms, int64_t window_ms, int64_t limit,
                    bool *out_allowed, int64_t *out_retry_after_ms)
{
    size_t drop = log_upper_bound(e, now_ms - window_ms);
    if (drop) {
        e->u.log.head = (e->u.log.head + drop) % e->u.log.cap;
        e->u.log.n -= drop;
    }
    if ((int64_t)e->u.log.n >= limit) {
        *out_allowed = false;
        *out_retry_after_ms = *log_at(e, 0) + window_ms - now_ms;
        return;
    }
    if (e->u.log.n == e->u.log.cap)
        log_grow(e, limit);
    /* Callers' clocks may disagree slightly: insert in order, not at the
     * end (the shift is over the few later entries only). */
    size_t at = log_upper_bound(e, now_ms);
    for (size_t i = e->u.log.n; i > at; i--)
        *log_at(e, i) = *log_at(e, i - 1);
    *log_at(e, at) = now_ms;
    e->u.log.n++;
    *out_allowed = true;
    *out_retry_after_ms = 0;
}

static rc_t mem_window_hit(struct kv *kv, const char *key, size_t klen, int64_t now_ms,
                           int64_t window_ms, int64_t limit, bool *out_allowed,
                           int64_t *out_retry_after_ms)
{
    struct kv_mem *m = (struct kv_mem *)kv;
    uint64_t h = siphash(m->seed, key, klen);
    int64_t now = time_mono_us();
    struct ent *dead = NULL;
    rc_t rc = RC_OK;
    struct ent **pp = lock_find(m, h, key, klen, now, &dead);
    if (!*pp) {
        struct ent *e = xcalloc(1, sizeof *e + klen + 1);
        e->hash = h;
        e->type = ENT_LOG;
        e->klen = klen;
        memcpy(e->key, key, klen);
        link_new(m, h, pp, e);
    }
    struct ent *e = *pp;
    if (e->type != ENT_LOG) {
        rc = RC_CONFLICT;
    } else {
        log_hit(e, now_ms, window_ms, limit, out_allowed, out_retry_after_ms);
        if (*out_allowed)
            e->expires_us = expiry_for(now, window_ms + 1000);
    }
    unlock_free(m, h, dead);
    return rc;
}

static bool set_find(const struct ent *e, uint64_t mh, const char *member, size_t mlen)
{
    for (size_t i = 0; i < e->u.set.n; i++) {
        const struct member *x = &e->u.set.m[i];
        if (x->hash == mh && x->len == mlen && memcmp(x->p, member, mlen) == 0)
            return true;
    }
    return false;
}

static rc_t mem_set_add(struct kv *kv, const char *key, size_t klen, const char *member,
                        int64_t ttl_ms, bool approx, int64_t *out_card)
{
    (void)approx; /* exact here */
    struct kv_mem *m = (struct kv_mem *)kv;
    uint64_t h = siphash(m->seed, key, klen);
    size_t mlen = strlen(member);
    uint64_t mh = siphash(m->seed, member, mlen);
    char *copy = xstrndup(member, mlen);
    int64_t now = time_mono_us();
    struct ent *dead = NULL;
    rc_t rc = RC_OK;
    struct ent **pp = lock_find(m, h, key, klen, now, &dead);
    if (!*pp) {
        struct ent *e = xcalloc(1, sizeof *e + klen + 1);
        e->hash = h;
        e->type = ENT_SET;
        e->klen = klen;
        memcpy(e->key, key, klen);
        link_new(m, h, pp, e);
    }
    struct ent *e = *pp;
    if (e->type != ENT_SET) {
        rc = RC_CONFLICT;
    } else {
        if (!set_find(e, mh, member, mlen) && e->u.set.n < KV_SET_MAX) {
            if (e->u.set.n == e->u.set.cap) {
                e->u.set.cap = e->u.set.cap ? e->u.set.cap * 2 : 4;
                e->u.set.m = xrealloc(e->u.set.m, e->u.set.cap * sizeof *e->u.set.m);
            }
            e->u.set.m[e->u.set.n++] = (struct member){mh, copy, mlen};
            copy = NULL;
        }
        if (ttl_ms > 0)
            e->expires_us = expiry_for(now, ttl_ms);
        *out_card = (int64_t)e->u.set.n;
    }
    unlock_free(m, h, dead);
    free(copy);
    return rc;
}

static rc_t mem_set_has(struct kv *kv, const char *key, size_t klen, const char *member, bool *out)
{
    struct kv_mem *m = (struct kv_mem *)kv;
    uint64_t h = siphash(m->seed, key, klen);
    size_t mlen = strlen(member);
    uint64_t mh = siphash(m->seed, member, mlen);
    struct ent *dead = NULL;
    rc_t rc = RC_OK;
    struct ent **pp = lock_find(m, h, key, klen, time_mono_us(), &dead);
    if (*pp && (*pp)->type != ENT_SET)
        rc = RC_CONFLICT;
    else if (*pp)
        *out = set_find(*pp, mh, member, mlen);
    unlock_free(m, h, dead);
    return rc;
}

static rc_t mem_ping(struct kv *kv)
{
    (void)kv;
    return RC_OK;
}

static int mem_sweep(struct kv *kv)
{
    struct kv_mem *m = (struct kv_mem *)kv;
    int removed = 0;
    for (size_t i = 0; i < KV_MEM_SHARDS; i++) {
        struct shard *s = &m->shards[i].s;
        struct ent *dead = NULL;
        int64_t now = time_mono_us();
        pthread_mutex_lock(&s->mu);
        for (size_t b = 0; b < s->nbuckets; b++) {
            struct ent **pp = &s->buckets[b];
            while (*pp) {
                struct ent *e = *pp;
                if (!expired(e, now)) {
                    pp = &e->next;
                    continue;
                }
                *pp = e->next;
                e->next = dead;
                dead = e;
                s->count--;
                removed++;
            }
        }
        pthread_mutex_unlock(&s->mu);
        ent_free_list(dead);
    }
    return removed;
}

static void mem_close(struct kv *kv)
{
    struct kv_mem *m = (struct kv_mem *)kv;
    for (size_t i = 0; i < KV_MEM_SHARDS; i++) {
        struct shard *s = &m->shards[i].s;
        for (size_t b = 0; b < s->nbuckets; b++)
            ent_free_list(s->buckets[b]);
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(m);
}

static const struct kv_ops mem_ops = {
    .name = "memory",
    .shared = false,
    .close = mem_close,
    .get = mem_get,
    .get_deref = mem_get_deref,
    .set = mem_set,
    .del = mem_del,
    .getdel = mem_getdel,
    .incr = mem_incr,
    .ttl = mem_ttl,
    .window_hit = mem_window_hit,
    .set_add = mem_set_add,
    .set_has = mem_set_has,
    .ping = mem_ping,
    .sweep = mem_sweep,
};

rc_t kv_mem_new(struct kv **out)
{
    struct kv_mem *m = xcalloc(1, sizeof *m);
    m->base.ops = &mem_ops;
    rand_bytes(m->seed, sizeof m->seed);
    for (size_t i = 0; i < KV_MEM_SHARDS; i++) {
        struct shard *s = &m->shards[i].s;
        pthread_mutex_init(&s->mu, NULL);
        s->nbuckets = KV_MEM_MIN_BUCKETS;
        s->buckets = xcalloc(s->nbuckets, sizeof *s->buckets);
    }
    *out = &m->base;
    return RC_OK;
}
