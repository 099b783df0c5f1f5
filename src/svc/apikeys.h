/* API keys (api-core §10, §6.8; api-admin §8.1–§8.3; data-model §5): key
 * creation, listing, revocation and introspection, with their audit rows
 * (api-admin §9.4) and domain events (api_key.created / api_key.revoked).
 * No HTTP types.
 *
 * Raw keys are `sk_` + base64url(32 random bytes) (46 characters). Only the
 * SHA-256 hex digest and the first 8 characters are stored; the raw key
 * leaves this module once, in the creation result.
 *
 * Introspection cache. /auth/introspect sits on the path of every
 * downstream request, so answers come from the KV store when they can: key
 * `apikey:<sha256 hex>` holds a snapshot of the row (id, user_id, scope,
 * service, expires_at, revoked_at, the owner's status), and the verdict
 * (revoked → expired → owner inactive/deleted → valid) is evaluated against
 * the clock at every read. A snapshot lives at most APIKEYS_CACHE_TTL_MS
 * and, for a key with an expiry, never past it; keys already expired and
 * unknown keys are not cached. Fills use set-if-absent and invalidation
 * writes over the entry (the revoked snapshot, or a short "ask the
 * database" tombstone), so a fill computed from a row read before a revoke
 * committed cannot replace the invalidation. With Redis every instance
 * shares the cache, so a revoke on one instance is seen by all at once;
 * without Redis there is one instance and its in-process store.
 *
 * Blocking: every function except apikeys_introspect_fast touches the
 * database; call them from a worker, not from an event loop.
 * Thread-safe. */
#ifndef AUTHD_SVC_APIKEYS_H
#define AUTHD_SVC_APIKEYS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db/db.h"
#include "kv/kv.h"
#include "store/api_keys.h"
#include "svc/accounts.h" /* struct req_meta */
#include "util/arena.h"
#include "util/rc.h"

#define APIKEYS_RAW_LEN 46               /* "sk_" + 43 */
#define APIKEYS_FIELD_MAX 128            /* name, service, scope: code points */
#define APIKEYS_CACHE_TTL_MS (60 * 1000) /* snapshot and tombstone lifetime */
#define APIKEYS_CACHE_PREFIX "apikey:"   /* + sha256 hex */

struct apikeys_deps {
    struct db *db;
    struct kv *kv;
};

/* Who asks, for audit rows: the admin principal. actor_id NULL for the
 * development bootstrap key (stored as a NULL actor, api-admin §9.2). */
struct apikeys_actor {
    const char *actor_id;
    const struct req_meta *meta;
};

/* Which API a call comes from: /auth/apikeys* (user-bound keys, user_id in
 * audit metadata and webhook data) or /admin/api-keys (service keys). */
enum apikeys_api { APIKEYS_API_AUTH, APIKEYS_API_ADMIN };

/* Creation input as received (untrimmed; NULL = absent or null). */
struct apikeys_create_in {
    const char *name;
    const char *service; /* ignored for APIKEYS_API_ADMIN */
    const char *scope;
    const char *user_id; /* canonical uuid or NULL; ignored for APIKEYS_API_ADMIN */
    bool has_expires_at;
    int64_t expires_at_us;
};

struct apikeys_created {
    struct api_key_row row; /* strings in the caller's arena */
    char *api_key;          /* the raw key, in the caller's arena (shown once) */
};

/* api-core §10.2 / api-admin §8.2. RC_OK with *out filled. RC_INVALID:
 * *out_detail is "Scope is required." or "Name is required." (400
 * invalid_api_key). RC_NOT_FOUND: user_id names no user, or a soft-deleted
 * one (404 invalid_user). Other codes: database failures. Audit
 * api_key.created (success and failure rows) and event api_key.created. */
rc_t apikeys_create(const struct apikeys_deps *d, const struct apikeys_actor *who,
                    enum apikeys_api api, const struct apikeys_create_in *in, struct arena *a,
                    struct apikeys_created *out, const char **out_detail) WUR;

