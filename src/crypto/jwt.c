/* RS256 JWT signing and verification (see jwt.h, api-core §5).
 *
 * Invariants: signers and key sets are immutable after *_new; each holds, per
 * key, an EVP_PKEY_CTX already initialised for sign/verify with PKCS#1 v1.5
 * padding and SHA-256. A verify duplicates that template (≈0.1 µs, against
 * ≈2.5 µs for EVP_DigestVerifyInit) and hashes the signing input itself with
 * a pre-fetched SHA-256, so key sets are only read and need no locks. The
 * mutable parts lock themselves: a signer's key slots (one sign at a time
 * per slot) and the signature memo.
 * Lifetimes are reference counts (atomic). */
#include "crypto/jwt.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "crypto/enc.h"
#include "crypto/rsakey.h"
#include "util/buf.h"
#include "util/mem.h"
#include "util/str.h"

#define SIG_MAX (RSAKEY_MAX_BITS / 8)

/* A key with its prepared operation context (sign or verify). */
struct prepared_key {
    char *kid;
    size_t kid_len;
    EVP_PKEY *pkey;
    EVP_PKEY_CTX *tmpl; /* initialised; only ever duplicated */
    size_t sig_len;     /* modulus bytes */
    uint64_t fp;        /* first 8 bytes of SHA-256 over the public key DER */
};

/* Direct-mapped: a slot is picked by the tag's first bytes and a newer
 * entry simply replaces an older one. Striped locks keep threads that
 * touch different slots apart. */
#define MEMO_STRIPES 16

struct memo_slot {
    unsigned char tag[CRYPTO_SHA256_LEN]; /* SHA-256 of the whole token */
    uint64_t fp;                          /* key that signed it */
    bool used;
};

struct jwt_memo {
    atomic_int refs;
    atomic_ulong hits;
    pthread_mutex_t mu[MEMO_STRIPES];
    struct memo_slot slot[JWT_MEMO_SLOTS];
};

/* A signer signs through one of SIGN_SLOTS private copies of its key, each
 * with its own context, taken with a trylock (a thread starts at its own
 * slot). OpenSSL 3.0 takes a write lock on the RSA object for blinding on
 * every private-key operation, and threads sharing one key queued on it
 * (hundreds of futex sleeps a second under refresh load). */
#define SIGN_SLOTS 8

struct sign_slot {
    pthread_mutex_t mu;
    EVP_PKEY *pkey; /* EVP_PKEY_dup of the signer's key */
    EVP_PKEY_CTX *ctx;
};

struct jwt_signer {
    atomic_int refs;
    struct prepared_key key;
    struct sign_slot slot[SIGN_SLOTS];
    EVP_MD *sha256;
    char *header_b64; /* base64url of the fixed header */
    size_t header_b64_len;
    struct jwt_memo *memo; /* NULL: none */
};

struct jwt_keyset {
    atomic_int refs;
    size_t n;
    struct prepared_key *keys; /* sorted by kid, byte order */
    EVP_MD *sha256;
    struct jwt_memo *memo; /* NULL: none */
};

/* ---- shared helpers ---------------------------------------------------- */

static bool sha256_evp(const EVP_MD *md, const void *data, size_t n,
                       unsigned char out[CRYPTO_SHA256_LEN])
{
    unsigned int len = 0;
    return EVP_Digest(data, n, out, &len, md, NULL) == 1 && len == CRYPTO_SHA256_LEN;
}

/* The memo binds an entry to the key itself, not to its kid: a set that
 * maps the same kid to another key never matches an old entry. */
static bool key_fingerprint(EVP_PKEY *pkey, const EVP_MD *md, uint64_t *out)
{
    unsigned char *der = NULL, h[CRYPTO_SHA256_LEN];
    int n = i2d_PUBKEY(pkey, &der);
    bool ok = n > 0 && sha256_evp(md, der, (size_t)n, h);
    OPENSSL_free(der);
    if (ok)
        memcpy(out, h, sizeof *out);
    return ok;
}

