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

static void migrate_ok(struct db *db)
{
    int n = -1;
    assert_ok(migrate_apply(db, &n));
    assert_int_equal(n, 1);
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
    assert_int_equal(n, 1);
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
    const char *idx_sql = f->kind == DB_SQLITE
                              ? "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                                "name = $1"
                              : "SELECT count(*) FROM pg_indexes WHERE schemaname = "
                                "current_schema() AND indexname = $1";
    for (size_t i = 0; i < sizeof k_indexes / sizeof *k_indexes; i++) {
        struct db_param p[] = {DBP_T(k_indexes[i])};
        assert_ok(db_exec(c, idx_sql, 1, p, &r));
        if (db_res_int(r, 0, 0) != 1)
            fail_msg("index %s missing", k_indexes[i]);
        db_res_free(r);
    }
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
    assert_ok(db_exec(c, "SELECT version, applied_at FROM schema_migrations", 0, NULL, &lr));
    assert_int_equal(db_res_rows(lr), 1);
    assert_string_equal(db_res_get(lr, 0, 0), "0001_init");
    int64_t at = 0;
    assert_true(db_res_time(lr, 0, 1, &at));
    assert_true(llabs(at - time_now_us()) < 60 * 1000000LL);
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
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM schema_migrations", 0, NULL), 1);
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
    assert_int_equal(total, 1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM schema_migrations", 0, NULL), 1);
}

#define CASES(setup)                                                                               \
    cmocka_unit_test_setup_teardown(test_apply_creates_schema, setup, fx_teardown),                \
        cmocka_unit_test_setup_teardown(test_idempotent, setup, fx_teardown),                      \
        cmocka_unit_test_setup_teardown(test_role_check, setup, fx_teardown),                      \
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
