/* Account lifecycle services: signup and email verification (api-core
 * §6.2, api-flows §1.2–§1.4). No HTTP types: callers pass the request
 * metadata they have. Blocking (password hashing, RSA signing, database):
 * call from a worker, never from an event loop. Thread-safe. */
#ifndef AUTHD_SVC_ACCOUNTS_H
#define AUTHD_SVC_ACCOUNTS_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "db/db.h"
#include "kv/kv.h"
#include "util/rc.h"

struct keys;
struct mailer;
struct password_ctx;

struct accounts_deps {
    const struct config *cfg;
    struct db *db;
    struct kv *kv;
    struct keys *keys;
    struct mailer *mailer;
    const struct password_ctx *pw;
};

/* Who asked: for audit rows. Strings borrowed. */
struct req_meta {
    const char *correlation_id;
    const char *client_ip; /* canonical or "unknown" */
    const char *user_agent;
};

/* Signup with a normalised email and a policy-checked password. Answers the
 * same (RC_OK) whether the account was created or the email was taken;
 * anything else is an infrastructure failure. */
rc_t accounts_signup(const struct accounts_deps *d, const struct req_meta *m, const char *email,
                     const char *password) WUR;

/* GET /auth/verify-email: RC_OK verified; RC_INVALID for every token
 * problem (400 invalid_verify_token). */
rc_t accounts_verify_email(const struct accounts_deps *d, const struct req_meta *m,
                           const char *token) WUR;

/* POST /auth/verify-email/resend for an authenticated user (api-flows
 * §1.4): RC_NOT_FOUND no such user (401 invalid_token), RC_CONFLICT already
 * verified (400 already_verified), RC_LIMIT with *out_retry_after_s,
 * RC_UNAVAILABLE when the KV store is down. */
rc_t accounts_resend(const struct accounts_deps *d, const struct req_meta *m, const char *user_id,
                     int64_t *out_retry_after_s) WUR;

/* POST /auth/verify-email/resend/request. RC_OK always for a well-formed
 * request (no enumeration); RC_LIMIT with *out_retry_after_s when the
 * per-email limit is exceeded; RC_UNAVAILABLE when the KV store is down. */
rc_t accounts_resend_request(const struct accounts_deps *d, const struct req_meta *m,
                             const char *email, int64_t *out_retry_after_s) WUR;

#endif
