/* Signup and email verification (see accounts.h).
 *
 * Enumeration: a signup for a taken email and a resend request for an
 * unknown or verified email answer exactly like the real thing, and every
 * path spends one password verification ("dummy work", api-flows §0.2) —
 * the real resend path too, so the only slow step is the same everywhere.
 *
 * Outbox: the user row, the token digest and the email are one
 * transaction; the mailer is kicked after commit. Audit rows are written
 * after the commit in their own transaction (api-admin §9.2). */
#include "svc/accounts.h"
#include "crypto/enc.h"
#include "crypto/jwt.h"
#include "crypto/password.h"
#include "store/users.h"
#include "svc/audit.h"
#include "svc/keys.h"
#include "svc/mailer.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESEND_WINDOW_MS (3600LL * 1000)
#define RESEND_LIMIT 3

static json_t *audit_meta(const char *k1, json_t *v1, const char *k2, json_t *v2)
{
    json_t *o = json_object();
    if (k1)
        json_object_set_new(o, k1, v1);
    if (k2)
        json_object_set_new(o, k2, v2);
    return o;
}

static struct audit_event event(const struct req_meta *m, const char *type, const char *user_id,
                                bool success, const char *failure, json_t *meta)
{
    return (struct audit_event){
        .event_type = type,
        .actor_id = user_id,
        .actor_type = AUDIT_ACTOR_USER,
        .target_id = user_id,
        .target_type = user_id ? "user" : NULL,
        .ip_address = m->client_ip,
        .user_agent = m->user_agent,
        .correlation_id = m->correlation_id,
        .success = success,
        .failure_reason = failure,
        .metadata = meta,
    };
}

/* Mints an email-verify token (api-flows §1.2) and its SHA-256 digest. */
static rc_t mint_verify_token(const struct accounts_deps *d, const char *user_id, int64_t now_us,
                              char **out_token, char digest[65], int64_t *out_expires_us)
{
    int64_t now_s = now_us / 1000000, ttl = d->cfg->email.email_verify_ttl_seconds;
    char jti[UUID_STR_LEN + 1];
    uuid_v4(jti);
    json_t *claims = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s}", "jti", jti, "iat",
                               (json_int_t)now_s, "exp", (json_int_t)(now_s + ttl), "sub", user_id,
                               "type", "email_verify", "aud", d->cfg->app.service);
    rc_t rc = keys_sign(d->keys, claims, out_token);
    json_decref(claims);
    if (rc)
        return rc;
    crypto_sha256_hex(*out_token, strlen(*out_token), digest);
    *out_expires_us = now_us + ttl * 1000000;
    return RC_OK;
}

/* {EMAIL__PUBLIC_BASE_URL without trailing "/"}/auth/verify-email?token=… */
static char *verify_link(const struct config *cfg, const char *token)
{
    const char *base = cfg->email.public_base_url;
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    size_t len = n + strlen(token) + 32;
    char *link = xmalloc(len);
    snprintf(link, len, "%.*s/auth/verify-email?token=%s", (int)n, base, token);
    return link;
}

static rc_t queue_verification(const struct accounts_deps *d, struct db_conn *c, const char *email,
                               const char *token, int64_t expires_us)
{
    char *link = verify_link(d->cfg, token);
    struct mail_vars vars = {.link = link};
    char mail_id[UUID_STR_LEN + 1];
    rc_t rc = mailer_enqueue(d->mailer, c, MAIL_VERIFY_EMAIL, email, &vars, expires_us, mail_id);
    xfree_secret_str(link);
    return rc;
}

/* Payload of a structurally valid email_verify token whose signature cannot
 * be checked any more; NULL unless type and exp pass. */
static json_t *unverified_claims(const char *token, int64_t now_s)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || dot2 == dot1 + 1 || strchr(dot2 + 1, '.') || !dot2[1])
        return NULL;
    size_t n = (size_t)(dot2 - dot1 - 1), got = 0;
    unsigned char *buf = xmalloc(CRYPTO_B64_DECODED_MAX(n) + 1);
    json_t *claims = NULL;
    if (crypto_b64_decode(CRYPTO_B64_URL, dot1 + 1, n, buf, CRYPTO_B64_DECODED_MAX(n) + 1, &got) ==
        RC_OK)
        claims = json_loadb((const char *)buf, got, JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    json_t *type = json_object_get(claims, "type"), *exp = json_object_get(claims, "exp");
    if (!json_is_object(claims) || !json_is_string(type) ||
        strcmp(json_string_value(type), "email_verify") != 0 || !json_is_number(exp) ||
        json_number_value(exp) < (double)now_s) {
        json_decref(claims);
        return NULL;
    }
    return claims;
}

