/* Per-request arena (h2o's req->pool): bump allocation in chunks, plus a list
 * of destructors for foreign objects (json_t, PGresult, secret buffers).
 * arena_free runs destructors in reverse order of registration, then frees
 * the chunks. Not thread-safe: one arena has one owner at a time. */
#ifndef AUTHD_UTIL_ARENA_H
#define AUTHD_UTIL_ARENA_H

#include <stddef.h>

struct arena;

typedef void (*arena_dtor_fn)(void *obj);

struct arena *arena_new(void);
/* NULL ok. */
void arena_free(struct arena *a);
/* Aligned to max_align_t; never NULL (aborts on exhaustion). */
void *arena_alloc(struct arena *a, size_t n);
void *arena_zalloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Registers fn(obj) to run at arena_free. obj NULL is ignored. Returns obj. */
void *arena_defer(struct arena *a, arena_dtor_fn fn, void *obj);
/* Bytes handed out so far (for tests and limits). */
size_t arena_used(const struct arena *a);

#endif
