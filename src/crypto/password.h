/* Password hashing (api-core §13.3, architecture decision 4).
 *
 * New hashes are Argon2id PHC strings from libsodium (crypto_pwhash_str_alg:
 * "$argon2id$v=19$m=<KiB>,t=<iterations>,p=1$<salt>$<hash>"), interchangeable
 * with libargon2. Stored hashes verify when they are Argon2id or Argon2i PHC
 * strings, or bcrypt "$2b$" / "$2a$" / "$2y$" (imported users, verified with
 * libcrypt's crypt_r on the first 72 bytes of the password, result compared
 * in constant time). Passwords are byte strings (UTF-8, used exactly as sent).
 *
 * Every function here is CPU- and memory-heavy by design (about 20 ms and
 * 19 MiB per Argon2id call at the defaults): call them from the bounded
 * hashing pool, never on an event-loop thread.
 *
 * Ownership: password_ctx_new returns an object owned by the caller, freed
 * with password_ctx_free (NULL ok). Hash strings returned are owned by the
 * caller (free).
 * Thread-safety: a context is immutable after creation; every function may
 * run on any number of threads at once (each call allocates its own Argon2
 * memory block, so bound the number in flight). */
#ifndef AUTHD_CRYPTO_PASSWORD_H
#define AUTHD_CRYPTO_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/rc.h"

/* Costs of new hashes (config PASSWORD_HASH__MEMORY_KIB / _ITERATIONS). */
struct password_params {
    uint32_t memory_kib; /* 8192..1048576; default 19456 (19 MiB) */
    uint32_t iterations; /* 1..10; default 2 */
};

#define PASSWORD_MEMORY_KIB_MIN 8192
#define PASSWORD_MEMORY_KIB_MAX 1048576
#define PASSWORD_ITERATIONS_MIN 1
#define PASSWORD_ITERATIONS_MAX 10
/* bcrypt costs accepted on verify; a stored cost above this is treated as an
 * invalid hash rather than tying a hashing worker up for minutes (decision;
 * imported hashes use cost 12). */
#define PASSWORD_BCRYPT_COST_MAX 16

struct password_ctx;

/* Validates the parameters and computes the dummy hash used by
 * password_dummy_verify (one Argon2id hash: call at start-up).
 * Errors: RC_INVALID (parameters out of range), RC_NOMEM (Argon2 could not
 * allocate its memory block). */
rc_t password_ctx_new(const struct password_params *p, struct password_ctx **out)
    __attribute__((warn_unused_result));
void password_ctx_free(struct password_ctx *c);

/* Argon2id hash of pw[0..len) with a fresh random salt and the context's
 * parameters, as a new PHC string. Errors: RC_NOMEM (memory block could not
 * be allocated; the caller answers 503), RC_INVALID (len beyond libsodium's
 * maximum). */
rc_t password_hash(const struct password_ctx *c, const char *pw, size_t len, char **out)
    __attribute__((warn_unused_result));

/* Checks pw[0..len) against a stored hash of any accepted format.
 * RC_OK with *out_match true/false is the answer. RC_INVALID (and *out_match
 * false) when the stored string is no hash we recognise (or a bcrypt hash
 * above PASSWORD_BCRYPT_COST_MAX): the caller treats it as a mismatch and
 * should log it. A password containing a NUL byte never matches a bcrypt
 * hash (crypt_r would silently truncate it there). */
rc_t password_verify(const char *stored, const char *pw, size_t len, bool *out_match)
    __attribute__((warn_unused_result));

/* After a successful verify: true when the stored hash should be replaced by
 * password_hash — bcrypt, Argon2i, Argon2id with other parameters than the
 * context's (libsodium's crypto_pwhash_str_needs_rehash), or anything
 * unrecognised. */
bool password_needs_rehash(const struct password_ctx *c, const char *stored);

/* One Argon2id verification of pw against the context's dummy hash, costing
 * the same as a real verification with the current parameters; the result
 * is discarded. For unknown accounts at login and duplicate emails at signup
 * (api-core §13.3) so timing does not reveal whether an account exists. */
void password_dummy_verify(const struct password_ctx *c, const char *pw, size_t len);

#endif
