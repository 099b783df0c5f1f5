/* Login, refresh, logout, validate (see auth.h).
 *
 * State. The sessions row is the durable record; the KV store mirrors what
 * the hot path needs: `session:{sid}` (state JSON, TTL = refresh TTL),
 * `session_access:{jti}` (binding, TTL = access TTL), `blocklist:jti:{jti}`
 * (logout). Every revocation deletes the state first, then updates the row,
 * so a failure in between fails closed; validate therefore trusts the state
 * (present ⇔ the session is active) and never reads the row.
 *
 * Ordering with the SQLite writer: KV writes of the durable families go
 * through kv_entries (the writer). Login and refresh stage them into their
 * own transaction (kv_set_many_stage) and write the memory or Redis copies
 * after the commit; every other path writes them after its business
 * transaction has committed and released its connection. */
#include "svc/auth.h"
#include "crypto/enc.h"
#include "crypto/keyed.h"
#include "crypto/password.h"
#include "store/sessions.h"
#include "store/users.h"
#include "svc/audit.h"
#include "svc/keys.h"
#include "svc/lockout.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEEN_THROTTLE_MS (60LL * 1000)

void auth_tokens_free(struct auth_tokens *t)
{
    xfree_secret_str(t->access_token);
    xfree_secret_str(t->refresh_token);
    t->access_token = t->refresh_token = NULL;
}

static void audit_detached(const struct auth_deps *d, const struct req_meta *m, const char *type,
                           const char *actor, const char *target, const char *target_type, bool ok,
                           const char *failure, json_t *meta)
{
    struct audit_event ev = {
        .event_type = type,
        .actor_id = actor,
        .actor_type = AUDIT_ACTOR_USER,
        .target_id = target,
        .target_type = target_type,
        .ip_address = m ? m->client_ip : NULL,
        .user_agent = m ? m->user_agent : NULL,
        .correlation_id = m ? m->correlation_id : NULL,
        .success = ok,
        .failure_reason = failure,
        .metadata = meta,
    };
    audit_write_detached(d->a.db, &ev);
    json_decref(meta);
}

/* Audit events of one request, written together after the business commit
 * (one transaction instead of one per event). */
#define AUDIT_BATCH_MAX 4
struct audit_batch {
    struct audit_event ev[AUDIT_BATCH_MAX];
    int n;
};

static void batch_add(struct audit_batch *b, const struct req_meta *m, const char *type,
                      const char *actor, const char *target, const char *target_type, json_t *meta)
{
    if (b->n == AUDIT_BATCH_MAX) {
        json_decref(meta);
        return;
    }
    b->ev[b->n++] = (struct audit_event){
        .event_type = type,
        .actor_id = actor,
        .actor_type = AUDIT_ACTOR_USER,
        .target_id = target,
        .target_type = target_type,
        .ip_address = m->client_ip,
        .user_agent = m->user_agent,
        .correlation_id = m->correlation_id,
        .success = true,
        .metadata = meta,
    };
}

static void batch_write(const struct auth_deps *d, struct audit_batch *b)
{
    const struct audit_event *p[AUDIT_BATCH_MAX];
    for (int i = 0; i < b->n; i++)
        p[i] = &b->ev[i];
    audit_write_detached_many(d->a.db, p, b->n);
    for (int i = 0; i < b->n; i++)
        json_decref(b->ev[i].metadata);
    b->n = 0;
}

/* §5.3: SERVICE_AUD first, then the requested audience when it adds one. */
static json_t *audiences(const char *service, const char *requested)
{
    json_t *a = json_array();
    json_array_append_new(a, json_string(service));
    if (requested && *requested && strcmp(requested, service) != 0)
        json_array_append_new(a, json_string(requested));
    return a;
}

static json_t *render_aud(json_t *auds)
{
    return json_array_size(auds) == 1 ? json_incref(json_array_get(auds, 0)) : json_incref(auds);
}

struct issued {
    char access_jti[UUID_STR_LEN + 1];
    int64_t access_exp_s;
    char refresh_verifier[65];
};

/* Signs an access + refresh pair for user u (claims from the user row),
 * audiences and scopes from the session, auth_time from the session. */
