/* Unit tests for src/crypto: encodings and digests (enc), derived-key hashes
 * (keyed) and the at-rest envelopes (envelope). RSA keys and JWTs are in
 * test_jwt.c, passwords in test_password.c.
 *
 * Fixed vectors marked "Python" were produced once with CPython 3 (hashlib,
 * hmac, base64) and the `cryptography` package (AESGCM, HKDF, Fernet), i.e.
 * independently of this code, and pasted here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "crypto/enc.h"
#include "crypto/envelope.h"
#include "crypto/keyed.h"
#include "util/mem.h"

/* ---- fixtures (Python) -------------------------------------------------- */

#define PASSPHRASE "correct horse battery staple"
/* AESGCM(HKDF(SHA256, 32, salt=None, info=b"authd signing-key encryption v2")
 * .derive(PASSPHRASE)).encrypt(nonce, ENC2_PY_PLAINTEXT, b"kid-0123") */
static const char ENC2_PY[] = "enc2:CSXQEgmYG6q_-izb4qCZt8Ck5n0frxk7RyJdHnWxalVkuUOAXUUejKST1kvjZ"
                              "Q22fjo8uwg5ERY6oeXUEkiuavlZ5vi8RlzZFCcg0n7O0iUrOtorHd9_7z8Xli8t";
static const char ENC2_PY_PLAINTEXT[] =
    "-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n";
/* Same with info "authd webhook-secret encryption v2", plaintext "whsec_abc",
 * AAD = the endpoint id below. */
static const char ENC2_PY_WEBHOOK[] = "enc2:LnixWkri7FeI1J5FzL-TuWsDFWg3petQXfGjeMBDOfXYu7DBVw";
#define WEBHOOK_ID "7d9c0f3e-1111-4222-8333-944455556666"
/* Fernet(urlsafe_b64encode(sha256(PASSPHRASE))).encrypt(...) */
static const char FERNET_PY[] =
    "gAAAAABrCuZBrhoV6iekRwXuuM8ZKWvGy5jZ59TfNHVKfYcXiDBPp9Lmw-BxPV2vYgp"
    "WjmqGWLQ0Vs3HaJuFuz5NXyhDRAJeVFUt2sadGycrVNPi0sVpKcY=";
static const char FERNET_PY_PLAINTEXT[] = "fernet plaintext \xc3\xa9\xc3\xa8 ok";
static const char FERNET_PY_LONG[] =
    "gAAAAABrCuZBDD94azcovMY65EZnr7ZKTfOS0ItnTVMB_-ss53x4WuqlLtlqSbdZTr0lCElJytVEYvyIa0zXYGackRgtS"
    "isZ8jnAX-OwMoWeVbmh5cgMyW5y0kxAM5pJ9aerxNwCiUMVD5a3Jk6qQdUhF9j14p_Or09koKGh6lnrESAkQKq7rKuO_hI"
    "m7M-d0xQcqKXabbShtLQgOLu0dIgN1WjItjotmQ=="; /* b"x" * 100 */

/* hmac.new(hmac.new(S, purpose, sha256).digest(), msg, sha256).hexdigest() */
#define KEYED_SECRET "refresh-hash-secret"
#define REFRESH_TOKEN "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
static const char REFRESH_VERIFIER_PY[] =
    "203aa64f788c4c39f0d83335a36318593c1ecac40a01f189b92b24ec9b64b00e";
/* S = "k" * 100 + "-long-secret" (longer than the HMAC block). */
static const char REFRESH_VERIFIER_LONG_PY[] =
    "e4c09ed1dfd681d8bdabad0086ac4552aef3ae65f69be0b40f42d57fef93cd81";
static const char OTP_HASH_PY[] = /* code "042917" */
    "d3869c0e52e5bf7b796aa67053e7538c84f334e58d821b9909587f825caadb55";
static const char REFRESH_TOKEN_SHA256_PY[] =
    "ec97fe60f7cc467657df7c97fe947081e9d1e9ec06cffde4f272f9040265b058";

