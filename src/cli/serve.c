/* `authd serve [--no-worker]`: migrate (SQLite always, PostgreSQL with
 * DATABASE__AUTO_MIGRATE), open the KV store, serve HTTP, run the job
 * runner, and on SIGTERM/SIGINT stop accepting, let in-flight requests
 * finish (bounded by APP__SHUTDOWN_GRACE_SECONDS) and exit 0. Signals are
 * blocked in every thread and taken synchronously here with sigwait. */
#include "api/api.h"
#include "app.h"
#include "cli/cli.h"
#include "crypto/keyed.h"
#include "crypto/password.h"
#include "jobs/runner.h"
#include "svc/kvpersist.h"
#include "store/migrate.h"
#include "svc/audit.h"
#include "svc/keys.h"
#include "svc/mailer.h"
#include "svc/ratelimit.h"
#include "svc/secrets.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCKING_THREADS 4
#define BLOCKING_QUEUE 1024
#define PWHASH_QUEUE 4096

static void pool_metrics(struct buf *out, void *ctx)
{
    struct app *app = ctx;
    struct db_pool_stats st;
    db_pool_stats(app->db, &st);
    int queued = 0, running = 0, pw_queued = 0, pw_running = 0;
    workq_stats(app->blocking, &queued, &running);
    workq_stats(app->pwhash, &pw_queued, &pw_running);
    buf_printf(out,
               "# HELP auth_service_db_pool_connections Database connections by state.\n"
               "# TYPE auth_service_db_pool_connections gauge\n"
               "auth_service_db_pool_connections{state=\"in_use\"} %d\n"
               "auth_service_db_pool_connections{state=\"idle\"} %d\n"
               "# HELP auth_service_db_pool_max Largest number of database connections.\n"
               "# TYPE auth_service_db_pool_max gauge\n"
               "auth_service_db_pool_max %d\n"
               "# HELP auth_service_worker_jobs Off-event-loop jobs by state.\n"
               "# TYPE auth_service_worker_jobs gauge\n"
               "auth_service_worker_jobs{pool=\"blocking\",state=\"queued\"} %d\n"
               "auth_service_worker_jobs{pool=\"blocking\",state=\"running\"} %d\n"
               "auth_service_worker_jobs{pool=\"password\",state=\"queued\"} %d\n"
               "auth_service_worker_jobs{pool=\"password\",state=\"running\"} %d\n",
               st.in_use, st.idle, st.max, queued, running, pw_queued, pw_running);
}

static int migrate_at_start(const struct config *cfg, struct db *db)
{
    int applied = 0, pending = 0;
    if (db_kind(db) == DB_SQLITE || cfg->database.auto_migrate) {
        if (migrate_apply(db, &applied) != RC_OK) {
            fprintf(stderr, "authd: applying migrations failed\n");
            return 1;
        }
        if (applied)
            log_msg(LOG_INFO, "migrations_applied", "%d migration(s) applied", applied);
        return 0;
    }
    if (migrate_pending(db, &pending) != RC_OK) {
        fprintf(stderr, "authd: cannot read the migration ledger\n");
        return 1;
    }
    if (pending) {
        fprintf(stderr,
                "authd: %d pending migration(s); run `authd migrate` first "
                "(or set DATABASE__AUTO_MIGRATE=true)\n",
                pending);
        return 1;
    }
    return 0;
}

/* Returns false when requests were still in flight at the deadline. */
static bool drain(struct app *app, int grace_s)
{
    http_server_quiesce(app->http);
    int64_t deadline = time_mono_us() + (int64_t)grace_s * 1000000;
    while (http_server_inflight(app->http) > 0 && time_mono_us() < deadline) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    int left = http_server_inflight(app->http);
    if (left > 0)
        log_msg(LOG_WARNING, "shutdown_grace_expired", "%d request(s) still in flight", left);
    return left == 0;
}

