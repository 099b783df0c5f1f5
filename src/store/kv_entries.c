/* kv_entries statements (see kv_entries.h). Expiry is wall-clock in the
 * table; reads at load skip expired rows, the sweeper deletes them. */
#include "store/kv_entries.h"
#include "util/timeutil.h"

static rc_t run(struct db *db, const char *sql, int n, const struct db_param *p)
{
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(db, DB_WRITE, &c);
    if (rc == RC_OK)
        rc = db_exec(c, sql, n, p, NULL);
    db_release(c);
    return rc;
}

#define PUT_SQL                                                                                    \
    "INSERT INTO kv_entries (key, value, expires_at) VALUES ($1, $2, $3) "                         \
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"

static rc_t put_on(struct db_conn *c, const char *key, const char *val, int64_t expires_at_us)
{
    char exp[TIME_STR_MAX];
    if (expires_at_us)
        time_format(expires_at_us, TIME_STYLE_DB, exp);
    struct db_param p[] = {DBP_T(key), DBP_T(val), DBP_T(expires_at_us ? exp : NULL)};
    return db_exec(c, PUT_SQL, 3, p, NULL);
}

rc_t kv_entries_put_many_on(struct db_conn *c, const char *const *keys, const char *const *vals,
                            const int64_t *expires_at_us, int n)
{
    rc_t rc = RC_OK;
    for (int i = 0; !rc && i < n; i++)
        rc = put_on(c, keys[i], vals[i], expires_at_us[i]);
    return rc;
}

rc_t kv_entries_put_many(struct db *db, const char *const *keys, const char *const *vals,
                         const int64_t *expires_at_us, int n)
{
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(db, DB_WRITE, &c);
    if (!rc)
        rc = db_begin(c);
    if (!rc)
        rc = kv_entries_put_many_on(c, keys, vals, expires_at_us, n);
    if (!rc)
        rc = db_commit(c);
    else if (c)
        db_rollback(c);
    db_release(c);
    return rc;
}

rc_t kv_entries_put(struct db *ctx, const char *key, const char *val, int64_t expires_at_us)
{
    char exp[TIME_STR_MAX];
    if (expires_at_us)
        time_format(expires_at_us, TIME_STYLE_DB, exp);
    struct db_param p[] = {DBP_T(key), DBP_T(val), DBP_T(expires_at_us ? exp : NULL)};
    return run(ctx,
               "INSERT INTO kv_entries (key, value, expires_at) VALUES ($1, $2, $3) "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
               "expires_at = excluded.expires_at",
               3, p);
}

rc_t kv_entries_del(struct db *ctx, const char *key)
{
    struct db_param p[] = {DBP_T(key)};
    return run(ctx, "DELETE FROM kv_entries WHERE key = $1", 1, p);
}

rc_t kv_entries_load(struct db *ctx, void (*cb)(void *, const char *, const char *, int64_t),
                     void *cb_ctx)
{
    struct db_conn *c = NULL;
    struct db_res *r = NULL;
    char now[TIME_STR_MAX];
    time_format(time_now_us(), TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(now)};
    rc_t rc = db_acquire(ctx, DB_READ, &c);
    if (rc == RC_OK)
        rc = db_exec(c,
                     "SELECT key, value, expires_at FROM kv_entries "
                     "WHERE expires_at IS NULL OR expires_at > $1",
                     1, p, &r);
    for (int i = 0; rc == RC_OK && i < db_res_rows(r); i++) {
        int64_t exp = 0;
        if (!db_res_time(r, i, 2, &exp))
            exp = 0;
        cb(cb_ctx, db_res_get(r, i, 0), db_res_get(r, i, 1), exp);
    }
    db_res_free(r);
    db_release(c);
    return rc;
}

int kv_entries_sweep(struct db *ctx)
{
    struct db_conn *c = NULL;
    struct db_res *r = NULL;
    char now[TIME_STR_MAX];
    time_format(time_now_us(), TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(now)};
    int n = 0;
    if (db_acquire(ctx, DB_WRITE, &c) == RC_OK &&
        db_exec(c, "DELETE FROM kv_entries WHERE expires_at <= $1", 1, p, &r) == RC_OK)
        n = (int)db_res_affected(r);
    db_res_free(r);
    db_release(c);
    return n;
}
