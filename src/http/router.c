/* Segment-wise route matching (see router.h). A path matches a pattern when
 * both have the same number of '/'-separated segments and each literal
 * segment is equal; "{name}" segments match any non-empty segment. A
 * trailing slash makes an extra empty segment, so "/x/" never matches "/x"
 * (api-core §1.3: no redirect, 404). */
#include "http/router.h"
#include "util/log.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

struct seg {
    const char *p;
    size_t len;
    const char *param; /* non-NULL for {name} segments (NUL-terminated copy) */
};

struct rroute {
    enum http_method method;
    int nseg;
    struct seg segs[ROUTER_MAX_SEGMENTS];
};

struct router {
    size_t n;
    struct rroute *routes;
};

static const char *const method_names[HTTP_METHOD_COUNT] = {"GET",    "POST", "PUT",     "PATCH",
                                                            "DELETE", "HEAD", "OPTIONS", "OTHER"};

enum http_method http_method_parse(const char *s)
{
    for (int i = 0; i < HTTP_OTHER; i++)
        if (strcmp(s, method_names[i]) == 0)
            return (enum http_method)i;
    return HTTP_OTHER;
}

const char *http_method_name(enum http_method m)
{
    return (unsigned)m < HTTP_METHOD_COUNT ? method_names[m] : "OTHER";
}

/* Splits path (starting with '/') into segments; returns count or -1. */
static int split(const char *path, struct seg *segs)
{
    if (path[0] != '/')
        return -1;
    int n = 0;
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (n == ROUTER_MAX_SEGMENTS)
            return -1;
        segs[n].p = p;
        segs[n].len = len;
        segs[n].param = NULL;
        n++;
        if (!slash)
            break;
        p = slash + 1;
    }
    return n;
}

struct router *router_new(const char *const *patterns, const enum http_method *methods, size_t n)
{
    struct router *r = xcalloc(1, sizeof *r);
    r->n = n;
    r->routes = xcalloc(n ? n : 1, sizeof *r->routes);
    for (size_t i = 0; i < n; i++) {
        struct rroute *rr = &r->routes[i];
        rr->method = methods[i];
        rr->nseg = split(patterns[i], rr->segs);
        int params = 0;
        for (int s = 0; rr->nseg > 0 && s < rr->nseg; s++) {
            struct seg *sg = &rr->segs[s];
            if (sg->len >= 2 && sg->p[0] == '{' && sg->p[sg->len - 1] == '}') {
                sg->param = xstrndup(sg->p + 1, sg->len - 2);
                params++;
            }
        }
        if (rr->nseg <= 0 || params > ROUTER_MAX_PARAMS) {
            log_msg(LOG_CRITICAL, "route_invalid", "bad route pattern %s", patterns[i]);
            router_free(r);
            return NULL;
        }
    }
    return r;
}

void router_free(struct router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        for (int s = 0; s < r->routes[i].nseg; s++)
            free((char *)r->routes[i].segs[s].param);
    free(r->routes);
    free(r);
}

static bool match_route(const struct rroute *rr, const struct seg *segs, int nseg,
                        struct route_match *out)
{
    if (rr->nseg != nseg)
        return false;
    int np = 0;
    for (int s = 0; s < nseg; s++) {
        const struct seg *ps = &rr->segs[s];
        if (ps->param) {
            if (segs[s].len == 0)
                return false;
            out->names[np] = ps->param;
            out->values[np].p = segs[s].p;
            out->values[np].len = segs[s].len;
            np++;
        } else if (ps->len != segs[s].len || memcmp(ps->p, segs[s].p, ps->len) != 0) {
            return false;
        }
    }
    out->nparams = np;
    return true;
}

void router_match(const struct router *r, enum http_method m, const char *path,
                  struct route_match *out)
{
    struct seg segs[ROUTER_MAX_SEGMENTS];
    out->route = -1;
    out->status = 404;
    out->nparams = 0;
    int nseg = split(path, segs);
    if (nseg < 0)
        return;
    for (size_t i = 0; i < r->n; i++) {
        struct route_match tmp;
        if (!match_route(&r->routes[i], segs, nseg, &tmp))
            continue;
        if (r->routes[i].method == m) {
            *out = tmp;
            out->route = (int)i;
            out->status = 0;
            return;
        }
        out->status = 405;
    }
}
