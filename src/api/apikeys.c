/* API keys (api-core §10, §6.8; api-admin §8.1–§8.3): the admin-only key
 * API under /auth/apikeys and /admin/api-keys, and the public
 * POST /auth/introspect.
 *
 * Every route validates its whole input in its check callback, which runs
 * before authentication (§0.3: a malformed request gets 422 without
 * credentials) and leaves the parsed input in the request ctx. Handlers
 * touching the database run on app->blocking so SQL round trips never hold
 * an event loop; introspection answers cache hits inline and offloads only
 * misses. */
#include "api/api.h"
#include "app.h"
#include "http/jsonbody.h"
#include "svc/apikeys.h"
#include "svc/audit.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Timestamps we accept as input: years 1000..9999 after conversion to UTC.
 * Outside it the fixed-width database form cannot represent the value
 * (4-digit years), so such values are a 422, never a 500 or a misread. */
#define TS_MIN_US (-30610224000LL * 1000000) /* 1000-01-01T00:00:00Z */
#define TS_MAX_US (253402300799999999LL)     /* 9999-12-31T23:59:59.999999Z */

struct create_ctx {
    struct apikeys_create_in in;
};

struct list_ctx {
    struct api_keys_filter f;
    char user_id[37];
    int limit; /* admin page */
    bool has_after;
    struct audit_keyset after;
};

struct key_ctx {
    char key_id[37];
};

struct introspect_ctx {
    const char *raw; /* may hold NUL bytes: use len */
    size_t len;
};

/* ---- shared pieces ---- */

static struct app *app_of(struct http_req *r)
{
    return http_req_app(r);
}

static struct apikeys_deps deps_of(struct http_req *r)
{
    return (struct apikeys_deps){app_of(r)->db, app_of(r)->kv};
}

static struct req_meta meta_of(struct http_req *r)
{
    return (struct req_meta){http_req_corr_id(r), http_req_client_ip(r),
                             http_req_header(r, "User-Agent")};
}

static void offload(struct http_req *r, http_handler_fn work)
{
    struct app *app = app_of(r);
    http_req_offload(r, app->blocking, work, app->cfg->password_hash.queue_timeout_ms);
}

