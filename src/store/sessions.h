/* SQL of the sessions table (data-model §4, api-core §7). Every function
 * takes a checked-out connection (the caller owns the transaction) and an
 * arena for returned strings where rows come back. RC_NOT_FOUND when no row
 * matches. */
#ifndef AUTHD_STORE_SESSIONS_H
#define AUTHD_STORE_SESSIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"
#include "util/arena.h"
#include "util/rc.h"

struct session_row {
    char session_id[37];
    char id[37];
    char user_id[37];
    int64_t auth_time_us;
    int64_t expires_at_us;
    int64_t revoked_at_us; /* 0 = not revoked */
    bool deleted;
    int64_t created_at_us;
    int64_t last_seen_at_us; /* 0 = never */
    const char *ip_address;  /* NULL when unknown */
    const char *user_agent;  /* NULL when none */
    const char *revoke_reason;
    bool is_suspicious;
    const char *suspicious_reasons; /* JSON array text as stored (either dialect) */
};

struct session_new {
    const char *session_id, *id, *user_id;
    const char *hashed_refresh_token;
    int64_t auth_time_us, expires_at_us, now_us;
    const char *ip_address, *user_agent; /* NULL ok */
    bool is_suspicious;
    const char *suspicious_reasons_json; /* e.g. ["new_ip"] */
};

rc_t sessions_insert(struct db_conn *c, const struct session_new *s) WUR;
rc_t sessions_get(struct db_conn *c, struct arena *a, const char *session_id,
                  struct session_row *out) WUR;
/* Refresh rotation as a compare-and-swap: replaces old_verifier by
 * new_verifier (sliding expiry, last_seen_at) only while the row still holds
 * old_verifier and is neither revoked nor deleted. RC_NOT_FOUND when it
 * does not: a concurrent refresh won, or the session was revoked. */
rc_t sessions_rotate(struct db_conn *c, const char *session_id, const char *old_verifier,
                     const char *new_verifier, int64_t expires_at_us, int64_t now_us) WUR;
/* Non-deleted session whose current verifier is `verifier` (no lock). */
rc_t sessions_find_by_verifier(struct db_conn *c, struct arena *a, const char *verifier,
                               struct session_row *out) WUR;
/* Sets revoked_at (always) and revoke_reason (only when reason is not NULL). */
rc_t sessions_revoke(struct db_conn *c, const char *session_id, const char *reason,
                     int64_t now_us) WUR;
/* Revokes only when not revoked yet: RC_NOT_FOUND when no row changed
 * (already revoked, or no such session). reason NULL keeps the stored one. */
rc_t sessions_revoke_if_active(struct db_conn *c, const char *session_id, const char *reason,
                               int64_t now_us) WUR;

enum session_filter { SESSIONS_ACTIVE, SESSIONS_REVOKED, SESSIONS_ALL };

/* One page of a user's non-deleted sessions for GET /auth/sessions (api-core
 * §9.1): created_at DESC, id DESC, strictly after (after_created_us,
 * after_id) when after_id is not NULL, at most limit + 1 rows (the extra one
 * tells "has more"). Rows are returned through *out (arena-owned). */
rc_t sessions_list_page(struct db_conn *c, struct arena *a, const char *user_id,
                        enum session_filter f, int64_t now_us, int64_t after_created_us,
                        const char *after_id, int limit, struct session_row **out, int *out_n) WUR;

/* session_ids (arena-owned) of the user's sessions with revoked_at NULL,
 * not deleted, other than except_id. */
rc_t sessions_unrevoked_ids(struct db_conn *c, struct arena *a, const char *user_id,
                            const char *except_id, const char ***out, int *out_n) WUR;

/* last_seen_at = now when NULL or older than 60 s; best effort. */
rc_t sessions_touch(struct db_conn *c, const char *session_id, int64_t now_us) WUR;

#endif
