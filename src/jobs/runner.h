/* In-process job runner (config-ops §11): one thread that runs periodic
 * duties until stopped: the in-process KV sweeper and signing-key
 * retirement (every 60 s), email delivery (every second). */
#ifndef AUTHD_JOBS_RUNNER_H
#define AUTHD_JOBS_RUNNER_H

#include "app.h"

struct jobs;

/* Starts the runner thread; app must outlive it. */
struct jobs *jobs_start(struct app *app);
/* Stops and joins; NULL ok. */
void jobs_stop(struct jobs *j);

#endif
