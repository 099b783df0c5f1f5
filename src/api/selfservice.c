/* Self-service sessions and history (api-core §9) and GET /auth/csrf (§6.1).
 * Callers authenticate with the bearer header only (api_authenticate_bearer);
 * the session behind the token is the "current" one. */
#include "api/api.h"
#include "app.h"
#include "crypto/enc.h"
#include "store/sessions.h"
#include "svc/audit.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_DEFAULT 50
#define PAGE_MAX 200

/* §9.5 */
static const char *device_label(struct arena *a, const char *ua)
{
    static const char *const browsers[][2] = {{"Edg/", "Edge"},        {"OPR/", "Opera"},
                                              {"Opera", "Opera"},      {"Chrome/", "Chrome"},
                                              {"Firefox/", "Firefox"}, {"Safari/", "Safari"}};
    static const char *const systems[][2] = {
        {"Windows", "Windows"}, {"Android", "Android"}, {"iPhone", "iOS"},  {"iPad", "iOS"},
        {"Mac OS X", "macOS"},  {"Macintosh", "macOS"}, {"Linux", "Linux"}, {"CrOS", "ChromeOS"}};
    const char *b = NULL, *o = NULL;
    for (size_t i = 0; ua && !b && i < sizeof browsers / sizeof *browsers; i++)
        if (strstr(ua, browsers[i][0]))
            b = browsers[i][1];
    for (size_t i = 0; ua && !o && i < sizeof systems / sizeof *systems; i++)
        if (strstr(ua, systems[i][0]))
            o = systems[i][1];
    if (b && o)
        return arena_printf(a, "%s on %s", b, o);
    return b ? b : o ? o : "Unknown";
}

