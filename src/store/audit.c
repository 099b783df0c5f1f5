/* audit_events statements (see audit.h). One SQL text per statement, the
 * same on both backends: PostgreSQL infers uuid / inet / jsonb /
 * audit_actor_type / timestamptz for the text parameters from the columns
 * they meet, SQLite stores the text as given. The event-type list of the
 * history feeds is written into the SQL as constants (never from input)
 * and mirrored by audit_history_event_types[]. */
#include "store/audit.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <string.h>

const char *const audit_history_event_types[] = {
    "user.login.success",
    "user.login.failure",
    "user.login.suspicious",
    "user.logout",
    "session.created",
    "session.revoked",
    "password.reset.requested",
    "password.reset.completed",
    "user.password.reset.requested",
    "user.password.reset.completed",
    "otp.verified",
    "otp.failed",
    "otp.expired",
    "otp.excessive_failures",
    "otp.admin_toggled",
    NULL,
};

#define HISTORY_TYPES_SQL                                                                          \
    "'user.login.success', 'user.login.failure', 'user.login.suspicious', 'user.logout', "         \
    "'session.created', 'session.revoked', 'password.reset.requested', "                           \
    "'password.reset.completed', 'user.password.reset.requested', "                                \
    "'user.password.reset.completed', 'otp.verified', 'otp.failed', 'otp.expired', "               \
    "'otp.excessive_failures', 'otp.admin_toggled'"

#define AUDIT_COLS                                                                                 \
    "id, event_type, actor_id, actor_type, target_id, target_type, ip_address, user_agent, "       \
    "correlation_id, success, failure_reason, metadata, created_at"

enum {
    COL_ID,
    COL_EVENT_TYPE,
    COL_ACTOR_ID,
    COL_ACTOR_TYPE,
    COL_TARGET_ID,
    COL_TARGET_TYPE,
    COL_IP,
    COL_UA,
    COL_CORRELATION,
    COL_SUCCESS,
    COL_FAILURE,
    COL_METADATA,
    COL_CREATED_AT,
};

/* Two branches so each uses its (actor_id, created_at) / (target_id,
 * created_at) index and both merge in order (SQLite: MERGE (UNION ALL);
 * PostgreSQL: Merge Append) instead of scanning every user's events of the
 * listed types; the second branch skips rows the first already has (the
 * user as both actor and target). $1 is the user, KEYSET the page bound. */
#define HISTORY_SQL(KEYSET, LIMIT)                                                                 \
    "SELECT " AUDIT_COLS " FROM audit_events WHERE actor_id = $1 "                                 \
    "AND event_type IN (" HISTORY_TYPES_SQL ") " KEYSET " UNION ALL "                              \
    "SELECT " AUDIT_COLS " FROM audit_events WHERE target_id = $1 "                                \
    "AND (actor_id IS NULL OR actor_id <> $1) "                                                    \
    "AND event_type IN (" HISTORY_TYPES_SQL ") " KEYSET                                            \
    " ORDER BY created_at DESC, id DESC LIMIT " LIMIT

static const char sql_history_first[] = HISTORY_SQL("", "$2");
static const char sql_history_after[] =
    HISTORY_SQL("AND (created_at < $2 OR (created_at = $2 AND id < $3))", "$4");

