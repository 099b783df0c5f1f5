/* Unit tests for src/crypto/password: Argon2id hashing and verification,
 * rehash decisions, bcrypt verification of imported hashes, the dummy
 * verification.
 *
 * Vectors: Argon2 PHC strings made once with argon2-cffi 25.1 (the reference
 * libargon2, so interchangeability is tested, not assumed); bcrypt hashes
 * made once with pyca/bcrypt 5.0, plus the classic $2a$ vectors of Openwall's
 * crypt_blowfish test suite (also used by OpenBSD and libxcrypt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "crypto/password.h"
#include "util/mem.h"

#define PW "Correct-Horse-9!"

/* argon2.low_level.hash_secret(PW, b"fixedsalt1234567", hash_len=32, ...) */
static const char ARGON2ID_DEFAULTS_PY[] = /* m=19456, t=2, p=1 */
    "$argon2id$v=19$m=19456,t=2,p=1$Zml4ZWRzYWx0MTIzNDU2Nw$f1nLsyn/"
    "Y9xUiaMPeAlTCt+xGLLc1QhsiU+0VUzXL9Y";
static const char ARGON2ID_P4_PY[] = /* m=8192, t=1, p=4 */
    "$argon2id$v=19$m=8192,t=1,p=4$Zml4ZWRzYWx0MTIzNDU2Nw$p/"
    "lfipOihNI4791Sd1gcmNmcscyWuYUn7y3EfDSAfhE";
static const char ARGON2I_PY[] = /* Argon2i, m=8192, t=2, p=1 */
    "$argon2i$v=19$m=8192,t=2,p=1$Zml4ZWRzYWx0MTIzNDU2Nw$4i9QR/"
    "9E2ZeFCLfRkA1QSNtw7qPEZPh7EC8XYXjZSYc";

static struct password_ctx *fast; /* m=8192, t=1 */

static int setup(void **st)
{
    (void)st;
    struct password_params p = {8192, 1};
    return password_ctx_new(&p, &fast) == RC_OK ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    password_ctx_free(fast);
    return 0;
}

static bool verify(const char *stored, const char *pw, size_t len)
{
    bool match = true;
    rc_t rc = password_verify(stored, pw, len, &match);
    assert_int_equal(rc, RC_OK);
    return match;
}

