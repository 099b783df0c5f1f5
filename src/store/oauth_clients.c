/* oauth_clients table statements (see oauth_clients.h). Every read and
 * write filters on deleted_at IS NULL, so a soft-deleted client behaves as
 * missing everywhere; the UNIQUE client_id still covers deleted rows. */
#include "store/oauth_clients.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_COLS                                                                                \
    "id, client_id, client_secret_hash, client_secret_prefix, name, scopes, is_active, "           \
    "token_ttl_seconds, created_at"

static const char *dup(struct arena *a, const struct db_res *r, int row, int col)
{
    const char *v = db_res_get(r, row, col);
    return arena_strdup(a, v ? v : "");
}

static rc_t row_at(struct db_res *r, int i, struct arena *a, struct oauth_client_row *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", db_res_get(r, i, 0));
    out->client_id = dup(a, r, i, 1);
    out->client_secret_hash = dup(a, r, i, 2);
    out->client_secret_prefix = dup(a, r, i, 3);
    out->name = dup(a, r, i, 4);
    char **items = NULL;
    rc_t rc = db_res_text_array(r, i, 5, &items, &out->n_scopes);
    if (rc)
        return rc;
    out->scopes = (const char *const *)arena_defer(a, free, items);
    out->is_active = db_res_bool(r, i, 6);
    out->token_ttl_seconds = db_res_int(r, i, 7);
    if (!db_res_time(r, i, 8, &out->created_at_us))
        return RC_DB;
    return RC_OK;
}

/* Runs a statement that yields at most one row into *out. */
static rc_t exec_one_row(struct db_conn *c, struct arena *a, const char *sql, int n,
                         const struct db_param *p, struct oauth_client_row *out)
{
    struct db_res *r = NULL;
    rc_t rc = db_exec(c, sql, n, p, &r);
    if (!rc)
        rc = db_res_rows(r) ? row_at(r, 0, a, out) : RC_NOT_FOUND;
    db_res_free(r);
    return rc;
}

rc_t oauth_clients_insert(struct db_conn *c, const struct oauth_client_new *n)
{
    char now[TIME_STR_MAX];
    time_format(n->now_us, TIME_STYLE_DB, now);
    char *scopes = db_text_array_new(db_conn_kind(c), n->scopes, n->n_scopes);
    struct db_param p[] = {DBP_T(n->id),
                           DBP_T(n->client_id),
                           DBP_T(n->client_secret_hash),
                           DBP_T(n->client_secret_prefix),
                           DBP_T(n->name),
                           DBP_T(scopes),
                           DBP_I(n->token_ttl_seconds),
                           DBP_T(now)};
    struct db_res *r = NULL;
    rc_t rc = db_exec(c,
                      "INSERT INTO oauth_clients (id, client_id, client_secret_hash, "
                      "client_secret_prefix, name, scopes, role, is_active, token_ttl_seconds, "
                      "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'service', TRUE, "
                      "$7, $8, $8) ON CONFLICT DO NOTHING",
                      8, p, &r);
    if (!rc && db_res_affected(r) == 0)
        rc = RC_CONFLICT;
    db_res_free(r);
    free(scopes);
    return rc;
}

rc_t oauth_clients_get(struct db_conn *c, struct arena *a, const char *id,
                       struct oauth_client_row *out)
{
    struct db_param p[] = {DBP_T(id)};
    return exec_one_row(c, a,
                        "SELECT " CLIENT_COLS " FROM oauth_clients WHERE id = $1 AND "
                        "deleted_at IS NULL",
                        1, p, out);
}

rc_t oauth_clients_find(struct db_conn *c, struct arena *a, const char *client_id,
                        struct oauth_client_row *out)
{
    struct db_param p[] = {DBP_T(client_id)};
    return exec_one_row(c, a,
                        "SELECT " CLIENT_COLS " FROM oauth_clients WHERE client_id = $1 AND "
                        "deleted_at IS NULL",
                        1, p, out);
}

