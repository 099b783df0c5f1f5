/* Encrypted-at-rest envelopes (see envelope.h, data-model §11.6).
 *
 * The key object holds the HKDF-derived AES-256-GCM key, the Fernet key
 * material and the fetched cipher implementations; it is written only in
 * envelope_key_new, so concurrent seal/open calls share it without locks.
 * Every intermediate buffer that held plaintext or key bytes is wiped. */
#include "crypto/envelope.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <sodium.h>

#include "crypto/enc.h"
#include "util/mem.h"

#define GCM_KEY_LEN 32
#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN 16
#define FERNET_HDR_LEN (1 + 8 + 16) /* version, timestamp, IV */
#define FERNET_MAC_LEN 32
#define FERNET_VERSION 0x80

struct envelope_key {
    unsigned char gcm_key[GCM_KEY_LEN];
    unsigned char fernet_mac_key[16];
    unsigned char fernet_aes_key[16];
    EVP_CIPHER *gcm; /* AES-256-GCM, fetched once */
    EVP_CIPHER *cbc; /* AES-128-CBC, fetched once */
};

static rc_t hkdf_sha256(const char *ikm, size_t ikm_len, const char *info, unsigned char *out,
                        size_t out_len)
{
    rc_t rc = RC_CRYPTO;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (!ctx)
        goto out;
    /* No salt parameter: RFC 5869 treats an absent salt as HashLen zero
     * bytes, which is what "salt = empty" means for HMAC. */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(ctx, out, out_len, params) == 1)
        rc = RC_OK;
out:
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rc;
}

rc_t envelope_key_new(const char *passphrase, size_t len, const char *info,
                      struct envelope_key **out)
{
    *out = NULL;
    if (!passphrase || len == 0 || !info)
        return RC_INVALID;
    unsigned char d[CRYPTO_SHA256_LEN];
    struct envelope_key *k = xcalloc(1, sizeof *k);
    rc_t rc = hkdf_sha256(passphrase, len, info, k->gcm_key, sizeof k->gcm_key);
    if (rc)
        goto out;
    crypto_sha256(passphrase, len, d);
    memcpy(k->fernet_mac_key, d, 16);
    memcpy(k->fernet_aes_key, d + 16, 16);
    sodium_memzero(d, sizeof d);
    k->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    k->cbc = EVP_CIPHER_fetch(NULL, "AES-128-CBC", NULL);
    if (!k->gcm || !k->cbc)
        rc = RC_CRYPTO;
out:
    if (rc) {
        ERR_clear_error();
        envelope_key_free(k);
        return rc;
    }
    *out = k;
    return RC_OK;
}

void envelope_key_free(struct envelope_key *k)
{
    if (!k)
        return;
    EVP_CIPHER_free(k->gcm);
    EVP_CIPHER_free(k->cbc);
    xfree_secret(k, sizeof *k);
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

enum envelope_format envelope_format_of(const char *stored, size_t len)
{
    if (has_prefix(stored, len, "enc2:"))
        return ENVELOPE_ENC2;
    if (has_prefix(stored, len, "enc1:") || has_prefix(stored, len, "v1:"))
        return ENVELOPE_FERNET;
    return ENVELOPE_PLAIN;
}

rc_t envelope_seal(const struct envelope_key *k, const void *pt, size_t n, const char *aad,
                   size_t aad_len, char **out)
{
    *out = NULL;
    if (n > ENVELOPE_MAX_LEN || aad_len > ENVELOPE_MAX_LEN)
        return RC_LIMIT;
    rc_t rc = RC_CRYPTO;
    size_t raw_len = GCM_NONCE_LEN + n + GCM_TAG_LEN;
    unsigned char *raw = xmalloc(raw_len);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0, la = 0;
    crypto_random(raw, GCM_NONCE_LEN); /* 96-bit random nonce per value */
    if (!c || EVP_EncryptInit_ex2(c, k->gcm, k->gcm_key, raw, NULL) != 1)
        goto out;
    if (aad_len && EVP_EncryptUpdate(c, NULL, &la, (const unsigned char *)aad, (int)aad_len) != 1)
        goto out;
    if (EVP_EncryptUpdate(c, raw + GCM_NONCE_LEN, &l1, pt, (int)n) != 1 ||
        EVP_EncryptFinal_ex(c, raw + GCM_NONCE_LEN + l1, &l2) != 1 || (size_t)(l1 + l2) != n)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, raw + GCM_NONCE_LEN + n) != 1)
        goto out;
    size_t enc_len = crypto_b64_encoded_len(CRYPTO_B64_URL, raw_len);
    char *s = xmalloc(5 + enc_len + 1);
    memcpy(s, "enc2:", 5);
    crypto_b64_encode(CRYPTO_B64_URL, raw, raw_len, s + 5);
    *out = s;
    rc = RC_OK;
out:
    if (rc)
        ERR_clear_error();
    EVP_CIPHER_CTX_free(c);
    free(raw);
    return rc;
}