static rc_t issue_pair(const struct auth_deps *d, const struct user *u, json_t *auds,
                       json_t *scopes, int64_t auth_time_s, int64_t now_s, struct auth_tokens *out,
                       struct issued *iss)
{
    const struct config *cfg = d->a.cfg;
    char rjti[UUID_STR_LEN + 1];
    uuid_v4(iss->access_jti);
    uuid_v4(rjti);
    iss->access_exp_s = now_s + cfg->jwt.access_token_ttl_seconds;
    json_t *access =
        json_pack("{s:s, s:I, s:I, s:s, s:s, s:o, s:s, s:s, s:b, s:b, s:I, s:O}", "jti",
                  iss->access_jti, "iat", (json_int_t)now_s, "exp", (json_int_t)iss->access_exp_s,
                  "sub", u->id, "type", "access", "aud", render_aud(auds), "role", u->role, "email",
                  u->email, "email_verified", u->email_verified, "email_otp_enabled",
                  u->email_otp_enabled, "auth_time", (json_int_t)auth_time_s, "scopes", scopes);
    json_t *refresh =
        json_pack("{s:s, s:I, s:I, s:s, s:s, s:s}", "jti", rjti, "iat", (json_int_t)now_s, "exp",
                  (json_int_t)(now_s + cfg->jwt.refresh_token_ttl_seconds), "sub", u->id, "type",
                  "refresh", "aud", cfg->app.service);
    rc_t rc = access && refresh ? RC_OK : RC_INTERNAL;
    if (!rc)
        rc = keys_sign(d->a.keys, access, &out->access_token);
    if (!rc)
        rc = keys_sign(d->a.keys, refresh, &out->refresh_token);
    if (!rc)
        crypto_keyed_hasher_hex(d->refresh_hasher, out->refresh_token, strlen(out->refresh_token),
                                iss->refresh_verifier);
    json_decref(access);
    json_decref(refresh);
    if (rc)
        auth_tokens_free(out);
    return rc;
}

static void iso_o(int64_t us, char out[TIME_STR_MAX])
{
    time_format(us, TIME_STYLE_O, out);
}

/* The session state of data-model §10.1. */
static char *state_json(const struct user *u, json_t *scopes, json_t *auds, int64_t issued_us,
                        int64_t auth_time_us)
{
    char issued[TIME_STR_MAX], auth[TIME_STR_MAX];
    iso_o(issued_us, issued);
    iso_o(auth_time_us, auth);
    json_t *st = json_pack("{s:s, s:s, s:s, s:b, s:b, s:O, s:O, s:s, s:s}", "user_id", u->id,
                           "email", u->email, "role", u->role, "email_verified", u->email_verified,
                           "email_otp_enabled", u->email_otp_enabled, "scopes", scopes, "audiences",
                           auds, "issued_at", issued, "auth_time", auth);
    char *text = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    return text;
}

/* The session state and the new access token's binding (data-model
 * §10.1), as KV items; the keys live in the caller's buffers. */
struct state_items {
    char skey[128], bkey[128];
    struct kv_item items[2];
};

static void state_items(const struct auth_deps *d, const char *sid, const char *state,
                        const struct issued *iss, int64_t now_s, struct state_items *si)
{
    snprintf(si->skey, sizeof si->skey, "session:%s", sid);
    snprintf(si->bkey, sizeof si->bkey, "session_access:%s", iss->access_jti);
    int64_t ttl_s = iss->access_exp_s - now_s;
    si->items[0] =
        (struct kv_item){si->skey, state, (int64_t)d->a.cfg->jwt.refresh_token_ttl_seconds * 1000};
    si->items[1] = (struct kv_item){si->bkey, sid, (ttl_s > 0 ? ttl_s : 1) * 1000};
}

static void result_tokens(struct auth_result *out, struct auth_tokens *t)
{
    out->outcome = AUTH_OK;
    out->tokens = *t;
    t->access_token = t->refresh_token = NULL;
}

static json_t *meta1(const char *k, json_t *v)
{
    json_t *o = json_object();
    json_object_set_new(o, k, v);
    return o;
}

/* token_kind is redacted on storage (its name contains "token", §9.3);
 * it is written anyway so the row says what the catalogue says. */
static json_t *token_issued_meta(void)
{
    return json_pack("{s:s, s:s}", "provider", "password", "token_kind", "access_refresh_pair");
}

