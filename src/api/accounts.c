/* Account lifecycle routes: POST /auth/signup, GET /auth/verify-email,
 * POST /auth/verify-email/resend/request (api-core §6.2, api-flows §1.3,
 * §1.4). Signup and resend-request run on the password-hashing pool: both
 * hash or verify a password (real or dummy) and must not hold an event
 * loop for ~20 ms. */
#include "api/api.h"
#include "app.h"
#include "svc/accounts.h"
#include "svc/validate.h"
#include "util/str.h"

#include <stdio.h>
#include <string.h>

static struct accounts_deps deps_of(struct http_req *r)
{
    struct app *app = http_req_app(r);
    return (struct accounts_deps){app->cfg, app->db, app->kv, app->keys, app->mailer, app->pw};
}

static struct req_meta meta_of(struct http_req *r)
{
    const char *ua = http_req_header(r, "User-Agent");
    return (struct req_meta){http_req_corr_id(r), http_req_client_ip(r), ua};
}

/* A required string member; NULL (and a 422 sent) when missing or not a
 * string. */
static const char *string_field(struct http_req *r, const char *name)
{
    json_t *v = json_object_get(http_req_json(r), name);
    if (!json_is_string(v)) {
        char problem[96];
        snprintf(problem, sizeof problem, "%s: %s", name,
                 v ? "must be a string" : "field required");
        http_reply_invalid(r, problem);
        return NULL;
    }
    return json_string_value(v);
}

static void reply_status(struct http_req *r, int status, const char *body)
{
    http_reply_raw(r, status, "application/json", body, strlen(body));
}

static void infra_failure(struct http_req *r, rc_t rc)
{
    if (rc == RC_BUSY) {
        http_reply_header(r, "Retry-After", "1");
        http_reply_error(r, 503, "service_busy", "Service busy.");
    } else {
        http_reply_error(r, 500, "internal_server_error", rc_str(rc));
    }
}

static void signup_work(struct http_req *r)
{
    struct accounts_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    const char *email = http_req_ctx(r);
    const char *password = json_string_value(json_object_get(http_req_json(r), "password"));
    rc_t rc = accounts_signup(&d, &m, email, password);
    if (rc)
        infra_failure(r, rc);
    else
        reply_status(r, 201, "{\"accepted\":true}");
}

static void signup(struct http_req *r)
{
    const char *email = string_field(r, "email");
    if (!email)
        return;
    const char *password = string_field(r, "password");
    if (!password)
        return;
    char norm[EMAIL_MAX_BYTES + 1];
    if (!validate_email(email, norm)) {
        http_reply_invalid(r, "email: not a valid email address");
        return;
    }
    if (!validate_new_password(password)) {
        http_reply_invalid(r, "password: does not meet the password policy");
        return;
    }
    struct app *app = http_req_app(r);
    http_req_set_ctx(r, arena_strdup(http_req_arena(r), norm));
    http_req_offload(r, app->pwhash, signup_work, app->cfg->password_hash.queue_timeout_ms);
}

static void verify_email(struct http_req *r)
{
    const char *token = http_req_query(r, "token");
    struct str t = str_trim(str_of(token));
    if (!token || t.len < 16) {
        http_reply_invalid(r, "query.token: at least 16 characters required");
        return;
    }
    char *tok = arena_strndup(http_req_arena(r), t.p, t.len);
    struct accounts_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    rc_t rc = accounts_verify_email(&d, &m, tok);
    if (rc == RC_OK)
        reply_status(r, 200, "{\"verified\":true}");
    else if (rc == RC_INVALID)
        http_reply_error(r, 400, "invalid_verify_token", "Invalid verification token.");
    else
        infra_failure(r, rc);
}

/* The 429/503 answers shared by both resend routes. */
static bool resend_limits(struct http_req *r, rc_t rc, int64_t retry)
{
    if (rc == RC_LIMIT) {
        char ra[24];
        snprintf(ra, sizeof ra, "%lld", (long long)(retry > 0 ? retry : 1));
        http_reply_header(r, "Retry-After", ra);
        http_reply_error(r, 429, "rate_limited", "Rate limit exceeded.");
        return true;
    }
    if (rc == RC_UNAVAILABLE) {
        http_reply_error(r, 503, "session_expired", "Session backend unavailable.");
        return true;
    }
    return false;
}

static void resend_request_work(struct http_req *r)
{
    struct accounts_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    int64_t retry = 0;
    rc_t rc = accounts_resend_request(&d, &m, http_req_ctx(r), &retry);
    if (rc == RC_OK)
        reply_status(r, 200, "{\"sent\":true}");
    else if (!resend_limits(r, rc, retry))
        infra_failure(r, rc);
}

static void resend_work(struct http_req *r)
{
    struct accounts_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    int64_t retry = 0;
    rc_t rc = accounts_resend(&d, &m, http_req_ctx(r), &retry);
    if (rc == RC_OK)
        reply_status(r, 200, "{\"sent\":true}");
    else if (rc == RC_NOT_FOUND)
        http_reply_error(r, 401, "invalid_token", "Invalid token.");
    else if (rc == RC_CONFLICT)
        http_reply_error(r, 400, "already_verified", "Email is already verified.");
    else if (!resend_limits(r, rc, retry))
        infra_failure(r, rc);
}

static void resend_request(struct http_req *r)
{
    const char *email = string_field(r, "email");
    if (!email)
        return;
    char norm[EMAIL_MAX_BYTES + 1];
    if (!validate_email(email, norm)) {
        http_reply_invalid(r, "email: not a valid email address");
        return;
    }
    struct app *app = http_req_app(r);
    http_req_set_ctx(r, arena_strdup(http_req_arena(r), norm));
    http_req_offload(r, app->pwhash, resend_request_work, app->cfg->password_hash.queue_timeout_ms);
}

static void resend(struct http_req *r)
{
    char uid[37], sid[37];
    if (!api_authenticate_user(r, uid, sid))
        return;
    http_req_set_ctx(r, arena_strdup(http_req_arena(r), uid));
    struct app *app = http_req_app(r);
    http_req_offload(r, app->blocking, resend_work, app->cfg->password_hash.queue_timeout_ms);
}

size_t api_accounts_routes(const struct http_route **out)
{
    static const struct http_route routes[] = {
        {HTTP_POST, "/auth/signup", signup, ROUTE_JSON_BODY, NULL},
        {HTTP_GET, "/auth/verify-email", verify_email, 0, NULL},
        {HTTP_POST, "/auth/verify-email/resend", resend, 0, NULL},
        {HTTP_POST, "/auth/verify-email/resend/request", resend_request, ROUTE_JSON_BODY, NULL},
    };
    *out = routes;
    return sizeof routes / sizeof *routes;
}
