/* Configuration (config-ops §1–§3): every environment variable the service
 * reads, parsed once at start-up into one immutable struct config.
 *
 * The variables are described by one declarative table (config_table.c):
 * name, type, default, bounds, flags, field offset and a one-line doc. The
 * same table drives parsing, validation, `authd help config`, the effective
 * configuration dump and docs/configuration.md.
 *
 * Sources: the process environment, then an optional .env file; a variable
 * in the environment wins over the file. Names are matched without regard
 * to case; unknown names are ignored. A variable set to the empty string
 * counts as unset (its default applies; a required one is missing).
 *
 * Ownership: config_load allocates the struct and everything it points to;
 * config_free releases it all (secret strings are wiped first).
 *
 * Thread-safety: config_load reads the environment and the file and touches
 * no global state, so it may run anywhere, but is meant to run once before
 * threads start. The loaded struct is immutable: every thread may read it
 * without locking until config_free. */
#ifndef AUTHD_CONFIG_CONFIG_H
#define AUTHD_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/rc.h"

/* Limits of the loader. */
#define CONFIG_VALUE_MAX 65536      /* bytes of one variable's value */
#define CONFIG_DOTENV_MAX (1 << 20) /* bytes of the .env file */
#define CONFIG_LIST_MAX 1024        /* entries of one JSON list */
#define CONFIG_WARNINGS_MAX 8       /* warnings handed back by config_load */
#define CONFIG_ERR_MIN 256          /* suggested size of the err buffer */

/* Order matches the accepted spellings "development", "staging",
 * "production". */
enum app_env { ENV_DEVELOPMENT, ENV_STAGING, ENV_PRODUCTION };

/* A list of owned, NUL-terminated strings; items is NULL when n == 0. */
struct config_strlist {
    char **items;
    int n;
};

/* The effective configuration. Field names are the lower-cased suffix of
 * the variable (APP__PORT → app.port). Unset optional strings are NULL;
 * strings with a default are never NULL. Secrets are plain strings here;
 * they are flagged sensitive in the table, never printed and wiped on free.
 * Integers are already range-checked; computed defaults are resolved. */
