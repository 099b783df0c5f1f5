/* Request rate limiting (see ratelimit.h; api-core §11, data-model §10.5).
 *
 * Invariants: the struct is immutable after ratelimit_new; a limited
 * request costs exactly one store round trip (kv_window_hit does the whole
 * sliding-log step atomically on both backends), an unlimited one none.
 * Identity derivation reads only what the request carries; token
 * verification goes through the signing-keys service. */
#include "svc/ratelimit.h"
#include "crypto/enc.h"
#include "crypto/jwt.h"
#include "svc/keys.h"
#include "util/buf.h"
#include "util/mem.h"
#include "util/str.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ratelimit {
    struct kv *kv;
    int default_limit, login_limit, token_limit, service_limit;
    /* SHA-256 hex of the development ADMIN_API_KEY; "" when there is none. */
    char admin_key_hex[CRYPTO_SHA256_HEX_LEN + 1];
};

enum path_class { PATH_DEFAULT, PATH_EXEMPT, PATH_LOGIN, PATH_TOKEN, PATH_SERVICE };

static const struct {
    const char *path;
    enum path_class cls;
} exact_paths[] = {
    {"/health/live", PATH_EXEMPT},      {"/health/ready", PATH_EXEMPT},
    {"/metrics", PATH_EXEMPT},          {"/auth/login", PATH_LOGIN},
    {"/auth/token", PATH_TOKEN},        {"/auth/validate", PATH_SERVICE},
    {"/auth/introspect", PATH_SERVICE}, {"/.well-known/jwks.json", PATH_SERVICE},
};

static enum path_class classify(const char *path)
{
    for (size_t i = 0; i < sizeof exact_paths / sizeof *exact_paths; i++)
        if (strcmp(path, exact_paths[i].path) == 0)
            return exact_paths[i].cls;
    return PATH_DEFAULT;
}

rc_t ratelimit_new(struct kv *kv, const struct config *cfg, struct ratelimit **out)
{
    struct ratelimit *rl = xcalloc(1, sizeof *rl);
    rl->kv = kv;
    rl->default_limit = cfg->rate_limit.default_requests_per_minute;
    rl->login_limit = cfg->rate_limit.login_requests_per_minute;
    rl->token_limit = cfg->rate_limit.token_requests_per_minute;
    rl->service_limit = cfg->rate_limit.service_requests_per_minute;
    /* The configuration keeps ADMIN_API_KEY only in development. */
    struct str key = str_trim(str_of(cfg->admin_api_key));
    if (cfg->app.environment == ENV_DEVELOPMENT && key.len)
        crypto_sha256_hex(key.p, key.len, rl->admin_key_hex);
    *out = rl;
    return RC_OK;
}

void ratelimit_free(struct ratelimit *rl)
{
    free(rl);
}

int ratelimit_limit(const struct ratelimit *rl, const char *path)
{
    switch (classify(path)) {
    case PATH_EXEMPT:
        return 0;
    case PATH_LOGIN:
        return rl->login_limit;
    case PATH_TOKEN:
        return rl->token_limit;
    case PATH_SERVICE:
        return rl->service_limit;
    case PATH_DEFAULT:
        break;
    }
    return rl->default_limit;
}

bool ratelimit_fail_closed(const char *path)
{
    static const char *const prefixes[] = {"/auth/otp/", "/auth/password/", "/auth/verify-email",
                                           "/auth/reauth"};
    if (strcmp(path, "/auth/login") == 0 || strcmp(path, "/auth/token") == 0)
        return true;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (str_starts_with(path, prefixes[i]))
            return true;
    return false;
}

/* ---- identity (api-core §11.2) ---- */

/* First occurrence of field `name` in a form body, decoded and trimmed into
 * out; false when absent, blank, undecodable or longer than cap - 1. */
