/* Bounded-wait worker pool: jobs that must not run on an HTTP event loop
 * (password hashing, deliberate sleeps in tests). A job carries a start
 * deadline; a worker that dequeues it after the deadline calls it with
 * expired=true instead of doing the work, so a caller's wait for a worker is
 * bounded by its deadline plus one job's duration. Thread-safe. */
#ifndef AUTHD_UTIL_WORKQ_H
#define AUTHD_UTIL_WORKQ_H

#include <stdbool.h>
#include <stdint.h>

#include "util/rc.h"

struct workq;

/* Runs on a worker thread. expired=true means "do not do the work, answer
 * busy": the job waited past its deadline. Always called exactly once. */
typedef void (*workq_fn)(void *arg, bool expired);

/* nthreads >= 1; max_queued bounds jobs waiting (submit → RC_BUSY beyond).
 * name: the worker threads' name (see util/thread.h). */
struct workq *workq_new(const char *name, int nthreads, int max_queued);
/* Finishes queued jobs (expired ones get expired=true), joins. NULL ok. */
void workq_free(struct workq *q);
/* deadline_mono_us: latest start time on time_mono_us's clock; 0 = none.
 * RC_BUSY when max_queued jobs are already waiting (fn is not called). */
rc_t workq_submit(struct workq *q, workq_fn fn, void *arg, int64_t deadline_mono_us) WUR;
/* Jobs waiting (not yet started) and running, for metrics. */
void workq_stats(struct workq *q, int *out_queued, int *out_running);

#endif
