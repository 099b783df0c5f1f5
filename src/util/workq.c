/* Worker pool with start deadlines (see workq.h). Invariant: the queue is a
 * FIFO ring protected by mu; workers sleep on cv; `stopping` is set once. */
#include "util/workq.h"
#include "util/mem.h"
#include "util/timeutil.h"
#include "util/thread.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct job {
    workq_fn fn;
    void *arg;
    int64_t deadline;
};

struct workq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *ring;
    int cap, head, count, running;
    bool stopping;
    int nthreads;
    pthread_t *threads;
    char name[16];
};

static void *worker(void *p)
{
    struct workq *q = p;
    thread_set_name(q->name);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->count == 0 && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->count == 0 && q->stopping)
            break;
        struct job j = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        q->running++;
        pthread_mutex_unlock(&q->mu);
        bool expired = j.deadline && time_mono_us() > j.deadline;
        j.fn(j.arg, expired);
        pthread_mutex_lock(&q->mu);
        q->running--;
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

struct workq *workq_new(const char *name, int nthreads, int max_queued)
{
    struct workq *q = xcalloc(1, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", name);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->cap = max_queued > 0 ? max_queued : 1;
    q->ring = xcalloc((size_t)q->cap, sizeof *q->ring);
    q->nthreads = nthreads > 0 ? nthreads : 1;
    q->threads = xcalloc((size_t)q->nthreads, sizeof *q->threads);
    for (int i = 0; i < q->nthreads; i++)
        if (pthread_create(&q->threads[i], NULL, worker, q) != 0)
            abort();
    return q;
}

void workq_free(struct workq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->threads);
    free(q->ring);
    free(q);
}

rc_t workq_submit(struct workq *q, workq_fn fn, void *arg, int64_t deadline_mono_us)
{
    pthread_mutex_lock(&q->mu);
    if (q->count == q->cap || q->stopping) {
        pthread_mutex_unlock(&q->mu);
        return RC_BUSY;
    }
    q->ring[(q->head + q->count) % q->cap] = (struct job){fn, arg, deadline_mono_us};
    q->count++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return RC_OK;
}

void workq_stats(struct workq *q, int *out_queued, int *out_running)
{
    pthread_mutex_lock(&q->mu);
    *out_queued = q->count;
    *out_running = q->running;
    pthread_mutex_unlock(&q->mu);
}
