/* Audit events (src/svc/audit.c, src/store/audit.c). Pure cases: metadata
 * sanitisation vectors (api-admin §9.3), correlation-id mapping (§9.2, with
 * UUIDv5 values computed by Python's uuid.uuid5), the history cursor codec
 * (api-core §9.6). Database cases run on SQLite (a fresh migrated file per
 * case) and on PostgreSQL: AUTHD_TEST_PG_URL when set (a throwaway
 * database: cases reset the public schema), otherwise a throwaway cluster
 * started here like tests/unit/test_db.c does (skipped with a message when
 * PostgreSQL is not installed). Log lines go to a temp file that cases
 * read back. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"
#include "store/audit.h"
#include "store/migrate.h"
#include "svc/audit.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#define assert_ok(expr)                                                                            \
    do {                                                                                           \
        rc_t rc_ = (expr);                                                                         \
        if (rc_ != RC_OK)                                                                          \
            fail_msg("%s: %s", #expr, rc_str(rc_));                                                \
    } while (0)
#define assert_rc(expr, want)                                                                      \
    do {                                                                                           \
        rc_t rc_ = (expr);                                                                         \
        if (rc_ != (want))                                                                         \
            fail_msg("%s: got %s, want %s", #expr, rc_str(rc_), rc_str(want));                     \
    } while (0)

#define R "***REDACTED***"

struct fx {
    enum db_kind kind;
    struct db *db;
};

static char g_tmp[256];
static int g_seq;
static char g_pg_url[512];
static bool g_pg_own;
static int g_log_fd = -1;

/* ---- log capture ------------------------------------------------------- */

static void log_reset(void)
{
    assert_int_equal(ftruncate(g_log_fd, 0), 0);
}

/* Everything logged since the last log_reset (caller frees). */
static char *log_text(void)
{
    struct stat st;
    assert_int_equal(fstat(g_log_fd, &st), 0);
    char *s = malloc((size_t)st.st_size + 1);
    ssize_t n = pread(g_log_fd, s, (size_t)st.st_size, 0);
    assert_true(n == st.st_size);
    s[n] = '\0';
    return s;
}

/* The first log line whose event is `event`, parsed (caller decrefs). */
static json_t *log_find(const char *event)
{
    char *all = log_text(), *save = NULL;
    json_t *hit = NULL;
    for (char *line = strtok_r(all, "\n", &save); line && !hit;
         line = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(line, 0, NULL);
        const char *ev = json_string_value(json_object_get(j, "event"));
        if (ev && strcmp(ev, event) == 0)
            hit = j;
        else
            json_decref(j);
    }
    free(all);
    return hit;
}

/* ---- json helpers ------------------------------------------------------ */

static json_t *J(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &err);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, err.text);
    return j;
}

static void assert_json_eq(const json_t *got, const char *want)
{
    if (!want) {
        if (got) {
            char *s = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
            fail_msg("want NULL, got %s", s);
        }
        return;
    }
    json_t *w = J(want);
    if (!got || !json_equal(got, w)) {
        char *s = got ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        fail_msg("want %s\n got %s", want, s ? s : "NULL");
    }
    json_decref(w);
}

/* ---- pure: sanitisation ------------------------------------------------ */

static const char *const sanitise_vectors[][2] = {
    /* Plain values kept. */
    {"{\"provider\":\"password\",\"created\":true,\"n\":-7,\"r\":1.5,\"z\":null,\"f\":false}",
     "{\"provider\":\"password\",\"created\":true,\"n\":-7,\"r\":1.5,\"z\":null,\"f\":false}"},
    /* Every sensitive word, whatever the value's type. */
    {"{\"api_key\":1,\"apikey\":[1,2],\"authorization\":{\"a\":1},\"cookie\":null,"
     "\"email\":\"x\",\"otp\":true,\"password\":1.5,\"secret\":\"s\",\"token\":{}}",
     "{\"api_key\":\"" R "\",\"apikey\":\"" R "\",\"authorization\":\"" R "\",\"cookie\":\"" R
     "\",\"email\":\"" R "\",\"otp\":\"" R "\",\"password\":\"" R "\",\"secret\":\"" R
     "\",\"token\":\"" R "\"}"},
    /* Normalisation: case, '-' → '_', surrounding spaces; contains, not
     * equals. Keys are kept as given. */
    {"{\"X-Api-Key\":\"k\",\" Token \":1,\"PASSWORD_hash\":\"h\",\"set-cookie\":\"c\","
     "\"user_email\":\"e\",\"one_time_otp\":\"1\",\"client_secret_enc\":\"x\","
     "\"Authorization\":\"b\",\"apiKey\":\"z\",\"refresh-TOKEN-id\":7}",
     "{\"X-Api-Key\":\"" R "\",\" Token \":\"" R "\",\"PASSWORD_hash\":\"" R
     "\",\"set-cookie\":\"" R "\",\"user_email\":\"" R "\",\"one_time_otp\":\"" R
     "\",\"client_secret_enc\":\"" R "\",\"Authorization\":\"" R "\",\"apiKey\":\"" R
     "\",\"refresh-TOKEN-id\":\"" R "\"}"},
    /* The consequences api-admin §9.3 lists. */
    {"{\"token_kind\":\"access_refresh_pair\",\"email_otp_enabled\":true,"
     "\"revoked_api_key_count\":3,\"token_ttl_seconds\":600}",
     "{\"token_kind\":\"" R "\",\"email_otp_enabled\":\"" R "\",\"revoked_api_key_count\":\"" R
     "\",\"token_ttl_seconds\":\"" R "\"}"},
    /* Near misses stay. "e-mail" normalises to "e_mail". */
    {"{\"tok_en\":1,\"pass word\":2,\"e-mail\":3,\"api key\":4,\"o-t-p\":5,\"\":6,\"123\":7,"
     "\"true\":8,\"null\":9,\"session_id\":\"s\",\"reason\":\"admin_delete\"}",
     "{\"tok_en\":1,\"pass word\":2,\"e-mail\":3,\"api key\":4,\"o-t-p\":5,\"\":6,\"123\":7,"
     "\"true\":8,\"null\":9,\"session_id\":\"s\",\"reason\":\"admin_delete\"}"},
    /* Python's lower(): KELVIN SIGN → 'k' (redacted); U+0130 → "i̇" (not). */
    {"{\"TO\\u212aEN\":1,\"API\\u212aEY\":2,\"AUTHOR\\u0130ZATION\":3,\"P\\u00c4SSWORD\":4}",
     "{\"TO\\u212aEN\":\"" R "\",\"API\\u212aEY\":\"" R "\",\"AUTHOR\\u0130ZATION\":3,"
     "\"P\\u00c4SSWORD\":4}"},
    /* E-mail-looking strings, as a whole string without whitespace. */
    {"[\"alice@example.com\",\"a@b.c\",\"a@b\",\"@b.c\",\"a@.c\",\"a@b.\",\"a b@c.d\","
     "\"a@@b.c\",\"a@b@c.d\",\"x "
     "a@b.com\",\"a@b.c\\n\",\"a@b.co\\u00a0\",\"\\u00e4@\\u00f6.\\u00fc\","
     "\"a@b..c\",\"a@.b.c\",\"0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11\",\"mailto:a@b.c\","
     "\"a@b.c\\u3000\",\"\"]",
     "[\"" R "\",\"" R "\",\"a@b\",\"@b.c\",\"a@.c\",\"a@b.\",\"a b@c.d\",\"a@@b.c\",\"a@b@c.d\","
     "\"x a@b.com\",\"a@b.c\\n\",\"a@b.co\\u00a0\",\"" R "\",\"" R "\",\"" R "\","
     "\"0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11\",\"" R "\",\"a@b.c\\u3000\",\"\"]"},
    /* Recursion through objects and arrays; nested empty object kept. */
    {"{\"outer\":{\"password\":\"x\",\"inner\":{\"list\":[\"a@b.com\",{\"token\":1,\"k\":\"v\"},"
     "[[\"c@d.org\",\"plain\"]],5,null,true,{}]}},\"e\":{}}",
     "{\"outer\":{\"password\":\"" R "\",\"inner\":{\"list\":[\"" R "\",{\"token\":\"" R
     "\",\"k\":\"v\"},[[\"" R "\",\"plain\"]],5,null,true,{}]}},\"e\":{}}"},
    /* session.revoked shapes (api-admin §9.4) keep their values. */
    {"{\"reason\":\"self_revoke_others\",\"revoked_session_count\":2,\"session_ids\":"
     "[\"0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11\"],\"filter\":{\"ip_address\":\"10.0.0.1\"}}",
     "{\"reason\":\"self_revoke_others\",\"revoked_session_count\":2,\"session_ids\":"
     "[\"0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11\"],\"filter\":{\"ip_address\":\"10.0.0.1\"}}"},
    /* Big numbers survive. */
    {"{\"big\":9223372036854775807,\"neg\":-9223372036854775807,\"real\":1e300}",
     "{\"big\":9223372036854775807,\"neg\":-9223372036854775807,\"real\":1e300}"},
    /* Empty top-level object, null, non-objects → NULL. */
    {"{}", NULL},
    {"null", NULL},
    {"[1,2]", NULL},
    {"\"a@b.c\"", NULL},
};

