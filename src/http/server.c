/* libmicrohttpd glue and the request pipeline (see http.h).
 *
 * Life of a request: the first access-handler call creates the http_req
 * (arena, correlation id, client ip, route match) and answers nothing
 * (libmicrohttpd 0.9.75 closes keep-alive connections when a response is
 * queued on the first call). Body chunks are fed into a bounded buffer.
 * The final call runs the pipeline (dispatch) once; a handler either
 * replies, or offloads the request to a workq, which suspends the
 * connection until the worker has replied and resumed it. The response is
 * queued on the next call, and the completion callback logs, counts and
 * frees. */
#include "http/http.h"
#include "http/http_int.h"
#include "http/jsonbody.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bodies beyond the limit are read and discarded up to this many bytes so
 * the client can read its 413; past it the connection is answered and
 * closed at once. */
#define BODY_DISCARD_CAP (1024 * 1024)
/* libmicrohttpd per-connection pool: four times max_header_bytes, so our own
 * 431 (with the JSON envelope) answers before the library's built-in one
 * even for many small headers (each costs the library ~50 bytes of
 * bookkeeping), and no larger: 0.9.75 zeroes the whole pool between
 * keep-alive requests (a 256 KiB pool cost 88% of the CPU of /health/live
 * under callgrind). */
#define CONN_MEMORY_MIN (32 * 1024)

static void req_free(struct http_req *r)
{
    if (!r)
        return;
    if (r->json)
        json_decref(r->json);
    if (r->body_json)
        json_decref(r->body_json);
    buf_free(&r->body);
    arena_free(r->arena);
    free(r);
}

static bool corr_id_ok(struct str v)
{
    if (v.len < 1 || v.len > 128)
        return false;
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.p[i] < 0x20 || (unsigned char)v.p[i] > 0x7e)
            return false;
    return true;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    size_t *n = cls;
    *n += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

static enum MHD_Result collect_xff(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    struct buf *b = cls;
    if (value && strcasecmp(key, "X-Forwarded-For") == 0) {
        if (b->len)
            buf_putc(b, ',');
        buf_puts(b, value);
    }
    return MHD_YES;
}

/* Several X-Forwarded-For lines form one list, in order (RFC 9110 §5.3):
 * taking only the first would let a client-sent line outrank the one the
 * proxy appended. */
static const char *joined_xff(struct http_req *r)
{
    struct buf b;
    buf_init(&b, 16 * 1024);
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect_xff, &b);
    const char *out = b.len && !b.err ? arena_strndup(r->arena, b.data, b.len) : NULL;
    buf_free(&b);
    return out;
}

static struct http_req *req_new(struct http_server *s, struct MHD_Connection *conn, const char *url,
                                const char *method)
{
    struct http_req *r = xcalloc(1, sizeof *r);
    r->srv = s;
    r->conn = conn;
    r->arena = arena_new();
    r->start_us = time_mono_us();
    r->method = http_method_parse(method);
    r->method_str = arena_strdup(r->arena, method);
    r->path = arena_strdup(r->arena, url);
    buf_init(&r->body, s->opts.max_body_bytes);

    const char *cid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Correlation-ID");
    struct str v = str_trim(str_of(cid));
    if (cid && corr_id_ok(v)) {
        memcpy(r->corr_id, v.p, v.len);
        r->corr_id[v.len] = '\0';
    } else {
        uuid_v4(r->corr_id);
    }

    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char peer[IP_STR_MAX];
    bool have_peer = ci && ip_from_sockaddr(ci->client_addr, peer);
    const char *xff = cidrset_count(s->trusted) ? joined_xff(r) : NULL;
    clientip_resolve(s->trusted, have_peer ? peer : NULL, xff, r->client_ip);

    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &r->header_bytes);
    router_match(s->router, r->method, r->path, &r->match);
    metrics_inflight_add(s->metrics, 1);
    return r;
}

