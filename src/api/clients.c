/* OAuth (M2M) clients (api-admin §8.4) and the client-credentials grant
 * (api-core §6.4 A).
 *
 * Admin routes are ROUTE_ADMIN: each route's check function runs before
 * authentication (a malformed request gets 422 without credentials) and
 * hands the parsed input to the handler through http_req_set_ctx. The grant
 * is reached from POST /auth/token (auth.c) for form bodies: the form is
 * parsed here on the event loop, the lookup, digest, RSA signature and
 * audit run on the general worker pool. */
#include "api/api.h"
#include "app.h"
#include "svc/audit.h"
#include "svc/clients.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct clients_deps deps_of(struct http_req *r)
{
    struct app *app = http_req_app(r);
    return (struct clients_deps){app->cfg, app->db, app->keys};
}

static struct req_meta meta_of(struct http_req *r)
{
    return (struct req_meta){http_req_corr_id(r), http_req_client_ip(r),
                             http_req_header(r, "User-Agent")};
}

/* ---- the grant: form decoding ---- */

enum { F_GRANT_TYPE, F_CLIENT_ID, F_CLIENT_SECRET, F_SCOPE, F_AUDIENCE, F_COUNT };
static const char *const form_names[F_COUNT] = {"grant_type", "client_id", "client_secret", "scope",
                                                "audience"};

/* One decoded name or value as a new arena string (str_form_decode: D6
 * invalid UTF-8 and U+0000 are refused). */
static bool form_decode(struct arena *a, const char *s, size_t n, char **out)
{
    *out = arena_alloc(a, n + 1);
    return str_form_decode(s, n, *out, n + 1);
}

/* Splits the body on '&'; the first occurrence of each field of the grant
 * is kept, trimmed, blank = absent (NULL). Every name and value of the
 * body must decode (false otherwise). */
static bool form_parse(struct http_req *r, const char *fields[F_COUNT])
{
    struct arena *a = http_req_arena(r);
    bool seen[F_COUNT] = {false};
    size_t len;
    const char *p = http_req_body(r, &len), *end = p + len;
    for (int i = 0; i < F_COUNT; i++)
        fields[i] = NULL;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        const char *v = eq ? eq + 1 : pe;
        char *key, *val;
        if (pe > p && (!form_decode(a, p, (size_t)(ke - p), &key) ||
                       !form_decode(a, v, (size_t)(pe - v), &val)))
            return false;
        for (int i = 0; pe > p && i < F_COUNT; i++) {
            if (seen[i] || strcmp(key, form_names[i]) != 0)
                continue;
            seen[i] = true;
            size_t off, n = clients_strip(val, strlen(val), &off);
            fields[i] = n ? arena_strndup(a, val + off, n) : NULL;
        }
        p = pe + 1;
    }
    return true;
}

/* ---- the grant ---- */

static void grant_work(struct http_req *r)
{
    const struct clients_grant_input *in = http_req_ctx(r);
    struct clients_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    struct clients_grant_result res;
    clients_grant(&d, &m, in, &res);
    switch (res.outcome) {
    case CLIENTS_GRANT_OK:
        http_reply_json(r, 200,
                        json_pack("{s:s, s:s, s:I, s:s}", "access_token", res.access_token,
                                  "token_type", "Bearer", "expires_in", (json_int_t)res.expires_in,
                                  "scope", res.scope));
        break;
    case CLIENTS_GRANT_BAD_CLIENT:
        http_reply_error(r, 401, "invalid_credentials", "Invalid client credentials.");
        break;
    case CLIENTS_GRANT_BAD_SCOPE:
        http_reply_error(r, 400, "invalid_scope", "Invalid scope.");
        break;
    case CLIENTS_GRANT_FAILED:
        http_reply_error(r, 500, "internal_server_error", "client credentials grant failed");
        break;
    }
    clients_grant_result_free(&res);
}

