/* Signing keys service (svc/keys.h) on a fresh SQLite file per case:
 * bootstrap (generated, configured pair with its exact-text kid, PKCS#1
 * input stored as PKCS#8, mismatched pair, retired configured key),
 * private keys at rest (enc2, AAD = kid), sign → verify, rotation states
 * and retire_after (overlap 900, the E floors, explicit 0), the retirement
 * job, JWKS shape, two services on one database (unknown-kid reload and
 * its once-per-second bound, concurrent bootstrap), and a timing of
 * keys_verify against the raw crypto verify. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "crypto/enc.h"
#include "crypto/envelope.h"
#include "crypto/jwt.h"
#include "crypto/rsakey.h"
#include "db/db.h"
#include "store/migrate.h"
#include "svc/keys.h"
#include "svc/secrets.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#define NO_DOTENV "/nonexistent-authd-test-dir/.env"
#define PASSPHRASE "unit-test-signing-passphrase"

#define assert_ok(expr)                                                                            \
    do {                                                                                           \
        rc_t rc_ = (expr);                                                                         \
        if (rc_ != RC_OK)                                                                          \
            fail_msg("%s: %s", #expr, rc_str(rc_));                                                \
    } while (0)

static char g_tmp[256];
static int g_seq;

struct fx {
    char dir[300];
    char url[400];
    struct db *db;
    struct config *cfg;
    struct secrets sec;
};

/* ---- fixture ----------------------------------------------------------- */

static struct config *load_cfg(const char *url, const char *const *extra)
{
    char *env[32];
    int n = 0;
    env[n++] = xstrdup("APP__ENVIRONMENT=development");
    char buf[512];
    snprintf(buf, sizeof buf, "DATABASE__URL=%s", url);
    env[n++] = xstrdup(buf);
    for (int i = 0; extra && extra[i]; i++)
        env[n++] = xstrdup(extra[i]);
    env[n] = NULL;
    struct config *c = NULL;
    char err[512] = "";
    if (config_load(env, NO_DOTENV, &c, err, sizeof err, NULL) != RC_OK)
        fail_msg("config_load: %s", err);
    for (int i = 0; i < n; i++)
        free(env[i]);
    return c;
}

static struct fx *fx_new(const char *const *extra)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/case%d", g_tmp, ++g_seq);
    snprintf(f->url, sizeof f->url, "sqlite:///%s/authd.db", f->dir);
    f->cfg = load_cfg(f->url, extra);
    assert_ok(db_open(f->url, NULL, &f->db));
    int applied = 0;
    assert_ok(migrate_apply(f->db, &applied));
    f->sec.signing_passphrase = PASSPHRASE;
    return f;
}

static void fx_free(struct fx *f)
{
    db_close(f->db);
    config_free(f->cfg);
    free(f);
}

/* ---- helpers ----------------------------------------------------------- */

static char *q1(struct db *db, const char *sql, const char *arg)
{
    struct db_conn *c = NULL;
    struct db_res *r = NULL;
    struct db_param p[] = {DBP_T(arg)};
    assert_ok(db_acquire(db, DB_WRITE, &c));
    assert_ok(db_exec(c, sql, arg ? 1 : 0, arg ? p : NULL, &r));
    char *v = NULL;
    if (db_res_rows(r) > 0 && db_res_get(r, 0, 0))
        v = xstrdup(db_res_get(r, 0, 0));
    db_res_free(r);
    db_release(c);
    return v;
}

static void exec1(struct db *db, const char *sql, const char *arg)
{
    free(q1(db, sql, arg));
}

static int64_t count(struct db *db, const char *where)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM signing_keys WHERE %s", where);
    char *v = q1(db, sql, NULL);
    int64_t n = v ? strtoll(v, NULL, 10) : -1;
    free(v);
    return n;
}

static char *active_kid(struct db *db)
{
    return q1(db, "SELECT kid FROM signing_keys WHERE status = 'active' AND deleted_at IS NULL",
              NULL);
}

static char *status_of(struct db *db, const char *kid)
{
    return q1(db, "SELECT status FROM signing_keys WHERE kid = $1", kid);
}

static int64_t time_of(struct db *db, const char *col, const char *kid)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT %s FROM signing_keys WHERE kid = $1", col);
    char *v = q1(db, sql, kid);
    int64_t us = 0;
    if (!v || !time_parse(v, &us))
        us = 0;
    free(v);
    return us;
}

