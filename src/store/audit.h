/* SQL of the audit_events table (data-model §8): the append-only insert and
 * the per-user history page behind GET /auth/history (api-core §9.4) and
 * GET /admin/users/{id}/history (api-admin §6.7).
 *
 * Values reaching this module are already validated by src/svc/audit.c
 * (uuid text canonical, inet canonical, JSON text of an object, UTF-8
 * text): PostgreSQL rejects malformed uuid/inet/jsonb text and would abort
 * the caller's transaction. Every function takes a checked-out connection;
 * the caller owns any transaction. Thread-safety: that of the connection. */
#ifndef AUTHD_STORE_AUDIT_H
#define AUTHD_STORE_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"
#include "util/rc.h"
#include "util/uuid.h"

/* One row as stored. Strings borrowed; NULL = SQL NULL. */
struct audit_row {
    const char *id;             /* canonical uuid, required */
    const char *event_type;     /* required, <= 128 code points */
    const char *actor_id;       /* canonical uuid or NULL */
    const char *actor_type;     /* "user" | "service" | "admin" | "system" */
    const char *target_id;      /* canonical uuid or NULL */
    const char *target_type;    /* <= 128 code points or NULL */
    const char *ip_address;     /* canonical IP text or NULL */
    const char *user_agent;     /* NULL ok */
    const char *correlation_id; /* canonical uuid or NULL */
    bool success;
    const char *failure_reason; /* NULL ok */
    const char *metadata_json;  /* JSON text of an object, or NULL */
    int64_t created_at_us;      /* Unix microseconds, UTC */
};

/* INSERT of one row (one SQL text on both backends; metadata is bound as
 * text: SQLite stores it as written, PostgreSQL parses it into jsonb).
 * Errors: those of db_exec (RC_CONFLICT on a duplicate id). */
rc_t audit_store_insert(struct db_conn *c, const struct audit_row *r) WUR;

/* Position in the history order (created_at DESC, id DESC): a page starts
 * strictly after it. */
struct audit_keyset {
    int64_t created_at_us;
    char id[UUID_STR_LEN + 1]; /* canonical */
};

/* Shape of the items of a history page. */
enum audit_item_shape {
    /* api-core §9.4: id, event_type, created_at, ip_address, user_agent,
     * success, failure_reason, metadata */
    AUDIT_ITEM_HISTORY,
    /* api-admin §5.3 AuditLogItem: id, event_type, actor_id, actor_type,
     * target_id, target_type, ip_address, user_agent, correlation_id,
     * success, failure_reason, metadata, created_at */
    AUDIT_ITEM_FULL,
};

/* The 15 event types of the history feeds (api-core §9.4, api-admin §6.7
 * decision A10), NULL-terminated. */
extern const char *const audit_history_event_types[];

/* One page of the history of user_id (canonical uuid): rows whose actor_id
 * or target_id is the user and whose event_type is one of
 * audit_history_event_types, ordered created_at DESC, id DESC, starting
 * strictly after `after` (NULL = from the newest). Reads limit + 1 rows:
 * *out_items receives a new JSON array (caller decrefs) of at most limit
 * items shaped per `shape` (fields in contract order; timestamps style Z;
 * metadata an object or null), *out_has_more whether more rows follow, and
 * *out_last the keyset of the last returned item (untouched when the page
 * is empty). Errors: RC_INVALID (limit < 1), db_exec errors, RC_DB for a
 * row whose created_at cannot be read. */
rc_t audit_store_user_history(struct db_conn *c, const char *user_id,
                              const struct audit_keyset *after, int limit,
                              enum audit_item_shape shape, json_t **out_items, bool *out_has_more,
                              struct audit_keyset *out_last) WUR;

#endif