/* Suspicious reasons in contract order (api-core §7.1). */
static json_t *reasons_of(const struct lockout_flags *f)
{
    json_t *a = json_array();
    if (f->new_ip)
        json_array_append_new(a, json_string("new_ip"));
    if (f->new_user_agent)
        json_array_append_new(a, json_string("new_user_agent"));
    if (f->many_failures)
        json_array_append_new(a, json_string("prior_failures"));
    return a;
}

static void login_failure(const struct auth_deps *d, const struct req_meta *m, const char *uid,
                          const char *code)
{
    audit_detached(d, m, "user.login.failure", uid, uid, uid ? "user" : NULL, false, code,
                   meta1("provider", json_string("password")));
}

/* Password check with lockout accounting (§6.3 steps 4–5). */
static bool check_password(const struct auth_deps *d, const struct req_meta *m,
                           const struct user *u, const char *password, struct auth_result *out)
{
    bool locked = false, match = false;
    int64_t retry = 0;
    if (lockout_check(d->a.kv, u->id, &locked, &retry) != RC_OK) {
        out->outcome = AUTH_LOCK_STORE_DOWN;
        return false;
    }
    if (locked) {
        out->outcome = AUTH_LOCKED;
        out->retry_after_s = retry;
        login_failure(d, m, u->id, "account_locked");
        return false;
    }
    if (password_verify(u->password_hash, password, strlen(password), &match) != RC_OK)
        match = false;
    if (match)
        return true;
    int64_t attempts = 0;
    bool distributed = false;
    if (lockout_record_failure(d->a.kv, u->id, m->client_ip, true, &locked, &retry, &attempts,
                               &distributed) != RC_OK) {
        out->outcome = AUTH_LOCK_STORE_DOWN;
        return false;
    }
    if (locked) {
        out->outcome = AUTH_LOCKED;
        out->retry_after_s = retry;
        login_failure(d, m, u->id, "account_locked");
        json_t *meta = json_pack("{s:s, s:I, s:b, s:I}", "provider", "password", "retry_after",
                                 (json_int_t)retry, "distributed_attack", distributed,
                                 "attempt_count", (json_int_t)attempts);
        audit_detached(d, m, "user.locked", u->id, u->id, "user", true, NULL, meta);
    } else {
        out->outcome = AUTH_BAD_CREDENTIALS;
        login_failure(d, m, u->id, "invalid_credentials");
    }
    return false;
}

static void maybe_rehash(const struct auth_deps *d, const struct user *u, const char *password)
{
    if (!password_needs_rehash(d->a.pw, u->password_hash))
        return;
    char *hash = NULL;
    struct db_conn *c = NULL;
    if (password_hash(d->a.pw, password, strlen(password), &hash) == RC_OK &&
        db_acquire(d->a.db, DB_WRITE, &c) == RC_OK &&
        users_set_password_hash(c, u->id, hash, time_now_us()) != RC_OK)
        log_msg(LOG_WARNING, "password_rehash_failed", "could not store the upgraded hash");
    db_release(c);
    xfree_secret_str(hash);
}

static const char *blank_to_null(const char *s)
{
    return s && *s ? s : NULL;
}

bool auth_login_verify(const struct auth_deps *d, const struct req_meta *m, const char *email,
                       const char *password, struct auth_result *out, struct auth_login_ok *ok)
{
    memset(out, 0, sizeof *out);
    memset(ok, 0, sizeof *ok);
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    struct user u;
    rc_t rc = db_acquire(d->a.db, DB_READ, &c);
    if (!rc)
        rc = users_find_by_email(c, a, email, &u);
    db_release(c);
    if (rc == RC_OK && (u.deleted || !u.is_active || !u.password_hash))
        rc = RC_NOT_FOUND;
    if (rc == RC_NOT_FOUND) {
        password_dummy_verify(d->a.pw, password, strlen(password));
        out->outcome = AUTH_BAD_CREDENTIALS;
        login_failure(d, m, NULL, "invalid_credentials");
        goto fail;
    }
    if (rc) {
        out->outcome = AUTH_FAILED;
        goto fail;
    }
    if (!check_password(d, m, &u, password, out))
        goto fail;
    if (d->a.cfg->auth.require_verified_email_for_password_login && !u.email_verified) {
        out->outcome = AUTH_EMAIL_NOT_VERIFIED;
        login_failure(d, m, u.id, "email_not_verified");
        goto fail;
    }
    if (u.email_verified && u.email_otp_enabled) {
        out->outcome = AUTH_OTP_UNAVAILABLE;
        goto fail;
    }
    if (lockout_record_success(d->a.kv, u.id, m->client_ip, m->user_agent, &ok->flags) != RC_OK) {
        out->outcome = AUTH_LOCK_STORE_DOWN;
        goto fail;
    }
    maybe_rehash(d, &u, password);
    ok->arena = a;
    ok->u = u;
    return true;
fail:
    arena_free(a);
    return false;
}

