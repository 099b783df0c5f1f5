/* Signing keys (see keys.h): bootstrap, rotation, retirement, and the
 * per-process caches behind keys_sign, keys_verify and keys_jwks.
 *
 * Locking. `mu` guards the cached pointers and timestamps and is held only
 * for a pointer copy plus a reference count increment. `load_mu`
 * serialises everything that reads the database to refresh a cache and
 * the invalidation after a rotation or retirement, so (a) a cache expiry
 * costs one query per process, and (b) a refresh that read the database
 * before this process's rotation committed cannot install its result after
 * the invalidation (the rotation takes load_mu to invalidate, i.e. waits
 * for such a refresh to finish). Order: load_mu before mu. Bootstrap and
 * rotation run database units without either lock; the database decides
 * races (uq_signing_keys_single_active, row locks).
 *
 * Lifetimes. The keyset and signer are refcounted by the crypto layer:
 * callers take a reference under mu and drop it after the RSA work, so a
 * swap never frees an object in use. */
#include "svc/keys.h"
#include "crypto/envelope.h"
#include "crypto/rsakey.h"
#include "store/signing_keys.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US_PER_S 1000000LL
#define US_PER_MS 1000LL
#define JWKS_MAX (1 << 20)
#define ROTATE_ATTEMPTS 4
#define BOOTSTRAP_ATTEMPTS 3

struct keys {
    struct db *db;
    const struct config *cfg;
    struct envelope_key *ek;

    pthread_mutex_t load_mu;
    pthread_mutex_t mu;
    /* verification set, its fingerprint and JWKS (all or none) */
    struct jwt_keyset *ks;
    char *fp;
    char *jwks;
    size_t jwks_len;
    int64_t set_checked_us; /* monotonic; last successful check */
    int64_t set_fail_us;    /* last failed check, 0 = none */
    int64_t unknown_kid_us; /* last unknown-kid re-check */
    /* active signer */
    struct jwt_signer *signer;
    int64_t signer_checked_us;
    int64_t signer_fail_us;
    rc_t signer_fail_rc;
    /* shared by every signer and set this cache builds */
    struct jwt_memo *memo;
    struct keys_stats stats;
};

/* A generated or configured key ready to insert (private part sealed). */
struct new_key {
    char id[UUID_STR_LEN + 1];
    char kid[RSAKEY_KID_LEN + 1];
    char *public_pem;
    char *sealed;
};

static void new_key_free(struct new_key *nk)
{
    free(nk->public_pem);
    free(nk->sealed);
    memset(nk, 0, sizeof *nk);
}

/* ---- configuration and key material ------------------------------------ */

static bool pem_configured(const struct config *cfg)
{
    return cfg->jwt.private_key_pem && cfg->jwt.public_key_pem;
}

rc_t keys_check_config(const struct config *cfg, char *err, size_t errlen)
{
    const char *priv = cfg->jwt.private_key_pem, *pub = cfg->jwt.public_key_pem;
    EVP_PKEY *pk = NULL;
    if (!priv && !pub)
        return RC_OK;
    if (!priv || !pub) {
        snprintf(err, errlen, "%s: must be set together with %s",
                 priv ? "JWT__PUBLIC_KEY_PEM" : "JWT__PRIVATE_KEY_PEM",
                 priv ? "JWT__PRIVATE_KEY_PEM" : "JWT__PUBLIC_KEY_PEM");
        return RC_INVALID;
    }
    if (rsakey_parse_private(priv, strlen(priv), &pk) != RC_OK) {
        snprintf(err, errlen,
                 "JWT__PRIVATE_KEY_PEM: not a usable RSA private key; allowed: an unencrypted "
                 "PKCS#8 or PKCS#1 PEM of %d to %d bits",
                 RSAKEY_MIN_BITS, RSAKEY_MAX_BITS);
        return RC_INVALID;
    }
    EVP_PKEY_free(pk);
    pk = NULL;
    if (rsakey_parse_public(pub, strlen(pub), &pk) != RC_OK) {
        snprintf(err, errlen,
                 "JWT__PUBLIC_KEY_PEM: not a usable RSA public key; allowed: a "
                 "SubjectPublicKeyInfo PEM (BEGIN PUBLIC KEY) of %d to %d bits",
                 RSAKEY_MIN_BITS, RSAKEY_MAX_BITS);
        return RC_INVALID;
    }
    EVP_PKEY_free(pk);
    if (rsakey_check_pair(priv, strlen(priv), pub, strlen(pub)) != RC_OK) {
        snprintf(err, errlen,
                 "JWT__PRIVATE_KEY_PEM: does not match JWT__PUBLIC_KEY_PEM; the two must be the "
                 "private and public halves of one RSA key");
        return RC_INVALID;
    }
    return RC_OK;
}

