/* Encrypted-at-rest envelopes (data-model §11.6, config-ops §5.7) for signing
 * private keys and webhook secrets.
 *
 * Writer: always `enc2:` + base64url(nonce[12] ‖ ciphertext ‖ tag[16]),
 * AES-256-GCM, key = HKDF-SHA256(IKM = passphrase, salt = empty, info, 32),
 * AAD = the row's kid (signing keys) or id (webhook endpoints).
 * Readers also accept `enc1:` / `v1:` Fernet tokens (key material
 * D = SHA-256(passphrase); HMAC key D[0..16), AES-128-CBC key D[16..32); the
 * timestamp is ignored) and unprefixed plaintext, returned as it is.
 *
 * Ownership: envelope_key_new returns an object owned by the caller, freed
 * with envelope_key_free (wipes key material; NULL ok). Strings returned
 * through out parameters are owned by the caller; decrypted plaintext should
 * be released with xfree_secret / xfree_secret_str.
 * Thread-safety: a key object is immutable after creation and may be used by
 * any number of threads at once.
 * Errors: RC_INVALID (bad argument, malformed envelope), RC_CRYPTO
 * (authentication or decryption failed: wrong passphrase, wrong AAD,
 * tampering), RC_LIMIT (input larger than the limits below). Callers treat
 * every failure of envelope_open as "unreadable" (signing key: configuration
 * error; webhook secret: delivery abandoned). */
#ifndef AUTHD_CRYPTO_ENVELOPE_H
#define AUTHD_CRYPTO_ENVELOPE_H

#include <stddef.h>

#include "util/rc.h"

/* HKDF info strings of the two encrypted columns. */
#define ENVELOPE_INFO_SIGNING_KEY "authd signing-key encryption v2"
#define ENVELOPE_INFO_WEBHOOK_SECRET "authd webhook-secret encryption v2"

/* Largest plaintext (and AAD) sealed or opened, and largest stored value
 * opened. A PEM private key is under 2 KiB for RSA-2048, under 7 KiB for
 * RSA-8192. */
#define ENVELOPE_MAX_LEN (64 * 1024)
#define ENVELOPE_MAX_STORED_LEN (2 * ENVELOPE_MAX_LEN)

enum envelope_format {
    ENVELOPE_PLAIN, /* no recognised prefix: stored as plaintext */
    ENVELOPE_ENC2,  /* "enc2:" AES-256-GCM (what we write) */
    ENVELOPE_FERNET /* "enc1:" or "v1:" Fernet (imported rows) */
};

struct envelope_key;

/* Derives the enc2 key (HKDF with `info`, normally one of the constants
 * above) and the Fernet key material from passphrase[0..len), once; sealing
 * and opening then cost no key derivation. An empty passphrase is refused
 * (RC_INVALID): the configuration chain treats empty as unset. */
rc_t envelope_key_new(const char *passphrase, size_t len, const char *info,
                      struct envelope_key **out) __attribute__((warn_unused_result));
void envelope_key_free(struct envelope_key *k);

/* Which reader a stored value goes to (by prefix only; nothing is decoded).
 * `authd migrate --adopt` rewrites everything that is not ENVELOPE_ENC2. */
enum envelope_format envelope_format_of(const char *stored, size_t len);

/* Encrypts pt[0..n) with a fresh random nonce under aad[0..aad_len) into a
 * new NUL-terminated `enc2:` string (*out, caller frees). */
rc_t envelope_seal(const struct envelope_key *k, const void *pt, size_t n, const char *aad,
                   size_t aad_len, char **out) __attribute__((warn_unused_result));

/* Reads a stored value of any accepted format. On success *out is a new
 * NUL-terminated buffer of *out_len bytes (plus the NUL) that the caller frees
 * with xfree_secret(*out, *out_len). aad is used by enc2 only (Fernet has no
 * AAD). On failure *out is NULL. */
rc_t envelope_open(const struct envelope_key *k, const char *stored, size_t len, const char *aad,
                   size_t aad_len, char **out, size_t *out_len) __attribute__((warn_unused_result));

#endif
