/* Unit tests of src/config: defaults, every type's hostile inputs, name
 * matching, .env parsing and precedence, empty-as-unset, section and cookie
 * rules, the production guardrails in order, help, dump and the docs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

#define ERRLEN 512
#define NO_DOTENV "/nonexistent-authd-test-dir/.env"
#define ENV_MAX 96

/* ---- helpers ---- */

/* An envp under construction; set() replaces an entry with the same name. */
struct envb {
    char *v[ENV_MAX + 1];
    int n;
};

static void env_set(struct envb *e, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (int i = 0; i < e->n; i++) {
        if (strncmp(e->v[i], kv, klen) == 0 && e->v[i][klen] == '=') {
            e->v[i] = (char *)kv;
            return;
        }
    }
    assert_true(e->n < ENV_MAX);
    e->v[e->n++] = (char *)kv;
    e->v[e->n] = NULL;
}

static void env_init(struct envb *e, const char *const *kvs)
{
    memset(e, 0, sizeof *e);
    for (int i = 0; kvs && kvs[i]; i++)
        env_set(e, kvs[i]);
}

/* Loads with envp and, when dotenv is not NULL, a temporary .env holding
 * that text (otherwise a path that does not exist). */
static rc_t load(char *const *envp, const char *dotenv, struct config **c, char *err,
                 struct config_strlist *warnings)
{
    char path[] = "/tmp/test_config_XXXXXX";
    const char *p = NO_DOTENV;
    if (dotenv) {
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        size_t n = strlen(dotenv);
        assert_int_equal(write(fd, dotenv, n), (ssize_t)n);
        close(fd);
        p = path;
    }
    rc_t rc = config_load(envp, p, c, err, ERRLEN, warnings);
    if (dotenv)
        unlink(path);
    return rc;
}

static struct config *load_ok(const char *const *kvs, const char *dotenv)
{
    struct envb e;
    struct config *c = NULL;
    char err[ERRLEN];
    env_init(&e, kvs);
    rc_t rc = load(e.v, dotenv, &c, err, NULL);
    if (rc)
        fail_msg("unexpected load failure: %s", err);
    assert_non_null(c);
    return c;
}

/* Loads expecting failure; returns err (static). */
static const char *load_err(char *const *envp, const char *dotenv)
{
    static char err[ERRLEN];
    struct config *c = (struct config *)1;
    rc_t rc = load(envp, dotenv, &c, err, NULL);
    if (rc == RC_OK) {
        config_free(c);
        fail_msg("load succeeded; expected an error");
    }
    assert_int_equal(rc, RC_INVALID);
    assert_null(c);
    assert_null(strchr(err, '\n'));
    return err;
}

static char *capture(void (*fn)(const struct config *, FILE *), const struct config *c)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    fn(c, f);
    fclose(f);
    return out;
}

static void dump_fn(const struct config *c, FILE *f)
{
    config_dump(c, f);
}

static void help_fn(const struct config *c, FILE *f)
{
    (void)c;
    config_print_help(f);
}

static void md_fn(const struct config *c, FILE *f)
{
    (void)c;
    config_print_markdown(f);
}

/* True when text has the line exactly. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

static const char *const DEV[] = {"APP__ENVIRONMENT=development", NULL};

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    struct config *c = load_ok(DEV, NULL);
    int cores = online_cores();
    assert_int_equal(c->app.environment, ENV_DEVELOPMENT);
    assert_string_equal(c->app.service, "auth-service");
    assert_string_equal(c->app.host, "0.0.0.0");
    assert_int_equal(c->app.port, 8000);
    assert_string_equal(c->app.log_level, "INFO");
    assert_int_equal(c->app.trusted_proxy_cidrs.n, 0);
    assert_int_equal(c->app.allowed_hosts.n, 0);
    assert_false(c->app.expose_docs);
    assert_int_equal(c->app.max_body_bytes, 65536);
    assert_int_equal(c->app.http_threads, 2 * cores > 256 ? 256 : 2 * cores);
    assert_int_equal(c->app.connection_timeout_seconds, 15);
    assert_int_equal(c->app.shutdown_grace_seconds, 20);
    assert_int_equal(c->app.max_header_bytes, 16384);
    assert_false(c->app.test_hooks);
    assert_string_equal(c->database.url, "sqlite:///./data/authd.db");
    assert_int_equal(c->database.pool_size, 20);
    assert_int_equal(c->database.max_overflow, 20);
    assert_int_equal(c->database.pool_timeout_seconds, 30);
    assert_int_equal(c->database.pool_recycle_seconds, 1800);
    assert_false(c->database.auto_migrate);
    assert_int_equal(c->database.statement_timeout_ms, 5000);
    assert_null(c->redis.url);
    assert_int_equal(c->redis.health_check_interval_seconds, 30);
    assert_string_equal(c->jwt.algorithm, "RS256");
    assert_null(c->jwt.private_key_pem);
    assert_null(c->jwt.public_key_pem);
    assert_int_equal(c->jwt.access_token_ttl_seconds, 900);
    assert_int_equal(c->jwt.refresh_token_ttl_seconds, 604800);
    assert_null(c->oauth.google_client_id);
    assert_int_equal(c->oauth.redirect_uri_allowlist.n, 0);
    assert_null(c->saml.sp_entity_id);
    assert_false(c->oauth_enabled);
    assert_false(c->saml_enabled);
    config_free(c);
}

static void test_defaults_more(void **state)
{
    (void)state;
    struct config *c = load_ok(DEV, NULL);
    int cores = online_cores();
    assert_int_equal(c->rate_limit.default_requests_per_minute, 120);
    assert_int_equal(c->rate_limit.login_requests_per_minute, 10);
    assert_int_equal(c->rate_limit.token_requests_per_minute, 30);
    assert_int_equal(c->rate_limit.service_requests_per_minute, 0);
    assert_int_equal(c->password_hash.memory_kib, 19456);
    assert_int_equal(c->password_hash.iterations, 2);
    assert_int_equal(c->password_hash.workers, cores > 1024 ? 1024 : cores);
    assert_int_equal(c->password_hash.queue_timeout_ms, 2000);
    assert_true(c->auth.require_verified_email_for_password_login);
    assert_null(c->session_security.refresh_token_hash_key);
    assert_false(c->browser_sessions.enabled);
    assert_true(c->browser_sessions.infer_cookie_transport);
    assert_string_equal(c->browser_sessions.transport_header_name, "X-Auth-Session-Transport");
    assert_string_equal(c->browser_sessions.access_cookie_name, "__Host-auth_access");
    assert_string_equal(c->browser_sessions.refresh_cookie_name, "__Host-auth_refresh");
    assert_string_equal(c->browser_sessions.csrf_cookie_name, "__Host-auth_csrf");
    assert_string_equal(c->browser_sessions.same_site, "lax");
    assert_false(c->browser_sessions.secure_only);
    assert_null(c->browser_sessions.cookie_domain);
    assert_string_equal(c->browser_sessions.access_cookie_path, "/");
    assert_string_equal(c->browser_sessions.refresh_cookie_path, "/");
    assert_string_equal(c->browser_sessions.csrf_cookie_path, "/");
    assert_string_equal(c->browser_sessions.csrf_header_name, "X-CSRF-Token");
    assert_int_equal(c->signing_keys.rotation_overlap_seconds, 900);
    assert_null(c->signing_keys.encryption_key);
    assert_null(c->email.mailhog_host);
    assert_int_equal(c->email.mailhog_port, 1025);
    assert_string_equal(c->email.email_from, "auth@localhost");
    assert_string_equal(c->email.public_base_url, "http://localhost:8000");
    assert_int_equal(c->email.email_verify_ttl_seconds, 86400);
    assert_int_equal(c->email.password_reset_ttl_seconds, 3600);
    assert_int_equal(c->email.otp_code_length, 6);
    assert_int_equal(c->email.otp_ttl_seconds, 600);
    assert_int_equal(c->email.otp_max_attempts, 5);
    assert_int_equal(c->email.action_token_ttl_seconds, 300);
    assert_null(c->email.smtp_username);
    assert_null(c->email.smtp_password);
    assert_false(c->email.smtp_starttls);
    assert_string_equal(c->webhook.queue_name, "webhooks");
    assert_int_equal(c->webhook.request_timeout_seconds, 10);
    assert_int_equal(c->webhook.response_body_max_chars, 1000);
    assert_int_equal(c->webhook.worker_ttl_seconds, 120);
    assert_int_equal(c->webhook.redis_health_check_interval_seconds, 30);
    assert_null(c->webhook.secret_encryption_key);
    assert_false(c->retention.enable_retention_purge);
    assert_int_equal(c->retention.audit_log_retention_days, 90);
    assert_int_equal(c->retention.session_log_retention_days, 30);
    assert_string_equal(c->retention.purge_cron, "0 3 * * *");
    assert_null(c->admin_api_key);
    assert_null(c->otel_exporter_otlp_endpoint);
    assert_string_equal(c->otel_service_name, "auth-service");
    config_free(c);
}

static void test_environment_required(void **state)
{
    (void)state;
    struct envb e;
    env_init(&e, NULL);
    const char *err = load_err(e.v, NULL);
    assert_non_null(strstr(err, "APP__ENVIRONMENT"));
    assert_non_null(strstr(err, "required"));
    assert_non_null(strstr(err, "development | staging | production"));
    env_set(&e, "APP__ENVIRONMENT=");
    assert_non_null(strstr(load_err(e.v, NULL), "required"));
}

/* ---- hostile values: each must fail naming the variable ---- */

