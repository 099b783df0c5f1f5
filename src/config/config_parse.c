/* Value syntax for the configuration loader: booleans, http(s) URLs and
 * their normalisation and redaction, CIDRs, cron expressions, cookie and
 * header syntax, and the .env file reader. Pure functions; no state. */
#include "config/config_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"
#include "util/mem.h"

void cfg_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

bool cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on", "t", "y"};
    static const char *const no[] = {"false", "0", "no", "off", "f", "n"};
    struct str v = str_of(s);
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        if (str_ieq(v, yes[i])) {
            *out = true;
            return true;
        }
        if (str_ieq(v, no[i])) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* ---- URLs ---- */

static bool url_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

static bool host_char_ok(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool parse_port(struct str p)
{
    if (p.len == 0 || p.len > 5)
        return false;
    long v = 0;
    for (size_t i = 0; i < p.len; i++) {
        if (!isdigit((unsigned char)p.p[i]))
            return false;
        v = v * 10 + (p.p[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

static bool parse_host(struct str h)
{
    if (h.len == 0)
        return false;
    if (h.p[0] == '[') {
        char tmp[64];
        unsigned char addr[16];
        if (h.len < 3 || h.p[h.len - 1] != ']' || h.len - 2 >= sizeof tmp)
            return false;
        memcpy(tmp, h.p + 1, h.len - 2);
        tmp[h.len - 2] = '\0';
        return inet_pton(AF_INET6, tmp, addr) == 1;
    }
    for (size_t i = 0; i < h.len; i++)
        if (!host_char_ok((unsigned char)h.p[i]))
            return false;
    return true;
}

/* Splits host[:port] of an authority without userinfo. */
static bool split_hostport(struct str a, struct cfg_url *u)
{
    size_t colon = a.len;
    size_t from = 0;
    if (a.len && a.p[0] == '[') {
        const char *rb = memchr(a.p, ']', a.len);
        if (!rb)
            return false;
        from = (size_t)(rb - a.p) + 1;
        if (from < a.len && a.p[from] != ':')
            return false;
    }
    for (size_t i = from; i < a.len; i++)
        if (a.p[i] == ':') {
            colon = i;
            break;
        }
    u->host = (struct str){a.p, colon};
    if (colon < a.len) {
        u->has_port = true;
        u->port = (struct str){a.p + colon + 1, a.len - colon - 1};
        if (!parse_port(u->port))
            return false;
    }
    return parse_host(u->host);
}

bool cfg_url_parse(const char *s, struct cfg_url *u)
{
    memset(u, 0, sizeof *u);
    u->port = u->userinfo = u->rest = str_of(NULL);
    for (const char *q = s; *q; q++)
        if (!url_char_ok((unsigned char)*q))
            return false;
    const char *sep = strstr(s, "://");
    if (!sep)
        return false;
    u->scheme = (struct str){s, (size_t)(sep - s)};
    if (!str_ieq(u->scheme, "http") && !str_ieq(u->scheme, "https"))
        return false;
    const char *a = sep + 3;
    size_t alen = strcspn(a, "/?#");
    u->rest = str_of(a + alen);
    struct str auth = {a, alen};
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (a[i] == '@')
            at = a + i;
    if (at) {
        u->has_userinfo = true;
        u->userinfo = (struct str){a, (size_t)(at - a)};
        auth = (struct str){at + 1, alen - (size_t)(at + 1 - a)};
    }
    return split_hostport(auth, u);
}

bool cfg_url_is_https(const char *s)
{
    struct cfg_url u;
    return s && cfg_url_parse(s, &u) && str_ieq(u.scheme, "https");
}

static void put_lower(struct buf *b, struct str s)
{
    for (size_t i = 0; i < s.len; i++)
        buf_putc(b, (char)tolower((unsigned char)s.p[i]));
}

char *cfg_url_normalize(const struct cfg_url *u)
{
    struct buf b;
    buf_init(&b, CONFIG_VALUE_MAX + 16);
    put_lower(&b, u->scheme);
    buf_puts(&b, "://");
    if (u->has_userinfo) {
        buf_append(&b, u->userinfo.p, u->userinfo.len);
        buf_putc(&b, '@');
    }
    put_lower(&b, u->host);
    bool https = str_ieq(u->scheme, "https");
    if (u->has_port) {
        /* Leading zeros are legal ("0443"); compare the value. */
        long port = strtol(u->port.p, NULL, 10);
        if (port != (https ? 443 : 80))
            buf_printf(&b, ":%ld", port);
    }
    if (u->rest.len == 0 || u->rest.p[0] != '/')
        buf_putc(&b, '/');
    buf_append(&b, u->rest.p, u->rest.len);
    return buf_take(&b);
}

/* Replaces the value of every "password=" query parameter. */
static void redact_query(struct buf *b, const char *q)
{
    while (*q) {
        size_t n = strcspn(q, "&");
        if (n >= 9 && strncasecmp(q, "password=", 9) == 0)
            buf_puts(b, "password=***");
        else
            buf_append(b, q, n);
        q += n;
        if (*q == '&')
            buf_putc(b, *q++);
    }
}

char *cfg_url_redact(const char *s)
{
    struct buf b;
    buf_init(&b, CONFIG_VALUE_MAX + 16);
    const char *sep = strstr(s, "://");
    const char *a = sep ? sep + 3 : s;
    size_t alen = strcspn(a, "/?#");
    const char *at = NULL;
    for (size_t i = 0; sep && i < alen; i++)
        if (a[i] == '@')
            at = a + i;
    const char *colon = at ? memchr(a, ':', (size_t)(at - a)) : NULL;
    if (colon) {
        buf_append(&b, s, (size_t)(colon + 1 - s));
        buf_puts(&b, "***");
        buf_append(&b, at, alen - (size_t)(at - a));
    } else {
        buf_append(&b, s, (size_t)(a + alen - s));
    }
    const char *rest = a + alen;
    const char *qm = strchr(rest, '?');
    if (qm) {
        buf_append(&b, rest, (size_t)(qm + 1 - rest));
        redact_query(&b, qm + 1);
    } else {
        buf_puts(&b, rest);
    }
    return buf_take(&b);
}

/* ---- CIDR, cron, cookie syntax ---- */

bool cfg_cidr_valid(const char *s)
{
    char addr[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof addr)
        return false;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    int af = strchr(addr, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(af, addr, bin) != 1)
        return false;
    if (!slash)
        return true;
    const char *p = slash + 1;
    size_t plen = strlen(p);
    if (plen == 0 || plen > 3 || strspn(p, "0123456789") != plen)
        return false;
    return strtol(p, NULL, 10) <= (af == AF_INET ? 32 : 128);
}

/* One decimal number of at most 3 digits within [lo, hi]; advances *p. */
static bool cron_num(const char **p, int lo, int hi, int *out)
{
    int v = 0, n = 0;
    while (isdigit((unsigned char)**p) && n < 3) {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    *out = v;
    return n > 0 && !isdigit((unsigned char)**p) && v >= lo && v <= hi;
}

/* item = ("*" | n | n "-" m) ["/" step], items separated by ",". */
static bool cron_field(const char *f, size_t len, int lo, int hi)
{
    char tmp[64];
    if (len == 0 || len >= sizeof tmp)
        return false;
    memcpy(tmp, f, len);
    tmp[len] = '\0';
    const char *p = tmp;
    for (;;) {
        int a, b, step;
        if (*p == '*') {
            p++;
        } else {
            if (!cron_num(&p, lo, hi, &a))
                return false;
            if (*p == '-' && (p++, !cron_num(&p, lo, hi, &b) || b < a))
                return false;
        }
        if (*p == '/' && (p++, !cron_num(&p, 1, hi, &step)))
            return false;
        if (*p == '\0')
            return true;
        if (*p++ != ',')
            return false;
    }
}

bool cfg_cron_valid(const char *s)
{
    static const int lo[5] = {0, 0, 1, 1, 0}, hi[5] = {59, 23, 31, 12, 7};
    const char *p = s;
    for (int i = 0; i < 5; i++) {
        p += strspn(p, " \t");
        size_t n = strcspn(p, " \t");
        if (!cron_field(p, n, lo[i], hi[i]))
            return false;
        p += n;
    }
    p += strspn(p, " \t");
    return *p == '\0';
}

bool cfg_http_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))
            return false;
    }
    return true;
}

static bool cookie_attr_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != ';' && c != ',';
}

bool cfg_cookie_path(const char *s)
{
    if (s[0] != '/')
        return false;
    for (; *s; s++)
        if (!cookie_attr_char((unsigned char)*s))
            return false;
    return true;
}

bool cfg_cookie_domain(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!cookie_attr_char((unsigned char)*s) || *s == '/')
            return false;
    return true;
}

