/* kv dispatcher: chooses the backend from the URL, checks every argument
 * against the limits of kv.h, and forwards to the backend's const ops table
 * (kv_int.h). Backends therefore never see NULL keys, oversized values or
 * out-of-range TTLs. Holds no state of its own. */
#include "kv/kv.h"
#include "kv/kv_int.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/str.h"
#include "util/timeutil.h"

rc_t kv_open(const char *redis_url, struct kv **out)
{
    *out = NULL;
    if (!redis_url || !*redis_url)
        return kv_mem_new(out);
    if (str_istarts_with(redis_url, "rediss://")) {
        log_msg(LOG_ERROR, "kv_open_failed",
                "rediss:// is not supported: hiredis built without TLS");
        return RC_INVALID;
    }
    if (!str_istarts_with(redis_url, "redis://"))
        return RC_INVALID;
    return kv_redis_new(redis_url, out);
}

void kv_close(struct kv *kv)
{
    if (kv)
        kv->ops->close(kv);
}

bool kv_is_shared(const struct kv *kv)
{
    return kv->ops->shared;
}

/* strlen bounded by KV_KEY_MAX; 0 means invalid (NULL, empty or too long). */
static size_t key_len(const char *key)
{
    if (!key)
        return 0;
    size_t n = strnlen(key, KV_KEY_MAX + 1);
    return n > KV_KEY_MAX ? 0 : n;
}

static bool ttl_ok(int64_t ttl_ms)
{
    return ttl_ms <= KV_TTL_MAX_MS;
}

rc_t kv_get(struct kv *kv, const char *key, char **out)
{
    *out = NULL;
    size_t klen = key_len(key);
    if (!klen)
        return RC_INVALID;
    return kv->ops->get(kv, key, klen, out);
}

rc_t kv_get_deref(struct kv *kv, const char *guard, const char *ref_key, const char *prefix,
                  bool *out_guarded, char **out_ref, char **out_val)
{
    *out_guarded = false;
    *out_ref = *out_val = NULL;
    if (!key_len(guard) || !key_len(ref_key) || !prefix ||
        strnlen(prefix, KV_KEY_MAX) >= KV_KEY_MAX)
        return RC_INVALID;
    rc_t rc = kv->ops->get_deref(kv, guard, ref_key, prefix, out_guarded, out_ref, out_val);
    if (rc) {
        free(*out_ref);
        free(*out_val);
        *out_ref = *out_val = NULL;
        *out_guarded = false;
    }
    return rc;
}

static bool persisted(const struct kv *kv, const char *key)
{
    for (int i = 0; kv->persist && i < kv->n_persist_prefixes; i++)
        if (str_starts_with(key, kv->persist_prefixes[i]))
            return true;
    return false;
}

static int64_t expiry_of(int64_t ttl_ms)
{
    return ttl_ms > 0 ? time_now_us() + ttl_ms * 1000 : 0;
}

static rc_t set_common(struct kv *kv, const char *key, const char *val, int64_t ttl_ms, bool nx,
                       bool *out_set)
{
    *out_set = false;
    size_t klen = key_len(key);
    if (!klen || !val || strnlen(val, KV_VAL_MAX + 1) > KV_VAL_MAX || !ttl_ok(ttl_ms))
        return RC_INVALID;
    if (!persisted(kv, key))
        return kv->ops->set(kv, key, klen, val, ttl_ms, nx, out_set);
    if (!nx) {
        /* Durable first: a crash after it only leaves an entry memory would
         * have had too. */
        rc_t rc = kv->persist->put(kv->persist_ctx, key, val, expiry_of(ttl_ms));
        return rc ? RC_UNAVAILABLE : kv->ops->set(kv, key, klen, val, ttl_ms, false, out_set);
    }
    /* set-if-absent decides in memory (the single process owns the store),
     * then persists; a failed durable write undoes the memory write. */
    rc_t rc = kv->ops->set(kv, key, klen, val, ttl_ms, true, out_set);
    if (rc || !*out_set)
        return rc;
    if (kv->persist->put(kv->persist_ctx, key, val, expiry_of(ttl_ms)) != RC_OK) {
        (void)kv->ops->del(kv, key, klen);
        *out_set = false;
        return RC_UNAVAILABLE;
    }
    return RC_OK;
}