struct bad_case {
    const char *kv;
    const char *expect; /* substring of the message besides the name */
};

static const struct bad_case bad_cases[] = {
    /* integers */
    {"APP__PORT=abc", "not a decimal integer"},
    {"APP__PORT= 80", "not a decimal integer"},
    {"APP__PORT=80 ", "not a decimal integer"},
    {"APP__PORT=+80", "not a decimal integer"},
    {"APP__PORT=8e3", "not a decimal integer"},
    {"APP__PORT=0x50", "not a decimal integer"},
    {"APP__PORT=8000.0", "not a decimal integer"},
    {"APP__PORT=-", "not a decimal integer"},
    {"APP__PORT=99999999999999999999999", "not a decimal integer"},
    {"APP__PORT=0", "out of range"},
    {"APP__PORT=65536", "1..65535"},
    {"APP__PORT=-1", "out of range"},
    {"APP__MAX_BODY_BYTES=1023", "1024..1048576"},
    {"APP__MAX_BODY_BYTES=1048577", "out of range"},
    {"APP__HTTP_THREADS=257", "0..256"},
    {"APP__HTTP_THREADS=-1", "out of range"},
    {"APP__CONNECTION_TIMEOUT_SECONDS=0", "1..3600"},
    {"APP__SHUTDOWN_GRACE_SECONDS=601", "0..600"},
    {"APP__MAX_HEADER_BYTES=65537", "1024..65536"},
    {"DATABASE__POOL_SIZE=0", "out of range"},
    {"DATABASE__MAX_OVERFLOW=-1", "out of range"},
    {"DATABASE__STATEMENT_TIMEOUT_MS=600001", "0..600000"},
    {"JWT__ACCESS_TOKEN_TTL_SECONDS=0", ">= 1"},
    {"JWT__REFRESH_TOKEN_TTL_SECONDS=2147483648", "out of range"},
    {"RATE_LIMIT__SERVICE_REQUESTS_PER_MINUTE=-5", ">= 0"},
    {"PASSWORD_HASH__MEMORY_KIB=8191", "8192..1048576"},
    {"PASSWORD_HASH__ITERATIONS=11", "1..10"},
    {"PASSWORD_HASH__WORKERS=0", "out of range"},
    {"EMAIL__OTP_CODE_LENGTH=3", "4..12"},
    {"EMAIL__OTP_CODE_LENGTH=13", "4..12"},
    {"EMAIL__MAILHOG_PORT=70000", "1..65535"},
    {"WEBHOOK__WORKER_TTL_SECONDS=29", ">= 30"},
    {"SIGNING_KEYS__ROTATION_OVERLAP_SECONDS=-1", ">= 0"},
    /* booleans */
    {"APP__EXPOSE_DOCS=maybe", "not a boolean"},
    {"APP__EXPOSE_DOCS=2", "not a boolean"},
    {"APP__EXPOSE_DOCS=truee", "not a boolean"},
    {"APP__EXPOSE_DOCS= true", "not a boolean"},
    {"BROWSER_SESSIONS__ENABLED=enabled", "yes/no"},
    /* lists */
    {"APP__ALLOWED_HOSTS=auth.example.com", "not valid JSON"},
    {"APP__ALLOWED_HOSTS=[\"a\",", "not valid JSON"},
    {"APP__ALLOWED_HOSTS={\"a\":1}", "not a JSON array"},
    {"APP__ALLOWED_HOSTS=\"a\"", "not valid JSON"},
    {"APP__ALLOWED_HOSTS=[1]", "entry 0 is not a string"},
    {"APP__ALLOWED_HOSTS=[\"a\",null]", "entry 1 is not a string"},
    {"APP__ALLOWED_HOSTS=[[\"a\"]]", "not a string"},
    {"APP__ALLOWED_HOSTS=[\"a\\u0000b\"]", "not valid JSON"},
    {"APP__ALLOWED_HOSTS=[\"a\\nb\"]", "control characters"},
    {"APP__TRUSTED_PROXY_CIDRS=10.0.0.0/8", "not valid JSON"},
    {"OAUTH__REDIRECT_URI_ALLOWLIST=[\"https://ok.example/\",\"/relative\"]", "entry 1"},
    {"OAUTH__REDIRECT_URI_ALLOWLIST=[\"ftp://x.example/\"]", "not a valid URL"},
    /* enums */
    {"APP__ENVIRONMENT=Production", "exact spelling"},
    {"APP__ENVIRONMENT=PRODUCTION", "development | staging | production"},
    {"APP__ENVIRONMENT=prod", "not an accepted value"},
    {"APP__ENVIRONMENT= development", "not an accepted value"},
    {"APP__LOG_LEVEL=info", "DEBUG | INFO | WARNING | ERROR | CRITICAL"},
    {"APP__LOG_LEVEL=Warning", "not an accepted value"},
    {"APP__LOG_LEVEL=WARN", "not an accepted value"},
    {"JWT__ALGORITHM=HS256", "RS256"},
    {"JWT__ALGORITHM=rs256", "RS256"},
    {"JWT__ALGORITHM=none", "RS256"},
    {"BROWSER_SESSIONS__SAME_SITE=Lax", "lax | strict | none"},
    /* URLs */
    {"OAUTH__GOOGLE_REDIRECT_URI=ftp://x.example/cb", "not a valid URL"},
    {"OAUTH__GOOGLE_REDIRECT_URI=/auth/oauth/google/callback", "not a valid URL"},
    {"OAUTH__GOOGLE_REDIRECT_URI=https://", "not a valid URL"},
    {"OAUTH__GOOGLE_REDIRECT_URI=https:///path", "not a valid URL"},
    {"OAUTH__GOOGLE_REDIRECT_URI=https://exa mple.com/", "not a valid URL"},
    {"OAUTH__GOOGLE_REDIRECT_URI=https://host:99999/", "not a valid URL"},
    {"OAUTH__GOOGLE_REDIRECT_URI=https://host:/", "not a valid URL"},
    {"OAUTH__GOOGLE_REDIRECT_URI=https://[::1/", "not a valid URL"},
    {"OAUTH__GOOGLE_REDIRECT_URI=javascript:alert(1)", "not a valid URL"},
    {"OAUTH__GOOGLE_REDIRECT_URI=https://h\xc3\xa9.example/", "not"},
    {"SAML__SP_ACS_URL=example.com/acs", "not a valid URL"},
    {"EMAIL__PUBLIC_BASE_URL=localhost:8000", "http:// or https://"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4318", "not a valid URL"},
    {"DATABASE__URL=mysql://u@h/db", "sqlite:///<path>"},
    {"DATABASE__URL=sqlite:///", "not a supported database URL"},
    {"DATABASE__URL=sqlite://relative.db", "not a supported database URL"},
    {"DATABASE__URL=./data/authd.db", "not a supported database URL"},
    {"DATABASE__URL=POSTGRESQL://h/db", "not a supported database URL"},
    {"REDIS__URL=http://redis:6379", "redis://"},
    {"REDIS__URL=redis://", "not a Redis URL"},
    {"REDIS__URL=localhost:6379", "not a Redis URL"},
    /* cron */
    {"RETENTION__PURGE_CRON=0 3 * *", "not a cron expression"},
    {"RETENTION__PURGE_CRON=0 3 * * * *", "not a cron expression"},
    {"RETENTION__PURGE_CRON=60 3 * * *", "not a cron expression"},
    {"RETENTION__PURGE_CRON=0 24 * * *", "not a cron expression"},
    {"RETENTION__PURGE_CRON=0 3 0 * *", "not a cron expression"},
    {"RETENTION__PURGE_CRON=0 3 * 13 *", "not a cron expression"},
    {"RETENTION__PURGE_CRON=0 3 * * 8", "not a cron expression"},
    {"RETENTION__PURGE_CRON=5-1 * * * *", "not a cron expression"},
    {"RETENTION__PURGE_CRON=*/0 * * * *", "not a cron expression"},
    {"RETENTION__PURGE_CRON=1,,2 * * * *", "not a cron expression"},
    {"RETENTION__PURGE_CRON=a b c d e", "not a cron expression"},
    {"RETENTION__PURGE_CRON=@daily", "not a cron expression"},
    {"RETENTION__PURGE_CRON=   ", "not a cron expression"},
    /* strings */
    {"APP__SERVICE=   ", "blank"},
    {"APP__HOST=\t", "blank"},
    {"WEBHOOK__QUEUE_NAME= ", "blank"},
    {"BROWSER_SESSIONS__CSRF_HEADER_NAME=   ", "blank"},
    {"ADMIN_API_KEY=   ", "blank"},
    {"EMAIL__EMAIL_FROM=a@b\r\nBcc: x@y", "control characters"},
    {"APP__SERVICE=auth\nservice", "control characters"},
    {"BROWSER_SESSIONS__ACCESS_COOKIE_NAME=bad name", "HTTP token"},
    {"BROWSER_SESSIONS__ACCESS_COOKIE_NAME=a;b", "HTTP token"},
    {"BROWSER_SESSIONS__CSRF_HEADER_NAME=X-CSRF:Token", "HTTP token"},
    {"BROWSER_SESSIONS__TRANSPORT_HEADER_NAME=X\xc3\xa9", "HTTP token"},
    {"BROWSER_SESSIONS__ACCESS_COOKIE_PATH=auth", "starting with /"},
    {"BROWSER_SESSIONS__CSRF_COOKIE_PATH=/a;b", "starting with /"},
    {"BROWSER_SESSIONS__COOKIE_DOMAIN=example.com; HttpOnly", "domain"},
    {"APP__SERVICE=\xff\xfe", "UTF-8"},
};

static void test_bad_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const struct bad_case *t = &bad_cases[i];
        struct envb e;
        env_init(&e, DEV);
        env_set(&e, t->kv);
        const char *err = load_err(e.v, NULL);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(t->kv, "="), t->kv);
        if (strncmp(err, name, strlen(name)) != 0 || !strstr(err, t->expect))
            fail_msg("case %zu (%s): got \"%s\", want \"%s\" and \"%s\"", i, t->kv, err, name,
                     t->expect);
    }
}