/* PKCS#8 PEM of a private key PEM (PKCS#1 or PKCS#8), the stored form of
 * data-model §7. Private helper: crypto/rsakey.h has no re-encoder. The
 * secure-memory BIO wipes its buffer when freed. */
static rc_t pkcs8_of(const char *pem, char **out)
{
    EVP_PKEY *pk = NULL;
    BIO *b = NULL;
    char *p = NULL;
    *out = NULL;
    rc_t rc = rsakey_parse_private(pem, strlen(pem), &pk);
    if (rc != RC_OK)
        goto out;
    rc = RC_CRYPTO;
    b = BIO_new(BIO_s_secmem());
    if (!b || PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL) != 1)
        goto out;
    long n = BIO_get_mem_data(b, &p);
    if (n <= 0)
        goto out;
    *out = xstrndup(p, (size_t)n);
    rc = RC_OK;
out:
    BIO_free(b);
    EVP_PKEY_free(pk);
    return rc;
}

/* Seals a private PEM for the row of kid (enc2, AAD = kid). */
static rc_t seal_private(struct keys *k, const char *pem, const char *kid, char **out)
{
    return envelope_seal(k->ek, pem, strlen(pem), kid, strlen(kid), out);
}

static rc_t make_generated(struct keys *k, struct new_key *nk)
{
    char *priv = NULL;
    memset(nk, 0, sizeof *nk);
    rc_t rc = rsakey_generate(&priv, &nk->public_pem);
    if (rc == RC_OK) {
        rsakey_kid(nk->public_pem, strlen(nk->public_pem), nk->kid);
        rc = seal_private(k, priv, nk->kid, &nk->sealed);
    }
    xfree_secret_str(priv);
    uuid_v4(nk->id);
    if (rc != RC_OK)
        new_key_free(nk);
    return rc;
}

/* The configured pair, kid from the exact configured public text. */
static rc_t make_configured(struct keys *k, struct new_key *nk)
{
    char *priv = NULL;
    memset(nk, 0, sizeof *nk);
    const char *pub = k->cfg->jwt.public_key_pem;
    rsakey_kid(pub, strlen(pub), nk->kid);
    nk->public_pem = xstrdup(pub);
    rc_t rc = pkcs8_of(k->cfg->jwt.private_key_pem, &priv);
    if (rc == RC_OK)
        rc = seal_private(k, priv, nk->kid, &nk->sealed);
    xfree_secret_str(priv);
    uuid_v4(nk->id);
    if (rc != RC_OK)
        new_key_free(nk);
    return rc;
}

static rc_t insert_key(struct db_conn *c, const struct new_key *nk, int64_t now_us)
{
    struct signing_key_new row = {.id = nk->id,
                                  .kid = nk->kid,
                                  .public_key = nk->public_pem,
                                  .private_key = nk->sealed,
                                  .now_us = now_us};
    return signing_keys_insert_active(c, &row);
}

/* ---- bootstrap (config-ops §5.2) ---------------------------------------- */

/* One log line {event, kid[, field: value]}; never a key or a PEM. */
static void log_kid(enum log_level lvl, const char *event, const char *kid, const char *field,
                    const char *value)
{
    struct log_line l;
    log_begin(&l, lvl, event, NULL);
    log_str(&l, "kid", kid);
    if (field)
        log_str(&l, field, value);
    log_end(&l);
}

static rc_t active_exists(struct keys *k, bool *out)
{
    struct db_conn *c = NULL;
    struct arena *a = arena_new();
    struct signing_key_row row;
    *out = false;
    rc_t rc = db_acquire(k->db, DB_READ, &c);
    if (rc == RC_OK)
        rc = signing_keys_get_active(c, a, false, &row);
    if (rc == RC_OK)
        *out = true;
    else if (rc == RC_NOT_FOUND)
        rc = RC_OK;
    db_release(c);
    arena_free(a);
    return rc;
}

enum boot_step { BOOT_DONE, BOOT_INSERT, BOOT_REACTIVATE, BOOT_GENERATE };

