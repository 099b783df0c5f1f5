/* Domain events (api-admin §10.1): the one place flows raise the events
 * that webhooks deliver (user.created, api_key.created, client.created,
 * ...). Called inside the transaction of the change it reports, so the
 * webhook fan-out can be written with it (outbox) when the webhooks issue
 * plugs delivery in; until then an event is only logged at debug level.
 * Thread-safe. */
#ifndef AUTHD_SVC_EVENTS_H
#define AUTHD_SVC_EVENTS_H

#include <jansson.h>

#include "db/db.h"
#include "util/rc.h"

/* type: catalogue name; data: the event's payload object (reference
 * stolen, NULL = {}). c: the caller's DB_WRITE connection with its
 * transaction open (NULL when the change has none). An error means the
 * caller's transaction must roll back. */
rc_t events_emit(struct db_conn *c, const char *type, json_t *data) WUR;

#endif