static json_t *ts(bool has, int64_t us, enum time_style style)
{
    if (!has)
        return json_null();
    char t[TIME_STR_MAX];
    time_format(us, style, t);
    return json_string(t);
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static void reply_failed(struct http_req *r, rc_t rc)
{
    http_reply_error(r, 500, "internal_server_error", rc_str(rc));
}

/* ---- input checks (before authentication) ---- */

static bool check_expires_at(struct http_req *r, struct apikeys_create_in *in)
{
    if (!api_json_datetime(r, "expires_at", API_NULLABLE, &in->has_expires_at, &in->expires_at_us))
        return false;
    if (in->has_expires_at && (in->expires_at_us < TS_MIN_US || in->expires_at_us > TS_MAX_US)) {
        http_reply_invalid(r, "expires_at: year out of range 1000..9999");
        return false;
    }
    return true;
}

/* POST /auth/apikeys (§10.2). Lengths are of the value as sent; blank
 * after trimming is the service's 400 (so "   " passes here). */
static bool check_auth_create(struct http_req *r)
{
    struct create_ctx *x = arena_zalloc(http_req_arena(r), sizeof *x);
    const char *uid = NULL;
    if (!api_json_string(r, "name", API_NULLABLE, 1, APIKEYS_FIELD_MAX, &x->in.name) ||
        !api_json_string(r, "service", API_NULLABLE, 1, APIKEYS_FIELD_MAX, &x->in.service) ||
        !api_json_string(r, "scope", API_REQUIRED, 1, APIKEYS_FIELD_MAX, &x->in.scope) ||
        !api_json_string(r, "user_id", API_NULLABLE, 0, 64, &uid) || !check_expires_at(r, &x->in))
        return false;
    if (uid) {
        char *canon = arena_zalloc(http_req_arena(r), UUID_STR_LEN + 1);
        if (!uuid_parse(uid, strlen(uid), canon)) {
            http_reply_invalid(r, "user_id: must be a UUID");
            return false;
        }
        x->in.user_id = canon;
    }
    if (!x->in.name && !x->in.service) {
        http_reply_invalid(r, "name: name or service is required");
        return false;
    }
    http_req_set_ctx(r, x);
    return true;
}

/* POST /admin/api-keys (api-admin §8.2): service and user_id are not part
 * of this body and are ignored like any unknown field. */
static bool check_admin_create(struct http_req *r)
{
    struct create_ctx *x = arena_zalloc(http_req_arena(r), sizeof *x);
    if (!api_json_string(r, "name", API_REQUIRED, 1, APIKEYS_FIELD_MAX, &x->in.name) ||
        !api_json_string(r, "scope", API_REQUIRED, 1, APIKEYS_FIELD_MAX, &x->in.scope) ||
        !check_expires_at(r, &x->in))
        return false;
    http_req_set_ctx(r, x);
    return true;
}

/* A string filter: exact match, so any value is fine, but it reaches the
 * database as text and PostgreSQL refuses invalid UTF-8. */
static bool query_text(struct http_req *r, const char *name, const char **out)
{
    const char *v = http_req_query(r, name);
    *out = v;
    if (v && !utf8_valid(v, strlen(v))) {
        char problem[64];
        snprintf(problem, sizeof problem, "query.%s: invalid UTF-8", name);
        http_reply_invalid(r, problem);
        return false;
    }
    return true;
}

static bool query_active(struct http_req *r, struct api_keys_filter *f)
{
    bool present = false, active = false;
    if (!api_query_bool(r, "active", &present, &active))
        return false;
    f->active = !present ? API_KEYS_ANY : active ? API_KEYS_ACTIVE : API_KEYS_INACTIVE;
    return true;
}

static bool check_auth_list(struct http_req *r)
{
    struct list_ctx *x = arena_zalloc(http_req_arena(r), sizeof *x);
    if (!api_query_uuid(r, "user_id", x->user_id) || !query_text(r, "name", &x->f.name) ||
        !query_text(r, "service", &x->f.service) || !query_text(r, "scope", &x->f.scope) ||
        !query_active(r, &x->f))
        return false;
    x->f.user_id = x->user_id[0] ? x->user_id : NULL;
    http_req_set_ctx(r, x);
    return true;
}

static bool check_admin_list(struct http_req *r)
{
    struct list_ctx *x = arena_zalloc(http_req_arena(r), sizeof *x);
    const char *cursor = NULL;
    if (!query_text(r, "scope", &x->f.scope) || !query_active(r, &x->f) ||
        !api_query_page(r, &x->limit, &cursor))
        return false;
    if (cursor && *cursor) {
        /* D4: anything undecodable is a 422, never a 500. */
        if (audit_cursor_decode(cursor, &x->after) != RC_OK || x->after.created_at_us < TS_MIN_US ||
            x->after.created_at_us > TS_MAX_US) {
            http_reply_invalid(r, "query.cursor: not a cursor of this API");
            return false;
        }
        x->has_after = true;
    }
    http_req_set_ctx(r, x);
    return true;
}

static bool check_key_id(struct http_req *r)
{
    struct key_ctx *x = arena_zalloc(http_req_arena(r), sizeof *x);
    if (!api_path_uuid(r, "key_id", x->key_id))
        return false;
    http_req_set_ctx(r, x);
    return true;
}

/* DELETE /admin/api-keys/{key_id}: the optional body must be a JSON object
 * when present (api-admin §1.1). */
static bool check_admin_revoke(struct http_req *r)
{
    return api_optional_json_object(r) && check_key_id(r);
}

/* POST /auth/introspect (§6.8, decision R7): any JSON string is a key to
 * judge, however short or long, including one with U+0000 (hence our own
 * parse with JSON_ALLOW_NUL); 422 only for a body that is not a JSON
 * object or lacks a string api_key. */
static bool check_introspect(struct http_req *r)
{
    size_t len;
    const char *body = http_req_body(r, &len);
    if (!jsonbody_content_type_ok(http_req_header(r, "Content-Type"))) {
        http_reply_invalid(r, "body: unsupported content type");
        return false;
    }
    json_t *j = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL) : NULL;
    json_t *key = json_is_object(j) ? json_object_get(j, "api_key") : NULL;
    if (!json_is_string(key)) {
        json_decref(j);
        http_reply_invalid(r, j ? "api_key: a string is required" : "body: malformed JSON");
        return false;
    }
    struct introspect_ctx *x = arena_zalloc(http_req_arena(r), sizeof *x);
    x->len = json_string_length(key);
    char *raw = arena_alloc(http_req_arena(r), x->len + 1);
    memcpy(raw, json_string_value(key), x->len + 1);
    x->raw = raw;
    json_decref(j);
    http_req_set_ctx(r, x);
    return true;
}

/* ---- rendering ---- */

static json_t *created_body(const struct apikeys_created *c, enum apikeys_api api)
{
    const struct api_key_row *k = &c->row;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "key_id", k->id, "api_key", c->api_key,
                          "key_prefix", k->key_prefix, "name", k->name, "service", k->service,
                          "scope", k->scope);
    if (api == APIKEYS_API_AUTH)
        json_object_set_new(o, "user_id", str_or_null(k->user_id));
    json_object_set_new(o, "expires_at", ts(k->has_expires_at, k->expires_at_us, TIME_STYLE_Z));
    json_object_set_new(o, "created_at", ts(true, k->created_at_us, TIME_STYLE_Z));
    return o;
}

