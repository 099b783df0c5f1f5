/* Unit tests for email: templates (api-flows §7.2), the RFC 5322/MIME
 * builder (shape, encodings, header-injection refusal), the retry
 * schedule, the outbox life cycle through the mailer on a real SQLite file
 * with a fault-injecting transport (enqueue in the caller's transaction,
 * enc2 bodies, retries, abandonment, expiry, leases, wiping, cleanup, no
 * secrets in logs), the file transport, and the SMTP transport against the
 * capture server of the API suite (tests/api/smtp_capture.py; skipped when
 * .venv is missing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "crypto/enc.h"
#include "crypto/envelope.h"
#include "db/db.h"
#include "mail/message.h"
#include "mail/templates.h"
#include "mail/transport.h"
#include "store/migrate.h"
#include "store/outbox.h"
#include "svc/mailer.h"
#include "svc/secrets.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#define NO_DOTENV "/nonexistent-authd-test-dir/.env"
#define SEC (1000000LL)
#define LINK "https://auth.example.com/base/auth/verify-email?token=eyJhbGciOi.eyJzdWIi.c2ln"
#define TOKEN "eyJhbGciOi.eyJzdWIi.c2ln-TOKEN-SECRET"
#define TO "jane.doe+tag@example.com"
#define PASSPHRASE "unit-test-signing-passphrase"

static char g_tmp[256];
static int g_seq;

#define assert_ok(x) assert_int_equal((x), RC_OK)

/* ------------------------------------------------------------ templates */

static void test_kind_names(void **st)
{
    (void)st;
    const char *names[] = {"verify_email", "password_reset", "password_reset_confirmation",
                           "login_otp", "action_otp"};
    for (int k = 0; k < MAIL_KIND_COUNT; k++) {
        enum mail_kind back;
        assert_string_equal(mail_kind_name((enum mail_kind)k), names[k]);
        assert_true(mail_kind_parse(names[k], &back));
        assert_int_equal(back, k);
    }
    enum mail_kind x;
    assert_null(mail_kind_name(MAIL_KIND_COUNT));
    assert_false(mail_kind_parse("VERIFY_EMAIL", &x));
    assert_false(mail_kind_parse("", &x));
    assert_false(mail_kind_parse(NULL, &x));
}

static void test_render_links(void **st)
{
    (void)st;
    struct mail_rendered r;
    const char *link = "https://a.example/auth/verify-email?token=x.y.z&a=<b>\"'";
    assert_ok(mail_render(MAIL_VERIFY_EMAIL, &(struct mail_vars){.link = link}, &r));
    assert_string_equal(r.subject, "Verify your email");
    /* text: one sentence, ": ", the link verbatim */
    char want[512];
    snprintf(want, sizeof want, "Please open this link to verify your email: %s\n", link);
    assert_string_equal(r.text, want);
    assert_non_null(r.html);
    const char *esc = "https://a.example/auth/verify-email?token=x.y.z&amp;a=&lt;b&gt;&quot;&#x27;";
    snprintf(want, sizeof want,
             "<p>Please open this link to verify your email:</p>\n<p><a href=\"%s\">%s</a></p>\n",
             esc, esc);
    assert_string_equal(r.html, want);
    mail_rendered_free(&r);
    assert_null(r.text);

    assert_ok(mail_render(MAIL_PASSWORD_RESET, &(struct mail_vars){.link = LINK}, &r));
    assert_string_equal(r.subject, "Reset your password");
    assert_string_equal(r.text, "Please open this link to reset your password: " LINK "\n");
    assert_non_null(strstr(r.html, "<a href=\"" LINK "\">" LINK "</a>"));
    mail_rendered_free(&r);

    assert_ok(mail_render(MAIL_PASSWORD_RESET_CONFIRMATION, NULL, &r));
    assert_string_equal(r.subject, "Your password has been reset");
    assert_non_null(strstr(r.text, "has been reset"));
    assert_non_null(strstr(r.text, "contact support"));
    assert_null(r.html);
    mail_rendered_free(&r);
    mail_rendered_free(NULL);
}

static void test_render_codes(void **st)
{
    (void)st;
    struct mail_rendered r;
    assert_ok(
        mail_render(MAIL_LOGIN_OTP, &(struct mail_vars){.code = "012345", .ttl_seconds = 600}, &r));
    assert_string_equal(r.subject, "Your login verification code");
    assert_string_equal(
        r.text, "Your login verification code is: 012345\nThis code expires in 10 minutes.\n");
    assert_null(r.html);
    mail_rendered_free(&r);

    /* whole minutes, rounded down */
    struct {
        int ttl;
        const char *want;
    } ttl[] = {{119, "in 1 minute."}, {59, "in 0 minutes."}, {3599, "in 59 minutes."}};
    for (size_t i = 0; i < sizeof ttl / sizeof ttl[0]; i++) {
        assert_ok(mail_render(MAIL_LOGIN_OTP,
                              &(struct mail_vars){.code = "1234", .ttl_seconds = ttl[i].ttl}, &r));
        assert_non_null(strstr(r.text, ttl[i].want));
        mail_rendered_free(&r);
    }

    assert_ok(mail_render(
        MAIL_ACTION_OTP,
        &(struct mail_vars){.code = "987654", .ttl_seconds = 300, .action = "erase_account"}, &r));
    assert_string_equal(r.subject, "Verification code for erase_account");
    assert_string_equal(r.text,
                        "Your verification code is: 987654\nThis code expires in 5 minutes.\n");
    assert_null(r.html);
    mail_rendered_free(&r);
}

static void test_render_refuses(void **st)
{
    (void)st;
    struct mail_rendered r;
    struct {
        enum mail_kind k;
        struct mail_vars v;
    } bad[] = {
        {MAIL_VERIFY_EMAIL, {0}},
        {MAIL_VERIFY_EMAIL, {.link = ""}},
        {MAIL_VERIFY_EMAIL, {.link = "https://x/\r\nBcc: evil@x"}},
        {MAIL_VERIFY_EMAIL, {.link = "https://x/ y"}},
        {MAIL_PASSWORD_RESET, {.link = "https://x/\xc3\xa9"}},
        {MAIL_LOGIN_OTP, {.code = NULL}},
        {MAIL_LOGIN_OTP, {.code = ""}},
        {MAIL_LOGIN_OTP, {.code = "12a456"}},
        {MAIL_LOGIN_OTP, {.code = "123456", .ttl_seconds = -1}},
        {MAIL_ACTION_OTP, {.code = "123456"}},
        {MAIL_ACTION_OTP, {.code = "123456", .action = "erase account"}},
        {MAIL_ACTION_OTP, {.code = "123456", .action = "x\r\nBcc: evil@x"}},
        {MAIL_ACTION_OTP, {.code = "123456", .action = "Erase"}},
        {MAIL_KIND_COUNT, {.link = LINK}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mail_render(bad[i].k, &bad[i].v, &r), RC_INVALID);
        assert_null(r.subject);
        assert_null(r.text);
    }
}

