/* Keyed digests with a derived key (data-model §11.1–11.2): the refresh-token
 * verifier and the OTP code hash. Both are
 *
 *     K   = HMAC-SHA256(key = S, msg = purpose)
 *     out = lowercase hex HMAC-SHA256(key = K, msg = message)
 *
 * with S the secret text chosen by the caller's fallback chain. The object
 * derives K once and keeps the HMAC state keyed with K, so a digest costs two
 * SHA-256 compressions plus the message.
 *
 * Ownership: crypto_keyed_hasher_new returns an object owned by the caller,
 * released with crypto_keyed_hasher_free (wipes the key state; NULL ok).
 * Thread-safety: immutable after creation; any number of threads may call
 * crypto_keyed_hasher_hex on one object at once. */
#ifndef AUTHD_CRYPTO_KEYED_H
#define AUTHD_CRYPTO_KEYED_H

#include <stddef.h>

#include "crypto/enc.h"

/* Purpose strings (the message of the K derivation). */
#define CRYPTO_PURPOSE_REFRESH_TOKEN "auth-service:refresh-token-hash:v1"
#define CRYPTO_PURPOSE_OTP "otp-hash:v1"

struct crypto_keyed_hasher;

/* secret[0..secret_len) is S (UTF-8 text, any length, may be empty); purpose
 * is a NUL-terminated string, normally one of the constants above. Cannot
 * fail; never NULL. */
struct crypto_keyed_hasher *crypto_keyed_hasher_new(const char *secret, size_t secret_len,
                                                    const char *purpose);
void crypto_keyed_hasher_free(struct crypto_keyed_hasher *h);

/* out = lowercase hex HMAC-SHA256(K, msg[0..len)), NUL-terminated. */
void crypto_keyed_hasher_hex(const struct crypto_keyed_hasher *h, const void *msg, size_t len,
                             char out[CRYPTO_SHA256_HEX_LEN + 1]);

#endif
