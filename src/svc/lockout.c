/* Brute-force protection per account (see lockout.h; api-core §12,
 * data-model §10.3).
 *
 * Sets without a set type: the distinct-IP detector gives each (user, IP)
 * a marker created with set-if-absent (TTL = window); only the caller that
 * creates it adds one entry to a sliding log over the same window. Marker
 * and entry are born together and expire together, so the log holds one
 * entry per distinct IP that failed within the window, and the log's limit
 * check answers "is this the N-th distinct IP" atomically. The seen sets
 * are one key per member. Stateless: every function takes the store. */
#include "svc/lockout.h"
#include "crypto/enc.h"
#include "util/str.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "seen_agents:" + uid + ":" + 64 hex, and the IPv6 forms, fit easily. */
#define KEY_MAX (LOCKOUT_USER_ID_MAX + 128)
#define IP_MAX 64

static bool uid_ok(const char *uid)
{
    return uid && *uid && strlen(uid) <= LOCKOUT_USER_ID_MAX;
}

static bool ip_known(const char *ip)
{
    return ip && *ip && strcmp(ip, "unknown") != 0 && strlen(ip) < IP_MAX;
}

static int64_t ceil_s(int64_t ms)
{
    int64_t s = (ms + 999) / 1000;
    return s < 1 ? 1 : s;
}

int64_t lockout_ladder_s(int64_t count)
{
    if (count <= 4)
        return 0;
    if (count == 5)
        return 60;
    if (count == 6)
        return 300;
    if (count == 7)
        return 900;
    return LOCKOUT_MAX_S;
}

/* Remaining TTL of a flag key as Retry-After seconds; absent → false. */
static rc_t flag_ttl(struct kv *kv, const char *key, int64_t no_expiry_s, bool *out_set,
                     int64_t *out_s)
{
    int64_t ms;
    rc_t rc = kv_ttl(kv, key, &ms);
    if (rc != RC_OK || ms == -2)
        return rc;
    *out_set = true;
    *out_s = ms == -1 ? no_expiry_s : ceil_s(ms);
    return RC_OK;
}

rc_t lockout_check(struct kv *kv, const char *user_id, bool *out_locked, int64_t *out_retry_after_s)
{
    *out_locked = false;
    *out_retry_after_s = 0;
    if (!uid_ok(user_id))
        return RC_INVALID;
    char key[KEY_MAX];
    snprintf(key, sizeof key, "lockout:%s", user_id);
    return flag_ttl(kv, key, LOCKOUT_MAX_S, out_locked, out_retry_after_s);
}

/* Adds ip to the user's distinct-IP window; *out_fired when it is the
 * LOCKOUT_DISTRIBUTED_IPS-th distinct IP (or later) within the window. */
static rc_t distributed_hit(struct kv *kv, const char *uid, const char *ip, bool *out_fired)
{
    char marker[KEY_MAX], log[KEY_MAX];
    snprintf(marker, sizeof marker, "distributed_attack:%s:%s", uid, ip);
    snprintf(log, sizeof log, "distributed_attack:%s", uid);
    bool created = false;
    rc_t rc = kv_set_nx(kv, marker, "1", LOCKOUT_DISTRIBUTED_WINDOW_S * 1000LL, &created);
    if (rc != RC_OK || !created)
        return rc;
    /* With limit N-1 the window refuses exactly when N-1 other distinct IPs
     * are already in it, i.e. when this one is the N-th. */
    bool allowed = true;
    int64_t retry_ms;
    rc = kv_window_hit(kv, log, time_now_us() / 1000, LOCKOUT_DISTRIBUTED_WINDOW_S * 1000LL,
                       LOCKOUT_DISTRIBUTED_IPS - 1, &allowed, &retry_ms);
    if (rc == RC_OK)
        *out_fired = !allowed;
    return rc;
}

rc_t lockout_record_failure(struct kv *kv, const char *user_id, const char *client_ip,
                            bool is_password_failure, bool *out_locked, int64_t *out_retry_after_s,
                            int64_t *out_attempt_count, bool *out_distributed_attack)
{
    *out_locked = false;
    *out_retry_after_s = 0;
    *out_attempt_count = 0;
    *out_distributed_attack = false;
    if (!uid_ok(user_id))
        return RC_INVALID;
    char key[KEY_MAX];
    snprintf(key, sizeof key, "failed_attempts:%s", user_id);
    int64_t count = 0;
    rc_t rc = kv_incr(kv, key, LOCKOUT_FAILURE_TTL_S * 1000LL, KV_TTL_ALWAYS, &count);
    if (rc != RC_OK)
        return rc;
    *out_attempt_count = count;
    int64_t lock_s = lockout_ladder_s(count);
    if (is_password_failure && ip_known(client_ip)) {
        rc = distributed_hit(kv, user_id, client_ip, out_distributed_attack);
        if (rc != RC_OK)
            return rc;
        if (*out_distributed_attack)
            lock_s = LOCKOUT_MAX_S;
    }
    if (lock_s == 0)
        return RC_OK;
    snprintf(key, sizeof key, "lockout:%s", user_id);
    rc = kv_set(kv, key, "1", lock_s * 1000);
    if (rc != RC_OK)
        return rc;
    *out_locked = true;
    *out_retry_after_s = lock_s;
    return RC_OK;
}