static void test_link_new(void **st)
{
    (void)st;
    char *l = mail_link_new("http://localhost:8000", MAIL_VERIFY_EMAIL, "t.o.k");
    assert_string_equal(l, "http://localhost:8000/auth/verify-email?token=t.o.k");
    free(l);
    l = mail_link_new("https://x.example/prefix//", MAIL_PASSWORD_RESET, "abc_-");
    assert_string_equal(l, "https://x.example/prefix/auth/password/reset?token=abc_-");
    free(l);
    assert_null(mail_link_new("https://x", MAIL_LOGIN_OTP, "t"));
    assert_null(mail_link_new("https://x", MAIL_VERIFY_EMAIL, NULL));
    assert_true(mail_kind_has_link(MAIL_VERIFY_EMAIL));
    assert_false(mail_kind_has_link(MAIL_ACTION_OTP));
}

/* --------------------------------------------------------------- message */

static void test_addr_and_header_validation(void **st)
{
    (void)st;
    const char *good[] = {"a@b", "jane.doe+tag@example.com", "x_y-z@sub.example.co.uk",
                          "\xc3\xa9l\xc3\xa8"
                          "ve@example.fr"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(mail_addr_valid(good[i]));
    char longaddr[400];
    memset(longaddr, 'a', sizeof longaddr - 1);
    longaddr[sizeof longaddr - 1] = '\0';
    longaddr[10] = '@';
    const char *bad[] = {NULL,
                         "",
                         "ab",
                         "a@b\r\nBcc: evil@example.com",
                         "a@b\nBcc: evil@example.com",
                         "a@b\r",
                         "<a@b>",
                         "Jane <a@b>",
                         "a b@c",
                         "a@b,c@d",
                         "a@b;c",
                         "\"a\"@b",
                         "@b",
                         "a@",
                         "a@@b",
                         "a@b@c",
                         "a\t@b",
                         "a\x7f@b",
                         "a\xff@b",
                         longaddr};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(mail_addr_valid(bad[i]));

    assert_true(mail_header_text_valid("Verify your email"));
    assert_true(mail_header_text_valid("V\xc3\xa9rifiez"));
    assert_false(mail_header_text_valid("Hi\r\nBcc: evil@example.com"));
    assert_false(mail_header_text_valid("Hi\nX: y"));
    assert_false(mail_header_text_valid("Hi\rX"));
    assert_false(mail_header_text_valid("tab\there"));
    assert_false(mail_header_text_valid("\xc3("));
    assert_false(mail_header_text_valid(NULL));
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_false(mail_header_text_valid(big));
}

static void test_date(void **st)
{
    (void)st;
    char d[40];
    mail_format_date(1776330000LL * SEC + 123456, d); /* 2026-04-16T09:00:00Z */
    assert_string_equal(d, "Thu, 16 Apr 2026 09:00:00 +0000");
    mail_format_date(0, d);
    assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 +0000");
}

/* Every line ends in CRLF and none is longer than max (without CRLF). */
static void assert_crlf_lines(const char *s, size_t max)
{
    size_t line = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '\n') {
            assert_true(p > s && p[-1] == '\r');
            line = 0;
            continue;
        }
        if (*p == '\r') {
            assert_int_equal(p[1], '\n');
            continue;
        }
        line++;
        assert_true(line <= max);
    }
    assert_int_equal(line, 0); /* ends with CRLF */
}

static const char *ID = "0b0e5a7e-3c1d-4f4e-9a59-2f1e7c9d8a01";

static char *build(const struct mail_msg *m, rc_t want)
{
    struct buf b;
    buf_init(&b, MAIL_MESSAGE_MAX);
    assert_int_equal(mail_message_build(m, &b), want);
    return buf_take(&b);
}

static void test_message_single_part(void **st)
{
    (void)st;
    struct mail_msg m = {.id = ID,
                         .from = "auth@localhost",
                         .to = TO,
                         .subject = "Your login verification code",
                         .text = "Your login verification code is: 123456\nbye",
                         .date_us = 1776330000LL * SEC};
    char *s = build(&m, RC_OK);
    const char *want = "Date: Thu, 16 Apr 2026 09:00:00 +0000\r\n"
                       "Message-ID: <0b0e5a7e-3c1d-4f4e-9a59-2f1e7c9d8a01@localhost>\r\n"
                       "From: auth@localhost\r\n"
                       "To: " TO "\r\n"
                       "Subject: Your login verification code\r\n"
                       "MIME-Version: 1.0\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Content-Transfer-Encoding: 7bit\r\n"
                       "\r\n"
                       "Your login verification code is: 123456\r\n"
                       "bye\r\n";
    assert_string_equal(s, want);
    free(s);

    m.from_name = "Auth Service";
    s = build(&m, RC_OK);
    assert_non_null(strstr(s, "\r\nFrom: \"Auth Service\" <auth@localhost>\r\n"));
    free(s);
    m.from_name = "S\xc3\xa9"
                  "curit\xc3\xa9";
    s = build(&m, RC_OK);
    assert_non_null(strstr(s, "\r\nFrom: =?UTF-8?B?U8OpY3VyaXTDqQ==?= <auth@localhost>\r\n"));
    free(s);
}

