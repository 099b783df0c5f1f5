/* users table statements (see users.h). One SQL text per statement; the
 * only dialect split is row locking, which SQLite does not spell. */
#include "store/users.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <string.h>

#define USER_COLS                                                                                  \
    "id, email, password_hash, is_active, deleted_at, role, email_verified, email_otp_enabled, "   \
    "email_verify_token_hash, email_verify_token_expires"

static void copy_fixed(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static const char *dup_or_null(struct arena *a, const struct db_res *r, int row, int col)
{
    const char *v = db_res_get(r, row, col);
    return v ? arena_strdup(a, v) : NULL;
}

static rc_t one_user(struct db_res *r, struct arena *a, struct user *out)
{
    if (db_res_rows(r) == 0)
        return RC_NOT_FOUND;
    memset(out, 0, sizeof *out);
    copy_fixed(out->id, sizeof out->id, db_res_get(r, 0, 0));
    out->email = dup_or_null(a, r, 0, 1);
    out->password_hash = dup_or_null(a, r, 0, 2);
    out->is_active = db_res_bool(r, 0, 3);
    out->deleted = !db_res_is_null(r, 0, 4);
    copy_fixed(out->role, sizeof out->role, db_res_get(r, 0, 5));
    out->email_verified = db_res_bool(r, 0, 6);
    out->email_otp_enabled = db_res_bool(r, 0, 7);
    out->verify_hash = dup_or_null(a, r, 0, 8);
    if (!db_res_time(r, 0, 9, &out->verify_expires_us))
        out->verify_expires_us = 0;
    return RC_OK;
}

static rc_t query_user(struct db_conn *c, struct arena *a, const char *sql, const char *arg,
                       struct user *out)
{
    struct db_param p[] = {DBP_T(arg)};
    struct db_res *r = NULL;
    rc_t rc = db_exec(c, sql, 1, p, &r);
    if (rc == RC_OK)
        rc = one_user(r, a, out);
    db_res_free(r);
    return rc;
}

rc_t users_insert(struct db_conn *c, const struct user_new *u)
{
    char now[TIME_STR_MAX], exp[TIME_STR_MAX];
    time_format(u->now_us, TIME_STYLE_DB, now);
    time_format(u->verify_expires_us, TIME_STYLE_DB, exp);
    struct db_param p[] = {
        DBP_T(u->id),
        DBP_T(u->email),
        DBP_T(u->password_hash),
        DBP_T(u->role),
        DBP_B(u->email_verified),
        DBP_T(u->verify_hash),
        DBP_T(u->verify_hash ? exp : NULL),
        DBP_T(now),
    };
    return db_exec(
        c,
        "INSERT INTO users (id, email, password_hash, is_active, created_at, updated_at, "
        "role, email_verified, email_verify_token_hash, email_verify_token_expires, "
        "email_otp_enabled) VALUES ($1, $2, $3, TRUE, $8, $8, $4, $5, $6, $7, FALSE)",
        8, p, NULL);
}

rc_t users_find_by_email(struct db_conn *c, struct arena *a, const char *email, struct user *out)
{
    return query_user(c, a,
                      "SELECT " USER_COLS " FROM users WHERE lower(email) = lower($1) "
                      "ORDER BY deleted_at IS NULL DESC LIMIT 1",
                      email, out);
}

rc_t users_get(struct db_conn *c, struct arena *a, const char *id, struct user *out)
{
    return query_user(c, a, "SELECT " USER_COLS " FROM users WHERE id = $1", id, out);
}

rc_t users_find_by_verify_hash_for_update(struct db_conn *c, struct arena *a, const char *hash,
                                          struct user *out)
{
    const char *sql = db_conn_kind(c) == DB_POSTGRES
                          ? "SELECT " USER_COLS " FROM users WHERE email_verify_token_hash = $1 "
                            "AND deleted_at IS NULL FOR UPDATE"
                          : "SELECT " USER_COLS " FROM users WHERE email_verify_token_hash = $1 "
                            "AND deleted_at IS NULL";
    return query_user(c, a, sql, hash, out);
}

rc_t users_set_verify_token(struct db_conn *c, const char *id, const char *hash, int64_t expires_us,
                            int64_t now_us)
{
    char now[TIME_STR_MAX], exp[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    time_format(expires_us, TIME_STYLE_DB, exp);
    struct db_param p[] = {DBP_T(id), DBP_T(hash), DBP_T(exp), DBP_T(now)};
    return db_exec_one(c,
                       "UPDATE users SET email_verify_token_hash = $2, "
                       "email_verify_token_expires = $3, updated_at = $4 WHERE id = $1",
                       4, p);
}

rc_t users_mark_verified(struct db_conn *c, const char *id, int64_t now_us)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(id), DBP_T(now)};
    return db_exec_one(c,
                       "UPDATE users SET email_verified = TRUE, email_verify_token_hash = NULL, "
                       "email_verify_token_expires = NULL, updated_at = $2 WHERE id = $1",
                       2, p);
}

rc_t users_set_password_hash(struct db_conn *c, const char *id, const char *hash, int64_t now_us)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(id), DBP_T(hash), DBP_T(now)};
    return db_exec_one(c, "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1", 3,
                       p);
}

rc_t users_set_role(struct db_conn *c, const char *id, const char *role, int64_t now_us)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(id), DBP_T(role), DBP_T(now)};
    return db_exec_one(c, "UPDATE users SET role = $2, updated_at = $3 WHERE id = $1", 3, p);
}