static void test_secret_never_quoted(void **state)
{
    (void)state;
    struct envb e;
    env_init(&e, DEV);
    env_set(&e, "DATABASE__URL=mysql://root:hunter2@db/x");
    const char *err = load_err(e.v, NULL);
    assert_null(strstr(err, "hunter2"));
    env_init(&e, DEV);
    env_set(&e, "REDIS__URL=memcache://:hunter2@r");
    err = load_err(e.v, NULL);
    assert_null(strstr(err, "hunter2"));
    env_init(&e, DEV);
    env_set(&e, "ADMIN_API_KEY=\xff hunter2");
    err = load_err(e.v, NULL);
    assert_null(strstr(err, "hunter2"));
}

static void test_long_value(void **state)
{
    (void)state;
    size_t n = CONFIG_VALUE_MAX + 1;
    char *kv = malloc(n + 32);
    int off = snprintf(kv, 32, "APP__SERVICE=");
    memset(kv + off, 'a', n);
    kv[off + n] = '\0';
    struct envb e;
    env_init(&e, DEV);
    env_set(&e, kv);
    assert_non_null(strstr(load_err(e.v, NULL), "too long"));
    kv[off + n - 1] = '\0'; /* exactly the maximum is fine */
    struct config *c = NULL;
    char err[ERRLEN];
    assert_int_equal(load(e.v, NULL, &c, err, NULL), RC_OK);
    assert_int_equal(strlen(c->app.service), CONFIG_VALUE_MAX);
    config_free(c);
    free(kv);
}

/* ---- accepted values, checked through the dump ---- */

struct good_case {
    const char *kv;
    const char *line; /* expected line of config_dump */
};

static const struct good_case good_cases[] = {
    {"APP__PORT=1", "APP__PORT=1"},
    {"APP__PORT=65535", "APP__PORT=65535"},
    {"APP__PORT=08080", "APP__PORT=8080"},
    {"APP__PORT=", "APP__PORT=8000"},
    {"APP__HTTP_THREADS=3", "APP__HTTP_THREADS=3"},
    {"APP__EXPOSE_DOCS=TRUE", "APP__EXPOSE_DOCS=true"},
    {"APP__EXPOSE_DOCS=Yes", "APP__EXPOSE_DOCS=true"},
    {"APP__EXPOSE_DOCS=on", "APP__EXPOSE_DOCS=true"},
    {"APP__EXPOSE_DOCS=T", "APP__EXPOSE_DOCS=true"},
    {"APP__EXPOSE_DOCS=y", "APP__EXPOSE_DOCS=true"},
    {"APP__EXPOSE_DOCS=1", "APP__EXPOSE_DOCS=true"},
    {"AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=False",
     "AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=false"},
    {"AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=NO",
     "AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=false"},
    {"AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=Off",
     "AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=false"},
    {"AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=f",
     "AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=false"},
    {"AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=N",
     "AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=false"},
    {"AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=0",
     "AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=false"},
    {"AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=", /* empty = default */
     "AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN=true"},
    {"APP__LOG_LEVEL=DEBUG", "APP__LOG_LEVEL=DEBUG"},
    {"APP__ENVIRONMENT=staging", "APP__ENVIRONMENT=staging"},
    {"APP__ALLOWED_HOSTS=[\" a.example.com \", \"\", \"  \", \"*.b.example\"]",
     "APP__ALLOWED_HOSTS='[\"a.example.com\",\"*.b.example\"]'"},
    {"APP__ALLOWED_HOSTS=[]", "APP__ALLOWED_HOSTS=[]"},
    {"APP__ALLOWED_HOSTS=  [ ]  ", "APP__ALLOWED_HOSTS=[]"},
    {"APP__TRUSTED_PROXY_CIDRS=[\"10.0.0.0/8\",\" 192.168.1.7/24 \",\"bogus\",\"::1\","
     "\"2001:db8::/129\",\"10.0.0.1/33\",\"10.0.0.1/\",\"fd00::/8\",\"1.2.3\"]",
     "APP__TRUSTED_PROXY_CIDRS='[\"10.0.0.0/8\",\"192.168.1.7/24\",\"::1\",\"fd00::/8\"]'"},
    {"OAUTH__REDIRECT_URI_ALLOWLIST=[\"HTTPS://App.Example.COM\",\"http://x.test:80/cb?a=1\","
     "\"https://x.test:8443\",\"https://x.test:443?q#f\",\"https://[::1]:443/p\"]",
     "OAUTH__REDIRECT_URI_ALLOWLIST='[\"https://app.example.com/\",\"http://x.test/cb?a=1\","
     "\"https://x.test:8443/\",\"https://x.test/?q#f\",\"https://[::1]/p\"]'"},
    {"DATABASE__URL=postgresql+asyncpg://u:pw@h:5432/db",
     "DATABASE__URL=postgresql+asyncpg://u:***@h:5432/db"},
    {"DATABASE__URL=postgres://h/db?sslmode=require&password=pw",
     "DATABASE__URL=postgres://h/db?sslmode=require&password=***"},
    {"DATABASE__URL=postgresql://u@h/db", "DATABASE__URL=postgresql://u@h/db"},
    {"DATABASE__URL=sqlite:////tmp/x.db", "DATABASE__URL=sqlite:////tmp/x.db"},
    {"DATABASE__URL=", "DATABASE__URL=sqlite:///./data/authd.db"},
    {"REDIS__URL=rediss://:pw@r:6380/0", "REDIS__URL=rediss://:***@r:6380/0"},
    {"REDIS__URL=redis://redis:6379/0", "REDIS__URL=redis://redis:6379/0"},
    {"REDIS__URL=", "REDIS__URL="},
    {"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318",
     "OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318"},
    {"RETENTION__PURGE_CRON=  */15 0-6,22 1 1-12/2 0,7  ",
     "RETENTION__PURGE_CRON='*/15 0-6,22 1 1-12/2 0,7'"},
    {"RETENTION__PURGE_CRON=", "RETENTION__PURGE_CRON='0 3 * * *'"},
    {"BROWSER_SESSIONS__COOKIE_DOMAIN=   ", "BROWSER_SESSIONS__COOKIE_DOMAIN="},
    {"BROWSER_SESSIONS__COOKIE_DOMAIN= .example.com ",
     "BROWSER_SESSIONS__COOKIE_DOMAIN=.example.com"},
    {"BROWSER_SESSIONS__SAME_SITE= strict ", "BROWSER_SESSIONS__SAME_SITE=strict"},
    {"BROWSER_SESSIONS__CSRF_HEADER_NAME=  X-Csrf  ", "BROWSER_SESSIONS__CSRF_HEADER_NAME=X-Csrf"},
    {"APP__SERVICE=my-svc", "OTEL_SERVICE_NAME=my-svc"},
    {"APP__SERVICE= spaced name ", "APP__SERVICE=' spaced name '"},
    {"OTEL_SERVICE_NAME=tracer", "OTEL_SERVICE_NAME=tracer"},
    {"ADMIN_API_KEY=", "ADMIN_API_KEY="},
    {"ADMIN_API_KEY=dev-key", "ADMIN_API_KEY=***"},
    {"EMAIL__EMAIL_FROM=Auth <auth@example.com>", "EMAIL__EMAIL_FROM='Auth <auth@example.com>'"},
};

