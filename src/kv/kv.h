/* Ephemeral key-value state (data-model §10): rate limits, lockout counters,
 * OTP and OAuth state, session cache. Two backends behind one API: an
 * in-process store (sharded locks, lazy expiry plus kv_sweep) and Redis
 * (hiredis, reconnecting). Values are byte strings without NUL.
 *
 * TTLs are milliseconds; ttl_ms <= 0 means "no expiry". Every operation is
 * atomic per key on both backends. Errors: RC_UNAVAILABLE when Redis cannot
 * be reached, times out (KV command timeout 1 s) or all pooled connections
 * stay busy (callers decide to fail open or closed), RC_INVALID for bad
 * arguments (NULL/empty key, sizes over the limits below), RC_CONFLICT when
 * the key holds the other kind of value (string vs. window log) or kv_incr
 * meets a non-integer value or would overflow. Thread-safe: one struct kv
 * is shared by all threads. See docs/kv.md. */
#ifndef AUTHD_KV_KV_H
#define AUTHD_KV_KV_H

#include <stdbool.h>
#include <stdint.h>

#include "util/rc.h"

struct kv;

/* Limits checked by every call before it reaches a backend (RC_INVALID).
 * Raw request paths end up in rate-limit keys, so KV_KEY_MAX exceeds any
 * request head the HTTP layer accepts (APP__MAX_HEADER_BYTES <= 64 KiB).
 * The window limit bounds the size of one log; now_ms stays exact as a
 * Lua number. */
#define KV_KEY_MAX (128 * 1024)
#define KV_VAL_MAX (1024 * 1024)
#define KV_TTL_MAX_MS (100LL * 365 * 86400 * 1000) /* ttl_ms and window_ms */
#define KV_WINDOW_LIMIT_MAX 100000
#define KV_TIME_MAX_MS (1LL << 53)
#define KV_SET_MAX 4096 /* members of one in-process set */

enum kv_ttl_mode {
    KV_TTL_ON_CREATE, /* INCR sets the TTL only when the result is 1 */
    KV_TTL_ALWAYS     /* INCR re-applies the TTL on every increment */
};

/* redis_url NULL or "" → in-process store. Otherwise redis://[:pw@]host[:port][/db]
 * (rediss:// → RC_INVALID: this build's hiredis has no TLS). Also accepted:
 * an ACL user (redis://user:pw@host), percent-encoded user/password, an
 * IPv6 host in brackets; a query string or fragment → RC_INVALID. Opening
 * Redis does not require the server to be up; operations report
 * RC_UNAVAILABLE and the backend reconnects on the next call. */
rc_t kv_open(const char *redis_url, struct kv **out) WUR;
/* NULL ok. No other thread may be inside a kv_* call on it. */
void kv_close(struct kv *kv);
bool kv_is_shared(const struct kv *kv); /* true for Redis */

/* *out is malloc'd (caller frees) or NULL when the key is absent/expired.
 * *out is set on every path (NULL on error). */
rc_t kv_get(struct kv *kv, const char *key, char **out) WUR;
/* One hop of indirection, in one round trip on Redis (a script): when
 * `guard` exists (any kind) *out_guarded is set and nothing else is read;
 * otherwise *out_ref = GET ref_key and, when present, *out_val = GET of
 * prefix followed by *out_ref (absent when that key would be longer than
 * KV_KEY_MAX). For token validation: the logout blocklist entry, the access
 * binding and the session state it points to. Outputs are set on every
 * path (NULL/false on error); the caller frees the strings. */
rc_t kv_get_deref(struct kv *kv, const char *guard, const char *ref_key, const char *prefix,
                  bool *out_guarded, char **out_ref, char **out_val) WUR;
/* Stores a string, replacing any value and TTL (ttl_ms <= 0: none). */
rc_t kv_set(struct kv *kv, const char *key, const char *val, int64_t ttl_ms) WUR;

struct kv_item {
    const char *key;
    const char *val;
    int64_t ttl_ms;
};
/* kv_set of several keys. Not atomic across keys; with write-through
 * persistence the durable ones are written in one durable batch first (one
 * transaction instead of one per key). Stops at the first failure. */
rc_t kv_set_many(struct kv *kv, const struct kv_item *items, int n) WUR;
/* kv_set_many split around the caller's own database transaction, so a
 * change and the KV state it implies commit together (one transaction, and
 * no window where one is durable without the other). Before the commit,
 * kv_set_many_stage checks the items and writes the durable copies of the
 * persisted keys through `tx` (the caller's open write transaction, handed
 * to kv_persist_ops.put_many_tx); after the commit, kv_set_many_staged
 * writes the store's own copies. Without such a durable side (Redis, or no
 * persistence installed) staging only checks and kv_set_many_staged is
 * kv_set_many. Call kv_set_many_staged only after a successful stage and
 * commit, with the same items. */
