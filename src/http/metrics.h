/* Request metrics (config-ops §8): per (route, method, status) counters and
 * duration sums, a per-route latency histogram, requests in flight. Updates
 * are lock-free atomics on the hot path; rendering takes a snapshot.
 * Thread-safe. */
#ifndef AUTHD_HTTP_METRICS_H
#define AUTHD_HTTP_METRICS_H

#include <stdint.h>

#include "http/router.h"
#include "util/buf.h"

struct metrics;

/* nroutes routes; route index -1 is the "__unmatched__" series.
 * templates[i] is borrowed and must outlive the metrics. */
struct metrics *metrics_new(const char *const *templates, int nroutes);
void metrics_free(struct metrics *m);
void metrics_inflight_add(struct metrics *m, int delta);
int metrics_inflight(const struct metrics *m);
void metrics_observe(struct metrics *m, int route, enum http_method method, int status,
                     int64_t duration_us);
/* Appends the Prometheus text (both contract families, then the histogram and
 * in-flight gauge). */
void metrics_render(struct metrics *m, struct buf *out);

#endif