/* Inside the bootstrap unit: what to do with the configured key. */
static rc_t configured_step(struct db_conn *c, struct arena *a, const char *kid,
                            struct signing_key_row *row, enum boot_step *out)
{
    struct signing_key_row active;
    rc_t rc = signing_keys_get_active(c, a, true, &active);
    if (rc != RC_NOT_FOUND) {
        *out = BOOT_DONE; /* a key is active (or an error) */
        return rc;
    }
    rc = signing_keys_get_by_kid(c, a, kid, row);
    if (rc == RC_NOT_FOUND) {
        *out = BOOT_INSERT;
        return RC_OK;
    }
    if (rc != RC_OK)
        return rc;
    if (strcmp(row->status, "retiring") == 0)
        *out = BOOT_REACTIVATE;
    else if (strcmp(row->status, "retired") == 0)
        *out = BOOT_GENERATE; /* decision: a retired key is never reactivated */
    else
        *out = BOOT_DONE;
    return RC_OK;
}

/* Step 1 of §5.2. *out_generate is set when the configured key is retired. */
static rc_t bootstrap_configured(struct keys *k, bool *out_generate)
{
    struct new_key nk;
    struct db_conn *c = NULL;
    struct arena *a = arena_new();
    struct signing_key_row row;
    enum boot_step step = BOOT_DONE;
    *out_generate = false;
    rc_t rc = make_configured(k, &nk);
    if (rc != RC_OK)
        goto out_nokey;
    rc = db_acquire(k->db, DB_WRITE, &c);
    if (rc == RC_OK)
        rc = db_begin(c);
    if (rc == RC_OK)
        rc = configured_step(c, a, nk.kid, &row, &step);
    int64_t now = time_now_us();
    if (rc == RC_OK && step == BOOT_INSERT)
        rc = insert_key(c, &nk, now);
    else if (rc == RC_OK && step == BOOT_REACTIVATE)
        rc = signing_keys_reactivate(c, row.id, now);
    if (rc == RC_OK)
        rc = db_commit(c);
    if (rc == RC_CONFLICT || (rc == RC_NOT_FOUND && step == BOOT_REACTIVATE))
        rc = RC_OK; /* another process bootstrapped first: use its key */
    else if (rc == RC_OK && (step == BOOT_INSERT || step == BOOT_REACTIVATE))
        log_kid(LOG_INFO, "signing_key_bootstrapped", nk.kid, "source", "configured");
    *out_generate = rc == RC_OK && step == BOOT_GENERATE;
    new_key_free(&nk);
out_nokey:
    db_release(c);
    arena_free(a);
    return rc;
}

/* Step 2 of §5.2 (also after a retired configured key: log at error). The
 * key is generated before the write unit so the SQLite writer is not held
 * for the key generation. */
static rc_t bootstrap_generated(struct keys *k, bool configured_retired)
{
    struct new_key nk;
    struct db_conn *c = NULL;
    struct arena *a = arena_new();
    struct signing_key_row active;
    bool exists = false;
    bool inserted = false;
    rc_t rc = active_exists(k, &exists);
    if (rc != RC_OK || exists)
        goto out_nokey;
    rc = make_generated(k, &nk);
    if (rc != RC_OK)
        goto out_nokey;
    rc = db_acquire(k->db, DB_WRITE, &c);
    if (rc == RC_OK)
        rc = db_begin(c);
    if (rc == RC_OK)
        rc = signing_keys_get_active(c, a, true, &active);
    if (rc == RC_NOT_FOUND) {
        rc = insert_key(c, &nk, time_now_us());
        if (rc == RC_OK)
            rc = db_commit(c);
        inserted = rc == RC_OK;
    }
    if (rc == RC_CONFLICT)
        rc = RC_OK; /* lost the race: the winner's key is active */
    if (inserted && configured_retired)
        log_kid(LOG_ERROR, "signing_key_bootstrap_generated", nk.kid, NULL, NULL);
    else if (inserted)
        log_kid(LOG_INFO, "signing_key_bootstrapped", nk.kid, "source", "generated");
    new_key_free(&nk);
out_nokey:
    db_release(c);
    arena_free(a);
    return rc;
}

static rc_t bootstrap(struct keys *k)
{
    bool generate = !pem_configured(k->cfg);
    if (!generate) {
        rc_t rc = bootstrap_configured(k, &generate);
        if (rc != RC_OK || !generate)
            return rc;
        return bootstrap_generated(k, true);
    }
    return bootstrap_generated(k, false);
}

/* ---- cache loading (load_mu held) --------------------------------------- */

static void lock(pthread_mutex_t *m)
{
    pthread_mutex_lock(m);
}

static void unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
}