static void test_sanitise_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof sanitise_vectors / sizeof *sanitise_vectors; i++) {
        json_t *in = J(sanitise_vectors[i][0]);
        json_t *copy = json_deep_copy(in);
        json_t *got = audit_metadata_sanitise(in);
        const char *want = sanitise_vectors[i][1];
        if (!json_is_object(in))
            assert_null(got); /* bare non-objects; array rules: next case */
        else
            assert_json_eq(got, want);
        assert_true(json_equal(in, copy)); /* input untouched */
        json_decref(got);
        json_decref(copy);
        json_decref(in);
    }
    assert_null(audit_metadata_sanitise(NULL));
}

/* Element rules for arrays go through an object wrapper. */
static void test_sanitise_array_elements(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof sanitise_vectors / sizeof *sanitise_vectors; i++) {
        if (sanitise_vectors[i][0][0] != '[' || !sanitise_vectors[i][1])
            continue;
        json_t *in = json_object();
        json_object_set_new(in, "list", J(sanitise_vectors[i][0]));
        json_t *want = json_object();
        json_object_set_new(want, "list", J(sanitise_vectors[i][1]));
        json_t *got = audit_metadata_sanitise(in);
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_COMPACT);
            fail_msg("vector %zu: got %s", i, g);
        }
        json_decref(got);
        json_decref(want);
        json_decref(in);
    }
}

static void test_sanitise_huge_and_nul(void **state)
{
    (void)state;
    /* A 2 MiB string is kept whole: §9.3 has no truncation. */
    size_t n = 2u << 20;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    json_t *in = json_object();
    json_object_set_new(in, "blob", json_string(big));
    json_object_set_new(in, "api_key_blob", json_string(big));
    /* U+0000 (which jsonb refuses) becomes U+FFFD, in values and keys. */
    json_object_set_new(in, "nul", json_stringn("a\0b", 3));
    json_object_setn_new(in, "k\0y", 3, json_string("v"));
    json_object_set_new(in, "nul_utf8", json_stringn("\xc3\xa9\0", 3)); /* é kept */
    json_t *got = audit_metadata_sanitise(in);
    assert_int_equal(json_string_length(json_object_get(got, "blob")), n);
    assert_string_equal(json_string_value(json_object_get(got, "api_key_blob")), R);
    assert_string_equal(json_string_value(json_object_get(got, "nul")), "a\xef\xbf\xbd"
                                                                        "b");
    assert_string_equal(json_string_value(json_object_get(got, "k\xef\xbf\xbdy")), "v");
    assert_string_equal(json_string_value(json_object_get(got, "nul_utf8")),
                        "\xc3\xa9\xef\xbf\xbd");
    json_decref(got);
    json_decref(in);
    free(big);
}

static void test_sanitise_depth(void **state)
{
    (void)state;
    /* 40 nested objects {"a":{"a":...{"a":"leaf"}}}: levels 1..32 stay
     * objects, the container at level 33 becomes null. */
    json_t *in = json_string("leaf");
    for (int i = 0; i < 40; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "a", in);
        in = o;
    }
    json_t *got = audit_metadata_sanitise(in);
    const json_t *cur = got;
    for (int level = 1; level <= AUDIT_METADATA_MAX_DEPTH; level++) {
        assert_true(json_is_object(cur));
        cur = json_object_get(cur, "a");
    }
    assert_true(json_is_null(cur));
    json_decref(got);
    json_decref(in);
    /* Arrays count as levels too. */
    json_t *arr = json_string("x");
    for (int i = 0; i < 40; i++) {
        json_t *a = json_array();
        json_array_append_new(a, arr);
        arr = a;
    }
    in = json_object();
    json_object_set_new(in, "deep", arr);
    got = audit_metadata_sanitise(in);
    cur = json_object_get(got, "deep");
    for (int level = 2; level <= AUDIT_METADATA_MAX_DEPTH; level++) {
        assert_true(json_is_array(cur));
        cur = json_array_get(cur, 0);
    }
    assert_true(json_is_null(cur));
    json_decref(got);
    json_decref(in);
}

/* ---- pure: correlation id --------------------------------------------- */

#define X10 "xxxxxxxxxx"

static void test_correlation(void **state)
{
    (void)state;
    /* Expected values: python3 -c 'import uuid; print(uuid.UUID(s))' /
     * 'print(uuid.uuid5(uuid.NAMESPACE_URL, s))'. */
    static const char *const v[][2] = {
        {"12345678-1234-5678-1234-567812345678", "12345678-1234-5678-1234-567812345678"},
        {"0E9AD4C4-3A0B-4E0E-9B53-0B1D9F0C6C11", "0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11"},
        {"0e9ad4c43a0b4e0e9b530b1d9f0c6c11", "0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11"},
        {"{12345678-1234-5678-1234-567812345678}", "12345678-1234-5678-1234-567812345678"},
        {"urn:uuid:12345678-1234-5678-1234-567812345678", "12345678-1234-5678-1234-567812345678"},
        {"req-123", "90c90117-7cc3-586c-a03a-3b48d7ffc023"},
        {"abc", "68661508-f3c4-55b4-945d-ae2b4dfe5db4"},
        {"my correlation id", "1d992c0d-164c-5fa0-80a0-a8ecc14553f3"},
        {"unknown", "95652564-4c1a-5bc7-85a4-ec72c28bae52"},
        {"12345678-1234-5678-1234-56781234567g", "2f555016-0e4e-5bc4-ad92-2631d1d89016"},
        {"12345678123456781234567812345678ab", "06a2883b-4d36-59e7-9778-cb4f7ae362b9"},
        {"not-a-uuid-but-long-" X10 X10 X10 X10 X10 X10 X10 X10 X10 X10,
         "2504b6b2-ca20-5f7d-a13b-7612893209ca"},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        char out[UUID_STR_LEN + 1] = "";
        if (!audit_correlation_uuid(v[i][0], out) || strcmp(out, v[i][1]) != 0)
            fail_msg("%s: got %s want %s", v[i][0], out, v[i][1]);
    }
    char out[UUID_STR_LEN + 1] = "untouched";
    assert_false(audit_correlation_uuid(NULL, out));
    assert_false(audit_correlation_uuid("", out));
    assert_string_equal(out, "untouched");
}

/* ---- pure: cursor ------------------------------------------------------ */

static int64_t us_of(const char *ts)
{
    int64_t us = 0;
    if (!time_parse(ts, &us))
        fail_msg("bad ts %s", ts);
    return us;
}

