/* Private interface between the kv dispatcher (kv.c) and its backends
 * (kv_mem.c, kv_redis.c). Not for use outside src/kv/.
 *
 * kv.c validates every argument against the limits in kv.h before calling
 * an op, so backends may assume: key and val are non-NULL NUL-terminated
 * strings within KV_KEY_MAX / KV_VAL_MAX, klen == strlen(key),
 * ttl_ms <= KV_TTL_MAX_MS (<= 0 meaning "no expiry"), and for window_hit
 * 0 <= now_ms <= KV_TIME_MAX_MS, 1 <= window_ms <= KV_TTL_MAX_MS,
 * 1 <= limit <= KV_WINDOW_LIMIT_MAX, and set members are non-NULL strings
 * within KV_VAL_MAX. Each backend struct embeds struct kv
 * as its first member. */
#ifndef AUTHD_KV_KV_INT_H
#define AUTHD_KV_KV_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/kv.h"

/* In-process store: 2^KV_MEM_SHARD_BITS shards with one mutex each, each
 * starting with KV_MEM_MIN_BUCKETS buckets (power of two). */
#define KV_MEM_SHARD_BITS 6
#define KV_MEM_SHARDS (1 << KV_MEM_SHARD_BITS)
#define KV_MEM_MIN_BUCKETS 16

/* Redis backend: up to KV_REDIS_POOL_MAX connections per struct kv; a
 * caller waits KV_REDIS_POOL_WAIT_MS for a free one, then RC_UNAVAILABLE. */
#define KV_REDIS_POOL_MAX 32
#define KV_REDIS_POOL_WAIT_MS 2000
#define KV_REDIS_CONNECT_TIMEOUT_MS 1000
#define KV_REDIS_COMMAND_TIMEOUT_MS 1000
#define KV_REDIS_DEFAULT_PORT 6379
#define KV_REDIS_DB_MAX 1000000

struct kv_ops {
    const char *name; /* "memory" / "redis" */
    bool shared;
    void (*close)(struct kv *kv);
    rc_t (*get)(struct kv *kv, const char *key, size_t klen, char **out);
    /* kv_get_deref; outputs zeroed by kv.c, prefix shorter than KV_KEY_MAX. */
    rc_t (*get_deref)(struct kv *kv, const char *guard, const char *ref_key, const char *prefix,
                      bool *out_guarded, char **out_ref, char **out_val);
    /* nx: only when absent; *out_set tells whether it stored. */
    rc_t (*set)(struct kv *kv, const char *key, size_t klen, const char *val, int64_t ttl_ms,
                bool nx, bool *out_set);
    rc_t (*del)(struct kv *kv, const char *key, size_t klen);
    rc_t (*getdel)(struct kv *kv, const char *key, size_t klen, char **out);
    rc_t (*incr)(struct kv *kv, const char *key, size_t klen, int64_t ttl_ms, enum kv_ttl_mode mode,
                 int64_t *out);
    rc_t (*ttl)(struct kv *kv, const char *key, size_t klen, int64_t *out_ms);
    rc_t (*window_hit)(struct kv *kv, const char *key, size_t klen, int64_t now_ms,
                       int64_t window_ms, int64_t limit, bool *out_allowed,
                       int64_t *out_retry_after_ms);
    rc_t (*set_add)(struct kv *kv, const char *key, size_t klen, const char *member, int64_t ttl_ms,
                    bool approx, int64_t *out_card);
    rc_t (*set_has)(struct kv *kv, const char *key, size_t klen, const char *member, bool *out);
    rc_t (*ping)(struct kv *kv);
    int (*sweep)(struct kv *kv);
};

struct kv {
    const struct kv_ops *ops;
    /* Write-through persistence (in-process store only; kv_set_persistence). */
    const struct kv_persist_ops *persist;
    void *persist_ctx;
    const char *const *persist_prefixes;
    int n_persist_prefixes;
};

/* Constructors used by kv_open. kv_redis_new takes the full redis:// URL
 * and returns RC_INVALID for anything it cannot parse; it does not connect. */
rc_t kv_mem_new(struct kv **out) WUR;
rc_t kv_redis_new(const char *url, struct kv **out) WUR;

#endif
