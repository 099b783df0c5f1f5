/* RFC 5322 / MIME message builder (see message.h). Every header value that
 * comes from outside (addresses, subject) passes a validator that refuses
 * control characters before it is written, so no input can start a new
 * header line. Bodies are normalised to CRLF line ends. */
#include "mail/message.h"
#include "crypto/enc.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/uuid.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define LINE_7BIT_MAX 998 /* RFC 5322 §2.1.1, without CRLF */
#define QP_LINE_MAX 76
#define EW_MIN 24 /* smallest encoded word we make: 12 + base64 of 9 bytes */

bool mail_header_text_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n > MAIL_SUBJECT_MAX || !utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

bool mail_addr_valid(const char *addr)
{
    if (!addr)
        return false;
    size_t n = strlen(addr);
    if (n < 3 || n > MAIL_ADDR_MAX || !utf8_valid(addr, n))
        return false;
    const char *at = NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)addr[i];
        if (c <= 0x20 || c == 0x7f || strchr("<>()[],;:\"\\", c))
            return false;
        if (c == '@') {
            if (at)
                return false;
            at = addr + i;
        }
    }
    return at && at != addr && at[1] != '\0';
}

void mail_format_date(int64_t us, char out[40])
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool plain_header_ok(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            return false;
    return strstr(s, "=?") == NULL;
}

/* Length of the longest prefix of s (at most max bytes) that ends on a
 * UTF-8 character boundary: an encoded word holds whole characters
 * (RFC 2047 §5). */
static size_t utf8_prefix(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k ? k : max;
}

/* Bytes one encoded word may carry when `used` columns of its line are
 * taken: the word stays within 75 characters and the line within 76
 * (RFC 2047 §2); "=?UTF-8?B?" + "?=" is 12 characters. */
static size_t word_capacity(size_t used)
{
    size_t room = used < 76 - EW_MIN ? 76 - used : EW_MIN;
    if (room > 75)
        room = 75;
    return (room - 12) / 4 * 3;
}

void mail_encode_header_word(struct buf *out, const char *s, size_t first_line_used)
{
    if (plain_header_ok(s)) {
        buf_puts(out, s);
        return;
    }
    size_t n = strlen(s);
    size_t used = first_line_used;
    bool first = true;
    while (n > 0) {
        size_t k = utf8_prefix(s, n, word_capacity(used));
        char enc[64]; /* base64 of at most 45 bytes: 60 chars */
        crypto_b64_encode(CRYPTO_B64_STD, s, k, enc);
        if (!first)
            buf_puts(out, "\r\n ");
        first = false;
        buf_printf(out, "=?UTF-8?B?%s?=", enc);
        used = 1; /* continuation lines start with one space */
        s += k;
        n -= k;
    }
}

static void qp_byte(struct buf *out, unsigned char c, int *col)
{
    static const char hex[] = "0123456789ABCDEF";
    char enc[3] = {'=', hex[c >> 4], hex[c & 15]};
    if (*col + 3 > QP_LINE_MAX - 1) {
        buf_puts(out, "=\r\n");
        *col = 0;
    }
    buf_append(out, enc, 3);
    *col += 3;
}

static void qp_literal(struct buf *out, char c, int *col)
{
    if (*col + 1 > QP_LINE_MAX - 1) {
        buf_puts(out, "=\r\n");
        *col = 0;
    }
    buf_putc(out, c);
    *col += 1;
}

void mail_encode_qp(struct buf *out, const char *s)
{
    int col = 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\r' && p[1] == '\n')
            continue;
        if (c == '\n') {
            buf_puts(out, "\r\n");
            col = 0;
            continue;
        }
        bool line_end = p[1] == '\0' || p[1] == '\n' || (p[1] == '\r' && p[2] == '\n');
        bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !line_end);
        if (literal)
            qp_literal(out, (char)c, &col);
        else
            qp_byte(out, c, &col);
    }
    if (col > 0)
        buf_puts(out, "\r\n");
}

/* 7bit is possible when the body is ASCII without NUL or stray CR and no
 * line is longer than RFC 5322 allows. */
static bool fits_7bit(const char *s)
{
    size_t line = 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x80 || (c == '\r' && p[1] != '\n'))
            return false;
        if (c == '\n') {
            line = 0;
        } else if (c != '\r' && ++line > LINE_7BIT_MAX) {
            return false;
        }
    }
    return true;
}

