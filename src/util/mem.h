/* Allocation wrappers: allocation failure aborts the process in one place,
 * so callers never carry NULL checks for memory. Sizes a client influences
 * must be capped by the caller before they reach these. */
#ifndef AUTHD_UTIL_MEM_H
#define AUTHD_UTIL_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Zeroes n bytes in a way the compiler cannot drop, then frees. NULL ok. */
void xfree_secret(void *p, size_t n);
/* free() of a string that held a secret; wipes strlen bytes. NULL ok. */
void xfree_secret_str(char *s);

#endif