/* ---- base64 ------------------------------------------------------------ */

struct b64_vec {
    const char *raw;
    size_t raw_len;
    const char *std, *url_pad, *url;
};

static const struct b64_vec b64_vecs[] = {
    /* RFC 4648 §10 */
    {"", 0, "", "", ""},
    {"f", 1, "Zg==", "Zg==", "Zg"},
    {"fo", 2, "Zm8=", "Zm8=", "Zm8"},
    {"foo", 3, "Zm9v", "Zm9v", "Zm9v"},
    {"foob", 4, "Zm9vYg==", "Zm9vYg==", "Zm9vYg"},
    {"fooba", 5, "Zm9vYmE=", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", 6, "Zm9vYmFy", "Zm9vYmFy", "Zm9vYmFy"},
    /* the two alphabets differ in exactly these characters (Python) */
    {"\xfb\xff\xbf\x00\x10", 5, "+/+/ABA=", "-_-_ABA=", "-_-_ABA"},
};

static void test_b64_vectors(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof b64_vecs / sizeof *b64_vecs; i++) {
        const struct b64_vec *v = &b64_vecs[i];
        const char *want[3] = {v->std, v->url_pad, v->url};
        for (int var = 0; var < 3; var++) {
            char out[64];
            size_t n = crypto_b64_encode((enum crypto_b64)var, v->raw, v->raw_len, out);
            assert_string_equal(out, want[var]);
            assert_int_equal(n, strlen(want[var]));
            assert_int_equal(crypto_b64_encoded_len((enum crypto_b64)var, v->raw_len), n);
            unsigned char dec[64];
            size_t dl = 99;
            assert_int_equal(crypto_b64_decode((enum crypto_b64)var, want[var], strlen(want[var]),
                                               dec, sizeof dec, &dl),
                             RC_OK);
            assert_int_equal(dl, v->raw_len);
            if (dl)
                assert_memory_equal(dec, v->raw, dl);
        }
        /* padding is optional on input for every variant */
        unsigned char dec[64];
        size_t dl = 0;
        assert_int_equal(
            crypto_b64_decode(CRYPTO_B64_URL, v->url_pad, strlen(v->url_pad), dec, sizeof dec, &dl),
            RC_OK);
        assert_int_equal(dl, v->raw_len);
        assert_int_equal(
            crypto_b64_decode(CRYPTO_B64_URL_PAD, v->url, strlen(v->url), dec, sizeof dec, &dl),
            RC_OK);
        assert_int_equal(dl, v->raw_len);
    }
    char *s = crypto_b64_encode_new(CRYPTO_B64_URL, "foob", 4);
    assert_string_equal(s, "Zm9vYg");
    free(s);
}

struct b64_bad {
    enum crypto_b64 v;
    const char *in;
};

static const struct b64_bad b64_bad[] = {
    {CRYPTO_B64_URL, "Z"},          /* lone character */
    {CRYPTO_B64_URL, "Zm9vY"},      /* length 1 mod 4 */
    {CRYPTO_B64_URL, "Zh"},         /* non-zero unused bits ("Zg" is canonical) */
    {CRYPTO_B64_URL, "Zm9"},        /* non-zero unused bits ("Zm8") */
    {CRYPTO_B64_URL, "Zg="},        /* padding not completing the quantum */
    {CRYPTO_B64_URL, "Zg==="},      /* too much padding */
    {CRYPTO_B64_URL, "Zm8=="},      /* wrong padding count */
    {CRYPTO_B64_URL, "===="},       /* padding only */
    {CRYPTO_B64_URL, "="},          /* padding only */
    {CRYPTO_B64_URL, "Zg==Zg=="},   /* padding in the middle */
    {CRYPTO_B64_URL, "Zm9v Yg"},    /* whitespace */
    {CRYPTO_B64_URL, " Zm9v"},      /* leading whitespace */
    {CRYPTO_B64_URL, "Zm9v\n"},     /* trailing newline */
    {CRYPTO_B64_URL, "-_-_AB+/"},   /* standard characters in url */
    {CRYPTO_B64_STD, "-_-_ABA="},   /* url characters in standard */
    {CRYPTO_B64_URL, "Zm9v.Yg"},    /* dot */
    {CRYPTO_B64_URL, "Zm9v\x80Yg"}, /* high byte */
    {CRYPTO_B64_URL_PAD, "Zm9vYg=a"},
};

