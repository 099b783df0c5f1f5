/* Route table matching: method + path pattern with {param} segments.
 * Patterns are split once at build time; matching walks segments without
 * allocating. Distinguishes "no route for path" (404) from "route exists,
 * method not served" (405). Immutable after router_new: thread-safe. */
#ifndef AUTHD_HTTP_ROUTER_H
#define AUTHD_HTTP_ROUTER_H

#include <stddef.h>

#define ROUTER_MAX_PARAMS 4
#define ROUTER_MAX_SEGMENTS 12

enum http_method {
    HTTP_GET = 0,
    HTTP_POST,
    HTTP_PUT,
    HTTP_PATCH,
    HTTP_DELETE,
    HTTP_HEAD,
    HTTP_OPTIONS,
    HTTP_OTHER,
    HTTP_METHOD_COUNT
};

enum http_method http_method_parse(const char *s);
const char *http_method_name(enum http_method m); /* "OTHER" for HTTP_OTHER */

struct router;

struct route_match {
    int route;  /* index into the table, -1 when none */
    int status; /* 0 matched, 404 no path, 405 path without this method */
    int nparams;
    const char *names[ROUTER_MAX_PARAMS];
    struct {
        const char *p;
        size_t len;
    } values[ROUTER_MAX_PARAMS]; /* views into the matched path */
};

/* patterns[i] and methods[i] describe route i; patterns are borrowed and
 * must outlive the router. Returns NULL (and logs) on a malformed pattern. */
struct router *router_new(const char *const *patterns, const enum http_method *methods, size_t n);
void router_free(struct router *r);
void router_match(const struct router *r, enum http_method m, const char *path,
                  struct route_match *out);

#endif
