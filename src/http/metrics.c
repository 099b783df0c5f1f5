/* Lock-free request metrics (see metrics.h). Each (route, method) cell has
 * a small open-addressed table of status slots claimed with a CAS on the
 * status field; a 17th distinct status for one cell is folded into the last
 * slot's neighbour search failing, counted as status 0 ("other") so the
 * totals stay right. */
#include "http/metrics.h"
#include "util/mem.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define STATUS_SLOTS 16
#define NBUCKETS 14

static const double bucket_le[NBUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1.0,   2.5,  10.0};

struct slot {
    _Atomic int status; /* 0 = free */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
};

struct cell {
    struct slot slots[STATUS_SLOTS];
};

struct hist {
    _Atomic uint64_t buckets[NBUCKETS]; /* last = +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
};

struct metrics {
    int nroutes;
    const char *const *templates;
    struct cell *cells; /* (nroutes + 1) * HTTP_METHOD_COUNT; row 0 = unmatched */
    struct hist *hists; /* nroutes + 1 */
    _Atomic int inflight;
};

struct metrics *metrics_new(const char *const *templates, int nroutes)
{
    struct metrics *m = xcalloc(1, sizeof *m);
    m->nroutes = nroutes;
    m->templates = templates;
    m->cells = xcalloc((size_t)(nroutes + 1) * HTTP_METHOD_COUNT, sizeof *m->cells);
    m->hists = xcalloc((size_t)(nroutes + 1), sizeof *m->hists);
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    free(m->cells);
    free(m->hists);
    free(m);
}

void metrics_inflight_add(struct metrics *m, int delta)
{
    atomic_fetch_add_explicit(&m->inflight, delta, memory_order_relaxed);
}

int metrics_inflight(const struct metrics *m)
{
    return atomic_load_explicit(&((struct metrics *)m)->inflight, memory_order_relaxed);
}

void metrics_observe(struct metrics *m, int route, enum http_method method, int status,
                     int64_t duration_us)
{
    int row = route + 1;
    if (row < 0 || row > m->nroutes)
        row = 0;
    if (duration_us < 0)
        duration_us = 0;
    struct cell *c = &m->cells[row * HTTP_METHOD_COUNT + (int)method];
    struct slot *s = NULL;
    int h = status % STATUS_SLOTS;
    for (int i = 0; i < STATUS_SLOTS && !s; i++) {
        struct slot *cand = &c->slots[(h + i) % STATUS_SLOTS];
        int cur = atomic_load_explicit(&cand->status, memory_order_acquire);
        if (cur == status) {
            s = cand;
        } else if (cur == 0) {
            int expected = 0;
            if (atomic_compare_exchange_strong(&cand->status, &expected, status) ||
                expected == status)
                s = cand;
        }
    }
    if (s) {
        atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->sum_us, (uint64_t)duration_us, memory_order_relaxed);
    }
    struct hist *hg = &m->hists[row];
    double secs = (double)duration_us / 1e6;
    int b = 0;
    while (b < NBUCKETS - 1 && secs > bucket_le[b])
        b++;
    atomic_fetch_add_explicit(&hg->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&hg->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&hg->sum_us, (uint64_t)duration_us, memory_order_relaxed);
}

struct series {
    const char *method;
    const char *path;
    char status[8];
    uint64_t count, sum_us;
};

static int series_cmp(const void *a, const void *b)
{
    const struct series *x = a, *y = b;
    int c = strcmp(x->method, y->method);
    if (!c)
        c = strcmp(x->path, y->path);
    if (!c)
        c = strcmp(x->status, y->status);
    return c;
}

static void label_escape(struct buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_puts(out, "\\\\");
        else if (*s == '"')
            buf_puts(out, "\\\"");
        else if (*s == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *s);
    }
}

static const char *row_path(const struct metrics *m, int row)
{
    return row == 0 ? "__unmatched__" : m->templates[row - 1];
}

