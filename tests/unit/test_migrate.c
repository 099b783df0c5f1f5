/* Migration runner and schema tests. Every case runs on SQLite (a fresh
 * file per case in a temp dir) and, when AUTHD_TEST_PG_URL is set, on that
 * PostgreSQL database (a throwaway one: each case resets the public schema).
 * test_db starts its own PostgreSQL cluster and runs a smaller migration
 * case there; this file holds the complete schema contract (every table,
 * every column in order, every named index, the constraints of
 * data-model.md). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "store/migrate.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#define assert_ok(expr)                                                                            \
    do {                                                                                           \
        rc_t rc_ = (expr);                                                                         \
        if (rc_ != RC_OK)                                                                          \
            fail_msg("%s: %s", #expr, rc_str(rc_));                                                \
    } while (0)
#define assert_rc(expr, want)                                                                      \
    do {                                                                                           \
        rc_t rc_ = (expr);                                                                         \
        if (rc_ != (want))                                                                         \
            fail_msg("%s: got %s, want %s", #expr, rc_str(rc_), rc_str(want));                     \
    } while (0)

struct fx {
    enum db_kind kind;
    struct db *db;
    char url[600];
};

static char g_tmp[256];
static int g_seq;
static const char *g_pg_url;

/* The contract: data-model.md §2-§9, §14 (columns in table order). */
static const struct {
    const char *table;
    const char *columns;
} k_schema[] = {
    {"users", "id,email,password_hash,is_active,created_at,updated_at,deleted_at,tenant_id,role,"
              "email_verified,email_verify_token_hash,email_verify_token_expires,"
              "email_otp_enabled,password_reset_token_hash,password_reset_token_expires"},
    {"user_identities", "id,user_id,provider,provider_user_id,email,created_at,updated_at,"
                        "deleted_at,tenant_id"},
    {"sessions", "session_id,id,user_id,hashed_refresh_token,auth_time,expires_at,revoked_at,"
                 "created_at,updated_at,deleted_at,tenant_id,ip_address,user_agent,last_seen_at,"
                 "revoke_reason,is_suspicious,suspicious_reasons"},
    {"api_keys", "id,user_id,name,service,hashed_key,key_prefix,scope,expires_at,revoked_at,"
                 "created_at,updated_at,deleted_at,tenant_id"},
    {"oauth_clients", "id,client_id,client_secret_hash,client_secret_prefix,name,scopes,role,"
                      "is_active,token_ttl_seconds,created_at,updated_at,deleted_at,tenant_id"},
    {"signing_keys", "id,kid,public_key,private_key,status,activated_at,retired_at,retire_after,"
                     "created_at,updated_at,deleted_at,tenant_id"},
    {"audit_events", "id,event_type,actor_id,actor_type,target_id,target_type,ip_address,"
                     "user_agent,correlation_id,success,failure_reason,metadata,created_at"},
    {"webhook_endpoints", "id,name,url,secret,events,is_active,created_at,updated_at,deleted_at,"
                          "tenant_id"},
    {"webhook_deliveries", "id,endpoint_id,event_type,payload,status,attempt_count,"
                           "last_attempted_at,next_retry_at,response_status,response_body,"
                           "created_at"},
    {"kv_entries", "key,value,expires_at"},
    {"email_outbox", "id,kind,to_address,subject,body_text,body_html,status,attempt_count,"
                     "next_attempt_at,expires_at,last_error,created_at,sent_at"},
    {"schema_migrations", "version,applied_at"},
};

static const char *const k_indexes[] = {
    "uq_users_email",
    "uq_users_email_lower",
    "ix_users_email_deleted_at",
    "ix_user_identities_user_id_deleted_at",
    "ix_sessions_id",
    "ix_sessions_user_id_deleted_at",
    "ix_sessions_user_created",
    "ix_sessions_suspicious_active",
    "ix_api_keys_hashed_key",
    "ix_api_keys_user_id_deleted_at",
    "ix_oauth_clients_client_id_deleted_at",
    "ix_signing_keys_status_deleted_at",
    "uq_signing_keys_single_active",
    "ix_audit_events_created_at",
    "ix_audit_events_event_type_created_at",
    "ix_audit_events_actor_id_created_at",
    "ix_audit_events_target_id_created_at",
    "ix_webhook_endpoints_is_active_deleted_at",
    "ix_webhook_deliveries_endpoint_created",
    "ix_webhook_deliveries_due",
    "ix_kv_entries_expires_at",
    "ix_email_outbox_due",
};

/* ---- fixtures --------------------------------------------------------- */