/* ---- .env ---- */

struct dotenv_cur {
    const char *p, *start, *end;
    const char *path;
    char *err;
    size_t errlen;
};

static int cur_line(const struct dotenv_cur *c)
{
    int line = 1;
    for (const char *q = c->start; q < c->p; q++)
        line += *q == '\n';
    return line;
}

static rc_t cur_fail(struct dotenv_cur *c, const char *what)
{
    cfg_errf(c->err, c->errlen, "%s:%d: %s", c->path, cur_line(c), what);
    return RC_INVALID;
}

static void skip_blank(struct dotenv_cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static void skip_line(struct dotenv_cur *c)
{
    while (c->p < c->end && *c->p != '\n')
        c->p++;
    if (c->p < c->end)
        c->p++;
}

static bool at_eol(const struct dotenv_cur *c)
{
    return c->p >= c->end || *c->p == '\n' ||
           (*c->p == '\r' && (c->p + 1 >= c->end || c->p[1] == '\n'));
}

static char dq_escape(char e)
{
    switch (e) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return e; /* \" \\ \$ and anything else: the character itself */
    }
}

/* Quoted value: '…' is literal, "…" knows \n \r \t \" \\; both may span
 * lines. After the closing quote only blanks and a # comment may follow. */
static rc_t read_quoted(struct dotenv_cur *c, struct buf *v)
{
    char q = *c->p++;
    for (;;) {
        if (c->p >= c->end)
            return cur_fail(c, "unterminated quoted value");
        char ch = *c->p++;
        if (ch == q)
            break;
        if (q == '"' && ch == '\\' && c->p < c->end) {
            char e = *c->p++;
            /* Unknown escapes keep their backslash, like python-dotenv. */
            if (!strchr("\"\\nrt$", e))
                buf_putc(v, '\\');
            ch = dq_escape(e);
        }
        buf_putc(v, ch);
    }
    skip_blank(c);
    if (c->p < c->end && *c->p == '#')
        skip_line(c);
    else if (!at_eol(c))
        return cur_fail(c, "unexpected text after the closing quote");
    else
        skip_line(c);
    return RC_OK;
}

