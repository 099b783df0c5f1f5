/* Password login, refresh rotation, logout and session validation
 * (api-core §6.3–§6.7, §7, §12). No HTTP types: results are an outcome
 * enum the API layer maps to the contract's status/code/detail. Login and
 * refresh block (password hashing, RSA signing, database): call them from a
 * worker. Validate is built for the event loop: one JWT verify plus KV
 * reads, no database access except a once-a-minute last_seen_at touch.
 * Thread-safe. */
#ifndef AUTHD_SVC_AUTH_H
#define AUTHD_SVC_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "svc/accounts.h"
#include "store/users.h"
#include "svc/lockout.h"
#include "util/arena.h"

struct crypto_keyed_hasher;

struct auth_deps {
    struct accounts_deps a;
    const struct crypto_keyed_hasher *refresh_hasher; /* data-model §11.1 */
};

enum auth_outcome {
    AUTH_OK = 0,
    AUTH_BAD_CREDENTIALS,    /* 401 invalid_credentials "Invalid email or password." */
    AUTH_LOCKED,             /* 401 account_locked + Retry-After */
    AUTH_EMAIL_NOT_VERIFIED, /* 400 email_not_verified */
    AUTH_OTP_UNAVAILABLE,    /* 503: OTP login arrives with the OTP issue; no tokens */
    AUTH_SESSION_EXPIRED,    /* 401 session_expired */
    AUTH_INVALID_TOKEN,      /* 401 invalid_token (detail in token_error) */
    AUTH_STORE_DOWN,         /* 503 session_expired "Session backend unavailable." */
    AUTH_LOCK_STORE_DOWN,    /* 503 session_expired "Authentication backend unavailable." */
    AUTH_FAILED,             /* 500 */
};

struct auth_tokens {
    char *access_token;  /* owned (auth_tokens_free) */
    char *refresh_token; /* owned */
};
void auth_tokens_free(struct auth_tokens *t);

struct auth_result {
    enum auth_outcome outcome;
    int64_t retry_after_s;  /* AUTH_LOCKED */
    const char *token_code; /* AUTH_INVALID_TOKEN: "invalid_token" | "token_expired" */
    const char *token_detail;
    struct auth_tokens tokens; /* AUTH_OK of login/refresh */
};

/* §6.3 steps 3–10 for a normalised email, a policy-checked password and an
 * optional trimmed audience (NULL or "" adds nothing). */
void auth_login(const struct auth_deps *d, const struct req_meta *m, const char *email,
                const char *password, const char *audience, struct auth_result *out);

/* auth_login in two halves, so the password-hashing pool only hashes:
 * auth_login_verify (user lookup, lockout, password check, rehash) and
 * auth_login_finish (tokens, session, state, audit), which can run on
 * another thread. verify returns false with *out filled in (any outcome
 * but AUTH_OK); true means the password checked out and *ok must be
 * passed to auth_login_finish, which releases it. */
struct auth_login_ok {
    struct arena *arena; /* owns u's strings */
    struct user u;
    struct lockout_flags flags;
};
bool auth_login_verify(const struct auth_deps *d, const struct req_meta *m, const char *email,
                       const char *password, struct auth_result *out, struct auth_login_ok *ok);
void auth_login_finish(const struct auth_deps *d, const struct req_meta *m,
                       struct auth_login_ok *ok, const char *audience, struct auth_result *out);
/* §7.2: rotates the session of an opaque refresh token. */
void auth_refresh(const struct auth_deps *d, const struct req_meta *m, const char *refresh_token,
                  struct auth_result *out);
/* §6.5 steps 2–4 (both tokens present). */
void auth_logout(const struct auth_deps *d, const struct req_meta *m, const char *access_token,
                 const char *refresh_token, struct auth_result *out);
/* §6.7 / §7.4 for a bearer access token. On AUTH_OK *out_claims (may be
 * NULL) receives the verified claims and out_session_id the session. */
enum auth_outcome auth_validate(const struct auth_deps *d, const char *access_token,
                                json_t **out_claims, char out_session_id[37]);
/* api-admin §2.1 step 5, decision R1: whether the user's current row
 * exists, is active, is not deleted and has role admin (one indexed read).
 * RC_OK with *out set; database errors otherwise (*out false). */
rc_t auth_user_is_admin(const struct auth_deps *d, const char *user_id, bool *out) WUR;

#endif