/* JWKS (api-core §4.3) of a keyset, which is sorted by kid already. */
static rc_t render_jwks(const struct jwt_keyset *ks, char **out, size_t *out_len)
{
    struct buf b;
    rc_t rc = RC_OK;
    buf_init(&b, JWKS_MAX);
    buf_puts(&b, "{\"keys\":[");
    for (size_t i = 0; i < jwt_keyset_count(ks) && rc == RC_OK; i++) {
        char *n = NULL, *e = NULL;
        rc = rsakey_jwk_params(jwt_keyset_key(ks, i), &n, &e);
        if (rc == RC_OK) {
            buf_printf(&b, "%s{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"",
                       i ? "," : "");
            buf_json_escape(&b, jwt_keyset_kid(ks, i), SIZE_MAX);
            buf_printf(&b, "\",\"n\":\"%s\",\"e\":\"%s\"}", n, e);
        }
        free(n);
        free(e);
    }
    buf_puts(&b, "]}");
    if (rc == RC_OK && b.err)
        rc = RC_LIMIT;
    *out_len = b.len;
    *out = buf_take(&b);
    if (rc != RC_OK) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* "kid:status\n" per row (rows are in kid order): the same text as
 * signing_keys_fingerprint, built from the rows the set is made of. */
static char *fingerprint_of(const struct signing_key_row *rows, size_t n)
{
    struct buf b;
    buf_init(&b, SIZE_MAX);
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s:%s\n", rows[i].kid, rows[i].status);
    return buf_take(&b);
}

/* Builds set + JWKS from the rows; rows whose public key does not parse
 * (a damaged imported row) are left out and logged. */
static rc_t build_set(const struct signing_key_row *rows, size_t n, struct jwt_keyset **out_ks,
                      char **out_jwks, size_t *out_len)
{
    struct jwt_key_input *in = xcalloc(n ? n : 1, sizeof *in);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        EVP_PKEY *pk = NULL;
        size_t len = strlen(rows[i].public_key ? rows[i].public_key : "");
        if (!rows[i].public_key || rsakey_parse_public(rows[i].public_key, len, &pk) != RC_OK) {
            log_kid(LOG_ERROR, "signing_key_unusable", rows[i].kid, "part", "public_key");
            continue;
        }
        EVP_PKEY_free(pk);
        in[m++] = (struct jwt_key_input){rows[i].kid, rows[i].public_key, len};
    }
    rc_t rc = jwt_keyset_new(in, m, out_ks);
    free(in);
    if (rc == RC_OK) {
        rc = render_jwks(*out_ks, out_jwks, out_len);
        if (rc != RC_OK) {
            jwt_keyset_unref(*out_ks);
            *out_ks = NULL;
        }
    }
    return rc;
}

static bool has_active(const char *fp)
{
    return strstr(fp, ":active\n") != NULL;
}

/* Reads the fingerprint; rebuilds the set when it changed. Bootstraps when
 * no key is active. */
static rc_t check_set_locked(struct keys *k)
{
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    const char *fp = "";
    struct signing_key_row *rows = NULL;
    size_t n = 0;
    rc_t rc = RC_OK;
    for (int i = 0;; i++) {
        rc = db_acquire(k->db, DB_READ, &c);
        if (rc == RC_OK)
            rc = signing_keys_fingerprint(c, a, &fp);
        if (rc != RC_OK || has_active(fp) || i + 1 >= BOOTSTRAP_ATTEMPTS)
            break;
        db_release(c);
        c = NULL;
        if ((rc = bootstrap(k)) != RC_OK)
            break;
    }
    if (rc != RC_OK)
        goto out;
    __atomic_add_fetch(&k->stats.set_checks, 1, __ATOMIC_RELAXED);
    lock(&k->mu);
    bool same = k->ks && strcmp(k->fp, fp) == 0;
    if (same)
        k->set_checked_us = time_mono_us();
    unlock(&k->mu);
    if (same)
        goto out;
    rc = signing_keys_list_verification(c, a, &rows, &n);
    db_release(c);
    c = NULL;
    struct jwt_keyset *ks = NULL;
    char *jwks = NULL, *newfp = NULL;
    size_t jlen = 0;
    if (rc == RC_OK)
        rc = build_set(rows, n, &ks, &jwks, &jlen);
    if (rc != RC_OK)
        goto out;
    jwt_keyset_set_memo(ks, k->memo);
    newfp = fingerprint_of(rows, n);
    __atomic_add_fetch(&k->stats.set_loads, 1, __ATOMIC_RELAXED);
    lock(&k->mu);
    struct jwt_keyset *old = k->ks;
    char *oldfp = k->fp, *oldjwks = k->jwks;
    k->ks = ks;
    k->fp = newfp;
    k->jwks = jwks;
    k->jwks_len = jlen;
    k->set_checked_us = time_mono_us();
    unlock(&k->mu);
    jwt_keyset_unref(old);
    free(oldfp);
    free(oldjwks);
out:
    db_release(c);
    arena_free(a);
    lock(&k->mu);
    k->set_fail_us = rc == RC_OK ? 0 : time_mono_us();
    unlock(&k->mu);
    return rc;
}