static json_t *claims_now(const char *type, const char *aud, int64_t iat, int64_t ttl)
{
    char jti[UUID_STR_LEN + 1], sub[UUID_STR_LEN + 1];
    uuid_v4(jti);
    uuid_v4(sub);
    return json_pack("{s:s, s:I, s:I, s:s, s:s, s:s}", "jti", jti, "iat", (json_int_t)iat, "exp",
                     (json_int_t)(iat + ttl), "sub", sub, "type", type, "aud", aud);
}

static char *sign(struct keys *k)
{
    json_t *c = claims_now("access", "auth-service", time_now_us() / 1000000, 900);
    char *tok = NULL;
    assert_ok(keys_sign(k, c, &tok));
    json_decref(c);
    return tok;
}

/* kid from the token header. */
static char *header_kid(const char *tok)
{
    const char *dot = strchr(tok, '.');
    assert_non_null(dot);
    char raw[512];
    size_t n = 0;
    assert_ok(crypto_b64_decode(CRYPTO_B64_URL, tok, (size_t)(dot - tok), raw, sizeof raw - 1, &n));
    raw[n] = '\0';
    json_t *h = json_loads(raw, 0, NULL);
    assert_non_null(h);
    assert_int_equal(json_object_size(h), 3);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
    char *kid = xstrdup(json_string_value(json_object_get(h, "kid")));
    json_decref(h);
    return kid;
}

static rc_t verify(struct keys *k, const char *tok, struct jwt_error *e)
{
    json_t *claims = NULL;
    rc_t rc = keys_verify(k, tok, strlen(tok), "access", time_now_us() / 1000000, &claims, e);
    json_decref(claims);
    return rc;
}

static json_t *jwks(struct keys *k)
{
    char *body = NULL;
    size_t len = 0;
    assert_ok(keys_jwks(k, &body, &len));
    assert_int_equal(strlen(body), len);
    json_t *doc = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(doc);
    free(body);
    return doc;
}

static size_t jwks_count(struct keys *k)
{
    json_t *doc = jwks(k);
    size_t n = json_array_size(json_object_get(doc, "keys"));
    json_decref(doc);
    return n;
}

static bool jwks_has(struct keys *k, const char *kid)
{
    json_t *doc = jwks(k), *e;
    size_t i;
    bool found = false;
    json_array_foreach(json_object_get(doc, "keys"), i, e)
    {
        found |= strcmp(json_string_value(json_object_get(e, "kid")), kid) == 0;
    }
    json_decref(doc);
    return found;
}

/* Decrypts the stored private key of kid with the test passphrase. */
static char *stored_private(struct db *db, const char *kid)
{
    char *stored = q1(db, "SELECT private_key FROM signing_keys WHERE kid = $1", kid);
    assert_non_null(stored);
    struct envelope_key *ek = NULL;
    assert_ok(envelope_key_new(PASSPHRASE, strlen(PASSPHRASE), ENVELOPE_INFO_SIGNING_KEY, &ek));
    char *pem = NULL;
    size_t n = 0;
    assert_ok(envelope_open(ek, stored, strlen(stored), kid, strlen(kid), &pem, &n));
    /* AAD binds the row: another kid does not open it. */
    char *bad = NULL;
    size_t bn = 0;
    assert_int_not_equal(envelope_open(ek, stored, strlen(stored), "x", 1, &bad, &bn), RC_OK);
    envelope_key_free(ek);
    free(stored);
    return pem;
}

/* A PKCS#1 ("BEGIN RSA PRIVATE KEY") rendering of a private PEM. */
static char *pkcs1_of(const char *pem)
{
    EVP_PKEY *pk = NULL;
    assert_ok(rsakey_parse_private(pem, strlen(pem), &pk));
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey_traditional(b, pk, NULL, NULL, 0, NULL, NULL), 1);
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *out = xstrndup(p, (size_t)n);
    BIO_free(b);
    EVP_PKEY_free(pk);
    return out;
}

static char *env_pem(const char *name, const char *pem)
{
    size_t n = strlen(name) + strlen(pem) + 2;
    char *s = xmalloc(n);
    snprintf(s, n, "%s=%s", name, pem);
    return s;
}

/* Sends log lines to a temp file; returns its fd. */
static int capture_logs(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/log%d", g_tmp, ++g_seq);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    unlink(path);
    log_set_fd(fd);
    return fd;
}

static char *captured(int fd)
{
    log_set_fd(1);
    off_t n = lseek(fd, 0, SEEK_END);
    char *s = xcalloc(1, (size_t)n + 1);
    assert_int_equal(pread(fd, s, (size_t)n, 0), n);
    close(fd);
    return s;
}

/* ---- cases ------------------------------------------------------------- */

