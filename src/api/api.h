/* The route table of authd and the handlers behind it (one file per
 * endpoint family). Handlers are flat: parse → validate → call a service →
 * render; they never touch SQL or libmicrohttpd. */
#ifndef AUTHD_API_API_H
#define AUTHD_API_API_H

#include <stddef.h>

#include "http/http.h"

/* The full table; test-hook routes are included only when enabled. The
 * returned table is static and lives for the process. */
const struct http_route *api_routes(bool test_hooks, size_t *out_n);

/* health.c */
void api_health_live(struct http_req *r);
void api_health_ready(struct http_req *r);
/* metrics.c */
void api_metrics(struct http_req *r);
/* testhooks.c (APP__TEST_HOOKS only) */
void api_test_echo(struct http_req *r);
void api_test_sleep(struct http_req *r);

#endif
