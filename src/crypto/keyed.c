/* Derived-key HMAC (see keyed.h). The object keeps two SHA-256 states that
 * have absorbed the inner and outer key pads, so a digest copies them and
 * hashes only the message and the inner digest; the shared states are never
 * written after creation and need no lock. SHA-256 runs through OpenSSL,
 * which uses the CPU's SHA instructions where there are some: a ~700-byte
 * refresh token took about 5 µs through libsodium's portable code, twice per
 * refresh. */
#include "crypto/keyed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/mem.h"

#define HMAC_BLOCK 64

struct crypto_keyed_hasher {
    EVP_MD *sha256;
    EVP_MD_CTX *inner; /* after (K ^ ipad) */
    EVP_MD_CTX *outer; /* after (K ^ opad) */
};

/* OpenSSL fails these only without memory or without its default provider;
 * the callers have no error path (the API cannot fail). */
static void need(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "authd: keyed hash: %s failed\n", what);
        abort();
    }
}

static EVP_MD_CTX *padded_state(EVP_MD *md, const unsigned char k[CRYPTO_SHA256_LEN],
                                unsigned char fill)
{
    unsigned char pad[HMAC_BLOCK];
    memset(pad, fill, sizeof pad);
    for (size_t i = 0; i < CRYPTO_SHA256_LEN; i++)
        pad[i] ^= k[i];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    need(c && EVP_DigestInit_ex(c, md, NULL) == 1 && EVP_DigestUpdate(c, pad, sizeof pad) == 1,
         "key state");
    OPENSSL_cleanse(pad, sizeof pad);
    return c;
}

struct crypto_keyed_hasher *crypto_keyed_hasher_new(const char *secret, size_t secret_len,
                                                    const char *purpose)
{
    unsigned char k[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(secret, secret_len, purpose, strlen(purpose), k);
    struct crypto_keyed_hasher *h = xmalloc(sizeof *h);
    h->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    need(h->sha256 != NULL, "SHA256 fetch");
    h->inner = padded_state(h->sha256, k, 0x36);
    h->outer = padded_state(h->sha256, k, 0x5c);
    OPENSSL_cleanse(k, sizeof k);
    return h;
}

void crypto_keyed_hasher_free(struct crypto_keyed_hasher *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->inner); /* the provider wipes the digest state */
    EVP_MD_CTX_free(h->outer);
    EVP_MD_free(h->sha256);
    free(h);
}

void crypto_keyed_hasher_hex(const struct crypto_keyed_hasher *h, const void *msg, size_t len,
                             char out[CRYPTO_SHA256_HEX_LEN + 1])
{
    unsigned char d[CRYPTO_SHA256_LEN];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    need(c && EVP_MD_CTX_copy_ex(c, h->inner) == 1 && EVP_DigestUpdate(c, msg, len) == 1 &&
             EVP_DigestFinal_ex(c, d, NULL) == 1 && EVP_MD_CTX_copy_ex(c, h->outer) == 1 &&
             EVP_DigestUpdate(c, d, sizeof d) == 1 && EVP_DigestFinal_ex(c, d, NULL) == 1,
         "digest");
    EVP_MD_CTX_free(c);
    crypto_hex(d, sizeof d, out);
    OPENSSL_cleanse(d, sizeof d);
}