static void test_bootstrap_generates_one_active_key(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct keys *k = NULL, *k2 = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    assert_int_equal(count(f->db, "1=1"), 1);
    assert_int_equal(count(f->db, "status = 'active'"), 1);
    char *kid = active_kid(f->db);
    char *pub = q1(f->db, "SELECT public_key FROM signing_keys WHERE kid = $1", kid);
    char *priv = q1(f->db, "SELECT private_key FROM signing_keys WHERE kid = $1", kid);
    assert_true(strncmp(pub, "-----BEGIN PUBLIC KEY-----\n", 27) == 0);
    assert_int_equal(pub[strlen(pub) - 1], '\n');
    char want[RSAKEY_KID_LEN + 1];
    rsakey_kid(pub, strlen(pub), want);
    assert_string_equal(kid, want);
    assert_int_equal(strlen(kid), 22);
    /* enc2 at rest; the plaintext never reaches the column */
    assert_true(strncmp(priv, "enc2:", 5) == 0);
    assert_null(strstr(priv, "PRIVATE KEY"));
    char *pem = stored_private(f->db, kid);
    assert_true(strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27) == 0);
    xfree_secret_str(pem);
    /* A second service on the same database uses the existing key. */
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k2));
    assert_int_equal(count(f->db, "1=1"), 1);
    char *tok = sign(k2);
    char *hk = header_kid(tok);
    assert_string_equal(hk, kid);
    free(hk);
    free(tok);
    keys_free(k2);
    keys_free(k);
    free(kid);
    free(pub);
    free(priv);
    fx_free(f);
}

static void test_configured_pair_uses_exact_text_kid(void **state)
{
    (void)state;
    char *priv = NULL, *pub = NULL;
    assert_ok(rsakey_generate(&priv, &pub));
    /* Not the canonical text: an extra blank line at the end. The kid is
     * that of the exact text; the private key comes in PKCS#1. */
    size_t pl = strlen(pub);
    char *pub_text = xmalloc(pl + 2);
    memcpy(pub_text, pub, pl);
    memcpy(pub_text + pl, "\n", 2);
    char *pkcs1 = pkcs1_of(priv);
    assert_non_null(strstr(pkcs1, "BEGIN RSA PRIVATE KEY"));
    char *e1 = env_pem("JWT__PRIVATE_KEY_PEM", pkcs1),
         *e2 = env_pem("JWT__PUBLIC_KEY_PEM", pub_text);
    const char *extra[] = {e1, e2, NULL};
    struct fx *f = fx_new(extra);
    char err[512];
    assert_ok(keys_check_config(f->cfg, err, sizeof err));
    struct keys *k = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    char want[RSAKEY_KID_LEN + 1], canon[RSAKEY_KID_LEN + 1];
    rsakey_kid(pub_text, strlen(pub_text), want);
    rsakey_kid(pub, strlen(pub), canon);
    assert_string_not_equal(want, canon);
    char *kid = active_kid(f->db);
    assert_string_equal(kid, want);
    char *stored_pub = q1(f->db, "SELECT public_key FROM signing_keys WHERE kid = $1", kid);
    assert_string_equal(stored_pub, pub_text);
    char *priv_col = q1(f->db, "SELECT private_key FROM signing_keys WHERE kid = $1", kid);
    assert_true(strncmp(priv_col, "enc2:", 5) == 0);
    char *pem = stored_private(f->db, kid);
    assert_true(strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27) == 0); /* stored as PKCS#8 */
    xfree_secret_str(pem);
    char *tok = sign(k);
    char *hk = header_kid(tok);
    assert_string_equal(hk, want);
    assert_ok(verify(k, tok, NULL));
    free(hk);
    free(tok);
    keys_free(k);
    free(kid);
    free(stored_pub);
    free(priv_col);
    fx_free(f);
    free(e1);
    free(e2);
    xfree_secret_str(pkcs1);
    xfree_secret_str(priv);
    free(pub);
    free(pub_text);
}

