/* RSA signing keys (api-core §4, config-ops §5): generation, PEM parsing,
 * pair checking, the `kid` and the JWK members.
 *
 * Only RSA keys ("rsaEncryption"; not RSA-PSS) of RSAKEY_MIN_BITS to
 * RSAKEY_MAX_BITS bits are accepted (decision: smaller keys are too weak to
 * sign sessions, larger ones make every verification a denial-of-service
 * lever).
 *
 * Ownership: strings returned through out parameters are owned by the caller
 * (free; private PEMs with xfree_secret_str). EVP_PKEY objects returned are
 * owned by the caller (EVP_PKEY_free).
 * Thread-safety: every function is reentrant; an EVP_PKEY returned here may
 * be shared read-only between threads.
 * Errors: RC_INVALID (not a PEM of the expected kind, encrypted, not RSA,
 * size out of bounds), RC_LIMIT (PEM text longer than RSAKEY_PEM_MAX),
 * RC_CONFLICT (rsakey_check_pair: both parse but do not match), RC_CRYPTO
 * (OpenSSL failed, e.g. key generation). The OpenSSL error queue is cleared
 * on every failure. */
#ifndef AUTHD_CRYPTO_RSAKEY_H
#define AUTHD_CRYPTO_RSAKEY_H

#include <stddef.h>

#include <openssl/evp.h>

#include "util/rc.h"

#define RSAKEY_GEN_BITS 2048
#define RSAKEY_MIN_BITS 2048
#define RSAKEY_MAX_BITS 8192
#define RSAKEY_PEM_MAX (32 * 1024)
#define RSAKEY_KID_LEN 22 /* base64url of 16 bytes */

/* Generates an RSA-2048 key with e = 65537 (config-ops §5.3 step 2):
 * *out_private_pem = unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY"),
 * *out_public_pem = SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY", 64-column
 * base64 lines, final newline). Takes tens to hundreds of milliseconds. */
rc_t rsakey_generate(char **out_private_pem, char **out_public_pem)
    __attribute__((warn_unused_result));

/* Parses a private key PEM: PKCS#8 ("BEGIN PRIVATE KEY") or PKCS#1 ("BEGIN
 * RSA PRIVATE KEY"). Encrypted PEMs are refused (no passphrase prompt). Text
 * before the first PEM block and after the last one is ignored. */
rc_t rsakey_parse_private(const char *pem, size_t len, EVP_PKEY **out)
    __attribute__((warn_unused_result));
/* Parses a SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY"). */
rc_t rsakey_parse_public(const char *pem, size_t len, EVP_PKEY **out)
    __attribute__((warn_unused_result));

/* Start-up validation of JWT__PRIVATE_KEY_PEM / JWT__PUBLIC_KEY_PEM: RC_OK
 * when both parse and the public key is the private key's public half;
 * RC_INVALID when either does not parse (parse them one by one first to name
 * the culprit); RC_CONFLICT when they do not match. */
rc_t rsakey_check_pair(const char *private_pem, size_t private_len, const char *public_pem,
                       size_t public_len) __attribute__((warn_unused_result));

/* SubjectPublicKeyInfo PEM of a (public or private) RSA key, in the same
 * canonical form as rsakey_generate writes. */
rc_t rsakey_public_pem(const EVP_PKEY *key, char **out) __attribute__((warn_unused_result));

/* Unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY") of a private RSA key, e.g. to
 * store a configured PKCS#1 key in the form of data-model §7 (before sealing
 * it in an envelope). RC_CRYPTO when key has no private half or OpenSSL
 * fails. Free the result with xfree_secret_str. */
rc_t rsakey_private_pem(const EVP_PKEY *key, char **out) __attribute__((warn_unused_result));

/* kid (api-core §4.2) = base64url(first 16 bytes of SHA-256(pem[0..len))),
 * over the exact text given (no trimming, no re-encoding). Cannot fail. */
void rsakey_kid(const char *pem, size_t len, char out[RSAKEY_KID_LEN + 1]);

/* JWK members of an RSA key (api-core §4.3): modulus and public exponent,
 * unsigned big-endian with no leading zero byte, base64url without padding.
 * Two new strings on success ("AQAB" for e = 65537). */
rc_t rsakey_jwk_params(const EVP_PKEY *key, char **out_n, char **out_e)
    __attribute__((warn_unused_result));

#endif
