/* POST /auth/login, POST /auth/token (refresh grants), POST /auth/logout,
 * GET /auth/validate (api-core §6.3–§6.7) and the browser-cookie transport
 * of §8 for the first three. Login and refresh run on the password pool
 * (hashing, RSA signing); logout and validate run inline. */
#include "api/api.h"
#include "app.h"
#include "svc/auth.h"
#include "svc/validate.h"
#include "crypto/enc.h"
#include "crypto/jwt.h"
#include "util/buf.h"
#include "util/str.h"
#include "util/uuid.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

struct login_input {
    char email[EMAIL_MAX_BYTES + 1];
    const char *password;
    const char *audience; /* trimmed, may be "" */
    const char *refresh_token;
    bool cookie_mode;        /* answer with cookies (§8.2) */
    struct auth_login_ok ok; /* login_work → login_finish_work */
};

/* ---- browser-cookie transport (§8) ---- */

static const struct config *cfg_of(struct http_req *r)
{
    return ((struct app *)http_req_app(r))->cfg;
}

static bool nonblank(const char *v)
{
    return str_trim(str_of(v)).len > 0;
}

/* §8.3 */
static bool cookie_mode(struct http_req *r)
{
    const struct config *cfg = cfg_of(r);
    if (!cfg->browser_sessions.enabled)
        return false;
    struct str t =
        str_trim(str_of(http_req_header(r, cfg->browser_sessions.transport_header_name)));
    if (str_ieq(t, "cookie"))
        return true;
    if (str_ieq(t, "token"))
        return false;
    return cfg->browser_sessions.infer_cookie_transport &&
           (nonblank(http_req_cookie(r, cfg->browser_sessions.access_cookie_name)) ||
            nonblank(http_req_cookie(r, cfg->browser_sessions.refresh_cookie_name)) ||
            nonblank(http_req_cookie(r, cfg->browser_sessions.csrf_cookie_name)) ||
            nonblank(http_req_header(r, cfg->browser_sessions.csrf_header_name)));
}

static const char *bearer(struct http_req *r);

/* §8.4 step 1: bearer and an auth cookie together → 400 (sent; true). */
static bool transport_conflict(struct http_req *r)
{
    const struct config *cfg = cfg_of(r);
    if (!cfg->browser_sessions.enabled || !bearer(r))
        return false;
    if (!nonblank(http_req_cookie(r, cfg->browser_sessions.access_cookie_name)) &&
        !nonblank(http_req_cookie(r, cfg->browser_sessions.refresh_cookie_name)))
        return false;
    http_reply_error(r, 400, "ambiguous_authentication_transport",
                     "Conflicting authentication transports.");
    return true;
}

/* §8.4 step 2: CSRF double submit; false (403 sent) when it fails. */
static bool csrf_ok(struct http_req *r)
{
    const struct config *cfg = cfg_of(r);
    struct str c = str_trim(str_of(http_req_cookie(r, cfg->browser_sessions.csrf_cookie_name)));
    struct str h = str_trim(str_of(http_req_header(r, cfg->browser_sessions.csrf_header_name)));
    if (c.len && h.len && crypto_ct_streqn(c.p, c.len, h.p, h.len))
        return true;
    http_reply_error(r, 403, "invalid_csrf_token", "Invalid CSRF token.");
    return false;
}

/* One Set-Cookie value (§8.2); max_age < 0 = session cookie; clear = the
 * clearing form with the same attributes. */