static void labels(struct buf *out, const struct series *s)
{
    buf_puts(out, "{method=\"");
    label_escape(out, s->method);
    buf_puts(out, "\",path=\"");
    label_escape(out, s->path);
    buf_printf(out, "\",status=\"%s\"}", s->status);
}

void metrics_render(struct metrics *m, struct buf *out)
{
    size_t cap = 64, n = 0;
    struct series *v = xmalloc(cap * sizeof *v);
    for (int row = 0; row <= m->nroutes; row++) {
        for (int meth = 0; meth < HTTP_METHOD_COUNT; meth++) {
            struct cell *c = &m->cells[row * HTTP_METHOD_COUNT + meth];
            for (int i = 0; i < STATUS_SLOTS; i++) {
                int st = atomic_load(&c->slots[i].status);
                uint64_t cnt = atomic_load(&c->slots[i].count);
                if (!st || !cnt)
                    continue;
                if (n == cap) {
                    cap *= 2;
                    v = xrealloc(v, cap * sizeof *v);
                }
                v[n].method = http_method_name((enum http_method)meth);
                v[n].path = row_path(m, row);
                snprintf(v[n].status, sizeof v[n].status, "%d", st);
                v[n].count = cnt;
                v[n].sum_us = atomic_load(&c->slots[i].sum_us);
                n++;
            }
        }
    }
    qsort(v, n, sizeof *v, series_cmp);
    buf_puts(out, "# HELP auth_service_http_requests_total Total HTTP requests seen by the "
                  "service.\n# TYPE auth_service_http_requests_total counter\n");
    for (size_t i = 0; i < n; i++) {
        buf_puts(out, "auth_service_http_requests_total");
        labels(out, &v[i]);
        buf_printf(out, " %llu\n", (unsigned long long)v[i].count);
    }
    buf_puts(out, "# HELP auth_service_http_request_duration_seconds End-to-end HTTP request "
                  "duration in seconds.\n# TYPE auth_service_http_request_duration_seconds "
                  "summary\n");
    for (size_t i = 0; i < n; i++) {
        buf_puts(out, "auth_service_http_request_duration_seconds_count");
        labels(out, &v[i]);
        buf_printf(out, " %llu\n", (unsigned long long)v[i].count);
        buf_puts(out, "auth_service_http_request_duration_seconds_sum");
        labels(out, &v[i]);
        buf_printf(out, " %.6f\n", (double)v[i].sum_us / 1e6);
    }
    free(v);

    buf_puts(out, "# HELP auth_service_http_request_latency_seconds HTTP request latency by "
                  "route.\n# TYPE auth_service_http_request_latency_seconds histogram\n");
    for (int row = 0; row <= m->nroutes; row++) {
        struct hist *hg = &m->hists[row];
        uint64_t total = atomic_load(&hg->count);
        if (!total)
            continue;
        uint64_t cum = 0;
        for (int b = 0; b < NBUCKETS; b++) {
            cum += atomic_load(&hg->buckets[b]);
            buf_puts(out, "auth_service_http_request_latency_seconds_bucket{path=\"");
            label_escape(out, row_path(m, row));
            if (b < NBUCKETS - 1)
                buf_printf(out, "\",le=\"%g\"} %llu\n", bucket_le[b], (unsigned long long)cum);
            else
                buf_printf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        buf_puts(out, "auth_service_http_request_latency_seconds_sum{path=\"");
        label_escape(out, row_path(m, row));
        buf_printf(out, "\"} %.6f\n", (double)atomic_load(&hg->sum_us) / 1e6);
        buf_puts(out, "auth_service_http_request_latency_seconds_count{path=\"");
        label_escape(out, row_path(m, row));
        buf_printf(out, "\"} %llu\n", (unsigned long long)total);
    }
    buf_printf(out,
               "# HELP auth_service_http_requests_in_flight Requests being processed.\n"
               "# TYPE auth_service_http_requests_in_flight gauge\n"
               "auth_service_http_requests_in_flight %d\n",
               metrics_inflight(m));
}