rc_t oauth_clients_page(struct db_conn *c, struct arena *a, bool filter_active, bool active,
                        int64_t after_created_us, const char *after_id, int limit,
                        struct oauth_client_row **out, int *out_n)
{
    /* One SQL text: a NULL $1 / $4 switches the filter / keyset off. The
     * cursor id is passed twice ($4 as text for the NULL test, $5 compared
     * with the uuid column): PostgreSQL gives each parameter one type. */
    static const char sql[] =
        "SELECT " CLIENT_COLS " FROM oauth_clients WHERE deleted_at IS NULL AND "
        "(CAST($1 AS text) IS NULL OR is_active = $2) AND "
        "(CAST($4 AS text) IS NULL OR created_at < $3 OR (created_at = $3 AND id < $5)) "
        "ORDER BY created_at DESC, id DESC LIMIT $6";
    char after[TIME_STR_MAX];
    time_format(after_created_us, TIME_STYLE_DB, after);
    struct db_param p[] = {DBP_T(filter_active ? "1" : NULL),
                           DBP_B(active),
                           DBP_T(after_id ? after : NULL),
                           DBP_T(after_id),
                           DBP_T(after_id),
                           DBP_I(limit + 1)};
    struct db_res *r = NULL;
    rc_t rc = db_exec(c, sql, 6, p, &r);
    *out_n = 0;
    *out = NULL;
    if (!rc) {
        int n = db_res_rows(r);
        struct oauth_client_row *rows = arena_zalloc(a, (size_t)(n ? n : 1) * sizeof *rows);
        for (int i = 0; !rc && i < n; i++)
            rc = row_at(r, i, a, &rows[i]);
        if (!rc) {
            *out = rows;
            *out_n = n;
        }
    }
    db_res_free(r);
    return rc;
}

rc_t oauth_clients_update(struct db_conn *c, struct arena *a, const char *id,
                          const struct oauth_client_patch *pa, int64_t now_us,
                          struct oauth_client_row *out)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    char *scopes = pa->scopes ? db_text_array_new(db_conn_kind(c), pa->scopes, pa->n_scopes) : NULL;
    struct db_param p[] = {DBP_T(id),
                           DBP_T(pa->name),
                           DBP_T(scopes),
                           pa->has_ttl ? DBP_I(pa->token_ttl_seconds) : DBP_NUL,
                           pa->has_active ? DBP_B(pa->is_active) : DBP_NUL,
                           DBP_T(now)};
    rc_t rc = exec_one_row(c, a,
                           "UPDATE oauth_clients SET name = COALESCE($2, name), "
                           "scopes = COALESCE($3, scopes), "
                           "token_ttl_seconds = COALESCE($4, token_ttl_seconds), "
                           "is_active = COALESCE($5, is_active), updated_at = $6 "
                           "WHERE id = $1 AND deleted_at IS NULL RETURNING " CLIENT_COLS,
                           6, p, out);
    free(scopes);
    return rc;
}

rc_t oauth_clients_set_secret(struct db_conn *c, struct arena *a, const char *id,
                              const char *secret_hash, const char *secret_prefix, int64_t now_us,
                              struct oauth_client_row *out)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(id), DBP_T(secret_hash), DBP_T(secret_prefix), DBP_T(now)};
    return exec_one_row(c, a,
                        "UPDATE oauth_clients SET client_secret_hash = $2, "
                        "client_secret_prefix = $3, updated_at = $4 WHERE id = $1 AND "
                        "deleted_at IS NULL RETURNING " CLIENT_COLS,
                        4, p, out);
}

rc_t oauth_clients_soft_delete(struct db_conn *c, struct arena *a, const char *id, int64_t now_us,
                               struct oauth_client_row *out)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(id), DBP_T(now)};
    return exec_one_row(
        c, a,
        "UPDATE oauth_clients SET deleted_at = $2, updated_at = $2, "
        "is_active = FALSE WHERE id = $1 AND deleted_at IS NULL RETURNING " CLIENT_COLS,
        2, p, out);
}
