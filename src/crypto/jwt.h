/* RS256 JSON Web Tokens (api-core §5): signing with the active key and the
 * verification procedure of api-core §5.2 against a set of public keys.
 *
 * The verifier takes the algorithm from the key, never from the token: every
 * key in a set is an RSA key used with PKCS#1 v1.5 / SHA-256 only, and the
 * header must say "RS256" besides. Tokens longer than JWT_MAX_TOKEN_LEN are
 * rejected before anything is allocated.
 *
 * Ownership: jwt_signer and jwt_keyset objects are reference-counted and
 * immutable once built: *_new returns one reference, *_ref adds one, *_unref
 * drops one and frees with the last (NULL ok). A key cache can therefore swap
 * in a new set while requests still hold the old one. Strings and json_t
 * values returned through out parameters belong to the caller (free /
 * json_decref).
 * Thread-safety: jwt_sign, jwt_verify and the accessors may be called from
 * any number of threads at once on shared objects (a verify duplicates a
 * pre-initialised EVP_PKEY_CTX, about 0.1 µs; a signer keeps 8 private
 * copies of its key, each with its own context, and a sign locks one). _ref/_unref are atomic. A
 * jwt_memo is shared by any number of signers and sets and locks internally. Errors: see each
 * function. */
#ifndef AUTHD_CRYPTO_JWT_H
#define AUTHD_CRYPTO_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "util/rc.h"

#define JWT_MAX_TOKEN_LEN (16 * 1024) /* longer tokens are invalid */
#define JWT_IAT_LEEWAY_S 5            /* iat may be this far in the future */

/* ---- signature memo ----------------------------------------------------- */

/* Remembers, by SHA-256 of the whole token and a fingerprint of the key,
 * tokens a signer produced or a set verified, so presenting the same bytes
 * again skips the RSA operation (≈25 µs): a refresh token signed by this
 * process and presented to the rate limiter, an access token validated
 * over and over. Only the signature step is skipped; header, kid, times,
 * type and audience are checked on every call, and a kid that left the set
 * fails before the memo is consulted. Holds no token text. Bounded:
 * JWT_MEMO_SLOTS direct-mapped slots (≈200 KiB), newer entries replace
 * older ones. Reference-counted like signers and sets. */
#define JWT_MEMO_SLOTS 4096 /* a power of two */

struct jwt_memo;

struct jwt_memo *jwt_memo_new(void);
struct jwt_memo *jwt_memo_ref(struct jwt_memo *m);
void jwt_memo_unref(struct jwt_memo *m);
/* Signature checks answered from the memo so far (for tests and metrics). */
uint64_t jwt_memo_hits(const struct jwt_memo *m);

/* ---- signing ---------------------------------------------------------- */

struct jwt_signer;

/* Parses private_pem[0..len) (rsakey_parse_private rules) once and prepares
 * the header {"alg":"RS256","kid":<kid>,"typ":"JWT"}. kid is copied.
 * Errors: RC_INVALID (bad PEM, empty kid), RC_LIMIT (PEM too long),
 * RC_CRYPTO (OpenSSL could not prepare a signing context). */
rc_t jwt_signer_new(const char *private_pem, size_t len, const char *kid, struct jwt_signer **out)
    __attribute__((warn_unused_result));
struct jwt_signer *jwt_signer_ref(struct jwt_signer *s);
void jwt_signer_unref(struct jwt_signer *s);
/* Borrowed, valid while the caller holds a reference. */
const char *jwt_signer_kid(const struct jwt_signer *s);
/* Every token s signs from now on is recorded in m (takes a reference;
 * NULL detaches). Call before s is shared with other threads. */
void jwt_signer_set_memo(struct jwt_signer *s, struct jwt_memo *m);

/* Signs claims (a JSON object, rendered compact in its own member order) and
 * returns the compact JWS in *out (new string). About 230 µs for RSA-2048.
 * Errors: RC_INVALID (claims not an object), RC_LIMIT (token would exceed
 * JWT_MAX_TOKEN_LEN, so it could never verify), RC_CRYPTO (signing failed). */
rc_t jwt_sign(const struct jwt_signer *s, const json_t *claims, char **out)
    __attribute__((warn_unused_result));

/* ---- verification key set --------------------------------------------- */

struct jwt_key_input {
    const char *kid;        /* NUL-terminated, non-empty */
    const char *public_pem; /* SubjectPublicKeyInfo PEM text */
    size_t public_pem_len;
};

struct jwt_keyset;

/* Builds a set from n (kid, public PEM) pairs; n may be 0 (every token then
 * fails with JWT_UNKNOWN_KID). Entries are kept sorted by kid in byte order
 * (the JWKS order, api-core §4.3). Errors: RC_INVALID (empty kid or bad PEM),
 * RC_CONFLICT (duplicate kid), RC_LIMIT (PEM too long), RC_CRYPTO. */
