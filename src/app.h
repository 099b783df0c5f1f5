/* The process-wide state of `authd serve`, built once by the entry layer
 * and handed to every handler through http_req_app. Owned by main; every
 * member is thread-safe or immutable after start-up. */
#ifndef AUTHD_APP_H
#define AUTHD_APP_H

#include "config/config.h"
#include "db/db.h"
#include "http/http.h"
#include "kv/kv.h"
#include "util/workq.h"

struct app {
    const struct config *cfg;
    struct db *db;
    struct kv *kv;
    struct workq *blocking; /* general off-event-loop work (test hooks) */
    struct http_server *http;
};

#endif