static void script_ok(struct db *db, const char *sql)
{
    struct db_conn *c = NULL;
    assert_ok(db_acquire(db, DB_WRITE, &c));
    rc_t rc = db_exec_script(c, sql);
    if (rc)
        fail_msg("script: %s (%s)", rc_str(rc), db_conn_error(c));
    db_release(c);
}

static int sqlite_setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof f);
    snprintf(f.url, sizeof f.url, "sqlite:///%s/m%d.db", g_tmp, ++g_seq);
    f.kind = DB_SQLITE;
    *state = &f;
    return db_open(f.url, NULL, &f.db) == RC_OK ? 0 : -1;
}

static int pg_setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof f);
    snprintf(f.url, sizeof f.url, "%s", g_pg_url);
    f.kind = DB_POSTGRES;
    *state = &f;
    if (db_open(f.url, NULL, &f.db) != RC_OK)
        return -1;
    script_ok(f.db, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    db_close(f->db);
    f->db = NULL;
    return 0;
}

static int64_t query_int(struct db *db, const char *sql, int n, const struct db_param *p)
{
    struct db_conn *c = NULL;
    struct db_res *r = NULL;
    assert_ok(db_acquire(db, DB_READ, &c));
    rc_t rc = db_exec(c, sql, n, p, &r);
    if (rc)
        fail_msg("%s: %s (%s)", sql, rc_str(rc), db_conn_error(c));
    int64_t v = db_res_int(r, 0, 0);
    db_res_free(r);
    db_release(c);
    return v;
}

/* Versions in migrations/<dialect>/ (both dialects have the same). */
#define MIGRATIONS 2

static void migrate_ok(struct db *db)
{
    int n = -1;
    assert_ok(migrate_apply(db, &n));
    assert_int_equal(n, MIGRATIONS);
}

/* Fails unless the named index exists in the current schema. */
static void assert_index(struct db_conn *c, enum db_kind kind, const char *name, const char *when)
{
    const char *sql = kind == DB_SQLITE
                          ? "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = $1"
                          : "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
                            "AND indexname = $1";
    struct db_param p[] = {DBP_T(name)};
    struct db_res *r = NULL;
    assert_ok(db_exec(c, sql, 1, p, &r));
    if (db_res_int(r, 0, 0) != 1)
        fail_msg("index %s missing%s", name, when);
    db_res_free(r);
}

static void now_str(char out[TIME_STR_MAX])
{
    time_format(time_now_us(), TIME_STYLE_DB, out);
}

static rc_t insert_user(struct db_conn *c, const char *email, const char *role, char *id_out)
{
    char id[UUID_STR_LEN + 1], now[TIME_STR_MAX];
    uuid_v4(id);
    now_str(now);
    if (id_out)
        memcpy(id_out, id, sizeof id);
    struct db_param p[] = {DBP_T(id), DBP_T(email), DBP_T(role), DBP_T(now)};
    return db_exec(c,
                   "INSERT INTO users (id, email, role, created_at, updated_at) "
                   "VALUES ($1, $2, $3, $4, $4)",
                   4, p, NULL);
}

static rc_t insert_key(struct db_conn *c, const char *status, bool deleted, char *id_out)
{
    char id[UUID_STR_LEN + 1], now[TIME_STR_MAX];
    uuid_v4(id);
    now_str(now);
    if (id_out)
        memcpy(id_out, id, sizeof id);
    /* $1 twice would not do: PostgreSQL gives a parameter one type (uuid
     * for id, varchar for kid would conflict). */
    struct db_param p[] = {DBP_T(id), DBP_T(status), DBP_T(now), DBP_T(deleted ? now : NULL),
                           DBP_T(id)};
    return db_exec(c,
                   "INSERT INTO signing_keys (id, kid, public_key, private_key, status, "
                   "activated_at, created_at, updated_at, deleted_at) "
                   "VALUES ($1, $5, 'pub', 'enc2:x', $2, $3, $3, $3, $4)",
                   5, p, NULL);
}

/* ---- cases ------------------------------------------------------------ */