static bool host_allowed(const struct http_server *s, const char *host)
{
    if (s->n_allowed == 0 || s->allow_all)
        return true;
    if (!host)
        return false;
    /* Strip the port: "[v6]:port" keeps the brackets' content, "name:port"
     * drops after the last colon when what follows is digits. */
    char h[256];
    size_t len = strlen(host);
    if (len >= sizeof h)
        return false;
    memcpy(h, host, len + 1);
    if (h[0] == '[') {
        char *close = strchr(h, ']');
        if (!close)
            return false;
        *close = '\0';
        memmove(h, h + 1, strlen(h + 1) + 1);
    } else {
        char *colon = strrchr(h, ':');
        if (colon && strchr(h, ':') == colon)
            *colon = '\0';
    }
    size_t hl = strlen(h);
    for (int i = 0; i < s->n_allowed; i++) {
        const char *a = s->allowed[i];
        if (a[0] == '*' && a[1] == '.') {
            size_t sl = strlen(a + 1); /* ".suffix" */
            if (hl > sl && strcmp(h + hl - sl, a + 1) == 0)
                return true;
        } else if (strcmp(h, a) == 0) {
            return true;
        }
    }
    return false;
}

static void parse_json_body(struct http_req *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    char problem[200];
    if (!jsonbody_parse(ct, r->body.data, r->body.len, &r->json, problem, sizeof problem))
        http_reply_invalid(r, problem);
}

