/* api_keys table statements (see api_keys.h). One SQL text per statement on
 * both backends. PostgreSQL gives each $N one type, so an optional filter
 * passes its value twice: once cast to text for the IS NULL test, once
 * compared with the typed column. */
#include "store/api_keys.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <string.h>

#define KEY_COLS                                                                                   \
    "k.id, k.user_id, k.name, k.service, k.scope, k.hashed_key, k.key_prefix, k.expires_at, "      \
    "k.revoked_at, k.created_at"

static void copy_fixed(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static const char *dup(struct arena *a, const struct db_res *r, int row, int col)
{
    const char *v = db_res_get(r, row, col);
    return arena_strdup(a, v ? v : "");
}

static void row_at(const struct db_res *r, int i, struct arena *a, struct api_key_row *out)
{
    memset(out, 0, sizeof *out);
    copy_fixed(out->id, sizeof out->id, db_res_get(r, i, 0));
    copy_fixed(out->user_id, sizeof out->user_id, db_res_get(r, i, 1));
    out->name = dup(a, r, i, 2);
    out->service = dup(a, r, i, 3);
    out->scope = dup(a, r, i, 4);
    copy_fixed(out->hashed_key, sizeof out->hashed_key, db_res_get(r, i, 5));
    copy_fixed(out->key_prefix, sizeof out->key_prefix, db_res_get(r, i, 6));
    out->has_expires_at = db_res_time(r, i, 7, &out->expires_at_us);
    out->revoked = db_res_time(r, i, 8, &out->revoked_at_us);
    if (!db_res_time(r, i, 9, &out->created_at_us))
        out->created_at_us = 0;
    out->owner_ok = true;
}

static rc_t rows_of(struct db_res *r, struct arena *a, struct api_key_row **out, int *out_n)
{
    int n = db_res_rows(r);
    *out = arena_zalloc(a, (size_t)(n ? n : 1) * sizeof **out);
    for (int i = 0; i < n; i++)
        row_at(r, i, a, &(*out)[i]);
    *out_n = n;
    return RC_OK;
}

rc_t api_keys_insert(struct db_conn *c, const struct api_key_new *k)
{
    char now[TIME_STR_MAX], exp[TIME_STR_MAX];
    time_format(k->now_us, TIME_STYLE_DB, now);
    time_format(k->expires_at_us, TIME_STYLE_DB, exp);
    struct db_param p[] = {
        DBP_T(k->id),         DBP_T(k->user_id),
        DBP_T(k->name),       DBP_T(k->service),
        DBP_T(k->hashed_key), DBP_T(k->key_prefix),
        DBP_T(k->scope),      DBP_T(k->has_expires_at ? exp : NULL),
        DBP_T(now),
    };
    return db_exec(c,
                   "INSERT INTO api_keys (id, user_id, name, service, hashed_key, key_prefix, "
                   "scope, expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, "
                   "$7, $8, $9, $9)",
                   9, p, NULL);
}

rc_t api_keys_find_by_hash(struct db_conn *c, struct arena *a, const char *hash,
                           struct api_key_row *out)
{
    struct db_param p[] = {DBP_T(hash)};
    struct db_res *r = NULL;
    rc_t rc = db_exec(c,
                      "SELECT " KEY_COLS ", u.id, u.is_active, u.deleted_at FROM api_keys k "
                      "LEFT JOIN users u ON u.id = k.user_id "
                      "WHERE k.hashed_key = $1 AND k.deleted_at IS NULL",
                      1, p, &r);
    if (rc == RC_OK && db_res_rows(r) == 0)
        rc = RC_NOT_FOUND;
    if (rc == RC_OK) {
        row_at(r, 0, a, out);
        /* A key bound to a user row that cannot be read counts as orphaned:
         * fail closed (revoked), as for an inactive or deleted owner. */
        if (out->user_id[0])
            out->owner_ok =
                !db_res_is_null(r, 0, 10) && db_res_bool(r, 0, 11) && db_res_is_null(r, 0, 12);
    }
    db_res_free(r);
    return rc;
}

/* The shared WHERE clause of both lists: $1/$2 user id, $3 name, $4
 * service, $5 scope, $6 active mode (0 any, 1 active, 2 inactive), $7 now. */
#define LIST_WHERE                                                                                 \
    "k.deleted_at IS NULL "                                                                        \
    "AND (CAST($1 AS text) IS NULL OR k.user_id = $2) "                                            \
    "AND (CAST($3 AS text) IS NULL OR k.name = $3) "                                               \
    "AND (CAST($4 AS text) IS NULL OR k.service = $4) "                                            \
    "AND (CAST($5 AS text) IS NULL OR k.scope = $5) "                                              \
    "AND ($6 = 0 "                                                                                 \
    "OR ($6 = 1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $7)) "        \
    "OR ($6 = 2 AND (k.revoked_at IS NOT NULL OR (k.expires_at IS NOT NULL AND "                   \
    "k.expires_at <= $7))))"

rc_t api_keys_list(struct db_conn *c, struct arena *a, const struct api_keys_filter *f,
                   struct api_key_row **out, int *out_n)
{
    char now[TIME_STR_MAX];
    time_format(f->now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(f->user_id), DBP_T(f->user_id),       DBP_T(f->name),
                           DBP_T(f->service), DBP_T(f->scope),         DBP_I(f->active),
                           DBP_T(now),        DBP_I(API_KEYS_LIST_MAX)};
    struct db_res *r = NULL;
    *out = NULL;
    *out_n = 0;
    rc_t rc = db_exec(c,
                      "SELECT " KEY_COLS " FROM api_keys k WHERE " LIST_WHERE
                      " ORDER BY k.created_at DESC, k.id DESC LIMIT $8",
                      8, p, &r);
    if (rc == RC_OK)
        rc = rows_of(r, a, out, out_n);
    db_res_free(r);
    return rc;
}

rc_t api_keys_page(struct db_conn *c, struct arena *a, const struct api_keys_filter *f,
                   int64_t after_created_us, const char *after_id, int limit,
                   struct api_key_row **out, int *out_n)
{
    char now[TIME_STR_MAX], after[TIME_STR_MAX];
    time_format(f->now_us, TIME_STYLE_DB, now);
    time_format(after_created_us, TIME_STYLE_DB, after);
    struct db_param p[] = {DBP_NUL,         DBP_NUL,         DBP_NUL,
                           DBP_NUL,         DBP_T(f->scope), DBP_I(f->active),
                           DBP_T(now),      DBP_T(after_id), DBP_T(after_id ? after : NULL),
                           DBP_T(after_id), DBP_I(limit + 1)};
    struct db_res *r = NULL;
    *out = NULL;
    *out_n = 0;
    rc_t rc = db_exec(c,
                      "SELECT " KEY_COLS " FROM api_keys k WHERE " LIST_WHERE
                      " AND (CAST($8 AS text) IS NULL OR k.created_at < $9 OR "
                      "(k.created_at = $9 AND k.id < $10)) "
                      "ORDER BY k.created_at DESC, k.id DESC LIMIT $11",
                      11, p, &r);
    if (rc == RC_OK)
        rc = rows_of(r, a, out, out_n);
    db_res_free(r);
    return rc;
}

rc_t api_keys_revoke(struct db_conn *c, struct arena *a, const char *id, int64_t now_us,
                     struct api_key_row *out, bool *out_changed)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    struct db_param up[] = {DBP_T(id), DBP_T(now)};
    struct db_res *r = NULL;
    *out_changed = false;
    rc_t rc = db_exec(c,
                      "UPDATE api_keys SET revoked_at = $2, updated_at = $2 WHERE id = $1 "
                      "AND revoked_at IS NULL AND deleted_at IS NULL",
                      2, up, &r);
    if (rc == RC_OK)
        *out_changed = db_res_affected(r) > 0;
    db_res_free(r);
    r = NULL;
    if (rc != RC_OK)
        return rc;
    struct db_param sel[] = {DBP_T(id)};
    rc = db_exec(c, "SELECT " KEY_COLS " FROM api_keys k WHERE k.id = $1 AND k.deleted_at IS NULL",
                 1, sel, &r);
    if (rc == RC_OK && db_res_rows(r) == 0)
        rc = RC_NOT_FOUND;
    if (rc == RC_OK)
        row_at(r, 0, a, out);
    db_res_free(r);
    return rc;
}

rc_t api_keys_hashes_of_user(struct db_conn *c, struct arena *a, const char *user_id,
                             const char ***out, int *out_n)
{
    struct db_param p[] = {DBP_T(user_id)};
    struct db_res *r = NULL;
    *out = NULL;
    *out_n = 0;
    rc_t rc = db_exec(
        c, "SELECT hashed_key FROM api_keys WHERE user_id = $1 AND deleted_at IS NULL", 1, p, &r);
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
