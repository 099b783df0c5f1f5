/* Small string helpers over {ptr,len} views and C strings. No allocation
 * unless the name says so. */
#ifndef AUTHD_UTIL_STR_H
#define AUTHD_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct str {
    const char *p; /* never NULL */
    size_t len;
};

#define STR_LIT(s) ((struct str){(s), sizeof(s) - 1})

struct str str_of(const char *s);  /* s NULL → empty view */
struct str str_trim(struct str s); /* ASCII whitespace */
bool str_eq(struct str a, const char *b);
bool str_ieq(struct str a, const char *b); /* ASCII case-insensitive */
bool str_starts_with(const char *s, const char *prefix);
bool str_istarts_with(const char *s, const char *prefix);

/* True when s[0..n) is valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
bool utf8_valid(const char *s, size_t n);
/* Code points in valid UTF-8. */
size_t utf8_len(const char *s, size_t n);

/* Strict decimal integer (optional leading '-', no spaces, no overflow). */
bool str_parse_i64(const char *s, int64_t *out);
/* Value of one hex digit (either case), or -1. */
int str_hex_digit(char c);
/* application/x-www-form-urlencoded decoding of s[0..n) into out (cap bytes
 * incl. the NUL): '+' is a space, %XX a byte, a malformed escape stays
 * literal (as Python's unquote_plus). False when the result does not fit,
 * holds a NUL byte or is not valid UTF-8. cap = n + 1 always fits. */
bool str_form_decode(const char *s, size_t n, char *out, size_t cap);

#endif