static void test_good_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good_cases / sizeof *good_cases; i++) {
        const struct good_case *t = &good_cases[i];
        struct envb e;
        struct config *c = NULL;
        char err[ERRLEN];
        env_init(&e, DEV);
        env_set(&e, t->kv);
        if (load(e.v, NULL, &c, err, NULL) != RC_OK)
            fail_msg("case %zu (%s): %s", i, t->kv, err);
        char *d = capture(dump_fn, c);
        if (!has_line(d, t->line))
            fail_msg("case %zu (%s): no line \"%s\" in dump:\n%s", i, t->kv, t->line, d);
        free(d);
        config_free(c);
    }
}

/* ---- names ---- */

static void test_case_insensitive_names(void **state)
{
    (void)state;
    const char *const kvs[] = {"app__environment=staging",
                               "App__Port=9000",
                               "database__POOL_SIZE=5",
                               "admin_api_key=",
                               "Unknown__Thing=1",
                               "PATH=/bin",
                               NULL};
    struct config *c = load_ok(kvs, NULL);
    assert_int_equal(c->app.environment, ENV_STAGING);
    assert_int_equal(c->app.port, 9000);
    assert_int_equal(c->database.pool_size, 5);
    config_free(c);

    /* One name twice with different values is refused, same value is fine. */
    struct envb e;
    env_init(&e, DEV);
    env_set(&e, "APP__PORT=1");
    env_set(&e, "app__port=2");
    assert_non_null(strstr(load_err(e.v, NULL), "more than once"));
    env_set(&e, "app__port=1");
    struct config *c2 = NULL;
    char err[ERRLEN];
    assert_int_equal(load(e.v, NULL, &c2, err, NULL), RC_OK);
    assert_int_equal(c2->app.port, 1);
    config_free(c2);
}

static void test_environ_default(void **state)
{
    (void)state;
    struct config *c = NULL;
    char err[ERRLEN];
    setenv("APP__ENVIRONMENT", "staging", 1);
    setenv("APP__PORT", "8123", 1);
    assert_int_equal(config_load(NULL, NO_DOTENV, &c, err, sizeof err, NULL), RC_OK);
    assert_int_equal(c->app.environment, ENV_STAGING);
    assert_int_equal(c->app.port, 8123);
    config_free(c);
    unsetenv("APP__ENVIRONMENT");
    unsetenv("APP__PORT");
}

/* ---- .env ---- */

static const char DOTENV[] =
    "\xEF\xBB\xBF# comment line\n"
    "\n"
    "   # indented comment\n"
    "APP__ENVIRONMENT=development\n"
    "export APP__HOST=127.0.0.1\n"
    "app__service = 'quoted # not a comment'  # trailing comment\n"
    "APP__LOG_LEVEL=\"DEBUG\"\r\n"
    "EMAIL__EMAIL_FROM=auth@example.com # inline comment\n"
    "WEBHOOK__QUEUE_NAME=hooks#kept\n"
    "APP__PORT=1111\n"
    "APP__PORT=2222\n"
    "DATABASE__POOL_SIZE=7\n"
    "JWT__PUBLIC_KEY_PEM=\"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n\"\n"
    "JWT__PRIVATE_KEY_PEM='-----BEGIN PRIVATE KEY-----\n"
    "BBBB\n"
    "-----END PRIVATE KEY-----\n"
    "'\n"
    "EMAIL__MAILHOG_HOST=  mail.example  \n"
    "EMAIL__SMTP_USERNAME=\"a\\\"b\\\\c\\$d\\qe\"\n"
    "EMAIL__SMTP_PASSWORD='p\"w'\n"
    "REDIS__URL=\n";

static void test_dotenv(void **state)
{
    (void)state;
    const char *const env[] = {"DATABASE__POOL_SIZE=9", NULL}; /* environment wins */
    struct config *c = load_ok(env, DOTENV);
    assert_int_equal(c->app.environment, ENV_DEVELOPMENT);
    assert_string_equal(c->app.host, "127.0.0.1");
    assert_string_equal(c->app.service, "quoted # not a comment");
    assert_string_equal(c->app.log_level, "DEBUG");
    assert_string_equal(c->email.email_from, "auth@example.com");
    assert_string_equal(c->webhook.queue_name, "hooks#kept");
    assert_int_equal(c->app.port, 2222); /* last line of the file wins */
    assert_int_equal(c->database.pool_size, 9);
    assert_string_equal(c->jwt.public_key_pem,
                        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    assert_string_equal(c->jwt.private_key_pem,
                        "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n");
    assert_string_equal(c->email.mailhog_host, "mail.example");
    assert_string_equal(c->email.smtp_username, "a\"b\\c$d\\qe");
    assert_string_equal(c->email.smtp_password, "p\"w");
    assert_null(c->redis.url);
    config_free(c);

    /* An empty environment value is unset, so the file's value applies. */
    const char *const env2[] = {"APP__PORT=", NULL};
    c = load_ok(env2, "APP__ENVIRONMENT=development\nAPP__PORT=3333\n");
    assert_int_equal(c->app.port, 3333);
    config_free(c);

    /* Environment beats the file whatever the case of either name. */
    const char *const env3[] = {"app__environment=staging", NULL};
    c = load_ok(env3, "APP__ENVIRONMENT=production\n");
    assert_int_equal(c->app.environment, ENV_STAGING);
    config_free(c);

    /* A bad value from the file is reported like one from the environment. */
    struct envb e;
    env_init(&e, NULL);
    assert_non_null(
        strstr(load_err(e.v, "APP__ENVIRONMENT=development\nAPP__PORT=x\n"), "APP__PORT"));
}

struct dotenv_bad {
    const char *text;
    const char *expect;
};

static const struct dotenv_bad dotenv_bad[] = {
    {"APP__ENVIRONMENT=development\nJUST_A_WORD\n", ":2: expected KEY=value"},
    {"=value\n", ":1: expected KEY=value"},
    {"1ABC=value\n", ":1: expected KEY=value"},
    {"APP-PORT=1\n", ":1: expected KEY=value"},
    {"A=\"unterminated\n", "unterminated"},
    {"A='unterminated\nB=1\n", "unterminated"},
    {"A=\"x\" trailing\n", ":1: unexpected text after the closing quote"},
    {"A=\xff\n", "not UTF-8"},
    {"A=ok\n\x00\n", "not UTF-8"},
};

static void test_dotenv_bad(void **state)
{
    (void)state;
    struct envb e;
    env_init(&e, DEV);
    for (size_t i = 0; i < sizeof dotenv_bad / sizeof *dotenv_bad; i++) {
        const char *err;
        if (i + 1 == sizeof dotenv_bad / sizeof *dotenv_bad) {
            /* Embedded NUL: write the bytes by hand. */
            char path[] = "/tmp/test_config_XXXXXX";
            int fd = mkstemp(path);
            assert_int_equal(write(fd, "A=ok\n\0\n", 7), 7);
            close(fd);
            static char buf[ERRLEN];
            struct config *c = NULL;
            assert_int_equal(config_load(e.v, path, &c, buf, sizeof buf, NULL), RC_INVALID);
            unlink(path);
            err = buf;
        } else {
            err = load_err(e.v, dotenv_bad[i].text);
        }
        if (!strstr(err, dotenv_bad[i].expect) || !strstr(err, "/tmp/test_config_"))
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, dotenv_bad[i].expect);
    }
    /* A directory is not a readable file. */
    struct config *c = NULL;
    char err[ERRLEN];
    assert_int_equal(config_load(e.v, "/tmp", &c, err, sizeof err, NULL), RC_INVALID);
    assert_non_null(strstr(err, "/tmp"));
}