rc_t kv_set_many_stage(struct kv *kv, void *tx, const struct kv_item *items, int n) WUR;
rc_t kv_set_many_staged(struct kv *kv, const struct kv_item *items, int n) WUR;
/* Sets only when absent; *out_set tells whether it did. */
rc_t kv_set_nx(struct kv *kv, const char *key, const char *val, int64_t ttl_ms, bool *out_set) WUR;
rc_t kv_del(struct kv *kv, const char *key) WUR;
/* Atomic get-and-delete; *out NULL when absent. */
rc_t kv_getdel(struct kv *kv, const char *key, char **out) WUR;
/* Atomic increment by 1 with TTL handling; *out is the new value. An absent
 * key counts from 0. ttl_ms <= 0 leaves the key's TTL as it is. */
rc_t kv_incr(struct kv *kv, const char *key, int64_t ttl_ms, enum kv_ttl_mode mode,
             int64_t *out) WUR;
/* Remaining TTL in ms: -2 absent, -1 no expiry. Works on both value kinds. */
rc_t kv_ttl(struct kv *kv, const char *key, int64_t *out_ms) WUR;

/* Sliding-log rate limit (data-model §10.5), atomic: drop entries with
 * score <= now_ms - window_ms; if count >= limit → *out_allowed=false and
 * *out_retry_after_ms = oldest + window_ms - now_ms (the request is not
 * recorded); else record member "{now_ms}:{uuid}" with score now_ms, set the
 * key's TTL to window_ms + 1000 and *out_allowed=true (*out_retry_after_ms=0).
 * Needs 1 <= limit <= KV_WINDOW_LIMIT_MAX, 1 <= window_ms <= KV_TTL_MAX_MS
 * and 0 <= now_ms <= KV_TIME_MAX_MS ("no limit" is the caller's business).
 * A log never holds more than the largest limit used with its key. */
rc_t kv_window_hit(struct kv *kv, const char *key, int64_t now_ms, int64_t window_ms, int64_t limit,
                   bool *out_allowed, int64_t *out_retry_after_ms) WUR;

/* Sets of strings (data-model §10.3). kv_set_add adds member to the set at
 * key and re-applies ttl_ms to the whole set (<= 0: leaves its TTL), in one
 * atomic step; *out_card is the number of distinct members afterwards.
 * approx selects a HyperLogLog on Redis (PFADD/PFCOUNT: a distinct count
 * within ~1%, members not retrievable, so kv_set_has does not apply to
 * it). The in-process store keeps an exact set either way, of at most
 * KV_SET_MAX members: further new members are counted as absent and not
 * stored (a flood cannot grow it without bound). Not for keys under
 * write-through persistence. RC_CONFLICT when key holds another kind. */
rc_t kv_set_add(struct kv *kv, const char *key, const char *member, int64_t ttl_ms, bool approx,
                int64_t *out_card) WUR;
/* Membership in a set written by kv_set_add(approx=false); an absent key
 * is an empty set. */
rc_t kv_set_has(struct kv *kv, const char *key, const char *member, bool *out) WUR;

/* Write-through persistence for the in-process store (data-model §10.7):
 * keys starting with one of `prefixes` survive a restart because every
 * set/del of them is first written to durable storage through `ops`
 * (implemented above this layer, on the kv_entries table). A failed
 * durable write fails the operation and leaves memory unchanged. Callers
 * must not hold the database writer when they touch such keys. */
struct kv_persist_ops {
    /* expires_at_us: wall-clock expiry, 0 = none */
    rc_t (*put)(void *ctx, const char *key, const char *val, int64_t expires_at_us);
    rc_t (*del)(void *ctx, const char *key);
    /* Optional: several puts in one durable unit (NULL → put one by one). */
    rc_t (*put_many)(void *ctx, const char *const *keys, const char *const *vals,
                     const int64_t *expires_at_us, int n);
    /* Optional: put_many inside the caller's open transaction tx (see
     * kv_set_many_stage; NULL → staging writes nothing durable and
     * kv_set_many_staged persists as kv_set_many does). */
    rc_t (*put_many_tx)(void *ctx, void *tx, const char *const *keys, const char *const *vals,
                        const int64_t *expires_at_us, int n);
    /* Calls cb for every live entry (used once, at kv_set_persistence). */
    rc_t (*load)(void *ctx,
                 void (*cb)(void *cb_ctx, const char *key, const char *val, int64_t expires_at_us),
                 void *cb_ctx);
    /* Deletes expired durable entries; returns how many. */
    int (*sweep)(void *ctx);
};

/* Installs persistence and loads the durable entries into memory. Only for
 * the in-process store (RC_INVALID on Redis). prefixes, ops and ctx must
 * outlive kv. */
rc_t kv_set_persistence(struct kv *kv, const struct kv_persist_ops *ops, void *ctx,
                        const char *const *prefixes, int n) WUR;

/* Readiness: PING on Redis; always RC_OK in process. */
rc_t kv_ping(struct kv *kv) WUR;
/* Drops expired entries of the in-process store (no-op on Redis). Returns
 * how many were removed. Called every 60 s by the job runner. */
int kv_sweep(struct kv *kv);

#endif