static void test_mismatched_pair_refused(void **state)
{
    (void)state;
    char *priv1 = NULL, *pub1 = NULL, *priv2 = NULL, *pub2 = NULL;
    assert_ok(rsakey_generate(&priv1, &pub1));
    assert_ok(rsakey_generate(&priv2, &pub2));
    char *e1 = env_pem("JWT__PRIVATE_KEY_PEM", priv1), *e2 = env_pem("JWT__PUBLIC_KEY_PEM", pub2);
    const char *extra[] = {e1, e2, NULL};
    struct fx *f = fx_new(extra);
    char err[512] = "";
    assert_int_equal(keys_check_config(f->cfg, err, sizeof err), RC_INVALID);
    assert_non_null(strstr(err, "JWT__PRIVATE_KEY_PEM"));
    assert_null(strstr(err, "PRIVATE KEY-----")); /* never quotes the key */
    struct keys *k = NULL;
    int fd = capture_logs();
    assert_int_equal(keys_new(f->db, f->cfg, &f->sec, &k), RC_INVALID);
    char *logs = captured(fd);
    assert_null(k);
    assert_non_null(strstr(logs, "JWT__PRIVATE_KEY_PEM"));
    assert_null(strstr(logs, "BEGIN"));
    free(logs);
    assert_int_equal(count(f->db, "1=1"), 0);
    fx_free(f);
    /* Garbage public key: named too. */
    free(e2);
    e2 = env_pem("JWT__PUBLIC_KEY_PEM", "not a pem");
    const char *extra2[] = {e1, e2, NULL};
    f = fx_new(extra2);
    assert_int_equal(keys_check_config(f->cfg, err, sizeof err), RC_INVALID);
    assert_non_null(strstr(err, "JWT__PUBLIC_KEY_PEM"));
    fx_free(f);
    free(e1);
    free(e2);
    xfree_secret_str(priv1);
    xfree_secret_str(priv2);
    free(pub1);
    free(pub2);
}

static void test_retired_configured_key_is_not_reactivated(void **state)
{
    (void)state;
    char *priv = NULL, *pub = NULL;
    assert_ok(rsakey_generate(&priv, &pub));
    char *e1 = env_pem("JWT__PRIVATE_KEY_PEM", priv), *e2 = env_pem("JWT__PUBLIC_KEY_PEM", pub);
    const char *extra[] = {e1, e2, NULL};
    struct fx *f = fx_new(extra);
    struct keys *k = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    char *conf_kid = active_kid(f->db);
    char nk[KEYS_KID_MAX], rk[KEYS_KID_MAX];
    assert_ok(keys_rotate(k, 0, true, nk, rk)); /* configured key retired at once */
    keys_free(k);
    char *st = status_of(f->db, conf_kid);
    assert_string_equal(st, "retired");
    free(st);
    /* Lose the active key (soft delete): the next start must not revive
     * the retired configured key but generate one and say so at error. */
    exec1(f->db,
          "UPDATE signing_keys SET deleted_at = '2026-01-01T00:00:00.000000Z' WHERE kid = $1", nk);
    int fd = capture_logs();
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    char *logs = captured(fd);
    char *kid = active_kid(f->db);
    assert_string_not_equal(kid, conf_kid);
    assert_string_not_equal(kid, nk);
    st = status_of(f->db, conf_kid);
    assert_string_equal(st, "retired");
    char *line = strstr(logs, "\"event\":\"signing_key_bootstrap_generated\"");
    assert_non_null(line);
    assert_non_null(strstr(logs, "\"level\":\"error\""));
    assert_non_null(strstr(logs, kid));
    free(logs);
    free(st);
    free(kid);
    keys_free(k);
    free(conf_kid);
    fx_free(f);
    free(e1);
    free(e2);
    xfree_secret_str(priv);
    free(pub);
}

static void test_sign_verify_roundtrip(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct keys *k = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    int64_t now = time_now_us() / 1000000;
    json_t *c = claims_now("access", "auth-service", now, 900);
    char *tok = NULL;
    assert_ok(keys_sign(k, c, &tok));
    json_t *out = NULL;
    struct jwt_error e;
    assert_ok(keys_verify(k, tok, strlen(tok), "access", now, &out, &e));
    assert_true(json_equal(out, c));
    json_decref(out);
    /* wrong type, expiry, audience */
    assert_int_equal(keys_verify(k, tok, strlen(tok), "refresh", now, &out, &e), RC_INVALID);
    assert_int_equal(e.reason, JWT_BAD_TYPE);
    assert_null(out);
    assert_int_equal(keys_verify(k, tok, strlen(tok), "access", now + 901, &out, &e), RC_INVALID);
    assert_string_equal(e.code, "token_expired");
    free(tok);
    json_decref(c);
    c = claims_now("access", "other-service", now, 900);
    assert_ok(keys_sign(k, c, &tok));
    assert_int_equal(keys_verify(k, tok, strlen(tok), "access", now, &out, &e), RC_INVALID);
    assert_int_equal(e.reason, JWT_BAD_AUDIENCE);
    free(tok);
    json_decref(c);
    /* a tampered signature */
    tok = sign(k);
    tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(k, tok, &e), RC_INVALID);
    assert_int_equal(e.reason, JWT_BAD_SIGNATURE);
    free(tok);
    /* The hot path does not touch the database while the cache is fresh. */
    struct keys_stats before, after;
    tok = sign(k);
    keys_stats(k, &before);
    for (int i = 0; i < 200; i++)
        assert_ok(verify(k, tok, NULL));
    keys_stats(k, &after);
    assert_int_equal(before.set_checks, after.set_checks);
    assert_int_equal(before.set_loads, after.set_loads);
    /* ...and a token this process signed skips the RSA step (jwt_memo) */
    assert_int_equal(after.memo_hits - before.memo_hits, 200);
    free(tok);
    keys_free(k);
    fx_free(f);
}