static json_t *ts_z(int64_t us)
{
    if (!us)
        return json_null();
    char t[TIME_STR_MAX];
    time_format(us, TIME_STYLE_Z, t);
    return json_string(t);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* limit: integer 1..200, default 50; false (422 sent) otherwise. */
static bool page_limit(struct http_req *r, int *out)
{
    const char *v = http_req_query(r, "limit");
    int64_t n = PAGE_DEFAULT;
    if (v && (!str_parse_i64(v, &n) || n < 1 || n > PAGE_MAX)) {
        http_reply_invalid(r, "query.limit: integer 1..200 required");
        return false;
    }
    *out = (int)n;
    return true;
}

static void list_sessions(struct http_req *r)
{
    char uid[37], current[37];
    const char *status = http_req_query(r, "status");
    enum session_filter f = SESSIONS_ACTIVE;
    if (status && strcmp(status, "active") == 0)
        f = SESSIONS_ACTIVE;
    else if (status && strcmp(status, "revoked") == 0)
        f = SESSIONS_REVOKED;
    else if (status && strcmp(status, "all") == 0)
        f = SESSIONS_ALL;
    else if (status) {
        http_reply_invalid(r, "query.status: active, revoked or all");
        return;
    }
    int limit;
    if (!page_limit(r, &limit))
        return;
    const char *cursor = http_req_query(r, "cursor");
    struct audit_keyset after = {0};
    if (cursor && *cursor && audit_cursor_decode(cursor, &after) != RC_OK) {
        http_reply_invalid(r, "query.cursor: not a cursor of this API");
        return;
    }
    if (!api_authenticate_bearer(r, uid, current))
        return;
    struct app *app = http_req_app(r);
    struct arena *a = http_req_arena(r);
    struct db_conn *c = NULL;
    struct session_row *rows = NULL;
    int n = 0;
    rc_t rc = db_acquire(app->db, DB_READ, &c);
    if (!rc)
        rc = sessions_list_page(c, a, uid, f, time_now_us(), after.created_at_us,
                                after.id[0] ? after.id : NULL, limit, &rows, &n);
    db_release(c);
    if (rc) {
        http_reply_error(r, 500, "internal_server_error", rc_str(rc));
        return;
    }
    bool more = n > limit;
    if (more)
        n = limit;
    json_t *data = json_array();
    for (int i = 0; i < n; i++) {
        struct session_row *s = &rows[i];
        json_t *reasons = s->suspicious_reasons ? json_loads(s->suspicious_reasons, 0, NULL) : NULL;
        if (!json_is_array(reasons)) {
            json_decref(reasons);
            reasons = json_array();
        }
        json_t *item = json_pack(
            "{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:b, s:o, s:b}", "session_id",
            s->session_id, "created_at", ts_z(s->created_at_us), "last_seen_at",
            ts_z(s->last_seen_at_us), "expires_at", ts_z(s->expires_at_us), "revoked_at",
            ts_z(s->revoked_at_us), "revoke_reason", str_or_null(s->revoke_reason), "ip_address",
            str_or_null(s->ip_address), "user_agent", str_or_null(s->user_agent), "device_label",
            device_label(a, s->user_agent), "is_suspicious", s->is_suspicious, "suspicious_reasons",
            reasons, "is_current", strcmp(s->session_id, current) == 0);
        json_array_append_new(data, item);
    }
    char *next = more ? audit_cursor_encode(rows[n - 1].created_at_us, rows[n - 1].id) : NULL;
    json_t *body = json_pack("{s:o, s:o, s:b}", "data", data, "next_cursor", str_or_null(next),
                             "has_more", more);
    free(next);
    http_reply_json(r, 200, body);
}

/* Optional body {"reason": 1..64 chars | null}; *out_reason NULL when
 * absent. False (422 sent) when invalid. */
static bool revoke_reason(struct http_req *r, const char **out_reason)
{
    *out_reason = NULL;
    size_t len;
    const char *raw = http_req_body(r, &len);
    if (len == 0)
        return true;
    json_t *body = json_loadb(raw, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    bool ok = body != NULL && (json_is_null(body) || json_is_object(body));
    json_t *reason = json_is_object(body) ? json_object_get(body, "reason") : NULL;
    if (ok && reason && !json_is_null(reason)) {
        const char *s = json_string_value(reason);
        size_t cps = s ? utf8_len(s, strlen(s)) : 0;
        ok = s && cps >= 1 && cps <= 64;
        if (ok)
            *out_reason = arena_strdup(http_req_arena(r), s);
    }
    json_decref(body);
    if (!ok)
        http_reply_invalid(r, "reason: a string of 1 to 64 characters or null");
    return ok;
}

static rc_t drop_state(struct app *app, const char *sid)
{
    char key[128];
    snprintf(key, sizeof key, "session:%s", sid);
    return kv_del(app->kv, key);
}

static void audit_revoked(struct http_req *r, const char *uid, json_t *meta)
{
    struct app *app = http_req_app(r);
    struct audit_event ev = {.event_type = "session.revoked",
                             .actor_id = uid,
                             .actor_type = AUDIT_ACTOR_USER,
                             .target_id = uid,
                             .target_type = "user",
                             .ip_address = http_req_client_ip(r),
                             .user_agent = http_req_header(r, "User-Agent"),
                             .correlation_id = http_req_corr_id(r),
                             .success = true,
                             .metadata = meta};
    audit_write_detached(app->db, &ev);
    json_decref(meta);
}

static void revoke_one(struct http_req *r)
{
    char sid[37], uid[37], current[37];
    const char *p = http_req_param(r, "session_id");
    if (!uuid_parse(p, strlen(p), sid)) {
        http_reply_invalid(r, "path.session_id: UUID required");
        return;
    }
    const char *reason;
    if (!revoke_reason(r, &reason) || !api_authenticate_bearer(r, uid, current))
        return;
    if (strcmp(sid, current) == 0) {
        http_reply_error(r, 400, "cannot_revoke_current_session",
                         "Use logout to end the current session.");
        return;
    }
    struct app *app = http_req_app(r);
    struct db_conn *c = NULL;
    struct session_row s;
    rc_t rc = db_acquire(app->db, DB_READ, &c);
    if (!rc)
        rc = sessions_get(c, http_req_arena(r), sid, &s);
    db_release(c);
    c = NULL;
    if (rc == RC_NOT_FOUND || (!rc && (s.deleted || strcmp(s.user_id, uid) != 0))) {
        http_reply_error(r, 404, "invalid_session", "Session not found.");
        return;
    }
    if (!rc && s.revoked_at_us) {
        http_reply_error(r, 409, "session_revoked", "Session already revoked.");
        return;
    }
    if (!rc && drop_state(app, sid) != RC_OK) {
        http_reply_error(r, 503, "session_expired", "Session backend unavailable.");
        return;
    }
    const char *why = reason ? reason : "self_targeted";
    if (!rc)
        rc = db_acquire(app->db, DB_WRITE, &c);
    if (!rc)
        rc = sessions_revoke_if_active(c, sid, why, time_now_us());
    db_release(c);
    if (rc == RC_NOT_FOUND) {
        http_reply_error(r, 409, "session_revoked", "Session already revoked.");
        return;
    }
    if (rc) {
        http_reply_error(r, 500, "internal_server_error", rc_str(rc));
        return;
    }
    audit_revoked(r, uid, json_pack("{s:s, s:s}", "reason", why, "session_id", sid));
    http_reply_json(r, 200, json_pack("{s:s, s:s}", "session_id", sid, "revoke_reason", why));
}

static void revoke_others(struct http_req *r)
{
    char uid[37], current[37];
    const char *reason;
    if (!revoke_reason(r, &reason) || !api_authenticate_bearer(r, uid, current))
        return;
    const char *why = reason ? reason : "self_revoke_others";
    struct app *app = http_req_app(r);
    struct db_conn *c = NULL;
    const char **ids = NULL;
    int n = 0;
    rc_t rc = db_acquire(app->db, DB_READ, &c);
    if (!rc)
        rc = sessions_unrevoked_ids(c, http_req_arena(r), uid, current, &ids, &n);
    db_release(c);
    c = NULL;
    json_t *done = json_array();
    for (int i = 0; !rc && i < n; i++) {
        if (drop_state(app, ids[i]) != RC_OK) {
            rc = RC_UNAVAILABLE;
            break;
        }
        rc = db_acquire(app->db, DB_WRITE, &c);
        if (!rc) {
            rc = sessions_revoke_if_active(c, ids[i], why, time_now_us());
            if (rc == RC_OK)
                json_array_append_new(done, json_string(ids[i]));
            if (rc == RC_NOT_FOUND) /* revoked meanwhile */
                rc = RC_OK;
        }
        db_release(c);
        c = NULL;
    }
    if (rc) {
        json_decref(done);
        if (rc == RC_UNAVAILABLE)
            http_reply_error(r, 503, "session_expired", "Session backend unavailable.");
        else
            http_reply_error(r, 500, "internal_server_error", rc_str(rc));
        return;
    }
    size_t count = json_array_size(done);
    audit_revoked(r, uid,
                  json_pack("{s:s, s:I, s:O}", "reason", why, "revoked_session_count",
                            (json_int_t)count, "session_ids", done));
    http_reply_json(r, 200,
                    json_pack("{s:o, s:I, s:s}", "revoked_session_ids", done,
                              "revoked_session_count", (json_int_t)count, "revoke_reason", why));
}

static void history(struct http_req *r)
{
    char uid[37], current[37];
    int limit;
    if (!page_limit(r, &limit))
        return;
    const char *cursor = http_req_query(r, "cursor");
    struct audit_keyset probe;
    if (cursor && *cursor && audit_cursor_decode(cursor, &probe) != RC_OK) {
        http_reply_invalid(r, "query.cursor: not a cursor of this API");
        return;
    }
    if (!api_authenticate_bearer(r, uid, current))
        return;
    struct app *app = http_req_app(r);
    struct audit_page page = {0};
    rc_t rc = audit_history(app->db, uid, cursor, limit, AUDIT_ITEM_HISTORY, &page);
    if (rc == RC_INVALID) {
        http_reply_invalid(r, "query.cursor: not a cursor of this API");
        return;
    }
    if (rc) {
        http_reply_error(r, 500, "internal_server_error", rc_str(rc));
        return;
    }
    json_t *body = json_pack("{s:O, s:o, s:b}", "data", page.items, "next_cursor",
                             str_or_null(page.next_cursor), "has_more", page.has_more);
    audit_page_free(&page);
    http_reply_json(r, 200, body);
}

/* GET /auth/csrf (§6.1): a fresh double-submit token and its cookie. */
static void csrf(struct http_req *r)
{
    struct app *app = http_req_app(r);
    const struct config *cfg = app->cfg;
    char *token = crypto_random_b64url(32);
    char *cookie = arena_printf(
        http_req_arena(r), "%s=%s; Path=%s; SameSite=%s%s%s%s",
        cfg->browser_sessions.csrf_cookie_name, token, cfg->browser_sessions.csrf_cookie_path,
        cfg->browser_sessions.same_site, cfg->browser_sessions.secure_only ? "; Secure" : "",
        cfg->browser_sessions.cookie_domain ? "; Domain=" : "",
        cfg->browser_sessions.cookie_domain ? cfg->browser_sessions.cookie_domain : "");
    http_reply_header(r, "Set-Cookie", cookie);
    http_reply_json(r, 200, json_pack("{s:s}", "csrf_token", token));
    free(token);
}

size_t api_self_routes(const struct http_route **out)
{
    static const struct http_route routes[] = {
        {HTTP_GET, "/auth/sessions", list_sessions, 0, NULL},
        {HTTP_DELETE, "/auth/sessions", revoke_others, ROUTE_RAW_BODY, NULL},
        {HTTP_DELETE, "/auth/sessions/{session_id}", revoke_one, ROUTE_RAW_BODY, NULL},
        {HTTP_GET, "/auth/history", history, 0, NULL},
        {HTTP_GET, "/auth/csrf", csrf, 0, NULL},
    };
    *out = routes;
    return sizeof routes / sizeof *routes;
}
