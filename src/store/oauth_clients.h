/* SQL of the oauth_clients table (data-model §6): machine-to-machine
 * clients of the client-credentials grant and the admin routes of
 * api-admin §8.4. Every function takes a checked-out connection (the caller
 * owns any transaction) and, where rows come back, an arena that owns the
 * returned strings. `scopes` is text[] (a JSON array on SQLite, varchar[]
 * on PostgreSQL); the db layer's text-array helpers hide the spelling.
 * Soft-deleted rows (deleted_at set) are invisible to every read here.
 * RC_NOT_FOUND when no row matches. Thread-safety: that of the connection. */
#ifndef AUTHD_STORE_OAUTH_CLIENTS_H
#define AUTHD_STORE_OAUTH_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db/db.h"
#include "util/arena.h"
#include "util/rc.h"
#include "util/uuid.h"

/* One row as read; strings and the scopes array live in the arena. */
struct oauth_client_row {
    char id[UUID_STR_LEN + 1];
    const char *client_id;
    const char *client_secret_hash; /* lowercase SHA-256 hex of the raw secret */
    const char *client_secret_prefix;
    const char *name;
    const char *const *scopes; /* n_scopes items, stored order */
    size_t n_scopes;
    bool is_active;
    int64_t token_ttl_seconds;
    int64_t created_at_us;
};

/* A new row; everything borrowed. */
struct oauth_client_new {
    const char *id; /* canonical UUID */
    const char *client_id;
    const char *client_secret_hash;
    const char *client_secret_prefix;
    const char *name;
    const char *const *scopes;
    size_t n_scopes;
    int64_t token_ttl_seconds;
    int64_t now_us; /* created_at = updated_at */
};

/* INSERT ... ON CONFLICT DO NOTHING: RC_CONFLICT when client_id (or id) is
 * taken, without aborting the caller's transaction, so the caller can draw
 * a new client_id and try again in the same unit. */
rc_t oauth_clients_insert(struct db_conn *c, const struct oauth_client_new *n) WUR;

/* Non-deleted row by its row id (canonical UUID). */
rc_t oauth_clients_get(struct db_conn *c, struct arena *a, const char *id,
                       struct oauth_client_row *out) WUR;

/* Non-deleted row by public client_id (the grant). Active or not: the
 * caller decides. */
rc_t oauth_clients_find(struct db_conn *c, struct arena *a, const char *client_id,
                        struct oauth_client_row *out) WUR;

/* One page of non-deleted rows, created_at DESC, id DESC, strictly after
 * (after_created_us, after_id) when after_id is not NULL, at most limit + 1
 * rows (the extra one tells "has more"). filter_active: only rows whose
 * is_active equals active. *out is arena-owned. */
rc_t oauth_clients_page(struct db_conn *c, struct arena *a, bool filter_active, bool active,
                        int64_t after_created_us, const char *after_id, int limit,
                        struct oauth_client_row **out, int *out_n) WUR;

/* Partial update of a non-deleted row; NULL / has_* false = unchanged.
 * updated_at = now. The row after the update comes back in *out. */
struct oauth_client_patch {
    const char *name;
    const char *const *scopes; /* NULL = unchanged */
    size_t n_scopes;
    bool has_ttl;
    int64_t token_ttl_seconds;
    bool has_active;
    bool is_active;
};
rc_t oauth_clients_update(struct db_conn *c, struct arena *a, const char *id,
                          const struct oauth_client_patch *p, int64_t now_us,
                          struct oauth_client_row *out) WUR;

/* Replaces the secret digest and prefix of a non-deleted row. */
rc_t oauth_clients_set_secret(struct db_conn *c, struct arena *a, const char *id,
                              const char *secret_hash, const char *secret_prefix, int64_t now_us,
                              struct oauth_client_row *out) WUR;

/* Soft delete: deleted_at = updated_at = now, is_active = false. The row as
 * it was left comes back in *out. */
rc_t oauth_clients_soft_delete(struct db_conn *c, struct arena *a, const char *id, int64_t now_us,
                               struct oauth_client_row *out) WUR;

#endif