static rc_t is_absent(struct kv *kv, const char *key, bool *out_absent)
{
    int64_t ms;
    rc_t rc = kv_ttl(kv, key, &ms);
    *out_absent = rc == RC_OK && ms == -2;
    return rc;
}

/* Marker keys of the seen sets; "" when the value does not count. */
static void seen_keys(const char *uid, const char *ip, const char *ua, char ip_key[KEY_MAX],
                      char ua_key[KEY_MAX])
{
    ip_key[0] = ua_key[0] = '\0';
    if (ip_known(ip))
        snprintf(ip_key, KEY_MAX, "seen_ips:%s:%s", uid, ip);
    struct str t = str_trim(str_of(ua));
    if (t.len) {
        char hex[CRYPTO_SHA256_HEX_LEN + 1];
        crypto_sha256_hex(t.p, t.len, hex);
        snprintf(ua_key, KEY_MAX, "seen_agents:%s:%s", uid, hex);
    }
}

static rc_t read_prior(struct kv *kv, const char *key, int64_t *out)
{
    char *v = NULL;
    rc_t rc = kv_get(kv, key, &v);
    if (rc == RC_OK && v && (!str_parse_i64(v, out) || *out < 0))
        *out = 0;
    free(v);
    return rc;
}

rc_t lockout_record_success(struct kv *kv, const char *user_id, const char *client_ip,
                            const char *user_agent, struct lockout_flags *out)
{
    memset(out, 0, sizeof *out);
    if (!uid_ok(user_id))
        return RC_INVALID;
    char counter[KEY_MAX], lock[KEY_MAX], ip_key[KEY_MAX], ua_key[KEY_MAX];
    snprintf(counter, sizeof counter, "failed_attempts:%s", user_id);
    snprintf(lock, sizeof lock, "lockout:%s", user_id);
    seen_keys(user_id, client_ip, user_agent, ip_key, ua_key);
    rc_t rc = read_prior(kv, counter, &out->prior_failures);
    if (rc == RC_OK && ip_key[0])
        rc = is_absent(kv, ip_key, &out->new_ip);
    if (rc == RC_OK && ua_key[0])
        rc = is_absent(kv, ua_key, &out->new_user_agent);
    if (rc == RC_OK)
        rc = kv_del(kv, counter);
    if (rc == RC_OK)
        rc = kv_del(kv, lock);
    if (rc == RC_OK && ip_key[0])
        rc = kv_set(kv, ip_key, "1", LOCKOUT_SEEN_TTL_S * 1000LL);
    if (rc == RC_OK && ua_key[0])
        rc = kv_set(kv, ua_key, "1", LOCKOUT_SEEN_TTL_S * 1000LL);
    if (rc != RC_OK) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->many_failures = out->prior_failures >= LOCKOUT_SUSPICIOUS_PRIOR_FAILURES;
    out->suspicious = out->new_ip || out->new_user_agent || out->many_failures;
    return RC_OK;
}

rc_t lockout_otp_blocked(struct kv *kv, const char *user_id, bool *out_blocked,
                         int64_t *out_retry_after_s)
{
    *out_blocked = false;
    *out_retry_after_s = 0;
    if (!uid_ok(user_id))
        return RC_INVALID;
    char key[KEY_MAX];
    snprintf(key, sizeof key, "otp_issuance_blocked:%s", user_id);
    return flag_ttl(kv, key, LOCKOUT_OTP_BLOCK_S, out_blocked, out_retry_after_s);
}

rc_t lockout_record_otp_failure(struct kv *kv, const char *user_id, bool *out_blocked)
{
    *out_blocked = false;
    if (!uid_ok(user_id))
        return RC_INVALID;
    char key[KEY_MAX];
    snprintf(key, sizeof key, "otp_failed:%s", user_id);
    int64_t count = 0;
    rc_t rc = kv_incr(kv, key, LOCKOUT_OTP_FAILED_TTL_S * 1000LL, KV_TTL_ON_CREATE, &count);
    if (rc != RC_OK || count <= LOCKOUT_OTP_FAILED_MAX)
        return rc;
    snprintf(key, sizeof key, "otp_issuance_blocked:%s", user_id);
    bool created;
    rc = kv_set_nx(kv, key, "1", LOCKOUT_OTP_BLOCK_S * 1000LL, &created);
    if (rc == RC_OK)
        *out_blocked = true;
    return rc;
}