/* GET /auth/apikeys (api-core §10.3): every matching key, newest first.
 * Audit api_key.used (operation list) with the filters (active null when
 * f->active is API_KEYS_ANY) and the count. */
rc_t apikeys_list(const struct apikeys_deps *d, const struct apikeys_actor *who,
                  const struct api_keys_filter *f, struct arena *a, struct api_key_row **out,
                  int *out_n) WUR;

/* GET /admin/api-keys (api-admin §8.1): one keyset page (see
 * api_keys_page); after_id NULL = first page. No audit row. */
rc_t apikeys_page(const struct apikeys_deps *d, const struct api_keys_filter *f,
                  int64_t after_created_us, const char *after_id, int limit, struct arena *a,
                  struct api_key_row **out, int *out_n) WUR;

/* api-core §10.4 / api-admin §8.3: revokes key_id (canonical uuid); an
 * already revoked key keeps its first revoked_at (D11). RC_NOT_FOUND for
 * an unknown or deleted key (404 invalid_api_key, audited as a failure).
 * On success *out is the row after the change, the cached answer of the key
 * is replaced by the revoked one before returning (every instance sharing
 * the KV store answers revoked_api_key at once), audit api_key.revoked, and
 * event api_key.revoked when this call changed the row. */
rc_t apikeys_revoke(const struct apikeys_deps *d, const struct apikeys_actor *who,
                    enum apikeys_api api, const char *key_id, struct arena *a,
                    struct api_key_row *out) WUR;

/* Introspection verdicts (api-core §6.8). */
enum apikeys_verdict {
    APIKEYS_VALID,
    APIKEYS_INVALID, /* invalid_api_key */
    APIKEYS_EXPIRED, /* expired_api_key */
    APIKEYS_REVOKED, /* revoked_api_key (also: owner inactive or deleted) */
};
/* "invalid_api_key" | "expired_api_key" | "revoked_api_key"; NULL for valid. */
const char *apikeys_verdict_code(enum apikeys_verdict v);

struct apikeys_answer {
    enum apikeys_verdict verdict;
    struct api_key_row key; /* meaningful unless APIKEYS_INVALID */
};

/* The event-loop half of introspection for raw[0..len) (any bytes): RC_OK
 * when it answered without the database (not an `sk_` key, or a cache hit),
 * after writing the api_key.used audit row; RC_NOT_FOUND when the answer
 * needs the database (call apikeys_introspect from a worker). Never fails
 * otherwise: a KV failure counts as a miss. */
rc_t apikeys_introspect_fast(const struct apikeys_deps *d, const struct req_meta *m,
                             const char *raw, size_t len, struct arena *a,
                             struct apikeys_answer *out) WUR;

/* Full introspection (cache, then database, then a cache fill) with its
 * audit row. Blocking. Errors: database failures (nothing audited). */
rc_t apikeys_introspect(const struct apikeys_deps *d, const struct req_meta *m, const char *raw,
                        size_t len, struct arena *a, struct apikeys_answer *out) WUR;

/* For every flow that changes a key owner's is_active or deleted_at
 * (admin delete, erasure, deactivation, reactivation; none exists yet):
 * drops the cached introspection answer of every key of user_id, so every
 * instance sees the owner's new state on its next introspection of them.
 * Call it AFTER the change has committed, and outside any DB_WRITE
 * connection of the calling thread (it reads on a DB_READ connection).
 * Each entry is overwritten with a tombstone for APIKEYS_CACHE_TTL_MS that
 * sends readers to the database, so a racing fill from an older read cannot
 * resurrect the old answer. RC_UNAVAILABLE when the KV store failed for
 * some key (retry or report; entries expire within APIKEYS_CACHE_TTL_MS
 * anyway); database errors as returned. */
rc_t apikeys_invalidate_user(const struct apikeys_deps *d, const char *user_id) WUR;

#endif