static void test_rotation_overlap_900(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct keys *k = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    char *k1 = active_kid(f->db);
    char *old_tok = sign(k);
    char nk[KEYS_KID_MAX], rk[KEYS_KID_MAX];
    int64_t t0 = time_now_us();
    assert_ok(keys_rotate(k, 900, true, nk, rk));
    int64_t t1 = time_now_us();
    assert_string_equal(rk, k1);
    char *k2 = active_kid(f->db);
    assert_string_equal(nk, k2);
    char *st = status_of(f->db, k1);
    assert_string_equal(st, "retiring");
    free(st);
    int64_t after = time_of(f->db, "retire_after", k1);
    assert_true(after >= t0 + 900LL * 1000000 && after <= t1 + 900LL * 1000000);
    assert_int_equal(time_of(f->db, "retired_at", k1), 0);
    /* both verify; new tokens carry the new kid; JWKS lists both */
    assert_ok(verify(k, old_tok, NULL));
    char *tok = sign(k);
    char *hk = header_kid(tok);
    assert_string_equal(hk, k2);
    assert_ok(verify(k, tok, NULL));
    assert_int_equal(jwks_count(k), 2);
    assert_true(jwks_has(k, k1) && jwks_has(k, k2));
    /* a second rotation keeps K1, K2, K3 */
    char nk3[KEYS_KID_MAX], rk3[KEYS_KID_MAX];
    assert_ok(keys_rotate(k, 900, false, nk3, rk3));
    assert_string_equal(rk3, k2);
    assert_int_equal(jwks_count(k), 3);
    assert_int_equal(count(f->db, "status = 'active'"), 1);
    assert_ok(verify(k, old_tok, NULL));
    free(hk);
    free(tok);
    free(old_tok);
    free(k1);
    free(k2);
    keys_free(k);
    fx_free(f);
}

/* E = max(overlap, access, otp, action, largest active client ttl). */
static void test_rotation_window_floors(void **state)
{
    (void)state;
    const char *extra[] = {"JWT__ACCESS_TOKEN_TTL_SECONDS=1000", NULL};
    struct fx *f = fx_new(extra);
    struct keys *k = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    char nk[KEYS_KID_MAX], rk[KEYS_KID_MAX];
    int64_t t0 = time_now_us();
    assert_ok(keys_rotate(k, 10, true, nk, rk));
    int64_t e = time_of(f->db, "retire_after", rk) - t0;
    assert_true(e >= 1000LL * 1000000 && e < 1005LL * 1000000);
    /* An active client with a long TTL raises E; inactive or deleted ones do not. */
    const char *ins = "INSERT INTO oauth_clients (id, client_id, client_secret_hash, "
                      "client_secret_prefix, name, scopes, is_active, token_ttl_seconds, "
                      "created_at, updated_at, deleted_at) VALUES ($1, $1, 'h', 'cs_x', 'n', '[]', "
                      "%s, %s, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', %s)";
    const struct {
        const char *active, *ttl, *deleted;
    } rows[] = {{"1", "3600", "NULL"},
                {"0", "99999", "NULL"},
                {"1", "88888", "'2026-01-02T00:00:00.000000Z'"}};
    for (size_t i = 0; i < 3; i++) {
        char sql[600], id[UUID_STR_LEN + 1];
        snprintf(sql, sizeof sql, ins, rows[i].active, rows[i].ttl, rows[i].deleted);
        uuid_v4(id);
        exec1(f->db, sql, id);
    }
    t0 = time_now_us();
    assert_ok(keys_rotate(k, 900, true, nk, rk));
    e = time_of(f->db, "retire_after", rk) - t0;
    assert_true(e >= 3600LL * 1000000 && e < 3605LL * 1000000);
    /* Overlap 0 without the explicit flag (the configured value) is floored. */
    t0 = time_now_us();
    assert_ok(keys_rotate(k, 0, false, nk, rk));
    e = time_of(f->db, "retire_after", rk) - t0;
    assert_true(e >= 3600LL * 1000000 && e < 3605LL * 1000000);
    assert_int_equal(keys_rotate(k, -1, true, nk, rk), RC_INVALID);
    keys_free(k);
    fx_free(f);
}