void auth_login_finish(const struct auth_deps *d, const struct req_meta *m,
                       struct auth_login_ok *ok, const char *audience, struct auth_result *out)
{
    memset(out, 0, sizeof *out);
    const struct user *u = &ok->u;
    struct db_conn *c = NULL;
    struct auth_tokens t = {0};
    json_t *scopes = json_array();
    int64_t now_us = time_now_us(), now_s = now_us / 1000000;
    json_t *auds = audiences(d->a.cfg->app.service, blank_to_null(audience));
    json_t *reasons = reasons_of(&ok->flags);
    char *reasons_text = NULL, *state = NULL;
    struct issued iss;
    if (issue_pair(d, u, auds, scopes, now_s, now_s, &t, &iss) != RC_OK) {
        out->outcome = AUTH_FAILED;
        goto out;
    }
    char sid[UUID_STR_LEN + 1], rowid[UUID_STR_LEN + 1];
    uuid_v4(sid);
    uuid_v4(rowid);
    reasons_text = json_dumps(reasons, JSON_COMPACT);
    struct str ua = str_trim(str_of(m->user_agent));
    char *ua_cut = ua.len ? arena_strndup(ok->arena, ua.p, ua.len > 512 ? 512 : ua.len) : NULL;
    const char *ip = strcmp(m->client_ip, "unknown") ? m->client_ip : NULL;
    struct session_new sn = {
        .session_id = sid,
        .id = rowid,
        .user_id = u->id,
        .hashed_refresh_token = iss.refresh_verifier,
        .auth_time_us = now_s * 1000000,
        .expires_at_us = now_us + (int64_t)d->a.cfg->jwt.refresh_token_ttl_seconds * 1000000,
        .now_us = now_us,
        .ip_address = ip,
        .user_agent = ua_cut,
        .is_suspicious = ok->flags.suspicious,
        .suspicious_reasons_json = reasons_text,
    };
    /* The session row and the durable copies of its state and the access
     * binding commit together (as in refresh). */
    state = state_json(u, scopes, auds, now_us, now_s * 1000000);
    struct state_items si;
    state_items(d, sid, state, &iss, now_s, &si);
    bool stage_failed = false;
    rc_t rc = db_acquire(d->a.db, DB_WRITE, &c);
    if (!rc)
        rc = db_begin(c);
    if (!rc)
        rc = sessions_insert(c, &sn);
    if (!rc) {
        stage_failed = kv_set_many_stage(d->a.kv, c, si.items, 2) != RC_OK;
        rc = stage_failed ? RC_UNAVAILABLE : db_commit(c);
    }
    if (rc && c && db_in_tx(c))
        db_rollback(c);
    db_release(c);
    if (!rc && kv_set_many_staged(d->a.kv, si.items, 2) != RC_OK) {
        rc = RC_UNAVAILABLE;
        stage_failed = true;
    }
    if (rc) {
        out->outcome = stage_failed || rc == RC_UNAVAILABLE ? AUTH_STORE_DOWN : AUTH_FAILED;
        goto out;
    }
    result_tokens(out, &t);
    struct audit_batch b = {.n = 0};
    /* Actors, targets and metadata as the catalogue of api-admin §9.4. */
    batch_add(&b, m, "user.login.success", u->id, NULL, NULL,
              meta1("provider", json_string("password")));
    if (ok->flags.suspicious)
        batch_add(&b, m, "user.login.suspicious", u->id, NULL, NULL,
                  json_pack("{s:s, s:b, s:b, s:I}", "provider", "password", "new_ip",
                            ok->flags.new_ip, "new_user_agent", ok->flags.new_user_agent,
                            "prior_failures", (json_int_t)ok->flags.prior_failures));
    batch_add(&b, m, "session.created", u->id, sid, "session",
              meta1("provider", json_string("password")));
    batch_add(&b, m, "token.issued", u->id, NULL, NULL, token_issued_meta());
    batch_write(d, &b);
out:
    auth_tokens_free(&t);
    json_decref(reasons);
    free(reasons_text);
    free(state);
    json_decref(auds);
    json_decref(scopes);
    arena_free(ok->arena);
    ok->arena = NULL;
}

