/* Unit tests for src/util: arena, buf, time formats, uuid, utf-8, workq. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/arena.h"
#include "util/buf.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "util/uuid.h"
#include "util/workq.h"

static int dtor_calls;
static void count_dtor(void *p)
{
    (void)p;
    dtor_calls++;
}

static void test_arena(void **st)
{
    (void)st;
    struct arena *a = arena_new();
    char *s = arena_strdup(a, "hello");
    assert_string_equal(s, "hello");
    void *big = arena_alloc(a, 100000); /* larger than a chunk */
    memset(big, 0xab, 100000);
    char *after = arena_strdup(a, "still works");
    assert_string_equal(after, "still works");
    assert_true(((uintptr_t)arena_alloc(a, 3) % _Alignof(max_align_t)) == 0);
    char *p = arena_printf(a, "%d-%s", 42, "x");
    assert_string_equal(p, "42-x");
    dtor_calls = 0;
    arena_defer(a, count_dtor, (void *)1);
    arena_defer(a, count_dtor, NULL); /* ignored */
    arena_defer(a, count_dtor, (void *)2);
    arena_free(a);
    assert_int_equal(dtor_calls, 2);
    arena_free(NULL);
}

static void test_buf_limit_sticky(void **st)
{
    (void)st;
    struct buf b;
    buf_init(&b, 8);
    buf_puts(&b, "1234");
    assert_false(b.err);
    buf_puts(&b, "56789");
    assert_true(b.err);
    buf_puts(&b, "a");
    assert_true(b.err);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "1234");
    buf_free(&b);
    buf_init(&b, 1 << 20);
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%04d", i);
    assert_int_equal(b.len, 4000);
    char *t = buf_take(&b);
    assert_int_equal(strlen(t), 4000);
    free(t);
    buf_free(&b);
}

static void test_buf_json_escape(void **st)
{
    (void)st;
    struct buf b;
    buf_init(&b, 1024);
    buf_json_escape(&b, "a\"b\\c\n\x01\x7f", 100);
    assert_string_equal(b.data, "a\\\"b\\\\c\\n\\u0001\\u007f");
    buf_reset(&b);
    buf_json_escape(&b, "caf\xc3\xa9", 100); /* valid UTF-8 kept */
    assert_string_equal(b.data, "caf\xc3\xa9");
    buf_reset(&b);
    buf_json_escape(&b, "x\xff\xc3y", 100); /* invalid bytes replaced */
    assert_string_equal(b.data, "x\\ufffd\\ufffdy");
    buf_reset(&b);
    buf_json_escape(&b, "abcdef", 3); /* truncated input */
    assert_string_equal(b.data, "abc");
    buf_free(&b);
}

/* The formatting time_format replaced: gmtime_r + snprintf. */
static void ref_time_format(int64_t us, enum time_style style, char out[TIME_STR_MAX])
{
    int64_t sec = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    assert_non_null(gmtime_r(&t, &tm));
    int n = snprintf(out, TIME_STR_MAX, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    const char *zone = (style == TIME_STYLE_Z || style == TIME_STYLE_DB) ? "Z" : "+00:00";
    if (style == TIME_STYLE_DB || style == TIME_STYLE_LOG || frac)
        snprintf(out + n, (size_t)(TIME_STR_MAX - n), ".%06lld%s", (long long)frac, zone);
    else
        snprintf(out + n, (size_t)(TIME_STR_MAX - n), "%s", zone);
}

static void test_time_format_matches_gmtime(void **st)
{
    (void)st;
    char got[TIME_STR_MAX], want[TIME_STR_MAX];
    const int64_t day = 86400LL * 1000000;
    const int64_t fixed[] = {0,
                             -1,
                             1,
                             999999,
                             -999999,
                             -1000000,
                             day - 1,
                             -day,
                             951782400LL * 1000000,             /* 2000-02-29 */
                             4107456000LL * 1000000,            /* 2100-02-28 */
                             253402300799LL * 1000000 + 999999, /* 9999-12-31T23:59:59.999999 */
                             253402300800LL * 1000000,          /* 10000-01-01 */
                             -62135596800LL * 1000000 - 1,      /* just before 0001-01-01 */
                             -62167219200LL * 1000000,          /* 0000-01-01 */
                             -62198755200LL * 1000000};         /* -0001-01-01 */
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        int64_t us;
        if (i < (int)(sizeof fixed / sizeof *fixed)) {
            us = fixed[i];
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* years about -300 .. 10300, and every fraction shape */
            us = (int64_t)(x % 334000000000ULL) * 1000000 - 71000000000LL * 1000000;
            if (i % 3)
                us += (int64_t)((x >> 40) % 1000000);
        }
        for (int style = TIME_STYLE_Z; style <= TIME_STYLE_LOG; style++) {
            time_format(us, (enum time_style)style, got);
            ref_time_format(us, (enum time_style)style, want);
            if (strcmp(got, want) != 0)
                fail_msg("%lld style %d: got %s, want %s", (long long)us, style, got, want);
        }
    }
}

