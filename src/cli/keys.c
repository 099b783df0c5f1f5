/* `authd rotate-signing-key [--overlap-seconds N]` (config-ops §4.1): one
 * signing-key rotation (§5.3), then the audit row, then exactly one JSON
 * line on stdout:
 *
 *   {"new_kid": "<kid>", "retiring_kid": "<kid>" | null, "rotation_overlap_seconds": N}
 *
 * N is the overlap of this run: the option's value, else
 * SIGNING_KEYS__ROTATION_OVERLAP_SECONDS. Exit 2 for usage and
 * configuration errors (negative or non-integer N, bad JWT PEMs), 1 for
 * runtime failures. Log lines go to stderr so stdout holds only the result
 * line. On SQLite pending migrations are applied first (as
 * `serve` does); PostgreSQL needs `authd migrate`. */
#include "cli/cli.h"
#include "store/migrate.h"
#include "svc/audit.h"
#include "svc/keys.h"
#include "svc/secrets.h"
#include "util/log.h"
#include "util/str.h"

#include <stdio.h>
#include <string.h>

#define OPT_OVERLAP "--overlap-seconds"

/* Parses argv[2..]; returns 0 or the exit code 2. */
static int parse_args(int argc, char **argv, int64_t *overlap, bool *explicit_overlap)
{
    *explicit_overlap = false;
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        size_t ol = strlen(OPT_OVERLAP);
        if (strcmp(argv[i], OPT_OVERLAP) == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "authd rotate-signing-key: %s needs a value\n", OPT_OVERLAP);
                return 2;
            }
            v = argv[++i];
        } else if (strncmp(argv[i], OPT_OVERLAP "=", ol + 1) == 0) {
            v = argv[i] + ol + 1;
        } else {
            fprintf(stderr, "authd rotate-signing-key: unknown option %s\n", argv[i]);
            return 2;
        }
        int64_t n = 0;
        if (!str_parse_i64(v, &n) || n < 0 || n > KEYS_OVERLAP_MAX_S) {
            fprintf(stderr,
                    "authd rotate-signing-key: %s: allowed: an integer from 0 to %lld "
                    "(seconds)\n",
                    OPT_OVERLAP, (long long)KEYS_OVERLAP_MAX_S);
            return 2;
        }
        *overlap = n;
        *explicit_overlap = true;
    }
    return 0;
}

/* api-admin §9.4 note: actor system, metadata with source "cli". Written in
 * its own unit after the rotation committed; a failure is logged, never
 * fatal (api-admin §9.2). */
static void audit_rotation(struct db *db, const char *new_kid, const char *retiring_kid,
                           int64_t overlap)
{
    json_t *meta = json_pack("{s:s, s:s?, s:I, s:s}", "new_kid", new_kid, "retiring_kid",
                             retiring_kid[0] ? retiring_kid : NULL, "rotation_overlap_seconds",
                             (json_int_t)overlap, "source", "cli");
    struct audit_event ev = {
        .event_type = "signing_key.rotate.success",
        .actor_type = AUDIT_ACTOR_SYSTEM,
        .success = true,
        .metadata = meta,
    };
    audit_write_detached(db, &ev);
    json_decref(meta);
}

static void print_result(const char *new_kid, const char *retiring_kid, int64_t overlap)
{
    printf("{\"new_kid\": \"%s\", \"retiring_kid\": ", new_kid);
    if (retiring_kid[0])
        printf("\"%s\"", retiring_kid);
    else
        fputs("null", stdout);
    printf(", \"rotation_overlap_seconds\": %lld}\n", (long long)overlap);
    fflush(stdout);
}

int cli_rotate_signing_key(int argc, char **argv)
{
    struct config *cfg = NULL;
    struct db *db = NULL;
    struct secrets *sec = NULL;
    struct keys *keys = NULL;
    int64_t overlap = 0;
    bool explicit_overlap = false;
    char err[512], new_kid[KEYS_KID_MAX], retiring_kid[KEYS_KID_MAX];
    int code = parse_args(argc, argv, &overlap, &explicit_overlap);
    if (code)
        return code;
    /* stdout carries exactly the result line: logs go to stderr. */
    log_set_fd(2);
    if ((code = cli_load_config(&cfg)) != 0)
        goto out;
    if (!explicit_overlap)
        overlap = cfg->signing_keys.rotation_overlap_seconds;
    if (keys_check_config(cfg, err, sizeof err) != RC_OK) {
        fprintf(stderr, "authd: configuration error: %s\n", err);
        code = 2;
        goto out;
    }
    if ((code = cli_open_db(cfg, &db)) != 0 || (code = cli_schema_ready(db)) != 0)
        goto out;
    const char *data_dir = db_sqlite_dir(db) ? db_sqlite_dir(db) : "./data";
    code = 1;
    if (secrets_load(cfg, data_dir, &sec) != RC_OK) {
        fprintf(stderr, "authd: cannot load the instance key in %s\n", data_dir);
        goto out;
    }
    if (keys_new(db, cfg, sec, &keys) != RC_OK) {
        fprintf(stderr, "authd: cannot load the signing keys\n");
        goto out;
    }
    rc_t rc = keys_rotate(keys, overlap, explicit_overlap, new_kid, retiring_kid);
    if (rc != RC_OK) {
        fprintf(stderr, "authd rotate-signing-key: rotation failed (%s)\n", rc_str(rc));
        goto out;
    }
    audit_rotation(db, new_kid, retiring_kid, overlap);
    print_result(new_kid, retiring_kid, overlap);
    code = 0;
out:
    keys_free(keys);
    secrets_free(sec);
    db_close(db);
    config_free(cfg);
    return code;
}
