/* OAuth (M2M) clients and the client-credentials grant (see clients.h).
 *
 * Every admin change is one short write unit on one row; the domain event
 * goes into the same unit, the audit row after the commit. The grant reads
 * on a DB_READ connection, releases it, then signs: no connection is held
 * during RSA work. Whatever the outcome, the grant hashes the presented
 * secret and compares 64 hex characters once, against a dummy digest when
 * no live client has that id, so the answer time does not tell which
 * client ids exist. */
#include "svc/clients.h"
#include "crypto/enc.h"
#include "svc/audit.h"
#include "svc/events.h"
#include "svc/keys.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "util/unicat.h"
#include "util/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_ID_BYTES 16
#define SECRET_BYTES 32

/* Compared against when no live client has the presented id: a 64-character
 * value like a stored digest, so the comparison costs the same. */
static const char dummy_digest[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* ---- normalisation ---- */

/* Python's str.isspace(): the characters str.strip() removes. */
static bool py_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

size_t clients_strip(const char *s, size_t n, size_t *off)
{
    size_t i = 0, start = n, end = 0;
    while (i < n) {
        uint32_t cp = 0;
        int len = utf8_decode(s + i, &cp); /* valid UTF-8: 1..4 */
        if (!py_space(cp)) {
            if (start == n)
                start = i;
            end = i + (size_t)len;
        }
        i += (size_t)len;
    }
    if (start == n) {
        *off = 0;
        return 0;
    }
    *off = start;
    return end - start;
}

static const char *strip_dup(struct arena *a, const char *s)
{
    size_t off, len = clients_strip(s, strlen(s), &off);
    return arena_strndup(a, s + off, len);
}

struct ranked {
    const char *s;
    size_t pos;
};

static int ranked_cmp(const void *x, const void *y)
{
    const struct ranked *a = x, *b = y;
    int c = strcmp(a->s, b->s);
    if (c)
        return c;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* Scopes trimmed, blanks dropped, duplicates removed keeping the first
 * occurrence (api-admin §8.4). Sorting keeps this O(n log n) for any list
 * the 64 KiB body allows. */
static void normalise_scopes(struct arena *a, const char *const *in, size_t n, const char ***out,
                             size_t *out_n)
{
    const char **items = arena_zalloc(a, (n ? n : 1) * sizeof *items);
    struct ranked *rk = xcalloc(n ? n : 1, sizeof *rk);
    bool *dup = xcalloc(n ? n : 1, sizeof *dup);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = strip_dup(a, in[i]);
        if (*t)
            rk[k++] = (struct ranked){t, i};
    }
    qsort(rk, k, sizeof *rk, ranked_cmp);
    for (size_t i = 1; i < k; i++)
        if (strcmp(rk[i].s, rk[i - 1].s) == 0)
            dup[rk[i].pos] = true;
    /* Back to input order. */
    const char **by_pos = xcalloc(n ? n : 1, sizeof *by_pos);
    for (size_t i = 0; i < k; i++)
        by_pos[rk[i].pos] = rk[i].s;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (by_pos[i] && !dup[i])
            items[m++] = by_pos[i];
    free(by_pos);
    free(dup);
    free(rk);
    *out = items;
    *out_n = m;
}

/* Applies the trimming rules to in; *problem set on a blank name or an
 * empty scope list (only for the members present). */
static void normalise(struct arena *a, const struct clients_input *in, const char **name,
                      const char ***scopes, size_t *n_scopes, enum clients_problem *problem)
{
    *problem = CLIENTS_PROBLEM_NONE;
    *name = NULL;
    *scopes = NULL;
    *n_scopes = 0;
    if (in->name) {
        *name = strip_dup(a, in->name);
        if (!**name) {
            *problem = CLIENTS_NAME_REQUIRED;
            return;
        }
    }
    if (in->scopes) {
        normalise_scopes(a, in->scopes, in->n_scopes, scopes, n_scopes);
        if (*n_scopes == 0)
            *problem = CLIENTS_SCOPE_REQUIRED;
    }
}

/* ---- secrets ---- */

/* A fresh raw secret (owned), its digest and its prefix. */
static char *new_secret(char digest[CRYPTO_SHA256_HEX_LEN + 1],
                        char prefix[CLIENTS_SECRET_PREFIX_LEN + 1])
{
    char *rnd = crypto_random_b64url(SECRET_BYTES);
    size_t n = 3 + strlen(rnd);
    char *raw = xmalloc(n + 1);
    snprintf(raw, n + 1, "cs_%s", rnd);
    xfree_secret_str(rnd);
    crypto_sha256_hex(raw, n, digest);
    memcpy(prefix, raw, CLIENTS_SECRET_PREFIX_LEN);
    prefix[CLIENTS_SECRET_PREFIX_LEN] = '\0';
    return raw;
}

/* ---- audit ---- */

static json_t *scopes_json(const char *const *s, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(s[i]));
    return a;
}