static rc_t prepare_key(EVP_PKEY *pkey, EVP_MD *md, bool sign, struct prepared_key *k)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = c && (sign ? EVP_PKEY_sign_init(c) : EVP_PKEY_verify_init(c)) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(c, md) == 1 && key_fingerprint(pkey, md, &k->fp);
    if (!ok) {
        EVP_PKEY_CTX_free(c);
        ERR_clear_error();
        return RC_CRYPTO;
    }
    k->pkey = pkey;
    k->tmpl = c;
    k->sig_len = (size_t)EVP_PKEY_get_size(pkey);
    return RC_OK;
}

static void release_key(struct prepared_key *k)
{
    EVP_PKEY_CTX_free(k->tmpl);
    EVP_PKEY_free(k->pkey);
    free(k->kid);
}

/* ---- signature memo ---------------------------------------------------- */

struct jwt_memo *jwt_memo_new(void)
{
    struct jwt_memo *m = xcalloc(1, sizeof *m);
    atomic_init(&m->refs, 1);
    atomic_init(&m->hits, 0);
    for (int i = 0; i < MEMO_STRIPES; i++)
        pthread_mutex_init(&m->mu[i], NULL);
    return m;
}

struct jwt_memo *jwt_memo_ref(struct jwt_memo *m)
{
    if (m)
        atomic_fetch_add(&m->refs, 1);
    return m;
}

void jwt_memo_unref(struct jwt_memo *m)
{
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
        return;
    for (int i = 0; i < MEMO_STRIPES; i++)
        pthread_mutex_destroy(&m->mu[i]);
    free(m);
}

uint64_t jwt_memo_hits(const struct jwt_memo *m)
{
    return m ? atomic_load(&((struct jwt_memo *)m)->hits) : 0;
}

static size_t memo_index(const unsigned char tag[CRYPTO_SHA256_LEN])
{
    uint32_t v;
    memcpy(&v, tag, sizeof v);
    return v & (JWT_MEMO_SLOTS - 1);
}

static bool memo_has(struct jwt_memo *m, const unsigned char tag[CRYPTO_SHA256_LEN], uint64_t fp)
{
    size_t i = memo_index(tag);
    pthread_mutex_t *mu = &m->mu[i % MEMO_STRIPES];
    pthread_mutex_lock(mu);
    const struct memo_slot *e = &m->slot[i];
    bool hit = e->used && e->fp == fp && CRYPTO_memcmp(e->tag, tag, CRYPTO_SHA256_LEN) == 0;
    pthread_mutex_unlock(mu);
    if (hit)
        atomic_fetch_add_explicit(&m->hits, 1, memory_order_relaxed);
    return hit;
}

static void memo_put(struct jwt_memo *m, const unsigned char tag[CRYPTO_SHA256_LEN], uint64_t fp)
{
    size_t i = memo_index(tag);
    pthread_mutex_t *mu = &m->mu[i % MEMO_STRIPES];
    pthread_mutex_lock(mu);
    struct memo_slot *e = &m->slot[i];
    memcpy(e->tag, tag, CRYPTO_SHA256_LEN);
    e->fp = fp;
    e->used = true;
    pthread_mutex_unlock(mu);
}

/* ---- signer ------------------------------------------------------------ */

