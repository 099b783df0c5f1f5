/* Allocation wrappers that abort on exhaustion (see mem.h). */
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
    static const char msg[] = "{\"event\":\"out_of_memory\",\"level\":\"critical\"}\n";
    fwrite(msg, 1, sizeof msg - 1, stderr);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void xfree_secret(void *p, size_t n)
{
    if (!p)
        return;
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
    free(p);
}

void xfree_secret_str(char *s)
{
    if (s)
        xfree_secret(s, strlen(s));
}
