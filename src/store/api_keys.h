/* SQL of the api_keys table (data-model §5; api-core §10, §6.8; api-admin
 * §8.1–§8.3). Every function takes a checked-out connection (the caller owns
 * any transaction) and, where rows come back, an arena that owns the
 * returned strings. Soft-deleted keys are invisible to every function here.
 * RC_NOT_FOUND when no row matches. Thread-safety: that of the connection. */
#ifndef AUTHD_STORE_API_KEYS_H
#define AUTHD_STORE_API_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"
#include "util/arena.h"
#include "util/rc.h"

#define API_KEYS_HASH_LEN 64  /* lowercase hex SHA-256 */
#define API_KEYS_PREFIX_LEN 8 /* "sk_" + 5 */

struct api_key_row {
    char id[37];
    char user_id[37]; /* "" for a service key (NULL column) */
    const char *name;
    const char *service;
    const char *scope;
    char hashed_key[API_KEYS_HASH_LEN + 1];
    char key_prefix[API_KEYS_PREFIX_LEN + 1];
    bool has_expires_at; /* a flag, not a 0 sentinel: 1970-01-01 is a valid expiry */
    int64_t expires_at_us;
    bool revoked;
    int64_t revoked_at_us;
    int64_t created_at_us;
    /* api_keys_find_by_hash only: the owner row is active and not deleted
     * (always true for a service key). Other functions leave it true. */
    bool owner_ok;
};

struct api_key_new {
    const char *id;
    const char *user_id; /* canonical uuid or NULL */
    const char *name, *service, *scope;
    const char *hashed_key;
    const char *key_prefix;
    bool has_expires_at;
    int64_t expires_at_us;
    int64_t now_us; /* created_at = updated_at */
};

/* RC_CONFLICT on a duplicate id or hash, RC_CONSTRAINT when user_id names no
 * user row (foreign key). */
rc_t api_keys_insert(struct db_conn *c, const struct api_key_new *k) WUR;

/* The key whose hashed_key equals hash, with its owner's status. */
rc_t api_keys_find_by_hash(struct db_conn *c, struct arena *a, const char *hash,
                           struct api_key_row *out) WUR;

/* Filters of the two list routes; NULL / API_KEYS_ANY = no filter. */
enum api_keys_active { API_KEYS_ANY = 0, API_KEYS_ACTIVE, API_KEYS_INACTIVE };
struct api_keys_filter {
    const char *user_id;                /* canonical uuid */
    const char *name, *service, *scope; /* exact match on the stored value */
    enum api_keys_active active;        /* active: not revoked and not expired at now_us */
    int64_t now_us;
};

/* GET /auth/apikeys: every matching key, created_at DESC, id DESC (a plain
 * array; at most API_KEYS_LIST_MAX rows so a response stays bounded). */
#define API_KEYS_LIST_MAX 10000
rc_t api_keys_list(struct db_conn *c, struct arena *a, const struct api_keys_filter *f,
                   struct api_key_row **out, int *out_n) WUR;

/* GET /admin/api-keys: one keyset page in the same order, strictly after
 * (after_created_us, after_id) when after_id is not NULL, at most limit + 1
 * rows (the extra one tells "has more"). Only scope and active filter. */
rc_t api_keys_page(struct db_conn *c, struct arena *a, const struct api_keys_filter *f,
                   int64_t after_created_us, const char *after_id, int limit,
                   struct api_key_row **out, int *out_n) WUR;

/* Sets revoked_at = now_us unless already revoked (decision D11: the first
 * revoked_at stays), then reads the row back into *out. *out_changed tells
 * whether this call revoked it. Call inside a transaction so the read sees
 * the write. RC_NOT_FOUND for an unknown or deleted key. */
rc_t api_keys_revoke(struct db_conn *c, struct arena *a, const char *id, int64_t now_us,
                     struct api_key_row *out, bool *out_changed) WUR;

/* hashed_key (arena-owned) of every non-deleted key of user_id. */
rc_t api_keys_hashes_of_user(struct db_conn *c, struct arena *a, const char *user_id,
                             const char ***out, int *out_n) WUR;

#endif
