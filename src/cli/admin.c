/* `authd create-admin --email ADDR [--password-stdin]` (config-ops §4.2):
 * the operator's way to a first admin in any environment. A new user needs
 * a password (one line on stdin, strong-password policy) and is created
 * verified and active with role admin; an existing, not deleted user is
 * promoted (and gets the new password when one is given). Prints
 * {"user_id": "<uuid>", "created": true|false}; logs go to stderr. */
#include "cli/cli.h"
#include "crypto/password.h"
#include "store/users.h"
#include "svc/audit.h"
#include "svc/validate.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PASSWORD_LINE_MAX 1024

static int usage(const char *msg)
{
    fprintf(stderr,
            "authd create-admin: %s\nusage: authd create-admin --email ADDR "
            "[--password-stdin]\n",
            msg);
    return 2;
}

/* One line from stdin without its line ending; NULL on EOF or overlong. */
static char *read_password(void)
{
    char *buf = xmalloc(PASSWORD_LINE_MAX + 2);
    if (!fgets(buf, PASSWORD_LINE_MAX + 2, stdin)) {
        free(buf);
        return NULL;
    }
    size_t n = strlen(buf);
    if (n > PASSWORD_LINE_MAX) {
        xfree_secret_str(buf);
        return NULL;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return buf;
}

static void audit(struct db *db, const char *type, const char *uid, json_t *meta)
{
    struct audit_event ev = {.event_type = type,
                             .actor_type = AUDIT_ACTOR_SYSTEM,
                             .target_id = uid,
                             .target_type = "user",
                             .success = true,
                             .metadata = meta};
    audit_write_detached(db, &ev);
    json_decref(meta);
}

int cli_create_admin(int argc, char **argv)
{
    const char *email_in = NULL;
    bool with_password = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--email") == 0 && i + 1 < argc)
            email_in = argv[++i];
        else if (strncmp(argv[i], "--email=", 8) == 0)
            email_in = argv[i] + 8;
        else if (strcmp(argv[i], "--password-stdin") == 0)
            with_password = true;
        else
            return usage("unknown option");
    }
    char email[EMAIL_MAX_BYTES + 1];
    if (!email_in)
        return usage("--email is required");
    if (!validate_email(email_in, email))
        return usage("--email is not a valid email address");

    struct config *cfg = NULL;
    struct db *db = NULL;
    struct password_ctx *pw = NULL;
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    char *password = NULL, *hash = NULL;
    log_set_fd(2);
    int code = cli_load_config(&cfg);
    if (code)
        goto out;
    if ((code = cli_open_db(cfg, &db)) != 0 || (code = cli_schema_ready(db)) != 0)
        goto out;
    if (with_password) {
        password = read_password();
        if (!password || !validate_new_password(password)) {
            fprintf(stderr, "authd create-admin: the password does not meet the policy "
                            "(8-64 characters with an uppercase letter, a digit and a special "
                            "character)\n");
            code = 2;
            goto out;
        }
        struct password_params pp = {(uint32_t)cfg->password_hash.memory_kib,
                                     (uint32_t)cfg->password_hash.iterations};
        if (password_ctx_new(&pp, &pw) != RC_OK ||
            password_hash(pw, password, strlen(password), &hash) != RC_OK) {
            code = 1;
            goto out;
        }
    }
    code = 1;
    struct user u;
    rc_t rc = db_acquire(db, DB_WRITE, &c);
    if (!rc)
        rc = db_begin(c);
    if (!rc)
        rc = users_find_by_email(c, a, email, &u);
    int64_t now = time_now_us();
    bool created = false;
    char old_role[17] = "";
    if (rc == RC_NOT_FOUND) {
        if (!hash) {
            fprintf(stderr, "authd create-admin: no such user; --password-stdin is required to "
                            "create one\n");
            code = 2;
            goto out;
        }
        uuid_v4(u.id);
        struct user_new nu = {.id = u.id,
                              .email = email,
                              .password_hash = hash,
                              .role = "admin",
                              .email_verified = true,
                              .now_us = now};
        rc = users_insert(c, &nu);
        created = true;
    } else if (rc == RC_OK && u.deleted) {
        fprintf(stderr, "authd create-admin: the user is deleted or erased\n");
        goto out;
    } else if (rc == RC_OK) {
        snprintf(old_role, sizeof old_role, "%s", u.role);
        rc = users_set_role(c, u.id, "admin", now);
        if (!rc && hash)
            rc = users_set_password_hash(c, u.id, hash, now);
    }
    if (!rc)
        rc = db_commit(c);
    db_release(c);
    c = NULL;
    if (rc) {
        fprintf(stderr, "authd create-admin: failed (%s)\n", rc_str(rc));
        goto out;
    }
    if (created)
        audit(db, "user.created", u.id, json_pack("{s:s}", "provider", "cli"));
    else
        audit(db, "user.role_changed", u.id,
              json_pack("{s:s, s:s}", "old_role", old_role, "new_role", "admin"));
    printf("{\"user_id\": \"%s\", \"created\": %s}\n", u.id, created ? "true" : "false");
    fflush(stdout);
    code = 0;
out:
    db_release(c);
    xfree_secret_str(password);
    xfree_secret_str(hash);
    password_ctx_free(pw);
    arena_free(a);
    db_close(db);
    config_free(cfg);
    return code;
}
