/* OAuth (M2M) clients: the admin operations of api-admin §8.4 and the
 * client-credentials grant of api-core §6.4 A. No HTTP types: the API layer
 * checks JSON types and lengths (422) and maps the results here to the
 * contract's status/code/detail.
 *
 * Formats (data-model §11.4, api-core §15.2): client_id = "client_" +
 * base64url(16 random bytes) (29 chars); secret = "cs_" + base64url(32
 * random bytes) (46 chars), of which only the SHA-256 hex and the first 8
 * characters are stored. A raw secret exists only in the create / rotate
 * result (wiped when freed).
 *
 * Audit rows are written after the business commit (api-admin §9.2, never
 * failing the request); the webhook events client.created and
 * client.secret_rotated are raised inside the transaction (svc/events.h).
 *
 * Blocking (database; the grant also signs an RS256 token): the admin
 * operations are short single-row units; run the grant off the event loop.
 * Must not be called while the thread holds a DB_WRITE connection.
 * Thread-safe. */
#ifndef AUTHD_SVC_CLIENTS_H
#define AUTHD_SVC_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "db/db.h"
#include "store/oauth_clients.h"
#include "svc/accounts.h"
#include "util/arena.h"
#include "util/rc.h"

struct keys;

#define CLIENTS_NAME_MAX 255        /* code points, after trimming */
#define CLIENTS_TTL_DEFAULT 3600    /* token_ttl_seconds when absent */
#define CLIENTS_TTL_MAX 2147483647  /* the column is a 32-bit integer */
#define CLIENTS_ID_ATTEMPTS 10      /* client_id draws before giving up */
#define CLIENTS_SECRET_PREFIX_LEN 8 /* client_secret_prefix */

struct clients_deps {
    const struct config *cfg;
    struct db *db;
    struct keys *keys;
};

/* Who called an admin route: actor_id is the admin's user id, NULL for the
 * development bootstrap key (stored as null, api-admin §9.2). */
struct clients_actor {
    const char *actor_id;
    struct req_meta meta;
};

/* The 400s of api-admin §8.4 (returned with RC_INVALID). */
enum clients_problem {
    CLIENTS_PROBLEM_NONE = 0,
    CLIENTS_NAME_REQUIRED,  /* 400 invalid_credentials "Client name is required." */
    CLIENTS_SCOPE_REQUIRED, /* 400 invalid_scope "At least one scope is required." */
};

/* Admin input, type- and length-checked by the caller. For create, name and
 * scopes are required; for update, NULL / has_* false = unchanged. */
struct clients_input {
    const char *name; /* trimmed here */
    const char *const *scopes;
    size_t n_scopes; /* items trimmed, blanks dropped, duplicates removed here */
    bool has_ttl;
    int64_t token_ttl_seconds; /* 1..CLIENTS_TTL_MAX */
    bool has_active;
    bool is_active;
};

/* Trimming of Python's str.strip() (Unicode White_Space of str.isspace) of
 * s[0..n), valid UTF-8: sets *off and returns the trimmed length. Used for
 * every trimmed client input (names, scopes, form fields). */
size_t clients_strip(const char *s, size_t n, size_t *off);

/* POST /admin/clients. On RC_OK *out (arena-owned) is the new row and
 * *out_secret the raw secret (owned: free with xfree_secret_str).
 * RC_INVALID with *out_problem; RC_CONFLICT when CLIENTS_ID_ATTEMPTS
 * client_ids collided (500); database errors otherwise. */
rc_t clients_create(const struct clients_deps *d, const struct clients_actor *who,
                    const struct clients_input *in, struct arena *a, struct oauth_client_row *out,
                    char **out_secret, enum clients_problem *out_problem) WUR;

/* GET /admin/clients: one page after the keyset (after_id NULL = first
 * page). *out holds up to limit + 1 rows (the extra one = has more). */
rc_t clients_list(const struct clients_deps *d, struct arena *a, bool filter_active, bool active,
                  int64_t after_created_us, const char *after_id, int limit,
                  struct oauth_client_row **out, int *out_n) WUR;

/* PATCH /admin/clients/{id} (id canonical). RC_NOT_FOUND (404) is decided
 * before the 400s (RC_INVALID with *out_problem). */
rc_t clients_update(const struct clients_deps *d, const struct clients_actor *who, const char *id,
                    const struct clients_input *in, struct arena *a, struct oauth_client_row *out,
                    enum clients_problem *out_problem) WUR;

/* POST /admin/clients/{id}/rotate-secret: the old secret stops working at
 * once. *out_secret as for create. RC_NOT_FOUND. */
rc_t clients_rotate_secret(const struct clients_deps *d, const struct clients_actor *who,
                           const char *id, struct arena *a, struct oauth_client_row *out,
                           char **out_secret) WUR;

/* DELETE /admin/clients/{id}: soft delete, is_active false. RC_NOT_FOUND. */
rc_t clients_delete(const struct clients_deps *d, const struct clients_actor *who, const char *id,
                    struct arena *a, struct oauth_client_row *out) WUR;

/* ---- the client-credentials grant (api-core §6.4 A) ---- */

enum clients_grant_outcome {
    CLIENTS_GRANT_OK = 0,
    CLIENTS_GRANT_BAD_CLIENT, /* 401 invalid_credentials "Invalid client credentials." */
    CLIENTS_GRANT_BAD_SCOPE,  /* 400 invalid_scope "Invalid scope." */
    CLIENTS_GRANT_FAILED,     /* 500 */
};

/* Form fields, each the first occurrence, trimmed, blank = NULL. */
struct clients_grant_input {
    const char *client_id;     /* required */
    const char *client_secret; /* required */
    const char *scope;         /* NULL = all the client's scopes */
    const char *audience;      /* NULL = SERVICE_AUD only */
};

struct clients_grant_result {
    enum clients_grant_outcome outcome;
    char *access_token; /* owned (clients_grant_result_free) */
    int64_t expires_in; /* the client's token_ttl_seconds */
    char *scope;        /* owned: granted scopes joined by single spaces */
};
void clients_grant_result_free(struct clients_grant_result *r);

/* Authenticates the client (exists, not deleted, active, SHA-256 hex of the
 * secret equal to the stored digest in constant time; an unknown client
 * costs the same digest and comparison), checks the requested scopes, signs
 * the M2M token (api-core §5.5) and audits client.authenticated or
 * client.auth.failure. */
void clients_grant(const struct clients_deps *d, const struct req_meta *m,
                   const struct clients_grant_input *in, struct clients_grant_result *out);

/* client.auth.failure for a request refused before authentication:
 * with_client_id false when the grant type was wrong (metadata without
 * client_id), else client_id (NULL = none sent) goes into the metadata. */
void clients_audit_grant_failure(const struct clients_deps *d, const struct req_meta *m,
                                 bool with_client_id, const char *client_id, const char *reason);

#endif
