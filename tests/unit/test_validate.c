/* Unit tests for src/svc/validate (api-core §13.1, §13.2) and util/unicat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "svc/validate.h"
#include "util/unicat.h"

static void test_email_valid_and_normalised(void **st)
{
    (void)st;
    struct {
        const char *in, *out;
    } ok[] = {
        {"a@example.com", "a@example.com"},
        {"  Mixed.Case@Example.COM\t", "mixed.case@example.com"},
        {"first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"},
        {"o'brien@example.org", "o'brien@example.org"},
        {"x@a-b.example", "x@a-b.example"},
        {"\xc3\xa9t\xc3\xa9@example.com", "\xc3\xa9t\xc3\xa9@example.com"}, /* non-ASCII local */
        {"\xc3\x89T@example.com", "\xc3\x89t@example.com"}, /* only ASCII letters lowered */
        {"a@example.c0m", "a@example.c0m"},
    };
    char out[EMAIL_MAX_BYTES + 1];
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        if (!validate_email(ok[i].in, out))
            fail_msg("rejected %s", ok[i].in);
        assert_string_equal(out, ok[i].out);
    }
}

static void test_email_invalid(void **st)
{
    (void)st;
    char long_local[80], long_label[90], long_total[400];
    memset(long_local, 'x', 65);
    memcpy(long_local + 65, "@example.com", 13);
    memcpy(long_label, "a@", 2);
    memset(long_label + 2, 'l', 64); /* one label of 64 */
    memcpy(long_label + 66, ".com", 5);
    long_total[0] = 'a';
    long_total[1] = '@';
    size_t o = 2;
    for (int i = 0; i < 30; i++) {
        memcpy(long_total + o, "abcdefghi.", 10);
        o += 10;
    }
    memcpy(long_total + o, "com", 4);
    const char *bad[] = {"",
                         "   ",
                         "plain",
                         "a@b",
                         "@example.com",
                         "a@",
                         "a@@example.com",
                         "a@localhost",
                         "a@example.test",
                         "a@x.invalid",
                         "a@x.local",
                         "a@x.onion",
                         "a@in-addr.arpa",
                         "a@LOCALHOST",
                         "a@1.2.3.4",
                         ".a@example.com",
                         "a.@example.com",
                         "a..b@example.com",
                         "a@-example.com",
                         "a@example-.com",
                         "a@exa_mple.com",
                         "Name <a@example.com>",
                         "\"q\"@example.com",
                         "a b@example.com",
                         "a@example..com",
                         "a@.example.com",
                         "a@example.com.",
                         "a(b)@example.com",
                         "a@ex\xc3\xa4mple.com",
                         "a@exam\nple.com",
                         "a\xff@example.com",
                         long_local,
                         long_label,
                         long_total};
    char out[EMAIL_MAX_BYTES + 1];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (validate_email(bad[i], out))
            fail_msg("accepted %s", bad[i]);
}

static void test_new_password_policy(void **st)
{
    (void)st;
    const char *ok[] = {"Str0ng!pass",
                        "Abcde1!x",
                        "\xc3\x84"
                        "bcdef1!",          /* Ä is Lu */
                        "Abcdef\xd9\xa3!x", /* Arabic-Indic 3 (Nd) */
                        "A1!\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
                        "P@ss w0rd",
                        "A1~                                                             "};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!validate_new_password(ok[i]))
            fail_msg("rejected %s", ok[i]);
    const char *bad[] = {
        "Sh0rt!",
        "alllower1!",
        "ALLUPPER!!",
        "NoDigits!!",
        "NoSpecial1",
        "Abcdef1\xc2\xa7",      /* § is not an ASCII special */
        "abcdef1!\xe2\x85\xa0", /* Ⅰ is Nl, not Nd or Lu */
        "A1!xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" /* 65 */};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (validate_new_password(bad[i]))
            fail_msg("accepted %s", bad[i]);
}

static void test_login_password_and_audience(void **st)
{
    (void)st;
    assert_false(validate_login_password("1234567"));
    assert_true(validate_login_password("12345678"));
    char buf[300];
    memset(buf, 'x', 256);
    buf[256] = '\0';
    assert_true(validate_login_password(buf));
    buf[256] = 'x';
    buf[257] = '\0';
    assert_false(validate_login_password(buf));
    assert_true(validate_audience(NULL));
    assert_false(validate_audience(""));
    assert_true(validate_audience("orders-api"));
    memset(buf, 'a', 256);
    buf[256] = '\0';
    assert_false(validate_audience(buf));
}

static void test_unicat(void **st)
{
    (void)st;
    assert_true(unicat_is_lu('A') && unicat_is_lu('Z') && !unicat_is_lu('a'));
    assert_true(unicat_is_nd('0') && unicat_is_nd('9') && !unicat_is_nd('a'));
    assert_true(unicat_is_lu(0xc4));    /* Ä */
    assert_true(unicat_is_nd(0x663));   /* ٣ */
    assert_false(unicat_is_nd(0x2160)); /* Ⅰ */
    assert_false(unicat_is_lu(0x1c5));  /* ǅ is Lt */
    uint32_t cp;
    assert_int_equal(utf8_decode("\xf0\x9f\x98\x80", &cp), 4);
    assert_int_equal(cp, 0x1f600);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email_valid_and_normalised),
        cmocka_unit_test(test_email_invalid),
        cmocka_unit_test(test_new_password_policy),
        cmocka_unit_test(test_login_password_and_audience),
        cmocka_unit_test(test_unicat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
