/* Schema migration runner (data-model §13, §14.3).
 *
 * Migrations are the SQL files of migrations/<dialect>/ embedded in the
 * binary at build time (tools/embed.c → migrations_embedded[]); dialect
 * "sqlite" or "postgres" follows the database. A migration's version is its
 * file basename without ".sql" (e.g. "0001_init"); versions apply in
 * strcmp order. The ledger table schema_migrations(version text primary
 * key, applied_at timestamp not null) is owned here, not by the files.
 *
 * Each migration runs in its own transaction together with its ledger row,
 * so a failing migration leaves neither its changes nor its row. On
 * PostgreSQL every such transaction first takes a transaction-scoped
 * advisory lock (MIGRATE_PG_LOCK_KEY) and re-checks the ledger, so several
 * instances migrating at once apply each version exactly once; on SQLite
 * the writer's BEGIN IMMEDIATE gives the same exclusion across processes.
 * Migration files must not contain BEGIN/COMMIT.
 *
 * Thread-safety: callable from any thread; uses one DB_WRITE checkout. */
#ifndef AUTHD_STORE_MIGRATE_H
#define AUTHD_STORE_MIGRATE_H

#include "db/db.h"
#include "util/rc.h"

/* pg_advisory_xact_lock key of the runner ("authdmig"). */
#define MIGRATE_PG_LOCK_KEY 0x617574686d696700LL

/* Layout of the generated table (build/gen/migrations_data.c): path like
 * "migrations/sqlite/0001_init.sql", data the file text; ends with a
 * {NULL, NULL} entry. */
struct embedded_file {
    const char *path;
    const char *data;
};
extern const struct embedded_file migrations_embedded[];

/* Applies every pending embedded migration of db's dialect, in version
 * order. out_applied (may be NULL) receives how many were applied now (0
 * when up to date). Errors: RC_INVALID when a file name is not a usable
 * version, otherwise the db_* error of the failing step (logged with the
 * version). Migrations applied before the failure stay applied. */
rc_t migrate_apply(struct db *db, int *out_applied) WUR;

/* Counts embedded migrations of db's dialect missing from the ledger (all
 * of them when the ledger table does not exist yet). Read-only. */
rc_t migrate_pending(struct db *db, int *out_pending) WUR;

/* As migrate_apply / migrate_pending over an explicit NULL-terminated file
 * table instead of migrations_embedded (tests; the `path` rules are the
 * same: only files under a "sqlite/" or "postgres/" directory that matches
 * db's dialect are considered). */
rc_t migrate_apply_files(struct db *db, const struct embedded_file *files, int *out_applied) WUR;
rc_t migrate_pending_files(struct db *db, const struct embedded_file *files, int *out_pending) WUR;

#endif