/* Decodes a base64 body into a new buffer; RC_INVALID on any garbage. */
static rc_t decode_body(enum crypto_b64 v, const char *s, size_t len, unsigned char **out,
                        size_t *out_len)
{
    unsigned char *raw = xmalloc(CRYPTO_B64_DECODED_MAX(len));
    rc_t rc = crypto_b64_decode(v, s, len, raw, CRYPTO_B64_DECODED_MAX(len), out_len);
    if (rc) {
        free(raw);
        *out = NULL;
        return RC_INVALID;
    }
    *out = raw;
    return RC_OK;
}

static rc_t open_enc2(const struct envelope_key *k, const char *body, size_t len, const char *aad,
                      size_t aad_len, char **out, size_t *out_len)
{
    unsigned char *raw = NULL, *pt = NULL;
    size_t raw_len = 0, n = 0;
    int l1 = 0, l2 = 0, la = 0;
    EVP_CIPHER_CTX *c = NULL;
    rc_t rc = decode_body(CRYPTO_B64_URL, body, len, &raw, &raw_len);
    if (rc)
        goto out;
    rc = RC_INVALID;
    if (raw_len < GCM_NONCE_LEN + GCM_TAG_LEN)
        goto out;
    rc = RC_CRYPTO;
    n = raw_len - GCM_NONCE_LEN - GCM_TAG_LEN;
    pt = xmalloc(n + 1);
    c = EVP_CIPHER_CTX_new();
    if (!c || EVP_DecryptInit_ex2(c, k->gcm, k->gcm_key, raw, NULL) != 1)
        goto out;
    if (aad_len && EVP_DecryptUpdate(c, NULL, &la, (const unsigned char *)aad, (int)aad_len) != 1)
        goto out;
    if (EVP_DecryptUpdate(c, pt, &l1, raw + GCM_NONCE_LEN, (int)n) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, raw + raw_len - GCM_TAG_LEN) != 1)
        goto out;
    /* Final verifies the tag; nothing decrypted is released before it. */
    if (EVP_DecryptFinal_ex(c, pt + l1, &l2) != 1 || (size_t)(l1 + l2) != n)
        goto out;
    pt[n] = '\0';
    rc = RC_OK;
out:
    EVP_CIPHER_CTX_free(c);
    free(raw);
    if (rc) {
        ERR_clear_error();
        xfree_secret(pt, n);
        return rc;
    }
    *out = (char *)pt;
    *out_len = n;
    return RC_OK;
}

static rc_t open_fernet(const struct envelope_key *k, const char *body, size_t len, char **out,
                        size_t *out_len)
{
    unsigned char *raw = NULL, *pt = NULL;
    size_t raw_len = 0, ct_len = 0;
    unsigned char mac[CRYPTO_SHA256_LEN];
    int l1 = 0, l2 = 0;
    EVP_CIPHER_CTX *c = NULL;
    rc_t rc = decode_body(CRYPTO_B64_URL_PAD, body, len, &raw, &raw_len);
    if (rc)
        goto out;
    rc = RC_INVALID;
    if (raw_len < FERNET_HDR_LEN + 16 + FERNET_MAC_LEN || raw[0] != FERNET_VERSION)
        goto out;
    ct_len = raw_len - FERNET_HDR_LEN - FERNET_MAC_LEN;
    if (ct_len % 16 != 0)
        goto out;
    rc = RC_CRYPTO;
    crypto_hmac_sha256(k->fernet_mac_key, sizeof k->fernet_mac_key, raw, raw_len - FERNET_MAC_LEN,
                       mac);
    if (!crypto_ct_eq(mac, raw + raw_len - FERNET_MAC_LEN, FERNET_MAC_LEN))
        goto out;
    pt = xmalloc(ct_len + 1);
    c = EVP_CIPHER_CTX_new();
    /* PKCS#7 padding is checked by DecryptFinal (EVP's default padding). */
    if (!c || EVP_DecryptInit_ex2(c, k->cbc, k->fernet_aes_key, raw + 9, NULL) != 1 ||
        EVP_DecryptUpdate(c, pt, &l1, raw + FERNET_HDR_LEN, (int)ct_len) != 1 ||
        EVP_DecryptFinal_ex(c, pt + l1, &l2) != 1)
        goto out;
    pt[l1 + l2] = '\0';
    rc = RC_OK;
out:
    EVP_CIPHER_CTX_free(c);
    free(raw);
    if (rc) {
        ERR_clear_error();
        xfree_secret(pt, ct_len);
        return rc;
    }
    *out = (char *)pt;
    *out_len = (size_t)(l1 + l2);
    return RC_OK;
}

rc_t envelope_open(const struct envelope_key *k, const char *stored, size_t len, const char *aad,
                   size_t aad_len, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!stored)
        return RC_INVALID;
    if (len > ENVELOPE_MAX_STORED_LEN || aad_len > ENVELOPE_MAX_LEN)
        return RC_LIMIT;
    switch (envelope_format_of(stored, len)) {
    case ENVELOPE_ENC2:
        return open_enc2(k, stored + 5, len - 5, aad, aad_len, out, out_len);
    case ENVELOPE_FERNET: {
        size_t skip = stored[0] == 'v' ? 3 : 5;
        return open_fernet(k, stored + skip, len - skip, out, out_len);
    }
    case ENVELOPE_PLAIN:
        break;
    }
    *out = xstrndup(stored, len);
    *out_len = len;
    return RC_OK;
}