static void test_b64_garbage(void **st)
{
    (void)st;
    unsigned char out[64];
    for (size_t i = 0; i < sizeof b64_bad / sizeof *b64_bad; i++) {
        size_t n = 7;
        rc_t rc = crypto_b64_decode(b64_bad[i].v, b64_bad[i].in, strlen(b64_bad[i].in), out,
                                    sizeof out, &n);
        if (rc != RC_INVALID)
            fail_msg("accepted bad base64 #%zu \"%s\"", i, b64_bad[i].in);
        assert_int_equal(n, 0);
    }
    /* an embedded NUL is garbage too (explicit length) */
    size_t n;
    assert_int_equal(crypto_b64_decode(CRYPTO_B64_URL, "Zm\0v", 4, out, sizeof out, &n),
                     RC_INVALID);
    /* output capacity is enforced before writing */
    assert_int_equal(crypto_b64_decode(CRYPTO_B64_URL, "Zm9vYmFy", 8, out, 5, &n), RC_LIMIT);
    assert_int_equal(crypto_b64_decode(CRYPTO_B64_URL, "Zm9vYmFy", 8, out, 6, &n), RC_OK);
}

static void test_b64_roundtrip_random(void **st)
{
    (void)st;
    unsigned char raw[200], dec[200];
    char enc[300];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = (size_t)(iter % 200);
        crypto_random(raw, n);
        for (int var = 0; var < 3; var++) {
            size_t el = crypto_b64_encode((enum crypto_b64)var, raw, n, enc);
            size_t dl = 0;
            assert_true(el < sizeof enc);
            assert_int_equal(crypto_b64_decode((enum crypto_b64)var, enc, el, dec,
                                               CRYPTO_B64_DECODED_MAX(el), &dl),
                             RC_OK);
            assert_int_equal(dl, n);
            assert_true(n == 0 || memcmp(dec, raw, n) == 0);
        }
    }
    /* hostile: random strings never crash and never decode past the cap */
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(iter % 24);
        crypto_random(enc, n);
        size_t dl = 0;
        rc_t rc = crypto_b64_decode((enum crypto_b64)(iter % 3), enc, n, dec, 16, &dl);
        assert_true(rc == RC_OK || rc == RC_INVALID || rc == RC_LIMIT);
        assert_true(dl <= 16);
    }
}

/* ---- hex, SHA-256, HMAC -------------------------------------------------- */

static void test_hex_sha256(void **st)
{
    (void)st;
    char hex[65];
    crypto_hex("\x00\x01\xab\xff", 4, hex);
    assert_string_equal(hex, "0001abff");
    crypto_hex("", 0, hex);
    assert_string_equal(hex, "");
    /* FIPS 180-2 "abc" and the empty string */
    crypto_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* the unkeyed (legacy) refresh verifier, data-model §11.1 (Python) */
    crypto_sha256_hex(REFRESH_TOKEN, strlen(REFRESH_TOKEN), hex);
    assert_string_equal(hex, REFRESH_TOKEN_SHA256_PY);
}

struct hmac_vec {
    const char *key;
    size_t key_len;
    const char *msg;
    const char *hex;
};