void auth_login(const struct auth_deps *d, const struct req_meta *m, const char *email,
                const char *password, const char *audience, struct auth_result *out)
{
    struct auth_login_ok ok;
    if (auth_login_verify(d, m, email, password, out, &ok))
        auth_login_finish(d, m, &ok, audience, out);
}

/* Session state JSON → scopes and audiences (defaults for missing fields,
 * data-model §10.1). */
static bool parse_state(const char *text, json_t **out_scopes, json_t **out_auds)
{
    json_t *st = json_loads(text, 0, NULL);
    if (!json_is_object(st)) {
        json_decref(st);
        return false;
    }
    json_t *sc = json_object_get(st, "scopes"), *au = json_object_get(st, "audiences");
    *out_scopes = json_is_array(sc) ? json_incref(sc) : json_array();
    *out_auds = json_is_array(au) ? json_incref(au) : NULL;
    json_decref(st);
    return true;
}

void auth_refresh(const struct auth_deps *d, const struct req_meta *m, const char *refresh_token,
                  struct auth_result *out)
{
    memset(out, 0, sizeof *out);
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    struct auth_tokens t = {0};
    json_t *scopes = NULL, *auds = NULL;
    char *state = NULL, *new_state = NULL;
    char verifier[65], legacy[65], key[128];
    const char *matched = verifier;
    struct session_row s;
    struct user u;
    struct issued iss;
    int64_t now_us = time_now_us(), now_s = now_us / 1000000;
    crypto_keyed_hasher_hex(d->refresh_hasher, refresh_token, strlen(refresh_token), verifier);

    /* Read and check without holding the writer; sign outside any
     * transaction; then one compare-and-swap UPDATE decides which of two
     * concurrent refreshes of the same token wins (§7.2). */
    out->outcome = AUTH_SESSION_EXPIRED;
    rc_t rc = db_acquire(d->a.db, DB_READ, &c);
    if (!rc) {
        rc = sessions_find_by_verifier(c, a, verifier, &s);
        if (rc == RC_NOT_FOUND) { /* data-model §11.1: the unkeyed form of imported rows */
            crypto_sha256_hex(refresh_token, strlen(refresh_token), legacy);
            matched = legacy;
            rc = sessions_find_by_verifier(c, a, legacy, &s);
        }
    }
    if (!rc && !s.revoked_at_us && s.expires_at_us > now_us)
        rc = users_get(c, a, s.user_id, &u);
    else if (!rc)
        rc = RC_NOT_FOUND;
    db_release(c);
    c = NULL;
    if (rc == RC_NOT_FOUND || (!rc && (u.deleted || !u.is_active)))
        goto fail;
    if (rc) {
        out->outcome = AUTH_FAILED;
        goto out;
    }
    snprintf(key, sizeof key, "session:%s", s.session_id);
    if (kv_get(d->a.kv, key, &state) != RC_OK) {
        out->outcome = AUTH_STORE_DOWN;
        goto out;
    }
    if (!state || !parse_state(state, &scopes, &auds))
        goto fail;
    if (!auds)
        auds = audiences(d->a.cfg->app.service, NULL);
    if (issue_pair(d, &u, auds, scopes, s.auth_time_us / 1000000, now_s, &t, &iss) != RC_OK) {
        out->outcome = AUTH_FAILED;
        goto out;
    }
    /* The rotation and the durable copies of the new state and binding
     * commit together (kv_set_many_stage); the in-memory or Redis copies
     * follow the commit. */
    new_state = state_json(&u, scopes, auds, now_us, s.auth_time_us);
    struct state_items si;
    state_items(d, s.session_id, new_state, &iss, now_s, &si);
    bool stage_failed = false;
    rc = db_acquire(d->a.db, DB_WRITE, &c);
    if (!rc)
        rc = db_begin(c);
    if (!rc)
        rc = sessions_rotate(c, s.session_id, matched, iss.refresh_verifier,
                             now_us + (int64_t)d->a.cfg->jwt.refresh_token_ttl_seconds * 1000000,
                             now_us);
    if (!rc) {
        stage_failed = kv_set_many_stage(d->a.kv, c, si.items, 2) != RC_OK;
        rc = stage_failed ? RC_UNAVAILABLE : db_commit(c);
    }
    if (rc && c && db_in_tx(c))
        db_rollback(c);
    db_release(c);
    c = NULL;
    if (rc == RC_NOT_FOUND)
        goto fail;
    if (rc) {
        out->outcome = stage_failed ? AUTH_STORE_DOWN : AUTH_FAILED;
        goto out;
    }
    if (kv_set_many_staged(d->a.kv, si.items, 2) != RC_OK) {
        out->outcome = AUTH_STORE_DOWN;
        goto out;
    }
    result_tokens(out, &t);
    /* No actor and no target on refresh rows (api-core §14, api-admin
     * §9.4): they never reach a history feed. */
    struct audit_batch b = {.n = 0};
    batch_add(&b, m, "token.refreshed", NULL, NULL, NULL,
              meta1("provider", json_string("password")));
    batch_add(&b, m, "token.issued", NULL, NULL, NULL, token_issued_meta());
    batch_write(d, &b);
    goto out;
fail:
    out->outcome = AUTH_SESSION_EXPIRED;
    audit_detached(d, m, "token.refreshed", NULL, NULL, NULL, false, "session_expired",
                   meta1("provider", json_string("password")));
out:
    db_release(c);
    auth_tokens_free(&t);
    json_decref(scopes);
    json_decref(auds);
    free(state);
    free(new_state);
    arena_free(a);
}

