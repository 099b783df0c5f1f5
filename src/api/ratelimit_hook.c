/* Stage 3 of the pipeline (api-core §0.3, §11): the rate limiter, run for
 * every request before the host check and routing, so an over-limit client
 * gets 429 even on a path that would 404. This file only adapts the
 * request to svc/ratelimit (which owns limits, identities and the store
 * step) and renders its verdict; response decoration (security,
 * correlation and no-store headers) is applied by the http layer to
 * whatever is sent. Unlimited paths (health, /metrics, service endpoints
 * by default) return before any header is read. */
#include "api/api.h"
#include "app.h"
#include "svc/ratelimit.h"
#include "util/log.h"
#include "util/str.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <string.h>

/* api-core §3.6: trim; scheme before the first space must be "bearer"
 * (any case); the trimmed rest is the token; empty counts as absent. */
static const char *bearer_token(struct http_req *r)
{
    struct str h = str_trim(str_of(http_req_header(r, "Authorization")));
    const char *sp = h.len ? memchr(h.p, ' ', h.len) : NULL;
    if (!sp || !str_ieq((struct str){h.p, (size_t)(sp - h.p)}, "bearer"))
        return NULL;
    struct str t = str_trim((struct str){sp + 1, h.len - (size_t)(sp + 1 - h.p)});
    return t.len ? arena_strndup(http_req_arena(r), t.p, t.len) : NULL;
}

static void caller_of(struct http_req *r, const struct config *cfg, const char *path,
                      struct ratelimit_caller *c)
{
    bool cookies = cfg->browser_sessions.enabled;
    c->client_ip = http_req_client_ip(r);
    c->access_token = bearer_token(r);
    if (!c->access_token && cookies)
        c->access_token = http_req_cookie(r, cfg->browser_sessions.access_cookie_name);
    c->admin_key = http_req_header(r, "X-Admin-API-Key");
    if (strcmp(path, "/auth/token") != 0)
        return;
    if (cookies)
        c->refresh_cookie = http_req_cookie(r, cfg->browser_sessions.refresh_cookie_name);
    c->content_type = http_req_header(r, "Content-Type");
    c->body = http_req_body(r, &c->body_len);
    /* Parsed here once; the /auth/token handler reads the same parse (a
     * form-encoded body fails at its first byte and is left to the form
     * rule). */
    c->body_json = http_req_body_json(r);
}

static void log_unavailable(struct http_req *r, const char *path, rc_t rc)
{
    struct log_line l;
    log_begin(&l, LOG_WARNING, "rate_limit_backend_unavailable", http_req_corr_id(r));
    log_str(&l, "path", path);
    log_str(&l, "method", http_method_name(http_req_method(r)));
    log_str(&l, "exception", rc_str(rc));
    log_end(&l);
}

static void log_keys_failed(struct http_req *r)
{
    struct log_line l;
    log_begin(&l, LOG_WARNING, "rate_limit_verification_keys_refresh_failed", http_req_corr_id(r));
    log_str(&l, "error", "verification key set unavailable");
    log_end(&l);
}

bool api_ratelimit_hook(struct http_req *r)
{
    struct app *app = http_req_app(r);
    const char *path = http_req_path(r);
    if (!app || !app->rl || ratelimit_limit(app->rl, path) == 0)
        return false;
    struct ratelimit_caller c = {0};
    caller_of(r, app->cfg, path, &c);
    struct ratelimit_result res;
    rc_t rc = ratelimit_check(app->rl, app->keys, path, &c, time_now_us() / 1000, &res);
    if (res.keys_unavailable)
        log_keys_failed(r);
    if (rc != RC_OK)
        log_unavailable(r, path, rc);
    switch (res.verdict) {
    case RATELIMIT_PASS:
        return false;
    case RATELIMIT_LIMITED: {
        char ra[24];
        snprintf(ra, sizeof ra, "%lld", (long long)res.retry_after_s);
        http_reply_header(r, "Retry-After", ra);
        http_reply_error(r, 429, "rate_limited", "Rate limit exceeded.");
        return true;
    }
    case RATELIMIT_UNAVAILABLE:
        http_reply_error(r, 503, "rate_limit_unavailable", "Rate limit backend unavailable.");
        return true;
    }
    return false;
}