static void audit_admin(const struct clients_deps *d, const struct clients_actor *who,
                        const char *type, const char *target, json_t *meta)
{
    struct audit_event ev = {.event_type = type,
                             .actor_id = who->actor_id,
                             .actor_type = AUDIT_ACTOR_ADMIN,
                             .target_id = target,
                             .target_type = "oauth_client",
                             .ip_address = who->meta.client_ip,
                             .user_agent = who->meta.user_agent,
                             .correlation_id = who->meta.correlation_id,
                             .success = true,
                             .metadata = meta};
    audit_write_detached(d->db, &ev);
    json_decref(meta);
}

static void audit_service(const struct clients_deps *d, const struct req_meta *m, const char *type,
                          const char *actor, bool ok, const char *reason, json_t *meta)
{
    struct audit_event ev = {.event_type = type,
                             .actor_id = actor,
                             .actor_type = AUDIT_ACTOR_SERVICE,
                             .ip_address = m->client_ip,
                             .user_agent = m->user_agent,
                             .correlation_id = m->correlation_id,
                             .success = ok,
                             .failure_reason = reason,
                             .metadata = meta};
    audit_write_detached(d->db, &ev);
    json_decref(meta);
}

/* ---- admin operations ---- */

/* Inserts with fresh client_ids until one is free (a collision of 128
 * random bits means a broken CSPRNG, so the bound only stops a loop). */
static rc_t insert_new(struct db_conn *c, struct oauth_client_new *row)
{
    rc_t rc = RC_CONFLICT;
    for (int i = 0; rc == RC_CONFLICT && i < CLIENTS_ID_ATTEMPTS; i++) {
        char *rnd = crypto_random_b64url(CLIENT_ID_BYTES);
        char id[64];
        snprintf(id, sizeof id, "client_%s", rnd);
        free(rnd);
        row->client_id = id;
        rc = oauth_clients_insert(c, row);
        row->client_id = NULL;
    }
    return rc;
}

rc_t clients_create(const struct clients_deps *d, const struct clients_actor *who,
                    const struct clients_input *in, struct arena *a, struct oauth_client_row *out,
                    char **out_secret, enum clients_problem *out_problem)
{
    const char *name;
    const char **scopes;
    size_t n_scopes;
    *out_secret = NULL;
    normalise(a, in, &name, &scopes, &n_scopes, out_problem);
    if (*out_problem || !name || !scopes) {
        if (!*out_problem)
            *out_problem = !name ? CLIENTS_NAME_REQUIRED : CLIENTS_SCOPE_REQUIRED;
        return RC_INVALID;
    }
    char id[UUID_STR_LEN + 1], digest[CRYPTO_SHA256_HEX_LEN + 1];
    char prefix[CLIENTS_SECRET_PREFIX_LEN + 1];
    uuid_v4(id);
    char *secret = new_secret(digest, prefix);
    struct oauth_client_new row = {.id = id,
                                   .client_secret_hash = digest,
                                   .client_secret_prefix = prefix,
                                   .name = name,
                                   .scopes = scopes,
                                   .n_scopes = n_scopes,
                                   .token_ttl_seconds =
                                       in->has_ttl ? in->token_ttl_seconds : CLIENTS_TTL_DEFAULT,
                                   .now_us = time_now_us()};
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(d->db, DB_WRITE, &c);
    if (!rc)
        rc = db_begin(c);
    if (!rc)
        rc = insert_new(c, &row);
    if (!rc)
        rc = oauth_clients_get(c, a, id, out);
    if (!rc)
        rc = events_emit(c, "client.created",
                         json_pack("{s:s, s:o}", "client_id", out->client_id, "scopes",
                                   scopes_json(out->scopes, out->n_scopes)));
    if (!rc)
        rc = db_commit(c);
    db_rollback(c);
    db_release(c);
    if (rc) {
        xfree_secret_str(secret);
        return rc;
    }
    audit_admin(d, who, "client.created", out->id,
                json_pack("{s:s, s:o}", "client_id", out->client_id, "scopes",
                          scopes_json(out->scopes, out->n_scopes)));
    *out_secret = secret;
    return RC_OK;
}

rc_t clients_list(const struct clients_deps *d, struct arena *a, bool filter_active, bool active,
                  int64_t after_created_us, const char *after_id, int limit,
                  struct oauth_client_row **out, int *out_n)
{
    struct db_conn *c = NULL;
    *out = NULL;
    *out_n = 0;
    rc_t rc = db_acquire(d->db, DB_READ, &c);
    if (!rc)
        rc = oauth_clients_page(c, a, filter_active, active, after_created_us, after_id, limit, out,
                                out_n);
    db_release(c);
    return rc;
}

