/* `authd migrate`: applies pending schema migrations and prints
 * {"applied": N}. Idempotent; safe to run from several hosts at once. */
#include "cli/cli.h"
#include "db/db.h"
#include "store/migrate.h"
#include "util/log.h"

#include <stdio.h>
#include <string.h>

int cli_migrate(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        fprintf(stderr, "authd migrate: unknown option %s\n", argv[i]);
        return 2;
    }
    struct config *cfg = NULL;
    struct db *db = NULL;
    int code = cli_load_config(&cfg);
    if (code)
        goto out;
    code = cli_open_db(cfg, &db);
    if (code)
        goto out;
    int applied = 0;
    rc_t rc = migrate_apply(db, &applied);
    if (rc != RC_OK) {
        fprintf(stderr, "authd migrate: failed (%s)\n", rc_str(rc));
        code = 1;
        goto out;
    }
    printf("{\"applied\": %d}\n", applied);
    fflush(stdout);
out:
    db_close(db);
    config_free(cfg);
    return code;
}