static char *b64url(const char *s)
{
    /* Tiny encoder for building hostile cursors (padded). */
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(s), o = 0;
    char *out = malloc(n / 3 * 4 + 8);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? a[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static void test_cursor_codec(void **state)
{
    (void)state;
    const char *id = "0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11";
    /* Expected: base64.urlsafe_b64encode(json.dumps(d, sort_keys=True,
     * separators=(",", ":")).encode()). */
    int64_t t1 = us_of("2026-04-16T09:00:00.120000Z"), t2 = us_of("2026-04-16T09:00:00Z");
    char *c1 = audit_cursor_encode(t1, id);
    assert_string_equal(c1, "eyJjcmVhdGVkX2F0IjoiMjAyNi0wNC0xNlQwOTowMDowMC4xMjAwMDArMDA6MDAiLC"
                            "JpZCI6IjBlOWFkNGM0LTNhMGItNGUwZS05YjUzLTBiMWQ5ZjBjNmMxMSJ9");
    char *c2 = audit_cursor_encode(t2, "0E9AD4C43A0B4E0E9B530B1D9F0C6C11");
    assert_string_equal(c2, "eyJjcmVhdGVkX2F0IjoiMjAyNi0wNC0xNlQwOTowMDowMCswMDowMCIsImlkIjoiMG"
                            "U5YWQ0YzQtM2EwYi00ZTBlLTliNTMtMGIxZDlmMGM2YzExIn0=");
    assert_null(audit_cursor_encode(t1, "nope"));
    assert_null(audit_cursor_encode(t1, NULL));

    struct audit_keyset k;
    assert_ok(audit_cursor_decode(c1, &k));
    assert_true(k.created_at_us == t1);
    assert_string_equal(k.id, id);
    assert_ok(audit_cursor_decode(c2, &k));
    assert_true(k.created_at_us == t2);
    /* Unpadded accepted. */
    c2[strlen(c2) - 1] = '\0';
    assert_ok(audit_cursor_decode(c2, &k));
    assert_true(k.created_at_us == t2);
    free(c1);
    free(c2);

    /* Decoding leniency: any ISO 8601 (naive = UTC, bare date), any UUID
     * form, extra keys ignored, key order free. */
    static const char *const ok[][2] = {
        {"{\"created_at\":\"2026-04-16T09:00:00.12\",\"id\":\"0E9AD4C4-3A0B-4E0E-9B53-"
         "0B1D9F0C6C11\"}",
         "2026-04-16T09:00:00.120000Z"},
        {"{\"id\":\"0e9ad4c43a0b4e0e9b530b1d9f0c6c11\",\"created_at\":\"2026-04-16 "
         "11:00:00+02:00\"}",
         "2026-04-16T09:00:00Z"},
        {"{\"created_at\":\"2026-04-16T09:00:00Z\",\"id\":\"0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11\","
         "\"extra\":[1]}",
         "2026-04-16T09:00:00Z"},
        {"{\"created_at\":\"2026-04-16\",\"id\":\"0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11\"}",
         "2026-04-16T00:00:00Z"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char *c = b64url(ok[i][0]);
        if (audit_cursor_decode(c, &k) != RC_OK)
            fail_msg("should decode: %s", ok[i][0]);
        assert_true(k.created_at_us == us_of(ok[i][1]));
        assert_string_equal(k.id, id);
        free(c);
    }

    /* Undecodable → RC_INVALID. */
    static const char *const bad_json[] = {
        "not json",
        "[1,2]",
        "\"s\"",
        "{}",
        "{\"id\":\"0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11\"}",
        "{\"created_at\":\"2026-04-16T09:00:00Z\"}",
        "{\"created_at\":1,\"id\":\"0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11\"}",
        "{\"created_at\":\"2026-04-16T09:00:00Z\",\"id\":7}",
        "{\"created_at\":\"yesterday\",\"id\":\"0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11\"}",
        "{\"created_at\":\"2026-13-16T09:00:00Z\",\"id\":\"0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11\"}",
        "{\"created_at\":\"2026-04-16T09:00:00Z\",\"id\":\"0e9ad4c4-3a0b-4e0e-9b53\"}",
        "{\"created_at\":\"2026-04-16T09:00:00Z\",\"id\":null}",
    };
    for (size_t i = 0; i < sizeof bad_json / sizeof *bad_json; i++) {
        char *c = b64url(bad_json[i]);
        if (audit_cursor_decode(c, &k) != RC_INVALID)
            fail_msg("should be invalid: %s", bad_json[i]);
        free(c);
    }
    static const char *const bad_raw[] = {
        "", "!!!!", "eyJ", "a", "eyJjcmVhdGVk X2F0Ijo", "eyJ+Y3JlYXRlZF9hdCI/", "====",
    };
    for (size_t i = 0; i < sizeof bad_raw / sizeof *bad_raw; i++)
        assert_rc(audit_cursor_decode(bad_raw[i], &k), RC_INVALID);
    assert_rc(audit_cursor_decode(NULL, &k), RC_INVALID);
    char longc[AUDIT_CURSOR_MAX + 2];
    memset(longc, 'A', sizeof longc - 1);
    longc[sizeof longc - 1] = '\0';
    assert_rc(audit_cursor_decode(longc, &k), RC_INVALID);
}

/* ---- PostgreSQL cluster (same approach as test_db.c) ------------------ */

static pid_t g_pg_pid;
static int g_pg_port;
static char g_pg_bin[256], g_pg_dir[256];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

static bool find_pg_bin(void)
{
    glob_t g;
    bool ok = false;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        const char *p = g.gl_pathv[g.gl_pathc - 1];
        snprintf(g_pg_bin, sizeof g_pg_bin, "%.*s", (int)(strrchr(p, '/') - p), p);
        ok = true;
    }
    globfree(&g);
    return ok;
}

static void become_postgres(void)
{
    if (geteuid() != 0)
        return;
    struct passwd *pw = getpwnam("postgres");
    if (!pw || setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
        _exit(126);
}

static pid_t spawn(const char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        become_postgres();
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static bool pg_ready(int ms)
{
    int64_t end = time_mono_us() / 1000 + ms;
    while (time_mono_us() / 1000 < end) {
        if (PQping(g_pg_url) == PQPING_OK)
            return true;
        if (g_pg_pid > 0 && waitpid(g_pg_pid, NULL, WNOHANG) == g_pg_pid) {
            g_pg_pid = 0;
            return false;
        }
        sleep_ms(50);
    }
    return false;
}

static bool pg_start(void)
{
    char bin[300], data[300], port[16], sock[300];
    snprintf(bin, sizeof bin, "%s/postgres", g_pg_bin);
    snprintf(data, sizeof data, "%s/data", g_pg_dir);
    snprintf(port, sizeof port, "%d", g_pg_port);
    snprintf(sock, sizeof sock, "unix_socket_directories=%s", g_pg_dir);
    const char *argv[] = {bin,  "-D", data, "-p",        port, "-c", "listen_addresses=127.0.0.1",
                          "-c", sock, "-c", "fsync=off", NULL};
    g_pg_pid = spawn(argv);
    return g_pg_pid > 0 && pg_ready(30000);
}

static void pg_stop(void)
{
    if (g_pg_pid <= 0)
        return;
    kill(g_pg_pid, SIGINT);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(g_pg_pid, NULL, WNOHANG) == g_pg_pid) {
            g_pg_pid = 0;
            return;
        }
        sleep_ms(10);
    }
    kill(g_pg_pid, SIGKILL);
    waitpid(g_pg_pid, NULL, 0);
    g_pg_pid = 0;
}

static void rm_rf(const char *dir)
{
    if (!dir[0])
        return;
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

static void cleanup_all(void)
{
    pg_stop();
    if (g_pg_own)
        rm_rf(g_pg_dir);
    g_pg_own = false;
    rm_rf(g_tmp);
}

static bool pg_cluster_up(void)
{
    if (!find_pg_bin())
        return false;
    snprintf(g_pg_dir, sizeof g_pg_dir, "/tmp/authd-test-audit-pg-XXXXXX");
    if (!mkdtemp(g_pg_dir))
        return false;
    g_pg_own = true;
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(g_pg_dir, pw->pw_uid, pw->pw_gid) != 0)
            return false;
    }
    char initdb[300], data[300];
    snprintf(initdb, sizeof initdb, "%s/initdb", g_pg_bin);
    snprintf(data, sizeof data, "%s/data", g_pg_dir);
    const char *argv[] = {initdb,     "-D", data,   "-A",         "trust",     "-U",
                          "postgres", "-E", "UTF8", "--locale=C", "--no-sync", NULL};
    int st = 0;
    pid_t pid = spawn(argv);
    if (pid <= 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return false;
    g_pg_port = free_port();
    snprintf(g_pg_url, sizeof g_pg_url, "postgresql://postgres@127.0.0.1:%d/postgres", g_pg_port);
    return pg_start();
}

/* ---- database fixtures ------------------------------------------------- */

static void script_ok(struct db *db, const char *sql)
{
    struct db_conn *c = NULL;
    assert_ok(db_acquire(db, DB_WRITE, &c));
    rc_t rc = db_exec_script(c, sql);
    if (rc)
        fail_msg("script: %s (%s)", rc_str(rc), db_conn_error(c));
    db_release(c);
}

static int migrated(struct fx *f)
{
    f->kind = db_kind(f->db);
    if (f->kind == DB_POSTGRES)
        script_ok(f->db, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
    int n = 0;
    return migrate_apply(f->db, &n) == RC_OK ? 0 : -1;
}

static int sqlite_open_fx(void **state, int pool_timeout_ms)
{
    static struct fx f;
    char url[600];
    snprintf(url, sizeof url, "sqlite:///%s/a%d.db", g_tmp, ++g_seq);
    memset(&f, 0, sizeof f);
    *state = &f;
    struct db_opts o = {.pool_timeout_ms = pool_timeout_ms};
    if (db_open(url, &o, &f.db) != RC_OK)
        return -1;
    return migrated(&f);
}

/* A short checkout timeout, so the tests that wait it out stay quick. */
static int sqlite_setup(void **state)
{
    return sqlite_open_fx(state, 300);
}

/* For tests that hold the writer while other work runs: that work's
 * duration (slow under ASan on a loaded host) must not decide whether a
 * waiting checkout times out. */
static int sqlite_setup_patient(void **state)
{
    return sqlite_open_fx(state, 120000);
}

static int pg_setup(void **state)
{
    static struct fx f;
    struct db_opts o = {.pool_size = 4, .max_overflow = 4, .pool_timeout_ms = 2000};
    memset(&f, 0, sizeof f);
    *state = &f;
    if (db_open(g_pg_url, &o, &f.db) != RC_OK)
        return -1;
    return migrated(&f);
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    db_close(f->db);
    f->db = NULL;
    return 0;
}

static int64_t count_rows(struct db *db, const char *event_type)
{
    struct db_conn *c = NULL;
    struct db_res *r = NULL;
    struct db_param p[] = {DBP_T(event_type)};
    assert_ok(db_acquire(db, DB_READ, &c));
    rc_t rc = event_type
                  ? db_exec(c, "SELECT count(*) FROM audit_events WHERE event_type = $1", 1, p, &r)
                  : db_exec(c, "SELECT count(*) FROM audit_events", 0, NULL, &r);
    if (rc)
        fail_msg("count: %s (%s)", rc_str(rc), db_conn_error(c));
    int64_t n = db_res_int(r, 0, 0);
    db_res_free(r);
    db_release(c);
    return n;
}

enum {
    C_ID,
    C_TYPE,
    C_ACTOR,
    C_ATYPE,
    C_TARGET,
    C_TTYPE,
    C_IP,
    C_UA,
    C_CORR,
    C_OK,
    C_FAIL,
    C_META,
    C_AT
};

/* The single row of event_type (all 13 columns, store order). */
static struct db_res *fetch(struct fx *f, const char *event_type)
{
    struct db_conn *c = NULL;
    struct db_res *r = NULL;
    struct db_param p[] = {DBP_T(event_type)};
    assert_ok(db_acquire(f->db, DB_READ, &c));
    rc_t rc = db_exec(c,
                      "SELECT id, event_type, actor_id, actor_type, target_id, target_type, "
                      "ip_address, user_agent, correlation_id, success, failure_reason, "
                      "metadata, created_at FROM audit_events WHERE event_type = $1",
                      1, p, &r);
    if (rc)
        fail_msg("fetch: %s (%s)", rc_str(rc), db_conn_error(c));
    db_release(c);
    if (db_res_rows(r) != 1)
        fail_msg("%s: %d rows", event_type, db_res_rows(r));
    return r;
}

static void assert_col(const struct db_res *r, int col, const char *want)
{
    const char *got = db_res_get(r, 0, col);
    if (!want && got)
        fail_msg("column %d: want NULL, got '%s'", col, got);
    if (want && (!got || strcmp(got, want) != 0))
        fail_msg("column %d: want '%s', got '%s'", col, want, got ? got : "NULL");
}

static void assert_meta(const struct db_res *r, const char *want)
{
    const char *txt = db_res_get(r, 0, C_META);
    json_t *got = txt ? J(txt) : NULL;
    assert_json_eq(got, want);
    json_decref(got);
}

static rc_t write_one(struct fx *f, const struct audit_event *ev)
{
    struct db_conn *c = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    rc_t rc = audit_write(c, ev);
    db_release(c);
    return rc;
}

/* ---- database cases ---------------------------------------------------- */

static void test_write_fields(void **state)
{
    struct fx *f = *state;
    json_t *meta = J("{\"provider\":\"password\",\"password\":\"hunter2\",\"to\":\"a@b.com\"}");
    struct audit_event ev = {
        .event_type = "  user.login.failure \t",
        .actor_id = "0E9AD4C4-3A0B-4E0E-9B53-0B1D9F0C6C11",
        .actor_type = AUDIT_ACTOR_USER,
        .target_id = "12345678123456781234567812345678",
        .target_type = " user ",
        .ip_address = "2001:DB8:0:0::1",
        .user_agent = "  Mozilla/5.0 (X11; Linux x86_64)  ",
        .correlation_id = "req-123",
        .success = false,
        .failure_reason = " invalid_credentials\n",
        .metadata = meta,
    };
    int64_t before = time_now_us();
    assert_ok(write_one(f, &ev));
    int64_t after = time_now_us();
    json_decref(meta);

    struct db_res *r = fetch(f, "user.login.failure");
    char id[UUID_STR_LEN + 1];
    const char *rid = db_res_get(r, 0, C_ID);
    assert_true(uuid_parse(rid, strlen(rid), id));
    assert_string_equal(rid, id);   /* canonical */
    assert_int_equal(rid[14], '7'); /* time-ordered: inserts append to pk_audit_events */
    assert_col(r, C_ACTOR, "0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11");
    assert_col(r, C_ATYPE, "user");
    assert_col(r, C_TARGET, "12345678-1234-5678-1234-567812345678");
    assert_col(r, C_TTYPE, "user");
    assert_col(r, C_IP, "2001:db8::1");
    assert_col(r, C_UA, "Mozilla/5.0 (X11; Linux x86_64)");
    assert_col(r, C_CORR, "90c90117-7cc3-586c-a03a-3b48d7ffc023");
    assert_false(db_res_bool(r, 0, C_OK));
    assert_col(r, C_FAIL, "invalid_credentials");
    assert_meta(r, "{\"provider\":\"password\",\"password\":\"" R "\",\"to\":\"" R "\"}");
    int64_t at = 0;
    assert_true(db_res_time(r, 0, C_AT, &at));
    assert_true(at >= before && at <= after);
    /* The id's first 48 bits are created_at in unix milliseconds. */
    char ms_hex[13];
    snprintf(ms_hex, sizeof ms_hex, "%012llx", (unsigned long long)(at / 1000));
    assert_memory_equal(rid, ms_hex, 8);
    assert_memory_equal(rid + 9, ms_hex + 8, 4);
    if (f->kind == DB_SQLITE) {
        /* Fixed-width DB style text (data-model §1). */
        const char *ts = db_res_get(r, 0, C_AT);
        assert_int_equal(strlen(ts), 27);
        assert_int_equal(ts[26], 'Z');
    }
    db_res_free(r);

    /* Success row with a UUID correlation id and IPv4 / mapped addresses. */
    struct audit_event ok = {.event_type = "user.login.success",
                             .actor_type = AUDIT_ACTOR_USER,
                             .ip_address = " 10.0.0.1 ",
                             .correlation_id = "0E9AD4C4-3A0B-4E0E-9B53-0B1D9F0C6C11",
                             .success = true};
    assert_ok(write_one(f, &ok));
    r = fetch(f, "user.login.success");
    assert_col(r, C_IP, "10.0.0.1");
    assert_col(r, C_CORR, "0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11");
    assert_true(db_res_bool(r, 0, C_OK));
    assert_col(r, C_ACTOR, NULL);
    assert_col(r, C_META, NULL);
    db_res_free(r);
    ok.event_type = "t.mapped";
    ok.ip_address = "::FFFF:192.0.2.1";
    assert_ok(write_one(f, &ok));
    r = fetch(f, "t.mapped");
    assert_col(r, C_IP, "::ffff:192.0.2.1");
    db_res_free(r);
}

static void test_write_nulls(void **state)
{
    struct fx *f = *state;
    /* Non-UUID actor/target ids (the bootstrap admin's id), blank strings. */
    json_t *empty = json_object();
    struct audit_event ev = {
        .event_type = "user.role_changed",
        .actor_id = "bootstrap-admin",
        .actor_type = (enum audit_actor)42,
        .target_id = "",
        .target_type = "   ",
        .ip_address = "unknown",
        .user_agent = " \t ",
        .correlation_id = "",
        .success = true,
        .failure_reason = "  ",
        .metadata = empty,
    };
    assert_ok(write_one(f, &ev));
    json_decref(empty);
    struct db_res *r = fetch(f, "user.role_changed");
    for (int col = C_ACTOR; col <= C_META; col++)
        if (col != C_ATYPE && col != C_OK)
            assert_col(r, col, NULL);
    assert_col(r, C_ATYPE, "system"); /* outside the enum */
    db_res_free(r);

    /* Every unparsable address is stored as NULL. */
    static const char *const bad_ips[] = {
        "unknown", "1.2.3.4:80", "300.1.1.1", "fe80::1%eth0", "10.0.0.0/8",     "01.2.3.4", "[::1]",
        "1.2.3",   "::1::2",     "",          "a.b.c.d",      "1.2.3.4 5.6.7.8"};
    for (size_t i = 0; i < sizeof bad_ips / sizeof *bad_ips; i++) {
        char type[32];
        snprintf(type, sizeof type, "t.ip.%zu", i);
        struct audit_event e = {.event_type = type, .ip_address = bad_ips[i], .success = true};
        assert_ok(write_one(f, &e));
        r = fetch(f, type);
        if (db_res_get(r, 0, C_IP))
            fail_msg("ip '%s' stored as '%s'", bad_ips[i], db_res_get(r, 0, C_IP));
        assert_col(r, C_ATYPE, "user"); /* zero value of the enum */
        db_res_free(r);
    }
    /* Each actor type. */
    static const char *const names[] = {"user", "service", "admin", "system"};
    for (int a = 0; a < 4; a++) {
        char type[32];
        snprintf(type, sizeof type, "t.actor.%d", a);
        struct audit_event e = {.event_type = type, .actor_type = (enum audit_actor)a};
        assert_ok(write_one(f, &e));
        r = fetch(f, type);
        assert_col(r, C_ATYPE, names[a]);
        db_res_free(r);
    }
}

/* Text PostgreSQL would refuse (invalid UTF-8, U+0000) is made storable
 * instead of aborting the transaction; huge values are bounded. */
static void test_write_hostile_text(void **state)
{
    struct fx *f = *state;
    json_t *meta = json_object();
    json_object_set_new(meta, "s", json_stringn("a\0b", 3));
    json_object_set_new(meta, "u", json_string("caf\xc3\xa9 \xf0\x9f\x8e\x89"));
    struct audit_event ev = {
        .event_type = "t.hostile",
        .user_agent = "\xff\xfeMozilla \xc3\xa9",
        .failure_reason = "bad\x80reason",
        .metadata = meta,
    };
    struct db_conn *c = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(db_begin(c));
    assert_ok(audit_write(c, &ev));
    assert_ok(db_commit(c));
    db_release(c);
    json_decref(meta);
    struct db_res *r = fetch(f, "t.hostile");
    /* Not UTF-8 as a whole: every byte decoded as Latin-1. */
    assert_col(r, C_UA, "\xc3\xbf\xc3\xbeMozilla \xc3\x83\xc2\xa9");
    assert_col(r, C_FAIL, "bad\xc2\x80reason");
    assert_meta(r, "{\"s\":\"a\\ufffdb\",\"u\":\"caf\\u00e9 \\ud83c\\udf89\"}");
    db_res_free(r);

    /* User-Agent: kept whole up to AUDIT_USER_AGENT_MAX bytes, cut on a
     * code point boundary beyond. */
    size_t n = AUDIT_USER_AGENT_MAX + 100;
    char *ua = malloc(n + 1);
    memset(ua, 'u', n);
    memcpy(ua + AUDIT_USER_AGENT_MAX - 1, "\xc3\xa9", 2); /* straddles the cap */
    ua[n] = '\0';
    struct audit_event big = {.event_type = "t.bigua", .user_agent = ua};
    assert_ok(write_one(f, &big));
    r = fetch(f, "t.bigua");
    assert_int_equal(strlen(db_res_get(r, 0, C_UA)), AUDIT_USER_AGENT_MAX - 1);
    db_res_free(r);
    ua[AUDIT_USER_AGENT_MAX - 1] = 'u';
    ua[AUDIT_USER_AGENT_MAX] = '\0';
    big.event_type = "t.maxua";
    assert_ok(write_one(f, &big));
    r = fetch(f, "t.maxua");
    assert_string_equal(db_res_get(r, 0, C_UA), ua);
    db_res_free(r);
    free(ua);

    /* Huge metadata string: stored whole (no truncation in §9.3). */
    size_t m = 200000;
    char *s = malloc(m + 1);
    memset(s, 'x', m);
    s[m] = '\0';
    meta = json_object();
    json_object_set_new(meta, "blob", json_string(s));
    struct audit_event hm = {.event_type = "t.bigmeta", .metadata = meta};
    assert_ok(write_one(f, &hm));
    r = fetch(f, "t.bigmeta");
    json_t *got = J(db_res_get(r, 0, C_META));
    assert_int_equal(json_string_length(json_object_get(got, "blob")), m);
    json_decref(got);
    db_res_free(r);
    json_decref(meta);
    free(s);

    /* Over AUDIT_METADATA_MAX_BYTES: the row is kept, metadata NULL, and a
     * warning says why. */
    log_reset();
    m = AUDIT_METADATA_MAX_BYTES + 1;
    s = malloc(m + 1);
    memset(s, 'y', m);
    s[m] = '\0';
    meta = json_object();
    json_object_set_new(meta, "blob", json_string(s));
    hm.event_type = "t.hugemeta";
    hm.metadata = meta;
    assert_ok(write_one(f, &hm));
    r = fetch(f, "t.hugemeta");
    assert_col(r, C_META, NULL);
    db_res_free(r);
    json_decref(meta);
    free(s);
    json_t *line = log_find("audit_metadata_dropped");
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "event_type")), "t.hugemeta");
    json_decref(line);
}