rc_t jwt_signer_new(const char *private_pem, size_t len, const char *kid, struct jwt_signer **out)
{
    *out = NULL;
    if (!kid || !*kid)
        return RC_INVALID;
    EVP_PKEY *pkey = NULL;
    rc_t rc = rsakey_parse_private(private_pem, len, &pkey);
    if (rc)
        return rc;
    struct jwt_signer *s = xcalloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    for (int i = 0; i < SIGN_SLOTS; i++)
        pthread_mutex_init(&s->slot[i].mu, NULL);
    s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!s->sha256) {
        EVP_PKEY_free(pkey);
        rc = RC_CRYPTO;
        goto out;
    }
    rc = prepare_key(pkey, s->sha256, true, &s->key);
    if (rc) {
        EVP_PKEY_free(pkey);
        goto out;
    }
    for (int i = 0; !rc && i < SIGN_SLOTS; i++) {
        struct prepared_key k;
        EVP_PKEY *copy = EVP_PKEY_dup(pkey);
        rc = copy ? prepare_key(copy, s->sha256, true, &k) : RC_CRYPTO;
        if (rc) {
            EVP_PKEY_free(copy);
            break;
        }
        s->slot[i].pkey = copy;
        s->slot[i].ctx = k.tmpl;
    }
    if (rc)
        goto out;
    s->key.kid = xstrdup(kid);
    s->key.kid_len = strlen(kid);
    struct buf h;
    buf_init(&h, 4096);
    buf_puts(&h, "{\"alg\":\"RS256\",\"kid\":\"");
    buf_json_escape(&h, kid, s->key.kid_len);
    buf_puts(&h, "\",\"typ\":\"JWT\"}");
    if (h.err) {
        buf_free(&h);
        rc = RC_INVALID;
        goto out;
    }
    s->header_b64 = crypto_b64_encode_new(CRYPTO_B64_URL, h.data, h.len);
    s->header_b64_len = strlen(s->header_b64);
    buf_free(&h);
out:
    if (rc) {
        ERR_clear_error();
        jwt_signer_unref(s);
        return rc;
    }
    *out = s;
    return RC_OK;
}

