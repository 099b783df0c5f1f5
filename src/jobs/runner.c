/* Periodic duties on one thread (see runner.h). The thread sleeps on a
 * condition variable so jobs_stop wakes it at once. */
#include "jobs/runner.h"
#include "svc/keys.h"
#include "svc/mailer.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/timeutil.h"
#include "util/thread.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define SWEEP_INTERVAL_US (60LL * 1000000)
#define KEYS_INTERVAL_US (60LL * 1000000)

struct jobs {
    struct app *app;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static void *run(void *p)
{
    struct jobs *j = p;
    thread_set_name("jobs");
    int64_t next_sweep = time_mono_us() + SWEEP_INTERVAL_US;
    int64_t next_keys = time_mono_us() + KEYS_INTERVAL_US;
    pthread_mutex_lock(&j->mu);
    while (!j->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        if (j->stop)
            break;
        pthread_mutex_unlock(&j->mu);
        if (time_mono_us() >= next_sweep) {
            int n = kv_sweep(j->app->kv);
            if (n > 0)
                log_msg(LOG_DEBUG, "kv_swept", "removed %d expired entries", n);
            next_sweep = time_mono_us() + SWEEP_INTERVAL_US;
        }
        if (time_mono_us() >= next_keys) {
            keys_job(j->app->keys);
            next_keys = time_mono_us() + KEYS_INTERVAL_US;
        }
        mailer_job(j->app->mailer);
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

struct jobs *jobs_start(struct app *app)
{
    struct jobs *j = xcalloc(1, sizeof *j);
    j->app = app;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&j->thread, NULL, run, j) != 0)
        abort();
    return j;
}

void jobs_stop(struct jobs *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}
