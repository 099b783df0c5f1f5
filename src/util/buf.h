/* Growable byte buffer with a hard maximum and a sticky error (curl's
 * dynbuf): appends past the maximum set `err` and are dropped, so callers
 * check once at the end. The data is always NUL-terminated when non-NULL. */
#ifndef AUTHD_UTIL_BUF_H
#define AUTHD_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* hard maximum of len */
    bool err;   /* sticky: an append exceeded max */
};

void buf_init(struct buf *b, size_t max);
/* Frees data; the struct can be reused after buf_init. */
void buf_free(struct buf *b);
/* Empties without freeing; clears err. */
void buf_reset(struct buf *b);
void buf_append(struct buf *b, const void *p, size_t n);
/* Makes room for n more bytes without changing len (bounded by max). */
void buf_reserve(struct buf *b, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as the inside of a JSON string (no quotes), escaping control
 * characters, quote and backslash; bytes >= 0x80 are copied as they are, so
 * callers pass valid UTF-8. At most max_in input bytes are taken. */
void buf_json_escape(struct buf *b, const char *s, size_t max_in);
/* Hands the data over (caller frees); the buffer is left empty. Never NULL. */
char *buf_take(struct buf *b);

#endif
