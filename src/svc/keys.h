/* Signing keys (api-core §4, config-ops §5): bootstrap, the active signer,
 * the verification key set, JWKS, rotation and retirement.
 *
 * Caches (config-ops §5.6). Each process keeps
 *   - the decrypted active key as a jwt_signer, re-checked against the
 *     database at most every KEYS_CACHE_TTL_S seconds (a cheap "which kid
 *     is active" read; the key is decrypted again only when it changed);
 *   - the verification set (active + retiring) as a refcounted jwt_keyset
 *     and its JWKS serialization, re-checked at most every
 *     KEYS_CACHE_TTL_S seconds. The check reads a fingerprint (kid and
 *     status of every row) and rebuilds the set only when it changed.
 *     One thread refreshes ahead of expiry (after KEYS_CACHE_SOFT_TTL_S)
 *     while the others keep verifying, so the hot path does not wait;
 *   - a token whose kid is missing from the set triggers one re-check (at
 *     most once per KEYS_UNKNOWN_KID_RELOAD_MS per process) before it is
 *     rejected, so keys rotated by another process verify at once;
 *   - JWKS re-checks the fingerprint at most every KEYS_JWKS_CHECK_MS, so
 *     a rotation by another process shows up in JWKS within about a second
 *     (decision: JWKS is low-traffic; this costs at most one small query
 *     per second per process, whatever the request rate);
 *   - a rotation or a retirement done by this process clears every cache
 *     at once.
 * When the set cannot be refreshed after KEYS_CACHE_TTL_S (database down),
 * verification fails with RC_UNAVAILABLE rather than trusting a set older
 * than the contract allows; further attempts are spaced by
 * KEYS_RETRY_AFTER_FAIL_MS so an outage does not queue every request
 * behind a connect timeout.
 *
 * Private keys at rest are enc2 envelopes (AAD = kid, passphrase = the
 * signing chain of svc/secrets.h); enc1/v1/plaintext rows are read too.
 * No key, PEM or passphrase is ever logged.
 *
 * Thread-safety: every function may be called from any thread at once.
 * Locks are held only to swap or reference cached objects, never during
 * RSA work or while a caller verifies; database reads for the caches are
 * serialised per process so a cache expiry costs one query, not one per
 * thread. Cache refreshes use DB_READ connections, so keys_sign /
 * keys_verify / keys_jwks may be called by a thread inside its own write
 * unit; only a bootstrap (no active key at all, normally done by keys_new)
 * and keys_rotate / keys_job need the writer, so those must not run in a
 * thread that holds the SQLite writer. */
#ifndef AUTHD_SVC_KEYS_H
#define AUTHD_SVC_KEYS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "crypto/jwt.h"
#include "db/db.h"
#include "svc/secrets.h"
#include "util/rc.h"

#define KEYS_CACHE_TTL_S 30             /* config-ops §2.14: key caches 30 s */
#define KEYS_CACHE_SOFT_TTL_S 25        /* refresh ahead of expiry from here */
#define KEYS_UNKNOWN_KID_RELOAD_MS 1000 /* config-ops §5.6 */
#define KEYS_JWKS_CHECK_MS 1000
#define KEYS_RETRY_AFTER_FAIL_MS 1000
#define KEYS_KID_MAX 129 /* kid buffers: signing_keys.kid is varchar(128); ours are 22 */
#define KEYS_OVERLAP_MAX_S 315360000LL /* 10 years: larger overlaps are refused */

struct keys;

/* Validates JWT__PRIVATE_KEY_PEM / JWT__PUBLIC_KEY_PEM (config-ops §3: both
 * parse and form one RSA pair; both unset is fine). On failure returns
 * RC_INVALID and writes into err (errlen bytes) one line that names the
 * variable (never quoting the key). The entry layer calls it before
 * binding a port and exits 2 on failure; keys_new calls it again. */
rc_t keys_check_config(const struct config *cfg, char *err, size_t errlen) WUR;

/* Builds the service and bootstraps the first active key when there is
 * none (config-ops §5.2): the configured pair (kid of the exact
 * JWT__PUBLIC_KEY_PEM text; private key stored as enc2 PKCS#8), unless
 * that kid is already retired — then a key is generated and
 * `signing_key_bootstrap_generated` is logged at error — or, without
 * configured PEMs, a generated RSA-2048 key. Several processes
 * bootstrapping one empty database end with exactly one active key (the
 * loser's insert hits uq_signing_keys_single_active and it uses the
 * winner's). Then warms the caches (a key that cannot be decrypted is
 * logged here and reported on use, not at start-up).
 * db, cfg and sec are borrowed and must outlive the object.
 * Errors: RC_INVALID (bad configured PEMs; logged, see keys_check_config),
 * RC_INVALID from envelope_key_new (empty passphrase), database errors of
 * the bootstrap. */