static void test_hmac_rfc4231(void **st)
{
    (void)st;
    char k1[20], k6[131];
    memset(k1, 0x0b, sizeof k1);
    memset(k6, 0xaa, sizeof k6);
    const struct hmac_vec vecs[] = {
        /* RFC 4231 test cases 1, 2 and 6 (key longer than the block) */
        {k1, sizeof k1, "Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"Jefe", 4, "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {k6, sizeof k6, "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    };
    for (size_t i = 0; i < sizeof vecs / sizeof *vecs; i++) {
        char hex[65];
        unsigned char raw[32];
        crypto_hmac_sha256_hex(vecs[i].key, vecs[i].key_len, vecs[i].msg, strlen(vecs[i].msg), hex);
        assert_string_equal(hex, vecs[i].hex);
        crypto_hmac_sha256(vecs[i].key, vecs[i].key_len, vecs[i].msg, strlen(vecs[i].msg), raw);
        crypto_hex(raw, 32, hex);
        assert_string_equal(hex, vecs[i].hex);
    }
}

static void test_ct_eq(void **st)
{
    (void)st;
    assert_true(crypto_ct_eq("abc", "abc", 3));
    assert_false(crypto_ct_eq("abc", "abd", 3));
    assert_true(crypto_ct_eq("x", "y", 0));
    assert_true(crypto_ct_streq("token", "token"));
    assert_false(crypto_ct_streq("token", "token2"));
    assert_false(crypto_ct_streq("token2", "token"));
    assert_false(crypto_ct_streq("Token", "token"));
    assert_true(crypto_ct_streq("", ""));
    assert_false(crypto_ct_streq(NULL, ""));
    assert_false(crypto_ct_streq("", NULL));
    assert_false(crypto_ct_streq(NULL, NULL));
    assert_true(crypto_ct_streqn("ab\0c", 4, "ab\0c", 4));
    assert_false(crypto_ct_streqn("ab\0c", 4, "ab\0d", 4));
    assert_false(crypto_ct_streqn("ab", 2, "abc", 3));
}

static void test_random(void **st)
{
    (void)st;
    char *a = crypto_random_b64url(32), *b = crypto_random_b64url(32);
    assert_int_equal(strlen(a), 43);
    assert_string_not_equal(a, b);
    unsigned char dec[40];
    size_t n;
    assert_int_equal(crypto_b64_decode(CRYPTO_B64_URL, a, 43, dec, sizeof dec, &n), RC_OK);
    assert_int_equal(n, 32);
    free(a);
    free(b);
    a = crypto_random_b64url(16); /* client ids */
    assert_int_equal(strlen(a), 22);
    free(a);
    a = crypto_random_b64url(100); /* beyond the stack buffer */
    assert_int_equal(strlen(a), 134);
    free(a);

    int counts[10] = {0};
    char digits[1001];
    for (int i = 0; i < 10; i++) {
        crypto_random_digits(digits, 1000);
        assert_int_equal(strlen(digits), 1000);
        for (int j = 0; j < 1000; j++) {
            assert_true(digits[j] >= '0' && digits[j] <= '9');
            counts[digits[j] - '0']++;
        }
    }
    for (int d = 0; d < 10; d++) /* 10000 digits: each ~1000, far from 700 */
        assert_true(counts[d] > 700 && counts[d] < 1300);
    crypto_random_digits(digits, 0);
    assert_string_equal(digits, "");
}

/* ---- keyed hashes (data-model §11.1-11.2) -------------------------------- */

/* Independent reference through OpenSSL's HMAC (not libsodium). */
static void ref_keyed_hex(const char *secret, size_t slen, const char *purpose, const char *msg,
                          char out[65])
{
    unsigned char k[32], d[32];
    size_t kl = 0, dl = 0;
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, slen,
                              (const unsigned char *)purpose, strlen(purpose), k, sizeof k, &kl));
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k, kl, (const unsigned char *)msg,
                              strlen(msg), d, sizeof d, &dl));
    crypto_hex(d, dl, out);
}

