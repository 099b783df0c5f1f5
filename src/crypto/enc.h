/* Encodings, digests and small primitives shared by the crypto layer and its
 * callers: base64 (standard, URL-safe padded, URL-safe unpadded), lowercase
 * hex, SHA-256, HMAC-SHA256, constant-time comparison and the CSPRNG.
 *
 * Thread-safety: every function is reentrant and thread-safe; none keeps
 * state. libsodium must have been initialised (sodium_init) before the first
 * call, as main does before starting threads.
 *
 * Errors: only the decoders can fail (rc_t). Encoders and digests cannot
 * fail; allocation failure aborts (util/mem.h). */
#ifndef AUTHD_CRYPTO_ENC_H
#define AUTHD_CRYPTO_ENC_H

#include <stdbool.h>
#include <stddef.h>

#include "util/rc.h"

#define CRYPTO_SHA256_LEN 32
#define CRYPTO_SHA256_HEX_LEN 64 /* lowercase hex chars, without the NUL */

/* Base64 variants. Encoders write the variant's exact canonical form. */
enum crypto_b64 {
    CRYPTO_B64_STD,     /* "+/", '=' padding (RFC 4648 §4) */
    CRYPTO_B64_URL_PAD, /* "-_", '=' padding (Fernet tokens) */
    CRYPTO_B64_URL,     /* "-_", no padding (JWT, identifiers, enc2:) */
};

/* Characters the encoding of n bytes takes, without the NUL. */
size_t crypto_b64_encoded_len(enum crypto_b64 v, size_t n);
/* Upper bound of the bytes that decoding n characters can produce. */
#define CRYPTO_B64_DECODED_MAX(n) ((n) / 4 * 3 + 2)

/* Encodes in[0..n) into out, which must hold crypto_b64_encoded_len(v, n) + 1
 * bytes; writes a NUL and returns the length written. */
size_t crypto_b64_encode(enum crypto_b64 v, const void *in, size_t n, char *out);
/* Same, into a new string (caller frees with free). Never NULL. */
char *crypto_b64_encode_new(enum crypto_b64 v, const void *in, size_t n);

/* Strict decoder. Accepts exactly the variant's alphabet (a "-_" string is
 * garbage to CRYPTO_B64_STD and vice versa); '=' padding is optional for
 * every variant but, when present, must complete the last quantum exactly
 * (1 or 2 '=' at the very end, total length a multiple of 4). Rejects
 * whitespace, a lone trailing character (length ≡ 1 mod 4) and non-zero
 * unused bits in the last character, so every byte string has exactly one
 * accepted unpadded and one padded spelling.
 * Writes at most out_cap bytes to out and the decoded length to out_len.
 * Errors: RC_INVALID (not valid for the variant; nothing meaningful in out),
 * RC_LIMIT (out_cap too small; CRYPTO_B64_DECODED_MAX(n) always suffices). */
rc_t crypto_b64_decode(enum crypto_b64 v, const char *in, size_t n, void *out, size_t out_cap,
                       size_t *out_len) __attribute__((warn_unused_result));

/* Lowercase hex of in[0..n) into out (2n + 1 bytes, NUL-terminated). */
void crypto_hex(const void *in, size_t n, char *out);

/* SHA-256 of data[0..n). */
void crypto_sha256(const void *data, size_t n, unsigned char out[CRYPTO_SHA256_LEN]);
/* Lowercase hex SHA-256 (data-model §11.3): API keys, client secrets,
 * email-verify/reset tokens, legacy refresh verifiers. */
void crypto_sha256_hex(const void *data, size_t n, char out[CRYPTO_SHA256_HEX_LEN + 1]);

/* HMAC-SHA256 (RFC 2104; keys longer than 64 bytes are hashed first). */
void crypto_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                        unsigned char out[CRYPTO_SHA256_LEN]);
void crypto_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t msg_len,
                            char out[CRYPTO_SHA256_HEX_LEN + 1]);

/* Constant-time equality of a[0..n) and b[0..n) (CRYPTO_memcmp). n == 0 →
 * true. */
bool crypto_ct_eq(const void *a, const void *b, size_t n);
/* Constant-time string equality for equal lengths; different lengths return
 * false at once (a length is not a secret here: every compared value has a
 * fixed-length format). a or b NULL → false. */
bool crypto_ct_streq(const char *a, const char *b);
bool crypto_ct_streqn(const char *a, size_t a_len, const char *b, size_t b_len);

/* n bytes from the CSPRNG (libsodium randombytes_buf). */
void crypto_random(void *buf, size_t n);
/* base64url (unpadded) of nbytes fresh random bytes, as a new string the
 * caller frees (free, or xfree_secret_str for secrets). 32 bytes → 43 chars.
 * Used for API keys (with "sk_"), CSRF, reset and OAuth state tokens, client
 * ids and secrets (data-model §11.4). Never NULL. */
char *crypto_random_b64url(size_t nbytes);
/* n uniformly random decimal digits into out (n + 1 bytes, NUL-terminated):
 * a uniform integer in [0, 10^n) zero-padded to n digits (OTP codes). */
void crypto_random_digits(char *out, size_t n);

#endif
