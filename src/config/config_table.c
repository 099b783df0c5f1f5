/* The configuration table (config-ops §2 plus our additions) and the three
 * renderings driven by it: `authd help config`, the Markdown of
 * docs/configuration.md, and the effective-configuration dump.
 *
 * Adding a variable = one field in struct config + one row here. Defaults
 * are text parsed exactly like an environment value, so a default that
 * breaks its own bounds fails the unit tests. Rows are grouped by section
 * (the part of the name before "__"); the renderings keep table order. */
#include "config/config_int.h"

#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/mem.h"

#define OFF(field) offsetof(struct config, field)
#define IMAX INT_MAX

#define STR(n, fld, d, fl, dc)                                                                     \
    {                                                                                              \
        .name = n, .type = CT_STR, .flags = fl, .def = d, .off = OFF(fld), .doc = dc               \
    }
#define SECRET(n, fld, fl, dc)                                                                     \
    {                                                                                              \
        .name = n, .type = CT_STR, .flags = F_SECRET | (fl), .off = OFF(fld), .doc = dc            \
    }
#define INT(n, fld, d, lo, hi, dc)                                                                 \
    {                                                                                              \
        .name = n, .type = CT_INT, .def = d, .min = lo, .max = hi, .off = OFF(fld), .doc = dc      \
    }
#define BOOL(n, fld, d, dc)                                                                        \
    {                                                                                              \
        .name = n, .type = CT_BOOL, .def = d, .off = OFF(fld), .doc = dc                           \
    }
#define URL(n, fld, d, dc)                                                                         \
    {                                                                                              \
        .name = n, .type = CT_URL, .def = d, .off = OFF(fld), .doc = dc                            \
    }
#define CHECKED(n, fld, d, fl, fn, what, dc)                                                       \
    {                                                                                              \
        .name = n, .type = CT_STR, .flags = F_TRIM | (fl), .def = d, .check = fn,                  \
        .check_doc = what, .off = OFF(fld), .doc = dc                                              \
    }
#define TOKEN_DOC "an HTTP token (RFC 9110 tchars: no spaces, separators or controls)"
#define PATH_DOC "a path starting with / without ; , spaces or control characters"
#define DOMAIN_DOC "a domain without / ; , spaces or control characters"

