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
#include <stdint.h>

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

size_t api_self_routes(const struct http_route **out);    /* selfservice.c */
size_t api_apikeys_routes(const struct http_route **out); /* apikeys.c */
size_t api_clients_routes(const struct http_route **out); /* clients.c */

/* POST /auth/token with a form body: the client-credentials grant
 * (api-core §6.4 A; clients.c). Always replies. */
void api_token_client_credentials(struct http_req *r);

/* The admin principal (api-admin §2.1; api-core §10.1; decision R1),
 * resolved by api_admin_auth — the server's admin_auth hook for every
 * ROUTE_ADMIN route (auth.c). Lives in the request arena. */
#define API_ADMIN_BOOTSTRAP_SUB "local_admin_bootstrap"
struct api_admin {
    char sub[40];         /* user id, or API_ADMIN_BOOTSTRAP_SUB */
    const char *actor_id; /* audit actor: sub for users, NULL for the bootstrap key */
    bool bootstrap;       /* X-Admin-API-Key (development only) */
    bool open;            /* /metrics in development: no principal needed */
    char session_id[37];  /* the token's session ("" for bootstrap/open) */
    int64_t auth_time;    /* -1 when the claim is absent or not an integer */
    bool email_otp_enabled;
};
bool api_admin_auth(struct http_req *r);
const struct api_admin *api_admin_of(struct http_req *r); /* NULL outside ROUTE_ADMIN */

/* Input helpers (params.c). Each sends the 422 itself and returns false;
 * absent (or null where API_NULLABLE) members leave *present false / *out
 * NULL. String lengths are code points of the value as sent. */
enum { API_REQUIRED = 1u << 0, API_NULLABLE = 1u << 1 };
#define API_PAGE_DEFAULT 50
#define API_PAGE_MAX 200
bool api_json_string(struct http_req *r, const char *name, unsigned opts, size_t min_cp,
                     size_t max_cp, const char **out);
bool api_json_int(struct http_req *r, const char *name, unsigned opts, int64_t min, int64_t max,
                  bool *present, int64_t *out);
bool api_json_bool(struct http_req *r, const char *name, unsigned opts, bool *present, bool *out);
/* RFC 3339 date-time ('T' or space; 'Z', ±hh:mm or none = UTC) → Unix µs. */
bool api_json_datetime(struct http_req *r, const char *name, unsigned opts, bool *present,
                       int64_t *out_us);
/* Query boolean of api-admin §1.1 (true/t/yes/y/on/1, false/…, any case). */
bool api_query_bool(struct http_req *r, const char *name, bool *present, bool *out);
/* Query UUID in any accepted form → canonical; absent → out[0] == '\0'. */
bool api_query_uuid(struct http_req *r, const char *name, char out[37]);
/* limit (1..200, default 50) and the raw cursor (NULL when absent; the
 * caller decodes it and answers 422 when it cannot). */
bool api_query_page(struct http_req *r, int *limit, const char **cursor);
bool api_path_uuid(struct http_req *r, const char *name, char out[37]);
/* api-admin §1.1: an optional body (DELETE) may be absent or empty; when
 * present it must be a JSON object (members ignored). Needs ROUTE_RAW_BODY. */
bool api_optional_json_object(struct http_req *r);

/* Stage-3 hook (api-core §11): the rate limiter. True when it answered. */
bool api_ratelimit_hook(struct http_req *r); /* ratelimit_hook.c */

#endif
