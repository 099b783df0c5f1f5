/* sessions table statements (see sessions.h). */
#include "store/sessions.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <string.h>

#define SESSION_COLS                                                                               \
    "session_id, id, user_id, auth_time, expires_at, revoked_at, deleted_at, created_at, "         \
    "last_seen_at, ip_address, user_agent, revoke_reason, is_suspicious, suspicious_reasons"

static const char *dup(struct arena *a, const struct db_res *r, int row, int col)
{
    const char *v = db_res_get(r, row, col);
    return v ? arena_strdup(a, v) : NULL;
}

static int64_t ts(const struct db_res *r, int row, int col)
{
    int64_t v = 0;
    return db_res_time(r, row, col, &v) ? v : 0;
}

static void row_at(struct db_res *r, int i, struct arena *a, struct session_row *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->session_id, sizeof out->session_id, "%s", db_res_get(r, i, 0));
    snprintf(out->id, sizeof out->id, "%s", db_res_get(r, i, 1));
    snprintf(out->user_id, sizeof out->user_id, "%s", db_res_get(r, i, 2));
    out->auth_time_us = ts(r, i, 3);
    out->expires_at_us = ts(r, i, 4);
    out->revoked_at_us = ts(r, i, 5);
    out->deleted = !db_res_is_null(r, i, 6);
    out->created_at_us = ts(r, i, 7);
    out->last_seen_at_us = ts(r, i, 8);
    out->ip_address = dup(a, r, i, 9);
    out->user_agent = dup(a, r, i, 10);
    out->revoke_reason = dup(a, r, i, 11);
    out->is_suspicious = db_res_bool(r, i, 12);
    out->suspicious_reasons = dup(a, r, i, 13);
}

static rc_t one(struct db_res *r, struct arena *a, struct session_row *out)
{
    if (db_res_rows(r) == 0)
        return RC_NOT_FOUND;
    row_at(r, 0, a, out);
    return RC_OK;
}

static rc_t query_one(struct db_conn *c, struct arena *a, const char *sql, const char *arg,
                      struct session_row *out)
{
    struct db_param p[] = {DBP_T(arg)};
    struct db_res *r = NULL;
    rc_t rc = db_exec(c, sql, 1, p, &r);
    if (rc == RC_OK)
        rc = one(r, a, out);
    db_res_free(r);
    return rc;
}

rc_t sessions_insert(struct db_conn *c, const struct session_new *s)
{
    char now[TIME_STR_MAX], auth[TIME_STR_MAX], exp[TIME_STR_MAX];
    time_format(s->now_us, TIME_STYLE_DB, now);
    time_format(s->auth_time_us, TIME_STYLE_DB, auth);
    time_format(s->expires_at_us, TIME_STYLE_DB, exp);
    struct db_param p[] = {
        DBP_T(s->session_id),
        DBP_T(s->id),
        DBP_T(s->user_id),
        DBP_T(s->hashed_refresh_token),
        DBP_T(auth),
        DBP_T(exp),
        DBP_T(now),
        DBP_T(s->ip_address),
        DBP_T(s->user_agent),
        DBP_B(s->is_suspicious),
        DBP_T(s->suspicious_reasons_json ? s->suspicious_reasons_json : "[]"),
    };
    return db_exec(
        c,
        "INSERT INTO sessions (session_id, id, user_id, hashed_refresh_token, auth_time, "
        "expires_at, created_at, updated_at, last_seen_at, ip_address, user_agent, "
        "is_suspicious, suspicious_reasons) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, "
        "$8, $9, $10, $11)",
        11, p, NULL);
}

rc_t sessions_get(struct db_conn *c, struct arena *a, const char *session_id,
                  struct session_row *out)
{
    return query_one(c, a, "SELECT " SESSION_COLS " FROM sessions WHERE session_id = $1",
                     session_id, out);
}

rc_t sessions_rotate(struct db_conn *c, const char *session_id, const char *old_verifier,
                     const char *new_verifier, int64_t expires_at_us, int64_t now_us)
{
    char now[TIME_STR_MAX], exp[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    time_format(expires_at_us, TIME_STYLE_DB, exp);
    struct db_param p[] = {DBP_T(session_id), DBP_T(new_verifier), DBP_T(exp), DBP_T(now),
                           DBP_T(old_verifier)};
    return db_exec_one(c,
                       "UPDATE sessions SET hashed_refresh_token = $2, expires_at = $3, "
                       "last_seen_at = $4, updated_at = $4 WHERE session_id = $1 AND "
                       "hashed_refresh_token = $5 AND revoked_at IS NULL AND deleted_at IS NULL",
                       5, p);
}

rc_t sessions_find_by_verifier(struct db_conn *c, struct arena *a, const char *verifier,
                               struct session_row *out)
{
    return query_one(c, a,
                     "SELECT " SESSION_COLS " FROM sessions WHERE hashed_refresh_token = $1 "
                     "AND deleted_at IS NULL",
                     verifier, out);
}

rc_t sessions_revoke(struct db_conn *c, const char *session_id, const char *reason, int64_t now_us)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(session_id), DBP_T(now), DBP_T(reason)};
    return db_exec_one(c,
                       "UPDATE sessions SET revoked_at = $2, updated_at = $2, "
                       "revoke_reason = COALESCE($3, revoke_reason) WHERE session_id = $1",
                       3, p);
}

