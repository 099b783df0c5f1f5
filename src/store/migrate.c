/* Schema migration runner (see migrate.h): picks the embedded SQL files of
 * the database's dialect, orders them by version and applies the ones the
 * ledger does not list, each in one transaction with its ledger row.
 * Invariant: a version is in schema_migrations iff its whole file ran. */
#include "store/migrate.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIGRATE_VERSION_MAX 128

struct mig {
    char version[MIGRATE_VERSION_MAX];
    const char *data;
};

static const char *const ledger_sqlite =
    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
    "    version TEXT NOT NULL,\n"
    "    applied_at TEXT NOT NULL,\n"
    "    CONSTRAINT pk_schema_migrations PRIMARY KEY (version)\n"
    ") STRICT";
static const char *const ledger_pg = "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
                                     "    version text NOT NULL,\n"
                                     "    applied_at timestamptz NOT NULL,\n"
                                     "    CONSTRAINT pk_schema_migrations PRIMARY KEY (version)\n"
                                     ")";

static int mig_cmp(const void *a, const void *b)
{
    return strcmp(((const struct mig *)a)->version, ((const struct mig *)b)->version);
}

static bool version_ok(const char *v, size_t n)
{
    if (n == 0 || n >= MIGRATE_VERSION_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

/* Files of this dialect: the directory holding the file is named like it. */
static bool in_dialect(const char *path, const char *base, const char *dialect)
{
    size_t n = strlen(dialect);
    if ((size_t)(base - path) < n + 1)
        return false;
    const char *dir = base - 1 - n;
    return strncmp(dir, dialect, n) == 0 && (dir == path || dir[-1] == '/');
}

static rc_t collect(enum db_kind kind, const struct embedded_file *files, struct mig **out,
                    size_t *out_n)
{
    const char *dialect = kind == DB_SQLITE ? "sqlite" : "postgres";
    size_t cap = 0, n = 0;
    struct mig *m = NULL;
    for (const struct embedded_file *f = files; f && f->path; f++) {
        const char *slash = strrchr(f->path, '/');
        const char *base = slash ? slash + 1 : f->path;
        if (!slash || !in_dialect(f->path, base, dialect))
            continue;
        size_t len = strlen(base);
        if (len < 5 || strcmp(base + len - 4, ".sql") != 0 || !version_ok(base, len - 4)) {
            log_msg(LOG_ERROR, "migration_invalid", "unusable migration file name %s", f->path);
            free(m);
            return RC_INVALID;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            m = xrealloc(m, cap * sizeof *m);
        }
        memcpy(m[n].version, base, len - 4);
        m[n].version[len - 4] = '\0';
        m[n].data = f->data ? f->data : "";
        n++;
    }
    if (n)
        qsort(m, n, sizeof *m, mig_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(m[i - 1].version, m[i].version) == 0) {
            log_msg(LOG_ERROR, "migration_invalid", "duplicate migration version %s", m[i].version);
            free(m);
            return RC_INVALID;
        }
    }
    *out = m;
    *out_n = n;
    return RC_OK;
}

/* Inside a write unit: serialise concurrent runners on PostgreSQL. */
static rc_t lock_unit(struct db_conn *c)
{
    if (db_conn_kind(c) != DB_POSTGRES)
        return RC_OK;
    struct db_param p[] = {DBP_I(MIGRATE_PG_LOCK_KEY)};
    return db_exec(c, "SELECT pg_advisory_xact_lock(CAST($1 AS bigint))", 1, p, NULL);
}

static rc_t ensure_ledger(struct db_conn *c)
{
    rc_t rc = db_begin(c);
    if (rc == RC_OK)
        rc = lock_unit(c);
    if (rc == RC_OK)
        rc = db_exec(c, db_conn_kind(c) == DB_SQLITE ? ledger_sqlite : ledger_pg, 0, NULL, NULL);
    if (rc == RC_OK)
        return db_commit(c);
    db_rollback(c);
    return rc;
}

static rc_t is_applied(struct db_conn *c, const char *version, bool *out)
{
    struct db_res *r = NULL;
    struct db_param p[] = {DBP_T(version)};
    rc_t rc = db_exec(c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, p, &r);
    if (rc == RC_OK)
        *out = db_res_rows(r) > 0;
    db_res_free(r);
    return rc;
}

/* One migration and its ledger row in one unit; *out_done = it ran now. */
static rc_t apply_one(struct db_conn *c, const struct mig *m, bool *out_done)
{
    bool already = false;
    char now[TIME_STR_MAX];
    *out_done = false;
    rc_t rc = db_begin(c);
    if (rc == RC_OK)
        rc = lock_unit(c);
    if (rc == RC_OK)
        rc = is_applied(c, m->version, &already);
    if (rc == RC_OK && already) {
        db_rollback(c);
        return RC_OK;
    }
    if (rc == RC_OK)
        rc = db_exec_script(c, m->data);
    if (rc == RC_OK) {
        time_format(time_now_us(), TIME_STYLE_DB, now);
        struct db_param p[] = {DBP_T(m->version), {.type = DBP_TEXT, .s = now}};
        rc = db_exec(c, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", 2, p,
                     NULL);
    }
    if (rc == RC_OK)
        rc = db_commit(c);
    else
        db_rollback(c);
    if (rc == RC_OK)
        *out_done = true;
    return rc;
}

rc_t migrate_apply_files(struct db *db, const struct embedded_file *files, int *out_applied)
{
    struct mig *m = NULL;
    size_t n = 0;
    int applied = 0;
    struct db_conn *c = NULL;
    if (out_applied)
        *out_applied = 0;
    rc_t rc = collect(db_kind(db), files, &m, &n);
    if (rc == RC_OK)
        rc = db_acquire(db, DB_WRITE, &c);
    if (rc == RC_OK)
        rc = ensure_ledger(c);
    for (size_t i = 0; rc == RC_OK && i < n; i++) {
        bool done = false;
        rc = apply_one(c, &m[i], &done);
        if (rc) {
            log_msg(LOG_ERROR, "migration_failed", "migration %s failed: %s (%s)", m[i].version,
                    rc_str(rc), db_conn_error(c));
        } else if (done) {
            applied++;
            log_msg(LOG_INFO, "migration_applied", "applied migration %s", m[i].version);
        }
    }
    db_release(c);
    free(m);
    if (out_applied)
        *out_applied = applied;
    return rc;
}

rc_t migrate_apply(struct db *db, int *out_applied)
{
    return migrate_apply_files(db, migrations_embedded, out_applied);
}

static rc_t ledger_exists(struct db_conn *c, bool *out)
{
    struct db_res *r = NULL;
    const char *sql = db_conn_kind(c) == DB_SQLITE
                          ? "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                            "name = 'schema_migrations'"
                          : "SELECT CAST(count(*) AS integer) FROM pg_catalog.pg_class "
                            "WHERE oid = to_regclass('schema_migrations')";
    rc_t rc = db_exec(c, sql, 0, NULL, &r);
    if (rc == RC_OK)
        *out = db_res_int(r, 0, 0) > 0;
    db_res_free(r);
    return rc;
}

rc_t migrate_pending_files(struct db *db, const struct embedded_file *files, int *out_pending)
{
    struct mig *m = NULL;
    size_t n = 0;
    int pending = 0;
    bool exists = false;
    struct db_conn *c = NULL;
    *out_pending = 0;
    rc_t rc = collect(db_kind(db), files, &m, &n);
    if (rc == RC_OK)
        rc = db_acquire(db, DB_READ, &c);
    if (rc == RC_OK)
        rc = ledger_exists(c, &exists);
    for (size_t i = 0; rc == RC_OK && i < n; i++) {
        bool done = false;
        if (exists)
            rc = is_applied(c, m[i].version, &done);
        pending += !done;
    }
    db_release(c);
    free(m);
    if (rc == RC_OK)
        *out_pending = pending;
    return rc;
}

rc_t migrate_pending(struct db *db, int *out_pending)
{
    return migrate_pending_files(db, migrations_embedded, out_pending);
}