static void test_keyed_vectors(void **st)
{
    (void)st;
    char hex[65];
    struct crypto_keyed_hasher *r =
        crypto_keyed_hasher_new(KEYED_SECRET, strlen(KEYED_SECRET), CRYPTO_PURPOSE_REFRESH_TOKEN);
    crypto_keyed_hasher_hex(r, REFRESH_TOKEN, strlen(REFRESH_TOKEN), hex);
    assert_string_equal(hex, REFRESH_VERIFIER_PY);
    /* repeated use of the shared state gives the same answer */
    crypto_keyed_hasher_hex(r, REFRESH_TOKEN, strlen(REFRESH_TOKEN), hex);
    assert_string_equal(hex, REFRESH_VERIFIER_PY);
    crypto_keyed_hasher_free(r);

    struct crypto_keyed_hasher *o =
        crypto_keyed_hasher_new(KEYED_SECRET, strlen(KEYED_SECRET), CRYPTO_PURPOSE_OTP);
    crypto_keyed_hasher_hex(o, "042917", 6, hex);
    assert_string_equal(hex, OTP_HASH_PY);
    crypto_keyed_hasher_hex(o, "042918", 6, hex);
    assert_string_not_equal(hex, OTP_HASH_PY);
    crypto_keyed_hasher_free(o);

    char longs[113];
    memset(longs, 'k', 100);
    memcpy(longs + 100, "-long-secret", 13);
    r = crypto_keyed_hasher_new(longs, strlen(longs), CRYPTO_PURPOSE_REFRESH_TOKEN);
    crypto_keyed_hasher_hex(r, REFRESH_TOKEN, strlen(REFRESH_TOKEN), hex);
    assert_string_equal(hex, REFRESH_VERIFIER_LONG_PY);
    crypto_keyed_hasher_free(r);
    crypto_keyed_hasher_free(NULL);
}

static void test_keyed_vs_openssl(void **st)
{
    (void)st;
    const char *purposes[] = {CRYPTO_PURPOSE_REFRESH_TOKEN, CRYPTO_PURPOSE_OTP};
    for (int i = 0; i < 200; i++) {
        char secret[200], msg[1200];
        size_t slen = (size_t)(i * 7 % 199);
        for (size_t j = 0; j < slen; j++)
            secret[j] = (char)(1 + (i * 31 + (int)j) % 255);
        /* 0..118 bytes, then multi-block messages up to 1,190 (refresh tokens) */
        size_t mlen = i < 119 ? (size_t)i : (size_t)(i * 97 % 1191);
        for (size_t j = 0; j < mlen; j++)
            msg[j] = (char)('!' + (i + (int)j) % 90);
        msg[mlen] = '\0';
        const char *purpose = purposes[i % 2];
        char want[65], got[65];
        ref_keyed_hex(secret, slen, purpose, msg, want);
        struct crypto_keyed_hasher *h = crypto_keyed_hasher_new(secret, slen, purpose);
        crypto_keyed_hasher_hex(h, msg, mlen, got);
        crypto_keyed_hasher_free(h);
        assert_string_equal(got, want);
    }
}

/* ---- envelopes ----------------------------------------------------------- */

static struct envelope_key *key_for(const char *pass, const char *info)
{
    struct envelope_key *k = NULL;
    assert_int_equal(envelope_key_new(pass, strlen(pass), info, &k), RC_OK);
    return k;
}

static rc_t open_str(const struct envelope_key *k, const char *stored, const char *aad, char **out)
{
    size_t n = 0;
    rc_t rc = envelope_open(k, stored, strlen(stored), aad, aad ? strlen(aad) : 0, out, &n);
    if (!rc)
        assert_int_equal(n, strlen(*out));
    else
        assert_null(*out);
    return rc;
}

