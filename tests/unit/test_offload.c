/* Offloaded work chains (src/http/server.c: http_req_offload,
 * http_req_offload_next) over a real server and real sockets: the second
 * stage runs on its own queue, runs inline on the first stage's worker when
 * that queue is full (the login path's fallback), and a chain whose last
 * stage does not reply answers 500 instead of hanging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"
#include "util/log.h"

static struct workq *g_first_q, *g_second_q;

static void second(struct http_req *r)
{
    const pthread_t *first_thread = http_req_ctx(r);
    const char *where = pthread_equal(*first_thread, pthread_self()) ? "inline" : "queued";
    http_reply_raw(r, 200, "text/plain", where, strlen(where));
}

static void second_silent(struct http_req *r)
{
    (void)r;
}

static void first(struct http_req *r)
{
    pthread_t *t = arena_alloc(http_req_arena(r), sizeof *t);
    *t = pthread_self();
    http_req_set_ctx(r, t);
    bool silent = strcmp(http_req_path(r), "/silent") == 0;
    http_req_offload_next(r, g_second_q, silent ? second_silent : second);
}

static void chain(struct http_req *r)
{
    http_req_offload(r, g_first_q, first, 5000);
}

/* ---- a job that holds the second queue's only worker ---- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static bool g_holding, g_release;

static void hold(void *arg, bool expired)
{
    (void)arg;
    (void)expired;
    pthread_mutex_lock(&g_mu);
    g_holding = true;
    pthread_cond_broadcast(&g_cv);
    while (!g_release)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

static void noop(void *arg, bool expired)
{
    (void)arg;
    (void)expired;
}

/* ---- client ---- */

/* GET path; returns the status and copies the body into body. */
static int get(int port, const char *path, char *body, size_t body_len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    char resp[8192];
    size_t got = 0;
    ssize_t k;
    while (got < sizeof resp - 1 && (k = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
        got += (size_t)k;
    close(fd);
    resp[got] = '\0';
    int status = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.1 %d", &status), 1);
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, body_len, "%s", b ? b + 4 : "");
    return status;
}

static void test_offload_chain(void **st)
{
    (void)st;
    g_first_q = workq_new("first", 1, 8);
    g_second_q = workq_new("second", 1, 1);
    static const struct http_route routes[] = {
        {HTTP_GET, "/chain", chain, 0, NULL},
        {HTTP_GET, "/silent", chain, 0, NULL},
    };
    struct http_opts o = {.host = "127.0.0.1",
                          .threads = 2,
                          .connection_timeout_s = 10,
                          .max_body_bytes = 1024,
                          .max_header_bytes = 8192,
                          .development = true};
    struct http_server *s = http_server_new(&o, routes, 2);
    assert_non_null(s);
    assert_int_equal(http_server_start(s), RC_OK);
    int port = http_server_port(s);
    char body[1024];

    /* Room on the second queue: the second stage runs there. */
    assert_int_equal(get(port, "/chain", body, sizeof body), 200);
    assert_string_equal(body, "queued");

    /* Second queue full (its worker held, one job waiting): inline. */
    assert_int_equal(workq_submit(g_second_q, hold, NULL, 0), RC_OK);
    pthread_mutex_lock(&g_mu);
    while (!g_holding)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    assert_int_equal(workq_submit(g_second_q, noop, NULL, 0), RC_OK);
    assert_int_equal(workq_submit(g_second_q, noop, NULL, 0), RC_BUSY);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(get(port, "/chain", body, sizeof body), 200);
        assert_string_equal(body, "inline");
    }
    /* A last stage that does not reply: 500, not a hung connection. */
    assert_int_equal(get(port, "/silent", body, sizeof body), 500);
    assert_non_null(strstr(body, "offloaded work did not reply"));

    pthread_mutex_lock(&g_mu);
    g_release = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    for (int queued = 1, running = 1; queued || running;) {
        usleep(1000); /* the held job and the waiting one drain */
        workq_stats(g_second_q, &queued, &running);
    }
    assert_int_equal(get(port, "/chain", body, sizeof body), 200);
    assert_string_equal(body, "queued");
    assert_int_equal(get(port, "/silent", body, sizeof body), 500);

    http_server_free(s);
    workq_free(g_second_q);
    workq_free(g_first_q);
}

int main(void)
{
    log_init(LOG_CRITICAL, "test", "test");
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offload_chain),
    };
    return cmocka_run_group_tests_name("offload", tests, NULL, NULL);
}
