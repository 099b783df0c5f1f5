/* Brute-force protection per account (api-core §12, data-model §10.2–10.3):
 * the failure counter and lock ladder, the distributed-attack detector,
 * success bookkeeping with the suspicious-login flags, and the OTP
 * issuance block. Used by login, reauth and OTP verification; no HTTP
 * types.
 *
 * Caller's order (api-core §12.2): lockout_check first — while locked,
 * answer 401 account_locked with Retry-After and do not record anything;
 * else verify, then lockout_record_failure or lockout_record_success.
 *
 * All state lives in the KV store, keyed by user id (canonical UUID text;
 * unknown emails never reach this module):
 *
 *   failed_attempts:<uid>             counter, TTL 3600 s re-applied per failure
 *   lockout:<uid>                     "1", TTL = lock duration (overwritten)
 *   distributed_attack:<uid>          distinct failing IPs (HyperLogLog on Redis),
 *                                     TTL 300 s re-applied per failure
 *   seen_ips:<uid>                    set of canonical IPs, TTL 30 days re-applied
 *   seen_agents:<uid>                 set of trimmed UAs, TTL 30 days re-applied
 *   otp_failed:<uid>                  counter, TTL 3600 s from the first failure
 *   otp_issuance_blocked:<uid>        "1", TTL 900 s, set only if absent
 *
 * Errors: RC_INVALID for a NULL/empty user id or one over LOCKOUT_USER_ID_MAX
 * bytes; otherwise the store's rc, normally RC_UNAVAILABLE when Redis is
 * down — callers answer 503 session_expired "Authentication backend
 * unavailable." (api-core §1.4). Out-parameters are set on every path
 * (false / 0) before any store access.
 * Thread-safety: stateless; any number of threads may call at once. Each
 * store operation is atomic; a sequence of them is not (two concurrent
 * failures each see their own counter value, which is what the ladder
 * needs). */
#ifndef AUTHD_SVC_LOCKOUT_H
#define AUTHD_SVC_LOCKOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "kv/kv.h"
#include "util/rc.h"

#define LOCKOUT_USER_ID_MAX 128
#define LOCKOUT_FAILURE_TTL_S 3600
#define LOCKOUT_MAX_S 3600                  /* ladder top and distributed-attack lock */
#define LOCKOUT_DISTRIBUTED_WINDOW_S 300    /* distinct failing IPs counted over this */
#define LOCKOUT_DISTRIBUTED_IPS 10          /* this many distinct IPs lock the account */
#define LOCKOUT_SEEN_TTL_S (30 * 24 * 3600) /* seen IPs / agents */
#define LOCKOUT_SUSPICIOUS_PRIOR_FAILURES 3 /* prior failures that flag a success */
#define LOCKOUT_OTP_FAILED_TTL_S 3600
#define LOCKOUT_OTP_FAILED_MAX 10 /* block when the counter exceeds this */
#define LOCKOUT_OTP_BLOCK_S 900

/* Lock duration in seconds after the failure counter reached `count`
 * (c <= 4: 0, 5: 60, 6: 300, 7: 900, >= 8: 3600). Pure. */
int64_t lockout_ladder_s(int64_t count);

/* Is the account locked? *out_retry_after_s = remaining lock seconds,
 * max(1, ceil(ttl)) (a lock without expiry reports LOCKOUT_MAX_S). One
 * store round trip. */
rc_t lockout_check(struct kv *kv, const char *user_id, bool *out_locked,
                   int64_t *out_retry_after_s) WUR;

/* Counts one failure (wrong password at login or reauth:
 * is_password_failure = true; wrong OTP code: false) and applies the
 * ladder; for password failures with a known client IP (not NULL, "" or
 * "unknown") also feeds the distributed-attack detector, which locks for
 * LOCKOUT_MAX_S once LOCKOUT_DISTRIBUTED_IPS distinct IPs failed within
 * LOCKOUT_DISTRIBUTED_WINDOW_S. When this failure locks the account,
 * *out_locked is true and *out_retry_after_s the lock duration (answer 401
 * account_locked); *out_attempt_count is the counter after this failure;
 * *out_distributed_attack tells whether the detector fired. */
rc_t lockout_record_failure(struct kv *kv, const char *user_id, const char *client_ip,
                            bool is_password_failure, bool *out_locked, int64_t *out_retry_after_s,
                            int64_t *out_attempt_count, bool *out_distributed_attack) WUR;

/* api-core §12.3 flags of a successful login. */
struct lockout_flags {
    int64_t prior_failures; /* counter value before this success */
    bool new_ip;            /* known IP never seen on a success in the last 30 days */
    bool new_user_agent;    /* non-blank trimmed UA never seen likewise */
    bool many_failures;     /* prior_failures >= LOCKOUT_SUSPICIOUS_PRIOR_FAILURES */
    bool suspicious;        /* any of the three */
};

/* A successful password login without OTP, or an OTP completion: reads the
 * prior failures and seen-membership, clears the counter and the lock,
 * then remembers the IP and the trimmed user agent for 30 days. A user's
 * first login is therefore always new_ip/new_user_agent; an unknown IP or
 * a blank agent never counts as new and is not remembered. */
rc_t lockout_record_success(struct kv *kv, const char *user_id, const char *client_ip,
                            const char *user_agent, struct lockout_flags *out) WUR;

/* api-core §12.4: is OTP issuance blocked for the user? When it is,
 * *out_retry_after_s = remaining block seconds (LOCKOUT_OTP_BLOCK_S when the
 * store cannot tell): answer 429 otp_issuance_blocked. */
rc_t lockout_otp_blocked(struct kv *kv, const char *user_id, bool *out_blocked,
                         int64_t *out_retry_after_s) WUR;

/* Counts one wrong OTP code in otp_failed (1 h from the first failure);
 * when the count exceeds LOCKOUT_OTP_FAILED_MAX sets the issuance block
 * (900 s, only if absent). *out_blocked tells whether the block is now
 * set by this call or already was. Wrong codes are also shared failures:
 * call lockout_record_failure(..., false, ...) as well. */
rc_t lockout_record_otp_failure(struct kv *kv, const char *user_id, bool *out_blocked) WUR;

#endif