/* APIKeyListItem (api-admin §5.4), with user_id after scope on
 * /auth/apikeys (api-core §10.3). */
static json_t *list_item(const struct api_key_row *k, bool with_user)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "key_id", k->id, "key_prefix", k->key_prefix,
                          "name", k->name, "service", k->service, "scope", k->scope);
    if (with_user)
        json_object_set_new(o, "user_id", str_or_null(k->user_id));
    json_object_set_new(o, "expires_at", ts(k->has_expires_at, k->expires_at_us, TIME_STYLE_Z));
    json_object_set_new(o, "revoked_at", ts(k->revoked, k->revoked_at_us, TIME_STYLE_Z));
    json_object_set_new(o, "created_at", ts(true, k->created_at_us, TIME_STYLE_Z));
    return o;
}

/* §6.8: the stored scope split on commas, items trimmed, empty ones
 * dropped. */
static json_t *scopes_of(const char *scope)
{
    json_t *arr = json_array();
    struct str rest = str_of(scope);
    while (rest.len) {
        const char *comma = memchr(rest.p, ',', rest.len);
        size_t n = comma ? (size_t)(comma - rest.p) : rest.len;
        struct str item = str_trim((struct str){rest.p, n});
        if (item.len)
            json_array_append_new(arr, json_stringn(item.p, item.len));
        rest.p += comma ? n + 1 : n;
        rest.len -= comma ? n + 1 : n;
    }
    return arr;
}

static void reply_introspection(struct http_req *r, const struct apikeys_answer *ans)
{
    const struct api_key_row *k = &ans->key;
    if (ans->verdict != APIKEYS_VALID) {
        http_reply_json(
            r, 200,
            json_pack("{s:b, s:s}", "valid", 0, "code", apikeys_verdict_code(ans->verdict)));
        return;
    }
    http_reply_json(
        r, 200,
        json_pack("{s:b, s:o, s:o, s:s, s:o, s:s}", "valid", 1, "user_id", str_or_null(k->user_id),
                  "scopes", scopes_of(k->scope), "key_id", k->id, "expires_at",
                  ts(k->has_expires_at, k->expires_at_us, TIME_STYLE_O), "service", k->service));
}

/* ---- handlers ---- */

static struct apikeys_actor actor_of(struct http_req *r, struct req_meta *m)
{
    *m = meta_of(r);
    const struct api_admin *p = api_admin_of(r);
    return (struct apikeys_actor){p ? p->actor_id : NULL, m};
}

static void create_work(struct http_req *r, enum apikeys_api api)
{
    struct create_ctx *x = http_req_ctx(r);
    struct apikeys_deps d = deps_of(r);
    struct req_meta m;
    struct apikeys_actor who = actor_of(r, &m);
    struct apikeys_created c;
    const char *detail = NULL;
    rc_t rc = apikeys_create(&d, &who, api, &x->in, http_req_arena(r), &c, &detail);
    if (rc == RC_INVALID)
        http_reply_error(r, 400, "invalid_api_key", detail);
    else if (rc == RC_NOT_FOUND)
        http_reply_error(r, 404, "invalid_user", "User not found.");
    else if (rc != RC_OK)
        reply_failed(r, rc);
    else
        http_reply_json(r, 200, created_body(&c, api));
}

static void auth_create_work(struct http_req *r)
{
    create_work(r, APIKEYS_API_AUTH);
}

static void admin_create_work(struct http_req *r)
{
    create_work(r, APIKEYS_API_ADMIN);
}

static void auth_create(struct http_req *r)
{
    offload(r, auth_create_work);
}

static void admin_create(struct http_req *r)
{
    offload(r, admin_create_work);
}

static void auth_list_work(struct http_req *r)
{
    struct list_ctx *x = http_req_ctx(r);
    struct apikeys_deps d = deps_of(r);
    struct req_meta m;
    struct apikeys_actor who = actor_of(r, &m);
    struct api_key_row *rows = NULL;
    int n = 0;
    x->f.now_us = time_now_us();
    rc_t rc = apikeys_list(&d, &who, &x->f, http_req_arena(r), &rows, &n);
    if (rc != RC_OK) {
        reply_failed(r, rc);
        return;
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, list_item(&rows[i], true));
    http_reply_json(r, 200, arr);
}

static void auth_list(struct http_req *r)
{
    offload(r, auth_list_work);
}