/* Decrypts the stored private key of row into a signer. */
static rc_t signer_of(struct keys *k, const struct signing_key_row *row, struct jwt_signer **out)
{
    char *pem = NULL;
    size_t len = 0;
    const char *stored = row->private_key ? row->private_key : "";
    rc_t rc = envelope_open(k->ek, stored, strlen(stored), row->kid, strlen(row->kid), &pem, &len);
    if (rc == RC_OK)
        rc = jwt_signer_new(pem, len, row->kid, out);
    if (rc == RC_OK)
        jwt_signer_set_memo(*out, k->memo);
    xfree_secret(pem, len);
    if (rc != RC_OK) {
        log_kid(LOG_ERROR, "signing_key_unusable", row->kid, "part", "private_key");
        rc = RC_CRYPTO;
    }
    return rc;
}

/* Reads the active row; decrypts it only when the kid changed. */
static rc_t check_signer_locked(struct keys *k)
{
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    struct signing_key_row row;
    struct jwt_signer *s = NULL;
    rc_t rc = RC_OK;
    for (int i = 0;; i++) {
        rc = db_acquire(k->db, DB_READ, &c);
        if (rc == RC_OK)
            rc = signing_keys_get_active(c, a, false, &row);
        db_release(c);
        c = NULL;
        if (rc != RC_NOT_FOUND || i + 1 >= BOOTSTRAP_ATTEMPTS)
            break;
        if ((rc = bootstrap(k)) != RC_OK)
            break;
    }
    if (rc == RC_NOT_FOUND)
        rc = RC_INTERNAL; /* bootstrapped, yet no active key: should not happen */
    if (rc != RC_OK)
        goto out;
    lock(&k->mu);
    bool same = k->signer && strcmp(jwt_signer_kid(k->signer), row.kid) == 0;
    if (same)
        k->signer_checked_us = time_mono_us();
    unlock(&k->mu);
    if (same)
        goto out;
    rc = signer_of(k, &row, &s);
    if (rc != RC_OK)
        goto out;
    __atomic_add_fetch(&k->stats.signer_loads, 1, __ATOMIC_RELAXED);
    lock(&k->mu);
    struct jwt_signer *old = k->signer;
    k->signer = s;
    k->signer_checked_us = time_mono_us();
    unlock(&k->mu);
    jwt_signer_unref(old);
out:
    lock(&k->mu);
    k->signer_fail_us = rc == RC_OK ? 0 : time_mono_us();
    k->signer_fail_rc = rc;
    unlock(&k->mu);
    arena_free(a);
    return rc;
}

/* Drops every cache; the next call reloads. Takes load_mu so a refresh
 * that read the database before our change cannot install it afterwards. */
static void invalidate(struct keys *k)
{
    lock(&k->load_mu);
    lock(&k->mu);
    struct jwt_keyset *ks = k->ks;
    struct jwt_signer *s = k->signer;
    char *fp = k->fp, *jwks = k->jwks;
    k->ks = NULL;
    k->signer = NULL;
    k->fp = k->jwks = NULL;
    k->jwks_len = 0;
    k->set_checked_us = k->signer_checked_us = 0;
    k->set_fail_us = k->signer_fail_us = 0;
    unlock(&k->mu);
    unlock(&k->load_mu);
    jwt_keyset_unref(ks);
    jwt_signer_unref(s);
    free(fp);
    free(jwks);
}

/* ---- cache access -------------------------------------------------------- */

static bool recent(int64_t at_us, int64_t now_us, int64_t window_us)
{
    return at_us != 0 && now_us - at_us < window_us;
}

/* A referenced keyset (caller unrefs), refreshed per keys.h; NULL with
 * *rc set when none can be had. */
