/* The route table of authd and the handlers behind it (one file per
 * endpoint family). Handlers are flat: parse → validate → call a service →
 * render; they never touch SQL or libmicrohttpd.
 *
 * Each family file exports `size_t api_<family>_routes(const struct
 * http_route **out)`; routes.c concatenates the families once. */
#ifndef AUTHD_API_API_H
#define AUTHD_API_API_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"

/* The full table; test-hook routes are included only when enabled. Built
 * once, lives for the process. */
const struct http_route *api_routes(bool test_hooks, size_t *out_n);

size_t api_health_routes(const struct http_route **out);   /* health.c, metrics.c */
size_t api_jwks_routes(const struct http_route **out);     /* jwks.c */
size_t api_accounts_routes(const struct http_route **out); /* accounts.c */
size_t api_auth_routes(const struct http_route **out);     /* auth.c */
size_t api_test_routes(const struct http_route **out);     /* testhooks.c */

/* health.c */
void api_health_live(struct http_req *r);
void api_health_ready(struct http_req *r);
/* metrics.c */
void api_metrics(struct http_req *r);
/* testhooks.c (APP__TEST_HOOKS only) */
void api_test_echo(struct http_req *r);
void api_test_sleep(struct http_req *r);

/* Caller authentication of the self-service routes (api-core §9): bearer
 * only, verified like /auth/validate, sub must be a UUID. On failure the
 * error is already sent and false returned. */
bool api_authenticate_bearer(struct http_req *r, char out_user_id[37], char out_session_id[37]);

/* Caller authentication of the user-authenticated endpoints (api-flows
 * §0.3): transport conflict, bearer else access cookie (with CSRF on unsafe
 * methods), then as api_authenticate_bearer. */
bool api_authenticate_user(struct http_req *r, char out_user_id[37], char out_session_id[37]);

size_t api_self_routes(const struct http_route **out); /* selfservice.c */

/* Stage-3 hook (api-core §11): the rate limiter. True when it answered. */
bool api_ratelimit_hook(struct http_req *r); /* ratelimit_hook.c */

#endif