static void dispatch(struct http_req *r)
{
    struct http_server *s = r->srv;
    if (s->opts.pre_route && s->opts.pre_route(r))
        return;
    if (!host_allowed(s, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host"))) {
        static const char msg[] = "Invalid host header";
        http_reply_raw(r, 400, "text/plain; charset=utf-8", msg, sizeof msg - 1);
        return;
    }
    if (r->header_bytes > s->opts.max_header_bytes) {
        http_reply_error(r, 431, "invalid_credentials", "Request header fields too large.");
        return;
    }
    if (r->match.status == 404) {
        http_reply_error(r, 404, "not_found", "Not Found");
        return;
    }
    if (r->match.status == 405) {
        http_reply_error(r, 405, "method_not_allowed", "Method Not Allowed");
        return;
    }
    const struct http_route *rt = &s->routes[r->match.route];
    if (r->body_too_large) {
        http_reply_error(r, 413, "payload_too_large", "Request body too large.");
        return;
    }
    if (rt->flags & ROUTE_JSON_BODY) {
        parse_json_body(r);
        if (r->replied)
            return;
    }
    if (rt->validate && !rt->validate(r)) {
        if (!r->replied)
            http_reply_invalid(r, "rejected");
        return;
    }
    if (rt->flags & ROUTE_ADMIN) {
        if (!s->opts.admin_auth) {
            r->handler_failed = true;
            http_reply_error(r, 500, "internal_server_error", "no admin authentication");
            return;
        }
        if (s->opts.admin_auth(r)) {
            if (!r->replied) {
                r->handler_failed = true;
                http_reply_error(r, 500, "internal_server_error", "admin check did not reply");
            }
            return;
        }
    }
    rt->handler(r);
    if (!r->replied && !r->offloaded) {
        r->handler_failed = true;
        http_reply_error(r, 500, "internal_server_error", "handler did not reply");
    }
}

static bool declared_body_too_large(struct http_req *r)
{
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    if (!cl)
        return false;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    return end != cl && errno == 0 && n > BODY_DISCARD_CAP && n > r->srv->opts.max_body_bytes;
}

static enum MHD_Result queue(struct http_req *r)
{
    r->queued = true;
    return http_queue_response(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http_server *s = cls;
    struct http_req *r = *con_cls;
    if (!r) {
        r = req_new(s, conn, url, method);
        *con_cls = r;
        if (!declared_body_too_large(r))
            return MHD_YES;
        /* A declared body past the discard cap is answered now, without
         * waiting for bytes that may never come; libmicrohttpd then closes
         * the connection instead of reading the body. */
        r->body_too_large = true;
        r->dispatched = true;
        dispatch(r);
        if (r->offloaded)
            return MHD_YES;
        return queue(r);
    }
    if (r->queued)
        return MHD_YES;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        r->body_seen += n;
        if (!r->body_too_large) {
            buf_append(&r->body, upload_data, n);
            if (r->body.err) {
                r->body_too_large = true;
                buf_free(&r->body);
            }
        }
        if (r->body_seen > BODY_DISCARD_CAP && !r->replied) {
            http_reply_error(r, 413, "payload_too_large", "Request body too large.");
            return queue(r);
        }
        return MHD_YES;
    }
    if (!r->dispatched) {
        r->dispatched = true;
        dispatch(r);
        if (r->offloaded)
            return MHD_YES; /* suspended; the resume calls us again */
    }
    return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    struct http_server *s = cls;
    struct http_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    int64_t dur = time_mono_us() - r->start_us;
    if (r->replied) {
        metrics_observe(s->metrics, r->match.route, r->method, r->status, dur);
        http_access_log(r, dur);
    }
    metrics_inflight_add(s->metrics, -1);
    req_free(r);
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_msg(LOG_WARNING, "http_server_message", "%s", msg);
}

struct http_server *http_server_new(const struct http_opts *opts, const struct http_route *routes,
                                    size_t nroutes)
{
    struct http_server *s = xcalloc(1, sizeof *s);
    s->listen_fd = -1;
    s->opts = *opts;
    s->routes = routes;
    s->nroutes = nroutes;
    const char **pats = xcalloc(nroutes ? nroutes : 1, sizeof *pats);
    enum http_method *meths = xcalloc(nroutes ? nroutes : 1, sizeof *meths);
    for (size_t i = 0; i < nroutes; i++) {
        pats[i] = routes[i].pattern;
        meths[i] = routes[i].method;
    }
    s->router = router_new(pats, meths, nroutes);
    s->templates = pats;
    free(meths);
    if (!s->router) {
        http_server_free(s);
        return NULL;
    }
    s->metrics = metrics_new(s->templates, (int)nroutes);
    s->trusted = cidrset_new(opts->trusted_proxy_cidrs, opts->n_trusted_proxy_cidrs);
    s->allowed =
        xcalloc(opts->n_allowed_hosts > 0 ? (size_t)opts->n_allowed_hosts : 1, sizeof *s->allowed);
    for (int i = 0; i < opts->n_allowed_hosts; i++) {
        const char *h = opts->allowed_hosts[i];
        if (strcmp(h, "*") == 0)
            s->allow_all = true;
        s->allowed[s->n_allowed++] = h;
    }
    return s;
}

static rc_t resolve_bind(const char *host, int port, struct sockaddr_storage *ss)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res) != 0 || !res)
        return RC_INVALID;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return RC_OK;
}

/* The listening socket is ours, so quiescing can close it without
 * MHD_quiesce_daemon (see http_server_quiesce). Options as libmicrohttpd
 * sets them on its own sockets: SO_REUSEADDR, IPv6-only for an IPv6
 * address, non-blocking. */
static rc_t open_listener(const struct sockaddr_storage *ss, int *out)
{
    socklen_t len = ss->ss_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                                              : (socklen_t)sizeof(struct sockaddr_in);
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return RC_IO;
    int on = 1;
    bool ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
              (ss->ss_family != AF_INET6 ||
               setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) == 0) &&
              bind(fd, (const struct sockaddr *)ss, len) == 0 && listen(fd, 1024) == 0;
    if (!ok) {
        close(fd);
        return RC_IO;
    }
    *out = fd;
    return RC_OK;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