/* ---- sections ---- */

static const char *const OAUTH_ALL[] = {
    "OAUTH__GOOGLE_CLIENT_ID=cid", "OAUTH__GOOGLE_CLIENT_SECRET=csecret",
    "OAUTH__GOOGLE_REDIRECT_URI=https://auth.example.com/auth/oauth/google/callback", NULL};
static const char *const SAML_ALL[] = {
    "SAML__SP_ENTITY_ID=https://auth.example.com/sp",
    "SAML__SP_ACS_URL=https://auth.example.com/auth/saml/callback",
    "SAML__SP_X509_CERT=spcert",
    "SAML__SP_PRIVATE_KEY=spkey",
    "SAML__IDP_ENTITY_ID=https://idp.example.com",
    "SAML__IDP_SSO_URL=https://idp.example.com/sso",
    "SAML__IDP_X509_CERT=idpcert",
    NULL};

/* Every proper non-empty subset of a section must fail naming a missing
 * variable; the full set enables the section. */
static void check_all_or_none(const char *const *all, const char *extra, size_t off_enabled)
{
    int n = 0;
    while (all[n])
        n++;
    for (unsigned mask = 1; mask + 1 < (1u << n); mask++) {
        struct envb e;
        env_init(&e, DEV);
        if (extra)
            env_set(&e, extra);
        for (int i = 0; i < n; i++)
            if (mask & (1u << i))
                env_set(&e, all[i]);
        const char *err = load_err(e.v, NULL);
        int missing = 0;
        while (mask & (1u << missing))
            missing++;
        size_t klen = strcspn(all[missing], "=");
        if (strncmp(err, all[missing], klen) != 0 || !strstr(err, "or none"))
            fail_msg("mask %u: got \"%s\"", mask, err);
    }
    struct envb e;
    env_init(&e, DEV);
    if (extra)
        env_set(&e, extra);
    for (int i = 0; i < n; i++)
        env_set(&e, all[i]);
    struct config *c = NULL;
    char err[ERRLEN];
    if (load(e.v, NULL, &c, err, NULL))
        fail_msg("full section: %s", err);
    if (off_enabled)
        assert_true(*(bool *)((char *)c + off_enabled));
    config_free(c);
}

static void test_sections(void **state)
{
    (void)state;
    check_all_or_none(OAUTH_ALL,
                      "OAUTH__REDIRECT_URI_ALLOWLIST=[\"https://auth.example.com/auth/oauth/"
                      "google/callback\"]",
                      offsetof(struct config, oauth_enabled));
    check_all_or_none(SAML_ALL, NULL, offsetof(struct config, saml_enabled));
    static const char *const smtp[] = {"EMAIL__SMTP_USERNAME=u", "EMAIL__SMTP_PASSWORD=p", NULL};
    check_all_or_none(smtp, NULL, 0);
    static const char *const jwt[] = {"JWT__PRIVATE_KEY_PEM=priv", "JWT__PUBLIC_KEY_PEM=pub", NULL};
    check_all_or_none(jwt, NULL, 0);

    /* Empty strings count as unset: no partial section. */
    const char *const empty[] = {"APP__ENVIRONMENT=development", "OAUTH__GOOGLE_CLIENT_ID=",
                                 "SAML__IDP_X509_CERT=", "EMAIL__SMTP_PASSWORD=", NULL};
    struct config *c = load_ok(empty, NULL);
    assert_false(c->oauth_enabled);
    assert_false(c->saml_enabled);
    config_free(c);

    /* OAuth needs at least one allow-list entry; SAML alone does not. */
    struct envb e;
    env_init(&e, DEV);
    for (int i = 0; OAUTH_ALL[i]; i++)
        env_set(&e, OAUTH_ALL[i]);
    assert_non_null(strstr(load_err(e.v, NULL), "OAUTH__REDIRECT_URI_ALLOWLIST: is empty"));

    /* The allow-list is standalone (R6). */
    const char *const alone[] = {"APP__ENVIRONMENT=development",
                                 "OAUTH__REDIRECT_URI_ALLOWLIST=[\"https://app.example.com/\"]",
                                 NULL};
    c = load_ok(alone, NULL);
    assert_false(c->oauth_enabled);
    assert_int_equal(c->oauth.redirect_uri_allowlist.n, 1);
    config_free(c);
}

/* ---- browser-session cookie rules ---- */

struct cookie_case {
    const char *kv[6];
    const char *expect; /* NULL = loads */
};

static const struct cookie_case cookie_cases[] = {
    {{"BROWSER_SESSIONS__ENABLED=false"}, NULL},
    {{"BROWSER_SESSIONS__ENABLED=true"},
     "BROWSER_SESSIONS__ACCESS_COOKIE_NAME: a name starting with __Host- requires "
     "BROWSER_SESSIONS__SECURE_ONLY=true"},
    {{"BROWSER_SESSIONS__ENABLED=true", "BROWSER_SESSIONS__SECURE_ONLY=true"}, NULL},
    {{"BROWSER_SESSIONS__ENABLED=true", "BROWSER_SESSIONS__SECURE_ONLY=true",
      "BROWSER_SESSIONS__COOKIE_DOMAIN=example.com"},
     "BROWSER_SESSIONS__ACCESS_COOKIE_NAME: a name starting with __Host- requires "
     "BROWSER_SESSIONS__COOKIE_DOMAIN to be unset"},
    {{"BROWSER_SESSIONS__ENABLED=true", "BROWSER_SESSIONS__SECURE_ONLY=true",
      "BROWSER_SESSIONS__REFRESH_COOKIE_PATH=/auth"},
     "BROWSER_SESSIONS__REFRESH_COOKIE_NAME: a name starting with __Host- requires "
     "BROWSER_SESSIONS__REFRESH_COOKIE_PATH=/"},
    {{"BROWSER_SESSIONS__ENABLED=true", "BROWSER_SESSIONS__SECURE_ONLY=true",
      "BROWSER_SESSIONS__ACCESS_COOKIE_NAME=__Secure-a", "BROWSER_SESSIONS__REFRESH_COOKIE_NAME=r",
      "BROWSER_SESSIONS__CSRF_COOKIE_NAME=__Secure-c", "BROWSER_SESSIONS__COOKIE_DOMAIN=ex.com"},
     NULL},
    {{"BROWSER_SESSIONS__ENABLED=true", "BROWSER_SESSIONS__ACCESS_COOKIE_NAME=a",
      "BROWSER_SESSIONS__REFRESH_COOKIE_NAME=r", "BROWSER_SESSIONS__CSRF_COOKIE_NAME=__Secure-c"},
     "BROWSER_SESSIONS__CSRF_COOKIE_NAME: a name starting with __Secure- requires"},
    {{"BROWSER_SESSIONS__ENABLED=true", "BROWSER_SESSIONS__ACCESS_COOKIE_NAME=__host-a"},
     "BROWSER_SESSIONS__ACCESS_COOKIE_NAME: a name starting with __Host-"},
    {{"BROWSER_SESSIONS__ENABLED=true", "BROWSER_SESSIONS__ACCESS_COOKIE_NAME=a",
      "BROWSER_SESSIONS__REFRESH_COOKIE_NAME=r", "BROWSER_SESSIONS__CSRF_COOKIE_NAME=c",
      "BROWSER_SESSIONS__SAME_SITE=none"},
     "BROWSER_SESSIONS__SAME_SITE: none requires BROWSER_SESSIONS__SECURE_ONLY=true"},
    {{"BROWSER_SESSIONS__ENABLED=true", "BROWSER_SESSIONS__ACCESS_COOKIE_NAME=a",
      "BROWSER_SESSIONS__REFRESH_COOKIE_NAME=r", "BROWSER_SESSIONS__CSRF_COOKIE_NAME=c",
      "BROWSER_SESSIONS__SAME_SITE=strict", "BROWSER_SESSIONS__ACCESS_COOKIE_PATH=/x"},
     NULL},
    {{"BROWSER_SESSIONS__ENABLED=true", "BROWSER_SESSIONS__SECURE_ONLY=true",
      "BROWSER_SESSIONS__SAME_SITE=none"},
     NULL},
    /* Rules are checked only when enabled. */
    {{"BROWSER_SESSIONS__ENABLED=false", "BROWSER_SESSIONS__SAME_SITE=none",
      "BROWSER_SESSIONS__COOKIE_DOMAIN=example.com"},
     NULL},
};