rc_t clients_update(const struct clients_deps *d, const struct clients_actor *who, const char *id,
                    const struct clients_input *in, struct arena *a, struct oauth_client_row *out,
                    enum clients_problem *out_problem)
{
    struct oauth_client_patch p = {.has_ttl = in->has_ttl,
                                   .token_ttl_seconds = in->token_ttl_seconds,
                                   .has_active = in->has_active,
                                   .is_active = in->is_active};
    const char **scopes;
    normalise(a, in, &p.name, &scopes, &p.n_scopes, out_problem);
    p.scopes = scopes;
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(d->db, DB_WRITE, &c);
    if (!rc)
        rc = db_begin(c);
    /* 404 before the 400s: a missing client is the first thing to report. */
    if (!rc)
        rc = oauth_clients_get(c, a, id, out);
    if (!rc && *out_problem)
        rc = RC_INVALID;
    if (!rc)
        rc = oauth_clients_update(c, a, id, &p, time_now_us(), out);
    if (!rc)
        rc = db_commit(c);
    db_rollback(c);
    db_release(c);
    if (rc)
        return rc;
    audit_admin(d, who, "client.updated.success", out->id,
                json_pack("{s:s, s:o, s:b, s:I}", "client_id", out->client_id, "scopes",
                          scopes_json(out->scopes, out->n_scopes), "is_active", out->is_active,
                          "token_ttl_seconds", (json_int_t)out->token_ttl_seconds));
    return RC_OK;
}

rc_t clients_rotate_secret(const struct clients_deps *d, const struct clients_actor *who,
                           const char *id, struct arena *a, struct oauth_client_row *out,
                           char **out_secret)
{
    char digest[CRYPTO_SHA256_HEX_LEN + 1], prefix[CLIENTS_SECRET_PREFIX_LEN + 1];
    char *secret = new_secret(digest, prefix);
    *out_secret = NULL;
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(d->db, DB_WRITE, &c);
    if (!rc)
        rc = db_begin(c);
    if (!rc)
        rc = oauth_clients_set_secret(c, a, id, digest, prefix, time_now_us(), out);
    if (!rc)
        rc = events_emit(c, "client.secret_rotated",
                         json_pack("{s:s}", "client_id", out->client_id));
    if (!rc)
        rc = db_commit(c);
    db_rollback(c);
    db_release(c);
    if (rc) {
        xfree_secret_str(secret);
        return rc;
    }
    audit_admin(d, who, "client.secret_rotated", out->id,
                json_pack("{s:s}", "client_id", out->client_id));
    *out_secret = secret;
    return RC_OK;
}

rc_t clients_delete(const struct clients_deps *d, const struct clients_actor *who, const char *id,
                    struct arena *a, struct oauth_client_row *out)
{
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(d->db, DB_WRITE, &c);
    if (!rc)
        rc = oauth_clients_soft_delete(c, a, id, time_now_us(), out);
    db_release(c);
    if (rc)
        return rc;
    audit_admin(d, who, "client.deleted.success", out->id,
                json_pack("{s:s}", "client_id", out->client_id));
    return RC_OK;
}

/* ---- the grant ---- */

void clients_grant_result_free(struct clients_grant_result *r)
{
    xfree_secret_str(r->access_token);
    free(r->scope);
    r->access_token = NULL;
    r->scope = NULL;
}

void clients_audit_grant_failure(const struct clients_deps *d, const struct req_meta *m,
                                 bool with_client_id, const char *client_id, const char *reason)
{
    json_t *meta = NULL;
    if (with_client_id)
        meta = json_pack("{s:o}", "client_id", client_id ? json_string(client_id) : json_null());
    audit_service(d, m, "client.auth.failure", NULL, false, reason, meta);
}

static int str_cmp(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The requested scope string split on spaces, empty items dropped, order
 * and repeats kept (api-core §6.4 A). */
static size_t split_scope(struct arena *a, const char *scope, const char ***out)
{
    size_t len = scope ? strlen(scope) : 0, n = 0;
    const char **items = arena_zalloc(a, (len / 2 + 1) * sizeof *items);
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && scope[j] != ' ')
            j++;
        if (j > i)
            items[n++] = arena_strndup(a, scope + i, j - i);
        i = j + 1;
    }
    *out = items;
    return n;
}