void api_token_client_credentials(struct http_req *r)
{
    struct clients_deps d = deps_of(r);
    struct req_meta m = meta_of(r);
    const char *f[F_COUNT];
    if (!form_parse(r, f)) {
        clients_audit_grant_failure(&d, &m, false, NULL, "invalid_credentials");
        http_reply_error(r, 400, "invalid_credentials", "Invalid request payload.");
        return;
    }
    if (!f[F_GRANT_TYPE] || strcmp(f[F_GRANT_TYPE], "client_credentials") != 0) {
        clients_audit_grant_failure(&d, &m, false, NULL, "invalid_credentials");
        http_reply_error(r, 400, "invalid_credentials", "Unsupported grant type.");
        return;
    }
    if (!f[F_CLIENT_ID] || !f[F_CLIENT_SECRET]) {
        clients_audit_grant_failure(&d, &m, true, f[F_CLIENT_ID], "invalid_credentials");
        http_reply_error(r, 401, "invalid_credentials", "Invalid client credentials.");
        return;
    }
    struct clients_grant_input *in = arena_zalloc(http_req_arena(r), sizeof *in);
    *in =
        (struct clients_grant_input){f[F_CLIENT_ID], f[F_CLIENT_SECRET], f[F_SCOPE], f[F_AUDIENCE]};
    http_req_set_ctx(r, in);
    struct app *app = http_req_app(r);
    http_req_offload(r, app->blocking, grant_work, app->cfg->password_hash.queue_timeout_ms);
}

/* ---- admin: input checks (run before authentication) ---- */

struct list_in {
    int limit;
    bool has_active, active;
    bool has_cursor;
    struct audit_keyset after;
};

struct client_in {
    char id[37];
    struct clients_input in;
};

/* `scopes`: an array of strings (at least min_items). Absent (or null
 * where API_NULLABLE) leaves *out NULL. */
static bool json_scopes(struct http_req *r, unsigned opts, size_t min_items,
                        struct clients_input *in)
{
    json_t *v = json_object_get(http_req_json(r), "scopes");
    in->scopes = NULL;
    in->n_scopes = 0;
    if (!v || json_is_null(v)) {
        if ((opts & API_REQUIRED) || (v && !(opts & API_NULLABLE))) {
            http_reply_invalid(r, "scopes: field required");
            return false;
        }
        return true;
    }
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < min_items) {
        http_reply_invalid(r, "scopes: a non-empty array of strings required");
        return false;
    }
    const char **items = arena_zalloc(http_req_arena(r), (n ? n : 1) * sizeof *items);
    for (size_t i = 0; i < n; i++) {
        items[i] = json_string_value(json_array_get(v, i));
        if (!items[i]) {
            http_reply_invalid(r, "scopes: every item must be a string");
            return false;
        }
    }
    in->scopes = items;
    in->n_scopes = n;
    return true;
}

/* `name`: a string of at most 255 code points after trimming (a blank one
 * is the handler's 400, api-admin §8.4). */
static bool json_name(struct http_req *r, unsigned opts, struct clients_input *in)
{
    const char *s;
    if (!api_json_string(r, "name", opts, 0, SIZE_MAX, &s))
        return false;
    in->name = s;
    if (!s)
        return true;
    size_t off, n = clients_strip(s, strlen(s), &off);
    if (utf8_len(s + off, n) > CLIENTS_NAME_MAX) {
        http_reply_invalid(r, "name: at most 255 characters");
        return false;
    }
    return true;
}

static bool check_list(struct http_req *r)
{
    struct list_in *in = arena_zalloc(http_req_arena(r), sizeof *in);
    const char *cursor;
    if (!api_query_bool(r, "active", &in->has_active, &in->active) ||
        !api_query_page(r, &in->limit, &cursor))
        return false;
    if (cursor && *cursor) {
        if (audit_cursor_decode(cursor, &in->after) != RC_OK) {
            http_reply_invalid(r, "query.cursor: not a cursor of this API");
            return false;
        }
        in->has_cursor = true;
    }
    http_req_set_ctx(r, in);
    return true;
}