static struct jwt_keyset *get_set(struct keys *k, rc_t *rc)
{
    const int64_t soft = KEYS_CACHE_SOFT_TTL_S * US_PER_S, hard = KEYS_CACHE_TTL_S * US_PER_S;
    int64_t now = time_mono_us();
    struct jwt_keyset *ks = NULL;
    *rc = RC_OK;
    lock(&k->mu);
    bool have = k->ks != NULL;
    int64_t checked = k->set_checked_us, failed = k->set_fail_us;
    if (have && recent(checked, now, soft))
        ks = jwt_keyset_ref(k->ks);
    unlock(&k->mu);
    if (ks)
        return ks;
    if (have && recent(checked, now, hard)) {
        /* Refresh ahead of expiry on one thread; the others go on. */
        if (pthread_mutex_trylock(&k->load_mu) == 0) {
            lock(&k->mu);
            bool stale = !recent(k->set_checked_us, time_mono_us(), soft);
            unlock(&k->mu);
            if (stale && !recent(failed, now, KEYS_RETRY_AFTER_FAIL_MS * US_PER_MS))
                (void)check_set_locked(k);
            unlock(&k->load_mu);
        }
    } else if (recent(failed, now, KEYS_RETRY_AFTER_FAIL_MS * US_PER_MS)) {
        *rc = RC_UNAVAILABLE;
        return NULL;
    } else {
        lock(&k->load_mu);
        lock(&k->mu);
        bool fresh = k->ks && recent(k->set_checked_us, time_mono_us(), hard);
        unlock(&k->mu);
        if (!fresh)
            *rc = check_set_locked(k);
        unlock(&k->load_mu);
    }
    lock(&k->mu);
    if (k->ks && recent(k->set_checked_us, time_mono_us(), hard))
        ks = jwt_keyset_ref(k->ks);
    unlock(&k->mu);
    if (!ks && *rc == RC_OK)
        *rc = RC_UNAVAILABLE;
    return ks;
}

/* A referenced signer (caller unrefs) or NULL with *rc. */
static struct jwt_signer *get_signer(struct keys *k, rc_t *rc)
{
    const int64_t ttl = KEYS_CACHE_TTL_S * US_PER_S;
    struct jwt_signer *s = NULL;
    *rc = RC_OK;
    lock(&k->mu);
    int64_t now = time_mono_us();
    if (k->signer && recent(k->signer_checked_us, now, ttl))
        s = jwt_signer_ref(k->signer);
    else if (recent(k->signer_fail_us, now, KEYS_RETRY_AFTER_FAIL_MS * US_PER_MS))
        *rc = k->signer_fail_rc;
    unlock(&k->mu);
    if (s || *rc != RC_OK)
        return s;
    lock(&k->load_mu);
    lock(&k->mu);
    bool fresh = k->signer && recent(k->signer_checked_us, time_mono_us(), ttl);
    unlock(&k->mu);
    if (!fresh)
        *rc = check_signer_locked(k);
    lock(&k->mu);
    if (*rc == RC_OK && k->signer)
        s = jwt_signer_ref(k->signer);
    unlock(&k->mu);
    unlock(&k->load_mu);
    if (!s && *rc == RC_OK)
        *rc = RC_INTERNAL;
    return s;
}

/* ---- public API ----------------------------------------------------------- */

rc_t keys_sign(struct keys *k, const json_t *claims, char **out_jwt)
{
    rc_t rc;
    *out_jwt = NULL;
    struct jwt_signer *s = get_signer(k, &rc);
    if (!s)
        return rc;
    rc = jwt_sign(s, claims, out_jwt);
    jwt_signer_unref(s);
    return rc;
}

/* True when this caller may re-check the set for an unknown kid now. */
static bool unknown_kid_recheck_allowed(struct keys *k)
{
    int64_t now = time_mono_us();
    lock(&k->mu);
    bool ok = !recent(k->unknown_kid_us, now, KEYS_UNKNOWN_KID_RELOAD_MS * US_PER_MS);
    if (ok)
        k->unknown_kid_us = now;
    unlock(&k->mu);
    return ok;
}

rc_t keys_verify(struct keys *k, const char *token, size_t len, const char *expected_type,
                 int64_t now_s, json_t **out_claims, struct jwt_error *err)
{
    const char *const auds[] = {k->cfg->app.service};
    struct jwt_error e = {JWT_OK, NULL, NULL};
    rc_t rc;
    *out_claims = NULL;
    struct jwt_keyset *ks = get_set(k, &rc);
    if (!ks)
        goto out;
    rc = jwt_verify(ks, token, len, expected_type, auds, 1, now_s, out_claims, &e);
    if (rc != RC_OK && e.reason == JWT_UNKNOWN_KID && unknown_kid_recheck_allowed(k)) {
        /* Maybe rotated by another process: one re-check, then decide. */
        __atomic_add_fetch(&k->stats.unknown_kid_rechecks, 1, __ATOMIC_RELAXED);
        lock(&k->load_mu);
        rc_t lrc = check_set_locked(k);
        unlock(&k->load_mu);
        if (lrc == RC_OK) {
            jwt_keyset_unref(ks);
            ks = get_set(k, &lrc);
            if (ks)
                rc = jwt_verify(ks, token, len, expected_type, auds, 1, now_s, out_claims, &e);
        }
    }
    jwt_keyset_unref(ks);
out:
    if (err)
        *err = e;
    return rc;
}