int cli_serve(int argc, char **argv)
{
    bool worker = true;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--no-worker") == 0) {
            worker = false;
        } else {
            fprintf(stderr, "authd serve: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    /* Block the stop signals before any thread exists so every thread
     * inherits the mask and only sigwait below sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct config *cfg = NULL;
    struct app app = {0};
    struct jobs *jobs = NULL;
    int code = cli_load_config(&cfg);
    if (code)
        goto out;
    app.cfg = cfg;
    {
        char kerr[512];
        if (keys_check_config(cfg, kerr, sizeof kerr) != RC_OK) {
            fprintf(stderr, "authd: configuration error: %s\n", kerr);
            code = 2;
            goto out;
        }
    }
    log_start_flusher();
    code = cli_open_db(cfg, &app.db);
    if (code)
        goto out;
    code = migrate_at_start(cfg, app.db);
    if (code)
        goto out;
    if (audit_writer_start(app.db) != RC_OK) {
        fprintf(stderr, "authd: cannot start the audit writer\n");
        code = 1;
        goto out;
    }
    if (kv_open(cfg->redis.url, &app.kv) != RC_OK) {
        fprintf(stderr, "authd: cannot use REDIS__URL\n");
        code = 2;
        goto out;
    }
    if (!kv_is_shared(app.kv) &&
        kv_set_persistence(app.kv, &kvpersist_ops, app.db, kvpersist_prefixes,
                           kvpersist_nprefixes) != RC_OK) {
        fprintf(stderr, "authd: cannot load persisted state from kv_entries\n");
        code = 1;
        goto out;
    }
    app.blocking = workq_new("blocking", BLOCKING_THREADS, BLOCKING_QUEUE);
    app.pwhash = workq_new("pwhash", cfg->password_hash.workers, PWHASH_QUEUE);
    struct password_params pp = {(uint32_t)cfg->password_hash.memory_kib,
                                 (uint32_t)cfg->password_hash.iterations};
    if (password_ctx_new(&pp, &app.pw) != RC_OK) {
        fprintf(stderr, "authd: invalid PASSWORD_HASH__* parameters\n");
        code = 2;
        goto out;
    }
    const char *data_dir = db_sqlite_dir(app.db) ? db_sqlite_dir(app.db) : "./data";
    if (secrets_load(cfg, data_dir, &app.secrets) != RC_OK) {
        fprintf(stderr, "authd: cannot load the instance key in %s\n", data_dir);
        code = 1;
        goto out;
    }
    app.refresh_hasher = crypto_keyed_hasher_new(app.secrets->refresh_hash_secret,
                                                 strlen(app.secrets->refresh_hash_secret),
                                                 CRYPTO_PURPOSE_REFRESH_TOKEN);
    if (keys_new(app.db, cfg, app.secrets, &app.keys) != RC_OK ||
        mailer_new(app.db, cfg, app.secrets, data_dir, &app.mailer) != RC_OK ||
        ratelimit_new(app.kv, cfg, &app.rl) != RC_OK) {
        fprintf(stderr, "authd: start-up failed (signing keys, mail or rate limiter)\n");
        code = 1;
        goto out;
    }

    size_t nroutes;
    const struct http_route *routes = api_routes(cfg->app.test_hooks, &nroutes);
    struct http_opts ho = {
        .host = cfg->app.host,
        .port = cfg->app.port,
        .threads = cfg->app.http_threads,
        .connection_timeout_s = cfg->app.connection_timeout_seconds,
        .max_body_bytes = (size_t)cfg->app.max_body_bytes,
        .max_header_bytes = (size_t)cfg->app.max_header_bytes,
        .development = cfg->app.environment == ENV_DEVELOPMENT,
        .trusted_proxy_cidrs = (const char *const *)cfg->app.trusted_proxy_cidrs.items,
        .n_trusted_proxy_cidrs = cfg->app.trusted_proxy_cidrs.n,
        .allowed_hosts = (const char *const *)cfg->app.allowed_hosts.items,
        .n_allowed_hosts = cfg->app.allowed_hosts.n,
        .pre_route = api_ratelimit_hook,
        .admin_auth = api_admin_auth,
        .app = &app,
    };
    app.http = http_server_new(&ho, routes, nroutes);
    if (!app.http) {
        code = 1;
        goto out;
    }
    http_server_set_metrics_extra(app.http, pool_metrics, &app);
    if (http_server_start(app.http) != RC_OK) {
        fprintf(stderr, "authd: cannot listen on %s:%d\n", cfg->app.host, cfg->app.port);
        log_msg(LOG_CRITICAL, "listen_failed", "cannot listen on %s:%d", cfg->app.host,
                cfg->app.port);
        code = 1;
        goto out;
    }
    if (worker)
        jobs = jobs_start(&app);
    {
        struct log_line l;
        log_begin(&l, LOG_INFO, "server_started", NULL);
        log_str(&l, "host", cfg->app.host);
        log_int(&l, "port", http_server_port(app.http));
        log_int(&l, "threads", cfg->app.http_threads);
        log_str(&l, "database", db_kind(app.db) == DB_SQLITE ? "sqlite" : "postgresql");
        log_str(&l, "kv", kv_is_shared(app.kv) ? "redis" : "memory");
        log_bool(&l, "worker", worker);
        log_end(&l);
    }
    int sig = 0;
    sigwait(&set, &sig);
    log_msg(LOG_INFO, "shutdown_started", "signal %d: draining", sig);
    if (!drain(&app, cfg->app.shutdown_grace_seconds)) {
        /* The grace period is the bound: abandon what is still running
         * (its connections close with the process) instead of waiting for
         * it in the orderly teardown below. */
        audit_flush(app.db);
        log_shutdown();
        _exit(0);
    }
    code = 0;
out:
    jobs_stop(jobs);
    /* Finish offloaded work (it resumes its connections) before the daemon
     * goes away, then close every connection. The hashing pool first: its
     * jobs hand logins on to the general pool (http_req_offload_next). */
    workq_free(app.pwhash);
    workq_free(app.blocking);
    http_server_free(app.http);
    ratelimit_free(app.rl);
    mailer_free(app.mailer);
    keys_free(app.keys);
    secrets_free(app.secrets);
    password_ctx_free(app.pw);
    crypto_keyed_hasher_free(app.refresh_hasher);
    audit_writer_stop();
    kv_close(app.kv);
    db_close(app.db);
    if (code == 0 && cfg)
        log_msg(LOG_INFO, "shutdown_complete", "bye");
    log_shutdown();
    config_free(cfg);
    return code;
}
