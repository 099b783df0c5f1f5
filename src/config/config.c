/* Configuration loader (config-ops §1–§3). Walks the table of
 * config_table.c once: each variable is looked up (environment first, then
 * .env, names case-insensitive), parsed by its type into the field at its
 * offset, and checked against its bounds. Cross-variable rules follow
 * (sections, pairs, browser cookies), then the production guardrails in
 * their contractual order. The first failure stops the load with one line
 * in err; nothing is printed and no global state is touched. */
#include "config/config.h"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config/config_int.h"
#include "util/buf.h"
#include "util/mem.h"

extern char **environ;

#define DEFAULT_DOTENV "./.env"
#define HTTP_THREADS_MAX 256
#define QUOTE_MAX 64 /* bytes of a bad value quoted in an error */

/* State of one load; err/errlen are the caller's buffer. */
struct loader {
    char *const *envp;
    struct cfg_dotenv dotenv;
    struct config *c;
    char *err;
    size_t errlen;
};

const char *config_env_name(enum app_env e)
{
    switch (e) {
    case ENV_DEVELOPMENT:
        return "development";
    case ENV_STAGING:
        return "staging";
    case ENV_PRODUCTION:
        return "production";
    }
    return "unknown";
}

/* ---- errors ---- */

/* Printable, truncated copy of a bad value for an error line. */
static void quote_value(char *dst, size_t n, const char *s)
{
    size_t j = 0;
    for (size_t i = 0; s[i] && j + 4 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[j++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
        if (i + 1 == QUOTE_MAX && s[i + 1]) {
            memcpy(dst + j, "...", 3);
            j += 3;
            break;
        }
    }
    dst[j] = '\0';
}

/* "NAME: <value shown unless secret> <problem>; allowed: <allowed>". */
static rc_t bad_value(struct loader *l, const struct cfg_var *v, const char *val,
                      const char *problem, const char *allowed)
{
    char q[QUOTE_MAX + 8];
    bool show = val && !(v->flags & F_SECRET) && v->type != CT_DB_URL && v->type != CT_REDIS_URL;
    if (show)
        quote_value(q, sizeof q, val);
    cfg_errf(l->err, l->errlen, "%s: %s%s%s%s; allowed: %s", v->name, show ? "\"" : "",
             show ? q : "", show ? "\" " : "", problem, allowed);
    return RC_INVALID;
}

static rc_t fail(struct loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static rc_t fail(struct loader *l, const char *fmt, ...)
{
    if (l->err && l->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->err, l->errlen, fmt, ap);
        va_end(ap);
    }
    return RC_INVALID;
}

/* ---- lookup ---- */

/* Environment value of name, case-insensitive. Two spellings of one name
 * with different values are refused rather than picked at random. */
static rc_t env_lookup(struct loader *l, const char *name, const char **out)
{
    size_t n = strlen(name);
    *out = NULL;
    for (char *const *e = l->envp; e && *e; e++) {
        if (strncasecmp(*e, name, n) != 0 || (*e)[n] != '=')
            continue;
        const char *val = *e + n + 1;
        if (*out && strcmp(*out, val) != 0)
            return fail(l,
                        "%s: set more than once in the environment with different values "
                        "(names are case-insensitive)",
                        name);
        if (!*out)
            *out = val;
    }
    return RC_OK;
}

/* The raw value of v: environment, then .env. "" counts as unset in both,
 * so an empty environment value lets the file's value through. */
static rc_t lookup(struct loader *l, const struct cfg_var *v, const char **out)
{
    rc_t rc = env_lookup(l, v->name, out);
    if (rc)
        return rc;
    if (!*out || !**out)
        *out = cfg_dotenv_get(&l->dotenv, v->name);
    if (*out && !**out)
        *out = NULL;
    return RC_OK;
}

/* ---- typed parsers: each writes the field at v->off ---- */

static void *field(struct loader *l, const struct cfg_var *v)
{
    return (char *)l->c + v->off;
}

static bool blank(const char *s)
{
    return str_trim(str_of(s)).len == 0;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static rc_t parse_str(struct loader *l, const struct cfg_var *v, const char *s)
{
    struct str t = (v->flags & F_TRIM) ? str_trim(str_of(s)) : str_of(s);
    if (blank(s))
        return bad_value(l, v, NULL, "is blank", "a non-empty value, or leave it unset");
    char *val = xstrndup(t.p, t.len);
    rc_t rc = RC_OK;
    if (!(v->flags & (F_SECRET | F_MULTILINE)) && has_ctl(val))
        rc = bad_value(l, v, val, "contains control characters", "a single line of text");
    else if (v->check && !v->check(val))
        rc = bad_value(l, v, val, "is not valid", v->check_doc);
    if (rc) {
        xfree_secret_str(val);
        return rc;
    }
    *(char **)field(l, v) = val;
    return RC_OK;
}

static rc_t parse_int(struct loader *l, const struct cfg_var *v, const char *s)
{
    char allowed[64];
    int64_t n;
    if (v->max == INT_MAX)
        snprintf(allowed, sizeof allowed, "a decimal integer >= %lld", v->min);
    else
        snprintf(allowed, sizeof allowed, "a decimal integer in %lld..%lld", v->min, v->max);
    if (!str_parse_i64(s, &n))
        return bad_value(l, v, s, "is not a decimal integer", allowed);
    if (n < v->min || n > v->max)
        return bad_value(l, v, s, "is out of range", allowed);
    *(int *)field(l, v) = (int)n;
    return RC_OK;
}

static rc_t parse_bool(struct loader *l, const struct cfg_var *v, const char *s)
{
    if (!cfg_parse_bool(s, (bool *)field(l, v)))
        return bad_value(l, v, s, "is not a boolean",
                         "true/false, 1/0, yes/no, on/off, t/f, y/n (any case)");
    return RC_OK;
}

/* "a | b | c" of an enum's choices. */
static void choices_text(const struct cfg_var *v, char *dst, size_t n)
{
    dst[0] = '\0';
    for (int i = 0; v->choices[i]; i++) {
        if (i)
            strncat(dst, " | ", n - strlen(dst) - 1);
        strncat(dst, v->choices[i], n - strlen(dst) - 1);
    }
}

static rc_t parse_enum(struct loader *l, const struct cfg_var *v, const char *s)
{
    struct str t = (v->flags & F_TRIM) ? str_trim(str_of(s)) : str_of(s);
    char allowed[128];
    for (int i = 0; v->choices[i]; i++) {
        if (!str_eq(t, v->choices[i]))
            continue;
        if (v->type == CT_APPENV)
            *(enum app_env *)field(l, v) = (enum app_env)i;
        else
            *(char **)field(l, v) = xstrdup(v->choices[i]);
        return RC_OK;
    }
    choices_text(v, allowed, sizeof allowed);
    return bad_value(l, v, s, "is not an accepted value (exact spelling)", allowed);
}

#define URL_ALLOWED "an absolute http:// or https:// URL with a host (ASCII; punycode hosts)"

static rc_t parse_url(struct loader *l, const struct cfg_var *v, const char *s)
{
    struct cfg_url u;
    if (!cfg_url_parse(s, &u))
        return bad_value(l, v, s, "is not a valid URL", URL_ALLOWED);
    *(char **)field(l, v) = xstrdup(s);
    return RC_OK;
}

static rc_t parse_db_url(struct loader *l, const struct cfg_var *v, const char *s)
{
    static const char *const pg[] = {"postgresql://", "postgres://", "postgresql+asyncpg://"};
    bool ok = str_starts_with(s, "sqlite:///") && s[10] != '\0';
    for (size_t i = 0; !ok && i < sizeof pg / sizeof *pg; i++)
        ok = str_starts_with(s, pg[i]);
    if (!ok || has_ctl(s))
        return bad_value(l, v, s, "is not a supported database URL",
                         "sqlite:///<path>, postgresql://..., postgres://... or "
                         "postgresql+asyncpg://...");
    *(char **)field(l, v) = xstrdup(s);
    return RC_OK;
}

static rc_t parse_redis_url(struct loader *l, const struct cfg_var *v, const char *s)
{
    bool ok = (str_starts_with(s, "redis://") && s[8]) || (str_starts_with(s, "rediss://") && s[9]);
    if (!ok || has_ctl(s))
        return bad_value(l, v, s, "is not a Redis URL", "redis://... or rediss://...");
    *(char **)field(l, v) = xstrdup(s);
    return RC_OK;
}

static rc_t parse_cron(struct loader *l, const struct cfg_var *v, const char *s)
{
    struct str t = str_trim(str_of(s));
    char *val = xstrndup(t.p, t.len);
    if (!cfg_cron_valid(val)) {
        free(val);
        return bad_value(l, v, s, "is not a cron expression",
                         "5 fields (minute hour day-of-month month day-of-week) of numbers, *, "
                         "ranges a-b, lists a,b and steps /n");
    }
    *(char **)field(l, v) = val;
    return RC_OK;
}

static void list_push(struct config_strlist *out, char *s)
{
    out->items = xrealloc(out->items, (size_t)(out->n + 1) * sizeof *out->items);
    out->items[out->n++] = s;
}

/* Appends one trimmed, non-blank list entry (CIDR lists drop bad ones). */
static rc_t list_entry(struct loader *l, const struct cfg_var *v, struct str t, int idx,
                       struct config_strlist *out)
{
    char *s = xstrndup(t.p, t.len);
    struct cfg_url u;
    if (v->type == CT_CIDR_LIST && !cfg_cidr_valid(s)) {
        free(s); /* config-ops §2.1: unparsable entries are ignored */
        return RC_OK;
    }
    if (v->type == CT_URL_LIST) {
        if (!cfg_url_parse(s, &u)) {
            char q[QUOTE_MAX + 8];
            quote_value(q, sizeof q, s);
            free(s);
            return fail(l, "%s: entry %d \"%s\" is not a valid URL; allowed: %s", v->name, idx, q,
                        URL_ALLOWED);
        }
        char *norm = cfg_url_normalize(&u);
        free(s);
        s = norm;
    } else if (has_ctl(s)) {
        free(s);
        return fail(l, "%s: entry %d contains control characters; allowed: single-line strings",
                    v->name, idx);
    }
    list_push(out, s);
    return RC_OK;
}

static rc_t parse_list(struct loader *l, const struct cfg_var *v, const char *s)
{
    static const char allowed[] = "a JSON array of strings, e.g. [\"a\",\"b\"]";
    struct config_strlist *out = field(l, v);
    json_error_t jerr;
    json_t *a = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
    rc_t rc = RC_OK;
    if (!a) {
        rc = bad_value(l, v, s, "is not valid JSON", allowed);
        goto out;
    }
    if (!json_is_array(a) || json_array_size(a) > CONFIG_LIST_MAX) {
        rc = bad_value(l, v, s, json_is_array(a) ? "has too many entries" : "is not a JSON array",
                       allowed);
        goto out;
    }
    size_t i;
    json_t *it;
    json_array_foreach(a, i, it)
    {
        const char *e = json_string_value(it);
        if (!e || strlen(e) != json_string_length(it)) {
            rc = fail(l, "%s: entry %zu is not a string; allowed: %s", v->name, i, allowed);
            goto out;
        }
        struct str t = str_trim(str_of(e));
        if (t.len && (rc = list_entry(l, v, t, (int)i, out)))
            goto out;
    }
out:
    json_decref(a);
    return rc;
}

static rc_t parse_value(struct loader *l, const struct cfg_var *v, const char *s)
{
    switch (v->type) {
    case CT_STR:
        return parse_str(l, v, s);
    case CT_INT:
        return parse_int(l, v, s);
    case CT_BOOL:
        return parse_bool(l, v, s);
    case CT_ENUM:
    case CT_APPENV:
        return parse_enum(l, v, s);
    case CT_URL:
        return parse_url(l, v, s);
    case CT_LIST:
    case CT_CIDR_LIST:
    case CT_URL_LIST:
        return parse_list(l, v, s);
    case CT_DB_URL:
        return parse_db_url(l, v, s);
    case CT_REDIS_URL:
        return parse_redis_url(l, v, s);
    case CT_CRON:
        return parse_cron(l, v, s);
    }
    return fail(l, "%s: internal: unknown type", v->name);
}

static rc_t load_var(struct loader *l, const struct cfg_var *v)
{
    const char *s = NULL;
    rc_t rc = lookup(l, v, &s);
    if (rc)
        return rc;
    if (s && (v->flags & F_BLANK_UNSET) && blank(s))
        s = NULL;
    if (!s) {
        if (v->flags & F_REQUIRED) {
            char allowed[128] = "any value";
            if (v->choices)
                choices_text(v, allowed, sizeof allowed);
            return fail(l, "%s: is required; allowed: %s", v->name, allowed);
        }
        /* Defaults go through the same parser; NULL leaves the zeroed field. */
        return v->def ? parse_value(l, v, v->def) : RC_OK;
    }
    if (strlen(s) > CONFIG_VALUE_MAX)
        return bad_value(l, v, NULL, "is too long", "at most 65536 bytes");
    if (!utf8_valid(s, strlen(s)))
        return bad_value(l, v, NULL, "is not valid UTF-8", "UTF-8 text");
    return parse_value(l, v, s);
}

/* ---- derived values ---- */

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

static void resolve_derived(struct config *c)
{
    int cores = online_cores();
    if (c->app.http_threads == 0)
        c->app.http_threads = 2 * cores > HTTP_THREADS_MAX ? HTTP_THREADS_MAX : 2 * cores;
    if (c->password_hash.workers == 0)
        c->password_hash.workers = cores;
    if (!c->otel_service_name)
        c->otel_service_name = xstrdup(c->app.service);
}

/* ---- cross-variable rules (always) ---- */

static const char *str_field(const struct config *c, const char *name)
{
    const struct cfg_var *v = cfg_var_find(name);
    return v ? *(char *const *)((const char *)c + v->off) : NULL;
}

/* A group of string variables that must be set together or not at all.
 * *enabled reports "all set". */
static rc_t all_or_none(struct loader *l, const char *what, const char *const *names, int n,
                        bool *enabled)
{
    int set = 0, first_set = -1, first_unset = -1;
    for (int i = 0; i < n; i++) {
        if (str_field(l->c, names[i])) {
            set++;
            first_set = first_set < 0 ? i : first_set;
        } else if (first_unset < 0) {
            first_unset = i;
        }
    }
    *enabled = set == n;
    if (set == 0 || set == n)
        return RC_OK;
    struct buf b;
    buf_init(&b, 1024);
    for (int i = 0; i < n; i++)
        buf_printf(&b, "%s%s", i ? (i + 1 == n ? " and " : ", ") : "", names[i]);
    rc_t rc = fail(l, "%s: is unset while %s is set; %s needs all of %s or none",
                   names[first_unset], names[first_set], what, b.data);
    buf_free(&b);
    return rc;
}

static rc_t check_sections(struct loader *l)
{
    static const char *const jwt[] = {"JWT__PRIVATE_KEY_PEM", "JWT__PUBLIC_KEY_PEM"};
    static const char *const oauth[] = {"OAUTH__GOOGLE_CLIENT_ID", "OAUTH__GOOGLE_CLIENT_SECRET",
                                        "OAUTH__GOOGLE_REDIRECT_URI"};
    static const char *const saml[] = {
        "SAML__SP_ENTITY_ID",  "SAML__SP_ACS_URL",  "SAML__SP_X509_CERT", "SAML__SP_PRIVATE_KEY",
        "SAML__IDP_ENTITY_ID", "SAML__IDP_SSO_URL", "SAML__IDP_X509_CERT"};
    static const char *const smtp[] = {"EMAIL__SMTP_USERNAME", "EMAIL__SMTP_PASSWORD"};
    struct config *c = l->c;
    bool unused;
    rc_t rc;
    if ((rc = all_or_none(l, "the bootstrap key", jwt, 2, &unused)) ||
        (rc = all_or_none(l, "Google OAuth", oauth, 3, &c->oauth_enabled)) ||
        (rc = all_or_none(l, "SAML", saml, 7, &c->saml_enabled)) ||
        (rc = all_or_none(l, "SMTP authentication", smtp, 2, &unused)))
        return rc;
    if (c->oauth_enabled && c->oauth.redirect_uri_allowlist.n == 0)
        return fail(l, "OAUTH__REDIRECT_URI_ALLOWLIST: is empty while Google OAuth is configured; "
                       "allowed: a JSON array of at least one URL (include "
                       "OAUTH__GOOGLE_REDIRECT_URI)");
    return RC_OK;
}

/* config-ops §2.8: cookie-prefix and SameSite rules when enabled. */
static rc_t check_cookies(struct loader *l)
{
    const struct config *c = l->c;
    bool secure = c->browser_sessions.secure_only;
    const struct {
        const char *name_var, *path_var, *name, *path;
    } ck[] = {
        {"BROWSER_SESSIONS__ACCESS_COOKIE_NAME", "BROWSER_SESSIONS__ACCESS_COOKIE_PATH",
         c->browser_sessions.access_cookie_name, c->browser_sessions.access_cookie_path},
        {"BROWSER_SESSIONS__REFRESH_COOKIE_NAME", "BROWSER_SESSIONS__REFRESH_COOKIE_PATH",
         c->browser_sessions.refresh_cookie_name, c->browser_sessions.refresh_cookie_path},
        {"BROWSER_SESSIONS__CSRF_COOKIE_NAME", "BROWSER_SESSIONS__CSRF_COOKIE_PATH",
         c->browser_sessions.csrf_cookie_name, c->browser_sessions.csrf_cookie_path},
    };
    if (!c->browser_sessions.enabled)
        return RC_OK;
    for (size_t i = 0; i < sizeof ck / sizeof *ck; i++) {
        /* Browsers match the prefixes case-insensitively (RFC 6265bis). */
        bool host = str_istarts_with(ck[i].name, "__Host-");
        if ((host || str_istarts_with(ck[i].name, "__Secure-")) && !secure)
            return fail(l,
                        "%s: a name starting with %s requires BROWSER_SESSIONS__SECURE_ONLY=true",
                        ck[i].name_var, host ? "__Host-" : "__Secure-");
        if (host && c->browser_sessions.cookie_domain)
            return fail(l,
                        "%s: a name starting with __Host- requires "
                        "BROWSER_SESSIONS__COOKIE_DOMAIN to be unset",
                        ck[i].name_var);
        if (host && strcmp(ck[i].path, "/") != 0)
            return fail(l, "%s: a name starting with __Host- requires %s=/", ck[i].name_var,
                        ck[i].path_var);
    }
    if (strcmp(c->browser_sessions.same_site, "none") == 0 && !secure)
        return fail(l, "BROWSER_SESSIONS__SAME_SITE: none requires "
                       "BROWSER_SESSIONS__SECURE_ONLY=true");
    return RC_OK;
}

/* ---- production guardrails (config-ops §3), in contractual order ---- */

static bool any_not_https(const struct config_strlist *list)
{
    for (int i = 0; i < list->n; i++)
        if (!cfg_url_is_https(list->items[i]))
            return true;
    return false;
}

/* Rules 1–6: forbidden bootstrap key, host allow-list, mandatory secrets. */
static rc_t check_prod_secrets(struct loader *l)
{
    const struct config *c = l->c;
    if (c->admin_api_key)
        return fail(l, "ADMIN_API_KEY: must not be set in production (use authd create-admin)");
    if (c->app.allowed_hosts.n == 0)
        return fail(l, "APP__ALLOWED_HOSTS: must list the service's host names in production");
    for (int i = 0; i < c->app.allowed_hosts.n; i++)
        if (strcmp(c->app.allowed_hosts.items[i], "*") == 0)
            return fail(l, "APP__ALLOWED_HOSTS: must not contain \"*\" in production (suffix "
                           "wildcards such as *.example.com are allowed)");
    if (!c->signing_keys.encryption_key)
        return fail(l, "SIGNING_KEYS__ENCRYPTION_KEY: is required in production");
    if (!c->session_security.refresh_token_hash_key)
        return fail(l, "SESSION_SECURITY__REFRESH_TOKEN_HASH_KEY: is required in production");
    if (!c->webhook.secret_encryption_key)
        return fail(l, "WEBHOOK__SECRET_ENCRYPTION_KEY: is required in production");
    return RC_OK;
}

/* Rules 7–12 and our test-hooks rule. The allow-list rule (8) applies when
 * either provider is on: it holds the return targets of both (R6). */
static rc_t check_prod_urls(struct loader *l)
{
    const struct config *c = l->c;
    if (c->oauth_enabled && !cfg_url_is_https(c->oauth.google_redirect_uri))
        return fail(l, "OAUTH__GOOGLE_REDIRECT_URI: must be an https URL in production");
    if ((c->oauth_enabled || c->saml_enabled) && any_not_https(&c->oauth.redirect_uri_allowlist))
        return fail(l, "OAUTH__REDIRECT_URI_ALLOWLIST: every entry must be an https URL in "
                       "production");
    if (c->saml_enabled && !cfg_url_is_https(c->saml.sp_acs_url))
        return fail(l, "SAML__SP_ACS_URL: must be an https URL in production");
    if (c->saml_enabled && !cfg_url_is_https(c->saml.idp_sso_url))
        return fail(l, "SAML__IDP_SSO_URL: must be an https URL in production");
    if (!str_istarts_with(c->email.public_base_url, "https://"))
        return fail(l, "EMAIL__PUBLIC_BASE_URL: must start with https:// in production");
    if (c->browser_sessions.enabled && !c->browser_sessions.secure_only)
        return fail(l, "BROWSER_SESSIONS__SECURE_ONLY: must be true in production when "
                       "BROWSER_SESSIONS__ENABLED=true");
    if (c->app.test_hooks)
        return fail(l, "APP__TEST_HOOKS: must be false in production");
    return RC_OK;
}

static void add_warning(struct config_strlist *w, const char *msg)
{
    if (w && w->n < CONFIG_WARNINGS_MAX)
        list_push(w, xstrdup(msg));
}

static void production_warnings(const struct config *c, struct config_strlist *w)
{
    if (str_starts_with(c->database.url, "sqlite:"))
        add_warning(w, "DATABASE__URL: SQLite in production; only one authd process may run, "
                       "use PostgreSQL to scale out");
    if (!c->redis.url)
        add_warning(w, "REDIS__URL: unset in production; the in-process store is not shared, "
                       "so only one authd process may run");
}

/* ---- public API ---- */

rc_t config_load(char *const *envp, const char *dotenv_path, struct config **out, char *err,
                 size_t errlen, struct config_strlist *warnings)
{
    struct loader l = {.envp = envp ? envp : environ, .err = err, .errlen = errlen};
    rc_t rc;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (warnings)
        memset(warnings, 0, sizeof *warnings);
    l.c = xcalloc(1, sizeof *l.c);
    rc = cfg_dotenv_read(dotenv_path ? dotenv_path : DEFAULT_DOTENV, &l.dotenv, err, errlen);
    for (size_t i = 0; rc == RC_OK && i < cfg_nvars; i++)
        rc = load_var(&l, &cfg_vars[i]);
    if (rc)
        goto out;
    resolve_derived(l.c);
    if ((rc = check_sections(&l)) || (rc = check_cookies(&l)))
        goto out;
    if (l.c->app.environment == ENV_PRODUCTION) {
        if ((rc = check_prod_secrets(&l)) || (rc = check_prod_urls(&l)))
            goto out;
        production_warnings(l.c, warnings);
    }
    /* Honoured only in development: drop it elsewhere so no caller can. */
    if (l.c->app.environment != ENV_DEVELOPMENT) {
        xfree_secret_str(l.c->admin_api_key);
        l.c->admin_api_key = NULL;
    }
    *out = l.c;
    l.c = NULL;
out:
    cfg_dotenv_free(&l.dotenv);
    config_free(l.c);
    return rc;
}

void config_strlist_free(struct config_strlist *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < cfg_nvars; i++) {
        const struct cfg_var *v = &cfg_vars[i];
        void *f = (char *)c + v->off;
        switch (v->type) {
        case CT_INT:
        case CT_BOOL:
        case CT_APPENV:
            break;
        case CT_LIST:
        case CT_CIDR_LIST:
        case CT_URL_LIST:
            config_strlist_free(f);
            break;
        default:
            /* Every string is wiped: URLs may carry passwords too. */
            xfree_secret_str(*(char **)f);
            break;
        }
    }
    free(c);
}