static void test_write_invalid(void **state)
{
    struct fx *f = *state;
    char long_type[AUDIT_EVENT_TYPE_MAX + 2];
    memset(long_type, 'e', sizeof long_type - 1);
    long_type[sizeof long_type - 1] = '\0';
    json_t *arr = J("[1]");
    struct audit_event bad[] = {
        {.event_type = NULL},
        {.event_type = ""},
        {.event_type = "   "},
        {.event_type = long_type},
        {.event_type = "t.x", .target_type = long_type},
        {.event_type = "t.x", .metadata = arr},
    };
    struct db_conn *c = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_rc(audit_write(c, NULL), RC_INVALID);
    assert_rc(audit_write(NULL, &bad[0]), RC_INVALID);
    /* Rejected before any SQL: the caller's transaction lives on. */
    assert_ok(db_begin(c));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_rc(audit_write(c, &bad[i]), RC_INVALID);
    assert_true(db_in_tx(c));
    /* 128 code points is the limit, counted in code points (é = 2 bytes):
     * PostgreSQL's varchar(128) accepts it. */
    char type[2 * AUDIT_EVENT_TYPE_MAX + 1];
    for (int i = 0; i < AUDIT_EVENT_TYPE_MAX; i++)
        memcpy(type + 2 * i, "\xc3\xa9", 2);
    type[2 * AUDIT_EVENT_TYPE_MAX] = '\0';
    struct audit_event okev = {.event_type = type, .target_type = type, .success = true};
    assert_ok(audit_write(c, &okev));
    long_type[AUDIT_EVENT_TYPE_MAX] = '\0'; /* exactly 128 ASCII */
    okev.event_type = long_type;
    okev.target_type = NULL;
    assert_ok(audit_write(c, &okev));
    assert_ok(db_commit(c));
    db_release(c);
    json_decref(arr);
    assert_int_equal(count_rows(f->db, NULL), 2);
    assert_int_equal(count_rows(f->db, type), 1);
}