static void set_cookie(struct http_req *r, const char *name, const char *value, const char *path,
                       bool http_only, int64_t max_age, bool clear)
{
    const struct config *cfg = cfg_of(r);
    const char *dom = cfg->browser_sessions.cookie_domain;
    char age[64] = "";
    if (clear)
        snprintf(age, sizeof age, "; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
    else if (max_age >= 0)
        snprintf(age, sizeof age, "; Max-Age=%lld", (long long)max_age);
    char *v = arena_printf(http_req_arena(r), "%s=%s%s; Path=%s; SameSite=%s%s%s%s%s", name,
                           clear ? "" : value, age, path, cfg->browser_sessions.same_site,
                           cfg->browser_sessions.secure_only ? "; Secure" : "",
                           http_only ? "; HttpOnly" : "", dom ? "; Domain=" : "", dom ? dom : "");
    http_reply_header(r, "Set-Cookie", v);
}

static void set_auth_cookies(struct http_req *r, const struct auth_tokens *t)
{
    const struct config *cfg = cfg_of(r);
    set_cookie(r, cfg->browser_sessions.access_cookie_name, t->access_token,
               cfg->browser_sessions.access_cookie_path, true, cfg->jwt.access_token_ttl_seconds,
               false);
    set_cookie(r, cfg->browser_sessions.refresh_cookie_name, t->refresh_token,
               cfg->browser_sessions.refresh_cookie_path, true, cfg->jwt.refresh_token_ttl_seconds,
               false);
}

static void clear_cookies(struct http_req *r)
{
    const struct config *cfg = cfg_of(r);
    set_cookie(r, cfg->browser_sessions.access_cookie_name, "",
               cfg->browser_sessions.access_cookie_path, true, 0, true);
    set_cookie(r, cfg->browser_sessions.refresh_cookie_name, "",
               cfg->browser_sessions.refresh_cookie_path, true, 0, true);
    set_cookie(r, cfg->browser_sessions.csrf_cookie_name, "",
               cfg->browser_sessions.csrf_cookie_path, false, 0, true);
}

static const char *cookie_value(struct http_req *r, const char *name)
{
    struct str v = str_trim(str_of(http_req_cookie(r, name)));
    return v.len ? arena_strndup(http_req_arena(r), v.p, v.len) : NULL;
}

static struct auth_deps deps_of(struct http_req *r)
{
    struct app *app = http_req_app(r);
    return (struct auth_deps){{app->cfg, app->db, app->kv, app->keys, app->mailer, app->pw},
                              app->refresh_hasher};
}

static struct req_meta meta_of(struct http_req *r)
{
    return (struct req_meta){http_req_corr_id(r), http_req_client_ip(r),
                             http_req_header(r, "User-Agent")};
}

static void retry_after(struct http_req *r, int64_t s)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)(s > 0 ? s : 1));
    http_reply_header(r, "Retry-After", v);
}

/* The token-mode body of login and refresh (api-core §6.3, §6.4 C),
 * rendered straight into a buffer: building a jansson object only to dump
 * two long strings was a measurable share of a refresh. */
static void reply_token_pair(struct http_req *r, const struct auth_tokens *t)
{
    struct buf b;
    buf_init(&b, 3 * JWT_MAX_TOKEN_LEN);
    buf_reserve(&b, strlen(t->access_token) + strlen(t->refresh_token) + 80); /* one allocation */
    buf_puts(&b, "{\"access_token\":\"");
    buf_json_escape(&b, t->access_token, JWT_MAX_TOKEN_LEN);
    buf_puts(&b, "\",\"refresh_token\":\"");
    buf_json_escape(&b, t->refresh_token, JWT_MAX_TOKEN_LEN);
    buf_puts(&b, "\",\"token_type\":\"bearer\"}");
    if (b.err)
        http_reply_error(r, 500, "internal_server_error", "token response too large");
    else
        http_reply_raw(r, 200, "application/json", b.data, b.len);
    buf_free(&b);
}