static bool form_field(const char *body, size_t len, const char *name, char *out, size_t cap)
{
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        char key[32];
        if (ke > p && str_form_decode(p, (size_t)(ke - p), key, sizeof key) &&
            strcmp(key, name) == 0) {
            const char *v = eq ? eq + 1 : pe;
            if (!str_form_decode(v, (size_t)(pe - v), out, cap))
                return false;
            struct str t = str_trim(str_of(out));
            memmove(out, t.p, t.len);
            out[t.len] = '\0';
            return t.len > 0;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return false;
}

/* Case-insensitive substring test (api-core §6.4 form branch). */
static bool contains_ci(const char *hay, const char *needle)
{
    for (; hay && *hay; hay++)
        if (str_istarts_with(hay, needle))
            return true;
    return false;
}

/* The subject of a token that verifies (api-core §5.2 through the keys
 * service: signature, type, audience SERVICE_AUD, expiry; revocation is
 * not checked) into out. A key set that cannot be loaded sets
 * *keys_failed and counts as "does not verify". */
static bool verified_subject(struct keys *keys, const char *token, const char *type, int64_t now_s,
                             char out[RATELIMIT_ID_VALUE_MAX + 1], bool *keys_failed)
{
    struct str t = str_trim(str_of(token));
    if (!keys || t.len == 0 || t.len > JWT_MAX_TOKEN_LEN)
        return false;
    json_t *claims = NULL;
    rc_t rc = keys_verify(keys, t.p, t.len, type, now_s, &claims, NULL);
    if (rc == RC_UNAVAILABLE)
        *keys_failed = true;
    const char *sub = rc == RC_OK ? json_string_value(json_object_get(claims, "sub")) : NULL;
    size_t n = sub ? strlen(sub) : 0;
    bool ok = n > 0 && n <= RATELIMIT_ID_VALUE_MAX;
    if (ok)
        memcpy(out, sub, n + 1);
    json_decref(claims);
    return ok;
}

/* The JSON body's refresh_token (string) or NULL; the caller json_decref's
 * *holder. */
static const char *json_refresh_token(const char *body, size_t len, json_t **holder)
{
    *holder = NULL;
    struct str b = str_trim((struct str){body ? body : "", body ? len : 0});
    if (b.len == 0 || b.p[0] != '{')
        return NULL;
    *holder = json_loadb(b.p, b.len, JSON_REJECT_DUPLICATES, NULL);
    json_t *v = json_object_get(*holder, "refresh_token");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Rule 1, /auth/token only: client:<client_id>, else user:<sub> of a
 * verifying refresh token (cookie first, then JSON body). */
static bool token_path_identity(struct keys *keys, const struct ratelimit_caller *c, int64_t now_s,
                                char out[RATELIMIT_IDENTITY_MAX], bool *keys_failed)
{
    char v[RATELIMIT_ID_VALUE_MAX + 1];
    const char *body = c->body ? c->body : "";
    if (contains_ci(c->content_type, "application/x-www-form-urlencoded")) {
        if (form_field(body, c->body_len, "grant_type", v, sizeof v) &&
            strcmp(v, "client_credentials") == 0 &&
            form_field(body, c->body_len, "client_id", v, sizeof v)) {
            snprintf(out, RATELIMIT_IDENTITY_MAX, "client:%s", v);
            return true;
        }
    }
    if (!keys)
        return false;
    if (verified_subject(keys, c->refresh_cookie, "refresh", now_s, v, keys_failed)) {
        snprintf(out, RATELIMIT_IDENTITY_MAX, "user:%s", v);
        return true;
    }
    json_t *holder = NULL;
    const char *rt = NULL;
    if (c->body_json) {
        json_t *field = json_object_get(c->body_json, "refresh_token");
        rt = json_is_string(field) ? json_string_value(field) : NULL;
    } else {
        rt = json_refresh_token(body, c->body_len, &holder);
    }
    bool ok = rt && verified_subject(keys, rt, "refresh", now_s, v, keys_failed);
    json_decref(holder);
    if (ok)
        snprintf(out, RATELIMIT_IDENTITY_MAX, "user:%s", v);
    return ok;
}

/* Rule 3: the development bootstrap key. Deliberately stricter than the
 * letter of §11.2 (which buckets any non-blank value): only the configured
 * key earns its own bucket, otherwise a client could dodge its IP bucket by
 * sending a fresh random header on every request. */
static bool admin_identity(const struct ratelimit *rl, const char *admin_key,
                           char out[RATELIMIT_IDENTITY_MAX])
{
    struct str k = str_trim(str_of(admin_key));
    if (!rl->admin_key_hex[0] || k.len == 0)
        return false;
    char hex[CRYPTO_SHA256_HEX_LEN + 1];
    crypto_sha256_hex(k.p, k.len, hex);
    if (!crypto_ct_streq(hex, rl->admin_key_hex))
        return false;
    snprintf(out, RATELIMIT_IDENTITY_MAX, "admin_bootstrap:%s", hex);
    return true;
}

void ratelimit_identity(const struct ratelimit *rl, struct keys *keys, const char *path,
                        const struct ratelimit_caller *c, int64_t now_s,
                        char out[RATELIMIT_IDENTITY_MAX], bool *out_keys_failed)
{
    char v[RATELIMIT_ID_VALUE_MAX + 1];
    bool ignored;
    bool *kf = out_keys_failed ? out_keys_failed : &ignored;
    *kf = false;
    if (strcmp(path, "/auth/token") == 0 && token_path_identity(keys, c, now_s, out, kf))
        return;
    if (verified_subject(keys, c->access_token, "access", now_s, v, kf)) {
        snprintf(out, RATELIMIT_IDENTITY_MAX, "user:%s", v);
        return;
    }
    if (admin_identity(rl, c->admin_key, out))
        return;
    const char *ip = c->client_ip && *c->client_ip ? c->client_ip : "unknown";
    snprintf(out, RATELIMIT_IDENTITY_MAX, "ip:%.*s", RATELIMIT_ID_VALUE_MAX, ip);
}

/* ---- the limiter step ---- */

static void bucket_key(const char *path, const char *identity, struct buf *b)
{
    size_t plen = strlen(path);
    buf_puts(b, "rate_limit:");
    if (plen <= RATELIMIT_PATH_KEY_MAX) {
        buf_append(b, path, plen);
    } else {
        char hex[CRYPTO_SHA256_HEX_LEN + 1];
        crypto_sha256_hex(path, plen, hex);
        buf_puts(b, "sha256:");
        buf_puts(b, hex);
    }
    buf_putc(b, ':');
    buf_puts(b, identity);
}

rc_t ratelimit_check(struct ratelimit *rl, struct keys *keys, const char *path,
                     const struct ratelimit_caller *c, int64_t now_ms, struct ratelimit_result *out)
{
    out->verdict = RATELIMIT_PASS;
    out->retry_after_s = 0;
    out->keys_unavailable = false;
    int limit = ratelimit_limit(rl, path);
    if (limit <= 0)
        return RC_OK;
    char identity[RATELIMIT_IDENTITY_MAX];
    ratelimit_identity(rl, keys, path, c, now_ms / 1000, identity, &out->keys_unavailable);
    struct buf key;
    buf_init(&key, KV_KEY_MAX);
    bucket_key(path, identity, &key);
    bool allowed = true;
    int64_t retry_ms = 0;
    rc_t rc = key.err ? RC_LIMIT
                      : kv_window_hit(rl->kv, key.data, now_ms, RATELIMIT_WINDOW_MS,
                                      limit > KV_WINDOW_LIMIT_MAX ? KV_WINDOW_LIMIT_MAX : limit,
                                      &allowed, &retry_ms);
    buf_free(&key);
    if (rc != RC_OK) {
        if (ratelimit_fail_closed(path))
            out->verdict = RATELIMIT_UNAVAILABLE;
        return rc;
    }
    if (!allowed) {
        out->verdict = RATELIMIT_LIMITED;
        int64_t s = (retry_ms + 999) / 1000;
        out->retry_after_s = s < 1 ? 1 : s;
    }
    return RC_OK;
}