struct config {
    struct {
        enum app_env environment;
        char *service;
        char *host;
        int port;
        char *log_level; /* "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL" */
        /* Entries that do not parse as an IP address or CIDR are dropped. */
        struct config_strlist trusted_proxy_cidrs;
        struct config_strlist allowed_hosts;
        bool expose_docs;
        int max_body_bytes;
        int http_threads; /* 0 in the environment → 2 × online cores, max 256 */
        int connection_timeout_seconds;
        int shutdown_grace_seconds;
        int max_header_bytes;
        bool test_hooks;
    } app;
    struct {
        char *url; /* verbatim; "sqlite:///./data/authd.db" when unset */
        int pool_size, max_overflow, pool_timeout_seconds, pool_recycle_seconds;
        bool auto_migrate;
        int statement_timeout_ms; /* 0 = off */
    } database;
    struct {
        char *url; /* NULL → in-process key-value store */
        int health_check_interval_seconds;
    } redis;
    struct {
        char *algorithm;       /* always "RS256" */
        char *private_key_pem; /* sensitive; set together with public_key_pem */
        char *public_key_pem;  /* exact text (defines the bootstrap kid) */
        int access_token_ttl_seconds;
        int refresh_token_ttl_seconds;
    } jwt;
    struct {
        char *google_client_id;
        char *google_client_secret; /* sensitive */
        char *google_redirect_uri;  /* verbatim */
        /* Shared by OAuth and SAML (R6). Entries are normalised: scheme and
         * host lower-cased, default port removed, empty path → "/". */
        struct config_strlist redirect_uri_allowlist;
    } oauth;
    struct {
        char *sp_entity_id;
        char *sp_acs_url;
        char *sp_x509_cert;   /* sensitive */
        char *sp_private_key; /* sensitive */
        char *idp_entity_id;
        char *idp_sso_url;
        char *idp_x509_cert; /* sensitive */
    } saml;
    struct {
        int default_requests_per_minute;
        int login_requests_per_minute;
        int token_requests_per_minute;
        int service_requests_per_minute; /* 0 = unlimited */
    } rate_limit;
    struct {
        int memory_kib;
        int iterations;
        int workers; /* unset → online cores */
        int queue_timeout_ms;
    } password_hash;
    struct {
        bool require_verified_email_for_password_login;
    } auth;
    struct {
        char *refresh_token_hash_key; /* sensitive */
    } session_security;
    struct {
        bool enabled;
        bool infer_cookie_transport;
        char *transport_header_name;
        char *access_cookie_name;
        char *refresh_cookie_name;
        char *csrf_cookie_name;
        char *same_site; /* "lax" | "strict" | "none" */
        bool secure_only;
        char *cookie_domain; /* NULL = host-only cookies */
        char *access_cookie_path;
        char *refresh_cookie_path;
        char *csrf_cookie_path;
        char *csrf_header_name;
    } browser_sessions;
    struct {
        int rotation_overlap_seconds;
        char *encryption_key; /* sensitive */
    } signing_keys;
    struct {
        char *mailhog_host; /* NULL → file transport */
        int mailhog_port;
        char *email_from;
        char *public_base_url;
        int email_verify_ttl_seconds;
        int password_reset_ttl_seconds;
        int otp_code_length;
        int otp_ttl_seconds;
        int otp_max_attempts;
        int action_token_ttl_seconds;
        char *smtp_username; /* set together with smtp_password */
        char *smtp_password; /* sensitive */
        bool smtp_starttls;
    } email;
    struct {
        char *queue_name;
        int request_timeout_seconds;
        int response_body_max_chars;
        int worker_ttl_seconds;
        int redis_health_check_interval_seconds;
        char *secret_encryption_key; /* sensitive */
    } webhook;
    struct {
        bool enable_retention_purge;
        int audit_log_retention_days;
        int session_log_retention_days;
        char *purge_cron; /* validated 5-field cron, trimmed */
    } retention;
    /* Sensitive. Kept only in development: NULL in staging (where it is
     * ignored) and a start-up error in production. */
    char *admin_api_key;
    char *otel_exporter_otlp_endpoint; /* NULL → spans are not exported */
    char *otel_service_name;           /* unset → copy of app.service */
    /* Derived: the section is completely set (config-ops §2.5). */
    bool oauth_enabled, saml_enabled;
};

/* Loads the configuration from envp (NULL = environ) and the .env file at
 * dotenv_path (NULL = "./.env"; a missing file is fine, an unreadable or
 * malformed one is an error). Then validates the type and range rules, the
 * section rules (OAuth, SAML, SMTP credentials, JWT PEM pair, browser
 * cookies) and, in production, the guardrails of config-ops §3 in their
 * order (first violation wins).
 *
 * On success returns RC_OK and *out owns a new config (free with
 * config_free). On failure returns RC_INVALID, sets *out = NULL and writes
 * into err (errlen bytes, NUL-terminated, may be truncated) one line naming
 * the variable and what is allowed; secret values are never quoted.
 *
 * warnings, when not NULL, is reset and receives up to CONFIG_WARNINGS_MAX
 * owned messages (production without PostgreSQL or without Redis) for the
 * caller to log; free them with config_strlist_free. Nothing is printed. */
rc_t config_load(char *const *envp, const char *dotenv_path, struct config **out, char *err,
                 size_t errlen, struct config_strlist *warnings) WUR;

/* Frees the config and everything it owns, wiping secrets. NULL ok. */
void config_free(struct config *c);

/* Frees the items of l and resets it to empty. NULL ok. */
void config_strlist_free(struct config_strlist *l);

/* Writes every variable grouped by section with its type, rules, default
 * and one-line doc (`authd help config`). Never prints a secret value. */
void config_print_help(FILE *f);

/* Same content as a Markdown table per section (docs/configuration.md). */
void config_print_markdown(FILE *f);

/* Writes the effective configuration as NAME=value lines in .env syntax.
 * Sensitive values print as "***" when set; passwords inside URLs
 * (DATABASE__URL, REDIS__URL, …) print as "***". Unset values print as
 * NAME= (empty means unset). */
void config_dump(const struct config *c, FILE *f);

/* "development", "staging" or "production"; static. */
const char *config_env_name(enum app_env e);

#endif
