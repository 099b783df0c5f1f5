/* HTTP layer on libmicrohttpd (epoll, internal thread pool; architecture
 * decision 1). Owns the request pipeline of api-core §0.3: correlation id,
 * response decoration (security, no-store and correlation headers), the
 * pre-routing hook (rate limiter), host allow-list, header-size limit,
 * routing (404/405), declared input validation (body limit 413, JSON body
 * rules 422), then the handler. Every request is logged once as
 * `request_completed` and counted in metrics when it completes.
 *
 * Handlers never see libmicrohttpd: they read the request through
 * http_req_* accessors and answer with exactly one http_reply_* call. A
 * handler that must block (password hashing, a deliberate wait) hands the
 * request to a workq with http_req_offload: the connection is suspended,
 * the event loop keeps serving others, and the response is sent when the
 * work function has replied.
 *
 * Ownership: each request owns an arena (http_req_arena) freed when the
 * response is done; strings returned by accessors live until then.
 * Thread-safety: a struct http_req is used by one thread at a time (the
 * event loop, or the worker it was offloaded to). */
#ifndef AUTHD_HTTP_HTTP_H
#define AUTHD_HTTP_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/router.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/rc.h"
#include "util/workq.h"

struct http_server;
struct http_req;

typedef void (*http_handler_fn)(struct http_req *req);

/* Route policy, enforced by the dispatcher before the handler runs, in
 * this order: body rules, the route's input check, the admin principal. */
enum route_flags {
    ROUTE_JSON_BODY = 1u << 0, /* body parsed as a JSON object per api-core §0.2 */
    ROUTE_RAW_BODY = 1u << 1,  /* body collected (limit applies), handler parses */
    /* Admin-authenticated (api-admin §2.1 / §11): the server's admin_auth
     * hook resolves the principal (http_req_principal) or answers. */
    ROUTE_ADMIN = 1u << 2,
};

/* A route's input validation, run before authentication so a malformed
 * request gets its 422 without credentials (api-core §0.3, api-admin
 * §2.1). Returns false when it replied; parsed input goes to
 * http_req_set_ctx. */
typedef bool (*http_check_fn)(struct http_req *req);

struct http_route {
    enum http_method method;
    const char *pattern; /* "/auth/sessions/{session_id}" */
    http_handler_fn handler;
    unsigned flags;
    http_check_fn validate; /* NULL = none */
};

/* Optional stage-3 hook (rate limiter). Returns true when it answered. */
typedef bool (*http_pre_route_fn)(struct http_req *req);
/* Appends extra Prometheus text to /metrics (e.g. database pool gauges). */
typedef void (*http_metrics_extra_fn)(struct buf *out, void *ctx);

struct http_opts {
    const char *host; /* bind address (IPv4 or IPv6 literal, or a name) */
    int port;         /* 0 = ephemeral (tests) */
    int threads;
    int connection_timeout_s;
    size_t max_body_bytes;
    size_t max_header_bytes;
    bool development; /* 422/500 details carry the internal message */
    const char *const *trusted_proxy_cidrs;
    int n_trusted_proxy_cidrs;
    const char *const *allowed_hosts;
    int n_allowed_hosts;
    http_pre_route_fn pre_route;
    /* ROUTE_ADMIN routes: resolves the admin principal into
     * http_req_set_principal, or answers (true) with the refusal. A table
     * with ROUTE_ADMIN routes and no hook answers them 500. */
    http_pre_route_fn admin_auth;
    void *app; /* handed to handlers through http_req_app */
};

/* Builds the server (routes copied by reference: the table must outlive the
 * server). Does not bind. NULL on a bad route table. */
struct http_server *http_server_new(const struct http_opts *opts, const struct http_route *routes,
                                    size_t nroutes);