static void test_rotation_explicit_zero_retires_at_once(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct keys *k = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    char *k1 = active_kid(f->db);
    char *old_tok = sign(k);
    assert_ok(verify(k, old_tok, NULL));
    char nk[KEYS_KID_MAX], rk[KEYS_KID_MAX];
    assert_ok(keys_rotate(k, 0, true, nk, rk));
    assert_string_equal(rk, k1);
    char *st = status_of(f->db, k1);
    assert_string_equal(st, "retired");
    free(st);
    assert_true(time_of(f->db, "retired_at", k1) > 0);
    assert_int_equal(time_of(f->db, "retired_at", k1), time_of(f->db, "retire_after", k1));
    assert_int_equal(jwks_count(k), 1);
    assert_true(jwks_has(k, nk));
    /* The rotation cleared this process's caches: the old token is dead. */
    struct jwt_error e;
    assert_int_equal(verify(k, old_tok, &e), RC_INVALID);
    assert_int_equal(e.reason, JWT_UNKNOWN_KID);
    free(old_tok);
    free(k1);
    keys_free(k);
    fx_free(f);
}

static void test_retirement_job(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct keys *k = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    char nk[KEYS_KID_MAX], rk[KEYS_KID_MAX], nk2[KEYS_KID_MAX], rk2[KEYS_KID_MAX];
    assert_ok(keys_rotate(k, 900, true, nk, rk));
    assert_ok(keys_rotate(k, 900, true, nk2, rk2));
    keys_job(k); /* nothing due */
    assert_int_equal(count(f->db, "status = 'retiring'"), 2);
    assert_int_equal(jwks_count(k), 3);
    /* rk's window has passed; rk2's has not */
    exec1(f->db,
          "UPDATE signing_keys SET retire_after = '2020-01-01T00:00:00.000000Z' WHERE kid = $1",
          rk);
    int fd = capture_logs();
    keys_job(k);
    char *logs = captured(fd);
    char *st = status_of(f->db, rk);
    assert_string_equal(st, "retired");
    free(st);
    st = status_of(f->db, rk2);
    assert_string_equal(st, "retiring");
    free(st);
    assert_non_null(strstr(logs, "\"event\":\"signing_keys_retired\""));
    char want[KEYS_KID_MAX + 16];
    snprintf(want, sizeof want, "\"kids\":[\"%s\"]", rk);
    assert_non_null(strstr(logs, want));
    free(logs);
    /* JWKS follows at once (the job cleared the caches) */
    assert_int_equal(jwks_count(k), 2);
    assert_false(jwks_has(k, rk));
    /* idempotent: a second run retires nothing and logs nothing */
    fd = capture_logs();
    keys_job(k);
    logs = captured(fd);
    assert_null(strstr(logs, "signing_keys_retired"));
    free(logs);
    keys_free(k);
    fx_free(f);
}

static void test_jwks_shape(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct keys *k = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    char nk[KEYS_KID_MAX], rk[KEYS_KID_MAX];
    assert_ok(keys_rotate(k, 900, true, nk, rk));
    assert_ok(keys_rotate(k, 900, true, nk, rk));
    char *body = NULL;
    size_t len = 0;
    assert_ok(keys_jwks(k, &body, &len));
    static const char prefix[] =
        "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"";
    assert_true(strncmp(body, prefix, sizeof prefix - 1) == 0);
    json_t *doc = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
    free(body);
    assert_int_equal(json_object_size(doc), 1);
    json_t *arr = json_object_get(doc, "keys"), *e;
    assert_int_equal(json_array_size(arr), 3);
    size_t i;
    const char *prev = "";
    json_array_foreach(arr, i, e)
    {
        assert_int_equal(json_object_size(e), 6);
        const char *kid = json_string_value(json_object_get(e, "kid"));
        assert_true(strcmp(prev, kid) < 0); /* byte order */
        prev = kid;
        assert_string_equal(json_string_value(json_object_get(e, "e")), "AQAB");
        /* n is the modulus of the stored public key */
        char *pub = q1(f->db, "SELECT public_key FROM signing_keys WHERE kid = $1", kid);
        EVP_PKEY *pk = NULL;
        assert_ok(rsakey_parse_public(pub, strlen(pub), &pk));
        char *n = NULL, *ee = NULL;
        assert_ok(rsakey_jwk_params(pk, &n, &ee));
        assert_string_equal(json_string_value(json_object_get(e, "n")), n);
        free(n);
        free(ee);
        EVP_PKEY_free(pk);
        free(pub);
    }
    json_decref(doc);
    keys_free(k);
    fx_free(f);
}

