/* SQL of the users table (data-model §2). Every function takes a checked-
 * out connection (the caller owns the transaction) and, where rows come
 * back, an arena that owns the returned strings. RC_NOT_FOUND when no row
 * matches; RC_CONFLICT on a duplicate email. */
#ifndef AUTHD_STORE_USERS_H
#define AUTHD_STORE_USERS_H

#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"
#include "util/arena.h"
#include "util/rc.h"

struct user {
    char id[37];
    const char *email;
    const char *password_hash; /* NULL for federated-only and erased users */
    bool is_active;
    bool deleted;
    char role[17];
    bool email_verified;
    bool email_otp_enabled;
    const char *verify_hash;   /* email_verify_token_hash or NULL */
    int64_t verify_expires_us; /* 0 when NULL */
};

struct user_new {
    const char *id;
    const char *email; /* normalised */
    const char *password_hash;
    const char *role;
    bool email_verified;
    const char *verify_hash;
    int64_t verify_expires_us;
    int64_t now_us;
};

rc_t users_insert(struct db_conn *c, const struct user_new *u) WUR;
/* Any row, deleted or not, whose email matches case-insensitively. */
rc_t users_find_by_email(struct db_conn *c, struct arena *a, const char *email,
                         struct user *out) WUR;
rc_t users_get(struct db_conn *c, struct arena *a, const char *id, struct user *out) WUR;
/* Non-deleted user whose verify hash equals hash; the row is locked for the
 * rest of the transaction (FOR UPDATE on PostgreSQL; the SQLite writer is
 * exclusive already). */
rc_t users_find_by_verify_hash_for_update(struct db_conn *c, struct arena *a, const char *hash,
                                          struct user *out) WUR;
rc_t users_set_verify_token(struct db_conn *c, const char *id, const char *hash, int64_t expires_us,
                            int64_t now_us) WUR;
/* Sets email_verified and clears the token columns. */
rc_t users_mark_verified(struct db_conn *c, const char *id, int64_t now_us) WUR;
rc_t users_set_password_hash(struct db_conn *c, const char *id, const char *hash,
                             int64_t now_us) WUR;
rc_t users_set_role(struct db_conn *c, const char *id, const char *role, int64_t now_us) WUR;

#endif
