/* API keys: creation, listing, revocation, introspection and its cache (see
 * apikeys.h). Invariants: the raw key is never stored, logged or put in an
 * audit row; every cache entry is either a row snapshot that is evaluated
 * against the clock when read, or the tombstone "-" that sends readers to
 * the database. */
#include "svc/apikeys.h"
#include "crypto/enc.h"
#include "store/users.h"
#include "svc/audit.h"
#include "svc/events.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOMBSTONE "-"

const char *apikeys_verdict_code(enum apikeys_verdict v)
{
    switch (v) {
    case APIKEYS_INVALID:
        return "invalid_api_key";
    case APIKEYS_EXPIRED:
        return "expired_api_key";
    case APIKEYS_REVOKED:
        return "revoked_api_key";
    case APIKEYS_VALID:
        break;
    }
    return NULL;
}

/* ---- small helpers ---- */

static const char *trimmed(struct arena *a, const char *s)
{
    struct str t = str_trim(str_of(s));
    return arena_strndup(a, t.p, t.len);
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static void wipe_str(void *p)
{
    xfree_secret_str(p);
}

static void cache_key(const char *hash, char out[sizeof APIKEYS_CACHE_PREFIX + API_KEYS_HASH_LEN])
{
    snprintf(out, sizeof APIKEYS_CACHE_PREFIX + API_KEYS_HASH_LEN, "%s%s", APIKEYS_CACHE_PREFIX,
             hash);
}

static void log_cache_failure(const char *what, rc_t rc)
{
    log_msg(LOG_ERROR, "apikey_cache_failed", "%s: %s", what, rc_str(rc));
}

/* ---- audit ---- */

static struct audit_event event_of(const struct req_meta *m, const char *type)
{
    return (struct audit_event){.event_type = type,
                                .ip_address = m ? m->client_ip : NULL,
                                .user_agent = m ? m->user_agent : NULL,
                                .correlation_id = m ? m->correlation_id : NULL};
}

/* name/service/scope[, user_id] (api-admin §9.4) for created/revoked rows,
 * and the same set plus key_id for the webhook data (§10.1). */
static json_t *key_fields(enum apikeys_api api, const char *key_id, const char *name,
                          const char *service, const char *scope, const char *user_id)
{
    json_t *o = json_object();
    if (key_id)
        json_object_set_new(o, "key_id", json_string(key_id));
    json_object_set_new(o, "name", json_string(name ? name : ""));
    json_object_set_new(o, "service", json_string(service ? service : ""));
    json_object_set_new(o, "scope", json_string(scope ? scope : ""));
    if (api == APIKEYS_API_AUTH)
        json_object_set_new(o, "user_id", str_or_null(user_id));
    return o;
}

static void audit_key_change(const struct apikeys_deps *d, const struct apikeys_actor *who,
                             const char *type, enum apikeys_api api, const struct api_key_row *k,
                             const char *target_id, const char *failure)
{
    struct audit_event ev = event_of(who->meta, type);
    ev.actor_id = who->actor_id;
    /* Catalogue (api-admin §9.4): success rows are the admin's; failure rows
     * of api_key.created are "user or system" (the admin's user id, or
     * system for the bootstrap key), those of api_key.revoked "system". */
    bool created = strcmp(type, "api_key.created") == 0;
    ev.actor_type = !failure                   ? AUDIT_ACTOR_ADMIN
                    : created && who->actor_id ? AUDIT_ACTOR_USER
                                               : AUDIT_ACTOR_SYSTEM;
    ev.target_id = target_id;
    ev.target_type = target_id ? "api_key" : NULL;
    ev.success = failure == NULL;
    ev.failure_reason = failure;
    ev.metadata = k ? key_fields(api, NULL, k->name, k->service, k->scope, k->user_id) : NULL;
    audit_write_detached(d->db, &ev);
    json_decref(ev.metadata);
}

static void audit_use(const struct apikeys_deps *d, const struct req_meta *m,
                      const struct apikeys_answer *ans)
{
    struct audit_event ev = event_of(m, "api_key.used");
    ev.actor_type = AUDIT_ACTOR_SERVICE;
    if (ans->verdict != APIKEYS_INVALID) {
        ev.actor_id = ans->key.user_id[0] ? ans->key.user_id : NULL;
        ev.target_id = ans->key.id;
        ev.target_type = "api_key";
    }
    ev.success = ans->verdict == APIKEYS_VALID;
    ev.failure_reason = apikeys_verdict_code(ans->verdict);
    audit_write_detached(d->db, &ev);
}

/* ---- creation ---- */

/* api-core §10.2 / api-admin §8.2: trimmed service; else the part before
 * the first ':' of the first comma-separated scope, trimmed; else name. */
static const char *derive_service(struct arena *a, const char *service, const char *scope,
                                  const char *name)
{
    if (service && *service)
        return service;
    struct str first = str_of(scope);
    const char *comma = memchr(first.p, ',', first.len);
    if (comma)
        first.len = (size_t)(comma - first.p);
    first = str_trim(first);
    const char *colon = memchr(first.p, ':', first.len);
    if (colon)
        first.len = (size_t)(colon - first.p);
    first = str_trim(first);
    return first.len ? arena_strndup(a, first.p, first.len) : name;
}

/* "sk_" + base64url(32 random bytes); the copy in the arena is wiped when
 * the arena is freed. */
static char *new_raw_key(struct arena *a)
{
    char *rnd = crypto_random_b64url(32);
    char *raw = xmalloc(APIKEYS_RAW_LEN + 1);
    snprintf(raw, APIKEYS_RAW_LEN + 1, "sk_%s", rnd);
    xfree_secret_str(rnd);
    return arena_defer(a, wipe_str, raw);
}

static rc_t insert_key(const struct apikeys_deps *d, enum apikeys_api api,
                       const struct api_key_new *k)
{
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    struct user u;
    rc_t rc = db_acquire(d->db, DB_WRITE, &c);
    if (rc == RC_OK)
        rc = db_begin(c);
    if (rc == RC_OK && k->user_id) {
        rc = users_get(c, a, k->user_id, &u);
        if (rc == RC_OK && u.deleted)
            rc = RC_NOT_FOUND;
    }
    if (rc == RC_OK)
        rc = api_keys_insert(c, k);
    if (rc == RC_CONSTRAINT) /* the owner vanished under us */
        rc = RC_NOT_FOUND;
    if (rc == RC_OK)
        rc = events_emit(c, "api_key.created",
                         key_fields(api, k->id, k->name, k->service, k->scope, k->user_id));
    if (rc == RC_OK)
        rc = db_commit(c);
    else if (c)
        db_rollback(c);
    db_release(c);
    arena_free(a);
    return rc;
}

rc_t apikeys_create(const struct apikeys_deps *d, const struct apikeys_actor *who,
                    enum apikeys_api api, const struct apikeys_create_in *in, struct arena *a,
                    struct apikeys_created *out, const char **out_detail)
{
    memset(out, 0, sizeof *out);
    *out_detail = NULL;
    const char *scope = trimmed(a, in->scope);
    const char *service = api == APIKEYS_API_AUTH ? trimmed(a, in->service) : "";
    const char *name = trimmed(a, in->name ? in->name : in->service);
    const char *user_id = api == APIKEYS_API_AUTH ? in->user_id : NULL;
    struct api_key_row *k = &out->row;
    k->name = name;
    k->scope = scope;
    k->service = service;
    snprintf(k->user_id, sizeof k->user_id, "%s", user_id ? user_id : "");
    if (!*scope || !*name) {
        *out_detail = !*scope ? "Scope is required." : "Name is required.";
        audit_key_change(d, who, "api_key.created", api, k, NULL, "invalid_api_key");
        return RC_INVALID;
    }
    k->service = derive_service(a, service, scope, name);
    out->api_key = new_raw_key(a);
    uuid_v4(k->id);
    crypto_sha256_hex(out->api_key, APIKEYS_RAW_LEN, k->hashed_key);
    memcpy(k->key_prefix, out->api_key, API_KEYS_PREFIX_LEN);
    k->key_prefix[API_KEYS_PREFIX_LEN] = '\0';
    k->has_expires_at = in->has_expires_at;
    k->expires_at_us = in->expires_at_us;
    k->created_at_us = time_now_us();
    k->owner_ok = true;
    struct api_key_new row = {.id = k->id,
                              .user_id = user_id,
                              .name = k->name,
                              .service = k->service,
                              .scope = k->scope,
                              .hashed_key = k->hashed_key,
                              .key_prefix = k->key_prefix,
                              .has_expires_at = k->has_expires_at,
                              .expires_at_us = k->expires_at_us,
                              .now_us = k->created_at_us};
    rc_t rc = insert_key(d, api, &row);
    if (rc == RC_NOT_FOUND) {
        audit_key_change(d, who, "api_key.created", api, k, NULL, "invalid_user");
        return rc;
    }
    if (rc != RC_OK)
        return rc;
    audit_key_change(d, who, "api_key.created", api, k, k->id, NULL);
    return RC_OK;
}

/* ---- lists ---- */

rc_t apikeys_list(const struct apikeys_deps *d, const struct apikeys_actor *who,
                  const struct api_keys_filter *f, struct arena *a, struct api_key_row **out,
                  int *out_n)
{
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(d->db, DB_READ, &c);
    if (rc == RC_OK)
        rc = api_keys_list(c, a, f, out, out_n);
    db_release(c);
    if (rc != RC_OK)
        return rc;
    struct audit_event ev = event_of(who->meta, "api_key.used");
    ev.actor_id = who->actor_id;
    ev.actor_type = AUDIT_ACTOR_ADMIN;
    ev.target_type = "api_key_collection";
    ev.success = true;
    ev.metadata = json_pack(
        "{s:s, s:o, s:o, s:o, s:o, s:I}", "operation", "list", "name", str_or_null(f->name),
        "service", str_or_null(f->service), "scope", str_or_null(f->scope), "active",
        f->active == API_KEYS_ANY ? json_null() : json_boolean(f->active == API_KEYS_ACTIVE),
        "result_count", (json_int_t)*out_n);
    audit_write_detached(d->db, &ev);
    json_decref(ev.metadata);
    return RC_OK;
}

rc_t apikeys_page(const struct apikeys_deps *d, const struct api_keys_filter *f,
                  int64_t after_created_us, const char *after_id, int limit, struct arena *a,
                  struct api_key_row **out, int *out_n)
{
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(d->db, DB_READ, &c);
    if (rc == RC_OK)
        rc = api_keys_page(c, a, f, after_created_us, after_id, limit, out, out_n);
    db_release(c);
    return rc;
}

/* ---- introspection cache ---- */

static json_t *us_or_null(bool has, int64_t us)
{
    return has ? json_integer((json_int_t)us) : json_null();
}

static char *snapshot_new(const struct api_key_row *k)
{
    json_t *o =
        json_pack("{s:s, s:o, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:b}", "id", k->id, "user_id",
                  str_or_null(k->user_id), "name", k->name, "service", k->service, "scope",
                  k->scope, "hashed_key", k->hashed_key, "key_prefix", k->key_prefix, "expires_at",
                  us_or_null(k->has_expires_at, k->expires_at_us), "revoked_at",
                  us_or_null(k->revoked, k->revoked_at_us), "created_at",
                  (json_int_t)k->created_at_us, "owner_ok", k->owner_ok);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static bool fixed_str(json_t *o, const char *name, char *dst, size_t len)
{
    const char *v = json_string_value(json_object_get(o, name));
    if (!v || strlen(v) != len)
        return false;
    memcpy(dst, v, len + 1);
    return true;
}

static bool opt_us(json_t *o, const char *name, bool *has, int64_t *us)
{
    json_t *v = json_object_get(o, name);
    *has = json_is_integer(v);
    *us = *has ? (int64_t)json_integer_value(v) : 0;
    return *has || json_is_null(v);
}

/* A snapshot back into a row; false for anything malformed (a miss). */
static bool snapshot_parse(const char *s, struct arena *a, struct api_key_row *out)
{
    json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    memset(out, 0, sizeof *out);
    json_t *uid = json_object_get(o, "user_id");
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *service = json_string_value(json_object_get(o, "service"));
    const char *scope = json_string_value(json_object_get(o, "scope"));
    json_t *created = json_object_get(o, "created_at"), *owner = json_object_get(o, "owner_ok");
    bool ok = json_is_object(o) && fixed_str(o, "id", out->id, UUID_STR_LEN) &&
              (json_is_null(uid) || fixed_str(o, "user_id", out->user_id, UUID_STR_LEN)) && name &&
              service && scope && fixed_str(o, "hashed_key", out->hashed_key, API_KEYS_HASH_LEN) &&
              fixed_str(o, "key_prefix", out->key_prefix, API_KEYS_PREFIX_LEN) &&
              opt_us(o, "expires_at", &out->has_expires_at, &out->expires_at_us) &&
              opt_us(o, "revoked_at", &out->revoked, &out->revoked_at_us) &&
              json_is_integer(created) && json_is_boolean(owner);
    if (ok) {
        out->name = arena_strdup(a, name);
        out->service = arena_strdup(a, service);
        out->scope = arena_strdup(a, scope);
        out->created_at_us = (int64_t)json_integer_value(created);
        out->owner_ok = json_is_true(owner);
    }
    json_decref(o);
    return ok;
}

/* Hit: *out holds the cached row of hash. Tombstones, malformed entries and
 * KV failures are misses. The digest comparison is constant-time although
 * the entry was found by the digest itself: cheap defence in depth. */
static bool cache_get(const struct apikeys_deps *d, const char *hash, struct arena *a,
                      struct api_key_row *out)
{
    char key[sizeof APIKEYS_CACHE_PREFIX + API_KEYS_HASH_LEN];
    cache_key(hash, key);
    char *v = NULL;
    rc_t rc = kv_get(d->kv, key, &v);
    bool hit = rc == RC_OK && v && strcmp(v, TOMBSTONE) != 0 && snapshot_parse(v, a, out) &&
               crypto_ct_streq(out->hashed_key, hash);
    free(v);
    return hit;
}

/* TTL of a snapshot of k at now_us: APIKEYS_CACHE_TTL_MS, never past the
 * key's expiry; 0 = do not cache (the key is expired: the database answers
 * each time, so an admin revoke of an expired key changes nothing stale). */
static int64_t snapshot_ttl_ms(const struct api_key_row *k, int64_t now_us)
{
    if (k->revoked || !k->has_expires_at)
        return APIKEYS_CACHE_TTL_MS;
    int64_t left_ms = (k->expires_at_us - now_us) / 1000;
    if (left_ms <= 0)
        return 0;
    return left_ms < APIKEYS_CACHE_TTL_MS ? left_ms : APIKEYS_CACHE_TTL_MS;
}

/* Set-if-absent: an invalidation written meanwhile (tombstone or revoked
 * snapshot) wins over a fill from an older read. Failures only cost speed. */
static void cache_fill(const struct apikeys_deps *d, const struct api_key_row *k, int64_t now_us)
{
    int64_t ttl = snapshot_ttl_ms(k, now_us);
    char *v = ttl > 0 ? snapshot_new(k) : NULL;
    if (!v)
        return;
    char key[sizeof APIKEYS_CACHE_PREFIX + API_KEYS_HASH_LEN];
    cache_key(k->hashed_key, key);
    bool set;
    rc_t rc = kv_set_nx(d->kv, key, v, ttl, &set);
    if (rc != RC_OK && rc != RC_UNAVAILABLE)
        log_cache_failure("fill", rc);
    free(v);
}

/* Overwrites the entry of hash with the snapshot of k (NULL: a tombstone). */
static rc_t cache_replace(const struct apikeys_deps *d, const char *hash,
                          const struct api_key_row *k)
{
    char key[sizeof APIKEYS_CACHE_PREFIX + API_KEYS_HASH_LEN];
    cache_key(hash, key);
    char *v = k ? snapshot_new(k) : NULL;
    rc_t rc = kv_set(d->kv, key, v ? v : TOMBSTONE, APIKEYS_CACHE_TTL_MS);
    if (rc != RC_OK) /* one retry: a Redis reconnect is transparent */
        rc = kv_set(d->kv, key, v ? v : TOMBSTONE, APIKEYS_CACHE_TTL_MS);
    free(v);
    if (rc != RC_OK)
        log_cache_failure("invalidate", rc);
    return rc;
}

/* §6.8 steps 3–6 against the clock. */
static enum apikeys_verdict verdict_of(const struct api_key_row *k, int64_t now_us)
{
    if (k->revoked)
        return APIKEYS_REVOKED;
    if (k->has_expires_at && k->expires_at_us <= now_us)
        return APIKEYS_EXPIRED;
    if (!k->owner_ok)
        return APIKEYS_REVOKED;
    return APIKEYS_VALID;
}

static bool has_key_prefix(const char *raw, size_t len)
{
    return len >= 3 && memcmp(raw, "sk_", 3) == 0;
}

rc_t apikeys_introspect_fast(const struct apikeys_deps *d, const struct req_meta *m,
                             const char *raw, size_t len, struct arena *a,
                             struct apikeys_answer *out)
{
    memset(out, 0, sizeof *out);
    out->verdict = APIKEYS_INVALID;
    if (has_key_prefix(raw, len)) {
        char hash[CRYPTO_SHA256_HEX_LEN + 1];
        crypto_sha256_hex(raw, len, hash);
        if (!cache_get(d, hash, a, &out->key))
            return RC_NOT_FOUND;
        out->verdict = verdict_of(&out->key, time_now_us());
    }
    audit_use(d, m, out);
    return RC_OK;
}

rc_t apikeys_introspect(const struct apikeys_deps *d, const struct req_meta *m, const char *raw,
                        size_t len, struct arena *a, struct apikeys_answer *out)
{
    if (apikeys_introspect_fast(d, m, raw, len, a, out) == RC_OK)
        return RC_OK;
    char hash[CRYPTO_SHA256_HEX_LEN + 1];
    crypto_sha256_hex(raw, len, hash);
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(d->db, DB_READ, &c);
    if (rc == RC_OK)
        rc = api_keys_find_by_hash(c, a, hash, &out->key);
    db_release(c);
    int64_t now = time_now_us();
    if (rc == RC_OK && !crypto_ct_streq(out->key.hashed_key, hash))
        rc = RC_NOT_FOUND;
    if (rc == RC_NOT_FOUND) {
        memset(&out->key, 0, sizeof out->key);
        out->verdict = APIKEYS_INVALID;
    } else if (rc == RC_OK) {
        cache_fill(d, &out->key, now);
        out->verdict = verdict_of(&out->key, now);
    } else {
        return rc;
    }
    audit_use(d, m, out);
    return RC_OK;
}

/* ---- revocation and invalidation ---- */

rc_t apikeys_revoke(const struct apikeys_deps *d, const struct apikeys_actor *who,
                    enum apikeys_api api, const char *key_id, struct arena *a,
                    struct api_key_row *out)
{
    struct db_conn *c = NULL;
    bool changed = false;
    rc_t rc = db_acquire(d->db, DB_WRITE, &c);
    if (rc == RC_OK)
        rc = db_begin(c);
    if (rc == RC_OK)
        rc = api_keys_revoke(c, a, key_id, time_now_us(), out, &changed);
    if (rc == RC_OK && changed)
        rc = events_emit(
            c, "api_key.revoked",
            key_fields(api, out->id, out->name, out->service, out->scope, out->user_id));
    if (rc == RC_OK)
        rc = db_commit(c);
    else if (c)
        db_rollback(c);
    db_release(c);
    if (rc == RC_NOT_FOUND) {
        audit_key_change(d, who, "api_key.revoked", api, NULL, key_id, "invalid_api_key");
        return rc;
    }
    if (rc != RC_OK)
        return rc;
    /* After the commit: a reader that missed the cache now reads the revoked
     * row, and this overwrite beats any fill from an earlier read. A KV
     * failure is logged; readers then fall back to the database. */
    (void)cache_replace(d, out->hashed_key, out);
    audit_key_change(d, who, "api_key.revoked", api, out, out->id, NULL);
    return RC_OK;
}

rc_t apikeys_invalidate_user(const struct apikeys_deps *d, const char *user_id)
{
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    const char **hashes = NULL;
    int n = 0;
    rc_t rc = db_acquire(d->db, DB_READ, &c);
    if (rc == RC_OK)
        rc = api_keys_hashes_of_user(c, a, user_id, &hashes, &n);
    db_release(c);
    bool kv_failed = false;
    for (int i = 0; rc == RC_OK && i < n; i++) /* every key, even after a failure */
        kv_failed |= cache_replace(d, hashes[i], NULL) != RC_OK;
    if (rc == RC_OK && kv_failed)
        rc = RC_UNAVAILABLE;
    arena_free(a);
    return rc;
}