static const char *const env_choices[] = {"development", "staging", "production", NULL};
static const char *const level_choices[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", NULL};
static const char *const alg_choices[] = {"RS256", NULL};
static const char *const samesite_choices[] = {"lax", "strict", "none", NULL};

const struct cfg_var cfg_vars[] = {
    /* APP */
    {.name = "APP__ENVIRONMENT",
     .type = CT_APPENV,
     .flags = F_REQUIRED,
     .choices = env_choices,
     .off = OFF(app.environment),
     .doc = "Deployment environment: production guardrails, error-detail verbosity, /metrics "
            "protection, bootstrap admin key."},
    STR("APP__SERVICE", app.service, "auth-service", 0,
        "Service name: the log `service` field and the mandatory audience of every token; "
        "changing it invalidates all tokens."),
    STR("APP__HOST", app.host, "0.0.0.0", 0, "Bind address."),
    INT("APP__PORT", app.port, "8000", 1, 65535, "Bind port."),
    {.name = "APP__LOG_LEVEL",
     .type = CT_ENUM,
     .def = "INFO",
     .choices = level_choices,
     .off = OFF(app.log_level),
     .doc = "Minimum log level (uppercase)."},
    {.name = "APP__TRUSTED_PROXY_CIDRS",
     .type = CT_CIDR_LIST,
     .def = "[]",
     .off = OFF(app.trusted_proxy_cidrs),
     .doc = "Peers whose X-Forwarded-For is honoured; entries that are not an IP or CIDR are "
            "ignored; host bits allowed."},
    {.name = "APP__ALLOWED_HOSTS",
     .type = CT_LIST,
     .def = "[]",
     .off = OFF(app.allowed_hosts),
     .doc = "Host allow-list: exact names or *.suffix; a lone * allows all (forbidden in "
            "production)."},
    BOOL("APP__EXPOSE_DOCS", app.expose_docs, "false", "Serve GET /openapi.json and /docs."),
    INT("APP__MAX_BODY_BYTES", app.max_body_bytes, "65536", 1024, 1048576,
        "Request body limit (413 payload_too_large)."),
    {.name = "APP__HTTP_THREADS",
     .type = CT_INT,
     .def = "0",
     .def_doc = "0 (= 2 x online cores)",
     .min = 0,
     .max = 256,
     .off = OFF(app.http_threads),
     .doc = "HTTP event-loop threads; 0 = twice the online cores, capped at 256."},
    INT("APP__CONNECTION_TIMEOUT_SECONDS", app.connection_timeout_seconds, "15", 1, 3600,
        "Idle connection timeout (protects against slow clients)."),
    INT("APP__SHUTDOWN_GRACE_SECONDS", app.shutdown_grace_seconds, "20", 0, 600,
        "How long SIGTERM waits for in-flight requests."),
    INT("APP__MAX_HEADER_BYTES", app.max_header_bytes, "16384", 1024, 65536,
        "Total request header size before 431."),
    BOOL("APP__TEST_HOOKS", app.test_hooks, "false",
         "Enable test-only routes; start-up error in production."),

    /* DATABASE */
    {.name = "DATABASE__URL",
     .type = CT_DB_URL,
     .def = "sqlite:///./data/authd.db",
     .off = OFF(database.url),
     .doc = "Database: sqlite:///<path>, postgresql://, postgres:// or postgresql+asyncpg:// "
            "(+asyncpg ignored)."},
    INT("DATABASE__POOL_SIZE", database.pool_size, "20", 1, 1000,
        "PostgreSQL connection pool size (ignored on SQLite)."),
    INT("DATABASE__MAX_OVERFLOW", database.max_overflow, "20", 0, 1000,
        "Extra PostgreSQL connections allowed above the pool size under load."),
    INT("DATABASE__POOL_TIMEOUT_SECONDS", database.pool_timeout_seconds, "30", 1, IMAX,
        "Wait for a free connection before the request fails with 500."),
    INT("DATABASE__POOL_RECYCLE_SECONDS", database.pool_recycle_seconds, "1800", 1, IMAX,
        "Maximum connection age; older connections are replaced at checkout."),
    BOOL("DATABASE__AUTO_MIGRATE", database.auto_migrate, "false",
         "`serve` applies pending PostgreSQL migrations (SQLite always auto-migrates)."),
    INT("DATABASE__STATEMENT_TIMEOUT_MS", database.statement_timeout_ms, "5000", 0, 600000,
        "PostgreSQL statement timeout in ms; 0 = off."),

    /* REDIS */
    {.name = "REDIS__URL",
     .type = CT_REDIS_URL,
     .off = OFF(redis.url),
     .doc = "redis:// or rediss:// URL; unset = in-process store (one instance only)."},
    INT("REDIS__HEALTH_CHECK_INTERVAL_SECONDS", redis.health_check_interval_seconds, "30", 0, IMAX,
        "Idle-connection health check interval for API connections; 0 = off."),

    /* JWT */
    {.name = "JWT__ALGORITHM",
     .type = CT_ENUM,
     .def = "RS256",
     .choices = alg_choices,
     .off = OFF(jwt.algorithm),
     .doc = "Signature algorithm."},
    SECRET("JWT__PRIVATE_KEY_PEM", jwt.private_key_pem, F_MULTILINE,
           "Bootstrap RSA private key (PEM); set with JWT__PUBLIC_KEY_PEM or not at all."),
    STR("JWT__PUBLIC_KEY_PEM", jwt.public_key_pem, NULL, F_MULTILINE,
        "Public half of the bootstrap key (SubjectPublicKeyInfo PEM); its exact text defines the "
        "kid."),
    INT("JWT__ACCESS_TOKEN_TTL_SECONDS", jwt.access_token_ttl_seconds, "900", 1, IMAX,
        "Access-token lifetime."),
    INT("JWT__REFRESH_TOKEN_TTL_SECONDS", jwt.refresh_token_ttl_seconds, "604800", 1, IMAX,
        "Session (sliding) and refresh-token lifetime."),

    /* OAUTH */
    STR("OAUTH__GOOGLE_CLIENT_ID", oauth.google_client_id, NULL, 0,
        "Google OAuth client id (OAuth is enabled when all three GOOGLE_* are set)."),
    SECRET("OAUTH__GOOGLE_CLIENT_SECRET", oauth.google_client_secret, 0,
           "Google OAuth client secret."),
    URL("OAUTH__GOOGLE_REDIRECT_URI", oauth.google_redirect_uri, NULL,
        "Callback registered at Google (https://<host>/auth/oauth/google/callback)."),
    {.name = "OAUTH__REDIRECT_URI_ALLOWLIST",
     .type = CT_URL_LIST,
     .def = "[]",
     .off = OFF(oauth.redirect_uri_allowlist),
     .doc = "Allowed browser return targets for OAuth and SAML (>= 1 entry when OAuth is on); "
            "normalised at load."},

    /* SAML */
    STR("SAML__SP_ENTITY_ID", saml.sp_entity_id, NULL, 0,
        "SP entity id (SAML is enabled when all seven SAML__* are set)."),
    URL("SAML__SP_ACS_URL", saml.sp_acs_url, NULL,
        "Assertion consumer URL (.../auth/saml/callback)."),
    SECRET("SAML__SP_X509_CERT", saml.sp_x509_cert, F_MULTILINE, "SP certificate."),
    SECRET("SAML__SP_PRIVATE_KEY", saml.sp_private_key, F_MULTILINE, "SP private key."),
    STR("SAML__IDP_ENTITY_ID", saml.idp_entity_id, NULL, 0, "IdP entity id."),
    URL("SAML__IDP_SSO_URL", saml.idp_sso_url, NULL, "IdP SSO endpoint (HTTP-Redirect binding)."),
    SECRET("SAML__IDP_X509_CERT", saml.idp_x509_cert, F_MULTILINE, "IdP signing certificate."),

    /* RATE_LIMIT */
    INT("RATE_LIMIT__DEFAULT_REQUESTS_PER_MINUTE", rate_limit.default_requests_per_minute, "120", 1,
        IMAX, "Every path not listed below, including /admin/*."),
    INT("RATE_LIMIT__LOGIN_REQUESTS_PER_MINUTE", rate_limit.login_requests_per_minute, "10", 1,
        IMAX, "Exactly /auth/login."),
    INT("RATE_LIMIT__TOKEN_REQUESTS_PER_MINUTE", rate_limit.token_requests_per_minute, "30", 1,
        IMAX, "Exactly /auth/token."),
    INT("RATE_LIMIT__SERVICE_REQUESTS_PER_MINUTE", rate_limit.service_requests_per_minute, "0", 0,
        IMAX, "/auth/validate, /auth/introspect, /.well-known/jwks.json; 0 = no limit."),

    /* PASSWORD_HASH */
    INT("PASSWORD_HASH__MEMORY_KIB", password_hash.memory_kib, "19456", 8192, 1048576,
        "Argon2id memory (KiB) for new hashes."),
    INT("PASSWORD_HASH__ITERATIONS", password_hash.iterations, "2", 1, 10,
        "Argon2id passes for new hashes."),
    {.name = "PASSWORD_HASH__WORKERS",
     .type = CT_INT,
     .def_doc = "online cores",
     .min = 1,
     .max = 1024,
     .off = OFF(password_hash.workers),
     .doc = "Hashes computed at once; each holds its memory block."},
    INT("PASSWORD_HASH__QUEUE_TIMEOUT_MS", password_hash.queue_timeout_ms, "2000", 1, IMAX,
        "Longest wait for a hashing worker before 503 service_busy."),

    /* AUTH, SESSION_SECURITY */
    BOOL("AUTH__REQUIRE_VERIFIED_EMAIL_FOR_PASSWORD_LOGIN",
         auth.require_verified_email_for_password_login, "true",
         "Password login of an unverified user answers 400 email_not_verified."),
    SECRET("SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY", session_security.refresh_token_hash_key, 0,
           "Key for refresh-token verifiers and OTP hashes (required in production)."),

    /* BROWSER_SESSIONS */
    BOOL("BROWSER_SESSIONS__ENABLED", browser_sessions.enabled, "false",
         "Cookie transport and cookie-carried access tokens."),
    BOOL("BROWSER_SESSIONS__INFER_COOKIE_TRANSPORT", browser_sessions.infer_cookie_transport,
         "true", "Session/CSRF cookies or the CSRF header signal cookie transport."),
    CHECKED("BROWSER_SESSIONS__TRANSPORT_HEADER_NAME", browser_sessions.transport_header_name,
            "X-Auth-Session-Transport", 0, cfg_http_token, TOKEN_DOC,
            "Header whose value cookie/token forces the transport."),
    CHECKED("BROWSER_SESSIONS__ACCESS_COOKIE_NAME", browser_sessions.access_cookie_name,
            "__Host-auth_access", 0, cfg_http_token, TOKEN_DOC, "HttpOnly access cookie."),
    CHECKED("BROWSER_SESSIONS__REFRESH_COOKIE_NAME", browser_sessions.refresh_cookie_name,
            "__Host-auth_refresh", 0, cfg_http_token, TOKEN_DOC, "HttpOnly refresh cookie."),
    CHECKED("BROWSER_SESSIONS__CSRF_COOKIE_NAME", browser_sessions.csrf_cookie_name,
            "__Host-auth_csrf", 0, cfg_http_token, TOKEN_DOC,
            "Script-readable CSRF cookie (double submit)."),
    {.name = "BROWSER_SESSIONS__SAME_SITE",
     .type = CT_ENUM,
     .flags = F_TRIM,
     .def = "lax",
     .choices = samesite_choices,
     .off = OFF(browser_sessions.same_site),
     .doc = "SameSite attribute of the cookies; none requires SECURE_ONLY=true."},
    BOOL("BROWSER_SESSIONS__SECURE_ONLY", browser_sessions.secure_only, "false",
         "Secure attribute on all three cookies."),
    CHECKED("BROWSER_SESSIONS__COOKIE_DOMAIN", browser_sessions.cookie_domain, NULL, F_BLANK_UNSET,
            cfg_cookie_domain, DOMAIN_DOC, "Domain attribute; unset = host-only cookies."),
    CHECKED("BROWSER_SESSIONS__ACCESS_COOKIE_PATH", browser_sessions.access_cookie_path, "/", 0,
            cfg_cookie_path, PATH_DOC, "Path of the access cookie."),
    CHECKED("BROWSER_SESSIONS__REFRESH_COOKIE_PATH", browser_sessions.refresh_cookie_path, "/", 0,
            cfg_cookie_path, PATH_DOC, "Path of the refresh cookie."),
    CHECKED("BROWSER_SESSIONS__CSRF_COOKIE_PATH", browser_sessions.csrf_cookie_path, "/", 0,
            cfg_cookie_path, PATH_DOC, "Path of the CSRF cookie."),
    CHECKED("BROWSER_SESSIONS__CSRF_HEADER_NAME", browser_sessions.csrf_header_name, "X-CSRF-Token",
            0, cfg_http_token, TOKEN_DOC, "Header that must equal the CSRF cookie."),

    /* SIGNING_KEYS */
    INT("SIGNING_KEYS__ROTATION_OVERLAP_SECONDS", signing_keys.rotation_overlap_seconds, "900", 0,
        IMAX, "How long a demoted key keeps verifying before it is retired."),
    SECRET("SIGNING_KEYS__ENCRYPTION_KEY", signing_keys.encryption_key, 0,
           "Passphrase for signing-key private PEMs at rest (required in production)."),

    /* EMAIL */
    STR("EMAIL__MAILHOG_HOST", email.mailhog_host, NULL, 0,
        "SMTP host; unset = write each message to ./data/mail/<id>.eml."),
    INT("EMAIL__MAILHOG_PORT", email.mailhog_port, "1025", 1, 65535, "SMTP port."),
    STR("EMAIL__EMAIL_FROM", email.email_from, "auth@localhost", 0,
        "From header and envelope sender."),
    URL("EMAIL__PUBLIC_BASE_URL", email.public_base_url, "http://localhost:8000",
        "Base of links in emails (https in production)."),
    INT("EMAIL__EMAIL_VERIFY_TTL_SECONDS", email.email_verify_ttl_seconds, "86400", 1, IMAX,
        "Verification token lifetime."),
    INT("EMAIL__PASSWORD_RESET_TTL_SECONDS", email.password_reset_ttl_seconds, "3600", 1, IMAX,
        "Reset token lifetime."),
    INT("EMAIL__OTP_CODE_LENGTH", email.otp_code_length, "6", 4, 12, "OTP digits."),
    INT("EMAIL__OTP_TTL_SECONDS", email.otp_ttl_seconds, "600", 1, IMAX,
        "OTP code, login-challenge token and resend-window lifetime."),
    INT("EMAIL__OTP_MAX_ATTEMPTS", email.otp_max_attempts, "5", 1, IMAX,
        "Attempts per issued code."),
    INT("EMAIL__ACTION_TOKEN_TTL_SECONDS", email.action_token_ttl_seconds, "300", 1, IMAX,
        "Step-up action token lifetime."),
    STR("EMAIL__SMTP_USERNAME", email.smtp_username, NULL, 0,
        "SMTP AUTH user; set together with EMAIL__SMTP_PASSWORD or not at all."),
    SECRET("EMAIL__SMTP_PASSWORD", email.smtp_password, 0, "SMTP AUTH password."),
    BOOL("EMAIL__SMTP_STARTTLS", email.smtp_starttls, "false",
         "Upgrade the SMTP connection with STARTTLS."),

    /* WEBHOOK */
    STR("WEBHOOK__QUEUE_NAME", webhook.queue_name, "webhooks", 0,
        "Namespace of the job wake-up list in Redis."),
    INT("WEBHOOK__REQUEST_TIMEOUT_SECONDS", webhook.request_timeout_seconds, "10", 1, IMAX,
        "Per-attempt HTTP timeout."),
    INT("WEBHOOK__RESPONSE_BODY_MAX_CHARS", webhook.response_body_max_chars, "1000", 1, 1048576,
        "Stored response-body truncation."),
    INT("WEBHOOK__WORKER_TTL_SECONDS", webhook.worker_ttl_seconds, "120", 30, IMAX,
        "Worker heartbeat; blocking Redis waits stay below it."),
    INT("WEBHOOK__REDIS_HEALTH_CHECK_INTERVAL_SECONDS", webhook.redis_health_check_interval_seconds,
        "30", 0, IMAX, "Health-check interval for worker Redis connections; 0 = off."),
    SECRET("WEBHOOK__SECRET_ENCRYPTION_KEY", webhook.secret_encryption_key, 0,
           "First link of the webhook-secret passphrase chain (required in production)."),

    /* RETENTION */
    BOOL("RETENTION__ENABLE_RETENTION_PURGE", retention.enable_retention_purge, "false",
         "Run the retention purge job."),
    INT("RETENTION__AUDIT_LOG_RETENTION_DAYS", retention.audit_log_retention_days, "90", 1, IMAX,
        "Age after which audit rows are deleted."),
    INT("RETENTION__SESSION_LOG_RETENTION_DAYS", retention.session_log_retention_days, "30", 1,
        IMAX, "Age after which ended sessions are deleted."),
    {.name = "RETENTION__PURGE_CRON",
     .type = CT_CRON,
     .flags = F_TRIM,
     .def = "0 3 * * *",
     .off = OFF(retention.purge_cron),
     .doc = "Purge schedule in UTC (numbers, *, ranges, lists, /steps)."},

    /* Top level */
    SECRET("ADMIN_API_KEY", admin_api_key, 0,
           "Development-only admin credential (X-Admin-API-Key); ignored in staging, start-up "
           "error in production."),
    URL("OTEL_EXPORTER_OTLP_ENDPOINT", otel_exporter_otlp_endpoint, NULL,
        "When set, request spans are exported over OTLP/HTTP."),
    {.name = "OTEL_SERVICE_NAME",
     .type = CT_STR,
     .def_doc = "APP__SERVICE",
     .off = OFF(otel_service_name),
     .doc = "service.name of exported spans."},
};

const size_t cfg_nvars = sizeof cfg_vars / sizeof cfg_vars[0];

const struct cfg_var *cfg_var_find(const char *name)
{
    for (size_t i = 0; i < cfg_nvars; i++)
        if (strcmp(cfg_vars[i].name, name) == 0)
            return &cfg_vars[i];
    return NULL;
}

/* ---- rendering helpers ---- */

/* Length of the section prefix ("APP" of "APP__PORT"); 0 at top level. */
static size_t section_len(const char *name)
{
    const char *s = strstr(name, "__");
    return s ? (size_t)(s - name) : 0;
}

static bool same_section(const struct cfg_var *a, const struct cfg_var *b)
{
    size_t n = section_len(a->name);
    return n == section_len(b->name) && strncmp(a->name, b->name, n) == 0;
}

static void put_choices(struct buf *b, const char *const *ch, const char *sep)
{
    for (int i = 0; ch[i]; i++) {
        if (i)
            buf_puts(b, sep);
        buf_puts(b, ch[i]);
    }
}

/* Type and rules, e.g. "int 1..65535", "one of lax | strict | none". */
static void put_type(struct buf *b, const struct cfg_var *v, const char *sep)
{
    switch (v->type) {
    case CT_STR:
        buf_puts(b, v->flags & F_SECRET ? "secret" : "string");
        if (v->check_doc)
            buf_printf(b, ": %s", v->check_doc);
        break;
    case CT_INT:
        if (v->max == IMAX)
            buf_printf(b, "int >= %lld", v->min);
        else
            buf_printf(b, "int %lld..%lld", v->min, v->max);
        break;
    case CT_BOOL:
        buf_puts(b, "bool");
        break;
    case CT_ENUM:
    case CT_APPENV:
        buf_puts(b, "one of ");
        put_choices(b, v->choices, sep);
        break;
    case CT_URL:
        buf_puts(b, "http(s) URL");
        break;
    case CT_LIST:
        buf_puts(b, "JSON list of strings");
        break;
    case CT_CIDR_LIST:
        buf_puts(b, "JSON list of IP/CIDR");
        break;
    case CT_URL_LIST:
        buf_puts(b, "JSON list of http(s) URLs");
        break;
    case CT_DB_URL:
        buf_puts(b, "database URL");
        break;
    case CT_REDIS_URL:
        buf_puts(b, "redis:// or rediss:// URL");
        break;
    case CT_CRON:
        buf_puts(b, "5-field cron");
        break;
    }
}

static void put_default(struct buf *b, const struct cfg_var *v)
{
    if (v->flags & F_REQUIRED)
        buf_puts(b, "required");
    else if (v->def_doc)
        buf_puts(b, v->def_doc);
    else if (v->def)
        buf_puts(b, v->def);
    else
        buf_puts(b, "unset");
}

void config_print_help(FILE *f)
{
    fputs("authd configuration: environment variables, also read from ./.env (the real\n"
          "environment wins). Names are case-insensitive; unknown names are ignored; an\n"
          "empty value counts as unset. Lists are JSON arrays; booleans accept\n"
          "true/false, 1/0, yes/no, on/off, t/f, y/n.\n",
          f);
    for (size_t i = 0; i < cfg_nvars; i++) {
        const struct cfg_var *v = &cfg_vars[i];
        if (i == 0 || !same_section(v, &cfg_vars[i - 1])) {
            size_t n = section_len(v->name);
            if (n)
                fprintf(f, "\n%.*s__*\n", (int)n, v->name);
            else
                fputs("\nOther\n", f);
        }
        struct buf b;
        buf_init(&b, 4096);
        put_type(&b, v, " | ");
        buf_puts(&b, "; default ");
        put_default(&b, v);
        fprintf(f, "  %s  (%s)\n      %s\n", v->name, b.data, v->doc);
        buf_free(&b);
    }
}

/* Markdown table cell: escapes what would end the cell or start markup. */
static void md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (strchr("|*<", *s))
            fputc('\\', f);
        fputc(*s, f);
    }
}