static void reply_outcome(struct http_req *r, const struct auth_result *res, bool cookies)
{
    switch (res->outcome) {
    case AUTH_OK: {
        if (cookies) {
            set_auth_cookies(r, &res->tokens);
            static const char body[] = "{\"authenticated\":true,\"session_transport\":\"cookie\"}";
            http_reply_raw(r, 200, "application/json", body, sizeof body - 1);
            return;
        }
        reply_token_pair(r, &res->tokens);
        return;
    }
    case AUTH_BAD_CREDENTIALS:
        http_reply_error(r, 401, "invalid_credentials", "Invalid email or password.");
        return;
    case AUTH_LOCKED:
        retry_after(r, res->retry_after_s);
        http_reply_error(r, 401, "account_locked", "Account temporarily locked.");
        return;
    case AUTH_EMAIL_NOT_VERIFIED:
        http_reply_error(r, 400, "email_not_verified", "Email is not verified.");
        return;
    case AUTH_OTP_UNAVAILABLE:
        http_reply_error(r, 503, "service_unavailable", "OTP login is not available.");
        return;
    case AUTH_SESSION_EXPIRED:
        http_reply_error(r, 401, "session_expired", "Session expired.");
        return;
    case AUTH_INVALID_TOKEN:
        http_reply_error(r, 401, res->token_code ? res->token_code : "invalid_token",
                         res->token_detail ? res->token_detail : "Invalid token.");
        return;
    case AUTH_STORE_DOWN:
        http_reply_error(r, 503, "session_expired", "Session backend unavailable.");
        return;
    case AUTH_LOCK_STORE_DOWN:
        http_reply_error(r, 503, "session_expired", "Authentication backend unavailable.");
        return;
    case AUTH_FAILED:
        break;
    }
    http_reply_error(r, 500, "internal_server_error", "authentication failed");
}

/* ---- login ---- */

/* Second half, on the general pool: tokens, session, audit. */
static void login_finish_work(struct http_req *r)
{
    struct login_input *in = http_req_ctx(r);
    struct auth_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    struct auth_result res;
    auth_login_finish(&d, &m, &in->ok, in->audience, &res);
    reply_outcome(r, &res, in->cookie_mode);
    auth_tokens_free(&res.tokens);
}

/* First half, on the hashing pool: only the password check holds one of its
 * workers, so the next hash starts while this login signs and writes. */
static void login_work(struct http_req *r)
{
    struct login_input *in = http_req_ctx(r);
    struct auth_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    struct auth_result res;
    if (auth_login_verify(&d, &m, in->email, in->password, &res, &in->ok)) {
        struct app *app = http_req_app(r);
        http_req_offload_next(r, app->blocking, login_finish_work);
        return;
    }
    reply_outcome(r, &res, in->cookie_mode);
}

static void login(struct http_req *r)
{
    json_t *body = http_req_json(r);
    json_t *email = json_object_get(body, "email"), *pw = json_object_get(body, "password");
    json_t *aud = json_object_get(body, "audience");
    struct login_input *in = arena_zalloc(http_req_arena(r), sizeof *in);
    if (!json_is_string(email) || !validate_email(json_string_value(email), in->email)) {
        http_reply_invalid(r, "email: a valid email address is required");
        return;
    }
    if (!json_is_string(pw) || !validate_login_password(json_string_value(pw))) {
        http_reply_invalid(r, "password: 8 to 256 characters required");
        return;
    }
    if (aud && !json_is_null(aud) &&
        (!json_is_string(aud) || !validate_audience(json_string_value(aud)))) {
        http_reply_invalid(r, "audience: 1 to 255 characters or null");
        return;
    }
    /* §6.3 step 2: the conflict check runs in every mode on login. */
    if (transport_conflict(r))
        return;
    in->cookie_mode = cookie_mode(r);
    if (in->cookie_mode && !csrf_ok(r))
        return;
    in->password = json_string_value(pw);
    struct str a = str_trim(str_of(json_is_string(aud) ? json_string_value(aud) : NULL));
    in->audience = arena_strndup(http_req_arena(r), a.p, a.len);
    http_req_set_ctx(r, in);
    struct app *app = http_req_app(r);
    http_req_offload(r, app->pwhash, login_work, app->cfg->password_hash.queue_timeout_ms);
}

/* Case-insensitive substring test (§6.4: the form branch is chosen by one). */
static bool ci_contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

/* ---- token (refresh grants; client_credentials lives in clients.c) ---- */

