/* Private to src/config/: the variable table and the value parsers shared by
 * config.c (loading and validation), config_table.c (the table, help and
 * dump) and config_parse.c (value syntax and the .env reader). */
#ifndef AUTHD_CONFIG_CONFIG_INT_H
#define AUTHD_CONFIG_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "util/str.h"

enum cfg_type {
    CT_STR,       /* char *; F_TRIM trims; blank is an error */
    CT_INT,       /* int within [min, max] */
    CT_BOOL,      /* bool */
    CT_ENUM,      /* char * holding one of choices (exact) */
    CT_APPENV,    /* enum app_env, index into choices */
    CT_URL,       /* char *: absolute http/https URL with a host */
    CT_LIST,      /* config_strlist from a JSON array of strings */
    CT_CIDR_LIST, /* same; entries that are not IP/CIDR are dropped */
    CT_URL_LIST,  /* same; entries must be URLs and are normalised */
    CT_DB_URL,    /* char *: sqlite:///… or postgres URL */
    CT_REDIS_URL, /* char *: redis:// or rediss:// */
    CT_CRON,      /* char *: 5-field cron, trimmed */
};

enum {
    F_REQUIRED = 1 << 0,    /* start-up fails when unset */
    F_SECRET = 1 << 1,      /* never printed, never quoted in errors */
    F_TRIM = 1 << 2,        /* surrounding whitespace removed */
    F_MULTILINE = 1 << 3,   /* CT_STR may contain newlines (PEM text) */
    F_BLANK_UNSET = 1 << 4, /* a value of only whitespace counts as unset */
};

/* Extra syntax check of a CT_STR value; true when acceptable. */
typedef bool (*cfg_check_fn)(const char *s);

struct cfg_var {
    const char *name; /* canonical upper-case environment name */
    enum cfg_type type;
    unsigned flags;
    const char *def;            /* default as text, parsed like a value; NULL = unset */
    const char *def_doc;        /* default shown in help when computed at load */
    long long min, max;         /* CT_INT bounds */
    const char *const *choices; /* CT_ENUM / CT_APPENV, NULL-terminated */
    cfg_check_fn check;         /* CT_STR extra check, or NULL */
    const char *check_doc;      /* what check accepts, for messages and help */
    size_t off;                 /* offsetof(struct config, field) */
    const char *doc;            /* one line */
};

extern const struct cfg_var cfg_vars[];
extern const size_t cfg_nvars;

/* Looks a variable up by canonical name; NULL if absent. */
const struct cfg_var *cfg_var_find(const char *name);

/* Writes "fmt..." into err (NULL or errlen 0 ok). */
void cfg_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Value syntax (config_parse.c). */
bool cfg_parse_bool(const char *s, bool *out);

struct cfg_url {
    struct str scheme, userinfo, host, port, rest; /* rest: path?query#fragment */
    bool has_userinfo, has_port;
};
/* Absolute http(s) URL with a host, printable ASCII only. */
bool cfg_url_parse(const char *s, struct cfg_url *out);
bool cfg_url_is_https(const char *s);
/* Owned normalised form (see config.h, oauth.redirect_uri_allowlist). */
char *cfg_url_normalize(const struct cfg_url *u);
/* Owned copy of a URL-like value with the password of the userinfo and any
 * password= query parameter replaced by "***". */
char *cfg_url_redact(const char *s);

bool cfg_cidr_valid(const char *s);
bool cfg_cron_valid(const char *s);
bool cfg_http_token(const char *s);  /* RFC 9110 token */
bool cfg_cookie_path(const char *s); /* "/…" without ; , whitespace or controls */
bool cfg_cookie_domain(const char *s);

/* The .env file as parsed: later entries of the same name win. */
struct cfg_dotenv {
    char **keys;
    char **vals;
    int n;
};
/* Missing file → RC_OK with n == 0. RC_INVALID with a message naming the
 * file and line otherwise. */
rc_t cfg_dotenv_read(const char *path, struct cfg_dotenv *out, char *err, size_t errlen) WUR;
/* Value of name (case-insensitive), last one wins; NULL if absent. */
const char *cfg_dotenv_get(const struct cfg_dotenv *d, const char *name);
void cfg_dotenv_free(struct cfg_dotenv *d);

#endif
