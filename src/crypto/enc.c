/* Encodings and primitives (see enc.h). Stateless: SHA-256 and HMAC come from
 * libsodium (no algorithm fetch, cannot fail), comparison from OpenSSL's
 * CRYPTO_memcmp, randomness from libsodium's randombytes. The base64 decoder
 * is strict so that one byte string has one accepted spelling per variant. */
#include "crypto/enc.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "util/mem.h"

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static bool padded(enum crypto_b64 v)
{
    return v != CRYPTO_B64_URL;
}

size_t crypto_b64_encoded_len(enum crypto_b64 v, size_t n)
{
    if (padded(v))
        return (n + 2) / 3 * 4;
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t crypto_b64_encode(enum crypto_b64 v, const void *in, size_t n, char *out)
{
    const char *abc = v == CRYPTO_B64_STD ? b64_std : b64_url;
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned w = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = abc[w >> 18 & 63];
        out[o++] = abc[w >> 12 & 63];
        out[o++] = abc[w >> 6 & 63];
        out[o++] = abc[w & 63];
    }
    if (n - i == 1) {
        unsigned w = (unsigned)p[i] << 16;
        out[o++] = abc[w >> 18 & 63];
        out[o++] = abc[w >> 12 & 63];
        if (padded(v)) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        unsigned w = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        out[o++] = abc[w >> 18 & 63];
        out[o++] = abc[w >> 12 & 63];
        out[o++] = abc[w >> 6 & 63];
        if (padded(v))
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

char *crypto_b64_encode_new(enum crypto_b64 v, const void *in, size_t n)
{
    char *out = xmalloc(crypto_b64_encoded_len(v, n) + 1);
    crypto_b64_encode(v, in, n, out);
    return out;
}

/* Value of one character in the variant's alphabet, or -1. Written with
 * ranges rather than a table so the two alphabets cannot drift apart. */
static int b64_val(enum crypto_b64 v, unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (v == CRYPTO_B64_STD)
        return c == '+' ? 62 : c == '/' ? 63 : -1;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Length of the data characters once valid padding is removed, or
 * (size_t)-1 when the padding is malformed. */
static size_t b64_strip_padding(const char *in, size_t n)
{
    size_t pad = 0;
    while (pad < n && pad < 3 && in[n - 1 - pad] == '=')
        pad++;
    if (pad == 0)
        return n;
    if (pad > 2 || n % 4 != 0)
        return (size_t)-1;
    return n - pad;
}

rc_t crypto_b64_decode(enum crypto_b64 v, const char *in, size_t n, void *out, size_t out_cap,
                       size_t *out_len)
{
    *out_len = 0;
    size_t m = b64_strip_padding(in, n);
    if (m == (size_t)-1 || m % 4 == 1)
        return RC_INVALID;
    if (m != n && (n - m) != (4 - m % 4) % 4)
        return RC_INVALID; /* "QQ=" style: padding not completing the quantum */
    size_t need = m / 4 * 3 + (m % 4 ? m % 4 - 1 : 0);
    if (need > out_cap)
        return RC_LIMIT;
    unsigned char *o = out;
    unsigned acc = 0;
    int bits = 0;
    size_t w = 0;
    for (size_t i = 0; i < m; i++) {
        int d = b64_val(v, (unsigned char)in[i]);
        if (d < 0)
            return RC_INVALID;
        acc = (acc << 6 | (unsigned)d) & 0xffffu;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[w++] = (unsigned char)(acc >> bits);
        }
    }
    /* The unused low bits of the last character must be zero. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return RC_INVALID;
    *out_len = w;
    return RC_OK;
}

void crypto_hex(const void *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void crypto_sha256(const void *data, size_t n, unsigned char out[CRYPTO_SHA256_LEN])
{
    crypto_hash_sha256(out, data, n);
}

void crypto_sha256_hex(const void *data, size_t n, char out[CRYPTO_SHA256_HEX_LEN + 1])
{
    unsigned char d[CRYPTO_SHA256_LEN];
    crypto_hash_sha256(d, data, n);
    crypto_hex(d, sizeof d, out);
}

void crypto_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                        unsigned char out[CRYPTO_SHA256_LEN])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, key_len);
    crypto_auth_hmacsha256_update(&st, msg, msg_len);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

void crypto_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t msg_len,
                            char out[CRYPTO_SHA256_HEX_LEN + 1])
{
    unsigned char d[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(key, key_len, msg, msg_len, d);
    crypto_hex(d, sizeof d, out);
}

bool crypto_ct_eq(const void *a, const void *b, size_t n)
{
    return n == 0 || CRYPTO_memcmp(a, b, n) == 0;
}

bool crypto_ct_streqn(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (!a || !b || a_len != b_len)
        return false;
    return crypto_ct_eq(a, b, a_len);
}

bool crypto_ct_streq(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    return crypto_ct_streqn(a, strlen(a), b, strlen(b));
}

void crypto_random(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

char *crypto_random_b64url(size_t nbytes)
{
    unsigned char stackbuf[64];
    unsigned char *raw = nbytes <= sizeof stackbuf ? stackbuf : xmalloc(nbytes);
    randombytes_buf(raw, nbytes);
    char *out = crypto_b64_encode_new(CRYPTO_B64_URL, raw, nbytes);
    sodium_memzero(raw, nbytes);
    if (raw != stackbuf)
        free(raw);
    return out;
}

void crypto_random_digits(char *out, size_t n)
{
    /* Independent uniform digits make a uniform integer in [0, 10^n). */
    for (size_t i = 0; i < n; i++)
        out[i] = (char)('0' + randombytes_uniform(10));
    out[n] = '\0';
}