rc_t sessions_touch(struct db_conn *c, const char *session_id, int64_t now_us)
{
    char now[TIME_STR_MAX], cutoff[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    time_format(now_us - 60LL * 1000000, TIME_STYLE_DB, cutoff);
    struct db_param p[] = {DBP_T(session_id), DBP_T(now), DBP_T(cutoff)};
    return db_exec(c,
                   "UPDATE sessions SET last_seen_at = $2 WHERE session_id = $1 AND "
                   "(last_seen_at IS NULL OR last_seen_at < $3)",
                   3, p, NULL);
}

rc_t sessions_revoke_if_active(struct db_conn *c, const char *session_id, const char *reason,
                               int64_t now_us)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(session_id), DBP_T(now), DBP_T(reason)};
    return db_exec_one(c,
                       "UPDATE sessions SET revoked_at = $2, updated_at = $2, "
                       "revoke_reason = COALESCE($3, revoke_reason) WHERE session_id = $1 "
                       "AND revoked_at IS NULL AND deleted_at IS NULL",
                       3, p);
}

rc_t sessions_list_page(struct db_conn *c, struct arena *a, const char *user_id,
                        enum session_filter f, int64_t now_us, int64_t after_created_us,
                        const char *after_id, int limit, struct session_row **out, int *out_n)
{
    /* One SQL text per filter; the keyset condition is neutralised by a NULL
     * cursor parameter so the statement stays the same. The cursor id is
     * passed twice ($4 as text for the NULL test, $5 compared with the uuid
     * column) because PostgreSQL gives each parameter one type. */
    static const char *const sql[] = {
        [SESSIONS_ACTIVE] =
            "SELECT " SESSION_COLS " FROM sessions WHERE user_id = $1 AND "
            "deleted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 AND "
            "(CAST($4 AS text) IS NULL OR created_at < $3 OR (created_at = $3 AND id < $5)) "
            "ORDER BY created_at DESC, id DESC LIMIT $6",
        [SESSIONS_REVOKED] =
            "SELECT " SESSION_COLS " FROM sessions WHERE user_id = $1 AND "
            "deleted_at IS NULL AND (revoked_at IS NOT NULL OR expires_at <= $2) "
            "AND (CAST($4 AS text) IS NULL OR created_at < $3 OR (created_at = $3 AND id < $5)) "
            "ORDER BY created_at DESC, id DESC LIMIT $6",
        [SESSIONS_ALL] =
            "SELECT " SESSION_COLS " FROM sessions WHERE user_id = $1 AND "
            "deleted_at IS NULL AND (expires_at > $2 OR expires_at <= $2) AND "
            "(CAST($4 AS text) IS NULL OR created_at < $3 OR (created_at = $3 AND id < $5)) "
            "ORDER BY created_at DESC, id DESC LIMIT $6",
    };
    char now[TIME_STR_MAX], after[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    time_format(after_created_us, TIME_STYLE_DB, after);
    struct db_param p[] = {DBP_T(user_id),  DBP_T(now),      DBP_T(after_id ? after : NULL),
                           DBP_T(after_id), DBP_T(after_id), DBP_I(limit + 1)};
    struct db_res *r = NULL;
    rc_t rc = db_exec(c, sql[f], 6, p, &r);
    *out_n = 0;
    *out = NULL;
    if (rc == RC_OK) {
        int n = db_res_rows(r);
        *out = arena_zalloc(a, (size_t)(n ? n : 1) * sizeof **out);
        for (int i = 0; i < n; i++)
            row_at(r, i, a, &(*out)[i]);
        *out_n = n;
    }
    db_res_free(r);
    return rc;
}

rc_t sessions_unrevoked_ids(struct db_conn *c, struct arena *a, const char *user_id,
                            const char *except_id, const char ***out, int *out_n)
{
    struct db_param p[] = {DBP_T(user_id), DBP_T(except_id)};
    struct db_res *r = NULL;
    rc_t rc = db_exec(c,
                      "SELECT session_id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL "
                      "AND deleted_at IS NULL AND session_id <> $2",
                      2, p, &r);
    *out_n = 0;
    *out = NULL;
    if (rc == RC_OK) {
        int n = db_res_rows(r);
        *out = arena_zalloc(a, (size_t)(n ? n : 1) * sizeof **out);
        for (int i = 0; i < n; i++)
            (*out)[i] = arena_strdup(a, db_res_get(r, i, 0));
        *out_n = n;
    }
    db_res_free(r);
    return rc;
}