/* Binds and starts the event-loop threads. RC_IO when the port is taken. */
rc_t http_server_start(struct http_server *s) WUR;
int http_server_port(const struct http_server *s);
/* Stops accepting new connections; in-flight requests continue. */
void http_server_quiesce(struct http_server *s);
int http_server_inflight(const struct http_server *s);
/* Stops the daemon (closes every connection) and frees. NULL ok. */
void http_server_free(struct http_server *s);
void http_server_set_metrics_extra(struct http_server *s, http_metrics_extra_fn fn, void *ctx);
/* Renders the Prometheus text of config-ops §8 plus the extra families. */
void http_server_metrics(struct http_server *s, struct buf *out);

/* ---- request accessors (valid until the response is done) ---- */
struct arena *http_req_arena(struct http_req *r);
void *http_req_app(struct http_req *r);
struct http_server *http_req_server(struct http_req *r);
enum http_method http_req_method(const struct http_req *r);
const char *http_req_path(const struct http_req *r);               /* raw path, no query */
const char *http_req_route(const struct http_req *r);              /* template or NULL */
const char *http_req_header(struct http_req *r, const char *name); /* case-insensitive */
const char *http_req_query(struct http_req *r, const char *name);
const char *http_req_cookie(struct http_req *r, const char *name);
/* Path parameter by name; NULL when the route has no such parameter. */
const char *http_req_param(struct http_req *r, const char *name);
/* Parsed JSON object for ROUTE_JSON_BODY routes (borrowed). */
json_t *http_req_json(struct http_req *r);
/* Raw body for ROUTE_RAW_BODY/ROUTE_JSON_BODY routes ("" when none). */
const char *http_req_body(const struct http_req *r, size_t *out_len);
/* The raw body parsed as JSON (duplicate keys refused), parsed at the
 * first call and kept for the request, so the rate-limit hook and the
 * handler of a raw-body route share one parse. Any JSON value; NULL when
 * the body is empty or not valid JSON. Borrowed, freed with the request. */
json_t *http_req_body_json(struct http_req *r);
const char *http_req_client_ip(const struct http_req *r); /* canonical or "unknown" */
const char *http_req_corr_id(const struct http_req *r);
bool http_req_development(const struct http_req *r);
/* A handler's own per-request state, e.g. parsed input handed to offloaded
 * work (allocate it in the request arena). NULL until set. */
void http_req_set_ctx(struct http_req *r, void *ctx);
void *http_req_ctx(const struct http_req *r);
/* The authenticated principal set by the admin_auth hook (NULL until). */
void http_req_set_principal(struct http_req *r, void *principal);
void *http_req_principal(const struct http_req *r);

/* ---- responses: exactly one per request ---- */
/* Takes ownership of body (may be NULL for an empty object). */
void http_reply_json(struct http_req *r, int status, json_t *body);
/* Copies body. content_type NULL → no Content-Type (204). */
void http_reply_raw(struct http_req *r, int status, const char *content_type, const char *body,
                    size_t len);
/* The contract's error envelope {"detail","code"}. For 500 outside
 * development the detail is replaced by "Internal server error.". */
void http_reply_error(struct http_req *r, int status, const char *code, const char *detail);
/* 422 invalid_credentials; `problem` appears in the detail only in development. */
void http_reply_invalid(struct http_req *r, const char *problem);
/* Adds a response header (copied). Call before http_reply_*. */
void http_reply_header(struct http_req *r, const char *name, const char *value);
bool http_req_replied(const struct http_req *r);

/* Parks the request on q: the connection is suspended, work(r) runs on a
 * worker and must reply; if the job cannot start within queue_timeout_ms
 * the request gets 503 service_busy with Retry-After instead. */
void http_req_offload(struct http_req *r, struct workq *q, http_handler_fn work,
                      int64_t queue_timeout_ms);
/* Only from inside offloaded work, instead of replying: when it returns,
 * the request moves on to q and work(r) runs there and must reply; the
 * connection stays suspended. For work that needs a scarce pool only for
 * its first part (a password hash), so that pool's worker is free for the
 * next request while the rest (signing, database writes) runs elsewhere.
 * There is no start deadline (the request has waited its turn once); when
 * q is full or stopping, work(r) runs at once on the current worker. */
void http_req_offload_next(struct http_req *r, struct workq *q, http_handler_fn work);

#endif