/* Every requested item is one of the client's scopes. */
static bool subset(const char *const *req, size_t n, const struct oauth_client_row *row)
{
    const char **have = xcalloc(row->n_scopes ? row->n_scopes : 1, sizeof *have);
    memcpy(have, row->scopes, row->n_scopes * sizeof *have);
    qsort(have, row->n_scopes, sizeof *have, str_cmp);
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++)
        ok = bsearch(&req[i], have, row->n_scopes, sizeof *have, str_cmp) != NULL;
    free(have);
    return ok;
}

static char *join(const char *const *items, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(items[i]) + 1;
    char *s = xmalloc(len), *p = s;
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ' ';
        size_t k = strlen(items[i]);
        memcpy(p, items[i], k);
        p += k;
    }
    *p = '\0';
    return s;
}

/* api-core §5.3: SERVICE_AUD alone as a string, or [SERVICE_AUD, requested]
 * when the requested audience adds one. */
static json_t *aud_claim(const char *service, const char *requested)
{
    if (!requested || !*requested || strcmp(requested, service) == 0)
        return json_string(service);
    return json_pack("[s, s]", service, requested);
}

/* Signs the M2M token of api-core §5.5 (exactly these claims). */
static rc_t sign_m2m(const struct clients_deps *d, const struct oauth_client_row *row,
                     const char *scope, const char *audience, char **out)
{
    char jti[UUID_STR_LEN + 1];
    uuid_v4(jti);
    int64_t now_s = time_now_us() / 1000000;
    json_t *claims = json_pack(
        "{s:s, s:I, s:I, s:s, s:s, s:o, s:s, s:s}", "jti", jti, "iat", (json_int_t)now_s, "exp",
        (json_int_t)(now_s + row->token_ttl_seconds), "sub", row->client_id, "type", "m2m", "aud",
        aud_claim(d->cfg->app.service, audience), "role", "service", "scope", scope);
    rc_t rc = claims ? keys_sign(d->keys, claims, out) : RC_INTERNAL;
    json_decref(claims);
    return rc;
}

/* Looks the client up and checks the secret; true when it may have a
 * token. *found tells whether a live row was read (for the audit actor). */
static bool authenticate(const struct clients_deps *d, struct arena *a,
                         const struct clients_grant_input *in, struct oauth_client_row *row,
                         bool *found, rc_t *db_rc)
{
    char digest[CRYPTO_SHA256_HEX_LEN + 1];
    crypto_sha256_hex(in->client_secret, strlen(in->client_secret), digest);
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(d->db, DB_READ, &c);
    if (!rc)
        rc = oauth_clients_find(c, a, in->client_id, row);
    db_release(c);
    *found = rc == RC_OK;
    *db_rc = rc == RC_NOT_FOUND ? RC_OK : rc;
    const char *stored = *found ? row->client_secret_hash : dummy_digest;
    bool equal = crypto_ct_streqn(digest, CRYPTO_SHA256_HEX_LEN, stored, strlen(stored));
    return *found && equal && row->is_active;
}

void clients_grant(const struct clients_deps *d, const struct req_meta *m,
                   const struct clients_grant_input *in, struct clients_grant_result *out)
{
    memset(out, 0, sizeof *out);
    struct arena *a = arena_new();
    struct oauth_client_row row;
    bool found = false;
    rc_t rc = RC_OK;
    if (!authenticate(d, a, in, &row, &found, &rc)) {
        if (rc) {
            out->outcome = CLIENTS_GRANT_FAILED;
            goto done;
        }
        json_t *meta = json_pack("{s:s}", "client_id", in->client_id);
        audit_service(d, m, "client.auth.failure", found ? row.id : NULL, false,
                      "invalid_credentials", meta);
        out->outcome = CLIENTS_GRANT_BAD_CLIENT;
        goto done;
    }
    const char **req;
    size_t n = split_scope(a, in->scope, &req);
    if (n && !subset(req, n, &row)) {
        audit_service(d, m, "client.auth.failure", row.id, false, "invalid_scope",
                      json_pack("{s:s}", "client_id", row.client_id));
        out->outcome = CLIENTS_GRANT_BAD_SCOPE;
        goto done;
    }
    out->scope = n ? join(req, n) : join(row.scopes, row.n_scopes);
    rc = sign_m2m(d, &row, out->scope, in->audience, &out->access_token);
    if (rc) {
        clients_grant_result_free(out);
        out->outcome = CLIENTS_GRANT_FAILED;
        goto done;
    }
    out->expires_in = row.token_ttl_seconds;
    out->outcome = CLIENTS_GRANT_OK;
    audit_service(d, m, "client.authenticated", row.id, true, NULL,
                  json_pack("{s:s, s:s}", "client_id", row.client_id, "scope", out->scope));
done:
    arena_free(a);
}