static void test_envelope_roundtrip(void **st)
{
    (void)st;
    struct envelope_key *k = key_for(PASSPHRASE, ENVELOPE_INFO_SIGNING_KEY);
    const char *pts[] = {"", "x", ENC2_PY_PLAINTEXT, "whsec_\xe2\x9c\x93"};
    for (size_t i = 0; i < sizeof pts / sizeof *pts; i++) {
        char *env = NULL, *back = NULL, *env2 = NULL;
        assert_int_equal(envelope_seal(k, pts[i], strlen(pts[i]), "kid-1", 5, &env), RC_OK);
        assert_true(strncmp(env, "enc2:", 5) == 0);
        assert_int_equal(strlen(env),
                         5 + crypto_b64_encoded_len(CRYPTO_B64_URL, 12 + strlen(pts[i]) + 16));
        assert_int_equal(envelope_format_of(env, strlen(env)), ENVELOPE_ENC2);
        assert_int_equal(open_str(k, env, "kid-1", &back), RC_OK);
        assert_string_equal(back, pts[i]);
        /* a fresh nonce each time */
        assert_int_equal(envelope_seal(k, pts[i], strlen(pts[i]), "kid-1", 5, &env2), RC_OK);
        assert_string_not_equal(env, env2);
        free(env);
        free(env2);
        xfree_secret_str(back);
    }
    /* binary plaintext with NUL bytes, empty AAD */
    char *env = NULL, *back = NULL;
    size_t n = 0;
    assert_int_equal(envelope_seal(k, "a\0b", 3, NULL, 0, &env), RC_OK);
    assert_int_equal(envelope_open(k, env, strlen(env), "", 0, &back, &n), RC_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(back, "a\0b", 3);
    free(env);
    xfree_secret(back, n);
    /* the largest plaintext */
    char *big = xmalloc(ENVELOPE_MAX_LEN);
    memset(big, 'p', ENVELOPE_MAX_LEN);
    assert_int_equal(envelope_seal(k, big, ENVELOPE_MAX_LEN, "a", 1, &env), RC_OK);
    assert_int_equal(envelope_open(k, env, strlen(env), "a", 1, &back, &n), RC_OK);
    assert_int_equal(n, ENVELOPE_MAX_LEN);
    assert_memory_equal(back, big, n);
    free(env);
    xfree_secret(back, n);
    assert_int_equal(envelope_seal(k, big, ENVELOPE_MAX_LEN + 1, "a", 1, &env), RC_LIMIT);
    assert_null(env);
    free(big);
    envelope_key_free(k);
}

static void test_envelope_failures(void **st)
{
    (void)st;
    struct envelope_key *k = key_for(PASSPHRASE, ENVELOPE_INFO_SIGNING_KEY);
    struct envelope_key *other_pass =
        key_for("correct horse battery stapl3", ENVELOPE_INFO_SIGNING_KEY);
    struct envelope_key *other_info = key_for(PASSPHRASE, ENVELOPE_INFO_WEBHOOK_SECRET);
    char *env = NULL, *out = NULL;
    assert_int_equal(envelope_seal(k, "secret pem", 10, "kid-1", 5, &env), RC_OK);

    assert_int_equal(open_str(k, env, "kid-2", &out), RC_CRYPTO);  /* wrong AAD */
    assert_int_equal(open_str(k, env, "kid-1 ", &out), RC_CRYPTO); /* AAD is exact */
    assert_int_equal(open_str(k, env, NULL, &out), RC_CRYPTO);     /* missing AAD */
    assert_int_equal(open_str(other_pass, env, "kid-1", &out), RC_CRYPTO);
    assert_int_equal(open_str(other_info, env, "kid-1", &out), RC_CRYPTO);

    /* every single-bit flip of nonce, ciphertext or tag is detected */
    unsigned char raw[64];
    size_t raw_len = 0;
    assert_int_equal(
        crypto_b64_decode(CRYPTO_B64_URL, env + 5, strlen(env) - 5, raw, sizeof raw, &raw_len),
        RC_OK);
    assert_int_equal(raw_len, 12 + 10 + 16);
    for (size_t i = 0; i < raw_len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            raw[i] ^= (unsigned char)(1 << bit);
            char t[80];
            memcpy(t, "enc2:", 5);
            crypto_b64_encode(CRYPTO_B64_URL, raw, raw_len, t + 5);
            assert_int_equal(open_str(k, t, "kid-1", &out), RC_CRYPTO);
            raw[i] ^= (unsigned char)(1 << bit);
        }
    }
    /* truncated and extended bodies */
    for (size_t cut = 0; cut < raw_len; cut++) {
        char t[80];
        memcpy(t, "enc2:", 5);
        crypto_b64_encode(CRYPTO_B64_URL, raw, cut, t + 5);
        rc_t rc = open_str(k, t, "kid-1", &out);
        assert_true(rc == RC_INVALID || rc == RC_CRYPTO);
    }
    const char *malformed[] = {"enc2:",      "enc2:!!!!",
                               "enc2:AAAA",  "enc2:A",
                               "enc2: AAAA", "enc2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="};
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
        rc_t rc = open_str(k, malformed[i], "kid-1", &out);
        assert_true(rc == RC_INVALID || rc == RC_CRYPTO);
    }
    /* padded enc2 bodies are still read (readers accept optional padding) */
    char padded[128];
    size_t el = strlen(env);
    memcpy(padded, env, el + 1);
    while ((el - 5) % 4)
        padded[el++] = '=';
    padded[el] = '\0';
    assert_int_equal(open_str(k, padded, "kid-1", &out), RC_OK);
    assert_string_equal(out, "secret pem");
    xfree_secret_str(out);

    assert_int_equal(open_str(k, env, "kid-1", &out), RC_OK);
    xfree_secret_str(out);
    free(env);

    struct envelope_key *bad = NULL;
    assert_int_equal(envelope_key_new("", 0, ENVELOPE_INFO_SIGNING_KEY, &bad), RC_INVALID);
    assert_null(bad);
    assert_int_equal(envelope_key_new(NULL, 3, ENVELOPE_INFO_SIGNING_KEY, &bad), RC_INVALID);
    assert_int_equal(envelope_key_new("x", 1, NULL, &bad), RC_INVALID);
    envelope_key_free(k);
    envelope_key_free(other_pass);
    envelope_key_free(other_info);
    envelope_key_free(NULL);
}