rc_t http_server_start(struct http_server *s)
{
    struct sockaddr_storage ss;
    if (resolve_bind(s->opts.host, s->opts.port, &ss) != RC_OK)
        return RC_INVALID;
    int fd;
    if (open_listener(&ss, &fd) != RC_OK)
        return RC_IO;
    unsigned flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    size_t conn_memory = s->opts.max_header_bytes * 4;
    if (conn_memory < CONN_MEMORY_MIN)
        conn_memory = CONN_MEMORY_MIN;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_log, s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(s->opts.threads > 0 ? s->opts.threads : 1), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->opts.connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, conn_memory,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        close(fd);
        return RC_IO;
    }
    s->listen_fd = fd;
    s->port = bound_port(fd);
    return RC_OK;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_quiesce(struct http_server *s)
{
    if (!s->daemon || s->quiesced)
        return;
    /* Not MHD_quiesce_daemon: with a thread pool, libmicrohttpd 0.9.75
     * removes the listen socket from each worker's epoll set from this
     * thread while the worker, told to quiesce a moment earlier, may be
     * removing it too; the loser's ENOENT is fatal (MHD_PANIC, abort).
     * Replacing the descriptor with an eventfd that never fires closes
     * the listening socket instead: the kernel drops it from every epoll
     * set and refuses new connections, and the workers, which still think
     * it registered, never see an event on the new file. The daemon
     * closes the eventfd at stop. */
    int dummy = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (dummy < 0)
        return;
    if (dup2(dummy, s->listen_fd) >= 0) {
        (void)fcntl(s->listen_fd, F_SETFD, FD_CLOEXEC);
        s->quiesced = true;
    }
    close(dummy);
}

int http_server_inflight(const struct http_server *s)
{
    return metrics_inflight(s->metrics);
}

void http_server_free(struct http_server *s)
{
    if (!s)
        return;
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    metrics_free(s->metrics);
    cidrset_free(s->trusted);
    router_free(s->router);
    free(s->templates);
    free(s->allowed);
    free(s);
}

void http_server_set_metrics_extra(struct http_server *s, http_metrics_extra_fn fn, void *ctx)
{
    s->extra = fn;
    s->extra_ctx = ctx;
}

void http_server_metrics(struct http_server *s, struct buf *out)
{
    metrics_render(s->metrics, out);
    if (s->extra)
        s->extra(out, s->extra_ctx);
}

/* ---- offload ---- */

static void offload_job(void *arg, bool expired)
{
    struct http_req *r = arg;
    if (expired) {
        http_reply_header(r, "Retry-After", "1");
        http_reply_error(r, 503, "service_busy", "Service busy.");
    } else {
        r->offload_work(r);
        while (r->next_q && !r->replied) {
            struct workq *q = r->next_q;
            r->next_q = NULL;
            r->offload_work = r->next_work;
            if (workq_submit(q, offload_job, r, 0) == RC_OK)
                return; /* still suspended; that job resumes */
            r->offload_work(r);
        }
        r->next_q = NULL;
        if (!r->replied) {
            r->handler_failed = true;
            http_reply_error(r, 500, "internal_server_error", "offloaded work did not reply");
        }
    }
    MHD_resume_connection(r->conn);
}

void http_req_offload_next(struct http_req *r, struct workq *q, http_handler_fn work)
{
    r->next_q = q;
    r->next_work = work;
}

void http_req_offload(struct http_req *r, struct workq *q, http_handler_fn work,
                      int64_t queue_timeout_ms)
{
    r->offload_work = work;
    r->offloaded = true;
    MHD_suspend_connection(r->conn);
    int64_t deadline = time_mono_us() + queue_timeout_ms * 1000;
    if (workq_submit(q, offload_job, r, deadline) != RC_OK) {
        /* Queue full: answer busy at once; the resume makes libmicrohttpd
         * call the access handler again, which queues the response. */
        http_reply_header(r, "Retry-After", "1");
        http_reply_error(r, 503, "service_busy", "Service busy.");
        MHD_resume_connection(r->conn);
    }
}