static void test_apply_creates_schema(void **state)
{
    struct fx *f = *state;
    int n = -1;
    assert_ok(migrate_pending(f->db, &n));
    assert_int_equal(n, MIGRATIONS);
    migrate_ok(f->db);
    assert_ok(migrate_pending(f->db, &n));
    assert_int_equal(n, 0);

    const char *cols_sql =
        f->kind == DB_SQLITE
            ? "SELECT name FROM pragma_table_info($1) ORDER BY cid"
            : "SELECT column_name FROM information_schema.columns WHERE table_schema = "
              "current_schema() AND table_name = $1 ORDER BY ordinal_position";
    struct db_conn *c = NULL;
    assert_ok(db_acquire(f->db, DB_READ, &c));
    for (size_t i = 0; i < sizeof k_schema / sizeof *k_schema; i++) {
        struct db_res *r = NULL;
        struct db_param p[] = {DBP_T(k_schema[i].table)};
        assert_ok(db_exec(c, cols_sql, 1, p, &r));
        char got[1024] = "";
        size_t len = 0;
        for (int j = 0; j < db_res_rows(r) && len < sizeof got; j++)
            len += (size_t)snprintf(got + len, sizeof got - len, "%s%s", j ? "," : "",
                                    db_res_get(r, j, 0));
        db_res_free(r);
        if (strcmp(got, k_schema[i].columns) != 0)
            fail_msg("%s columns:\n got %s\nwant %s", k_schema[i].table, got, k_schema[i].columns);
    }
    /* No table beyond the contract. */
    const char *ntab_sql = f->kind == DB_SQLITE
                               ? "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                 "name NOT LIKE 'sqlite_%'"
                               : "SELECT count(*) FROM information_schema.tables WHERE "
                                 "table_schema = current_schema()";
    struct db_res *r = NULL;
    assert_ok(db_exec(c, ntab_sql, 0, NULL, &r));
    assert_int_equal(db_res_int(r, 0, 0), sizeof k_schema / sizeof *k_schema);
    db_res_free(r);
    for (size_t i = 0; i < sizeof k_indexes / sizeof *k_indexes; i++)
        assert_index(c, f->kind, k_indexes[i], "");
    if (f->kind == DB_POSTGRES) {
        /* Named constraints (informative on SQLite). */
        static const char *const cons[] = {
            "pk_users",
            "ck_users_role_allowed",
            "pk_sessions",
            "uq_sessions_id",
            "uq_sessions_hashed_refresh_token",
            "fk_sessions_user_id_users",
            "uq_api_keys_hashed_key",
            "fk_api_keys_user_id_users",
            "fk_user_identities_user_id_users",
            "uq_user_identities_provider_subject",
            "uq_oauth_clients_client_id",
            "ck_oauth_clients_ck_oauth_clients_role_allowed",
            "uq_signing_keys_kid",
            "ck_webhook_deliveries_status_allowed",
            "fk_webhook_deliveries_endpoint_id_webhook_endpoints",
            "pk_kv_entries",
            "pk_email_outbox",
            "pk_schema_migrations",
        };
        for (size_t i = 0; i < sizeof cons / sizeof *cons; i++) {
            struct db_param p[] = {DBP_T(cons[i])};
            assert_ok(
                db_exec(c, "SELECT count(*) FROM pg_constraint WHERE conname = $1", 1, p, &r));
            if (db_res_int(r, 0, 0) != 1)
                fail_msg("constraint %s missing", cons[i]);
            db_res_free(r);
        }
        /* Every FK is ON DELETE RESTRICT ('r'). */
        assert_ok(db_exec(c,
                          "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND "
                          "confdeltype <> 'r'",
                          0, NULL, &r));
        assert_int_equal(db_res_int(r, 0, 0), 0);
        db_res_free(r);
    }
    /* No database-side timestamp defaults anywhere. */
    if (f->kind == DB_POSTGRES) {
        assert_ok(db_exec(c,
                          "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                          "current_schema() AND data_type LIKE 'timestamp%' AND column_default "
                          "IS NOT NULL",
                          0, NULL, &r));
        assert_int_equal(db_res_int(r, 0, 0), 0);
        db_res_free(r);
    }
    db_release(c);
    /* The ledger row. */
    struct db_res *lr = NULL;
    assert_ok(db_acquire(f->db, DB_READ, &c));
    assert_ok(db_exec(c, "SELECT version, applied_at FROM schema_migrations ORDER BY version", 0,
                      NULL, &lr));
    assert_int_equal(db_res_rows(lr), MIGRATIONS);
    assert_string_equal(db_res_get(lr, 0, 0), "0001_init");
    assert_string_equal(db_res_get(lr, 1, 0), "0002_enum_checks");
    for (int i = 0; i < MIGRATIONS; i++) {
        int64_t at = 0;
        assert_true(db_res_time(lr, i, 1, &at));
        assert_true(llabs(at - time_now_us()) < 60 * 1000000LL);
    }
    db_res_free(lr);
    db_release(c);
}

static void test_idempotent(void **state)
{
    struct fx *f = *state;
    migrate_ok(f->db);
    int n = -1;
    assert_ok(migrate_apply(f->db, &n));
    assert_int_equal(n, 0);
    assert_ok(migrate_apply(f->db, NULL));
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM schema_migrations", 0, NULL),
                     MIGRATIONS);
    /* Reopened handle (a restart): still nothing to do. */
    db_close(f->db);
    assert_ok(db_open(f->url, NULL, &f->db));
    assert_ok(migrate_pending(f->db, &n));
    assert_int_equal(n, 0);
    assert_ok(migrate_apply(f->db, &n));
    assert_int_equal(n, 0);
}