rc_t kv_set(struct kv *kv, const char *key, const char *val, int64_t ttl_ms)
{
    bool set;
    return set_common(kv, key, val, ttl_ms, false, &set);
}

#define KV_MANY_MAX 16

struct many {
    const char *keys[KV_MANY_MAX], *vals[KV_MANY_MAX];
    int64_t exp[KV_MANY_MAX];
    int nd; /* how many of the items are persisted keys */
};

/* Checks every item and collects the persisted ones. */
static rc_t many_collect(const struct kv *kv, const struct kv_item *items, int n, struct many *m)
{
    m->nd = 0;
    if (n < 0 || n > KV_MANY_MAX)
        return RC_INVALID;
    for (int i = 0; i < n; i++) {
        const char *k = items[i].key, *v = items[i].val;
        if (!key_len(k) || !v || strnlen(v, KV_VAL_MAX + 1) > KV_VAL_MAX ||
            !ttl_ok(items[i].ttl_ms))
            return RC_INVALID;
        if (persisted(kv, k)) {
            m->keys[m->nd] = k;
            m->vals[m->nd] = v;
            m->exp[m->nd++] = expiry_of(items[i].ttl_ms);
        }
    }
    return RC_OK;
}

static bool stages(const struct kv *kv)
{
    return kv->persist && kv->persist->put_many_tx;
}

rc_t kv_set_many_stage(struct kv *kv, void *tx, const struct kv_item *items, int n)
{
    struct many m;
    rc_t rc = many_collect(kv, items, n, &m);
    if (rc || !m.nd || !stages(kv))
        return rc;
    return kv->persist->put_many_tx(kv->persist_ctx, tx, m.keys, m.vals, m.exp, m.nd)
               ? RC_UNAVAILABLE
               : RC_OK;
}

rc_t kv_set_many_staged(struct kv *kv, const struct kv_item *items, int n)
{
    if (!stages(kv))
        return kv_set_many(kv, items, n);
    struct many m;
    rc_t rc = many_collect(kv, items, n, &m);
    for (int i = 0; !rc && i < n; i++) {
        bool set;
        rc = kv->ops->set(kv, items[i].key, key_len(items[i].key), items[i].val, items[i].ttl_ms,
                          false, &set);
    }
    return rc;
}

rc_t kv_set_many(struct kv *kv, const struct kv_item *items, int n)
{
    struct many mm;
    rc_t mrc = many_collect(kv, items, n, &mm);
    if (mrc)
        return mrc;
    const char *const *keys = mm.keys, *const *vals = mm.vals;
    const int64_t *exp = mm.exp;
    int nd = mm.nd;
    if (nd && kv->persist->put_many &&
        kv->persist->put_many(kv->persist_ctx, keys, vals, exp, nd) != RC_OK)
        return RC_UNAVAILABLE;
    for (int i = 0; i < n; i++) {
        bool set;
        rc_t rc;
        if (nd && kv->persist->put_many) /* durable side already written */
            rc = kv->ops->set(kv, items[i].key, key_len(items[i].key), items[i].val,
                              items[i].ttl_ms, false, &set);
        else
            rc = set_common(kv, items[i].key, items[i].val, items[i].ttl_ms, false, &set);
        if (rc)
            return rc;
    }
    return RC_OK;
}

rc_t kv_set_nx(struct kv *kv, const char *key, const char *val, int64_t ttl_ms, bool *out_set)
{
    return set_common(kv, key, val, ttl_ms, true, out_set);
}

rc_t kv_del(struct kv *kv, const char *key)
{
    size_t klen = key_len(key);
    if (!klen)
        return RC_INVALID;
    /* Durable first: a revoked session must never come back after a
     * restart because only its memory copy was deleted. */
    if (persisted(kv, key) && kv->persist->del(kv->persist_ctx, key) != RC_OK)
        return RC_UNAVAILABLE;
    return kv->ops->del(kv, key, klen);
}

