/* Private to src/http: the request and server structs shared by server.c
 * (pipeline, libmicrohttpd glue) and reply.c (responses, access log). */
#ifndef AUTHD_HTTP_INT_H
#define AUTHD_HTTP_INT_H

#include <microhttpd.h>

#include "http/clientip.h"
#include "http/http.h"
#include "http/metrics.h"
#include "http/router.h"

struct resp_header {
    const char *name, *value; /* arena strings */
    struct resp_header *next;
};

struct http_server {
    struct http_opts opts;
    const struct http_route *routes;
    size_t nroutes;
    const char **templates;
    struct router *router;
    struct metrics *metrics;
    struct cidrset *trusted;
    const char **allowed;
    int n_allowed;
    bool allow_all;
    struct MHD_Daemon *daemon;
    int listen_fd; /* ours (MHD_OPTION_LISTEN_SOCKET); the daemon closes it */
    bool quiesced;
    int port;
    http_metrics_extra_fn extra;
    void *extra_ctx;
};

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct arena *arena;
    int64_t start_us;
    enum http_method method;
    const char *method_str;
    const char *path;
    struct route_match match;
    size_t header_bytes;
    struct buf body;
    size_t body_seen;
    bool body_too_large;
    json_t *json;
    json_t *body_json; /* http_req_body_json, once body_json_done */
    bool body_json_done;
    char corr_id[129];
    char client_ip[IP_STR_MAX];

    bool dispatched, offloaded, replied, queued, handler_failed;
    http_handler_fn offload_work;
    struct workq *next_q; /* http_req_offload_next */
    http_handler_fn next_work;
    void *ctx;
    void *principal;

    int status;
    const char *content_type;
    char *resp_body; /* arena */
    size_t resp_len;
    struct resp_header *headers;
    const char *error_detail; /* for the access log on failures */
};

enum MHD_Result http_queue_response(struct http_req *r);
void http_access_log(struct http_req *r, int64_t duration_us);

#endif