static void test_tx_rollback(void **state)
{
    struct fx *f = *state;
    struct audit_event ev = {.event_type = "session.created",
                             .actor_id = "0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11",
                             .success = true};
    struct db_conn *c = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(db_begin(c));
    assert_ok(audit_write(c, &ev));
    db_rollback(c);
    assert_int_equal(count_rows(f->db, NULL), 0);
    /* Released inside the unit: rolled back too. */
    assert_ok(db_begin(c));
    assert_ok(audit_write(c, &ev));
    db_release(c);
    assert_int_equal(count_rows(f->db, NULL), 0);
    /* Committed with the change. */
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(db_begin(c));
    assert_ok(audit_write(c, &ev));
    assert_ok(audit_write(c, &ev));
    assert_ok(db_commit(c));
    /* Outside a transaction the insert commits by itself. */
    assert_ok(audit_write(c, &ev));
    db_release(c);
    assert_int_equal(count_rows(f->db, "session.created"), 3);
}

static void assert_failed_line(const char *event_type, const char *actor, bool success,
                               const char *corr)
{
    json_t *l = log_find("audit_write_failed");
    if (!l) {
        char *all = log_text();
        fail_msg("no audit_write_failed line in: %s", all);
    }
    assert_string_equal(json_string_value(json_object_get(l, "level")), "error");
    if (event_type)
        assert_string_equal(json_string_value(json_object_get(l, "event_type")), event_type);
    else
        assert_true(json_is_null(json_object_get(l, "event_type")));
    if (actor)
        assert_string_equal(json_string_value(json_object_get(l, "actor_type")), actor);
    if (actor)
        assert_true(json_is_boolean(json_object_get(l, "success")) &&
                    json_is_true(json_object_get(l, "success")) == success);
    assert_string_equal(json_string_value(json_object_get(l, "correlation_id")), corr);
    const char *err = json_string_value(json_object_get(l, "error"));
    assert_non_null(err);
    assert_true(strlen(err) > 0);
    json_decref(l);
}