rc_t kv_getdel(struct kv *kv, const char *key, char **out)
{
    *out = NULL;
    size_t klen = key_len(key);
    if (!klen)
        return RC_INVALID;
    if (persisted(kv, key) && kv->persist->del(kv->persist_ctx, key) != RC_OK)
        return RC_UNAVAILABLE;
    return kv->ops->getdel(kv, key, klen, out);
}

rc_t kv_incr(struct kv *kv, const char *key, int64_t ttl_ms, enum kv_ttl_mode mode, int64_t *out)
{
    *out = 0;
    size_t klen = key_len(key);
    if (!klen || !ttl_ok(ttl_ms) || (mode != KV_TTL_ON_CREATE && mode != KV_TTL_ALWAYS))
        return RC_INVALID;
    return kv->ops->incr(kv, key, klen, ttl_ms, mode, out);
}

rc_t kv_ttl(struct kv *kv, const char *key, int64_t *out_ms)
{
    *out_ms = -2;
    size_t klen = key_len(key);
    if (!klen)
        return RC_INVALID;
    return kv->ops->ttl(kv, key, klen, out_ms);
}

rc_t kv_window_hit(struct kv *kv, const char *key, int64_t now_ms, int64_t window_ms, int64_t limit,
                   bool *out_allowed, int64_t *out_retry_after_ms)
{
    *out_allowed = false;
    *out_retry_after_ms = 0;
    size_t klen = key_len(key);
    if (!klen || now_ms < 0 || now_ms > KV_TIME_MAX_MS || window_ms < 1 ||
        window_ms > KV_TTL_MAX_MS || limit < 1 || limit > KV_WINDOW_LIMIT_MAX)
        return RC_INVALID;
    return kv->ops->window_hit(kv, key, klen, now_ms, window_ms, limit, out_allowed,
                               out_retry_after_ms);
}

rc_t kv_set_add(struct kv *kv, const char *key, const char *member, int64_t ttl_ms, bool approx,
                int64_t *out_card)
{
    *out_card = 0;
    size_t klen = key_len(key);
    if (!klen || !member || strlen(member) > KV_VAL_MAX || ttl_ms > KV_TTL_MAX_MS)
        return RC_INVALID;
    return kv->ops->set_add(kv, key, klen, member, ttl_ms, approx, out_card);
}

rc_t kv_set_has(struct kv *kv, const char *key, const char *member, bool *out)
{
    *out = false;
    size_t klen = key_len(key);
    if (!klen || !member || strlen(member) > KV_VAL_MAX)
        return RC_INVALID;
    return kv->ops->set_has(kv, key, klen, member, out);
}

rc_t kv_ping(struct kv *kv)
{
    return kv->ops->ping(kv);
}

int kv_sweep(struct kv *kv)
{
    int n = kv->ops->sweep(kv);
    if (kv->persist)
        n += kv->persist->sweep(kv->persist_ctx);
    return n;
}

static void load_one(void *cb_ctx, const char *key, const char *val, int64_t expires_at_us)
{
    struct kv *kv = cb_ctx;
    int64_t ttl_ms = 0;
    if (expires_at_us) {
        ttl_ms = (expires_at_us - time_now_us()) / 1000;
        if (ttl_ms <= 0)
            return;
    }
    size_t klen = key_len(key);
    bool set;
    if (klen && strnlen(val, KV_VAL_MAX + 1) <= KV_VAL_MAX)
        (void)kv->ops->set(kv, key, klen, val, ttl_ms, false, &set);
}

rc_t kv_set_persistence(struct kv *kv, const struct kv_persist_ops *ops, void *ctx,
                        const char *const *prefixes, int n)
{
    if (kv->ops->shared || !ops)
        return RC_INVALID;
    rc_t rc = ops->load(ctx, load_one, kv);
    if (rc)
        return rc;
    kv->persist = ops;
    kv->persist_ctx = ctx;
    kv->persist_prefixes = prefixes;
    kv->n_persist_prefixes = n;
    return RC_OK;
}