rc_t keys_jwks(struct keys *k, char **out_body, size_t *out_len)
{
    const int64_t check = KEYS_JWKS_CHECK_MS * US_PER_MS, hard = KEYS_CACHE_TTL_S * US_PER_S;
    rc_t rc = RC_OK;
    *out_body = NULL;
    *out_len = 0;
    lock(&k->mu);
    bool fresh = k->jwks && recent(k->set_checked_us, time_mono_us(), check);
    unlock(&k->mu);
    if (!fresh) {
        lock(&k->load_mu);
        lock(&k->mu);
        fresh = k->jwks && recent(k->set_checked_us, time_mono_us(), check);
        unlock(&k->mu);
        if (!fresh)
            rc = check_set_locked(k);
        unlock(&k->load_mu);
    }
    /* A failed check may still serve a document younger than the cache
     * limit (a database blip should not take JWKS down). */
    lock(&k->mu);
    if (k->jwks && recent(k->set_checked_us, time_mono_us(), hard)) {
        *out_body = xstrndup(k->jwks, k->jwks_len);
        *out_len = k->jwks_len;
        rc = RC_OK;
    } else if (rc == RC_OK) {
        rc = RC_UNAVAILABLE;
    }
    unlock(&k->mu);
    return rc;
}

/* ---- rotation and retirement (config-ops §5.3) ------------------------------ */

static void log_retired(const char *const *kids, size_t n)
{
    struct buf b;
    buf_init(&b, 64 * 1024);
    buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++) {
        buf_puts(&b, i ? ",\"" : "\"");
        buf_json_escape(&b, kids[i], SIZE_MAX);
        buf_putc(&b, '"');
    }
    buf_putc(&b, ']');
    struct log_line l;
    log_begin(&l, LOG_INFO, "signing_keys_retired", NULL);
    log_raw(&l, "kids", b.err ? "[]" : b.data);
    log_end(&l);
    buf_free(&b);
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* The retirement window E of this run (seconds). */
static rc_t window_s(struct keys *k, struct db_conn *c, int64_t overlap_s, bool explicit_overlap,
                     int64_t *out)
{
    const struct config *cfg = k->cfg;
    int64_t clients = 0;
    if (explicit_overlap && overlap_s == 0) {
        *out = 0;
        return RC_OK;
    }
    rc_t rc = signing_keys_max_client_token_ttl(c, &clients);
    int64_t e = max64(overlap_s, cfg->jwt.access_token_ttl_seconds);
    e = max64(e, cfg->email.otp_ttl_seconds);
    e = max64(e, cfg->email.action_token_ttl_seconds);
    *out = max64(e, clients);
    return rc;
}

struct rotate_out {
    char retiring[SIGNING_KEY_KID_MAX + 1];
    const char **retired;
    size_t n_retired;
};

/* One attempt of the rotation unit. RC_NOT_FOUND: no active key (or it
 * changed under us): bootstrap and retry. */
static rc_t rotate_once(struct keys *k, struct arena *a, const struct new_key *nk,
                        int64_t overlap_s, bool explicit_overlap, struct rotate_out *ro)
{
    struct db_conn *c = NULL;
    struct signing_key_row active;
    int64_t e = 0;
    rc_t rc = db_acquire(k->db, DB_WRITE, &c);
    if (rc == RC_OK)
        rc = db_begin(c);
    if (rc == RC_OK)
        rc = signing_keys_get_active(c, a, true, &active);
    if (rc == RC_OK && strcmp(active.kid, nk->kid) == 0) {
        log_kid(LOG_ERROR, "signing_key_rotation_kid_collision", nk->kid, NULL, NULL);
        rc = RC_INTERNAL;
    }
    if (rc == RC_OK)
        rc = window_s(k, c, overlap_s, explicit_overlap, &e);
    int64_t now = time_now_us();
    if (rc == RC_OK)
        rc = signing_keys_demote(c, active.id, now + e * US_PER_S, now);
    if (rc == RC_OK)
        rc = insert_key(c, nk, now);
    if (rc == RC_OK)
        rc = signing_keys_retire_due(c, a, now, &ro->retired, &ro->n_retired);
    if (rc == RC_OK)
        rc = db_commit(c);
    db_release(c);
    if (rc == RC_OK)
        snprintf(ro->retiring, sizeof ro->retiring, "%s", active.kid);
    return rc;
}

