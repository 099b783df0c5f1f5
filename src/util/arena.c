/* Chunked bump allocator with deferred destructors (see arena.h).
 * Invariant: chunks form a singly linked list, newest first; allocations
 * larger than a chunk get a chunk of their own. */
#include "util/arena.h"
#include "util/mem.h"

#include <stdarg.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 4096u

struct chunk {
    struct chunk *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

struct dtor {
    struct dtor *next;
    arena_dtor_fn fn;
    void *obj;
};

struct arena {
    struct chunk *head;
    struct dtor *dtors;
    size_t total;
};

struct arena *arena_new(void)
{
    return xcalloc(1, sizeof(struct arena));
}

void arena_free(struct arena *a)
{
    if (!a)
        return;
    for (struct dtor *d = a->dtors; d; d = d->next)
        d->fn(d->obj);
    struct chunk *c = a->head;
    while (c) {
        struct chunk *n = c->next;
        free(c);
        c = n;
    }
    free(a);
}

void *arena_alloc(struct arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (n == 0)
        n = align;
    struct chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = xmalloc(sizeof(struct chunk) + cap);
        c->used = 0;
        c->cap = cap;
        if (n > ARENA_CHUNK && a->head) {
            /* Keep the current chunk first so its free space stays usable. */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    a->total += n;
    return p;
}

void *arena_zalloc(struct arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void *arena_defer(struct arena *a, arena_dtor_fn fn, void *obj)
{
    if (!obj)
        return NULL;
    struct dtor *d = arena_alloc(a, sizeof *d);
    d->fn = fn;
    d->obj = obj;
    d->next = a->dtors;
    a->dtors = d;
    return obj;
}

size_t arena_used(const struct arena *a)
{
    return a->total;
}
