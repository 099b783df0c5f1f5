/* The process-wide state of `authd serve`, built once by the entry layer
 * and handed to every handler through http_req_app. Owned by main; every
 * member is thread-safe or immutable after start-up. */
#ifndef AUTHD_APP_H
#define AUTHD_APP_H

#include "config/config.h"
#include "db/db.h"
#include "http/http.h"
#include "kv/kv.h"
#include "util/workq.h"

struct secrets;
struct keys;
struct mailer;
struct ratelimit;
struct password_ctx;
struct crypto_keyed_hasher;

struct app {
    const struct config *cfg;
    struct db *db;
    struct kv *kv;
    struct workq *blocking; /* off-event-loop work that is not hashing: token signing, tests */
    struct workq *pwhash;   /* password hashing: PASSWORD_HASH__WORKERS threads */
    struct http_server *http;
    struct secrets *secrets; /* svc/secrets.h */
    struct keys *keys;       /* svc/keys.h: signing keys, JWT sign/verify, JWKS */
    struct mailer *mailer;   /* svc/mailer.h: email outbox and delivery */
    struct ratelimit *rl;    /* svc/ratelimit.h: request rate limits */
    struct password_ctx *pw; /* crypto/password.h: Argon2id parameters, dummy hash */
    struct crypto_keyed_hasher *refresh_hasher; /* refresh-token verifier (data-model §11.1) */
};

#endif