static void test_cookie_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cookie_cases / sizeof *cookie_cases; i++) {
        const struct cookie_case *t = &cookie_cases[i];
        struct envb e;
        env_init(&e, DEV);
        for (int k = 0; k < 6 && t->kv[k]; k++)
            env_set(&e, t->kv[k]);
        struct config *c = NULL;
        char err[ERRLEN];
        rc_t rc = load(e.v, NULL, &c, err, NULL);
        if (!t->expect) {
            if (rc)
                fail_msg("case %zu: %s", i, err);
            config_free(c);
        } else if (rc == RC_OK || strncmp(err, t->expect, strlen(t->expect)) != 0) {
            config_free(c);
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, rc ? err : "success", t->expect);
        }
    }
}

/* ---- production guardrails ---- */

static const char *const PROD_OK[] = {
    "APP__ENVIRONMENT=production",
    "APP__ALLOWED_HOSTS=[\"auth.example.com\",\"*.internal.example.com\"]",
    "SIGNING_KEYS__ENCRYPTION_KEY=k1",
    "SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY=k2",
    "WEBHOOK__SECRET_ENCRYPTION_KEY=k3",
    "EMAIL__PUBLIC_BASE_URL=https://auth.example.com",
    "OAUTH__GOOGLE_CLIENT_ID=cid",
    "OAUTH__GOOGLE_CLIENT_SECRET=cs",
    "OAUTH__GOOGLE_REDIRECT_URI=https://auth.example.com/auth/oauth/google/callback",
    "OAUTH__REDIRECT_URI_ALLOWLIST=[\"https://auth.example.com/auth/oauth/google/callback\","
    "\"https://app.example.com/\"]",
    "SAML__SP_ENTITY_ID=sp",
    "SAML__SP_ACS_URL=https://auth.example.com/auth/saml/callback",
    "SAML__SP_X509_CERT=c",
    "SAML__SP_PRIVATE_KEY=k",
    "SAML__IDP_ENTITY_ID=idp",
    "SAML__IDP_SSO_URL=https://idp.example.com/sso",
    "SAML__IDP_X509_CERT=c",
    "BROWSER_SESSIONS__ENABLED=true",
    "BROWSER_SESSIONS__SECURE_ONLY=true",
    "BROWSER_SESSIONS__ACCESS_COOKIE_NAME=auth_access",
    "BROWSER_SESSIONS__REFRESH_COOKIE_NAME=auth_refresh",
    "BROWSER_SESSIONS__CSRF_COOKIE_NAME=auth_csrf",
    NULL};

/* config-ops §3 rules 1–12 in order, then ours (13). */
static const struct {
    const char *kv;
    const char *expect;
} prod_rules[] = {
    {"ADMIN_API_KEY=bootstrap", "ADMIN_API_KEY: must not be set in production"},
    {"APP__ALLOWED_HOSTS=[]", "APP__ALLOWED_HOSTS: must list"},
    {"APP__ALLOWED_HOSTS=[\"auth.example.com\",\" * \"]", "APP__ALLOWED_HOSTS: must not contain"},
    {"SIGNING_KEYS__ENCRYPTION_KEY=", "SIGNING_KEYS__ENCRYPTION_KEY: is required in production"},
    {"SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY=", "SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY: is"},
    {"WEBHOOK__SECRET_ENCRYPTION_KEY=", "WEBHOOK__SECRET_ENCRYPTION_KEY: is required"},
    {"OAUTH__GOOGLE_REDIRECT_URI=http://auth.example.com/cb", "OAUTH__GOOGLE_REDIRECT_URI: must"},
    {"OAUTH__REDIRECT_URI_ALLOWLIST=[\"https://a.example/\",\"http://b.example/\"]",
     "OAUTH__REDIRECT_URI_ALLOWLIST: every entry must be an https URL"},
    {"SAML__SP_ACS_URL=http://auth.example.com/acs", "SAML__SP_ACS_URL: must be an https URL"},
    {"SAML__IDP_SSO_URL=http://idp.example.com/sso", "SAML__IDP_SSO_URL: must be an https URL"},
    {"EMAIL__PUBLIC_BASE_URL=http://auth.example.com", "EMAIL__PUBLIC_BASE_URL: must start"},
    {"BROWSER_SESSIONS__SECURE_ONLY=false", "BROWSER_SESSIONS__SECURE_ONLY: must be true"},
    {"APP__TEST_HOOKS=true", "APP__TEST_HOOKS: must be false in production"},
};
#define NRULES (sizeof prod_rules / sizeof *prod_rules)

static void test_production_ok(void **state)
{
    (void)state;
    struct envb e;
    struct config *c = NULL;
    struct config_strlist w = {0};
    char err[ERRLEN];
    env_init(&e, PROD_OK);
    if (load(e.v, NULL, &c, err, &w))
        fail_msg("%s", err);
    assert_int_equal(c->app.environment, ENV_PRODUCTION);
    assert_true(c->oauth_enabled);
    assert_true(c->saml_enabled);
    assert_int_equal(w.n, 2);
    assert_non_null(strstr(w.items[0], "DATABASE__URL"));
    assert_non_null(strstr(w.items[1], "REDIS__URL"));
    config_strlist_free(&w);
    assert_int_equal(w.n, 0);
    config_free(c);

    /* PostgreSQL and Redis: no warnings. NULL warnings is accepted too. */
    env_set(&e, "DATABASE__URL=postgresql://u:p@db/auth");
    env_set(&e, "REDIS__URL=redis://r:6379/0");
    assert_int_equal(load(e.v, NULL, &c, err, &w), RC_OK);
    assert_int_equal(w.n, 0);
    config_free(c);
    env_set(&e, "DATABASE__URL=");
    assert_int_equal(load(e.v, NULL, &c, err, NULL), RC_OK);
    config_free(c);

    /* Providers off: their URL rules do not apply (7–10). */
    const char *const plain[] = {"APP__ENVIRONMENT=production",
                                 "APP__ALLOWED_HOSTS=[\"a.example\"]",
                                 "SIGNING_KEYS__ENCRYPTION_KEY=k1",
                                 "SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY=k2",
                                 "WEBHOOK__SECRET_ENCRYPTION_KEY=k3",
                                 "EMAIL__PUBLIC_BASE_URL=HTTPS://a.example",
                                 "OAUTH__REDIRECT_URI_ALLOWLIST=[\"http://a.example/\"]",
                                 NULL};
    c = load_ok(plain, NULL);
    config_free(c);
}

/* For rule k, violate rules k..N at once: the message must be rule k's.
 * Applied from N down so a lower rule wins when two share a variable. */
static void test_production_order(void **state)
{
    (void)state;
    for (size_t k = 0; k < NRULES; k++) {
        struct envb e;
        env_init(&e, PROD_OK);
        for (size_t j = NRULES; j-- > k;)
            env_set(&e, prod_rules[j].kv);
        const char *err = load_err(e.v, NULL);
        if (strncmp(err, prod_rules[k].expect, strlen(prod_rules[k].expect)) != 0)
            fail_msg("rule %zu: got \"%s\", want \"%s\"", k + 1, err, prod_rules[k].expect);
        /* And each rule alone. */
        env_init(&e, PROD_OK);
        env_set(&e, prod_rules[k].kv);
        err = load_err(e.v, NULL);
        if (strncmp(err, prod_rules[k].expect, strlen(prod_rules[k].expect)) != 0)
            fail_msg("rule %zu alone: got \"%s\"", k + 1, err);
    }
}