static void test_envelope_python_enc2(void **st)
{
    (void)st;
    struct envelope_key *k = key_for(PASSPHRASE, ENVELOPE_INFO_SIGNING_KEY);
    struct envelope_key *w = key_for(PASSPHRASE, ENVELOPE_INFO_WEBHOOK_SECRET);
    char *out = NULL;
    assert_int_equal(open_str(k, ENC2_PY, "kid-0123", &out), RC_OK);
    assert_string_equal(out, ENC2_PY_PLAINTEXT);
    xfree_secret_str(out);
    assert_int_equal(open_str(k, ENC2_PY, "kid-0124", &out), RC_CRYPTO);
    assert_int_equal(open_str(w, ENC2_PY, "kid-0123", &out), RC_CRYPTO);
    assert_int_equal(open_str(w, ENC2_PY_WEBHOOK, WEBHOOK_ID, &out), RC_OK);
    assert_string_equal(out, "whsec_abc");
    xfree_secret_str(out);
    assert_int_equal(open_str(k, ENC2_PY_WEBHOOK, WEBHOOK_ID, &out), RC_CRYPTO);
    envelope_key_free(k);
    envelope_key_free(w);
}

static void test_envelope_fernet(void **st)
{
    (void)st;
    struct envelope_key *k = key_for(PASSPHRASE, ENVELOPE_INFO_SIGNING_KEY);
    struct envelope_key *w = key_for(PASSPHRASE, ENVELOPE_INFO_WEBHOOK_SECRET);
    struct envelope_key *wrong = key_for("not the passphrase", ENVELOPE_INFO_SIGNING_KEY);
    const char *prefixes[] = {"enc1:", "v1:"};
    for (int p = 0; p < 2; p++) {
        char stored[512];
        char *out = NULL;
        snprintf(stored, sizeof stored, "%s%s", prefixes[p], FERNET_PY);
        assert_int_equal(envelope_format_of(stored, strlen(stored)), ENVELOPE_FERNET);
        /* AAD plays no part in Fernet; the info string neither */
        assert_int_equal(open_str(k, stored, "ignored", &out), RC_OK);
        assert_string_equal(out, FERNET_PY_PLAINTEXT);
        xfree_secret_str(out);
        assert_int_equal(open_str(w, stored, NULL, &out), RC_OK);
        assert_string_equal(out, FERNET_PY_PLAINTEXT);
        xfree_secret_str(out);
        assert_int_equal(open_str(wrong, stored, NULL, &out), RC_CRYPTO);

        /* unpadded form is accepted too */
        size_t l = strlen(stored);
        while (stored[l - 1] == '=')
            stored[--l] = '\0';
        assert_int_equal(open_str(k, stored, NULL, &out), RC_OK);
        xfree_secret_str(out);
    }
    char stored[512], *out = NULL;
    snprintf(stored, sizeof stored, "enc1:%s", FERNET_PY_LONG);
    assert_int_equal(open_str(k, stored, NULL, &out), RC_OK);
    assert_int_equal(strlen(out), 100);
    assert_true(strspn(out, "x") == 100);
    xfree_secret_str(out);

    /* tampering anywhere (version, time, IV, ciphertext, MAC) fails */
    unsigned char raw[256];
    size_t raw_len = 0;
    assert_int_equal(crypto_b64_decode(CRYPTO_B64_URL_PAD, FERNET_PY, strlen(FERNET_PY), raw,
                                       sizeof raw, &raw_len),
                     RC_OK);
    for (size_t i = 0; i < raw_len; i++) {
        raw[i] ^= 0x01;
        memcpy(stored, "v1:", 3);
        crypto_b64_encode(CRYPTO_B64_URL_PAD, raw, raw_len, stored + 3);
        rc_t rc = open_str(k, stored, NULL, &out);
        assert_true(rc == RC_CRYPTO || rc == RC_INVALID);
        raw[i] ^= 0x01;
    }
    /* truncations and standard-alphabet garbage */
    for (size_t cut = 0; cut < raw_len; cut += 5) {
        memcpy(stored, "enc1:", 5);
        crypto_b64_encode(CRYPTO_B64_URL_PAD, raw, cut, stored + 5);
        rc_t rc = open_str(k, stored, NULL, &out);
        assert_true(rc == RC_CRYPTO || rc == RC_INVALID);
    }
    assert_int_equal(open_str(k, "enc1:gAAAAA+/", NULL, &out), RC_INVALID);
    assert_int_equal(open_str(k, "v1:", NULL, &out), RC_INVALID);
    envelope_key_free(k);
    envelope_key_free(w);
    envelope_key_free(wrong);
}