static void test_detached(void **state)
{
    struct fx *f = *state;
    struct audit_event ev = {.event_type = "user.login.failure",
                             .actor_type = AUDIT_ACTOR_USER,
                             .correlation_id = "req-9",
                             .success = false,
                             .failure_reason = "invalid_credentials"};
    log_reset();
    audit_write_detached(f->db, &ev);
    assert_int_equal(count_rows(f->db, "user.login.failure"), 1);
    assert_null(log_find("audit_write_failed"));

    /* Broken schema: the INSERT fails, is logged, nothing crashes. */
    script_ok(f->db, "ALTER TABLE audit_events RENAME TO audit_events_moved");
    log_reset();
    audit_write_detached(f->db, &ev);
    assert_failed_line("user.login.failure", "user", false, "req-9");
    script_ok(f->db, "ALTER TABLE audit_events_moved RENAME TO audit_events");
    assert_int_equal(count_rows(f->db, NULL), 1);

    /* No database handle, no event. */
    log_reset();
    audit_write_detached(NULL, &ev);
    assert_failed_line("user.login.failure", "user", false, "req-9");
    log_reset();
    audit_write_detached(f->db, NULL);
    assert_failed_line(NULL, NULL, false, "unknown");
    /* Invalid event: logged and dropped. */
    log_reset();
    struct audit_event bad = {.event_type = " ", .actor_type = AUDIT_ACTOR_ADMIN, .success = true};
    audit_write_detached(f->db, &bad);
    assert_failed_line(" ", "admin", true, "unknown");
}

/* ---- group-commit writer ------------------------------------------------ */

struct gc_arg {
    struct db *db;
    int id;
};

#define GC_THREADS 4
#define GC_PER_THREAD 150

static void *gc_thread(void *p)
{
    struct gc_arg *a = p;
    char corr[64];
    for (int i = 0; i < GC_PER_THREAD; i++) {
        snprintf(corr, sizeof corr, "gc-%d-%d", a->id, i);
        /* The event's strings live on this stack frame only: the writer must
         * have copied them before the call returns. */
        json_t *meta = json_pack("{s:i}", "i", i);
        struct audit_event e1 = {.event_type = "token.refreshed",
                                 .actor_type = AUDIT_ACTOR_USER,
                                 .correlation_id = corr,
                                 .success = true,
                                 .metadata = meta};
        struct audit_event e2 = e1;
        e2.event_type = "token.issued";
        const struct audit_event *evs[] = {&e1, &e2};
        if (i % 2)
            audit_write_detached_many(a->db, evs, 2);
        else {
            audit_write_detached(a->db, &e1);
            audit_write_detached(a->db, &e2);
        }
        memset(corr, 'x', sizeof corr - 1);
        json_decref(meta);
    }
    return NULL;
}

/* Many threads queue; flush makes every row visible; the rows are exactly
 * those written (no loss, no duplicate); stop with a backlog drains it. */
static void test_group_commit(void **state)
{
    struct fx *f = *state;
    assert_ok(audit_writer_start(f->db));
    assert_int_equal(audit_writer_start(f->db), RC_INVALID); /* one per process */
    pthread_t th[GC_THREADS];
    struct gc_arg args[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++) {
        args[i] = (struct gc_arg){f->db, i};
        assert_int_equal(pthread_create(&th[i], NULL, gc_thread, &args[i]), 0);
    }
    for (int i = 0; i < GC_THREADS; i++)
        pthread_join(th[i], NULL);
    audit_flush(f->db);
    assert_int_equal(count_rows(f->db, "token.refreshed"), GC_THREADS * GC_PER_THREAD);
    assert_int_equal(count_rows(f->db, "token.issued"), GC_THREADS * GC_PER_THREAD);

    /* A failing batch: each request's rows are retried alone, the failures
     * are logged, the writer keeps going. */
    script_ok(f->db, "ALTER TABLE audit_events RENAME TO audit_events_moved");
    log_reset();
    struct audit_event ev = {.event_type = "user.login.failure",
                             .actor_type = AUDIT_ACTOR_USER,
                             .correlation_id = "req-gc",
                             .success = false};
    audit_write_detached(f->db, &ev);
    audit_flush(f->db);
    assert_failed_line("user.login.failure", "user", false, "req-gc");
    script_ok(f->db, "ALTER TABLE audit_events_moved RENAME TO audit_events");

    /* Queued rows are committed by stop. */
    for (int i = 0; i < 50; i++)
        audit_write_detached(f->db, &ev);
    audit_writer_stop();
    assert_int_equal(count_rows(f->db, "user.login.failure"), 50);
    /* Without a writer the write is synchronous again. */
    audit_write_detached(f->db, &ev);
    assert_int_equal(count_rows(f->db, "user.login.failure"), 51);
    audit_flush(f->db); /* no-op */
}

/* SQLite: the writer is busy (held by this thread) → the checkout times
 * out, the event is logged and dropped. */
static void test_detached_no_connection_sqlite(void **state)
{
    struct fx *f = *state;
    struct db_conn *held = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &held));
    struct audit_event ev = {.event_type = "webhook.failed",
                             .actor_type = AUDIT_ACTOR_SYSTEM,
                             .ip_address = "127.0.0.1",
                             .failure_reason = "delivery_abandoned"};
    log_reset();
    audit_write_detached(f->db, &ev);
    assert_failed_line("webhook.failed", "system", false, "unknown");
    db_release(held);
    assert_int_equal(count_rows(f->db, NULL), 0);
}

/* SQLite: while the writer cannot commit (this thread holds the one write
 * slot) the queue fills; rows past AUDIT_QUEUE_MAX are dropped and counted
 * in one summary line, not one line each; the queued ones land later. */
static void test_group_commit_overload_sqlite(void **state)
{
    struct fx *f = *state;
    struct db_conn *held = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &held));
    assert_ok(audit_writer_start(f->db));
    struct audit_event ev = {
        .event_type = "api_key.used", .actor_type = AUDIT_ACTOR_SERVICE, .success = true};
    log_reset();
    const int n = 2 * AUDIT_QUEUE_MAX;
    for (int i = 0; i < n; i++)
        audit_write_detached(f->db, &ev);
    db_release(held);
    audit_flush(f->db);
    audit_writer_stop();
    assert_null(log_find("audit_write_failed"));
    json_t *l = log_find("audit_rows_dropped");
    assert_non_null(l);
    /* The writer took a first batch off the queue before it blocked; of
     * the rest, what did not fit in AUDIT_QUEUE_MAX was refused. */
    json_int_t dropped = json_integer_value(json_object_get(l, "count"));
    assert_true(dropped >= 1 && dropped <= n - AUDIT_QUEUE_MAX);
    json_decref(l);
    assert_int_equal(count_rows(f->db, "api_key.used"), n - dropped);
}