struct jwt_signer *jwt_signer_ref(struct jwt_signer *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void jwt_signer_set_memo(struct jwt_signer *s, struct jwt_memo *m)
{
    jwt_memo_unref(s->memo);
    s->memo = jwt_memo_ref(m);
}

void jwt_signer_unref(struct jwt_signer *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    jwt_memo_unref(s->memo);
    release_key(&s->key);
    for (int i = 0; i < SIGN_SLOTS; i++) {
        EVP_PKEY_CTX_free(s->slot[i].ctx);
        EVP_PKEY_free(s->slot[i].pkey);
        pthread_mutex_destroy(&s->slot[i].mu);
    }
    EVP_MD_free(s->sha256);
    free(s->header_b64);
    free(s);
}

const char *jwt_signer_kid(const struct jwt_signer *s)
{
    return s->key.kid;
}

static int dump_to_buf(const char *p, size_t n, void *data)
{
    struct buf *b = data;
    buf_append(b, p, n);
    return b->err ? -1 : 0;
}

/* A locked slot: the first free one from this thread's own, else wait for
 * this thread's own. */
static struct sign_slot *take_slot(struct jwt_signer *s)
{
    static atomic_uint next_thread;
    static _Thread_local unsigned mine = UINT_MAX;
    if (mine == UINT_MAX)
        mine = atomic_fetch_add(&next_thread, 1) % SIGN_SLOTS;
    for (unsigned i = 0; i < SIGN_SLOTS; i++) {
        struct sign_slot *sl = &s->slot[(mine + i) % SIGN_SLOTS];
        if (pthread_mutex_trylock(&sl->mu) == 0)
            return sl;
    }
    pthread_mutex_lock(&s->slot[mine].mu);
    return &s->slot[mine];
}

rc_t jwt_sign(const struct jwt_signer *s, const json_t *claims, char **out)
{
    *out = NULL;
    if (!json_is_object(claims))
        return RC_INVALID;
    rc_t rc = RC_LIMIT;
    char *tok = NULL;
    struct buf payload;
    buf_init(&payload, JWT_MAX_TOKEN_LEN);
    if (json_dump_callback(claims, dump_to_buf, &payload, JSON_COMPACT) != 0 || payload.err)
        goto out;
    size_t p64 = crypto_b64_encoded_len(CRYPTO_B64_URL, payload.len);
    size_t s64 = crypto_b64_encoded_len(CRYPTO_B64_URL, s->key.sig_len);
    size_t input_len = s->header_b64_len + 1 + p64;
    if (input_len + 1 + s64 > JWT_MAX_TOKEN_LEN)
        goto out;
    tok = xmalloc(input_len + 1 + s64 + 1);
    memcpy(tok, s->header_b64, s->header_b64_len);
    tok[s->header_b64_len] = '.';
    crypto_b64_encode(CRYPTO_B64_URL, payload.data, payload.len, tok + s->header_b64_len + 1);

    rc = RC_CRYPTO;
    unsigned char digest[CRYPTO_SHA256_LEN], sig[SIG_MAX];
    size_t sig_len = sizeof sig;
    if (!sha256_evp(s->sha256, tok, input_len, digest))
        goto out;
    /* The slots are the one mutable part of a signer; they lock. */
    struct sign_slot *sl = take_slot((struct jwt_signer *)s);
    int signed_ok = EVP_PKEY_sign(sl->ctx, sig, &sig_len, digest, sizeof digest);
    pthread_mutex_unlock(&sl->mu);
    if (signed_ok != 1 || sig_len != s->key.sig_len)
        goto out;
    tok[input_len] = '.';
    crypto_b64_encode(CRYPTO_B64_URL, sig, sig_len, tok + input_len + 1);
    unsigned char tag[CRYPTO_SHA256_LEN];
    if (s->memo && sha256_evp(s->sha256, tok, input_len + 1 + s64, tag))
        memo_put(s->memo, tag, s->key.fp);
    *out = tok;
    tok = NULL;
    rc = RC_OK;
out:
    if (rc)
        ERR_clear_error();
    buf_free(&payload);
    free(tok);
    return rc;
}

/* ---- key set ----------------------------------------------------------- */

static int kid_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int key_cmp(const void *a, const void *b)
{
    const struct prepared_key *x = a, *y = b;
    return kid_cmp(x->kid, x->kid_len, y->kid, y->kid_len);
}

rc_t jwt_keyset_new(const struct jwt_key_input *keys, size_t n, struct jwt_keyset **out)
{
    *out = NULL;
    struct jwt_keyset *ks = xcalloc(1, sizeof *ks);
    atomic_init(&ks->refs, 1);
    ks->keys = xcalloc(n ? n : 1, sizeof *ks->keys);
    ks->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    rc_t rc = ks->sha256 ? RC_OK : RC_CRYPTO;
    for (size_t i = 0; !rc && i < n; i++) {
        EVP_PKEY *pkey = NULL;
        if (!keys[i].kid || !*keys[i].kid) {
            rc = RC_INVALID;
            break;
        }
        rc = rsakey_parse_public(keys[i].public_pem, keys[i].public_pem_len, &pkey);
        if (!rc)
            rc = prepare_key(pkey, ks->sha256, false, &ks->keys[i]);
        if (rc) {
            EVP_PKEY_free(pkey);
            break;
        }
        ks->keys[i].kid = xstrdup(keys[i].kid);
        ks->keys[i].kid_len = strlen(keys[i].kid);
        ks->n = i + 1;
    }
    if (!rc) {
        qsort(ks->keys, ks->n, sizeof *ks->keys, key_cmp);
        for (size_t i = 1; i < ks->n; i++)
            if (key_cmp(&ks->keys[i - 1], &ks->keys[i]) == 0)
                rc = RC_CONFLICT;
    }
    if (rc) {
        ERR_clear_error();
        jwt_keyset_unref(ks);
        return rc;
    }
    *out = ks;
    return RC_OK;
}

struct jwt_keyset *jwt_keyset_ref(struct jwt_keyset *ks)
{
    if (ks)
        atomic_fetch_add(&ks->refs, 1);
    return ks;
}

void jwt_keyset_set_memo(struct jwt_keyset *ks, struct jwt_memo *m)
{
    jwt_memo_unref(ks->memo);
    ks->memo = jwt_memo_ref(m);
}

void jwt_keyset_unref(struct jwt_keyset *ks)
{
    if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
        return;
    jwt_memo_unref(ks->memo);
    for (size_t i = 0; i < ks->n; i++)
        release_key(&ks->keys[i]);
    free(ks->keys);
    EVP_MD_free(ks->sha256);
    free(ks);
}

size_t jwt_keyset_count(const struct jwt_keyset *ks)
{
    return ks->n;
}

const char *jwt_keyset_kid(const struct jwt_keyset *ks, size_t i)
{
    return i < ks->n ? ks->keys[i].kid : NULL;
}

const EVP_PKEY *jwt_keyset_key(const struct jwt_keyset *ks, size_t i)
{
    return i < ks->n ? ks->keys[i].pkey : NULL;
}

static const struct prepared_key *keyset_find(const struct jwt_keyset *ks, const char *kid,
                                              size_t len)
{
    size_t lo = 0, hi = ks->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = kid_cmp(kid, len, ks->keys[mid].kid, ks->keys[mid].kid_len);
        if (c == 0)
            return &ks->keys[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- verification ------------------------------------------------------ */

const char *jwt_reason_str(enum jwt_reason r)
{
    switch (r) {
    case JWT_OK:
        return "ok";
    case JWT_MALFORMED:
        return "malformed";
    case JWT_BAD_ALG:
        return "bad_alg";
    case JWT_BAD_HEADER:
        return "forbidden_header";
    case JWT_NO_KID:
        return "no_kid";
    case JWT_UNKNOWN_KID:
        return "unknown_kid";
    case JWT_BAD_SIGNATURE:
        return "bad_signature";
    case JWT_BAD_CLAIMS:
        return "bad_claims";
    case JWT_IAT_FUTURE:
        return "iat_in_future";
    case JWT_NOT_YET_VALID:
        return "not_yet_valid";
    case JWT_EXPIRED:
        return "expired";
    case JWT_BAD_TYPE:
        return "bad_type";
    case JWT_BAD_AUDIENCE:
        return "bad_audience";
    }
    return "unknown";
}

static void set_error(struct jwt_error *err, enum jwt_reason r)
{
    if (!err)
        return;
    err->reason = r;
    err->code = r == JWT_EXPIRED ? "token_expired" : "invalid_token";
    switch (r) {
    case JWT_OK:
        err->code = NULL;
        err->detail = NULL;
        break;
    case JWT_BAD_ALG:
        err->detail = "Invalid token algorithm.";
        break;
    case JWT_BAD_TYPE:
        err->detail = "Invalid token type.";
        break;
    case JWT_EXPIRED:
        err->detail = "Token has expired.";
        break;
    default:
        err->detail = "Invalid token.";
        break;
    }
}

/* JSON text → object, or NULL. Duplicate members are refused: two readers of
 * one token must never disagree about its claims. */
static json_t *parse_object(const unsigned char *text, size_t n)
{
    json_t *j = json_loadb((const char *)text, n, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* Sign of (number v - x), exact for integers. */
static int num_cmp(const json_t *v, int64_t x)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return (i > x) - (i < x);
    }
    double d = json_real_value(v);
    return (d > (double)x) - (d < (double)x);
}

static bool present(const json_t *claims, const char *name)
{
    const json_t *v = json_object_get(claims, name);
    return v && !json_is_null(v);
}

/* Steps 5 and 6. */
static enum jwt_reason check_times(const json_t *claims, int64_t now_s)
{
    if (!present(claims, "jti") || !present(claims, "iat") || !present(claims, "exp") ||
        !present(claims, "sub"))
        return JWT_BAD_CLAIMS;
    const json_t *iat = json_object_get(claims, "iat");
    const json_t *exp = json_object_get(claims, "exp");
    const json_t *nbf = json_object_get(claims, "nbf");
    if (!json_is_number(iat) || !json_is_number(exp) || (nbf && !json_is_number(nbf)))
        return JWT_BAD_CLAIMS;
    int64_t latest_iat =
        now_s > INT64_MAX - JWT_IAT_LEEWAY_S ? INT64_MAX : now_s + JWT_IAT_LEEWAY_S;
    if (num_cmp(iat, latest_iat) > 0)
        return JWT_IAT_FUTURE;
    if (nbf && num_cmp(nbf, now_s) > 0)
        return JWT_NOT_YET_VALID;
    if (num_cmp(exp, now_s) < 0)
        return JWT_EXPIRED;
    return JWT_OK;
}

/* Step 7. */
static bool type_ok(const json_t *claims, const char *expected)
{
    static const char *const known[] = {"access",        "refresh",      "email_verify",
                                        "otp_challenge", "action_token", "m2m"};
    const char *t = json_string_value(json_object_get(claims, "type"));
    if (!t)
        return false;
    bool is_known = false;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        is_known |= strcmp(t, known[i]) == 0;
    return is_known && (!expected || strcmp(t, expected) == 0);
}

static bool aud_entry_is(const json_t *v, const char *want, size_t want_len)
{
    if (!json_is_string(v))
        return false;
    struct str s = str_trim((struct str){json_string_value(v), json_string_length(v)});
    return s.len > 0 && s.len == want_len && memcmp(s.p, want, want_len) == 0;
}

/* Step 8: every expected audience is one of the token's. */
static bool audience_ok(const json_t *claims, const char *const *expected, int n)
{
    const json_t *aud = json_object_get(claims, "aud");
    for (int i = 0; i < n; i++) {
        const char *want = expected[i] ? expected[i] : "";
        size_t want_len = strlen(want);
        bool found = aud_entry_is(aud, want, want_len);
        size_t j;
        const json_t *v;
        if (json_is_array(aud)) {
            json_array_foreach(aud, j, v)
            {
                found = found || aud_entry_is(v, want, want_len);
            }
        }
        if (!found)
            return false;
    }
    return true;
}

/* Steps 2 and 3: the header decides the key, or the reason it cannot. */
static enum jwt_reason check_header(const json_t *hdr, const struct jwt_keyset *ks,
                                    const struct prepared_key **out_key)
{
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    if (!alg || strcmp(alg, "RS256") != 0)
        return JWT_BAD_ALG;
    if (json_object_get(hdr, "jku") || json_object_get(hdr, "x5u") || json_object_get(hdr, "jwk") ||
        json_object_get(hdr, "crit"))
        return JWT_BAD_HEADER;
    const json_t *kid = json_object_get(hdr, "kid");
    if (!json_is_string(kid) || json_string_length(kid) == 0)
        return JWT_NO_KID;
    *out_key = keyset_find(ks, json_string_value(kid), json_string_length(kid));
    return *out_key ? JWT_OK : JWT_UNKNOWN_KID;
}

/* The header this service writes, {"alg":"RS256","kid":"K","typ":"JWT"}, with
 * K printable ASCII without '"' or '\\', is one exact JSON object: alg RS256,
 * that kid, nothing forbidden. Recognising it bytewise skips the JSON parser
 * (≈0.7 µs) on the common path; anything else takes the general path. */
static bool plain_header(const unsigned char *h, size_t n, const char **kid, size_t *kid_len)
{
    static const char pre[] = "{\"alg\":\"RS256\",\"kid\":\"", post[] = "\",\"typ\":\"JWT\"}";
    size_t lp = sizeof pre - 1, ls = sizeof post - 1;
    if (n <= lp + ls || memcmp(h, pre, lp) != 0 || memcmp(h + n - ls, post, ls) != 0)
        return false;
    for (size_t i = lp; i < n - ls; i++)
        if (h[i] < 0x20 || h[i] > 0x7e || h[i] == '"' || h[i] == '\\')
            return false;
    *kid = (const char *)h + lp;
    *kid_len = n - lp - ls;
    return true;
}

/* Step 4: sig_b64 is the third segment, input the first two with their dot;
 * token[0..token_len) is all three. A token whose exact bytes this key
 * already signed or verified (the memo) skips the RSA operation: the same
 * bytes under the same key verify the same way every time. */
static bool signature_ok(const struct jwt_keyset *ks, const struct prepared_key *k,
                         const char *token, size_t token_len, size_t input_len, const char *sig_b64,
                         size_t sig_len)
{
    unsigned char sig[SIG_MAX], digest[CRYPTO_SHA256_LEN], tag[CRYPTO_SHA256_LEN];
    bool tagged = ks->memo && sha256_evp(ks->sha256, token, token_len, tag);
    if (tagged && memo_has(ks->memo, tag, k->fp))
        return true;
    size_t n = 0;
    if (crypto_b64_decode(CRYPTO_B64_URL, sig_b64, sig_len, sig, sizeof sig, &n) != RC_OK ||
        n != k->sig_len || !sha256_evp(ks->sha256, token, input_len, digest))
        return false;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_dup(k->tmpl);
    bool ok = c && EVP_PKEY_verify(c, sig, n, digest, sizeof digest) == 1;
    EVP_PKEY_CTX_free(c);
    if (!ok)
        ERR_clear_error();
    else if (tagged)
        memo_put(ks->memo, tag, k->fp);
    return ok;
}

/* A token split at its dots, header and payload decoded (step 1). */
struct parts {
    size_t input_len; /* bytes of header "." payload: the signing input */
    const char *sig;  /* third segment, base64url */
    size_t sig_len;
    json_t *hdr;     /* NULL when the header took the bytewise path */
    const char *kid; /* bytewise path: the kid, inside the decode buffer */
    size_t kid_len;
    json_t *claims;
};

static bool split_and_parse(const char *token, size_t len, unsigned char *buf, size_t cap,
                            struct parts *p)
{
    const char *end = token + len;
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) || d1 == token || d2 == d1 + 1 ||
        d2 + 1 == end)
        return false;
    p->input_len = (size_t)(d2 - token);
    p->sig = d2 + 1;
    p->sig_len = (size_t)(end - d2 - 1);
    /* Both decoded segments share buf; the header bytes stay readable for
     * the bytewise path. */
    size_t hn = 0, pn = 0;
    if (crypto_b64_decode(CRYPTO_B64_URL, token, (size_t)(d1 - token), buf, cap, &hn) != RC_OK)
        return false;
    if (!plain_header(buf, hn, &p->kid, &p->kid_len) && !(p->hdr = parse_object(buf, hn)))
        return false;
    if (crypto_b64_decode(CRYPTO_B64_URL, d1 + 1, (size_t)(d2 - d1 - 1), buf + hn, cap - hn, &pn) !=
        RC_OK)
        return false;
    p->claims = parse_object(buf + hn, pn);
    return p->claims != NULL;
}

rc_t jwt_verify(const struct jwt_keyset *ks, const char *token, size_t len,
                const char *expected_type, const char *const *expected_auds, int n_auds,
                int64_t now_s, json_t **out_claims, struct jwt_error *err)
{
    *out_claims = NULL;
    struct parts p = {0};
    unsigned char *buf = NULL;
    const struct prepared_key *key = NULL;
    enum jwt_reason r = JWT_MALFORMED;
    if (!token || len > JWT_MAX_TOKEN_LEN) /* before any allocation */
        goto out;
    buf = xmalloc(CRYPTO_B64_DECODED_MAX(len));
    if (!split_and_parse(token, len, buf, CRYPTO_B64_DECODED_MAX(len), &p))
        goto out;
    if (p.hdr) {
        r = check_header(p.hdr, ks, &key);
    } else {
        key = keyset_find(ks, p.kid, p.kid_len);
        r = key ? JWT_OK : JWT_UNKNOWN_KID;
    }
    if (r != JWT_OK)
        goto out;
    r = JWT_BAD_SIGNATURE;
    if (!signature_ok(ks, key, token, len, p.input_len, p.sig, p.sig_len))
        goto out;
    r = check_times(p.claims, now_s);
    if (r != JWT_OK)
        goto out;
    r = JWT_BAD_TYPE;
    if (!type_ok(p.claims, expected_type))
        goto out;
    r = JWT_BAD_AUDIENCE;
    if (!audience_ok(p.claims, expected_auds, n_auds))
        goto out;
    r = JWT_OK;
    *out_claims = p.claims;
    p.claims = NULL;
out:
    set_error(err, r);
    json_decref(p.hdr);
    json_decref(p.claims);
    free(buf);
    return r == JWT_OK ? RC_OK : RC_INVALID;
}
