/* Request accessors, responses with the contract's decoration (api-core
 * §3.1–§3.3), and the `request_completed` access log (config-ops §7). */
#include "http/http.h"
#include "http/http_int.h"
#include "http/jsonbody.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- accessors ---- */

struct arena *http_req_arena(struct http_req *r)
{
    return r->arena;
}

void *http_req_app(struct http_req *r)
{
    return r->srv->opts.app;
}

struct http_server *http_req_server(struct http_req *r)
{
    return r->srv;
}

enum http_method http_req_method(const struct http_req *r)
{
    return r->method;
}

const char *http_req_path(const struct http_req *r)
{
    return r->path;
}

const char *http_req_route(const struct http_req *r)
{
    return r->match.route >= 0 ? r->srv->routes[r->match.route].pattern : NULL;
}

const char *http_req_header(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_req_query(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_cookie(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
}

const char *http_req_param(struct http_req *r, const char *name)
{
    for (int i = 0; i < r->match.nparams; i++)
        if (strcmp(r->match.names[i], name) == 0)
            return arena_strndup(r->arena, r->match.values[i].p, r->match.values[i].len);
    return NULL;
}

json_t *http_req_json(struct http_req *r)
{
    return r->json;
}

json_t *http_req_body_json(struct http_req *r)
{
    if (!r->body_json_done && r->body.len > 0) {
        r->body_json = jsonbody_parse_simple(r->body.data, r->body.len);
        if (!r->body_json)
            r->body_json = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, NULL);
    }
    r->body_json_done = true;
    return r->body_json;
}

const char *http_req_body(const struct http_req *r, size_t *out_len)
{
    *out_len = r->body.len;
    return r->body.data ? r->body.data : "";
}

const char *http_req_client_ip(const struct http_req *r)
{
    return r->client_ip;
}

const char *http_req_corr_id(const struct http_req *r)
{
    return r->corr_id;
}

bool http_req_development(const struct http_req *r)
{
    return r->srv->opts.development;
}

void http_req_set_ctx(struct http_req *r, void *ctx)
{
    r->ctx = ctx;
}

void *http_req_ctx(const struct http_req *r)
{
    return r->ctx;
}

void http_req_set_principal(struct http_req *r, void *principal)
{
    r->principal = principal;
}

void *http_req_principal(const struct http_req *r)
{
    return r->principal;
}

bool http_req_replied(const struct http_req *r)
{
    return r->replied;
}

/* ---- responses ---- */

void http_reply_header(struct http_req *r, const char *name, const char *value)
{
    struct resp_header *h = arena_alloc(r->arena, sizeof *h);
    h->name = arena_strdup(r->arena, name);
    h->value = arena_strdup(r->arena, value);
    h->next = r->headers;
    r->headers = h;
}

void http_reply_raw(struct http_req *r, int status, const char *content_type, const char *body,
                    size_t len)
{
    if (r->replied)
        return;
    r->replied = true;
    r->status = status;
    r->content_type = content_type ? arena_strdup(r->arena, content_type) : NULL;
    r->resp_body = arena_strndup(r->arena, body ? body : "", body ? len : 0);
    r->resp_len = body ? len : 0;
}

void http_reply_json(struct http_req *r, int status, json_t *body)
{
    if (!body)
        body = json_object();
    char *text = json_dumps(body, JSON_COMPACT);
    http_reply_raw(r, status, "application/json", text ? text : "{}", text ? strlen(text) : 2);
    free(text);
    json_decref(body);
}

void http_reply_error(struct http_req *r, int status, const char *code, const char *detail)
{
    if (r->replied)
        return;
    if (status >= 500)
        r->error_detail = arena_strdup(r->arena, detail);
    if (status == 500 && !r->srv->opts.development)
        detail = "Internal server error.";
    struct buf b;
    buf_init(&b, 4096);
    buf_puts(&b, "{\"detail\":\"");
    buf_json_escape(&b, detail, 1024);
    buf_puts(&b, "\",\"code\":\"");
    buf_json_escape(&b, code, 64);
    buf_puts(&b, "\"}");
    http_reply_raw(r, status, "application/json", b.data, b.len);
    buf_free(&b);
}

void http_reply_invalid(struct http_req *r, const char *problem)
{
    if (r->srv->opts.development && problem) {
        char *d = arena_printf(r->arena, "Invalid request payload: %s.", problem);
        http_reply_error(r, 422, "invalid_credentials", d);
    } else {
        http_reply_error(r, 422, "invalid_credentials", "Invalid request payload.");
    }
}

/* api-core §3.3: exact paths whose responses are never cached. */
static bool no_store_path(const char *path)
{
    static const char *const paths[] = {"/auth/csrf",
                                        "/auth/login",
                                        "/auth/token",
                                        "/auth/logout",
                                        "/auth/reauth",
                                        "/auth/otp/verify/login",
                                        "/auth/otp/verify/action",
                                        "/auth/oauth/google/callback",
                                        "/auth/saml/callback",
                                        "/auth/apikeys"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (strcmp(path, paths[i]) == 0)
            return true;
    /* D10 covers the whole key API (the revoke answer names a key too). */
    if (strncmp(path, "/auth/apikeys/", 14) == 0)
        return true;
    return strncmp(path, "/admin/", 7) == 0 || strcmp(path, "/admin") == 0; /* R9 */
}

/* Contract headers replace same-named handler headers; the delete is only
 * needed when the handler added any. */
static void add(struct MHD_Response *resp, bool replace, const char *name, const char *value)
{
    if (replace)
        MHD_del_response_header(resp, name, NULL);
    MHD_add_response_header(resp, name, value);
}

enum MHD_Result http_queue_response(struct http_req *r)
{
    if (!r->replied) {
        r->handler_failed = true;
        http_reply_error(r, 500, "internal_server_error", "no response");
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->resp_len, r->resp_body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    /* Handler headers first, so the contract's headers below replace any
     * same-named ones. */
    for (struct resp_header *h = r->headers; h; h = h->next)
        MHD_add_response_header(resp, h->name, h->value);
    bool rep = r->headers != NULL;
    if (r->content_type)
        add(resp, rep, "Content-Type", r->content_type);
    add(resp, rep, "X-Frame-Options", "DENY");
    add(resp, rep, "X-Content-Type-Options", "nosniff");
    add(resp, rep, "Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload");
    add(resp, rep, "Content-Security-Policy",
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    add(resp, rep, "X-Correlation-ID", r->corr_id);
    if (no_store_path(r->path)) {
        add(resp, rep, "Cache-Control", "no-store");
        add(resp, rep, "Pragma", "no-cache");
    }
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- access log ---- */

/* config-ops §7.3: key lower-cased with '-' → '_'. */
static bool sensitive_key(const char *key)
{
    char k[64];
    size_t n = 0;
    for (; key[n] && n < sizeof k - 1; n++)
        k[n] =
            key[n] == '-' ? '_' : (char)((key[n] >= 'A' && key[n] <= 'Z') ? key[n] + 32 : key[n]);
    k[n] = '\0';
    if (key[n]) /* longer than we inspect: redact to be safe */
        return true;
    static const char *const exact[] = {
        "access_token", "api_key",       "apikey",     "authorization", "cookie",
        "password",     "refresh_token", "set_cookie", "token",         "x_api_key"};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (strcmp(k, exact[i]) == 0)
            return true;
    return strstr(k, "token") || strstr(k, "password") || strstr(k, "api_key");
}

struct qctx {
    struct buf *b;
    int n;
};

static enum MHD_Result add_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    struct qctx *q = cls;
    if (q->n++ >= 32)
        return MHD_NO;
    buf_puts(q->b, q->n > 1 ? ",\"" : "\"");
    buf_json_escape(q->b, key, 128);
    buf_puts(q->b, "\":");
    if (sensitive_key(key)) {
        buf_puts(q->b, "\"***REDACTED***\"");
    } else if (!value) {
        buf_puts(q->b, "\"\"");
    } else {
        buf_putc(q->b, '"');
        buf_json_escape(q->b, value, 256);
        buf_putc(q->b, '"');
    }
    return MHD_YES;
}

void http_access_log(struct http_req *r, int64_t duration_us)
{
    enum log_level lvl = r->handler_failed || r->status >= 500 ? LOG_ERROR
                         : r->status >= 400                    ? LOG_WARNING
                                                               : LOG_INFO;
    if (!log_enabled(lvl))
        return;
    struct log_line l;
    log_begin(&l, lvl, "request_completed", r->corr_id);
    log_str(&l, "method", r->method_str);
    log_str(&l, "path", r->path);
    log_str(&l, "route", http_req_route(r));
    struct buf q;
    buf_init(&q, 8192);
    buf_putc(&q, '{');
    struct qctx qc = {&q, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, add_query, &qc);
    buf_putc(&q, '}');
    log_raw(&l, "query_params", q.err ? "{}" : q.data);
    buf_free(&q);
    log_int(&l, "status_code", r->status);
    log_fixed2(&l, "duration_ms", (duration_us + 5) / 10);
    log_str(&l, "client_ip", r->client_ip);
    const char *ua = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "User-Agent");
    log_str(&l, "user_agent", ua ? ua : "");
    if (r->error_detail)
        log_str(&l, "exception", r->error_detail);
    log_end(&l);
}
