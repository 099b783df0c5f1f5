/* Derived-key HMAC (see keyed.h). The object stores the HMAC-SHA256 state
 * already keyed with K (inner and outer pads absorbed); each digest copies
 * that state onto the stack, so the shared object is never written after
 * creation and needs no lock. */
#include "crypto/keyed.h"

#include <string.h>

#include <sodium.h>

#include "util/mem.h"

struct crypto_keyed_hasher {
    crypto_auth_hmacsha256_state keyed; /* HMAC state after init with K */
};

struct crypto_keyed_hasher *crypto_keyed_hasher_new(const char *secret, size_t secret_len,
                                                    const char *purpose)
{
    unsigned char k[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(secret, secret_len, purpose, strlen(purpose), k);
    struct crypto_keyed_hasher *h = xmalloc(sizeof *h);
    crypto_auth_hmacsha256_init(&h->keyed, k, sizeof k);
    sodium_memzero(k, sizeof k);
    return h;
}

void crypto_keyed_hasher_free(struct crypto_keyed_hasher *h)
{
    xfree_secret(h, sizeof *h);
}

void crypto_keyed_hasher_hex(const struct crypto_keyed_hasher *h, const void *msg, size_t len,
                             char out[CRYPTO_SHA256_HEX_LEN + 1])
{
    crypto_auth_hmacsha256_state st = h->keyed;
    unsigned char d[CRYPTO_SHA256_LEN];
    crypto_auth_hmacsha256_update(&st, msg, len);
    crypto_auth_hmacsha256_final(&st, d);
    sodium_memzero(&st, sizeof st);
    crypto_hex(d, sizeof d, out);
}