static void refresh_work(struct http_req *r)
{
    struct login_input *in = http_req_ctx(r);
    struct auth_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    struct auth_result res;
    auth_refresh(&d, &m, in->refresh_token, &res);
    reply_outcome(r, &res, in->cookie_mode);
    auth_tokens_free(&res.tokens);
}

static void token(struct http_req *r)
{
    const char *ct = http_req_header(r, "Content-Type");
    if (ct && ci_contains(ct, "application/x-www-form-urlencoded")) {
        api_token_client_credentials(r); /* §6.4 A (clients.c) */
        return;
    }
    struct login_input *in = arena_zalloc(http_req_arena(r), sizeof *in);
    struct app *app = http_req_app(r);
    if (cookie_mode(r)) {
        /* §6.4 B: conflict, CSRF, then the refresh cookie; the body is
         * ignored. */
        if (transport_conflict(r) || !csrf_ok(r))
            return;
        in->refresh_token = cookie_value(r, app->cfg->browser_sessions.refresh_cookie_name);
        if (!in->refresh_token) {
            http_reply_error(r, 401, "session_expired", "Session expired.");
            return;
        }
        in->cookie_mode = true;
        http_req_set_ctx(r, in);
        http_req_offload(r, app->blocking, refresh_work, app->cfg->password_hash.queue_timeout_ms);
        return;
    }
    json_t *body = http_req_body_json(r); /* borrowed; the rate-limit hook parsed it */
    json_t *rt = json_object_get(body, "refresh_token");
    if (!json_is_object(body) || !json_is_string(rt) ||
        utf8_len(json_string_value(rt), strlen(json_string_value(rt))) < 16) {
        http_reply_invalid(r, "refresh_token: a string of at least 16 characters is required");
        return;
    }
    in->refresh_token = arena_strdup(http_req_arena(r), json_string_value(rt));
    http_req_set_ctx(r, in);
    http_req_offload(r, app->blocking, refresh_work, app->cfg->password_hash.queue_timeout_ms);
}

/* ---- bearer ---- */

/* api-core §3.6: trimmed header, scheme "bearer" case-insensitively, the
 * rest trimmed; empty counts as absent. */
static const char *bearer(struct http_req *r)
{
    struct str h = str_trim(str_of(http_req_header(r, "Authorization")));
    const char *sp = memchr(h.p, ' ', h.len);
    if (!sp)
        return NULL;
    struct str scheme = {h.p, (size_t)(sp - h.p)};
    if (!str_ieq(scheme, "bearer"))
        return NULL;
    struct str tok = str_trim((struct str){sp + 1, h.len - (size_t)(sp + 1 - h.p)});
    return tok.len ? arena_strndup(http_req_arena(r), tok.p, tok.len) : NULL;
}

static void logout(struct http_req *r)
{
    bool cookies = cookie_mode(r);
    if (cookies && (transport_conflict(r) || !csrf_ok(r)))
        return;
    size_t len;
    const char *raw = http_req_body(r, &len);
    const char *refresh = NULL;
    if (len > 0) {
        json_t *body = json_loadb(raw, len, JSON_REJECT_DUPLICATES, NULL);
        json_t *rt = json_object_get(body, "refresh_token");
        bool ok = body && (json_is_null(body) ||
                           (json_is_object(body) && json_is_string(rt) &&
                            utf8_len(json_string_value(rt), strlen(json_string_value(rt))) >= 16));
        if (ok && json_is_object(body))
            refresh = arena_strdup(http_req_arena(r), json_string_value(rt));
        json_decref(body);
        if (!ok) {
            http_reply_invalid(r, "refresh_token: a string of at least 16 characters is required");
            return;
        }
    }
    const char *access = bearer(r);
    if (cookies) {
        const struct config *cfg = cfg_of(r);
        access = cookie_value(r, cfg->browser_sessions.access_cookie_name);
        refresh = cookie_value(r, cfg->browser_sessions.refresh_cookie_name);
    }
    if (!access || !refresh) {
        http_reply_error(r, 401, "invalid_token", "Invalid token.");
        return;
    }
    struct auth_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    struct auth_result res;
    auth_logout(&d, &m, access, refresh, &res);
    if (res.outcome != AUTH_OK) {
        reply_outcome(r, &res, false);
        return;
    }
    if (cookies)
        clear_cookies(r);
    http_reply_raw(r, 204, NULL, NULL, 0);
}