/* PostgreSQL down: logged and dropped; works again after the restart. */
static void test_detached_server_down_pg(void **state)
{
    struct fx *f = *state;
    if (!g_pg_own)
        skip();
    struct audit_event ev = {
        .event_type = "webhook.delivered", .actor_type = AUDIT_ACTOR_SYSTEM, .success = true};
    pg_stop();
    log_reset();
    audit_write_detached(f->db, &ev);
    assert_failed_line("webhook.delivered", "system", true, "unknown");
    assert_true(pg_start());
    audit_write_detached(f->db, &ev);
    assert_int_equal(count_rows(f->db, "webhook.delivered"), 1);
}

/* ---- history ----------------------------------------------------------- */

#define USER_U "6f1c2a4e-8b3d-4f5a-9c7e-1d2b3a4c5e6f"
#define USER_V "7a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d"
#define ADMIN_A "8b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e"

struct hrow {
    char id[UUID_STR_LEN + 1];
    int64_t at;
    bool included;
};

static void insert_row(struct db_conn *c, struct hrow *h, const char *type, const char *actor,
                       const char *target, int64_t at, bool included)
{
    uuid_v4(h->id);
    h->at = at;
    h->included = included;
    struct audit_row row = {.id = h->id,
                            .event_type = type,
                            .actor_id = actor,
                            .actor_type = "user",
                            .target_id = target,
                            .target_type = target ? "user" : NULL,
                            .ip_address = "10.0.0.1",
                            .user_agent = "UA",
                            .correlation_id = "0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11",
                            .success = true,
                            .metadata_json = "{\"provider\":\"password\"}",
                            .created_at_us = at};
    assert_ok(audit_store_insert(c, &row));
}

static int hrow_cmp(const void *a, const void *b)
{
    const struct hrow *x = a, *y = b;
    if (x->at != y->at)
        return x->at > y->at ? -1 : 1;
    return -strcmp(x->id, y->id);
}

/* Fills rows; returns how many were made. Included rows sorted first in
 * history order. */
static int seed_history(struct fx *f, struct hrow *rows)
{
    int n = 0;
    int64_t t0 = us_of("2026-04-16T09:00:00Z");
    struct db_conn *c = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(db_begin(c));
    /* Every history type once, U as actor, distinct times. */
    for (int i = 0; audit_history_event_types[i]; i++)
        insert_row(c, &rows[n++], audit_history_event_types[i], USER_U, NULL,
                   t0 + i * 1000000 + 120000, true);
    /* U as target only (admin actor). */
    insert_row(c, &rows[n++], "session.revoked", ADMIN_A, USER_U, t0 + 100000000, true);
    /* U as both. */
    insert_row(c, &rows[n++], "otp.admin_toggled", USER_U, USER_U, t0 + 100000001, true);
    /* Ties: four rows in one microsecond. */
    static const char *const tie[] = {"user.logout", "otp.failed", "password.reset.requested",
                                      "user.password.reset.completed"};
    for (int i = 0; i < 4; i++)
        insert_row(c, &rows[n++], tie[i], USER_U, NULL, t0 + 50000000, true);
    /* Excluded: other types, other users, no actor. */
    insert_row(c, &rows[n++], "token.refreshed", USER_U, NULL, t0 + 60000000, false);
    insert_row(c, &rows[n++], "user.created", USER_U, USER_U, t0 + 60000001, false);
    insert_row(c, &rows[n++], "user.login.success", USER_V, NULL, t0 + 60000002, false);
    insert_row(c, &rows[n++], "session.revoked", ADMIN_A, USER_V, t0 + 60000003, false);
    insert_row(c, &rows[n++], "user.login.failure", NULL, NULL, t0 + 60000004, false);
    insert_row(c, &rows[n++], "user.login.successful", USER_U, NULL, t0 + 60000005, false);
    assert_ok(db_commit(c));
    db_release(c);
    /* Included rows first, in history order. */
    struct hrow tmp[64];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].included)
            tmp[k++] = rows[i];
    int inc = k;
    qsort(tmp, (size_t)inc, sizeof *tmp, hrow_cmp);
    for (int i = 0; i < n; i++)
        if (!rows[i].included)
            tmp[k++] = rows[i];
    memcpy(rows, tmp, (size_t)n * sizeof *rows);
    return inc;
}

static void assert_keys(const json_t *item, const char *const *keys)
{
    const char *k;
    json_t *v;
    int i = 0;
    json_object_foreach((json_t *)item, k, v)
    {
        (void)v;
        if (!keys[i] || strcmp(keys[i], k) != 0)
            fail_msg("key %d: got %s want %s", i, k, keys[i] ? keys[i] : "(end)");
        i++;
    }
    assert_null(keys[i]);
}

static void test_history_paging(void **state)
{
    struct fx *f = *state;
    struct hrow rows[64];
    int inc = seed_history(f, rows);
    assert_int_equal(inc, 15 + 2 + 4);

    /* One page with everything. */
    struct audit_page p;
    assert_ok(audit_history(f->db, USER_U, NULL, AUDIT_PAGE_MAX, AUDIT_ITEM_HISTORY, &p));
    assert_int_equal(json_array_size(p.items), inc);
    assert_false(p.has_more);
    assert_null(p.next_cursor);
    for (int i = 0; i < inc; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(p.items, i), "id")),
                            rows[i].id);
    /* Item shape (api-core §9.4): fields and order. */
    static const char *const hkeys[] = {"id",         "event_type", "created_at",     "ip_address",
                                        "user_agent", "success",    "failure_reason", "metadata",
                                        NULL};
    json_t *it = json_array_get(p.items, inc - 1); /* oldest: user.login.success */
    assert_keys(it, hkeys);
    assert_string_equal(json_string_value(json_object_get(it, "event_type")), "user.login.success");
    assert_string_equal(json_string_value(json_object_get(it, "created_at")),
                        "2026-04-16T09:00:00.120000Z");
    assert_string_equal(json_string_value(json_object_get(it, "ip_address")), "10.0.0.1");
    assert_string_equal(json_string_value(json_object_get(it, "user_agent")), "UA");
    assert_true(json_is_true(json_object_get(it, "success")));
    assert_true(json_is_null(json_object_get(it, "failure_reason")));
    assert_json_eq(json_object_get(it, "metadata"), "{\"provider\":\"password\"}");
    audit_page_free(&p);

    /* Pages of 4, uppercase user id: the same sequence, no repeats, no gaps
     * (ties included). */
    char *cursor = NULL;
    int seen = 0, pages = 0;
    do {
        assert_ok(audit_history(f->db, "6F1C2A4E8B3D4F5A9C7E1D2B3A4C5E6F", cursor, 4,
                                AUDIT_ITEM_HISTORY, &p));
        free(cursor);
        cursor = NULL;
        pages++;
        for (size_t i = 0; i < json_array_size(p.items); i++, seen++) {
            const char *id = json_string_value(json_object_get(json_array_get(p.items, i), "id"));
            assert_true(seen < inc);
            assert_string_equal(id, rows[seen].id);
        }
        assert_true(p.has_more == (p.next_cursor != NULL));
        if (p.has_more) {
            /* The cursor names the page's last item. */
            struct audit_keyset k;
            assert_ok(audit_cursor_decode(p.next_cursor, &k));
            assert_string_equal(k.id, rows[seen - 1].id);
            assert_true(k.created_at_us == rows[seen - 1].at);
            cursor = strdup(p.next_cursor);
        }
        audit_page_free(&p);
    } while (cursor);
    assert_int_equal(seen, inc);
    assert_int_equal(pages, (inc + 3) / 4);

    /* A page that ends exactly at the last row has no more. */
    assert_ok(audit_history(f->db, USER_U, NULL, inc, AUDIT_ITEM_FULL, &p));
    assert_int_equal(json_array_size(p.items), inc);
    assert_false(p.has_more);
    static const char *const fkeys[] = {
        "id",         "event_type", "actor_id",       "actor_type", "target_id",      "target_type",
        "ip_address", "user_agent", "correlation_id", "success",    "failure_reason", "metadata",
        "created_at", NULL};
    assert_keys(json_array_get(p.items, 0), fkeys);
    it = json_array_get(p.items, 0); /* newest: otp.admin_toggled, U both */
    assert_string_equal(json_string_value(json_object_get(it, "event_type")), "otp.admin_toggled");
    assert_string_equal(json_string_value(json_object_get(it, "actor_id")), USER_U);
    assert_string_equal(json_string_value(json_object_get(it, "target_id")), USER_U);
    assert_string_equal(json_string_value(json_object_get(it, "target_type")), "user");
    assert_string_equal(json_string_value(json_object_get(it, "correlation_id")),
                        "0e9ad4c4-3a0b-4e0e-9b53-0b1d9f0c6c11");
    assert_string_equal(json_string_value(json_object_get(it, "created_at")),
                        "2026-04-16T09:01:40.000001Z");
    audit_page_free(&p);

    /* A cursor from between rows (not a row of ours) pages from there. */
    char *mid = audit_cursor_encode(rows[5].at, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    assert_ok(audit_history(f->db, USER_U, mid, 200, AUDIT_ITEM_HISTORY, &p));
    free(mid);
    int first = 5;
    while (first > 0 && rows[first - 1].at == rows[5].at)
        first--;
    assert_int_equal(json_array_size(p.items), inc - first);
    assert_string_equal(json_string_value(json_object_get(json_array_get(p.items, 0), "id")),
                        rows[first].id);
    audit_page_free(&p);

    /* The admin is the actor of two session.revoked rows; "" cursor =
     * first page. */
    assert_ok(audit_history(f->db, ADMIN_A, "", 50, AUDIT_ITEM_HISTORY, &p));
    assert_int_equal(json_array_size(p.items), 2);
    assert_false(p.has_more);
    audit_page_free(&p);
    /* Someone with no history. */
    assert_ok(audit_history(f->db, "9c4d5e6f-7a8b-4c3d-8e4f-5a6b7c8d9e0f", NULL, 50,
                            AUDIT_ITEM_HISTORY, &p));
    assert_int_equal(json_array_size(p.items), 0);
    assert_false(p.has_more);
    assert_null(p.next_cursor);
    audit_page_free(&p);
    audit_page_free(NULL);

    /* Bad input → RC_INVALID (the handler's 422), with an empty page. */
    assert_rc(audit_history(f->db, USER_U, "garbage!", 50, AUDIT_ITEM_HISTORY, &p), RC_INVALID);
    assert_null(p.items);
    assert_rc(audit_history(f->db, USER_U, "eyJhIjoxfQ==", 50, AUDIT_ITEM_HISTORY, &p), RC_INVALID);
    assert_rc(audit_history(f->db, USER_U, NULL, 0, AUDIT_ITEM_HISTORY, &p), RC_INVALID);
    assert_rc(audit_history(f->db, USER_U, NULL, AUDIT_PAGE_MAX + 1, AUDIT_ITEM_HISTORY, &p),
              RC_INVALID);
    assert_rc(audit_history(f->db, "not-a-user", NULL, 50, AUDIT_ITEM_HISTORY, &p), RC_INVALID);
    assert_rc(audit_history(f->db, NULL, NULL, 50, AUDIT_ITEM_HISTORY, &p), RC_INVALID);
    assert_rc(audit_history(NULL, USER_U, NULL, 50, AUDIT_ITEM_HISTORY, &p), RC_INVALID);
}