void config_print_markdown(FILE *f)
{
    for (size_t i = 0; i < cfg_nvars; i++) {
        const struct cfg_var *v = &cfg_vars[i];
        if (i == 0 || !same_section(v, &cfg_vars[i - 1])) {
            size_t n = section_len(v->name);
            if (n)
                fprintf(f, "%s### `%.*s__*`\n\n", i ? "\n" : "", (int)n, v->name);
            else
                fputs("\n### Other variables\n\n", f);
            fputs("| Variable | Type | Default | Meaning |\n|---|---|---|---|\n", f);
        }
        struct buf t, d;
        buf_init(&t, 4096);
        buf_init(&d, 4096);
        put_type(&t, v, ", ");
        put_default(&d, v);
        fprintf(f, "| `%s` | ", v->name);
        md_cell(f, t.data);
        if (v->def && !v->def_doc && !(v->flags & F_REQUIRED))
            fprintf(f, " | `%s` | ", d.data); /* literal default as code */
        else {
            fputs(" | ", f);
            md_cell(f, d.data);
            fputs(" | ", f);
        }
        md_cell(f, v->doc);
        fputs(" |\n", f);
        buf_free(&t);
        buf_free(&d);
    }
}

/* ---- dump ---- */

/* Writes s as a .env value: bare when safe, '…' when possible, else "…". */
static void put_env_value(FILE *f, const char *s)
{
    if (s[strcspn(s, " \t\r\n#'\"\\$")] == '\0') {
        fputs(s, f);
    } else if (!strpbrk(s, "'\r\n")) {
        fprintf(f, "'%s'", s);
    } else {
        fputc('"', f);
        for (; *s; s++) {
            switch (*s) {
            case '\n':
                fputs("\\n", f);
                break;
            case '\r':
                fputs("\\r", f);
                break;
            case '"':
            case '\\':
            case '$':
                fputc('\\', f);
                fputc(*s, f);
                break;
            default:
                fputc(*s, f);
            }
        }
        fputc('"', f);
    }
}