static void test_message_multipart(void **st)
{
    (void)st;
    struct mail_msg m = {.id = ID,
                         .from = "no-reply@auth.example.com",
                         .to = TO,
                         .subject = "Verify your email",
                         .text = "Please open this link to verify your email: " LINK "\n",
                         .html = "<p>Please open this link to verify your email:</p>\n<p><a "
                                 "href=\"" LINK "\">" LINK "</a></p>\n",
                         .date_us = time_now_us()};
    char *s = build(&m, RC_OK);
    assert_crlf_lines(s, 998);
    assert_non_null(strstr(s, "Message-ID: <"
                              "0b0e5a7e-3c1d-4f4e-9a59-2f1e7c9d8a01"
                              "@auth.example.com>\r\n"));
    const char *ct = strstr(s, "Content-Type: multipart/alternative; boundary=\"");
    assert_non_null(ct);
    char boundary[64];
    const char *q = ct + strlen("Content-Type: multipart/alternative; boundary=\"");
    const char *qe = strchr(q, '"');
    assert_true(qe && qe - q < (long)sizeof boundary);
    snprintf(boundary, sizeof boundary, "%.*s", (int)(qe - q), q);
    char delim[80], close[80];
    snprintf(delim, sizeof delim, "\r\n--%s\r\n", boundary);
    snprintf(close, sizeof close, "\r\n--%s--\r\n", boundary);
    /* two parts, in order text then html, and the closing delimiter last */
    const char *p1 = strstr(s, delim);
    assert_non_null(p1);
    assert_true(strncmp(p1 + strlen(delim), "Content-Type: text/plain; charset=utf-8\r\n", 41) ==
                0);
    const char *p2 = strstr(p1 + 1, delim);
    assert_non_null(p2);
    assert_true(strncmp(p2 + strlen(delim), "Content-Type: text/html; charset=utf-8\r\n", 40) == 0);
    assert_null(strstr(p2 + 1, delim));
    const char *end = strstr(s, close);
    assert_non_null(end);
    assert_int_equal(end[strlen(close)], '\0');
    /* the link is verbatim in the raw text part (7bit) */
    assert_non_null(strstr(p1, "verify your email: " LINK "\r\n"));
    /* the header block precedes the first blank line and has no stray headers */
    const char *blank = strstr(s, "\r\n\r\n");
    assert_true(blank && blank < p1);
    free(s);
}

static void test_message_refuses_injection(void **st)
{
    (void)st;
    struct mail_msg base = {.id = ID,
                            .from = "auth@localhost",
                            .to = TO,
                            .subject = "Verify your email",
                            .text = "x",
                            .date_us = 0};
    struct mail_msg m = base;
    m.to = "victim@example.com\r\nBcc: evil@example.com";
    free(build(&m, RC_INVALID));
    m = base;
    m.from = "auth@localhost\r\nX-Evil: 1";
    free(build(&m, RC_INVALID));
    m = base;
    m.subject = "Hello\r\nBcc: evil@example.com";
    free(build(&m, RC_INVALID));
    m = base;
    m.subject = "Hello\nBcc: evil@example.com";
    free(build(&m, RC_INVALID));
    m = base;
    m.from_name = "Evil\r\nBcc: x@y";
    free(build(&m, RC_INVALID));
    m = base;
    m.id = "../../etc/passwd";
    free(build(&m, RC_INVALID));
    m = base;
    m.id = "0B0E5A7E-3C1D-4F4E-9A59-2F1E7C9D8A01"; /* not canonical */
    free(build(&m, RC_INVALID));
    m = base;
    m.text = "bad utf-8 \xff";
    free(build(&m, RC_INVALID));
    m = base;
    m.text = NULL;
    free(build(&m, RC_INVALID));
    /* a body line that looks like a header stays in the body */
    m = base;
    m.text = "line\r\nBcc: evil@example.com\n";
    char *s = build(&m, RC_OK);
    const char *blank = strstr(s, "\r\n\r\n");
    assert_true(strstr(s, "Bcc:") > blank);
    free(s);
}

static void test_encoded_subject(void **st)
{
    (void)st;
    struct buf b;
    buf_init(&b, 4096);
    mail_encode_header_word(&b, "plain ascii", 9);
    assert_string_equal(b.data, "plain ascii");
    buf_reset(&b);
    /* "=?" in ASCII text would read as an encoded word: encode it */
    mail_encode_header_word(&b, "a =?x?= b", 9);
    assert_true(strncmp(b.data, "=?UTF-8?B?", 10) == 0);
    buf_reset(&b);
    mail_encode_header_word(&b, "V\xc3\xa9rifiez votre e-mail", 9);
    assert_string_equal(b.data, "=?UTF-8?B?VsOpcmlmaWV6IHZvdHJlIGUtbWFpbA==?=");
    buf_reset(&b);
    /* long: several words, each <= 75 chars, folded, characters never split */
    char subj[256];
    size_t sn = 0;
    for (int i = 0; i < 40; i++, sn += 2)
        memcpy(subj + sn, "\xc3\xa9", 2);
    memcpy(subj + sn, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 10); /* with the NUL */
    mail_encode_header_word(&b, subj, 9);
    int words = 0;
    for (char *line = b.data; line;) {
        char *nl = strstr(line, "\r\n ");
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        assert_true(len <= 75);
        assert_true(strncmp(line, "=?UTF-8?B?", 10) == 0);
        assert_true(strncmp(line + len - 2, "?=", 2) == 0);
        /* each word decodes to whole UTF-8 characters */
        char b64[128];
        snprintf(b64, sizeof b64, "%.*s", (int)(len - 12), line + 10);
        unsigned char raw[128];
        size_t rawn = 0;
        assert_ok(crypto_b64_decode(CRYPTO_B64_STD, b64, strlen(b64), raw, sizeof raw, &rawn));
        assert_true((raw[0] & 0xC0) != 0x80);
        words++;
        line = nl ? nl + 3 : NULL;
    }
    assert_true(words >= 2);
    buf_free(&b);

    struct mail_msg m = {
        .id = ID, .from = "a@b.c", .to = "d@e.f", .subject = subj, .text = "x", .date_us = 0};
    char *s = build(&m, RC_OK);
    assert_crlf_lines(s, 78);
    free(s);
}