/* Rows written through audit_write show up in the history with their
 * sanitised metadata and null metadata for empty objects. */
static void test_history_from_writes(void **state)
{
    struct fx *f = *state;
    json_t *meta = J("{\"reason\":\"self_targeted\",\"session_id\":\"s1\",\"token\":\"x\"}");
    struct audit_event ev = {.event_type = "session.revoked",
                             .actor_id = USER_U,
                             .target_id = USER_U,
                             .target_type = "user",
                             .ip_address = "::1",
                             .user_agent = "curl/8",
                             .correlation_id = "c-1",
                             .success = true,
                             .metadata = meta};
    assert_ok(write_one(f, &ev));
    json_decref(meta);
    struct audit_event fail = {
        .event_type = "user.login.failure", .actor_id = USER_U, .failure_reason = "account_locked"};
    assert_ok(write_one(f, &fail));
    struct audit_page p;
    assert_ok(audit_history(f->db, USER_U, NULL, 10, AUDIT_ITEM_HISTORY, &p));
    assert_int_equal(json_array_size(p.items), 2);
    json_t *a = NULL, *b = NULL;
    for (size_t i = 0; i < 2; i++) {
        json_t *it = json_array_get(p.items, i);
        if (strcmp(json_string_value(json_object_get(it, "event_type")), "session.revoked") == 0)
            a = it;
        else
            b = it;
    }
    assert_non_null(a);
    assert_non_null(b);
    assert_json_eq(json_object_get(a, "metadata"),
                   "{\"reason\":\"self_targeted\",\"session_id\":\"s1\",\"token\":\"" R "\"}");
    assert_string_equal(json_string_value(json_object_get(a, "ip_address")), "::1");
    assert_true(json_is_null(json_object_get(b, "metadata")));
    assert_true(json_is_false(json_object_get(b, "success")));
    assert_string_equal(json_string_value(json_object_get(b, "failure_reason")), "account_locked");
    assert_true(json_is_null(json_object_get(b, "ip_address")));
    assert_true(json_is_null(json_object_get(b, "user_agent")));
    audit_page_free(&p);
}

/* ---- main -------------------------------------------------------------- */

#define SHARED(setup)                                                                              \
    cmocka_unit_test_setup_teardown(test_write_fields, setup, fx_teardown),                        \
        cmocka_unit_test_setup_teardown(test_write_nulls, setup, fx_teardown),                     \
        cmocka_unit_test_setup_teardown(test_write_hostile_text, setup, fx_teardown),              \
        cmocka_unit_test_setup_teardown(test_write_invalid, setup, fx_teardown),                   \
        cmocka_unit_test_setup_teardown(test_tx_rollback, setup, fx_teardown),                     \
        cmocka_unit_test_setup_teardown(test_detached, setup, fx_teardown),                        \
        cmocka_unit_test_setup_teardown(test_group_commit, setup, fx_teardown),                    \
        cmocka_unit_test_setup_teardown(test_history_paging, setup, fx_teardown),                  \
        cmocka_unit_test_setup_teardown(test_history_from_writes, setup, fx_teardown)

int main(void)
{
    log_init(LOG_WARNING, "test", "test");
    signal(SIGPIPE, SIG_IGN);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/authd-test-audit-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup_all);
    char log_path[300];
    snprintf(log_path, sizeof log_path, "%s/log.jsonl", g_tmp);
    g_log_fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (g_log_fd < 0) {
        perror("open log");
        return 1;
    }
    log_set_fd(g_log_fd);

    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_sanitise_vectors),
        cmocka_unit_test(test_sanitise_array_elements),
        cmocka_unit_test(test_sanitise_huge_and_nul),
        cmocka_unit_test(test_sanitise_depth),
        cmocka_unit_test(test_correlation),
        cmocka_unit_test(test_cursor_codec),
    };
    const struct CMUnitTest sqlite[] = {
        SHARED(sqlite_setup),
        cmocka_unit_test_setup_teardown(test_detached_no_connection_sqlite, sqlite_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_overload_sqlite, sqlite_setup_patient,
                                        fx_teardown),
    };
    const struct CMUnitTest pg[] = {
        SHARED(pg_setup),
        cmocka_unit_test_setup_teardown(test_detached_server_down_pg, pg_setup, fx_teardown),
    };
    int failed = cmocka_run_group_tests_name("audit_pure", pure, NULL, NULL);
    failed += cmocka_run_group_tests_name("audit_sqlite", sqlite, NULL, NULL);
    const char *env = getenv("AUTHD_TEST_PG_URL");
    bool have_pg;
    if (env && *env) {
        snprintf(g_pg_url, sizeof g_pg_url, "%s", env);
        have_pg = true;
    } else {
        have_pg = pg_cluster_up();
        if (!have_pg)
            fprintf(stderr, "SKIP audit_postgres: no AUTHD_TEST_PG_URL and no usable PostgreSQL "
                            "installation (/usr/lib/postgresql/*/bin)\n");
    }
    if (have_pg)
        failed += cmocka_run_group_tests_name("audit_postgres", pg, NULL, NULL);
    cleanup_all();
    return failed ? 1 : 0;
}