static void dummy_work(const struct accounts_deps *d, const char *pw)
{
    password_dummy_verify(d->pw, pw, strlen(pw));
}

rc_t accounts_signup(const struct accounts_deps *d, const struct req_meta *m, const char *email,
                     const char *password)
{
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    char *hash = NULL, *token = NULL;
    rc_t rc = db_acquire(d->db, DB_READ, &c);
    if (rc)
        goto out;
    struct user existing;
    rc = users_find_by_email(c, a, email, &existing);
    db_release(c);
    c = NULL;
    if (rc == RC_OK) {
        dummy_work(d, password);
        rc = RC_OK;
        goto audit_duplicate;
    }
    if (rc != RC_NOT_FOUND)
        goto out;

    /* Hash before taking the writer: the SQLite writer is exclusive. */
    rc = password_hash(d->pw, password, strlen(password), &hash);
    if (rc)
        goto out;
    char id[UUID_STR_LEN + 1], digest[65];
    uuid_v4(id);
    int64_t now = time_now_us(), expires = 0;
    rc = mint_verify_token(d, id, now, &token, digest, &expires);
    if (rc)
        goto out;

    rc = db_acquire(d->db, DB_WRITE, &c);
    if (rc)
        goto out;
    rc = db_begin(c);
    if (rc)
        goto out;
    struct user_new u = {.id = id,
                         .email = email,
                         .password_hash = hash,
                         .role = "user",
                         .email_verified = false,
                         .verify_hash = digest,
                         .verify_expires_us = expires,
                         .now_us = now};
    rc = users_insert(c, &u);
    if (rc == RC_CONFLICT) { /* lost a race with a concurrent signup */
        db_rollback(c);
        rc = RC_OK;
        goto audit_duplicate;
    }
    if (!rc)
        rc = queue_verification(d, c, email, token, expires);
    if (!rc)
        rc = db_commit(c);
    else
        db_rollback(c);
    db_release(c);
    c = NULL;
    if (!rc) {
        mailer_kick(d->mailer);
        struct audit_event ev =
            event(m, "user.signup.accepted", id, true, NULL,
                  audit_meta("provider", json_string("password"), "created", json_true()));
        audit_write_detached(d->db, &ev);
        json_decref(ev.metadata);
        ev = event(m, "user.created", id, true, NULL,
                   audit_meta("provider", json_string("password"), NULL, NULL));
        audit_write_detached(d->db, &ev);
        json_decref(ev.metadata);
    }
    goto out;

audit_duplicate : {
    struct audit_event ev =
        event(m, "user.signup.accepted", NULL, true, NULL,
              audit_meta("provider", json_string("password"), "created", json_false()));
    audit_write_detached(d->db, &ev);
    json_decref(ev.metadata);
}
out:
    db_release(c);
    xfree_secret_str(hash);
    xfree_secret_str(token);
    arena_free(a);
    return rc;
}

rc_t accounts_verify_email(const struct accounts_deps *d, const struct req_meta *m,
                           const char *token)
{
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    json_t *claims = NULL;
    const char *failure = "invalid_verify_token";
    char user_id[UUID_STR_LEN + 1] = "";
    int64_t now = time_now_us();
    struct jwt_error err = {0};
    rc_t rc =
        keys_verify(d->keys, token, strlen(token), "email_verify", now / 1000000, &claims, &err);
    if (rc == RC_INVALID && err.reason == JWT_UNKNOWN_KID) {
        /* The key was retired by a rotation: the stored digest decides
         * (api-flows §1.3) after the structure, type and expiry checks. */
        claims = unverified_claims(token, now / 1000000);
        rc = claims ? RC_OK : RC_INVALID;
    }
    if (rc == RC_UNAVAILABLE)
        goto out;
    if (rc) {
        rc = RC_INVALID;
        goto audit;
    }
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    char digest[65];
    crypto_sha256_hex(token, strlen(token), digest);
    rc = db_acquire(d->db, DB_WRITE, &c);
    if (rc)
        goto out;
    rc = db_begin(c);
    if (rc)
        goto out;
    struct user u;
    rc = users_find_by_verify_hash_for_update(c, a, digest, &u);
    if (rc == RC_OK && (u.verify_expires_us <= now || !sub || strcmp(sub, u.id) != 0))
        rc = RC_NOT_FOUND;
    if (rc == RC_OK) {
        snprintf(user_id, sizeof user_id, "%s", u.id);
        rc = users_mark_verified(c, u.id, now);
        if (!rc)
            rc = db_commit(c);
        else
            db_rollback(c);
        db_release(c);
        c = NULL;
        if (!rc) {
            struct audit_event ev = event(m, "user.email.verified", user_id, true, NULL, NULL);
            audit_write_detached(d->db, &ev);
        }
        goto out;
    }
    db_rollback(c);
    if (rc == RC_NOT_FOUND)
        rc = RC_INVALID;
    else
        goto out;
audit:
    /* Never hold a connection across a detached audit write: on SQLite the
     * writer is one connection and the audit write needs it. */
    db_release(c);
    c = NULL;
    {
        struct audit_event ev =
            event(m, "user.email.verified", user_id[0] ? user_id : NULL, false, failure,
                  audit_meta("operation", json_string("verify"), NULL, NULL));
        audit_write_detached(d->db, &ev);
        json_decref(ev.metadata);
    }
out:
    db_release(c);
    json_decref(claims);
    arena_free(a);
    return rc;
}