static void put_7bit(struct buf *out, const char *s)
{
    bool at_line_start = true;
    for (const char *p = s; *p; p++) {
        if (*p == '\r')
            continue;
        if (*p == '\n') {
            buf_puts(out, "\r\n");
            at_line_start = true;
        } else {
            buf_putc(out, *p);
            at_line_start = false;
        }
    }
    if (!at_line_start)
        buf_puts(out, "\r\n");
}

/* Content-Type and Content-Transfer-Encoding, a blank line, the body. */
static void put_part(struct buf *out, const char *type, const char *body)
{
    bool seven = fits_7bit(body);
    buf_printf(out,
               "Content-Type: %s; charset=utf-8\r\n"
               "Content-Transfer-Encoding: %s\r\n\r\n",
               type, seven ? "7bit" : "quoted-printable");
    if (seven)
        put_7bit(out, body);
    else
        mail_encode_qp(out, body);
}

static void new_boundary(char out[48])
{
    unsigned char r[16];
    char hex[33];
    rand_bytes(r, sizeof r);
    crypto_hex(r, sizeof r, hex);
    snprintf(out, 48, "=_authd_%s", hex);
}

/* `"name" ` as a quoted string when it is printable ASCII without quote or
 * backslash, else as encoded words. */
static void put_display_name(struct buf *out, const char *name)
{
    if (plain_header_ok(name) && !strpbrk(name, "\"\\")) {
        buf_printf(out, "\"%s\" ", name);
        return;
    }
    mail_encode_header_word(out, name, sizeof "From: " - 1);
    buf_putc(out, ' ');
}

static void put_headers(struct buf *out, const struct mail_msg *m)
{
    char date[40];
    mail_format_date(m->date_us, date);
    const char *domain = strchr(m->from, '@') + 1;
    buf_printf(out, "Date: %s\r\nMessage-ID: <%s@%s>\r\nFrom: ", date, m->id, domain);
    if (m->from_name && *m->from_name) {
        put_display_name(out, m->from_name);
        buf_printf(out, "<%s>", m->from);
    } else {
        buf_puts(out, m->from);
    }
    buf_printf(out, "\r\nTo: %s\r\nSubject: ", m->to);
    mail_encode_header_word(out, m->subject, sizeof "Subject: " - 1);
    buf_puts(out, "\r\nMIME-Version: 1.0\r\n");
}

/* Bodies hold links and codes: reserve once (no realloc copies left in
 * freed memory) and wipe on free. */
static void scratch_init(struct buf *b, size_t max, const char *body)
{
    buf_init(b, max);
    buf_reserve(b, 4 * strlen(body) + 512);
}

static void scratch_free(struct buf *b)
{
    if (b->data)
        xfree_secret(b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}

static bool body_ok(const char *s)
{
    return s && utf8_valid(s, strlen(s));
}

rc_t mail_message_build(const struct mail_msg *m, struct buf *out)
{
    char canon[UUID_STR_LEN + 1];
    if (!m->id || !uuid_parse(m->id, strlen(m->id), canon) || strcmp(canon, m->id) != 0)
        return RC_INVALID;
    if (!mail_addr_valid(m->from) || !mail_addr_valid(m->to) ||
        !mail_header_text_valid(m->subject) || !body_ok(m->text) ||
        (m->from_name && !mail_header_text_valid(m->from_name)) || (m->html && !body_ok(m->html)))
        return RC_INVALID;
    put_headers(out, m);
    if (!m->html) {
        put_part(out, "text/plain", m->text);
        return out->err ? RC_LIMIT : RC_OK;
    }
    /* The parts are rendered first so the boundary can be checked against
     * them (a 7bit body could in theory contain it). */
    struct buf text, html;
    scratch_init(&text, out->max, m->text);
    scratch_init(&html, out->max, m->html);
    put_part(&text, "text/plain", m->text);
    put_part(&html, "text/html", m->html);
    char boundary[48];
    do {
        new_boundary(boundary);
    } while ((text.data && strstr(text.data, boundary)) ||
             (html.data && strstr(html.data, boundary)));
    buf_printf(out,
               "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n"
               "This is a multi-part message in MIME format.\r\n\r\n--%s\r\n",
               boundary, boundary);
    buf_append(out, text.data, text.len);
    buf_printf(out, "\r\n--%s\r\n", boundary);
    buf_append(out, html.data, html.len);
    buf_printf(out, "\r\n--%s--\r\n", boundary);
    rc_t rc = text.err || html.err || out->err ? RC_LIMIT : RC_OK;
    scratch_free(&text);
    scratch_free(&html);
    return rc;
}
