/* Brute-force protection per account (see lockout.h; api-core §12,
 * data-model §10.3). The key layout is the contract's, so operators and
 * migration tools see the same keys on Redis. Stateless: every function
 * takes the store. */
#include "svc/lockout.h"
#include "util/mem.h"
#include "util/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "distributed_attack:" / "seen_agents:" + uid fit easily. */
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

/* Adds ip to the user's distinct-IP set (a HyperLogLog on Redis, data-model
 * §10.3) and re-arms its 300 s expiry; *out_fired once it holds
 * LOCKOUT_DISTRIBUTED_IPS or more. */
static rc_t distributed_hit(struct kv *kv, const char *uid, const char *ip, bool *out_fired)
{
    char key[KEY_MAX];
    snprintf(key, sizeof key, "distributed_attack:%s", uid);
    int64_t n = 0;
    rc_t rc = kv_set_add(kv, key, ip, LOCKOUT_DISTRIBUTED_WINDOW_S * 1000LL, true, &n);
    if (rc == RC_OK)
        *out_fired = n >= LOCKOUT_DISTRIBUTED_IPS;
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

/* The trimmed user agent; "" when there is none (it never counts as new). */
static struct str agent_of(const char *ua)
{
    return str_trim(str_of(ua));
}

/* Whether member is absent from the set at "<prefix><uid>". */
static rc_t is_new(struct kv *kv, const char *prefix, const char *uid, const char *member,
                   bool *out_new)
{
    char key[KEY_MAX];
    snprintf(key, sizeof key, "%s%s", prefix, uid);
    bool seen = false;
    rc_t rc = kv_set_has(kv, key, member, &seen);
    *out_new = rc == RC_OK && !seen;
    return rc;
}

static rc_t remember(struct kv *kv, const char *prefix, const char *uid, const char *member)
{
    char key[KEY_MAX];
    snprintf(key, sizeof key, "%s%s", prefix, uid);
    int64_t n;
    return kv_set_add(kv, key, member, LOCKOUT_SEEN_TTL_S * 1000LL, false, &n);
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
    char counter[KEY_MAX], lock[KEY_MAX];
    snprintf(counter, sizeof counter, "failed_attempts:%s", user_id);
    snprintf(lock, sizeof lock, "lockout:%s", user_id);
    bool ip = ip_known(client_ip);
    struct str t = agent_of(user_agent);
    char *agent = t.len ? xstrndup(t.p, t.len) : NULL;
    rc_t rc = read_prior(kv, counter, &out->prior_failures);
    if (rc == RC_OK && ip)
        rc = is_new(kv, "seen_ips:", user_id, client_ip, &out->new_ip);
    if (rc == RC_OK && agent)
        rc = is_new(kv, "seen_agents:", user_id, agent, &out->new_user_agent);
    if (rc == RC_OK)
        rc = kv_del(kv, counter);
    if (rc == RC_OK)
        rc = kv_del(kv, lock);
    if (rc == RC_OK && ip)
        rc = remember(kv, "seen_ips:", user_id, client_ip);
    if (rc == RC_OK && agent)
        rc = remember(kv, "seen_agents:", user_id, agent);
    free(agent);
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
