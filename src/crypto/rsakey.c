/* RSA signing keys (see rsakey.h): OpenSSL 3 EVP and PEM only, no RSA_*
 * calls. Parsing never prompts for a passphrase (the callback refuses), and
 * every failure clears the thread's OpenSSL error queue so an unrelated later
 * check does not find stale errors. */
#include "crypto/rsakey.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "crypto/enc.h"
#include "util/mem.h"

/* Refuses every passphrase request: encrypted PEMs fail to parse instead of
 * reading the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Text of a memory BIO as a new NUL-terminated string. */
static char *bio_take(BIO *b)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    return n > 0 ? xstrndup(p, (size_t)n) : NULL;
}

/* An RSA key of acceptable size, optionally with private components. */
static bool rsa_key_ok(const EVP_PKEY *k, bool need_private)
{
    if (!EVP_PKEY_is_a(k, "RSA"))
        return false;
    int bits = EVP_PKEY_get_bits(k);
    if (bits < RSAKEY_MIN_BITS || bits > RSAKEY_MAX_BITS)
        return false;
    if (!need_private)
        return true;
    BIGNUM *d = NULL;
    bool ok = EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_D, &d) == 1 && d != NULL;
    BN_clear_free(d);
    return ok;
}

static rc_t parse_pem(const char *pem, size_t len, bool want_private, EVP_PKEY **out)
{
    *out = NULL;
    if (!pem)
        return RC_INVALID;
    if (len > RSAKEY_PEM_MAX)
        return RC_LIMIT;
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *k = NULL;
    if (b)
        k = want_private ? PEM_read_bio_PrivateKey_ex(b, NULL, no_passphrase, NULL, NULL, NULL)
                         : PEM_read_bio_PUBKEY_ex(b, NULL, no_passphrase, NULL, NULL, NULL);
    BIO_free(b);
    if (!k || !rsa_key_ok(k, want_private)) {
        EVP_PKEY_free(k);
        ERR_clear_error();
        return RC_INVALID;
    }
    *out = k;
    return RC_OK;
}

rc_t rsakey_parse_private(const char *pem, size_t len, EVP_PKEY **out)
{
    return parse_pem(pem, len, true, out);
}

rc_t rsakey_parse_public(const char *pem, size_t len, EVP_PKEY **out)
{
    return parse_pem(pem, len, false, out);
}

rc_t rsakey_check_pair(const char *private_pem, size_t private_len, const char *public_pem,
                       size_t public_len)
{
    EVP_PKEY *priv = NULL, *pub = NULL;
    rc_t rc = rsakey_parse_private(private_pem, private_len, &priv);
    if (!rc)
        rc = rsakey_parse_public(public_pem, public_len, &pub);
    if (!rc && EVP_PKEY_eq(priv, pub) != 1)
        rc = RC_CONFLICT;
    EVP_PKEY_free(priv);
    EVP_PKEY_free(pub);
    ERR_clear_error();
    return rc;
}

rc_t rsakey_public_pem(const EVP_PKEY *key, char **out)
{
    *out = NULL;
    BIO *b = BIO_new(BIO_s_mem());
    if (b && PEM_write_bio_PUBKEY(b, key) == 1)
        *out = bio_take(b);
    BIO_free(b);
    if (!*out) {
        ERR_clear_error();
        return RC_CRYPTO;
    }
    return RC_OK;
}

rc_t rsakey_private_pem(const EVP_PKEY *key, char **out)
{
    *out = NULL;
    /* A secure-memory BIO wipes the PEM text it held when freed. */
    BIO *b = BIO_new(BIO_s_secmem());
    /* PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY"). */
    if (b && rsa_key_ok(key, true) &&
        PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1)
        *out = bio_take(b);
    BIO_free(b);
    if (!*out) {
        ERR_clear_error();
        return RC_CRYPTO;
    }
    return RC_OK;
}

rc_t rsakey_generate(char **out_private_pem, char **out_public_pem)
{
    *out_private_pem = NULL;
    *out_public_pem = NULL;
    /* EVP_PKEY_Q_keygen's RSA default public exponent is 65537. */
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSAKEY_GEN_BITS);
    if (!k) {
        ERR_clear_error();
        return RC_CRYPTO;
    }
    rc_t rc = rsakey_private_pem(k, out_private_pem);
    if (!rc)
        rc = rsakey_public_pem(k, out_public_pem);
    EVP_PKEY_free(k);
    if (rc) {
        xfree_secret_str(*out_private_pem);
        *out_private_pem = NULL;
    }
    return rc;
}

void rsakey_kid(const char *pem, size_t len, char out[RSAKEY_KID_LEN + 1])
{
    unsigned char d[CRYPTO_SHA256_LEN];
    crypto_sha256(pem, len, d);
    crypto_b64_encode(CRYPTO_B64_URL, d, 16, out);
}

static char *bn_b64url(const BIGNUM *bn)
{
    int n = BN_num_bytes(bn);
    unsigned char *raw = xmalloc(n > 0 ? (size_t)n : 1);
    BN_bn2bin(bn, raw); /* big-endian, minimal: no leading zero byte */
    char *s = crypto_b64_encode_new(CRYPTO_B64_URL, raw, (size_t)n);
    free(raw);
    return s;
}

rc_t rsakey_jwk_params(const EVP_PKEY *key, char **out_n, char **out_e)
{
    *out_n = NULL;
    *out_e = NULL;
    BIGNUM *n = NULL, *e = NULL;
    rc_t rc = RC_INVALID;
    if (EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) == 1) {
        *out_n = bn_b64url(n);
        *out_e = bn_b64url(e);
        rc = RC_OK;
    }
    BN_free(n);
    BN_free(e);
    if (rc)
        ERR_clear_error();
    return rc;
}