static bool check_create(struct http_req *r)
{
    struct client_in *c = arena_zalloc(http_req_arena(r), sizeof *c);
    struct clients_input *in = &c->in;
    if (!json_name(r, API_REQUIRED, in) || !json_scopes(r, API_REQUIRED, 1, in) ||
        !api_json_int(r, "token_ttl_seconds", 0, 1, CLIENTS_TTL_MAX, &in->has_ttl,
                      &in->token_ttl_seconds))
        return false;
    http_req_set_ctx(r, c);
    return true;
}

static bool check_patch(struct http_req *r)
{
    struct client_in *c = arena_zalloc(http_req_arena(r), sizeof *c);
    struct clients_input *in = &c->in;
    if (!api_path_uuid(r, "id", c->id) || !json_name(r, API_NULLABLE, in) ||
        !json_scopes(r, API_NULLABLE, 0, in) ||
        !api_json_int(r, "token_ttl_seconds", API_NULLABLE, 1, CLIENTS_TTL_MAX, &in->has_ttl,
                      &in->token_ttl_seconds) ||
        !api_json_bool(r, "is_active", API_NULLABLE, &in->has_active, &in->is_active))
        return false;
    http_req_set_ctx(r, c);
    return true;
}

static bool check_id(struct http_req *r)
{
    struct client_in *c = arena_zalloc(http_req_arena(r), sizeof *c);
    if (!api_path_uuid(r, "id", c->id))
        return false;
    http_req_set_ctx(r, c);
    return true;
}

/* api-admin §1.1: a DELETE body may be absent or empty; if present it must
 * be a JSON object (its members are ignored). */
static bool check_delete(struct http_req *r)
{
    return api_optional_json_object(r) && check_id(r);
}

/* ---- admin: rendering ---- */

static json_t *scopes_json(const struct oauth_client_row *c)
{
    json_t *a = json_array();
    for (size_t i = 0; i < c->n_scopes; i++)
        json_array_append_new(a, json_string(c->scopes[i]));
    return a;
}

/* OAuthClient (api-admin §5.5), fields in the contract's order. */
static json_t *client_json(const struct oauth_client_row *c)
{
    char created[TIME_STR_MAX];
    time_format(c->created_at_us, TIME_STYLE_Z, created);
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:I, s:s}", "id", c->id, "client_id",
                     c->client_id, "client_secret_prefix", c->client_secret_prefix, "name", c->name,
                     "scopes", scopes_json(c), "is_active", c->is_active, "token_ttl_seconds",
                     (json_int_t)c->token_ttl_seconds, "created_at", created);
}

static struct clients_actor actor_of(struct http_req *r)
{
    return (struct clients_actor){api_admin_of(r)->actor_id, meta_of(r)};
}

static void reply_failure(struct http_req *r, rc_t rc, enum clients_problem problem)
{
    if (rc == RC_INVALID && problem == CLIENTS_NAME_REQUIRED)
        http_reply_error(r, 400, "invalid_credentials", "Client name is required.");
    else if (rc == RC_INVALID && problem == CLIENTS_SCOPE_REQUIRED)
        http_reply_error(r, 400, "invalid_scope", "At least one scope is required.");
    else if (rc == RC_NOT_FOUND)
        http_reply_error(r, 404, "invalid_credentials", "Client not found.");
    else
        http_reply_error(r, 500, "internal_server_error", rc_str(rc));
}

/* ---- admin: handlers ---- */