/* Counts one resend against key; RC_LIMIT (with the remaining window) past
 * RESEND_LIMIT in the hour, RC_UNAVAILABLE when the store is down. */
static rc_t resend_budget(const struct accounts_deps *d, const char *key, int64_t *out_retry_s)
{
    int64_t count = 0;
    if (kv_incr(d->kv, key, RESEND_WINDOW_MS, KV_TTL_ON_CREATE, &count) != RC_OK)
        return RC_UNAVAILABLE;
    if (count <= RESEND_LIMIT)
        return RC_OK;
    int64_t ttl_ms = 0;
    if (kv_ttl(d->kv, key, &ttl_ms) != RC_OK || ttl_ms <= 0)
        ttl_ms = RESEND_WINDOW_MS;
    *out_retry_s = (ttl_ms + 999) / 1000;
    return RC_LIMIT;
}

/* New token + email for u, one transaction; kicks the mailer and audits. */
static rc_t send_new_link(const struct accounts_deps *d, const struct req_meta *m,
                          const struct user *u, const char *operation)
{
    struct db_conn *c = NULL;
    char *token = NULL, digest[65];
    int64_t now = time_now_us(), expires = 0;
    rc_t rc = mint_verify_token(d, u->id, now, &token, digest, &expires);
    if (!rc)
        rc = db_acquire(d->db, DB_WRITE, &c);
    if (!rc)
        rc = db_begin(c);
    if (!rc)
        rc = users_set_verify_token(c, u->id, digest, expires, now);
    if (!rc)
        rc = queue_verification(d, c, u->email, token, expires);
    if (!rc)
        rc = db_commit(c);
    else if (c)
        db_rollback(c);
    db_release(c);
    xfree_secret_str(token);
    if (rc)
        return rc;
    mailer_kick(d->mailer);
    struct audit_event ev = event(m, "user.email.verification_resent", u->id, true, NULL,
                                  audit_meta("operation", json_string(operation), NULL, NULL));
    audit_write_detached(d->db, &ev);
    json_decref(ev.metadata);
    return RC_OK;
}

rc_t accounts_resend(const struct accounts_deps *d, const struct req_meta *m, const char *user_id,
                     int64_t *out_retry_after_s)
{
    *out_retry_after_s = 0;
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    struct user u;
    rc_t rc = db_acquire(d->db, DB_READ, &c);
    if (!rc)
        rc = users_get(c, a, user_id, &u);
    db_release(c);
    if (rc == RC_OK && u.deleted)
        rc = RC_NOT_FOUND;
    if (rc == RC_OK && u.email_verified)
        rc = RC_CONFLICT;
    if (rc == RC_OK) {
        char key[128];
        snprintf(key, sizeof key, "email_verify_resend:user:%s", u.id);
        rc = resend_budget(d, key, out_retry_after_s);
    }
    if (rc == RC_OK)
        rc = send_new_link(d, m, &u, "resend");
    arena_free(a);
    return rc;
}

rc_t accounts_resend_request(const struct accounts_deps *d, const struct req_meta *m,
                             const char *email, int64_t *out_retry_after_s)
{
    *out_retry_after_s = 0;
    char ehash[65], key[128];
    crypto_sha256_hex(email, strlen(email), ehash);
    snprintf(key, sizeof key, "email_verify_resend:email:%s", ehash);
    rc_t rc = resend_budget(d, key, out_retry_after_s);
    if (rc)
        return rc;
    dummy_work(d, email); /* on every path: see the file comment */
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    struct user u;
    rc = db_acquire(d->db, DB_READ, &c);
    if (!rc)
        rc = users_find_by_email(c, a, email, &u);
    db_release(c);
    if (rc == RC_OK && !u.deleted && u.is_active && !u.email_verified)
        rc = send_new_link(d, m, &u, "resend_request");
    else if (rc == RC_OK || rc == RC_NOT_FOUND)
        rc = RC_OK; /* unknown or already verified: same answer, no email */
    arena_free(a);
    return rc;
}