rc_t keys_rotate(struct keys *k, int64_t overlap_s, bool explicit_overlap,
                 char new_kid[KEYS_KID_MAX], char retiring_kid[KEYS_KID_MAX])
{
    struct new_key nk;
    struct arena *a = NULL;
    struct rotate_out ro = {{0}, NULL, 0};
    new_kid[0] = retiring_kid[0] = '\0';
    if (overlap_s < 0 || overlap_s > KEYS_OVERLAP_MAX_S)
        return RC_INVALID;
    /* Generated before the unit: holding the SQLite writer (or the row
     * lock) through a key generation would stall every other writer. */
    rc_t rc = make_generated(k, &nk);
    if (rc != RC_OK)
        return rc;
    a = arena_new();
    for (int i = 0; i < ROTATE_ATTEMPTS; i++) {
        rc = rotate_once(k, a, &nk, overlap_s, explicit_overlap, &ro);
        if (rc == RC_NOT_FOUND) { /* no active key, or it was demoted meanwhile */
            rc_t brc = bootstrap(k);
            if (brc != RC_OK) {
                rc = brc;
                break;
            }
        }
        if (rc != RC_NOT_FOUND && rc != RC_BUSY && rc != RC_CONFLICT)
            break;
    }
    if (rc == RC_NOT_FOUND || rc == RC_CONFLICT)
        rc = RC_BUSY;
    if (rc == RC_OK) {
        invalidate(k);
        snprintf(new_kid, KEYS_KID_MAX, "%s", nk.kid);
        snprintf(retiring_kid, KEYS_KID_MAX, "%s", ro.retiring);
        struct log_line l;
        log_begin(&l, LOG_INFO, "signing_key_rotated", NULL);
        log_str(&l, "new_kid", nk.kid);
        log_str(&l, "retiring_kid", ro.retiring);
        log_end(&l);
        if (ro.n_retired)
            log_retired(ro.retired, ro.n_retired);
    }
    new_key_free(&nk);
    arena_free(a);
    return rc;
}

void keys_job(struct keys *k)
{
    struct arena *a = arena_new();
    struct db_conn *c = NULL;
    const char **kids = NULL;
    size_t n = 0;
    rc_t rc = db_acquire(k->db, DB_WRITE, &c);
    if (rc == RC_OK)
        rc = signing_keys_retire_due(c, a, time_now_us(), &kids, &n);
    db_release(c);
    if (rc != RC_OK)
        log_msg(LOG_WARNING, "signing_keys_retirement_failed", "%s", rc_str(rc));
    if (n > 0) {
        invalidate(k);
        log_retired(kids, n);
    }
    arena_free(a);
}

/* ---- lifecycle -------------------------------------------------------------- */

rc_t keys_new(struct db *db, const struct config *cfg, const struct secrets *sec, struct keys **out)
{
    char err[512];
    *out = NULL;
    rc_t rc = keys_check_config(cfg, err, sizeof err);
    if (rc != RC_OK) {
        log_msg(LOG_CRITICAL, "signing_key_config_invalid", "%s", err);
        return rc;
    }
    struct keys *k = xcalloc(1, sizeof *k);
    k->db = db;
    k->cfg = cfg;
    pthread_mutex_init(&k->mu, NULL);
    pthread_mutex_init(&k->load_mu, NULL);
    k->memo = jwt_memo_new();
    const char *pass = sec && sec->signing_passphrase ? sec->signing_passphrase : "";
    rc = envelope_key_new(pass, strlen(pass), ENVELOPE_INFO_SIGNING_KEY, &k->ek);
    if (rc == RC_OK)
        rc = bootstrap(k);
    if (rc != RC_OK) {
        keys_free(k);
        return rc;
    }
    /* Warm the caches; a failure here is reported again on use. */
    rc_t wrc;
    jwt_signer_unref(get_signer(k, &wrc));
    jwt_keyset_unref(get_set(k, &wrc));
    *out = k;
    return RC_OK;
}

void keys_free(struct keys *k)
{
    if (!k)
        return;
    jwt_keyset_unref(k->ks);
    jwt_signer_unref(k->signer);
    jwt_memo_unref(k->memo);
    free(k->fp);
    free(k->jwks);
    envelope_key_free(k->ek);
    pthread_mutex_destroy(&k->mu);
    pthread_mutex_destroy(&k->load_mu);
    free(k);
}

void keys_stats(struct keys *k, struct keys_stats *out)
{
    out->set_checks = __atomic_load_n(&k->stats.set_checks, __ATOMIC_RELAXED);
    out->set_loads = __atomic_load_n(&k->stats.set_loads, __ATOMIC_RELAXED);
    out->unknown_kid_rechecks = __atomic_load_n(&k->stats.unknown_kid_rechecks, __ATOMIC_RELAXED);
    out->signer_loads = __atomic_load_n(&k->stats.signer_loads, __ATOMIC_RELAXED);
    out->memo_hits = jwt_memo_hits(k->memo);
}