static void list_clients(struct http_req *r)
{
    const struct list_in *in = http_req_ctx(r);
    struct clients_deps d = deps_of(r);
    struct oauth_client_row *rows;
    int n;
    rc_t rc =
        clients_list(&d, http_req_arena(r), in->has_active, in->active, in->after.created_at_us,
                     in->has_cursor ? in->after.id : NULL, in->limit, &rows, &n);
    if (rc) {
        reply_failure(r, rc, CLIENTS_PROBLEM_NONE);
        return;
    }
    bool more = n > in->limit;
    if (more)
        n = in->limit;
    json_t *data = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(data, client_json(&rows[i]));
    char *next = more ? audit_cursor_encode(rows[n - 1].created_at_us, rows[n - 1].id) : NULL;
    http_reply_json(r, 200,
                    json_pack("{s:o, s:o, s:b}", "data", data, "next_cursor",
                              next ? json_string(next) : json_null(), "has_more", more));
    free(next);
}

static void create_client(struct http_req *r)
{
    const struct client_in *c = http_req_ctx(r);
    struct clients_deps d = deps_of(r);
    struct clients_actor who = actor_of(r);
    struct oauth_client_row row;
    char *secret = NULL;
    enum clients_problem problem = CLIENTS_PROBLEM_NONE;
    rc_t rc = clients_create(&d, &who, &c->in, http_req_arena(r), &row, &secret, &problem);
    if (rc) {
        reply_failure(r, rc, problem);
        return;
    }
    json_t *body = client_json(&row);
    json_object_set_new(body, "client_secret", json_string(secret));
    xfree_secret_str(secret);
    http_reply_json(r, 200, body);
}

static void update_client(struct http_req *r)
{
    const struct client_in *c = http_req_ctx(r);
    struct clients_deps d = deps_of(r);
    struct clients_actor who = actor_of(r);
    struct oauth_client_row row;
    enum clients_problem problem = CLIENTS_PROBLEM_NONE;
    rc_t rc = clients_update(&d, &who, c->id, &c->in, http_req_arena(r), &row, &problem);
    if (rc) {
        reply_failure(r, rc, problem);
        return;
    }
    http_reply_json(r, 200, client_json(&row));
}

static void rotate_secret(struct http_req *r)
{
    const struct client_in *c = http_req_ctx(r);
    struct clients_deps d = deps_of(r);
    struct clients_actor who = actor_of(r);
    struct oauth_client_row row;
    char *secret = NULL;
    rc_t rc = clients_rotate_secret(&d, &who, c->id, http_req_arena(r), &row, &secret);
    if (rc) {
        reply_failure(r, rc, CLIENTS_PROBLEM_NONE);
        return;
    }
    json_t *body =
        json_pack("{s:s, s:s, s:s, s:s}", "id", row.id, "client_id", row.client_id, "client_secret",
                  secret, "client_secret_prefix", row.client_secret_prefix);
    xfree_secret_str(secret);
    http_reply_json(r, 200, body);
}

static void delete_client(struct http_req *r)
{
    const struct client_in *c = http_req_ctx(r);
    struct clients_deps d = deps_of(r);
    struct clients_actor who = actor_of(r);
    struct oauth_client_row row;
    rc_t rc = clients_delete(&d, &who, c->id, http_req_arena(r), &row);
    if (rc) {
        reply_failure(r, rc, CLIENTS_PROBLEM_NONE);
        return;
    }
    http_reply_json(r, 200, client_json(&row));
}

size_t api_clients_routes(const struct http_route **out)
{
    static const struct http_route routes[] = {
        {HTTP_GET, "/admin/clients", list_clients, ROUTE_ADMIN, check_list},
        {HTTP_POST, "/admin/clients", create_client, ROUTE_ADMIN | ROUTE_JSON_BODY, check_create},
        {HTTP_PATCH, "/admin/clients/{id}", update_client, ROUTE_ADMIN | ROUTE_JSON_BODY,
         check_patch},
        {HTTP_POST, "/admin/clients/{id}/rotate-secret", rotate_secret, ROUTE_ADMIN, check_id},
        {HTTP_DELETE, "/admin/clients/{id}", delete_client, ROUTE_ADMIN | ROUTE_RAW_BODY,
         check_delete},
    };
    *out = routes;
    return sizeof routes / sizeof *routes;
}
