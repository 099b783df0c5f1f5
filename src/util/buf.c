/* Bounded growable buffer (see buf.h). */
#include "util/buf.h"
#include "util/mem.h"
#include "util/str.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->err = false;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->err = false;
    if (b->data)
        b->data[0] = '\0';
}

static bool grow(struct buf *b, size_t n)
{
    if (b->err)
        return false;
    if (n > b->max - b->len) {
        b->err = true;
        return false;
    }
    size_t need = b->len + n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    return true;
}

void buf_reserve(struct buf *b, size_t n)
{
    if (n > b->max - b->len)
        n = b->max - b->len;
    bool err = b->err;
    if (grow(b, n))
        b->data[b->len] = '\0';
    b->err = err;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    if (!grow(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_putc(struct buf *b, char c)
{
    buf_append(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = true;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        buf_append(b, tmp, (size_t)n);
        return;
    }
    if (!grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_json_escape(struct buf *b, const char *s, size_t max_in)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0, i = 0;
    for (; i < max_in && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            /* Copy valid UTF-8 sequences; anything else becomes U+FFFD so
             * request-derived bytes can never break the JSON line. */
            size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (i + len <= max_in && utf8_valid(s + i, len) && memchr(s + i, 0, len) == NULL) {
                i += len - 1;
                continue;
            }
            buf_append(b, s + start, i - start);
            buf_puts(b, "\\ufffd");
            start = i + 1;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        buf_append(b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"':
            buf_append(b, "\\\"", 2);
            break;
        case '\\':
            buf_append(b, "\\\\", 2);
            break;
        case '\n':
            buf_append(b, "\\n", 2);
            break;
        case '\r':
            buf_append(b, "\\r", 2);
            break;
        case '\t':
            buf_append(b, "\\t", 2);
            break;
        default: {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, e, 6);
        }
        }
    }
    buf_append(b, s + start, i - start);
}

char *buf_take(struct buf *b)
{
    char *p = b->data ? b->data : xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