void auth_logout(const struct auth_deps *d, const struct req_meta *m, const char *access_token,
                 const char *refresh_token, struct auth_result *out)
{
    memset(out, 0, sizeof *out);
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    json_t *claims = NULL;
    struct jwt_error err = {0};
    int64_t now_us = time_now_us(), now_s = now_us / 1000000;
    rc_t rc =
        keys_verify(d->a.keys, access_token, strlen(access_token), "access", now_s, &claims, &err);
    if (rc == RC_UNAVAILABLE) {
        out->outcome = AUTH_FAILED;
        goto out;
    }
    if (rc) {
        out->outcome = AUTH_INVALID_TOKEN;
        out->token_code = err.code ? err.code : "invalid_token";
        out->token_detail = err.detail ? err.detail : "Invalid token.";
        goto out;
    }
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    const char *jti = json_string_value(json_object_get(claims, "jti"));
    json_int_t exp = json_integer_value(json_object_get(claims, "exp"));
    char verifier[65], legacy[65], key[160];
    crypto_keyed_hasher_hex(d->refresh_hasher, refresh_token, strlen(refresh_token), verifier);
    struct session_row s;
    rc = db_acquire(d->a.db, DB_READ, &c);
    if (!rc) {
        rc = sessions_find_by_verifier(c, a, verifier, &s);
        if (rc == RC_NOT_FOUND) {
            crypto_sha256_hex(refresh_token, strlen(refresh_token), legacy);
            rc = sessions_find_by_verifier(c, a, legacy, &s);
        }
    }
    db_release(c);
    c = NULL;
    if (rc == RC_NOT_FOUND || (!rc && (!sub || strcmp(sub, s.user_id) != 0))) {
        out->outcome = AUTH_INVALID_TOKEN;
        out->token_code = "invalid_token";
        out->token_detail = "Invalid token.";
        goto out;
    }
    if (rc) {
        out->outcome = AUTH_FAILED;
        goto out;
    }
    /* State first (fail closed), then the row, then the blocklist. */
    snprintf(key, sizeof key, "session:%s", s.session_id);
    if (kv_del(d->a.kv, key) != RC_OK) {
        out->outcome = AUTH_STORE_DOWN;
        goto out;
    }
    rc = db_acquire(d->a.db, DB_WRITE, &c);
    if (!rc)
        rc = sessions_revoke(c, s.session_id, NULL, now_us);
    db_release(c);
    c = NULL;
    if (rc) {
        out->outcome = AUTH_FAILED;
        goto out;
    }
    if (jti) {
        snprintf(key, sizeof key, "blocklist:jti:%s", jti);
        int64_t left = (int64_t)exp - now_s;
        if (kv_set(d->a.kv, key, "1", (left > 1 ? left : 1) * 1000) != RC_OK) {
            out->outcome = AUTH_STORE_DOWN;
            goto out;
        }
    }
    out->outcome = AUTH_OK;
    audit_detached(d, m, "user.logout", sub, s.session_id, "session", true, NULL,
                   meta1("session_id", json_string(s.session_id)));
out:
    json_decref(claims);
    arena_free(a);
}