rc_t jwt_keyset_new(const struct jwt_key_input *keys, size_t n, struct jwt_keyset **out)
    __attribute__((warn_unused_result));
struct jwt_keyset *jwt_keyset_ref(struct jwt_keyset *ks);
void jwt_keyset_unref(struct jwt_keyset *ks);
size_t jwt_keyset_count(const struct jwt_keyset *ks);
/* Entry i (< count), in kid order; borrowed like the set. The EVP_PKEY is
 * for rsakey_jwk_params (JWKS rendering) and must not be modified. */
const char *jwt_keyset_kid(const struct jwt_keyset *ks, size_t i);
const EVP_PKEY *jwt_keyset_key(const struct jwt_keyset *ks, size_t i);
/* jwt_verify on ks consults m at step 4 and records tokens whose signature
 * verified (takes a reference; NULL detaches). Call before ks is shared. */
void jwt_keyset_set_memo(struct jwt_keyset *ks, struct jwt_memo *m);

/* ---- verification ------------------------------------------------------ */

/* Why a token was rejected, for callers (JWT_UNKNOWN_KID: reload the key
 * cache once, then retry) and for logs. Never shown to clients: they get
 * jwt_error.code/detail. */
enum jwt_reason {
    JWT_OK = 0,
    JWT_MALFORMED,     /* too long; not 3 non-empty segments; header/payload
                          not base64url JSON objects (duplicate members
                          included) */
    JWT_BAD_ALG,       /* header alg missing or not "RS256" */
    JWT_BAD_HEADER,    /* header has jku, x5u, jwk or crit */
    JWT_NO_KID,        /* kid missing, not a string, or empty */
    JWT_UNKNOWN_KID,   /* kid not in the set */
    JWT_BAD_SIGNATURE, /* signature not base64url or does not verify */
    JWT_BAD_CLAIMS,    /* jti/iat/exp/sub missing or null; iat/exp not
                          numbers; nbf present but not a number */
    JWT_IAT_FUTURE,    /* iat > now + JWT_IAT_LEEWAY_S */
    JWT_NOT_YET_VALID, /* nbf > now */
    JWT_EXPIRED,       /* exp < now */
    JWT_BAD_TYPE,      /* type missing, unknown, or not the expected one */
    JWT_BAD_AUDIENCE,  /* an expected audience is not in aud */
};

struct jwt_error {
    enum jwt_reason reason;
    const char *code;   /* "invalid_token" | "token_expired" (static) */
    const char *detail; /* "Invalid token." | "Invalid token algorithm." |
                           "Invalid token type." | "Token has expired." */
};

/* Short static name of a reason ("bad_signature", ...) for logs. */
const char *jwt_reason_str(enum jwt_reason r);

/* api-core §5.2, in its order:
 *  1. exactly 3 non-empty '.'-separated segments; header and payload
 *     base64url (padding optional) of JSON objects;
 *  2. header alg == "RS256" (else detail "Invalid token algorithm."); no
 *     jku, x5u, jwk (decision) nor crit (RFC 7515: we understand no
 *     extension) header;
 *  3. kid a non-empty string naming a key of ks;
 *  4. RSASSA-PKCS1-v1_5 SHA-256 signature over the first two segments
 *     (or the exact token recorded in the set's memo for the same key);
 *  5. jti, iat, exp, sub present (JSON null counts as absent); iat and exp
 *     numbers; iat <= now_s + 5; nbf, when present, a number <= now_s;
 *  6. expired iff exp < now_s → "token_expired" / "Token has expired.";
 *  7. type one of access, refresh, email_verify, otp_challenge,
 *     action_token, m2m, and equal to expected_type (NULL: any of these) —
 *     else "Invalid token type.";
 *  8. every one of expected_auds[0..n_auds) is in aud, where aud is a string
 *     or an array whose string entries count (each trimmed of ASCII
 *     whitespace, empty ones dropped; non-string entries ignored, as the SDK
 *     does). Expected audiences are compared exactly as given. n_auds == 0
 *     skips the audience check.
 * ks must not be NULL; expected_auds may be NULL when n_auds is 0; token
 * need not be NUL-terminated (len counts) and is not trimmed.
 * On success returns RC_OK, sets err->reason = JWT_OK and hands the claims
 * object to *out_claims (caller json_decref). On failure returns RC_INVALID,
 * *out_claims = NULL, and err (may be NULL) says why; every failure has code
 * "invalid_token" except JWT_EXPIRED. */
rc_t jwt_verify(const struct jwt_keyset *ks, const char *token, size_t len,
                const char *expected_type, const char *const *expected_auds, int n_auds,
                int64_t now_s, json_t **out_claims, struct jwt_error *err)
    __attribute__((warn_unused_result));

#endif