/* Unquoted value: up to the end of the line or a " #" comment, trimmed. */
static void read_plain(struct dotenv_cur *c, struct buf *v)
{
    const char *s = c->p;
    while (c->p < c->end && *c->p != '\n') {
        if (*c->p == '#' && c->p > s && (c->p[-1] == ' ' || c->p[-1] == '\t'))
            break;
        c->p++;
    }
    struct str val = str_trim((struct str){s, (size_t)(c->p - s)});
    buf_append(v, val.p, val.len);
    skip_line(c);
}

static bool key_char(char ch, bool first)
{
    return isalpha((unsigned char)ch) || ch == '_' || (!first && isdigit((unsigned char)ch));
}

static rc_t read_entry(struct dotenv_cur *c, struct cfg_dotenv *d)
{
    if (c->end - c->p > 7 && strncmp(c->p, "export", 6) == 0 &&
        (c->p[6] == ' ' || c->p[6] == '\t')) {
        c->p += 6;
        skip_blank(c);
    }
    const char *k = c->p;
    while (c->p < c->end && key_char(*c->p, c->p == k))
        c->p++;
    size_t klen = (size_t)(c->p - k);
    skip_blank(c);
    if (klen == 0 || c->p >= c->end || *c->p != '=')
        return cur_fail(c, "expected KEY=value");
    c->p++;
    skip_blank(c);
    struct buf v;
    buf_init(&v, CONFIG_VALUE_MAX + 1);
    rc_t rc = RC_OK;
    if (c->p < c->end && (*c->p == '"' || *c->p == '\''))
        rc = read_quoted(c, &v);
    else
        read_plain(c, &v);
    if (rc == RC_OK && v.err)
        rc = cur_fail(c, "value too long");
    if (rc != RC_OK) {
        xfree_secret(v.data, v.len);
        return rc;
    }
    d->keys = xrealloc(d->keys, (size_t)(d->n + 1) * sizeof *d->keys);
    d->vals = xrealloc(d->vals, (size_t)(d->n + 1) * sizeof *d->vals);
    d->keys[d->n] = xstrndup(k, klen);
    d->vals[d->n] = buf_take(&v);
    d->n++;
    return RC_OK;
}