/* Per-process throttle of the last_seen_at touch: a direct-mapped table of
 * the sessions touched lately. A collision only costs an early touch, which
 * the UPDATE's own 60 s condition turns into a no-op; instances keep their
 * own tables (at most one touch per session, minute and instance), and no
 * KV round trip is spent on a best-effort timestamp. */
#define SEEN_SLOTS 4096
static struct {
    pthread_mutex_t mu;
    struct {
        char sid[UUID_STR_LEN + 1];
        int64_t at_us;
    } slot[SEEN_SLOTS];
} seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool seen_due(const char *sid, int64_t now_mono_us)
{
    uint32_t h = 2166136261u; /* FNV-1a: sids are random, any spread will do */
    for (const char *p = sid; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    size_t i = h % SEEN_SLOTS;
    pthread_mutex_lock(&seen.mu);
    bool due = strcmp(seen.slot[i].sid, sid) != 0 ||
               now_mono_us - seen.slot[i].at_us >= SEEN_THROTTLE_MS * 1000;
    if (due) {
        snprintf(seen.slot[i].sid, sizeof seen.slot[i].sid, "%s", sid);
        seen.slot[i].at_us = now_mono_us;
    }
    pthread_mutex_unlock(&seen.mu);
    return due;
}

enum auth_outcome auth_validate(const struct auth_deps *d, const char *access_token,
                                json_t **out_claims, char out_session_id[37])
{
    json_t *claims = NULL;
    char *v = NULL, key[160];
    enum auth_outcome res = AUTH_INVALID_TOKEN;
    int64_t now_s = time_now_us() / 1000000;
    rc_t rc =
        keys_verify(d->a.keys, access_token, strlen(access_token), "access", now_s, &claims, NULL);
    if (rc == RC_UNAVAILABLE)
        return AUTH_FAILED;
    if (rc)
        return AUTH_INVALID_TOKEN;
    const char *jti = json_string_value(json_object_get(claims, "jti"));
    if (!jti || strlen(jti) > 100)
        goto out;
    /* Blocklist entry, binding and the state it points to: one round trip
     * on Redis. */
    char bkey[160], *sid = NULL;
    bool blocked = false;
    snprintf(bkey, sizeof bkey, "blocklist:jti:%s", jti);
    snprintf(key, sizeof key, "session_access:%s", jti);
    if (kv_get_deref(d->a.kv, bkey, key, "session:", &blocked, &sid, &v) != RC_OK) {
        res = AUTH_STORE_DOWN;
        goto out;
    }
    if (blocked)
        goto out; /* logged out: invalid_token */
    res = AUTH_SESSION_EXPIRED;
    bool bound = sid && strlen(sid) <= 36;
    if (bound)
        snprintf(out_session_id, 37, "%s", sid);
    free(sid);
    if (!bound || !v)
        goto out;
    res = AUTH_OK;
    /* last_seen_at at most once a minute per session and instance (best
     * effort; the UPDATE itself only moves a value ≥ 60 s old). */
    if (seen_due(out_session_id, time_mono_us())) {
        struct db_conn *c = NULL;
        if (db_acquire(d->a.db, DB_WRITE, &c) == RC_OK &&
            sessions_touch(c, out_session_id, time_now_us()) != RC_OK)
            log_msg(LOG_DEBUG, "last_seen_update_failed", "ignored");
        db_release(c);
    }
out:
    free(v);
    if (res == AUTH_OK && out_claims)
        *out_claims = claims;
    else
        json_decref(claims);
    return res;
}

rc_t auth_user_is_admin(const struct auth_deps *d, const char *user_id, bool *out)
{
    *out = false;
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    struct user u;
    rc_t rc = db_acquire(d->a.db, DB_READ, &c);
    if (rc == RC_OK)
        rc = users_get(c, a, user_id, &u);
    db_release(c);
    if (rc == RC_OK)
        *out = !u.deleted && u.is_active && strcmp(u.role, "admin") == 0;
    else if (rc == RC_NOT_FOUND)
        rc = RC_OK;
    arena_free(a);
    return rc;
}