static void test_quoted_printable(void **st)
{
    (void)st;
    struct buf b;
    buf_init(&b, 65536);
    mail_encode_qp(&b, "a=b caf\xc3\xa9 \ntrailing space \nend");
    assert_string_equal(b.data, "a=3Db caf=C3=A9=20\r\ntrailing space=20\r\nend\r\n");
    buf_reset(&b);
    char line[300];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    line[100] = '\xc3';
    line[101] = '\xa9';
    mail_encode_qp(&b, line);
    assert_crlf_lines(b.data, 76);
    /* soft breaks only; decoding gives the input back */
    struct buf dec;
    buf_init(&dec, 65536);
    for (const char *p = b.data; *p;) {
        if (p[0] == '=' && p[1] == '\r' && p[2] == '\n') {
            p += 3;
        } else if (p[0] == '=') {
            unsigned v;
            sscanf(p + 1, "%2x", &v);
            buf_putc(&dec, (char)v);
            p += 3;
        } else if (p[0] == '\r') {
            p += 2;
        } else {
            buf_putc(&dec, *p++);
        }
    }
    assert_string_equal(dec.data, line);
    buf_free(&dec);
    buf_free(&b);

    /* a non-ASCII body goes out quoted-printable */
    struct mail_msg m = {.id = ID,
                         .from = "a@b.c",
                         .to = "d@e.f",
                         .subject = "s",
                         .text = "Bonjour \xc3\xa9t\xc3\xa9\n",
                         .date_us = 0};
    char *s = build(&m, RC_OK);
    assert_non_null(strstr(s, "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                              "Bonjour =C3=A9t=C3=A9\r\n"));
    free(s);
}

static void test_retry_schedule(void **st)
{
    (void)st;
    assert_int_equal(mailer_retry_delay_s(1), 30);
    assert_int_equal(mailer_retry_delay_s(2), 120);
    assert_int_equal(mailer_retry_delay_s(3), 600);
    assert_int_equal(mailer_retry_delay_s(4), 0);
    assert_int_equal(mailer_retry_delay_s(5), 0);
    assert_int_equal(mailer_retry_delay_s(0), 0);
    assert_int_equal(mailer_retry_delay_s(-1), 0);
    assert_int_equal(MAILER_MAX_ATTEMPTS, 4);
}

/* ------------------------------------------------- mailer on a database */

struct fake {
    struct mail_transport base;
    int calls;
    rc_t next; /* what send answers */
    char last[16384];
    char last_to[400];
    char last_id[40];
};

static rc_t fake_send(struct mail_transport *t, const struct mail_envelope *env, const char *msg,
                      size_t len, const atomic_bool *cancel, struct mail_send_result *res)
{
    (void)cancel;
    struct fake *f = (struct fake *)t;
    f->calls++;
    snprintf(f->last, sizeof f->last, "%.*s", (int)len, msg);
    snprintf(f->last_to, sizeof f->last_to, "%s", env->to);
    snprintf(f->last_id, sizeof f->last_id, "%s", env->id);
    res->cancelled = false;
    snprintf(res->info, sizeof res->info, "%s", f->next ? "Connection refused (smtp 0)" : "");
    return f->next;
}

static void fake_free(struct mail_transport *t)
{
    (void)t; /* owned by the fixture */
}

static const struct mail_transport_ops fake_ops = {"fake", fake_send, fake_free};

struct fx {
    struct config *cfg;
    struct secrets sec;
    struct db *db;
    struct fake fake;
    struct mailer *m;
    char dir[300];
};

/* extra: one more variable, or a replacement for EMAIL__EMAIL_FROM. */
static struct config *load_cfg(const char *extra)
{
    char *env[] = {"APP__ENVIRONMENT=development",
                   "EMAIL__PUBLIC_BASE_URL=https://auth.example.com/base/",
                   "EMAIL__EMAIL_FROM=Auth Service <no-reply@auth.example.com>", NULL, NULL};
    if (extra && strncmp(extra, "EMAIL__EMAIL_FROM=", 18) == 0)
        env[2] = (char *)extra;
    else
        env[3] = (char *)extra;
    struct config *c = NULL;
    char err[256] = "";
    rc_t rc = config_load(env, NO_DOTENV, &c, err, sizeof err, NULL);
    if (rc)
        print_error("config: %s\n", err);
    assert_ok(rc);
    return c;
}

static int fx_setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/db%d", g_tmp, ++g_seq);
    char url[400];
    snprintf(url, sizeof url, "sqlite:///%s/authd.db", f->dir);
    f->cfg = load_cfg(NULL);
    f->sec.signing_passphrase = PASSPHRASE;
    if (db_open(url, NULL, &f->db) != RC_OK)
        return -1;
    int n = 0;
    if (migrate_apply(f->db, &n) != RC_OK)
        return -1;
    f->fake.base.ops = &fake_ops;
    if (mailer_new_with_transport(f->db, f->cfg, &f->sec, &f->fake.base, &f->m) != RC_OK)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    mailer_free(f->m);
    db_close(f->db);
    config_free(f->cfg);
    free(f);
    return 0;
}

struct row {
    char status[16];
    char body_text[2048];
    char body_html[4096];
    bool text_null, html_null;
    int attempts;
    int64_t next_us, sent_us, expires_us, created_us;
    char last_error[1100];
    char subject[256];
    char to[400];
    char kind[40];
};

static int count_rows(struct fx *f)
{
    struct db_conn *c = NULL;
    struct db_res *r = NULL;
    assert_ok(db_acquire(f->db, DB_READ, &c));
    assert_ok(db_exec(c, "SELECT count(*) FROM email_outbox", 0, NULL, &r));
    int n = (int)db_res_int(r, 0, 0);
    db_res_free(r);
    db_release(c);
    return n;
}

static void get_row(struct fx *f, const char *id, struct row *out)
{
    struct db_conn *c = NULL;
    struct db_res *r = NULL;
    memset(out, 0, sizeof *out);
    assert_ok(db_acquire(f->db, DB_READ, &c));
    struct db_param p[] = {DBP_T(id)};
    assert_ok(db_exec(c,
                      "SELECT status, body_text, body_html, attempt_count, next_attempt_at, "
                      "sent_at, expires_at, last_error, subject, to_address, kind, created_at "
                      "FROM email_outbox WHERE id = $1",
                      1, p, &r));
    assert_int_equal(db_res_rows(r), 1);
    snprintf(out->status, sizeof out->status, "%s", db_res_get(r, 0, 0));
    out->text_null = db_res_is_null(r, 0, 1);
    out->html_null = db_res_is_null(r, 0, 2);
    snprintf(out->body_text, sizeof out->body_text, "%s",
             out->text_null ? "" : db_res_get(r, 0, 1));
    snprintf(out->body_html, sizeof out->body_html, "%s",
             out->html_null ? "" : db_res_get(r, 0, 2));
    out->attempts = (int)db_res_int(r, 0, 3);
    db_res_time(r, 0, 4, &out->next_us);
    db_res_time(r, 0, 5, &out->sent_us);
    db_res_time(r, 0, 6, &out->expires_us);
    snprintf(out->last_error, sizeof out->last_error, "%s",
             db_res_get(r, 0, 7) ? db_res_get(r, 0, 7) : "");
    snprintf(out->subject, sizeof out->subject, "%s", db_res_get(r, 0, 8));
    snprintf(out->to, sizeof out->to, "%s", db_res_get(r, 0, 9));
    snprintf(out->kind, sizeof out->kind, "%s", db_res_get(r, 0, 10));
    db_res_time(r, 0, 11, &out->created_us);
    db_res_free(r);
    db_release(c);
}

/* Enqueues in its own committed transaction; returns via id. */
static void enqueue(struct fx *f, enum mail_kind k, const struct mail_vars *v, int64_t exp,
                    char id[37])
{
    struct db_conn *c = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(db_begin(c));
    assert_ok(mailer_enqueue(f->m, c, k, TO, v, exp, id));
    assert_ok(db_commit(c));
    db_release(c);
}

static void test_enqueue_rollback_sends_nothing(void **state)
{
    struct fx *f = *state;
    struct db_conn *c = NULL;
    char id[37];
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(db_begin(c));
    assert_ok(
        mailer_enqueue(f->m, c, MAIL_VERIFY_EMAIL, TO, &(struct mail_vars){.token = TOKEN}, 0, id));
    db_rollback(c);
    db_release(c);
    assert_int_equal(count_rows(f), 0);
    struct mailer_pass p;
    assert_ok(mailer_deliver_due(f->m, time_now_us(), &p));
    assert_int_equal(f->fake.calls, 0);
    assert_int_equal(p.sent, 0);
}

static void test_enqueue_refuses(void **state)
{
    struct fx *f = *state;
    struct db_conn *c = NULL;
    char id[37] = "";
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_int_equal(mailer_enqueue(f->m, c, MAIL_VERIFY_EMAIL, "v@example.com\r\nBcc: e@x",
                                    &(struct mail_vars){.token = TOKEN}, 0, id),
                     RC_INVALID);
    assert_int_equal(mailer_enqueue(f->m, c, MAIL_VERIFY_EMAIL, TO, &(struct mail_vars){0}, 0, id),
                     RC_INVALID);
    assert_int_equal(mailer_enqueue(f->m, c, MAIL_ACTION_OTP, TO,
                                    &(struct mail_vars){.code = "123456", .action = "a\nb"}, 0, id),
                     RC_INVALID);
    assert_int_equal(mailer_enqueue(f->m, c, MAIL_KIND_COUNT, TO, NULL, 0, id), RC_INVALID);
    db_release(c);
    assert_int_equal(count_rows(f), 0);
}

static void test_enqueue_encrypts_and_delivers(void **state)
{
    struct fx *f = *state;
    char id[37];
    int64_t t0 = time_now_us();
    enqueue(f, MAIL_VERIFY_EMAIL, &(struct mail_vars){.token = TOKEN}, t0 + 3600 * SEC, id);
    struct row r;
    get_row(f, id, &r);
    assert_string_equal(r.status, "pending");
    assert_string_equal(r.kind, "verify_email");
    assert_string_equal(r.subject, "Verify your email");
    assert_string_equal(r.to, TO);
    assert_int_equal(r.attempts, 0);
    assert_true(r.next_us >= t0 && r.next_us <= time_now_us());
    assert_int_equal(r.created_us, r.next_us);
    assert_true(r.expires_us == t0 + 3600 * SEC);
    /* enc2 bodies; nothing readable; AAD = row id */
    assert_true(strncmp(r.body_text, "enc2:", 5) == 0);
    assert_true(strncmp(r.body_html, "enc2:", 5) == 0);
    assert_null(strstr(r.body_text, "TOKEN"));
    struct envelope_key *k = NULL;
    assert_ok(envelope_key_new(PASSPHRASE, strlen(PASSPHRASE), MAILER_ENVELOPE_INFO, &k));
    char *pt = NULL;
    size_t ptn = 0;
    assert_ok(envelope_open(k, r.body_text, strlen(r.body_text), id, strlen(id), &pt, &ptn));
    assert_string_equal(pt, "Please open this link to verify your email: "
                            "https://auth.example.com/base/auth/verify-email?token=" TOKEN "\n");
    xfree_secret(pt, ptn);
    const char *other = "00000000-0000-4000-8000-000000000000";
    assert_int_equal(
        envelope_open(k, r.body_text, strlen(r.body_text), other, strlen(other), &pt, &ptn),
        RC_CRYPTO);
    envelope_key_free(k);
    /* a key with the signing-key info string cannot read it either */
    assert_ok(envelope_key_new(PASSPHRASE, strlen(PASSPHRASE), ENVELOPE_INFO_SIGNING_KEY, &k));
    assert_int_equal(envelope_open(k, r.body_text, strlen(r.body_text), id, strlen(id), &pt, &ptn),
                     RC_CRYPTO);
    envelope_key_free(k);

    struct mailer_pass p;
    assert_ok(mailer_deliver_due(f->m, time_now_us(), &p));
    assert_int_equal(p.sent, 1);
    assert_int_equal(f->fake.calls, 1);
    assert_string_equal(f->fake.last_to, TO);
    assert_string_equal(f->fake.last_id, id);
    assert_non_null(strstr(f->fake.last, "\r\nSubject: Verify your email\r\n"));
    assert_non_null(
        strstr(f->fake.last, "\r\nFrom: \"Auth Service\" <no-reply@auth.example.com>\r\n"));
    assert_non_null(strstr(f->fake.last, "verify your email: https://auth.example.com/base/auth/"
                                         "verify-email?token=" TOKEN "\r\n"));
    assert_non_null(strstr(f->fake.last, "multipart/alternative"));
    get_row(f, id, &r);
    assert_string_equal(r.status, "sent");
    assert_true(r.text_null && r.html_null);
    assert_true(r.sent_us > 0);
    assert_int_equal(r.attempts, 1);
    /* nothing left to do */
    assert_ok(mailer_deliver_due(f->m, time_now_us() + 3600 * SEC, &p));
    assert_int_equal(f->fake.calls, 1);
}

static void test_retry_then_abandon(void **state)
{
    struct fx *f = *state;
    char id[37];
    enqueue(f, MAIL_LOGIN_OTP, &(struct mail_vars){.code = "424242"}, 0, id);
    f->fake.next = RC_UNAVAILABLE;
    int64_t t = time_now_us();
    struct mailer_pass p;
    struct row r;
    int64_t delays[] = {30, 120, 600};
    for (int i = 0; i < 3; i++) {
        assert_ok(mailer_deliver_due(f->m, t, &p));
        assert_int_equal(p.failed, 1);
        assert_int_equal(f->fake.calls, i + 1);
        get_row(f, id, &r);
        assert_string_equal(r.status, "failed");
        assert_int_equal(r.attempts, i + 1);
        assert_string_equal(r.last_error, "Connection refused (smtp 0)");
        assert_false(r.text_null);
        /* next attempt at t + delay (the pass clock advances with real time) */
        assert_true(r.next_us >= t + delays[i] * SEC && r.next_us < t + delays[i] * SEC + SEC);
        /* not due a moment before */
        assert_ok(mailer_deliver_due(f->m, r.next_us - 1, &p));
        assert_int_equal(f->fake.calls, i + 1);
        t = r.next_us;
    }
    assert_ok(mailer_deliver_due(f->m, t, &p));
    assert_int_equal(p.abandoned, 1);
    assert_int_equal(f->fake.calls, 4);
    get_row(f, id, &r);
    assert_string_equal(r.status, "abandoned");
    assert_int_equal(r.attempts, 4);
    assert_true(r.text_null && r.html_null);
    assert_string_equal(r.last_error, "Connection refused (smtp 0)");
    assert_ok(mailer_deliver_due(f->m, t + 3600 * SEC, &p));
    assert_int_equal(f->fake.calls, 4);
}

static void test_retry_then_success(void **state)
{
    struct fx *f = *state;
    char id[37];
    enqueue(f, MAIL_PASSWORD_RESET_CONFIRMATION, NULL, 0, id);
    f->fake.next = RC_TIMEOUT;
    struct mailer_pass p;
    int64_t t = time_now_us();
    assert_ok(mailer_deliver_due(f->m, t, &p));
    f->fake.next = RC_OK;
    struct row r;
    get_row(f, id, &r);
    assert_ok(mailer_deliver_due(f->m, r.next_us, &p));
    assert_int_equal(p.sent, 1);
    get_row(f, id, &r);
    assert_string_equal(r.status, "sent");
    assert_int_equal(r.attempts, 2);
    assert_string_equal(r.last_error, "");
    assert_true(r.text_null);
    assert_non_null(strstr(f->fake.last, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_null(strstr(f->fake.last, "multipart"));
}

static void test_expiry(void **state)
{
    struct fx *f = *state;
    char a[37], b[37];
    int64_t now = time_now_us();
    /* already expired when first due: abandoned unsent */
    enqueue(f, MAIL_LOGIN_OTP, &(struct mail_vars){.code = "111111"}, now + 10 * SEC, a);
    struct mailer_pass p;
    assert_ok(mailer_deliver_due(f->m, now + 10 * SEC, &p));
    assert_int_equal(p.abandoned, 1);
    assert_int_equal(f->fake.calls, 0);
    struct row r;
    get_row(f, a, &r);
    assert_string_equal(r.status, "abandoned");
    assert_true(r.text_null);
    /* a retry that would come after expiry abandons at once */
    int64_t exp = time_now_us() + 60 * SEC;
    enqueue(f, MAIL_LOGIN_OTP, &(struct mail_vars){.code = "222222"}, exp, b);
    f->fake.next = RC_UNAVAILABLE;
    assert_ok(mailer_deliver_due(f->m, time_now_us(), &p));
    get_row(f, b, &r);
    assert_string_equal(r.status, "failed"); /* next at +30 s < +60 s */
    assert_ok(mailer_deliver_due(f->m, r.next_us, &p));
    assert_int_equal(p.abandoned, 1); /* next would be +150 s > +60 s */
    get_row(f, b, &r);
    assert_string_equal(r.status, "abandoned");
    assert_int_equal(r.attempts, 2);
    assert_true(r.text_null);
}

static void test_lease(void **state)
{
    struct fx *f = *state;
    char id[37];
    enqueue(f, MAIL_PASSWORD_RESET_CONFIRMATION, NULL, 0, id);
    int64_t now = time_now_us();
    /* another worker claimed it (and crashed while sending) */
    struct db_conn *c = NULL;
    struct arena *a = arena_new();
    struct outbox_row row;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(outbox_claim(c, a, now, now + MAILER_LEASE_US, &row));
    assert_string_equal(row.id, id);
    assert_int_equal(outbox_claim(c, a, now, now + MAILER_LEASE_US, &row), RC_NOT_FOUND);
    /* updates naming a different lease change nothing */
    assert_int_equal(outbox_mark_sent(c, id, now, 1, now), RC_NOT_FOUND);
    assert_int_equal(outbox_release(c, id, now + 1, now), RC_NOT_FOUND);
    db_release(c);
    arena_free(a);
    struct mailer_pass p;
    assert_ok(mailer_deliver_due(f->m, now + MAILER_LEASE_US - 1, &p));
    assert_int_equal(f->fake.calls, 0);
    /* after the lease the row is due again: nothing was lost */
    assert_ok(mailer_deliver_due(f->m, now + MAILER_LEASE_US, &p));
    assert_int_equal(p.sent, 1);
    assert_int_equal(f->fake.calls, 1);
}

static void test_undecryptable_row(void **state)
{
    struct fx *f = *state;
    char a[37], b[37];
    enqueue(f, MAIL_LOGIN_OTP, &(struct mail_vars){.code = "333333"}, 0, a);
    enqueue(f, MAIL_LOGIN_OTP, &(struct mail_vars){.code = "444444"}, 0, b);
    /* move a's ciphertext to b: the AAD (row id) no longer matches */
    struct db_conn *c = NULL;
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    struct db_param p2[] = {DBP_T(a), DBP_T(b)};
    assert_ok(db_exec(c,
                      "UPDATE email_outbox SET body_text = (SELECT body_text FROM email_outbox "
                      "WHERE id = $1) WHERE id = $2",
                      2, p2, NULL));
    db_release(c);
    struct mailer_pass p;
    assert_ok(mailer_deliver_due(f->m, time_now_us(), &p));
    assert_int_equal(p.sent, 1);
    assert_int_equal(p.abandoned, 1);
    assert_int_equal(f->fake.calls, 1);
    assert_string_equal(f->fake.last_id, a);
    struct row r;
    get_row(f, b, &r);
    assert_string_equal(r.status, "abandoned");
    assert_string_equal(r.last_error, "decrypt_failed");
    assert_true(r.text_null);
}

static void test_cleanup(void **state)
{
    struct fx *f = *state;
    char a[37];
    enqueue(f, MAIL_PASSWORD_RESET_CONFIRMATION, NULL, 0, a);
    struct row r;
    get_row(f, a, &r);
    int64_t n = -1;
    assert_ok(mailer_cleanup(f->m, r.created_us + MAILER_RETENTION_US, &n));
    assert_int_equal(n, 0);
    assert_ok(mailer_cleanup(f->m, r.created_us + MAILER_RETENTION_US + 1, &n));
    assert_int_equal(n, 1);
    assert_int_equal(count_rows(f), 0);
}

/* Logs of a failing and then a succeeding delivery: the documented events,
 * with the id and kind, and never the address, the link or the code. */
static void test_logs_hold_no_secrets(void **state)
{
    struct fx *f = *state;
    char path[400];
    snprintf(path, sizeof path, "%s/log%d.txt", g_tmp, ++g_seq);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    log_init(LOG_DEBUG, "test", "test");
    log_set_fd(fd);
    char a[37], b[37];
    enqueue(f, MAIL_VERIFY_EMAIL, &(struct mail_vars){.token = TOKEN}, 0, a);
    enqueue(f, MAIL_ACTION_OTP, &(struct mail_vars){.code = "565656", .action = "erase_account"}, 0,
            b);
    f->fake.next = RC_UNAVAILABLE;
    int64_t t = time_now_us();
    struct mailer_pass p;
    for (int i = 0; i < 4; i++) {
        assert_ok(mailer_deliver_due(f->m, t, &p));
        t += 601 * SEC;
    }
    enqueue(f, MAIL_LOGIN_OTP, &(struct mail_vars){.code = "787878"}, 0, a);
    f->fake.next = RC_OK;
    assert_ok(mailer_deliver_due(f->m, t, &p));
    log_set_fd(1);
    log_init(LOG_CRITICAL, "test", "test");
    char buf[65536];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"event\":\"email_send_failed\""));
    assert_non_null(strstr(buf, "\"event\":\"email_abandoned\""));
    assert_non_null(strstr(buf, "\"reason\":\"max_attempts\""));
    assert_non_null(strstr(buf, "\"event\":\"email_sent\""));
    assert_non_null(strstr(buf, "\"kind\":\"action_otp\""));
    assert_non_null(strstr(buf, a));
    assert_null(strstr(buf, "TOKEN"));
    assert_null(strstr(buf, "565656"));
    assert_null(strstr(buf, "787878"));
    assert_null(strstr(buf, "jane.doe"));
    assert_null(strstr(buf, "example.com/base"));
}

/* The delivery thread: started by the first mailer_job, woken by
 * mailer_kick, stopped by mailer_free. */
static void test_thread(void **state)
{
    struct fx *f = *state;
    char id[37];
    mailer_kick(f->m); /* no thread yet: harmless */
    enqueue(f, MAIL_PASSWORD_RESET_CONFIRMATION, NULL, 0, id);
    usleep(100000);
    assert_int_equal(f->fake.calls, 0); /* queued only, like serve --no-worker */
    mailer_job(f->m);
    struct row r;
    for (int i = 0; i < 100; i++) {
        get_row(f, id, &r);
        if (strcmp(r.status, "sent") == 0)
            break;
        usleep(50000);
    }
    assert_string_equal(r.status, "sent");
    enqueue(f, MAIL_PASSWORD_RESET_CONFIRMATION, NULL, 0, id);
    mailer_kick(f->m);
    for (int i = 0; i < 100; i++) {
        get_row(f, id, &r);
        if (strcmp(r.status, "sent") == 0)
            break;
        usleep(20000);
    }
    assert_string_equal(r.status, "sent");
    assert_int_equal(f->fake.calls, 2);
}

/* ------------------------------------------------------- file transport */

static void test_file_transport(void **st)
{
    (void)st;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/files%d/data/mail", g_tmp, ++g_seq);
    struct mail_transport *t = NULL;
    assert_ok(mail_file_new(dir, &t));
    assert_string_equal(mail_transport_name(t), "file");
    struct mail_envelope env = {ID, "a@b.c", "d@e.f"};
    struct mail_send_result res;
    const char *msg = "Subject: x\r\n\r\nhello\r\n";
    assert_ok(t->ops->send(t, &env, msg, strlen(msg), NULL, &res));
    char want[600];
    snprintf(want, sizeof want, "%s/%s.eml", dir, ID);
    assert_string_equal(res.info, want);
    struct stat sb;
    assert_int_equal(stat(want, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    char got[64] = "";
    FILE *fp = fopen(want, "rb");
    assert_non_null(fp);
    size_t n = fread(got, 1, sizeof got - 1, fp);
    fclose(fp);
    got[n] = '\0';
    assert_string_equal(got, msg);
    /* only the message: no temporary files left behind */
    DIR *d = opendir(dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(d));)
        files += e->d_name[0] != '.' || strncmp(e->d_name, ".0", 2) == 0;
    closedir(d);
    assert_int_equal(files, 1);
    struct mail_envelope evil = {"../../x", "a@b.c", "d@e.f"};
    assert_int_equal(t->ops->send(t, &evil, msg, strlen(msg), NULL, &res), RC_INVALID);
    mail_transport_free(t);
}

/* mailer_new picks the file transport without EMAIL__MAILHOG_HOST and
 * writes <data dir>/mail/<id>.eml; a bad EMAIL__EMAIL_FROM stops it. */
static void test_mailer_file_default(void **state)
{
    struct fx *f = *state;
    struct mailer *m = NULL;
    char data[400];
    snprintf(data, sizeof data, "%s/filedef%d", g_tmp, ++g_seq);
    assert_ok(mailer_new(f->db, f->cfg, &f->sec, data, &m));
    struct db_conn *c = NULL;
    char id[37];
    assert_ok(db_acquire(f->db, DB_WRITE, &c));
    assert_ok(
        mailer_enqueue(m, c, MAIL_LOGIN_OTP, TO, &(struct mail_vars){.code = "909090"}, 0, id));
    db_release(c);
    struct mailer_pass p;
    assert_ok(mailer_deliver_due(m, time_now_us(), &p));
    assert_int_equal(p.sent, 1);
    char path[600];
    snprintf(path, sizeof path, "%s/mail/%s.eml", data, id);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    mailer_free(m);

    struct config *bad = load_cfg("EMAIL__EMAIL_FROM=not an address");
    assert_int_equal(mailer_new(f->db, bad, &f->sec, data, &m), RC_INVALID);
    assert_null(m);
    config_free(bad);
    bad = load_cfg("EMAIL__MAILHOG_HOST=smtp.example.com/x");
    assert_int_equal(mailer_new(f->db, bad, &f->sec, data, &m), RC_INVALID);
    config_free(bad);
}

/* ------------------------------------------- SMTP against the capture */

#define CAPTURE_PY ".venv/bin/python"
#define CAPTURE_SCRIPT "tests/api/smtp_capture.py"

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

/* Starts the capture server; returns its pid once it printed "ready". */
static pid_t start_capture(int port, const char *dump, const char *auth)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char portbuf[16];
        snprintf(portbuf, sizeof portbuf, "%d", port);
        dup2(pfd[1], 1);
        close(pfd[0]);
        if (auth)
            execl(CAPTURE_PY, CAPTURE_PY, CAPTURE_SCRIPT, "--port", portbuf, "--dump", dump,
                  "--auth", auth, (char *)NULL);
        else
            execl(CAPTURE_PY, CAPTURE_PY, CAPTURE_SCRIPT, "--port", portbuf, "--dump", dump,
                  (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char line[64] = "";
    size_t n = 0;
    struct pollfd pf = {pfd[0], POLLIN, 0};
    while (n < sizeof line - 1 && !strchr(line, '\n') && poll(&pf, 1, 20000) > 0) {
        ssize_t r = read(pfd[0], line + n, sizeof line - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        line[n] = '\0';
    }
    close(pfd[0]);
    if (strncmp(line, "ready", 5) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

static void stop_capture(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = xcalloc(1, 65536);
    size_t n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void test_smtp_capture(void **st)
{
    (void)st;
    if (access(CAPTURE_PY, X_OK) != 0) {
        print_message("  (skipped: %s not found; run from the repo root after make deps)\n",
                      CAPTURE_PY);
        skip();
    }
    char dump[400];
    snprintf(dump, sizeof dump, "%s/capture%d", g_tmp, ++g_seq);
    int port = free_port();
    /* nothing listening yet: a connect failure, quickly */
    struct mail_transport *t = NULL;
    struct mail_smtp_opts o = {.host = "127.0.0.1", .port = port, .timeout_ms = 5000};
    assert_ok(mail_smtp_new(&o, &t));
    assert_string_equal(mail_transport_name(t), "smtp");
    struct mail_msg mm = {.id = ID,
                          .from = "auth@localhost",
                          .to = TO,
                          .subject = "Verify your email",
                          .text = ".leading dot line\nPlease open this link to verify your "
                                  "email: " LINK "\n",
                          .html = "<p>x</p>\n",
                          .date_us = time_now_us()};
    struct buf msg;
    buf_init(&msg, MAIL_MESSAGE_MAX);
    assert_ok(mail_message_build(&mm, &msg));
    struct mail_envelope env = {ID, "auth@localhost", TO};
    struct mail_send_result res;
    int64_t t0 = time_mono_us();
    assert_int_equal(t->ops->send(t, &env, msg.data, msg.len, NULL, &res), RC_UNAVAILABLE);
    assert_true(time_mono_us() - t0 < 3 * SEC);
    assert_non_null(strstr(res.info, "onnect"));
    assert_null(strstr(res.info, "jane"));

    pid_t pid = start_capture(port, dump, NULL);
    assert_true(pid > 0);
    assert_ok(t->ops->send(t, &env, msg.data, msg.len, NULL, &res));
    char path[600];
    snprintf(path, sizeof path, "%s/1.eml", dump);
    char *got = read_file(path);
    assert_non_null(got);
    /* byte for byte what we built: dot-stuffing was undone by the server */
    assert_string_equal(got, msg.data);
    free(got);
    snprintf(path, sizeof path, "%s/1.env", dump);
    got = read_file(path);
    assert_string_equal(got, "auth@localhost\n" TO "\n");
    free(got);
    stop_capture(pid);
    mail_transport_free(t);

    /* AUTH: wrong password refused, right one accepted */
    port = free_port();
    snprintf(dump, sizeof dump, "%s/capture%d", g_tmp, ++g_seq);
    pid = start_capture(port, dump, "mailuser:s3cret");
    assert_true(pid > 0);
    struct mail_smtp_opts ao = {.host = "127.0.0.1",
                                .port = port,
                                .username = "mailuser",
                                .password = "wrong",
                                .timeout_ms = 5000};
    assert_ok(mail_smtp_new(&ao, &t));
    assert_true(t->ops->send(t, &env, msg.data, msg.len, NULL, &res) != RC_OK);
    assert_null(strstr(res.info, "wrong"));
    mail_transport_free(t);
    ao.password = "s3cret";
    assert_ok(mail_smtp_new(&ao, &t));
    assert_ok(t->ops->send(t, &env, msg.data, msg.len, NULL, &res));
    mail_transport_free(t);
    /* STARTTLS required but the server has none: refused, never plain */
    ao.starttls = true;
    assert_ok(mail_smtp_new(&ao, &t));
    assert_true(t->ops->send(t, &env, msg.data, msg.len, NULL, &res) != RC_OK);
    mail_transport_free(t);
    snprintf(path, sizeof path, "%s/2.eml", dump);
    assert_int_equal(access(path, F_OK), -1);
    stop_capture(pid);
    buf_free(&msg);

    /* a server that accepts and never greets: the exchange hangs until the
     * cancel flag (mailer_free's stop) aborts it */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t lalen = sizeof la;
    assert_int_equal(bind(ls, (struct sockaddr *)&la, sizeof la), 0);
    assert_int_equal(listen(ls, 4), 0);
    getsockname(ls, (struct sockaddr *)&la, &lalen);
    struct mail_smtp_opts ho = {.host = "127.0.0.1", .port = ntohs(la.sin_port)};
    assert_ok(mail_smtp_new(&ho, &t));
    atomic_bool cancel;
    atomic_init(&cancel, true);
    t0 = time_mono_us();
    assert_true(t->ops->send(t, &env, "x\r\n", 3, &cancel, &res) != RC_OK);
    assert_true(res.cancelled);
    assert_true(time_mono_us() - t0 < 3 * SEC);
    mail_transport_free(t);
    close(ls);

    struct mail_smtp_opts bad[] = {{.host = "", .port = 25},
                                   {.host = "a/b", .port = 25},
                                   {.host = "u@h", .port = 25},
                                   {.host = "h", .port = 0},
                                   {.host = "h h", .port = 25}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mail_smtp_new(&bad[i], &t), RC_INVALID);
        assert_null(t);
    }
}

int main(void)
{
    log_init(LOG_CRITICAL, "test", "test");
    snprintf(g_tmp, sizeof g_tmp, "/tmp/authd-test-mail-XXXXXX");
    if (!mkdtemp(g_tmp))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_render_links),
        cmocka_unit_test(test_render_codes),
        cmocka_unit_test(test_render_refuses),
        cmocka_unit_test(test_link_new),
        cmocka_unit_test(test_addr_and_header_validation),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_message_single_part),
        cmocka_unit_test(test_message_multipart),
        cmocka_unit_test(test_message_refuses_injection),
        cmocka_unit_test(test_encoded_subject),
        cmocka_unit_test(test_quoted_printable),
        cmocka_unit_test(test_retry_schedule),
        cmocka_unit_test_setup_teardown(test_enqueue_rollback_sends_nothing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_refuses, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_encrypts_and_delivers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_retry_then_abandon, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_retry_then_success, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_expiry, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lease, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_undecryptable_row, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cleanup, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_logs_hold_no_secrets, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_thread, fx_setup, fx_teardown),
        cmocka_unit_test(test_file_transport),
        cmocka_unit_test_setup_teardown(test_mailer_file_default, fx_setup, fx_teardown),
        cmocka_unit_test(test_smtp_capture),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (!getenv("AUTHD_KEEP_TMP")) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g_tmp);
    }
    return rc;
}
