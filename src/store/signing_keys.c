/* signing_keys statements (see signing_keys.h). One SQL text per statement;
 * the only dialect split is row locking (FOR UPDATE), which SQLite does not
 * spell. Status values are literals in the SQL so PostgreSQL compares them
 * with its enum without a cast. Ordering by kid is done here with strcmp:
 * ORDER BY on text follows the collation on PostgreSQL, and the contract
 * wants byte order. */
#include "store/signing_keys.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SK_COLS "id, kid, status, public_key, private_key, retire_after"
#define SK_LIVE "deleted_at IS NULL"

static void copy_fixed(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static const char *dup_or_null(struct arena *a, const struct db_res *r, int row, int col)
{
    const char *v = db_res_get(r, row, col);
    return v ? arena_strdup(a, v) : NULL;
}

/* Reads one row laid out as SK_COLS; a prefix of the columns is fine
 * (id, kid, status[, public_key[, private_key[, retire_after]]]). */
static void read_row(const struct db_res *r, int row, struct arena *a, struct signing_key_row *out)
{
    memset(out, 0, sizeof *out);
    copy_fixed(out->id, sizeof out->id, db_res_get(r, row, 0));
    copy_fixed(out->kid, sizeof out->kid, db_res_get(r, row, 1));
    copy_fixed(out->status, sizeof out->status, db_res_get(r, row, 2));
    if (db_res_cols(r) > 3)
        out->public_key = dup_or_null(a, r, row, 3);
    if (db_res_cols(r) > 4)
        out->private_key = dup_or_null(a, r, row, 4);
    if (db_res_cols(r) > 5 && !db_res_time(r, row, 5, &out->retire_after_us))
        out->retire_after_us = 0;
}

static rc_t query_one(struct db_conn *c, struct arena *a, const char *sql, int np,
                      const struct db_param *p, struct signing_key_row *out)
{
    struct db_res *r = NULL;
    rc_t rc = db_exec(c, sql, np, p, &r);
    if (rc == RC_OK) {
        if (db_res_rows(r) == 0)
            rc = RC_NOT_FOUND;
        else
            read_row(r, 0, a, out);
    }
    db_res_free(r);
    return rc;
}

rc_t signing_keys_insert_active(struct db_conn *c, const struct signing_key_new *k)
{
    char now[TIME_STR_MAX];
    time_format(k->now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(k->id), DBP_T(k->kid), DBP_T(k->public_key), DBP_T(k->private_key),
                           DBP_T(now)};
    return db_exec(c,
                   "INSERT INTO signing_keys (id, kid, public_key, private_key, status, "
                   "activated_at, retired_at, retire_after, created_at, updated_at, deleted_at, "
                   "tenant_id) VALUES ($1, $2, $3, $4, 'active', $5, NULL, NULL, $5, $5, NULL, "
                   "NULL)",
                   5, p, NULL);
}

rc_t signing_keys_get_active(struct db_conn *c, struct arena *a, bool lock,
                             struct signing_key_row *out)
{
    const char *sql = "SELECT " SK_COLS " FROM signing_keys WHERE status = 'active' AND " SK_LIVE;
    if (lock && db_conn_kind(c) == DB_POSTGRES)
        sql = "SELECT " SK_COLS " FROM signing_keys WHERE status = 'active' AND " SK_LIVE
              " FOR UPDATE";
    return query_one(c, a, sql, 0, NULL, out);
}

rc_t signing_keys_get_by_kid(struct db_conn *c, struct arena *a, const char *kid,
                             struct signing_key_row *out)
{
    struct db_param p[] = {DBP_T(kid)};
    return query_one(c, a, "SELECT " SK_COLS " FROM signing_keys WHERE kid = $1 AND " SK_LIVE, 1, p,
                     out);
}

static int cmp_row_kid(const void *x, const void *y)
{
    const struct signing_key_row *a = x, *b = y;
    return strcmp(a->kid, b->kid);
}

rc_t signing_keys_list_verification(struct db_conn *c, struct arena *a,
                                    struct signing_key_row **out, size_t *out_n)
{
    struct db_res *r = NULL;
    *out = NULL;
    *out_n = 0;
    rc_t rc = db_exec(c,
                      "SELECT id, kid, status, public_key FROM signing_keys "
                      "WHERE status IN ('active', 'retiring') AND " SK_LIVE,
                      0, NULL, &r);
    if (rc != RC_OK)
        goto out;
    int n = db_res_rows(r);
    if (n == 0)
        goto out;
    struct signing_key_row *rows = arena_zalloc(a, (size_t)n * sizeof *rows);
    for (int i = 0; i < n; i++)
        read_row(r, i, a, &rows[i]);
    qsort(rows, (size_t)n, sizeof *rows, cmp_row_kid);
    *out = rows;
    *out_n = (size_t)n;
out:
    db_res_free(r);
    return rc;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Copies column 0 of every row into a sorted arena array. */
static const char **sorted_col(struct arena *a, const struct db_res *r, int col, size_t *out_n)
{
    int n = db_res_rows(r);
    *out_n = (size_t)n;
    if (n == 0)
        return NULL;
    const char **v = arena_zalloc(a, (size_t)n * sizeof *v);
    for (int i = 0; i < n; i++) {
        const char *s = db_res_get(r, i, col);
        v[i] = arena_strdup(a, s ? s : "");
    }
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    return v;
}

rc_t signing_keys_fingerprint(struct db_conn *c, struct arena *a, const char **out)
{
    struct db_res *r = NULL;
    *out = "";
    rc_t rc = db_exec(c,
                      "SELECT id, kid, status FROM signing_keys "
                      "WHERE status IN ('active', 'retiring') AND " SK_LIVE,
                      0, NULL, &r);
    if (rc != RC_OK)
        goto out;
    int n = db_res_rows(r);
    struct signing_key_row *rows = arena_zalloc(a, (size_t)(n ? n : 1) * sizeof *rows);
    size_t len = 1;
    for (int i = 0; i < n; i++) {
        read_row(r, i, a, &rows[i]);
        len += strlen(rows[i].kid) + strlen(rows[i].status) + 2;
    }
    qsort(rows, (size_t)n, sizeof *rows, cmp_row_kid);
    char *s = arena_alloc(a, len), *p = s;
    for (int i = 0; i < n; i++)
        p += snprintf(p, len - (size_t)(p - s), "%s:%s\n", rows[i].kid, rows[i].status);
    *p = '\0';
    *out = s;
out:
    db_res_free(r);
    return rc;
}

rc_t signing_keys_demote(struct db_conn *c, const char *id, int64_t retire_after_us, int64_t now_us)
{
    char now[TIME_STR_MAX], after[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    time_format(retire_after_us, TIME_STYLE_DB, after);
    struct db_param p[] = {DBP_T(id), DBP_T(after), DBP_T(now)};
    struct db_res *r = NULL;
    rc_t rc = db_exec(c,
                      "UPDATE signing_keys SET status = 'retiring', retire_after = $2, "
                      "updated_at = $3 WHERE id = $1 AND status = 'active' AND " SK_LIVE,
                      3, p, &r);
    if (rc == RC_OK && db_res_affected(r) != 1)
        rc = RC_NOT_FOUND;
    db_res_free(r);
    return rc;
}

rc_t signing_keys_reactivate(struct db_conn *c, const char *id, int64_t now_us)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(id), DBP_T(now)};
    struct db_res *r = NULL;
    rc_t rc = db_exec(c,
                      "UPDATE signing_keys SET status = 'active', retire_after = NULL, "
                      "activated_at = $2, updated_at = $2 "
                      "WHERE id = $1 AND status = 'retiring' AND " SK_LIVE,
                      2, p, &r);
    if (rc == RC_OK && db_res_affected(r) != 1)
        rc = RC_NOT_FOUND;
    db_res_free(r);
    return rc;
}

rc_t signing_keys_retire_due(struct db_conn *c, struct arena *a, int64_t now_us,
                             const char ***out_kids, size_t *out_n)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(now)};
    struct db_res *r = NULL;
    *out_kids = NULL;
    *out_n = 0;
    rc_t rc = db_exec(c,
                      "UPDATE signing_keys SET status = 'retired', retired_at = $1, "
                      "updated_at = $1 WHERE status = 'retiring' AND " SK_LIVE
                      " AND retire_after IS NOT NULL AND retire_after <= $1 RETURNING kid",
                      1, p, &r);
    if (rc == RC_OK)
        *out_kids = sorted_col(a, r, 0, out_n);
    db_res_free(r);
    return rc;
}

rc_t signing_keys_max_client_token_ttl(struct db_conn *c, int64_t *out)
{
    struct db_res *r = NULL;
    *out = 0;
    rc_t rc = db_exec(c,
                      "SELECT MAX(token_ttl_seconds) FROM oauth_clients "
                      "WHERE is_active AND deleted_at IS NULL",
                      0, NULL, &r);
    if (rc == RC_OK && db_res_rows(r) > 0)
        *out = db_res_int(r, 0, 0);
    db_res_free(r);
    return rc;
}