static void test_params(void **st)
{
    (void)st;
    const struct password_params bad[] = {
        {8191, 2}, {1048577, 2}, {19456, 0}, {19456, 11}, {0, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct password_ctx *c = (struct password_ctx *)1;
        assert_int_equal(password_ctx_new(&bad[i], &c), RC_INVALID);
        assert_null(c);
    }
    password_ctx_free(NULL);
}

static void test_hash_verify(void **st)
{
    (void)st;
    char *h = NULL, *h2 = NULL;
    assert_int_equal(password_hash(fast, PW, strlen(PW), &h), RC_OK);
    assert_true(strncmp(h, "$argon2id$v=19$m=8192,t=1,p=1$", 30) == 0);
    assert_true(verify(h, PW, strlen(PW)));
    assert_false(verify(h, "Correct-Horse-9?", strlen(PW)));
    assert_false(verify(h, PW, strlen(PW) - 1));
    assert_false(verify(h, "", 0));
    /* fresh salt every time */
    assert_int_equal(password_hash(fast, PW, strlen(PW), &h2), RC_OK);
    assert_string_not_equal(h, h2);
    free(h);
    free(h2);
    /* byte strings: embedded NUL and UTF-8 are part of the password */
    assert_int_equal(password_hash(fast, "ab\0cd", 5, &h), RC_OK);
    assert_true(verify(h, "ab\0cd", 5));
    assert_false(verify(h, "ab", 2));
    free(h);
    const char *utf8 = "p\xc3\xa4ssw\xc3\xb6rd-\xe2\x82\xac";
    assert_int_equal(password_hash(fast, utf8, strlen(utf8), &h), RC_OK);
    assert_true(verify(h, utf8, strlen(utf8)));
    assert_false(verify(h, "passwrd-E", 9));
    free(h);
    /* empty and long passwords hash too (policy is the caller's) */
    assert_int_equal(password_hash(fast, "", 0, &h), RC_OK);
    assert_true(verify(h, "", 0));
    free(h);
    char longpw[1024];
    memset(longpw, 'L', sizeof longpw);
    assert_int_equal(password_hash(fast, longpw, sizeof longpw, &h), RC_OK);
    assert_true(verify(h, longpw, sizeof longpw));
    assert_false(verify(h, longpw, sizeof longpw - 1)); /* no truncation for Argon2 */
    free(h);
}

static void test_argon2_interop(void **st)
{
    (void)st;
    /* libargon2 output verifies here, whatever its parameters */
    assert_true(verify(ARGON2ID_DEFAULTS_PY, PW, strlen(PW)));
    assert_false(verify(ARGON2ID_DEFAULTS_PY, "correct-Horse-9!", strlen(PW)));
    assert_true(verify(ARGON2ID_P4_PY, PW, strlen(PW)));
    assert_false(verify(ARGON2ID_P4_PY, PW "x", strlen(PW) + 1));
    assert_true(verify(ARGON2I_PY, PW, strlen(PW)));

    struct password_params defaults = {19456, 2};
    struct password_ctx *c = NULL;
    assert_int_equal(password_ctx_new(&defaults, &c), RC_OK);
    assert_false(password_needs_rehash(c, ARGON2ID_DEFAULTS_PY));
    assert_true(password_needs_rehash(fast, ARGON2ID_DEFAULTS_PY));
    assert_true(password_needs_rehash(c, ARGON2ID_P4_PY)); /* other parameters */
    assert_true(password_needs_rehash(fast, ARGON2I_PY));  /* other algorithm */
    /* and our default output has libargon2's exact shape */
    char *h = NULL;
    assert_int_equal(password_hash(c, PW, strlen(PW), &h), RC_OK);
    assert_true(strncmp(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    assert_int_equal(strlen(h), strlen(ARGON2ID_DEFAULTS_PY)); /* 16-byte salt, 32-byte hash */
    free(h);
    password_ctx_free(c);
}

static void test_needs_rehash(void **st)
{
    (void)st;
    char *h = NULL;
    assert_int_equal(password_hash(fast, PW, strlen(PW), &h), RC_OK);
    assert_false(password_needs_rehash(fast, h));
    struct password_params more_t = {8192, 2}, more_m = {16384, 1};
    struct password_ctx *ct = NULL, *cm = NULL;
    assert_int_equal(password_ctx_new(&more_t, &ct), RC_OK);
    assert_int_equal(password_ctx_new(&more_m, &cm), RC_OK);
    assert_true(password_needs_rehash(ct, h));
    assert_true(password_needs_rehash(cm, h));
    char *h2 = NULL;
    assert_int_equal(password_hash(cm, PW, strlen(PW), &h2), RC_OK);
    assert_false(password_needs_rehash(cm, h2));
    assert_true(password_needs_rehash(fast, h2)); /* weaker is a change too */
    free(h);
    free(h2);
    const char *always[] = {"$2b$04$BdcPGZ5qoiPl0RCyHI/kyugfqVBsoFY96iSMwgxutby45LyICjho2", "",
                            "plain", "$argon2id$", "$argon2d$v=19$m=8192,t=1,p=1$AAAA$AAAA"};
    for (size_t i = 0; i < sizeof always / sizeof *always; i++)
        assert_true(password_needs_rehash(fast, always[i]));
    assert_true(password_needs_rehash(fast, NULL));
    password_ctx_free(ct);
    password_ctx_free(cm);
}

struct bcrypt_vec {
    const char *hash;
    const char *pw;
    bool match;
};

static void test_bcrypt_vectors(void **st)
{
    (void)st;
    const char *pw72 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                       "chars after 72 are ignored";
    char a72[80], a71[80];
    memset(a72, 'A', 72);
    memcpy(a72 + 72, "tail", 5); /* 76 bytes: the tail must be ignored */
    memset(a71, 'A', 71);
    a71[71] = '\0';
    const struct bcrypt_vec vecs[] = {
        /* crypt_blowfish / OpenBSD */
        {"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U", true},
        {"$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK", "U*U*", true},
        {"$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a", "U*U*U", true},
        {"$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy", "", true},
        {"$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui", pw72, true},
        {"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U*", false},
        /* $2b$ and $2y$ give the same result for these inputs */
        {"$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U", true},
        {"$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U", true},
        /* pyca/bcrypt */
        {"$2b$12$fIkcC8AEylS6hBYAwBBoceDkwa.laQ1kVDTD6rLzr.xIWPJ8fqYLe", PW, true},
        {"$2b$12$fIkcC8AEylS6hBYAwBBoceDkwa.laQ1kVDTD6rLzr.xIWPJ8fqYLe", "Correct-Horse-9", false},
        {"$2b$04$BdcPGZ5qoiPl0RCyHI/kyugfqVBsoFY96iSMwgxutby45LyICjho2", PW, true},
        {"$2b$04$BdcPGZ5qoiPl0RCyHI/kyugfqVBsoFY96iSMwgxutby45LyICjho2", "correct-horse-9!", false},
        {"$2a$04$2FzvI8UbxoPDztVSLmoZteSPh8YTKKGqUaIsYq6JiXPbUy1Vx1DoK", PW, true},
        /* hashpw(b"A" * 72): a longer password with the same 72 bytes matches */
        {"$2b$04$xQ51IBSAtg/03/uHsuOZJuoN2KMmxSD4C58f73hOdw9t30ul1qLCG", a72, true},
        {"$2b$04$xQ51IBSAtg/03/uHsuOZJuoN2KMmxSD4C58f73hOdw9t30ul1qLCG", a71, false},
        /* UTF-8 password, cost 5 */
        {"$2b$05$Zerh4VHXGzb.95D1Bi1dP.eK0XAUfBZUBEfQUw0QtL443EJf2TeWe",
         "p\xc3\xa4ssw\xc3\xb6rd-\xc3\xbc\xe2\x82\xac", true},
        {"$2b$05$Zerh4VHXGzb.95D1Bi1dP.eK0XAUfBZUBEfQUw0QtL443EJf2TeWe", "passwrd-", false},
        /* hashpw(b"fixed-salt-pw", b"$2b$05$abcdefghijklmnopqrstuu") */
        {"$2b$05$abcdefghijklmnopqrstuuBCEWRtiqOJxeZPdohKond360tfCyWum", "fixed-salt-pw", true},
    };
    for (size_t i = 0; i < sizeof vecs / sizeof *vecs; i++) {
        if (verify(vecs[i].hash, vecs[i].pw, strlen(vecs[i].pw)) != vecs[i].match)
            fail_msg("bcrypt vector %zu: want %s", i, vecs[i].match ? "match" : "mismatch");
        assert_true(password_needs_rehash(fast, vecs[i].hash));
    }
    /* a NUL byte would be a silent truncation point for crypt_r: refused */
    assert_false(
        verify("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U\0x", 5));
}

static void test_bcrypt_crypt_r_fixed_salt(void **st)
{
    (void)st;
    /* crypt_r itself, with a fixed salt, reproduces pyca/bcrypt's output */
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    const char *h = crypt_r("fixed-salt-pw", "$2b$05$abcdefghijklmnopqrstuu", cd);
    assert_non_null(h);
    assert_string_equal(h, "$2b$05$abcdefghijklmnopqrstuuBCEWRtiqOJxeZPdohKond360tfCyWum");
    char x72[73];
    memset(x72, 'x', 72);
    x72[72] = '\0';
    h = crypt_r(x72, "$2b$04$abcdefghijklmnopqrstuu", cd);
    assert_string_equal(h, "$2b$04$abcdefghijklmnopqrstuubzadhGtS2zEF.gu0yd0opP6cVzb.e0i");
    char stored[61];
    snprintf(stored, sizeof stored, "%s", h);
    free(cd);
    char x100[100];
    memset(x100, 'x', sizeof x100);
    assert_true(verify(stored, x100, sizeof x100)); /* first 72 bytes only */
    assert_false(verify(stored, x100, 71));
}

static void test_bad_stored_hashes(void **st)
{
    (void)st;
    const char *bad[] = {
        "",
        "plaintext-password",
        "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW ", /* 61 chars */
        "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe",   /* 59 chars */
        "$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",  /* buggy variant */
        "$2$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeWx",
        "$2b$03$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", /* cost < 4 */
        "$2b$17$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", /* above our max */
        "$2b$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
        "$2b$5$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeWx",
        "$2b$0a$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
        "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvy+eW", /* '+' not bcrypt b64 */
        "$5$rounds=1000$salt$hash",
        "$argon2d$v=19$m=8192,t=1,p=1$Zml4ZWRzYWx0MTIzNDU2Nw$p/"
        "lfipOihNI4791Sd1gcmNmcscyWuYUn7y3EfDSAfhE",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        bool match = true;
        if (password_verify(bad[i], "U*U", 3, &match) != RC_INVALID)
            fail_msg("accepted stored hash #%zu", i);
        assert_false(match);
    }
    bool match = true;
    assert_int_equal(password_verify(NULL, "x", 1, &match), RC_INVALID);
    assert_false(match);
    /* a damaged Argon2 string is a mismatch, never a crash */
    const char *damaged[] = {
        "$argon2id$",
        "$argon2id$v=19$m=8192,t=1,p=1$$",
        "$argon2id$v=19$m=8192,t=1,p=1$Zml4ZWRzYWx0MTIzNDU2Nw$",
        "$argon2id$v=19$m=8192,t=1,p=4$Zml4ZWRzYWx0MTIzNDU2Nw$p/"
        "lfipOihNI4791Sd1gcmNmcscyWuYUn7y3EfDSAfhF",
        "$argon2id$v=18$m=8192,t=1,p=4$Zml4ZWRzYWx0MTIzNDU2Nw$p/"
        "lfipOihNI4791Sd1gcmNmcscyWuYUn7y3EfDSAfhE",
        "$argon2id$v=19$m=1,t=1,p=1$Zml4ZWRzYWx0MTIzNDU2Nw$p/"
        "lfipOihNI4791Sd1gcmNmcscyWuYUn7y3EfDSAfhE",
    };
    for (size_t i = 0; i < sizeof damaged / sizeof *damaged; i++) {
        match = true;
        rc_t rc = password_verify(damaged[i], PW, strlen(PW), &match);
        assert_true(rc == RC_OK || rc == RC_INVALID);
        assert_false(match);
    }
    char longstr[300];
    memset(longstr, 'a', sizeof longstr - 1);
    memcpy(longstr, "$argon2id$", 10);
    longstr[sizeof longstr - 1] = '\0';
    assert_int_equal(password_verify(longstr, PW, strlen(PW), &match), RC_INVALID);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_dummy_verify(void **st)
{
    (void)st;
    struct password_params defaults = {19456, 2};
    struct password_ctx *c = NULL;
    assert_int_equal(password_ctx_new(&defaults, &c), RC_OK);
    char *h = NULL;
    assert_int_equal(password_hash(c, PW, strlen(PW), &h), RC_OK);
    double real = 1e9, dummy = 1e9;
    for (int i = 0; i < 3; i++) { /* best of three against a noisy machine */
        double t0 = now_ms();
        assert_false(verify(h, PW "x", strlen(PW) + 1));
        double t1 = now_ms();
        password_dummy_verify(c, PW "x", strlen(PW) + 1);
        double t2 = now_ms();
        real = t1 - t0 < real ? t1 - t0 : real;
        dummy = t2 - t1 < dummy ? t2 - t1 : dummy;
    }
    print_message("argon2id m=19456 t=2: verify %.1f ms, dummy verify %.1f ms\n", real, dummy);
    assert_true(dummy > real / 3); /* same work; only gross mistakes fail this */
    password_dummy_verify(fast, "", 0);
    free(h);
    password_ctx_free(c);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_hash_verify),
        cmocka_unit_test(test_argon2_interop),
        cmocka_unit_test(test_needs_rehash),
        cmocka_unit_test(test_bcrypt_vectors),
        cmocka_unit_test(test_bcrypt_crypt_r_fixed_salt),
        cmocka_unit_test(test_bad_stored_hashes),
        cmocka_unit_test(test_dummy_verify),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