static void test_role_check(void **state)
{
    struct fx *f = *state;
    migrate_ok(f->db);
    struct db_conn *c = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(insert_user(c, "a@example.com", "admin", NULL));
    assert_ok(insert_user(c, "u@example.com", "user", NULL));
    assert_ok(insert_user(c, "s@example.com", "service", NULL));
    assert_rc(insert_user(c, "r@example.com", "root", NULL), RC_CONSTRAINT);
    assert_rc(insert_user(c, "n@example.com", NULL, NULL), RC_CONSTRAINT);
    /* Defaults: role user, active, unverified. */
    char id[UUID_STR_LEN + 1], now[TIME_STR_MAX];
    uuid_v4(id);
    now_str(now);
    struct db_param p[] = {DBP_T(id), DBP_T(now)};
    assert_ok(db_exec(c,
                      "INSERT INTO users (id, email, created_at, updated_at) VALUES ($1, "
                      "'d@example.com', $2, $2)",
                      2, p, NULL));
    struct db_res *r = NULL;
    assert_ok(db_exec(c,
                      "SELECT role, is_active, email_verified, email_otp_enabled, created_at "
                      "FROM users WHERE id = $1",
                      1, p, &r));
    assert_string_equal(db_res_get(r, 0, 0), "user");
    assert_true(db_res_bool(r, 0, 1));
    assert_false(db_res_bool(r, 0, 2));
    assert_false(db_res_bool(r, 0, 3));
    int64_t t1 = 0, t2 = 0;
    assert_true(db_res_time(r, 0, 4, &t1));
    assert_true(time_parse(now, &t2));
    assert_true(t1 == t2);
    db_res_free(r);
    /* created_at has no default. */
    uuid_v4(id);
    assert_rc(db_exec(c, "INSERT INTO users (id, email) VALUES ($1, 'e@example.com')", 1, p, NULL),
              RC_CONSTRAINT);
    if (f->kind == DB_SQLITE) {
        struct db_param pb[] = {DBP_T(id), DBP_T(now)};
        assert_rc(db_exec(c,
                          "INSERT INTO users (id, email, is_active, created_at, updated_at) "
                          "VALUES ($1, 'b@example.com', 2, $2, $2)",
                          2, pb, NULL),
                  RC_CONSTRAINT);
    }
    db_release(c);
}

/* Every enum CHECK accepts exactly its values. On SQLite the CHECKs of
 * three or more values are OR chains; this pins their meaning. */
static void test_enum_checks(void **state)
{
    struct fx *f = *state;
    migrate_ok(f->db);
    struct db_conn *c = NULL;
    char id[UUID_STR_LEN + 1], now[TIME_STR_MAX];
    now_str(now);
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    static const char *const actor_types[] = {"user", "service", "admin", "system"};
    static const char *const outbox[] = {"pending", "sent", "failed", "abandoned"};
    static const char *const deliveries[] = {"pending", "delivered", "failed", "abandoned"};
    const char *audit_sql = "INSERT INTO audit_events (id, event_type, actor_type, success, "
                            "created_at) VALUES ($1, 'user.login', $2, TRUE, $3)";
    const char *outbox_sql = "INSERT INTO email_outbox (id, kind, to_address, subject, status, "
                             "next_attempt_at, created_at) VALUES ($1, 'verify_email', "
                             "'a@example.com', 's', $2, $3, $3)";
    const char *delivery_sql = "INSERT INTO webhook_deliveries (id, endpoint_id, event_type, "
                               "payload, status, created_at) VALUES ($1, $4, 'user.created', "
                               "'{}', $2, $3)";
    char ep[UUID_STR_LEN + 1];
    uuid_v4(ep);
    struct db_param pe[] = {DBP_T(ep), DBP_T(now)};
    assert_ok(db_exec(c,
                      "INSERT INTO webhook_endpoints (id, name, url, secret, created_at, "
                      "updated_at) VALUES ($1, 'e', 'https://example.com/h', 's', $2, $2)",
                      2, pe, NULL));
    for (size_t i = 0; i < 4; i++) {
        struct db_param p[] = {DBP_T(id), DBP_T(NULL), DBP_T(now), DBP_T(ep)};
        uuid_v4(id);
        p[1] = DBP_T(actor_types[i]);
        assert_ok(db_exec(c, audit_sql, 3, p, NULL));
        uuid_v4(id);
        p[1] = DBP_T(outbox[i]);
        assert_ok(db_exec(c, outbox_sql, 3, p, NULL));
        uuid_v4(id);
        p[1] = DBP_T(deliveries[i]);
        assert_ok(db_exec(c, delivery_sql, 4, p, NULL));
    }
    static const char *const bad[] = {"root", "", "USER", "Pending", "sent ", "delivered"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct db_param p[] = {DBP_T(id), DBP_T(bad[i]), DBP_T(now), DBP_T(ep)};
        uuid_v4(id);
        /* PostgreSQL: an enum type, so a bad value is a cast error. */
        rc_t rc = db_exec(c, audit_sql, 3, p, NULL);
        if (rc != (f->kind == DB_SQLITE ? RC_CONSTRAINT : RC_DB))
            fail_msg("audit_events.actor_type '%s': %s", bad[i], rc_str(rc));
        rc = db_exec(c, outbox_sql, 3, p, NULL);
        if (rc != RC_CONSTRAINT)
            fail_msg("email_outbox.status '%s': %s", bad[i], rc_str(rc));
        if (strcmp(bad[i], "delivered") == 0) /* a valid delivery status */
            continue;
        rc = db_exec(c, delivery_sql, 4, p, NULL);
        if (rc != RC_CONSTRAINT)
            fail_msg("webhook_deliveries.status '%s': %s", bad[i], rc_str(rc));
    }
    db_release(c);
}