/* Staging has no guardrails; the admin key is kept only in development. */
static void test_staging_and_admin_key(void **state)
{
    (void)state;
    struct envb e;
    env_init(&e, PROD_OK);
    for (size_t j = 0; j < NRULES; j++)
        if (j != 1) /* rule 3's list replaces rule 2's empty one */
            env_set(&e, prod_rules[j].kv);
    env_set(&e, "APP__ENVIRONMENT=staging");
    struct config *c = NULL;
    struct config_strlist w = {0};
    char err[ERRLEN];
    if (load(e.v, NULL, &c, err, &w))
        fail_msg("%s", err);
    assert_int_equal(w.n, 0);
    assert_null(c->admin_api_key);
    config_free(c);
    env_set(&e, "APP__ENVIRONMENT=development");
    assert_int_equal(load(e.v, NULL, &c, err, NULL), RC_OK);
    assert_string_equal(c->admin_api_key, "bootstrap");
    config_free(c);
}

/* ---- help, dump, docs ---- */

#define SECRET_MARK "s3cr3t-VALUE-"

static const char *const SECRETS[] = {
    "JWT__PRIVATE_KEY_PEM=" SECRET_MARK "jwt",
    "JWT__PUBLIC_KEY_PEM=public-pem",
    "OAUTH__GOOGLE_CLIENT_ID=cid",
    "OAUTH__GOOGLE_CLIENT_SECRET=" SECRET_MARK "google",
    "OAUTH__GOOGLE_REDIRECT_URI=https://auth.example/cb",
    "SAML__SP_ENTITY_ID=sp",
    "SAML__SP_ACS_URL=https://auth.example/acs",
    "SAML__IDP_ENTITY_ID=idp",
    "SAML__IDP_SSO_URL=https://idp.example/sso",
    "SAML__SP_X509_CERT=" SECRET_MARK "spcert",
    "SAML__SP_PRIVATE_KEY=" SECRET_MARK "spkey",
    "SAML__IDP_X509_CERT=" SECRET_MARK "idpcert",
    "SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY=" SECRET_MARK "refresh",
    "SIGNING_KEYS__ENCRYPTION_KEY=" SECRET_MARK "signing",
    "EMAIL__SMTP_USERNAME=mailer",
    "EMAIL__SMTP_PASSWORD=" SECRET_MARK "smtp",
    "WEBHOOK__SECRET_ENCRYPTION_KEY=" SECRET_MARK "webhook",
    "ADMIN_API_KEY=" SECRET_MARK "admin",
    "DATABASE__URL=postgresql://user:" SECRET_MARK "db@db/auth",
    "REDIS__URL=redis://:" SECRET_MARK "redis@r:6379/0",
    "OTEL_EXPORTER_OTLP_ENDPOINT=https://otel:" SECRET_MARK "otel@collector/",
    "OAUTH__REDIRECT_URI_ALLOWLIST=[\"https://u:" SECRET_MARK "list@app.example/\"]",
    NULL};

static const char *const SECRET_NAMES[] = {"JWT__PRIVATE_KEY_PEM",
                                           "OAUTH__GOOGLE_CLIENT_SECRET",
                                           "SAML__SP_X509_CERT",
                                           "SAML__SP_PRIVATE_KEY",
                                           "SAML__IDP_X509_CERT",
                                           "SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY",
                                           "SIGNING_KEYS__ENCRYPTION_KEY",
                                           "EMAIL__SMTP_PASSWORD",
                                           "WEBHOOK__SECRET_ENCRYPTION_KEY",
                                           "ADMIN_API_KEY",
                                           NULL};

/* Every variable of config-ops §2 plus ours. */
static const char *const ALL_NAMES[] = {"APP__ENVIRONMENT",
                                        "APP__SERVICE",
                                        "APP__HOST",
                                        "APP__PORT",
                                        "APP__LOG_LEVEL",
                                        "APP__TRUSTED_PROXY_CIDRS",
                                        "APP__ALLOWED_HOSTS",
                                        "APP__EXPOSE_DOCS",
                                        "APP__MAX_BODY_BYTES",
                                        "APP__HTTP_THREADS",
                                        "APP__CONNECTION_TIMEOUT_SECONDS",
                                        "APP__SHUTDOWN_GRACE_SECONDS",
                                        "APP__MAX_HEADER_BYTES",
                                        "APP__TEST_HOOKS",
                                        "DATABASE__URL",
                                        "DATABASE__POOL_SIZE",
                                        "DATABASE__MAX_OVERFLOW",
                                        "DATABASE__POOL_TIMEOUT_SECONDS",
                                        "DATABASE__POOL_RECYCLE_SECONDS",
                                        "DATABASE__AUTO_MIGRATE",
                                        "DATABASE__STATEMENT_TIMEOUT_MS",
                                        "REDIS__URL",
                                        "REDIS__HEALTH_CHECK_INTERVAL_SECONDS",
                                        "JWT__ALGORITHM",
                                        "JWT__PRIVATE_KEY_PEM",
                                        "JWT__PUBLIC_KEY_PEM",
                                        "JWT__ACCESS_TOKEN_TTL_SECONDS",
                                        "JWT__REFRESH_TOKEN_TTL_SECONDS",
                                        "OAUTH__GOOGLE_CLIENT_ID",
                                        "OAUTH__GOOGLE_CLIENT_SECRET",
                                        "OAUTH__GOOGLE_REDIRECT_URI",
                                        "OAUTH__REDIRECT_URI_ALLOWLIST",
                                        "SAML__SP_ENTITY_ID",
                                        "SAML__SP_ACS_URL",
                                        "SAML__SP_X509_CERT",
                                        "SAML__SP_PRIVATE_KEY",
                                        "SAML__IDP_ENTITY_ID",
                                        "SAML__IDP_SSO_URL",
                                        "SAML__IDP_X509_CERT",
                                        "RATE_LIMIT__DEFAULT_REQUESTS_PER_MINUTE",
                                        "RATE_LIMIT__LOGIN_REQUESTS_PER_MINUTE",
                                        "RATE_LIMIT__TOKEN_REQUESTS_PER_MINUTE",
                                        "RATE_LIMIT__SERVICE_REQUESTS_PER_MINUTE",
                                        "PASSWORD_HASH__MEMORY_KIB",
                                        "PASSWORD_HASH__ITERATIONS",
                                        "PASSWORD_HASH__WORKERS",
                                        "PASSWORD_HASH__QUEUE_TIMEOUT_MS",
                                        "AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN",
                                        "SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY",
                                        "BROWSER_SESSIONS__ENABLED",
                                        "BROWSER_SESSIONS__INFER_COOKIE_TRANSPORT",
                                        "BROWSER_SESSIONS__TRANSPORT_HEADER_NAME",
                                        "BROWSER_SESSIONS__ACCESS_COOKIE_NAME",
                                        "BROWSER_SESSIONS__REFRESH_COOKIE_NAME",
                                        "BROWSER_SESSIONS__CSRF_COOKIE_NAME",
                                        "BROWSER_SESSIONS__SAME_SITE",
                                        "BROWSER_SESSIONS__SECURE_ONLY",
                                        "BROWSER_SESSIONS__COOKIE_DOMAIN",
                                        "BROWSER_SESSIONS__ACCESS_COOKIE_PATH",
                                        "BROWSER_SESSIONS__REFRESH_COOKIE_PATH",
                                        "BROWSER_SESSIONS__CSRF_COOKIE_PATH",
                                        "BROWSER_SESSIONS__CSRF_HEADER_NAME",
                                        "SIGNING_KEYS__ROTATION_OVERLAP_SECONDS",
                                        "SIGNING_KEYS__ENCRYPTION_KEY",
                                        "EMAIL__MAILHOG_HOST",
                                        "EMAIL__MAILHOG_PORT",
                                        "EMAIL__EMAIL_FROM",
                                        "EMAIL__PUBLIC_BASE_URL",
                                        "EMAIL__EMAIL_VERIFY_TTL_SECONDS",
                                        "EMAIL__PASSWORD_RESET_TTL_SECONDS",
                                        "EMAIL__OTP_CODE_LENGTH",
                                        "EMAIL__OTP_TTL_SECONDS",
                                        "EMAIL__OTP_MAX_ATTEMPTS",
                                        "EMAIL__ACTION_TOKEN_TTL_SECONDS",
                                        "EMAIL__SMTP_USERNAME",
                                        "EMAIL__SMTP_PASSWORD",
                                        "EMAIL__SMTP_STARTTLS",
                                        "WEBHOOK__QUEUE_NAME",
                                        "WEBHOOK__REQUEST_TIMEOUT_SECONDS",
                                        "WEBHOOK__RESPONSE_BODY_MAX_CHARS",
                                        "WEBHOOK__WORKER_TTL_SECONDS",
                                        "WEBHOOK__REDIS_HEALTH_CHECK_INTERVAL_SECONDS",
                                        "WEBHOOK__SECRET_ENCRYPTION_KEY",
                                        "RETENTION__ENABLE_RETENTION_PURGE",
                                        "RETENTION__AUDIT_LOG_RETENTION_DAYS",
                                        "RETENTION__SESSION_LOG_RETENTION_DAYS",
                                        "RETENTION__PURGE_CRON",
                                        "ADMIN_API_KEY",
                                        "OTEL_EXPORTER_OTLP_ENDPOINT",
                                        "OTEL_SERVICE_NAME",
                                        NULL};

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_help(void **state)
{
    (void)state;
    /* Secrets in the process environment must not leak into help. */
    for (int i = 0; SECRETS[i]; i++)
        putenv((char *)SECRETS[i]);
    char *h = capture(help_fn, NULL);
    for (int i = 0; ALL_NAMES[i]; i++) {
        char want[160];
        snprintf(want, sizeof want, "  %s  (", ALL_NAMES[i]);
        if (!strstr(h, want))
            fail_msg("help lacks %s", ALL_NAMES[i]);
    }
    assert_null(strstr(h, SECRET_MARK));
    assert_non_null(strstr(h, "\nAPP__*\n"));
    assert_non_null(strstr(h, "\nOther\n"));
    assert_non_null(strstr(h, "APP__PORT  (int 1..65535; default 8000)"));
    assert_non_null(strstr(h, "APP__ENVIRONMENT  (one of development | staging | production; "
                              "default required)"));
    assert_non_null(strstr(h, "SIGNING_KEYS__ENCRYPTION_KEY  (secret; default unset)"));
    /* Exactly two lines per variable plus the header and section lines. */
    int names = 0;
    while (ALL_NAMES[names])
        names++;
    assert_int_equal(count_lines(h), 4 + 2 * names + 2 * 16);
    free(h);
    for (int i = 0; SECRETS[i]; i++) {
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(SECRETS[i], "="), SECRETS[i]);
        unsetenv(name);
    }
}