static void reply_validation(struct http_req *r, enum auth_outcome o)
{
    if (o == AUTH_SESSION_EXPIRED)
        http_reply_error(r, 401, "session_expired", "Session expired.");
    else if (o == AUTH_STORE_DOWN)
        http_reply_error(r, 503, "session_expired", "Session backend unavailable.");
    else if (o == AUTH_FAILED)
        http_reply_error(r, 500, "internal_server_error", "validation failed");
    else
        http_reply_error(r, 401, "invalid_token", "Invalid token.");
}

static bool authenticate_token(struct http_req *r, const char *access, char out_user_id[37],
                               char out_session_id[37])
{
    struct auth_deps d = deps_of(r);
    json_t *claims = NULL;
    enum auth_outcome o = auth_validate(&d, access, &claims, out_session_id);
    if (o == AUTH_OK) {
        const char *sub = json_string_value(json_object_get(claims, "sub"));
        bool ok = sub && uuid_parse(sub, strlen(sub), out_user_id);
        json_decref(claims);
        if (ok)
            return true;
        o = AUTH_INVALID_TOKEN;
    }
    reply_validation(r, o);
    return false;
}

/* §8.4 for a cookie-capable endpoint: the transport conflict, then the
 * access token from the bearer header, else from the access cookie (with
 * CSRF on unsafe methods). False when it replied; *out NULL = none sent. */
static bool access_token_of(struct http_req *r, const char **out)
{
    const struct config *cfg = cfg_of(r);
    enum http_method m = http_req_method(r);
    bool unsafe = m != HTTP_GET && m != HTTP_HEAD && m != HTTP_OPTIONS;
    *out = NULL;
    if (unsafe && transport_conflict(r))
        return false;
    const char *access = bearer(r);
    if (!access && cfg->browser_sessions.enabled) {
        access = cookie_value(r, cfg->browser_sessions.access_cookie_name);
        if (access && unsafe && !csrf_ok(r))
            return false;
    }
    *out = access;
    return true;
}

bool api_authenticate_user(struct http_req *r, char out_user_id[37], char out_session_id[37])
{
    const char *access;
    if (!access_token_of(r, &access))
        return false;
    if (!access) {
        http_reply_error(r, 401, "invalid_token", "Invalid token.");
        return false;
    }
    return authenticate_token(r, access, out_user_id, out_session_id);
}

bool api_authenticate_bearer(struct http_req *r, char out_user_id[37], char out_session_id[37])
{
    const char *access = bearer(r);
    if (!access) {
        http_reply_error(r, 401, "invalid_token", "Invalid token.");
        return false;
    }
    return authenticate_token(r, access, out_user_id, out_session_id);
}

static void validate(struct http_req *r)
{
    const char *access = bearer(r);
    if (!access) {
        http_reply_error(r, 401, "invalid_token", "Invalid token.");
        return;
    }
    struct auth_deps d = deps_of(r);
    char sid[37];
    switch (auth_validate(&d, access, NULL, sid)) {
    case AUTH_OK:
        http_reply_raw(r, 204, NULL, NULL, 0);
        return;
    case AUTH_SESSION_EXPIRED:
        http_reply_error(r, 401, "session_expired", "Session expired.");
        return;
    case AUTH_STORE_DOWN:
        http_reply_error(r, 503, "session_expired", "Session backend unavailable.");
        return;
    case AUTH_FAILED:
        http_reply_error(r, 500, "internal_server_error", "validation failed");
        return;
    default:
        http_reply_error(r, 401, "invalid_token", "Invalid token.");
    }
}