static void admin_list_work(struct http_req *r)
{
    struct list_ctx *x = http_req_ctx(r);
    struct apikeys_deps d = deps_of(r);
    struct api_key_row *rows = NULL;
    int n = 0;
    x->f.now_us = time_now_us();
    rc_t rc = apikeys_page(&d, &x->f, x->after.created_at_us, x->has_after ? x->after.id : NULL,
                           x->limit, http_req_arena(r), &rows, &n);
    if (rc != RC_OK) {
        reply_failed(r, rc);
        return;
    }
    bool more = n > x->limit;
    if (more)
        n = x->limit;
    json_t *data = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(data, list_item(&rows[i], false));
    char *next = more ? audit_cursor_encode(rows[n - 1].created_at_us, rows[n - 1].id) : NULL;
    json_t *body = json_pack("{s:o, s:o, s:b}", "data", data, "next_cursor", str_or_null(next),
                             "has_more", more);
    free(next);
    http_reply_json(r, 200, body);
}

static void admin_list(struct http_req *r)
{
    offload(r, admin_list_work);
}

static void revoke_work(struct http_req *r, enum apikeys_api api)
{
    struct key_ctx *x = http_req_ctx(r);
    struct apikeys_deps d = deps_of(r);
    struct req_meta m;
    struct apikeys_actor who = actor_of(r, &m);
    struct api_key_row k;
    rc_t rc = apikeys_revoke(&d, &who, api, x->key_id, http_req_arena(r), &k);
    if (rc == RC_NOT_FOUND) {
        http_reply_error(r, 404, "invalid_api_key", "API key not found.");
        return;
    }
    if (rc != RC_OK) {
        reply_failed(r, rc);
        return;
    }
    if (api == APIKEYS_API_ADMIN) {
        http_reply_json(r, 200,
                        json_pack("{s:s, s:o}", "key_id", k.id, "revoked_at",
                                  ts(true, k.revoked_at_us, TIME_STYLE_Z)));
        return;
    }
    http_reply_json(r, 200,
                    json_pack("{s:s, s:s, s:s, s:o}", "detail", "API key revoked.", "code",
                              "revoked_api_key", "key_id", k.id, "revoked_at",
                              ts(true, k.revoked_at_us, TIME_STYLE_O)));
}

static void auth_revoke_work(struct http_req *r)
{
    revoke_work(r, APIKEYS_API_AUTH);
}

static void admin_revoke_work(struct http_req *r)
{
    revoke_work(r, APIKEYS_API_ADMIN);
}

static void auth_revoke(struct http_req *r)
{
    offload(r, auth_revoke_work);
}

static void admin_revoke(struct http_req *r)
{
    offload(r, admin_revoke_work);
}

static void introspect_work(struct http_req *r)
{
    struct introspect_ctx *x = http_req_ctx(r);
    struct apikeys_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    struct apikeys_answer ans;
    rc_t rc = apikeys_introspect(&d, &m, x->raw, x->len, http_req_arena(r), &ans);
    if (rc != RC_OK)
        reply_failed(r, rc);
    else
        reply_introspection(r, &ans);
}

/* Inline when the answer needs no database (not an sk_ key, cache hit). */
static void introspect(struct http_req *r)
{
    struct introspect_ctx *x = http_req_ctx(r);
    struct apikeys_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    struct apikeys_answer ans;
    if (apikeys_introspect_fast(&d, &m, x->raw, x->len, http_req_arena(r), &ans) == RC_OK)
        reply_introspection(r, &ans);
    else
        offload(r, introspect_work);
}

size_t api_apikeys_routes(const struct http_route **out)
{
    static const struct http_route routes[] = {
        {HTTP_POST, "/auth/apikeys", auth_create, ROUTE_JSON_BODY | ROUTE_ADMIN, check_auth_create},
        {HTTP_GET, "/auth/apikeys", auth_list, ROUTE_ADMIN, check_auth_list},
        {HTTP_POST, "/auth/apikeys/{key_id}/revoke", auth_revoke, ROUTE_ADMIN, check_key_id},
        {HTTP_POST, "/auth/introspect", introspect, ROUTE_RAW_BODY, check_introspect},
        {HTTP_GET, "/admin/api-keys", admin_list, ROUTE_ADMIN, check_admin_list},
        {HTTP_POST, "/admin/api-keys", admin_create, ROUTE_JSON_BODY | ROUTE_ADMIN,
         check_admin_create},
        {HTTP_DELETE, "/admin/api-keys/{key_id}", admin_revoke, ROUTE_RAW_BODY | ROUTE_ADMIN,
         check_admin_revoke},
    };
    *out = routes;
    return sizeof routes / sizeof *routes;
}