/* SQLite: writing a row never builds a temporary B-tree. `x IN (three or
 * more constants)` in a CHECK did, once per row written (~90 KiB of
 * allocations for each audit row); EXPLAIN shows it as OpenEphemeral.
 * users and signing_keys keep their IN lists (0002_enum_checks.sql): they
 * are written rarely, and rebuilding users would mean rebuilding every
 * table that references it. */
static void test_no_ephemeral_on_insert(void **state)
{
    struct fx *f = *state;
    if (f->kind != DB_SQLITE)
        skip();
    migrate_ok(f->db);
    struct db_conn *c = NULL;
    struct db_res *tabs = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(db_exec(c,
                      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                      "'sqlite_%' ORDER BY name",
                      0, NULL, &tabs));
    assert_true(db_res_rows(tabs) >= 10);
    for (int t = 0; t < db_res_rows(tabs); t++) {
        const char *tab = db_res_get(tabs, t, 0);
        if (strcmp(tab, "users") == 0 || strcmp(tab, "signing_keys") == 0)
            continue;
        struct db_res *cols = NULL;
        struct db_param pt[] = {DBP_T(tab)};
        assert_ok(db_exec(c, "SELECT name FROM pragma_table_info($1) ORDER BY cid", 1, pt, &cols));
        int n = db_res_rows(cols);
        assert_true(n > 0 && n <= 32);
        char sql[4096];
        size_t len = (size_t)snprintf(sql, sizeof sql, "EXPLAIN INSERT INTO %s (", tab);
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(sql + len, sizeof sql - len, "%s%s", i ? ", " : "",
                                    db_res_get(cols, i, 0));
        len += (size_t)snprintf(sql + len, sizeof sql - len, ") VALUES (");
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(sql + len, sizeof sql - len, "%s$%d", i ? ", " : "", i + 1);
        snprintf(sql + len, sizeof sql - len, ")");
        struct db_param nul[32];
        for (int i = 0; i < n; i++)
            nul[i] = DBP_NUL;
        struct db_res *ops = NULL;
        assert_ok(db_exec(c, sql, n, nul, &ops));
        assert_true(db_res_rows(ops) > 0);
        for (int i = 0; i < db_res_rows(ops); i++)
            if (strcmp(db_res_get(ops, i, 1), "OpenEphemeral") == 0)
                fail_msg("INSERT INTO %s builds a temporary B-tree (step %d)", tab, i);
        db_res_free(ops);
        db_res_free(cols);
    }
    db_res_free(tabs);
    db_release(c);
}

/* Every row of tab, cells joined (NULL as \1), in id order. */
static char *table_dump(struct db_conn *c, const char *tab)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT * FROM %s ORDER BY id", tab);
    struct db_res *r = NULL;
    assert_ok(db_exec(c, sql, 0, NULL, &r));
    struct buf b = {.max = 1 << 20};
    for (int i = 0; i < db_res_rows(r); i++)
        for (int j = 0; j < db_res_cols(r); j++) {
            const char *v = db_res_get(r, i, j);
            buf_append(&b, v ? v : "\1", v ? strlen(v) : 1);
            buf_append(&b, "|", 1);
        }
    db_res_free(r);
    buf_append(&b, "", 1);
    assert_false(b.err);
    return b.data;
}

/* An existing database at 0001 upgrades to 0002 with its rows intact and
 * the rebuilt tables' indexes and CHECKs in place. */