/* A token with a chosen kid and a junk signature. */
static char *forged(const char *kid)
{
    char h[128];
    snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", kid);
    char *hb = crypto_b64_encode_new(CRYPTO_B64_URL, h, strlen(h));
    const char *p = "{\"sub\":\"x\"}";
    char *pb = crypto_b64_encode_new(CRYPTO_B64_URL, p, strlen(p));
    size_t n = strlen(hb) + strlen(pb) + 8;
    char *t = xmalloc(n);
    snprintf(t, n, "%s.%s.AAAA", hb, pb);
    free(hb);
    free(pb);
    return t;
}

static void test_unknown_kid_reloads_once(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct keys *a = NULL, *b = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &a));
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &b)); /* "another process" */
    char *t1 = sign(a);
    assert_ok(verify(b, t1, NULL)); /* b's cache holds K1 only */
    char nk[KEYS_KID_MAX], rk[KEYS_KID_MAX];
    assert_ok(keys_rotate(a, 900, true, nk, rk));
    char *t2 = sign(a);
    struct keys_stats s0, s1, s2;
    keys_stats(b, &s0);
    assert_ok(verify(b, t2, NULL)); /* unknown kid → one re-check → accepted */
    keys_stats(b, &s1);
    assert_int_equal(s1.unknown_kid_rechecks, s0.unknown_kid_rechecks + 1);
    assert_int_equal(s1.set_loads, s0.set_loads + 1);
    assert_ok(verify(b, t1, NULL));
    /* A kid nobody has: rejected; within the second no further database
     * re-check happens however many arrive. */
    char *junk = forged("no-such-kid-000000000");
    struct jwt_error e;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(verify(b, junk, &e), RC_INVALID);
        assert_int_equal(e.reason, JWT_UNKNOWN_KID);
    }
    keys_stats(b, &s2);
    assert_true(s2.unknown_kid_rechecks <= s1.unknown_kid_rechecks + 1);
    assert_int_equal(s2.set_checks - s1.set_checks,
                     s2.unknown_kid_rechecks - s1.unknown_kid_rechecks);
    /* b's JWKS shows a's rotation too */
    assert_true(jwks_has(b, nk));
    free(junk);
    free(t1);
    free(t2);
    keys_free(a);
    keys_free(b);
    fx_free(f);
}

struct boot_arg {
    const char *url;
    struct config *cfg;
    struct secrets *sec;
    rc_t rc;
    char kid[64];
};

static void *boot_thread(void *p)
{
    struct boot_arg *ba = p;
    struct db *db = NULL;
    struct keys *k = NULL;
    ba->rc = db_open(ba->url, NULL, &db);
    if (ba->rc == RC_OK)
        ba->rc = keys_new(db, ba->cfg, ba->sec, &k);
    if (ba->rc == RC_OK) {
        json_t *c = claims_now("access", "auth-service", time_now_us() / 1000000, 60);
        char *tok = NULL;
        ba->rc = keys_sign(k, c, &tok);
        json_decref(c);
        if (ba->rc == RC_OK) {
            char *kid = header_kid(tok);
            snprintf(ba->kid, sizeof ba->kid, "%s", kid);
            free(kid);
        }
        free(tok);
    }
    keys_free(k);
    db_close(db);
    return NULL;
}

/* Several "processes" (own database handles) bootstrapping one empty
 * database at once end with exactly one active key, used by all. */