rc_t audit_store_insert(struct db_conn *c, const struct audit_row *r)
{
    char ts[TIME_STR_MAX];
    time_format(r->created_at_us, TIME_STYLE_DB, ts);
    struct db_param p[] = {
        DBP_T(r->id),
        DBP_T(r->event_type),
        DBP_T(r->actor_id),
        DBP_T(r->actor_type),
        DBP_T(r->target_id),
        DBP_T(r->target_type),
        DBP_T(r->ip_address),
        DBP_T(r->user_agent),
        DBP_T(r->correlation_id),
        DBP_B(r->success),
        DBP_T(r->failure_reason),
        DBP_T(r->metadata_json),
        DBP_T(ts),
    };
    return db_exec(c,
                   "INSERT INTO audit_events (" AUDIT_COLS ") VALUES "
                   "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                   13, p, NULL);
}

/* Text column → JSON string, NULL → null. Text that is not UTF-8 (never
 * written by us; PostgreSQL cannot hold it) also reads as null. */
static json_t *jstr(const struct db_res *r, int row, int col)
{
    const char *v = db_res_get(r, row, col);
    json_t *j = v ? json_string(v) : NULL;
    return j ? j : json_null();
}

/* Stored metadata → object or null (SQL NULL, JSON null, unparsable or a
 * non-object legacy value). */
static json_t *jmeta(const struct db_res *r, int row)
{
    const char *v = db_res_get(r, row, COL_METADATA);
    json_t *j = v ? json_loads(v, JSON_DECODE_ANY, NULL) : NULL;
    if (j && json_is_object(j))
        return j;
    json_decref(j);
    return json_null();
}

static json_t *item(const struct db_res *r, int row, enum audit_item_shape shape, int64_t at_us)
{
    char ts[TIME_STR_MAX];
    time_format(at_us, TIME_STYLE_Z, ts);
    json_t *o = json_object();
    json_object_set_new(o, "id", jstr(r, row, COL_ID));
    json_object_set_new(o, "event_type", jstr(r, row, COL_EVENT_TYPE));
    if (shape == AUDIT_ITEM_HISTORY) {
        json_object_set_new(o, "created_at", json_string(ts));
    } else {
        json_object_set_new(o, "actor_id", jstr(r, row, COL_ACTOR_ID));
        json_object_set_new(o, "actor_type", jstr(r, row, COL_ACTOR_TYPE));
        json_object_set_new(o, "target_id", jstr(r, row, COL_TARGET_ID));
        json_object_set_new(o, "target_type", jstr(r, row, COL_TARGET_TYPE));
    }
    json_object_set_new(o, "ip_address", jstr(r, row, COL_IP));
    json_object_set_new(o, "user_agent", jstr(r, row, COL_UA));
    if (shape == AUDIT_ITEM_FULL)
        json_object_set_new(o, "correlation_id", jstr(r, row, COL_CORRELATION));
    json_object_set_new(o, "success", json_boolean(db_res_bool(r, row, COL_SUCCESS)));
    json_object_set_new(o, "failure_reason", jstr(r, row, COL_FAILURE));
    json_object_set_new(o, "metadata", jmeta(r, row));
    if (shape == AUDIT_ITEM_FULL)
        json_object_set_new(o, "created_at", json_string(ts));
    return o;
}

rc_t audit_store_user_history(struct db_conn *c, const char *user_id,
                              const struct audit_keyset *after, int limit,
                              enum audit_item_shape shape, json_t **out_items, bool *out_has_more,
                              struct audit_keyset *out_last)
{
    *out_items = NULL;
    *out_has_more = false;
    if (limit < 1 || !user_id)
        return RC_INVALID;
    struct db_res *r = NULL;
    json_t *arr = NULL;
    char ts[TIME_STR_MAX];
    rc_t rc;
    if (after) {
        time_format(after->created_at_us, TIME_STYLE_DB, ts);
        struct db_param p[] = {DBP_T(user_id), DBP_T(ts), DBP_T(after->id), DBP_I(limit + 1)};
        rc = db_exec(c, sql_history_after, 4, p, &r);
    } else {
        struct db_param p[] = {DBP_T(user_id), DBP_I(limit + 1)};
        rc = db_exec(c, sql_history_first, 2, p, &r);
    }
    if (rc)
        goto out;
    int rows = db_res_rows(r);
    int n = rows > limit ? limit : rows;
    arr = json_array();
    for (int i = 0; i < n; i++) {
        int64_t at = 0;
        if (!db_res_time(r, i, COL_CREATED_AT, &at)) {
            rc = RC_DB;
            goto out;
        }
        json_array_append_new(arr, item(r, i, shape, at));
        if (i == n - 1) {
            out_last->created_at_us = at;
            snprintf(out_last->id, sizeof out_last->id, "%s", db_res_get(r, i, COL_ID));
        }
    }
    *out_has_more = rows > limit;
    *out_items = arr;
    arr = NULL;
out:
    json_decref(arr);
    db_res_free(r);
    return rc;
}
