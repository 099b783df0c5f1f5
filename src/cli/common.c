/* Shared start-up steps of the subcommands. */
#include "cli/cli.h"
#include "db/db.h"
#include "store/migrate.h"
#include "util/log.h"

#include <stdio.h>

int cli_load_config(struct config **out)
{
    char err[512];
    struct config_strlist warnings = {0};
    if (config_load(NULL, NULL, out, err, sizeof err, &warnings) != RC_OK) {
        fprintf(stderr, "authd: configuration error: %s\n", err);
        return 2;
    }
    const struct config *c = *out;
    enum log_level lvl = LOG_INFO;
    if (!log_level_parse(c->app.log_level, &lvl))
        lvl = LOG_INFO;
    log_init(lvl, c->app.service, config_env_name(c->app.environment));
    for (int i = 0; i < warnings.n; i++)
        log_msg(LOG_WARNING, "config_warning", "%s", warnings.items[i]);
    config_strlist_free(&warnings);
    return 0;
}

int cli_open_db(const struct config *cfg, struct db **out)
{
    struct db_opts o = {
        .pool_size = cfg->database.pool_size,
        .max_overflow = cfg->database.max_overflow,
        .pool_timeout_ms = cfg->database.pool_timeout_seconds * 1000,
        .pool_recycle_s = cfg->database.pool_recycle_seconds,
        .statement_timeout_ms = cfg->database.statement_timeout_ms,
        .sqlite_busy_timeout_ms = 5000,
        .sqlite_readers = 4,
    };
    rc_t rc = db_open(cfg->database.url, &o, out);
    if (rc != RC_OK) {
        log_msg(LOG_CRITICAL, "database_open_failed", "cannot open the database: %s", rc_str(rc));
        fprintf(stderr, "authd: cannot open the database (%s)\n", rc_str(rc));
        return 1;
    }
    return 0;
}

int cli_schema_ready(struct db *db)
{
    int n = 0;
    if (db_kind(db) == DB_SQLITE) {
        if (migrate_apply(db, &n) != RC_OK) {
            fprintf(stderr, "authd: applying migrations failed\n");
            return 1;
        }
        return 0;
    }
    if (migrate_pending(db, &n) != RC_OK) {
        fprintf(stderr, "authd: cannot read the migration ledger\n");
        return 1;
    }
    if (n > 0) {
        fprintf(stderr, "authd: %d pending migration(s); run `authd migrate` first\n", n);
        return 1;
    }
    return 0;
}