static void put_list(FILE *f, const struct config_strlist *l, bool urls)
{
    json_t *a = json_array();
    for (int i = 0; i < l->n; i++) {
        char *s = urls ? cfg_url_redact(l->items[i]) : xstrdup(l->items[i]);
        json_array_append_new(a, json_string(s));
        free(s);
    }
    char *txt = json_dumps(a, JSON_COMPACT);
    put_env_value(f, txt ? txt : "[]");
    free(txt);
    json_decref(a);
}

static void dump_one(const struct config *c, const struct cfg_var *v, FILE *f)
{
    const char *base = (const char *)c + v->off;
    const char *s = NULL;
    char *tmp = NULL;
    fprintf(f, "%s=", v->name);
    switch (v->type) {
    case CT_INT:
        fprintf(f, "%d", *(const int *)base);
        break;
    case CT_BOOL:
        fputs(*(const bool *)base ? "true" : "false", f);
        break;
    case CT_APPENV:
        fputs(config_env_name(*(const enum app_env *)base), f);
        break;
    case CT_LIST:
    case CT_CIDR_LIST:
    case CT_URL_LIST:
        put_list(f, (const struct config_strlist *)base, v->type == CT_URL_LIST);
        break;
    case CT_URL:
    case CT_DB_URL:
    case CT_REDIS_URL:
        s = *(char *const *)base;
        if (s)
            put_env_value(f, tmp = cfg_url_redact(s));
        break;
    case CT_STR:
    case CT_ENUM:
    case CT_CRON:
        s = *(char *const *)base;
        if (s)
            put_env_value(f, v->flags & F_SECRET ? "***" : s);
        break;
    }
    fputc('\n', f);
    free(tmp);
}

void config_dump(const struct config *c, FILE *f)
{
    for (size_t i = 0; i < cfg_nvars; i++)
        dump_one(c, &cfg_vars[i], f);
}
