/* kv_entries-backed persistence of the durable KV families (see kvpersist.h). */
#include "svc/kvpersist.h"
#include "store/kv_entries.h"

const char *const kvpersist_prefixes[] = {
    "session:", "session_access:", "blocklist:jti:", "action_token_used:"};
const int kvpersist_nprefixes = 4;

static rc_t put(void *ctx, const char *key, const char *val, int64_t expires_at_us)
{
    return kv_entries_put(ctx, key, val, expires_at_us);
}

static rc_t del(void *ctx, const char *key)
{
    return kv_entries_del(ctx, key);
}

static rc_t put_many(void *ctx, const char *const *keys, const char *const *vals,
                     const int64_t *expires_at_us, int n)
{
    return kv_entries_put_many(ctx, keys, vals, expires_at_us, n);
}

static rc_t put_many_tx(void *ctx, void *tx, const char *const *keys, const char *const *vals,
                        const int64_t *expires_at_us, int n)
{
    (void)ctx;
    return kv_entries_put_many_on(tx, keys, vals, expires_at_us, n);
}

static rc_t load(void *ctx, void (*cb)(void *, const char *, const char *, int64_t), void *cb_ctx)
{
    return kv_entries_load(ctx, cb, cb_ctx);
}

static int sweep(void *ctx)
{
    return kv_entries_sweep(ctx);
}

const struct kv_persist_ops kvpersist_ops = {.put = put,
                                             .del = del,
                                             .put_many = put_many,
                                             .put_many_tx = put_many_tx,
                                             .load = load,
                                             .sweep = sweep};