static void test_dump(void **state)
{
    (void)state;
    struct envb e;
    env_init(&e, SECRETS);
    env_set(&e, "APP__ENVIRONMENT=development");
    struct config *c = NULL;
    char err[ERRLEN];
    if (load(e.v, NULL, &c, err, NULL))
        fail_msg("%s", err);
    char *d = capture(dump_fn, c);
    assert_null(strstr(d, SECRET_MARK));
    for (int i = 0; SECRET_NAMES[i]; i++) {
        char want[128];
        snprintf(want, sizeof want, "%s=***", SECRET_NAMES[i]);
        if (!has_line(d, want))
            fail_msg("dump lacks %s", want);
    }
    assert_true(has_line(d, "JWT__PUBLIC_KEY_PEM=public-pem"));
    assert_true(has_line(d, "EMAIL__SMTP_USERNAME=mailer"));
    assert_true(has_line(d, "DATABASE__URL=postgresql://user:***@db/auth"));
    assert_true(has_line(d, "REDIS__URL=redis://:***@r:6379/0"));
    int names = 0;
    for (; ALL_NAMES[names]; names++) {
        char want[128];
        snprintf(want, sizeof want, "\n%s=", ALL_NAMES[names]);
        if (!strstr(d, want) && strncmp(d, want + 1, strlen(want + 1)) != 0)
            fail_msg("dump lacks %s", ALL_NAMES[names]);
    }
    assert_int_equal(count_lines(d), names);
    free(d);
    config_free(c);

    /* Unset secrets print empty. */
    c = load_ok(DEV, NULL);
    d = capture(dump_fn, c);
    for (int i = 0; SECRET_NAMES[i]; i++) {
        char want[128];
        snprintf(want, sizeof want, "%s=", SECRET_NAMES[i]);
        assert_true(has_line(d, want));
    }
    free(d);
    config_free(c);
}

/* The dump is valid .env text: loading it yields the same dump. */
static void test_dump_round_trip(void **state)
{
    (void)state;
    const char *const kvs[] = {"APP__ENVIRONMENT=development",
                               "APP__SERVICE=it's \"quoted\" $x # y\\z",
                               "APP__ALLOWED_HOSTS=[\"a.example\",\"it's\"]",
                               "JWT__PUBLIC_KEY_PEM=line1\nline2\n",
                               "JWT__PRIVATE_KEY_PEM=priv",
                               "RETENTION__PURGE_CRON=*/5 * * * 1-5",
                               "BROWSER_SESSIONS__COOKIE_DOMAIN=example.com",
                               NULL};
    struct config *c1 = load_ok(kvs, NULL);
    char *d1 = capture(dump_fn, c1);
    struct envb e;
    env_init(&e, NULL);
    struct config *c2 = NULL;
    char err[ERRLEN];
    if (load(e.v, d1, &c2, err, NULL))
        fail_msg("%s\n%s", err, d1);
    char *d2 = capture(dump_fn, c2);
    assert_string_equal(d1, d2);
    assert_string_equal(c2->app.service, "it's \"quoted\" $x # y\\z");
    assert_string_equal(c2->jwt.public_key_pem, "line1\nline2\n");
    free(d1);
    free(d2);
    config_free(c1);
    config_free(c2);
}

/* docs/configuration.md embeds the generated tables verbatim. Tests run
 * from the repository root; elsewhere the check is skipped. */
static void test_docs_current(void **state)
{
    (void)state;
    FILE *f = fopen("docs/configuration.md", "rb");
    if (!f) {
        skip();
        return;
    }
    char *doc = calloc(1, 1 << 20);
    size_t n = fread(doc, 1, (1 << 20) - 1, f);
    fclose(f);
    doc[n] = '\0';
    char *md = capture(md_fn, NULL);
    if (!strstr(doc, md))
        fail_msg("docs/configuration.md is stale: regenerate its tables from "
                 "config_print_markdown()");
    for (int i = 0; ALL_NAMES[i]; i++)
        assert_non_null(strstr(md, ALL_NAMES[i]));
    free(md);
    free(doc);
}

static void test_misc_api(void **state)
{
    (void)state;
    assert_string_equal(config_env_name(ENV_DEVELOPMENT), "development");
    assert_string_equal(config_env_name(ENV_STAGING), "staging");
    assert_string_equal(config_env_name(ENV_PRODUCTION), "production");
    config_free(NULL);
    config_strlist_free(NULL);

    /* Tiny or absent error buffers are safe. */
    struct envb e;
    env_init(&e, NULL);
    struct config *c = NULL;
    char small[8];
    memset(small, 'x', sizeof small);
    assert_int_equal(config_load(e.v, NO_DOTENV, &c, small, sizeof small, NULL), RC_INVALID);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_int_equal(config_load(e.v, NO_DOTENV, &c, NULL, 0, NULL), RC_INVALID);
    assert_null(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_defaults_more),
        cmocka_unit_test(test_environment_required),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_secret_never_quoted),
        cmocka_unit_test(test_long_value),
        cmocka_unit_test(test_good_values),
        cmocka_unit_test(test_case_insensitive_names),
        cmocka_unit_test(test_environ_default),
        cmocka_unit_test(test_dotenv),
        cmocka_unit_test(test_dotenv_bad),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_cookie_rules),
        cmocka_unit_test(test_production_ok),
        cmocka_unit_test(test_production_order),
        cmocka_unit_test(test_staging_and_admin_key),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_dump),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_docs_current),
        cmocka_unit_test(test_misc_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