static void test_envelope_plaintext(void **st)
{
    (void)st;
    struct envelope_key *k = key_for(PASSPHRASE, ENVELOPE_INFO_SIGNING_KEY);
    const char *plains[] = {ENC2_PY_PLAINTEXT, "",
                            "whsec_plain",     "ENC2:uppercase is not a prefix",
                            "v2:unknown",      " enc2:leading space"};
    for (size_t i = 0; i < sizeof plains / sizeof *plains; i++) {
        char *out = NULL;
        assert_int_equal(envelope_format_of(plains[i], strlen(plains[i])), ENVELOPE_PLAIN);
        assert_int_equal(open_str(k, plains[i], "kid", &out), RC_OK);
        assert_string_equal(out, plains[i]);
        xfree_secret_str(out);
    }
    char *huge = xmalloc(ENVELOPE_MAX_STORED_LEN + 2);
    memset(huge, 'a', ENVELOPE_MAX_STORED_LEN + 1);
    huge[ENVELOPE_MAX_STORED_LEN + 1] = '\0';
    char *out = NULL;
    assert_int_equal(open_str(k, huge, "kid", &out), RC_LIMIT);
    free(huge);
    envelope_key_free(k);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_vectors),
        cmocka_unit_test(test_b64_garbage),
        cmocka_unit_test(test_b64_roundtrip_random),
        cmocka_unit_test(test_hex_sha256),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_ct_eq),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_keyed_vectors),
        cmocka_unit_test(test_keyed_vs_openssl),
        cmocka_unit_test(test_envelope_roundtrip),
        cmocka_unit_test(test_envelope_failures),
        cmocka_unit_test(test_envelope_python_enc2),
        cmocka_unit_test(test_envelope_fernet),
        cmocka_unit_test(test_envelope_plaintext),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