static void test_concurrent_bootstrap(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    enum { N = 4 };
    pthread_t th[N];
    struct boot_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (struct boot_arg){.url = f->url, .cfg = f->cfg, .sec = &f->sec};
        assert_int_equal(pthread_create(&th[i], NULL, boot_thread, &args[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(count(f->db, "1=1"), 1);
    char *kid = active_kid(f->db);
    for (int i = 0; i < N; i++) {
        assert_int_equal(args[i].rc, RC_OK);
        assert_string_equal(args[i].kid, kid);
    }
    free(kid);
    fx_free(f);
}

struct stress_arg {
    struct keys *k;
    char *tok;
    int *stop;
    int failures;
    int runs;
};

static void *stress_thread(void *p)
{
    struct stress_arg *sa = p;
    while (!__atomic_load_n(sa->stop, __ATOMIC_ACQUIRE)) {
        json_t *c = NULL;
        struct jwt_error e;
        if (keys_verify(sa->k, sa->tok, strlen(sa->tok), "access", time_now_us() / 1000000, &c,
                        &e) != RC_OK)
            sa->failures++;
        json_decref(c);
        sa->runs++;
    }
    return NULL;
}

/* Verifiers on several threads while the key set is swapped under them
 * (rotations, JWKS rebuilds, signing): every verification of a still-valid
 * token succeeds and nothing is freed while in use (run under ASan/TSan). */
static void test_verify_during_rotations(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct keys *k = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    enum { T = 4 };
    int stop = 0;
    pthread_t th[T];
    struct stress_arg args[T];
    char *tok = sign(k);
    for (int i = 0; i < T; i++) {
        args[i] = (struct stress_arg){.k = k, .tok = tok, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, stress_thread, &args[i]), 0);
    }
    for (int r = 0; r < 3; r++) {
        char nk[KEYS_KID_MAX], rk[KEYS_KID_MAX];
        assert_ok(keys_rotate(k, 900, true, nk, rk));
        char *t = sign(k);
        assert_ok(verify(k, t, NULL));
        free(t);
        assert_int_equal(jwks_count(k), (size_t)r + 2);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
        assert_true(args[i].runs > 0);
    }
    free(tok);
    keys_free(k);
    fx_free(f);
}

/* Informative: keys_verify (cache lookup + refcount + verify) against the
 * raw jwt_verify on the same key set. Prints the figures; asserts only a
 * generous bound so a noisy machine does not fail the suite. */
static void test_verify_overhead(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct keys *k = NULL;
    assert_ok(keys_new(f->db, f->cfg, &f->sec, &k));
    char *tok = sign(k);
    char *kid = active_kid(f->db);
    char *pub = q1(f->db, "SELECT public_key FROM signing_keys WHERE kid = $1", kid);
    struct jwt_key_input in = {kid, pub, strlen(pub)};
    struct jwt_keyset *ks = NULL;
    assert_ok(jwt_keyset_new(&in, 1, &ks));
    const char *auds[] = {"auth-service"};
    enum { ITER = 3000 };
    int64_t now = time_now_us() / 1000000;
    double best_raw = 1e9, best_keys = 1e9;
    for (int round = 0; round < 3; round++) {
        int64_t t0 = time_mono_us();
        for (int i = 0; i < ITER; i++) {
            json_t *c = NULL;
            assert_ok(jwt_verify(ks, tok, strlen(tok), "access", auds, 1, now, &c, NULL));
            json_decref(c);
        }
        int64_t t1 = time_mono_us();
        for (int i = 0; i < ITER; i++) {
            json_t *c = NULL;
            assert_ok(keys_verify(k, tok, strlen(tok), "access", now, &c, NULL));
            json_decref(c);
        }
        int64_t t2 = time_mono_us();
        double raw = (double)(t1 - t0) / ITER, kv = (double)(t2 - t1) / ITER;
        best_raw = raw < best_raw ? raw : best_raw;
        best_keys = kv < best_keys ? kv : best_keys;
    }
    print_message(
        "verify: raw jwt_verify %.2f us/call, keys_verify %.2f us/call (best of 3 x %d)\n",
        best_raw, best_keys, ITER);
    assert_true(best_keys < best_raw * 2 + 5);
    jwt_keyset_unref(ks);
    free(pub);
    free(kid);
    free(tok);
    keys_free(k);
    fx_free(f);
}

int main(void)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/authd-test-keys-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    log_init(LOG_INFO, "auth-service", "development");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bootstrap_generates_one_active_key),
        cmocka_unit_test(test_configured_pair_uses_exact_text_kid),
        cmocka_unit_test(test_mismatched_pair_refused),
        cmocka_unit_test(test_retired_configured_key_is_not_reactivated),
        cmocka_unit_test(test_sign_verify_roundtrip),
        cmocka_unit_test(test_rotation_overlap_900),
        cmocka_unit_test(test_rotation_window_floors),
        cmocka_unit_test(test_rotation_explicit_zero_retires_at_once),
        cmocka_unit_test(test_retirement_job),
        cmocka_unit_test(test_jwks_shape),
        cmocka_unit_test(test_unknown_kid_reloads_once),
        cmocka_unit_test(test_concurrent_bootstrap),
        cmocka_unit_test(test_verify_during_rotations),
        cmocka_unit_test(test_verify_overhead),
    };
    int failed = cmocka_run_group_tests_name("keys", tests, NULL, NULL);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_tmp);
    return failed;
}