size_t api_auth_routes(const struct http_route **out)
{
    static const struct http_route routes[] = {
        {HTTP_POST, "/auth/login", login, ROUTE_JSON_BODY, NULL},
        {HTTP_POST, "/auth/token", token, ROUTE_RAW_BODY, NULL},
        {HTTP_POST, "/auth/logout", logout, ROUTE_RAW_BODY, NULL},
        {HTTP_GET, "/auth/validate", validate, 0, NULL},
    };
    *out = routes;
    return sizeof routes / sizeof *routes;
}

/* ---- admin principal (api-admin §2.1, api-core §10.1, decision R1) ---- */

static bool bootstrap_key_ok(struct http_req *r)
{
    const struct config *cfg = cfg_of(r);
    if (cfg->app.environment != ENV_DEVELOPMENT || !cfg->admin_api_key || !*cfg->admin_api_key)
        return false;
    struct str k = str_trim(str_of(http_req_header(r, "X-Admin-API-Key")));
    return k.len && crypto_ct_streqn(k.p, k.len, cfg->admin_api_key, strlen(cfg->admin_api_key));
}

bool api_admin_auth(struct http_req *r)
{
    const struct config *cfg = cfg_of(r);
    struct api_admin *p = arena_alloc(http_req_arena(r), sizeof *p);
    memset(p, 0, sizeof *p);
    p->auth_time = -1;
    /* config-ops §8: /metrics is open in development. */
    const char *route = http_req_route(r);
    if (route && strcmp(route, "/metrics") == 0 && cfg->app.environment == ENV_DEVELOPMENT) {
        p->open = true;
        http_req_set_principal(r, p);
        return false;
    }
    /* Step 1: transport conflict and CSRF (unsafe methods only). */
    const char *access;
    if (!access_token_of(r, &access))
        return true;
    /* Step 2: the development bootstrap key; a wrong one is not an error. */
    if (bootstrap_key_ok(r)) {
        snprintf(p->sub, sizeof p->sub, "%s", API_ADMIN_BOOTSTRAP_SUB);
        p->bootstrap = true;
        http_req_set_principal(r, p);
        return false;
    }
    /* Steps 3–4: the access token, validated like /auth/validate with every
     * token failure collapsed into invalid_token. */
    if (!access) {
        http_reply_error(r, 401, "invalid_token", "Invalid token.");
        return true;
    }
    struct auth_deps d = deps_of(r);
    json_t *claims = NULL;
    enum auth_outcome o = auth_validate(&d, access, &claims, p->session_id);
    if (o != AUTH_OK) {
        reply_validation(r, o);
        return true;
    }
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    const char *role = json_string_value(json_object_get(claims, "role"));
    json_t *at = json_object_get(claims, "auth_time");
    bool uuid_sub = sub && uuid_parse(sub, strlen(sub), p->sub);
    bool role_ok = role && crypto_ct_streqn(role, strlen(role), "admin", 5);
    if (json_is_integer(at))
        p->auth_time = json_integer_value(at);
    p->email_otp_enabled = json_is_true(json_object_get(claims, "email_otp_enabled"));
    json_decref(claims);
    if (!uuid_sub) {
        http_reply_error(r, 401, "invalid_token", "Invalid token.");
        return true;
    }
    /* Step 5: the role claim, then the current row (a demoted, deleted or
     * deactivated admin loses access at once). */
    bool admin = false;
    if (role_ok && auth_user_is_admin(&d, p->sub, &admin) != RC_OK) {
        http_reply_error(r, 500, "internal_server_error", "role check failed");
        return true;
    }
    if (!admin) {
        http_reply_error(r, 403, "insufficient_role", "Insufficient role.");
        return true;
    }
    p->actor_id = p->sub;
    http_req_set_principal(r, p);
    return false;
}

const struct api_admin *api_admin_of(struct http_req *r)
{
    return http_req_principal(r);
}