static rc_t dotenv_parse(struct dotenv_cur *c, struct cfg_dotenv *d)
{
    if (c->end - c->p >= 3 && memcmp(c->p, "\xEF\xBB\xBF", 3) == 0)
        c->p += 3;
    while (c->p < c->end) {
        skip_blank(c);
        if (at_eol(c) || *c->p == '#') {
            skip_line(c);
            continue;
        }
        rc_t rc = read_entry(c, d);
        if (rc)
            return rc;
    }
    return RC_OK;
}

/* Reads the whole file into *out (owned). Missing file → *out NULL. */
static rc_t slurp(const char *path, char **out, size_t *out_len, char *err, size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return RC_OK;
        cfg_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return RC_INVALID;
    }
    rc_t rc = RC_OK;
    char *data = xmalloc(CONFIG_DOTENV_MAX + 1);
    size_t n = fread(data, 1, CONFIG_DOTENV_MAX + 1, f);
    if (ferror(f)) {
        cfg_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        rc = RC_INVALID;
    } else if (n > CONFIG_DOTENV_MAX) {
        cfg_errf(err, errlen, "%s: larger than %d bytes", path, CONFIG_DOTENV_MAX);
        rc = RC_INVALID;
    } else if (memchr(data, '\0', n) || !utf8_valid(data, n)) {
        cfg_errf(err, errlen, "%s: not UTF-8 text", path);
        rc = RC_INVALID;
    }
    fclose(f);
    if (rc) {
        xfree_secret(data, CONFIG_DOTENV_MAX + 1);
        return rc;
    }
    *out = data;
    *out_len = n;
    return RC_OK;
}

rc_t cfg_dotenv_read(const char *path, struct cfg_dotenv *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t len = 0;
    rc_t rc = slurp(path, &data, &len, err, errlen);
    if (rc || !data)
        goto out;
    struct dotenv_cur c = {data, data, data + len, path, err, errlen};
    rc = dotenv_parse(&c, out);
    if (rc)
        cfg_dotenv_free(out);
out:
    xfree_secret(data, data ? CONFIG_DOTENV_MAX + 1 : 0);
    return rc;
}

const char *cfg_dotenv_get(const struct cfg_dotenv *d, const char *name)
{
    for (int i = d->n - 1; i >= 0; i--)
        if (strcasecmp(d->keys[i], name) == 0)
            return d->vals[i];
    return NULL;
}

void cfg_dotenv_free(struct cfg_dotenv *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n; i++) {
        free(d->keys[i]);
        xfree_secret_str(d->vals[i]);
    }
    free(d->keys);
    free(d->vals);
    memset(d, 0, sizeof *d);
}