static void test_time_formats(void **st)
{
    (void)st;
    char out[TIME_STR_MAX];
    int64_t t = 1776330000LL * 1000000; /* 2026-04-16T09:00:00Z */
    time_format(t, TIME_STYLE_Z, out);
    assert_string_equal(out, "2026-04-16T09:00:00Z");
    time_format(t + 123456, TIME_STYLE_Z, out);
    assert_string_equal(out, "2026-04-16T09:00:00.123456Z");
    time_format(t, TIME_STYLE_O, out);
    assert_string_equal(out, "2026-04-16T09:00:00+00:00");
    time_format(t + 500000, TIME_STYLE_O, out);
    assert_string_equal(out, "2026-04-16T09:00:00.500000+00:00");
    time_format(t, TIME_STYLE_DB, out);
    assert_string_equal(out, "2026-04-16T09:00:00.000000Z");
    time_format(t + 7, TIME_STYLE_LOG, out);
    assert_string_equal(out, "2026-04-16T09:00:00.000007+00:00");
    /* Years below 1000 keep four digits and read back. */
    int64_t y1 = -62135596800LL * 1000000; /* 0001-01-01T00:00:00Z */
    time_format(y1, TIME_STYLE_Z, out);
    assert_string_equal(out, "0001-01-01T00:00:00Z");
    int64_t rt;
    assert_true(time_parse(out, &rt));
    assert_true(rt == y1);

    int64_t back;
    assert_true(time_parse("2026-04-16T09:00:00.000000Z", &back));
    assert_true(back == t);
    assert_true(time_parse("2026-04-16 11:00:00.5+02", &back)); /* PostgreSQL text */
    assert_true(back == t + 500000);
    assert_true(time_parse("2026-04-16T09:00:00+00:00", &back));
    assert_true(back == t);
    const char *bad[] = {"",
                         "2026-04-16",
                         "2026-13-01T00:00:00Z",
                         "2026-04-16T09:00:00",
                         "2026-04-16T09:00:00Zjunk",
                         "2026-04-16T09:00:00.Z",
                         "abcd-04-16T09:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(time_parse(bad[i], &back));
}

static void test_uuid(void **st)
{
    (void)st;
    char a[UUID_STR_LEN + 1], b[UUID_STR_LEN + 1], c[UUID_STR_LEN + 1];
    uuid_v4(a);
    uuid_v4(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_true(uuid_parse(a, 36, c));
    assert_string_equal(a, c);
    assert_true(uuid_parse("0123456789ABCDEF0123456789abcdef", 32, c));
    assert_string_equal(c, "01234567-89ab-cdef-0123-456789abcdef");
    assert_true(uuid_parse("01234567-89AB-CDEF-0123-456789ABCDEF", 36, c));
    assert_string_equal(c, "01234567-89ab-cdef-0123-456789abcdef");
    assert_false(uuid_parse("01234567-89ab-cdef-0123-456789abcdeg", 36, c));
    assert_false(uuid_parse("0123456789ab-cdef-0123-456789abcdef0", 36, c));
    assert_false(uuid_parse("abc", 3, c));
}

static void test_uuid_v7(void **st)
{
    (void)st;
    char a[UUID_STR_LEN + 1], b[UUID_STR_LEN + 1], c[UUID_STR_LEN + 1];
    /* 1795824000123 ms = 0x01a2_1f73_9c7b */
    uuid_v7(1795824000123LL, a);
    uuid_v7(1795824000123LL, b);
    assert_int_equal(strlen(a), 36);
    assert_memory_equal(a, "01a21f73-9c7b-7", 15);
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_string_not_equal(a, b); /* 74 random bits */
    assert_true(uuid_parse(a, 36, c));
    assert_string_equal(a, c);
    /* Later milliseconds sort after earlier ones as text, so inserts land
     * at the right edge of an index on the id. */
    uuid_v7(1795824000124LL, c);
    assert_true(strcmp(c, a) > 0 && strcmp(c, b) > 0);
}

static void test_utf8(void **st)
{
    (void)st;
    assert_true(utf8_valid("plain", 5));
    assert_true(utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(utf8_valid("\xe2\x82", 2));         /* truncated */
    assert_false(utf8_valid("\x80", 1));             /* lone continuation */
    assert_int_equal(utf8_len("\xc3\xa9t\xf0\x9f\x98\x80", 7), 3);
}

static void test_str(void **st)
{
    (void)st;
    struct str t = str_trim(str_of("  a b \t"));
    assert_true(str_eq(t, "a b"));
    assert_true(str_ieq(str_of("BeArEr"), "bearer"));
    int64_t v;
    assert_true(str_parse_i64("-42", &v) && v == -42);
    assert_false(str_parse_i64("42x", &v));
    assert_false(str_parse_i64(" 42", &v));
    assert_false(str_parse_i64("99999999999999999999", &v));
    assert_false(str_parse_i64("", &v));
    assert_false(str_parse_i64("-", &v));
}

static atomic_int done_ok, done_expired;
static void job(void *arg, bool expired)
{
    int ms = *(int *)arg;
    if (expired) {
        atomic_fetch_add(&done_expired, 1);
        return;
    }
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&done_ok, 1);
}

static void test_workq_deadline_and_bound(void **st)
{
    (void)st;
    static int slow = 100, fast = 0;
    struct workq *q = workq_new("test", 1, 3);
    atomic_store(&done_ok, 0);
    atomic_store(&done_expired, 0);
    assert_int_equal(workq_submit(q, job, &slow, 0), RC_OK);
    int queued = 1, running = 0;
    while (running == 0) { /* wait until the slow job occupies the worker */
        workq_stats(q, &queued, &running);
    }
    /* Waits behind a 100 ms job with a 10 ms deadline: expires. */
    assert_int_equal(workq_submit(q, job, &fast, time_mono_us() + 10000), RC_OK);
    /* No deadline: runs. */
    assert_int_equal(workq_submit(q, job, &fast, 0), RC_OK);
    assert_int_equal(workq_submit(q, job, &fast, 0), RC_OK);
    /* Three waiting = the bound. */
    assert_int_equal(workq_submit(q, job, &fast, 0), RC_BUSY);
    workq_free(q);
    assert_int_equal(atomic_load(&done_expired), 1);
    assert_int_equal(atomic_load(&done_ok), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_buf_limit_sticky),
        cmocka_unit_test(test_buf_json_escape),
        cmocka_unit_test(test_time_formats),
        cmocka_unit_test(test_time_format_matches_gmtime),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_uuid_v7),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_str),
        cmocka_unit_test(test_workq_deadline_and_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