rc_t keys_new(struct db *db, const struct config *cfg, const struct secrets *sec,
              struct keys **out) WUR;
void keys_free(struct keys *k); /* NULL ok; no call may be in flight */

/* Signs claims (a JSON object; borrowed) with the active key, header
 * {"alg":"RS256","kid":<active kid>,"typ":"JWT"}; *out_jwt is a new string
 * (free). Bootstraps when no key is active. Errors: RC_UNAVAILABLE /
 * RC_TIMEOUT / RC_DB (database), RC_CRYPTO (the active key cannot be
 * decrypted or used: a configuration error, 500), RC_INVALID (claims not an
 * object). */
rc_t keys_sign(struct keys *k, const json_t *claims, char **out_jwt) WUR;

/* api-core §5.2 against the active + retiring keys with the expected
 * audience APP__SERVICE; expected_type NULL accepts any known type. On
 * RC_OK *out_claims is the claims object (json_decref). RC_INVALID: the
 * token is rejected and err (may be NULL) holds reason, code and detail.
 * RC_UNAVAILABLE: the key set could not be loaded (err->reason JWT_OK).
 * No database access and no lock held during RSA work while the cache is
 * fresh. */
rc_t keys_verify(struct keys *k, const char *token, size_t len, const char *expected_type,
                 int64_t now_s, json_t **out_claims, struct jwt_error *err) WUR;

/* The JWKS document (api-core §4.3): {"keys":[...]} with one entry per
 * active or retiring key, sorted by kid in byte order, members kty, use,
 * alg, kid, n, e, compact. Served from the cached serialization (see the
 * top of this file); bootstraps when no key exists. *out_body is a new
 * NUL-terminated copy of *out_len bytes (caller frees). Errors: database
 * errors when the set has to be loaded and cannot be. */
rc_t keys_jwks(struct keys *k, char **out_body, size_t *out_len) WUR;

/* One rotation, config-ops §5.3, in one transaction (the active row locked
 * FOR UPDATE on PostgreSQL; the SQLite writer is exclusive): bootstrap
 * first if no key is active; the new RSA-2048 key becomes active, the old
 * one retiring with retire_after = now + E, then retirement runs. E = 0
 * only when explicit_overlap and overlap_s == 0 (emergency); otherwise
 * E = max(overlap_s, JWT__ACCESS_TOKEN_TTL_SECONDS, EMAIL__OTP_TTL_SECONDS,
 * EMAIL__ACTION_TOKEN_TTL_SECONDS, largest token_ttl_seconds of active
 * non-deleted oauth_clients). Clears this process's caches after commit
 * and logs `signing_keys_retired` when keys were retired. new_kid receives
 * the new kid, retiring_kid the demoted one ("" when there was none — not
 * possible after the bootstrap, kept for the contract's nullable field).
 * Writes no audit event (the caller does: actor and metadata differ
 * between the CLI and the admin route). Errors: RC_INVALID (overlap_s <
 * 0 or > KEYS_OVERLAP_MAX_S), RC_INTERNAL (new kid equals the active kid), RC_CRYPTO (key
 * generation), database errors (RC_BUSY from a PostgreSQL lock conflict
 * is retried here a few times). */
rc_t keys_rotate(struct keys *k, int64_t overlap_s, bool explicit_overlap,
                 char new_kid[KEYS_KID_MAX], char retiring_kid[KEYS_KID_MAX]) WUR;

/* Periodic duty (every 60 s from the job runner): retirement of retiring
 * keys whose retire_after has passed; logs `signing_keys_retired` with the
 * kids when it retired something and clears this process's caches. One
 * UPDATE statement (its own transaction), so any number of runners on
 * PostgreSQL is harmless and a repeat is a no-op. Needs no Redis. */
void keys_job(struct keys *k);

/* Counters for tests and metrics (monotonic since keys_new). */
struct keys_stats {
    uint64_t set_checks; /* fingerprint reads */
    uint64_t set_loads;  /* key sets built from the database */
    uint64_t unknown_kid_rechecks;
    uint64_t signer_loads; /* private keys decrypted */
    uint64_t memo_hits;    /* signature checks answered by the memo (jwt.h) */
};
void keys_stats(struct keys *k, struct keys_stats *out);

#endif