static void test_upgrade_0002_keeps_rows(void **state)
{
    struct fx *f = *state;
    struct embedded_file first[3] = {{NULL, NULL}};
    int k = 0;
    for (const struct embedded_file *e = migrations_embedded; e->path; e++)
        if (strstr(e->path, "/0001_init.sql"))
            first[k++] = *e;
    assert_int_equal(k, 2);
    int n = -1;
    assert_ok(migrate_apply_files(f->db, first, &n));
    assert_int_equal(n, 1);

    char now[TIME_STR_MAX], ep[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    now_str(now);
    uuid_v4(ep);
    struct db_conn *c = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    struct db_param pe[] = {DBP_T(ep), DBP_T(now)};
    assert_ok(db_exec(c,
                      "INSERT INTO webhook_endpoints (id, name, url, secret, created_at, "
                      "updated_at) VALUES ($1, 'e', 'https://example.com/h', 's', $2, $2)",
                      2, pe, NULL));
    static const char *const actors[] = {"user", "system", "admin"};
    for (int i = 0; i < 3; i++) {
        uuid_v4(id);
        struct db_param p[] = {DBP_T(id), DBP_T(actors[i]), DBP_T(now), DBP_T(ep)};
        assert_ok(db_exec(c,
                          "INSERT INTO audit_events (id, event_type, actor_id, actor_type, "
                          "success, failure_reason, metadata, ip_address, created_at) VALUES "
                          "($1, 'user.login', NULL, $2, FALSE, 'bad_password', '{\"k\":\"é\"}', "
                          "'192.0.2.1', $3)",
                          3, p, NULL));
        uuid_v4(id);
        assert_ok(db_exec(c,
                          "INSERT INTO email_outbox (id, kind, to_address, subject, body_text, "
                          "attempt_count, next_attempt_at, created_at) VALUES ($1, "
                          "'verify_email', 'a@example.com', $2, 'b', 2, $3, $3)",
                          3, p, NULL));
        uuid_v4(id);
        assert_ok(db_exec(c,
                          "INSERT INTO webhook_deliveries (id, endpoint_id, event_type, payload, "
                          "status, response_status, created_at) VALUES ($1, $4, $2, '{}', "
                          "'failed', 502, $3)",
                          4, p, NULL));
    }
    static const char *const tabs[] = {"audit_events", "email_outbox", "webhook_deliveries"};
    char *before[3];
    for (int i = 0; i < 3; i++)
        before[i] = table_dump(c, tabs[i]);
    db_release(c);

    assert_ok(migrate_apply(f->db, &n));
    assert_int_equal(n, MIGRATIONS - 1);

    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    for (int i = 0; i < 3; i++) {
        char *after = table_dump(c, tabs[i]);
        assert_string_equal(after, before[i]);
        assert_true(strlen(after) > 100);
        free(after);
        free(before[i]);
    }
    static const char *const idx[] = {
        "ix_audit_events_created_at",
        "ix_audit_events_event_type_created_at",
        "ix_audit_events_actor_id_created_at",
        "ix_audit_events_target_id_created_at",
        "ix_email_outbox_due",
        "ix_webhook_deliveries_endpoint_created",
        "ix_webhook_deliveries_due",
    };
    for (size_t i = 0; i < sizeof idx / sizeof *idx; i++)
        assert_index(c, f->kind, idx[i], " after the upgrade");
    if (f->kind == DB_SQLITE) /* no leftover of the rebuild */
        assert_int_equal(query_int(f->db,
                                   "SELECT count(*) FROM sqlite_master WHERE name LIKE "
                                   "'%\\_new' ESCAPE '\\' OR sql LIKE '%\\_new%' ESCAPE '\\'",
                                   0, NULL),
                         0);
    /* The CHECK still holds on the rebuilt table. */
    uuid_v4(id);
    struct db_param p[] = {DBP_T(id), DBP_T("root"), DBP_T(now)};
    assert_rc(db_exec(c,
                      "INSERT INTO audit_events (id, event_type, actor_type, success, created_at) "
                      "VALUES ($1, 'user.login', $2, TRUE, $3)",
                      3, p, NULL),
              f->kind == DB_SQLITE ? RC_CONSTRAINT : RC_DB);
    db_release(c);
}

static void test_single_active_key(void **state)
{
    struct fx *f = *state;
    migrate_ok(f->db);
    struct db_conn *c = NULL;
    char k1[UUID_STR_LEN + 1], now[TIME_STR_MAX];
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(insert_key(c, "active", false, k1));
    assert_rc(insert_key(c, "active", false, NULL), RC_CONFLICT);
    assert_ok(insert_key(c, "retiring", false, NULL));
    assert_ok(insert_key(c, "retiring", false, NULL));
    assert_ok(insert_key(c, "retired", false, NULL));
    assert_ok(insert_key(c, "active", true, NULL)); /* soft-deleted: not counted */
    assert_rc(insert_key(c, "bogus", false, NULL), f->kind == DB_SQLITE ? RC_CONSTRAINT : RC_DB);
    /* Rotation in one unit: demote, then promote. */
    now_str(now);
    struct db_param p[] = {DBP_T(k1), DBP_T(now)};
    assert_ok(db_begin(c));
    assert_ok(db_exec(c,
                      "UPDATE signing_keys SET status = 'retiring', updated_at = $2 WHERE id = $1",
                      2, p, NULL));
    assert_ok(insert_key(c, "active", false, NULL));
    assert_ok(db_commit(c));
    db_release(c);
    assert_int_equal(query_int(f->db,
                               "SELECT count(*) FROM signing_keys WHERE status = 'active' AND "
                               "deleted_at IS NULL",
                               0, NULL),
                     1);
}

static void test_email_case_insensitive(void **state)
{
    struct fx *f = *state;
    migrate_ok(f->db);
    struct db_conn *c = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(insert_user(c, "alice@example.com", "user", NULL));
    assert_rc(insert_user(c, "alice@example.com", "user", NULL), RC_CONFLICT);
    assert_rc(insert_user(c, "Alice@Example.COM", "user", NULL), RC_CONFLICT);
    assert_ok(insert_user(c, "bob@example.com", "user", NULL));
    db_release(c);
}

static void test_fk_restrict(void **state)
{
    struct fx *f = *state;
    migrate_ok(f->db);
    struct db_conn *c = NULL;
    char uid[UUID_STR_LEN + 1], sid[UUID_STR_LEN + 1], id2[UUID_STR_LEN + 1], now[TIME_STR_MAX];
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(insert_user(c, "fk@example.com", "user", uid));
    uuid_v4(sid);
    uuid_v4(id2);
    now_str(now);
    struct db_param p[] = {DBP_T(sid), DBP_T(id2), DBP_T(uid), DBP_T(now), DBP_T(sid)};
    const char *ins = "INSERT INTO sessions (session_id, id, user_id, hashed_refresh_token, "
                      "auth_time, expires_at, created_at, updated_at) "
                      "VALUES ($1, $2, $3, $5, $4, $4, $4, $4)";
    assert_ok(db_exec(c, ins, 5, p, NULL));
    struct db_param pu[] = {DBP_T(uid)};
    assert_rc(db_exec(c, "DELETE FROM users WHERE id = $1", 1, pu, NULL), RC_CONSTRAINT);
    /* Session of a user that does not exist. */
    uuid_v4(sid);
    uuid_v4(id2);
    uuid_v4(uid);
    assert_rc(db_exec(c, ins, 5, p, NULL), RC_CONSTRAINT);
    /* suspicious_reasons defaults to an empty JSON array. */
    struct db_res *r = NULL;
    assert_ok(db_exec(c, "SELECT suspicious_reasons, is_suspicious FROM sessions", 0, NULL, &r));
    assert_string_equal(db_res_get(r, 0, 0), "[]");
    assert_false(db_res_bool(r, 0, 1));
    db_res_free(r);
    db_release(c);
}

static void test_failed_migration_rolls_back(void **state)
{
    struct fx *f = *state;
    const char *dir = f->kind == DB_SQLITE ? "sqlite" : "postgres";
    char p1[64], p2[64], p3[64], other[64];
    snprintf(p1, sizeof p1, "migrations/%s/0001_a.sql", dir);
    snprintf(p2, sizeof p2, "migrations/%s/0002_b.sql", dir);
    snprintf(p3, sizeof p3, "migrations/%s/0003_c.sql", dir);
    snprintf(other, sizeof other, "migrations/%s/0001_x.sql",
             f->kind == DB_SQLITE ? "postgres" : "sqlite");
    /* Out of order on purpose: versions sort. 0002 fails half-way. */
    const struct embedded_file files[] = {
        {p2, "CREATE TABLE b (x INTEGER); INSERT INTO b VALUES (1); SELECT * FROM nope;"},
        {other, "THIS IS NOT SQL;"},
        {p1, "CREATE TABLE a (x INTEGER);\nINSERT INTO a VALUES (1);\n"},
        {p3, "CREATE TABLE c (x INTEGER);"},
        {NULL, NULL},
    };
    int n = -1;
    assert_ok(migrate_pending_files(f->db, files, &n));
    assert_int_equal(n, 3);
    assert_true(migrate_apply_files(f->db, files, &n) != RC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM a", 0, NULL), 1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM schema_migrations", 0, NULL), 1);
    assert_int_equal(query_int(f->db,
                               "SELECT count(*) FROM schema_migrations WHERE version = '0001_a'", 0,
                               NULL),
                     1);
    const char *has_b = f->kind == DB_SQLITE
                            ? "SELECT count(*) FROM sqlite_master WHERE name IN ('b', 'c')"
                            : "SELECT count(*) FROM information_schema.tables WHERE "
                              "table_schema = current_schema() AND table_name IN ('b', 'c')";
    assert_int_equal(query_int(f->db, has_b, 0, NULL), 0);
    assert_ok(migrate_pending_files(f->db, files, &n));
    assert_int_equal(n, 2);
    /* Fixed file: the rest applies. */
    const struct embedded_file fixed[] = {
        {p1, "CREATE TABLE a (x INTEGER);"},
        {p2, "CREATE TABLE b (x INTEGER);"},
        {p3, "CREATE TABLE c (x INTEGER);"},
        {NULL, NULL},
    };
    assert_ok(migrate_apply_files(f->db, fixed, &n));
    assert_int_equal(n, 2);
    assert_ok(migrate_pending_files(f->db, fixed, &n));
    assert_int_equal(n, 0);
    /* Bad names and duplicates are refused. */
    const struct embedded_file bad[] = {{p1, ""}, {p1, ""}, {NULL, NULL}};
    assert_rc(migrate_apply_files(f->db, bad, &n), RC_INVALID);
    char badname[64];
    snprintf(badname, sizeof badname, "migrations/%s/0004 x.sql", dir);
    const struct embedded_file bad2[] = {{badname, ""}, {NULL, NULL}};
    assert_rc(migrate_apply_files(f->db, bad2, &n), RC_INVALID);
}

