/* Subcommands of the authd binary (config-ops §4). Each returns the process
 * exit code: 0 success, 1 runtime failure, 2 usage or configuration error. */
#ifndef AUTHD_CLI_CLI_H
#define AUTHD_CLI_CLI_H

#include <stdio.h>

#include "config/config.h"
#include "db/db.h"

#define AUTHD_VERSION "0.1.0"

int cli_serve(int argc, char **argv);
int cli_migrate(int argc, char **argv);
int cli_rotate_signing_key(int argc, char **argv); /* cli/keys.c */
void cli_usage(FILE *f);

/* Loads config (printing the one-line error to stderr), initialises
 * logging, logs production warnings. Returns 0 or the exit code 2. */
int cli_load_config(struct config **out);
/* SQLite: applies pending migrations; PostgreSQL: exit code 1 when any is
 * pending (run `authd migrate`). Returns 0 or the exit code. */
int cli_schema_ready(struct db *db);
int cli_create_admin(int argc, char **argv); /* cli/admin.c */
/* Opens the database per config. Logs and returns exit code 1 on failure. */
int cli_open_db(const struct config *cfg, struct db **out);

#endif
