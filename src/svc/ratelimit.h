/* Request rate limiting (api-core §11, data-model §10.5, spec R2) on the KV
 * store, so a limit holds across instances when Redis is configured.
 *
 * One call per request: ratelimit_check picks the path's limit (no store
 * access at all for unlimited paths), derives the caller's identity (§11.2)
 * and makes exactly one kv_window_hit round trip on the bucket
 * `rate_limit:<raw path>:<identity>` (sliding log over 60 s; rejected
 * requests are not recorded). On a store failure it fails closed on the
 * sensitive paths of §11.4 and open elsewhere, and hands the failure back
 * so the caller logs `rate_limit_backend_unavailable`.
 *
 * Ownership: struct ratelimit is created once by `authd serve` (owner:
 * main, via struct app); it borrows the kv store, which must outlive it,
 * and copies what it needs from the config. Every input of
 * ratelimit_check is borrowed for the call; keys (svc/keys.h) is passed
 * per call because it is built independently of the limiter.
 * Thread-safety: immutable after ratelimit_new; any number of threads may
 * call every function at once. No HTTP types (the api hook adapts). */
#ifndef AUTHD_SVC_RATELIMIT_H
#define AUTHD_SVC_RATELIMIT_H

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "kv/kv.h"
#include "util/rc.h"

#define RATELIMIT_WINDOW_MS 60000
/* Longest identity: "admin_bootstrap:" + 64 hex, "user:"/"client:" + at
 * most RATELIMIT_ID_VALUE_MAX bytes, "ip:" + an IPv6 text. */
#define RATELIMIT_ID_VALUE_MAX 256
#define RATELIMIT_IDENTITY_MAX 280
/* Paths longer than this are keyed by their SHA-256 hex instead of the raw
 * text (`rate_limit:sha256:<hex>:<identity>`), so every key stays within
 * KV_KEY_MAX whatever URL length libmicrohttpd accepts. */
#define RATELIMIT_PATH_KEY_MAX (32 * 1024)

struct ratelimit;
struct keys;

/* The request facts the identity rules look at (api-core §11.2). Every
 * member is borrowed and may be NULL (absent); the api hook fills them. */
struct ratelimit_caller {
    const char *client_ip;      /* api-core §3.4 text; NULL or "unknown" → ip:unknown */
    const char *access_token;   /* bearer token, else the access cookie (browser sessions on) */
    const char *refresh_cookie; /* refresh cookie (browser sessions on); /auth/token only */
    const char *admin_key;      /* raw X-Admin-API-Key header */
    const char *content_type;   /* Content-Type; /auth/token only */
    const char *body;           /* raw body, body_len bytes; /auth/token only */
    size_t body_len;
    /* The body already parsed as JSON by the caller (duplicate keys refused),
     * used instead of parsing body again; NULL: body is parsed here. */
    json_t *body_json;
};

enum ratelimit_verdict {
    RATELIMIT_PASS,       /* go on: under the limit (recorded), unlimited, or failed open */
    RATELIMIT_LIMITED,    /* 429 rate_limited + Retry-After: retry_after_s */
    RATELIMIT_UNAVAILABLE /* 503 rate_limit_unavailable (store down on a fail-closed path) */
};

struct ratelimit_result {
    enum ratelimit_verdict verdict;
    int64_t retry_after_s; /* LIMITED: max(1, ceil(ms / 1000)); else 0 */
    bool keys_unavailable; /* a token could not be checked: key set not loadable (log it) */
};

/* Reads the four RATE_LIMIT__* limits and the development-only
 * ADMIN_API_KEY from cfg. Cannot fail today (RC_OK); never NULL on RC_OK. */
rc_t ratelimit_new(struct kv *kv, const struct config *cfg, struct ratelimit **out) WUR;
void ratelimit_free(struct ratelimit *rl); /* NULL ok */

/* Requests per 60 s allowed on this exact raw path; 0 = never limited
 * (health, /metrics, and the service endpoints while
 * RATE_LIMIT__SERVICE_REQUESTS_PER_MINUTE is 0). No store access.
 * ratelimit_check enforces a limit above KV_WINDOW_LIMIT_MAX (100 000) as
 * that maximum (the largest log the store keeps). */
int ratelimit_limit(const struct ratelimit *rl, const char *path);

/* api-core §11.4: true when a store failure must answer 503 on this path
 * (/auth/login, /auth/token, /auth/otp/…, /auth/password/…,
 * /auth/verify-email…, /auth/reauth…). */
bool ratelimit_fail_closed(const char *path);

/* The identity of api-core §11.2 into out ("client:…", "user:…",
 * "admin_bootstrap:<hex>", "ip:…"). keys NULL → no token-derived
 * identities. now_s is the wall clock for token expiry. Never fails:
 * whatever does not verify falls through to the next rule, including a
 * token met while the verification key set cannot be loaded, which also
 * sets *out_keys_failed (may be NULL) so the caller can log
 * `rate_limit_verification_keys_refresh_failed`. Exported for tests;
 * ratelimit_check calls it. */
void ratelimit_identity(const struct ratelimit *rl, struct keys *keys, const char *path,
                        const struct ratelimit_caller *c, int64_t now_s,
                        char out[RATELIMIT_IDENTITY_MAX], bool *out_keys_failed);

/* The whole limiter step for one request at wall-clock now_ms. *out is
 * always set. Returns RC_OK, or the store error (normally RC_UNAVAILABLE)
 * after which *out already holds the fail-open (PASS) or fail-closed
 * (UNAVAILABLE) verdict: the caller only logs it. Unlimited paths return
 * RC_OK/PASS without touching the store or the caller's inputs. */
rc_t ratelimit_check(struct ratelimit *rl, struct keys *keys, const char *path,
                     const struct ratelimit_caller *c, int64_t now_ms,
                     struct ratelimit_result *out) WUR;

#endif