struct runner {
    const char *url;
    rc_t rc;
    int applied;
};

static void *run_migrate(void *arg)
{
    struct runner *r = arg;
    struct db *db = NULL;
    struct db_opts o = {.pool_timeout_ms = 20000, .sqlite_busy_timeout_ms = 20000};
    r->rc = db_open(r->url, &o, &db);
    if (r->rc == RC_OK)
        r->rc = migrate_apply(db, &r->applied);
    db_close(db);
    return NULL;
}

/* Two instances (two handles) migrating the same database at once. */
static void test_concurrent_instances(void **state)
{
    struct fx *f = *state;
    enum { N = 4 };
    pthread_t t[N];
    struct runner r[N];
    for (int i = 0; i < N; i++) {
        r[i] = (struct runner){.url = f->url};
        assert_int_equal(pthread_create(&t[i], NULL, run_migrate, &r[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_ok(r[i].rc);
        total += r[i].applied;
    }
    assert_int_equal(total, MIGRATIONS);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM schema_migrations", 0, NULL),
                     MIGRATIONS);
}

#define CASES(setup)                                                                               \
    cmocka_unit_test_setup_teardown(test_apply_creates_schema, setup, fx_teardown),                \
        cmocka_unit_test_setup_teardown(test_idempotent, setup, fx_teardown),                      \
        cmocka_unit_test_setup_teardown(test_role_check, setup, fx_teardown),                      \
        cmocka_unit_test_setup_teardown(test_enum_checks, setup, fx_teardown),                     \
        cmocka_unit_test_setup_teardown(test_no_ephemeral_on_insert, setup, fx_teardown),          \
        cmocka_unit_test_setup_teardown(test_upgrade_0002_keeps_rows, setup, fx_teardown),         \
        cmocka_unit_test_setup_teardown(test_single_active_key, setup, fx_teardown),               \
        cmocka_unit_test_setup_teardown(test_email_case_insensitive, setup, fx_teardown),          \
        cmocka_unit_test_setup_teardown(test_fk_restrict, setup, fx_teardown),                     \
        cmocka_unit_test_setup_teardown(test_failed_migration_rolls_back, setup, fx_teardown),     \
        cmocka_unit_test_setup_teardown(test_concurrent_instances, setup, fx_teardown)

int main(void)
{
    log_init(LOG_CRITICAL, "test", "test");
    snprintf(g_tmp, sizeof g_tmp, "/tmp/authd-test-migrate-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest sqlite[] = {CASES(sqlite_setup)};
    const struct CMUnitTest pg[] = {CASES(pg_setup)};
    int failed = cmocka_run_group_tests_name("migrate_sqlite", sqlite, NULL, NULL);
    g_pg_url = getenv("AUTHD_TEST_PG_URL");
    if (g_pg_url && *g_pg_url)
        failed += cmocka_run_group_tests_name("migrate_postgres", pg, NULL, NULL);
    else
        fprintf(stderr, "SKIP migrate_postgres: AUTHD_TEST_PG_URL is not set (test_db covers "
                        "migrations on its own PostgreSQL cluster)\n");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_tmp);
    return failed ? 1 : 0;
}
