/* Audit events (api-admin §9, api-core §9.4/§14, data-model §8): the one
 * way every flow records an audit row, and the history page behind
 * GET /auth/history. No HTTP types: callers pass what they know of the
 * request (correlation id, client IP, User-Agent) as plain strings.
 *
 * Write rules applied here (see docs/audit.md for the full table):
 *   id             fresh UUIDv4
 *   created_at     now, microseconds (set by the service, data-model §1)
 *   event_type     trimmed; empty or > 128 code points → RC_INVALID
 *   actor_type     outside the enum → "system"
 *   actor_id,
 *   target_id      stored only when they parse as a UUID (canonical), else NULL
 *   target_type,
 *   failure_reason trimmed; empty → NULL; target_type > 128 code points →
 *                  RC_INVALID
 *   ip_address     canonical text of a bare IPv4/IPv6 address, else NULL
 *   user_agent     ASCII-trimmed (HTTP already trimmed it), blank → NULL,
 *                  capped at AUDIT_USER_AGENT_MAX bytes (never reached by a
 *                  header that passed the HTTP layer: spec says untruncated)
 *   correlation_id a UUID → canonical lower-case; any other non-empty string
 *                  → UUIDv5(NAMESPACE_URL, string); NULL/"" → NULL
 *   metadata       sanitised copy (audit_metadata_sanitise), stored as JSON
 *                  text (SQLite) / jsonb (PostgreSQL)
 * Every text is made storable on both backends before binding: invalid
 * UTF-8 is decoded as Latin-1 and U+0000 becomes U+FFFD (PostgreSQL rejects
 * both and would abort the caller's transaction).
 *
 * Thread-safety: every function is reentrant. The one piece of process
 * state is the optional group-commit writer (audit_writer_start). */
#ifndef AUTHD_SVC_AUDIT_H
#define AUTHD_SVC_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"
#include "store/audit.h"
#include "util/rc.h"
#include "util/uuid.h"

/* Limits (named here, documented in docs/audit.md). */
#define AUDIT_EVENT_TYPE_MAX 128         /* code points (varchar(128)) */
#define AUDIT_TARGET_TYPE_MAX 128        /* code points (varchar(128)) */
#define AUDIT_USER_AGENT_MAX 65536       /* bytes; >= APP__MAX_HEADER_BYTES max */
#define AUDIT_METADATA_MAX_DEPTH 32      /* deeper containers are stored as null */
#define AUDIT_METADATA_MAX_BYTES 1048576 /* serialised; over it metadata → NULL */
#define AUDIT_PAGE_MAX 200               /* history limit 1..200 */
#define AUDIT_CURSOR_MAX 512             /* longer cursors are undecodable */

enum audit_actor { AUDIT_ACTOR_USER, AUDIT_ACTOR_SERVICE, AUDIT_ACTOR_ADMIN, AUDIT_ACTOR_SYSTEM };

/* Everything borrowed; NULL = absent. */
struct audit_event {
    const char *event_type; /* required, catalogue of api-admin §9.4 */
    const char *actor_id;
    enum audit_actor actor_type;
    const char *target_id;
    const char *target_type;
    const char *ip_address;     /* the trusted client IP ("unknown" → NULL) */
    const char *user_agent;     /* raw User-Agent header */
    const char *correlation_id; /* the request's X-Correlation-ID value */
    bool success;
    const char *failure_reason; /* the error code for failure rows */
    json_t *metadata;           /* borrowed object or NULL; sanitised copy stored */
};

/* Writes one row on c (a DB_WRITE connection), inside the caller's
 * transaction when one is open, so the row commits or rolls back with the
 * change it records; outside a transaction the INSERT commits by itself.
 * Every value is validated and made storable before the INSERT, so the
 * statement fails only for database reasons (connection lost, timeout,
 * disk) that would fail the caller's own statements too.
 * Errors: RC_INVALID (ev NULL, event_type empty or too long, target_type too
 * long, metadata not an object) — returned before any SQL, the caller's
 * transaction is untouched; otherwise the db_exec error, and then (driver
 * rule) the caller's transaction has already been rolled back. The caller
 * decides what a failure means; audit_log_write_failed logs it in the
 * contract's form. */
rc_t audit_write(struct db_conn *c, const struct audit_event *ev) WUR;

/* Standalone write for callers with no transaction (failure rows, worker
 * events): checks a DB_WRITE connection out of db, writes, releases. Never
 * fails the caller: any failure (db NULL, no connection, SQL error) is
 * logged as audit_write_failed (config-ops §7.2) and the event dropped.
 * Must not be called while this thread holds a DB_WRITE connection (SQLite
 * has one writer: the checkout would wait for itself until the pool
 * timeout, then log and drop). */
void audit_write_detached(struct db *db, const struct audit_event *ev);
/* Several events of one request in one standalone transaction (all or
 * none); failures are logged per event, never returned. */
void audit_write_detached_many(struct db *db, const struct audit_event *const *evs, int n);

/* Group commit (api-admin §9.2 lets detached rows land after the
 * response). While a writer runs for db, audit_write_detached(_many) on db
 * validate and copy the event in the caller, queue it and return; one
 * thread commits everything queued in one transaction, once AUDIT_LINGER_MS
 * has passed since the first row or AUDIT_BATCH_ROWS rows are waiting. A batch that fails is
 * retried per request group; rows that still fail are logged (audit_write_failed) and dropped. Rows
 * beyond AUDIT_QUEUE_MAX queued (database down, or more audited requests per second than the
 * database absorbs) are dropped and counted in one `audit_rows_dropped` error line per second. A
 * crash loses at most the rows queued in the last linger window. One writer per process: RC_INVALID
 * if one runs or db is NULL. */
#define AUDIT_LINGER_MS 20
#define AUDIT_BATCH_ROWS 512
#define AUDIT_QUEUE_MAX 100000
rc_t audit_writer_start(struct db *db) WUR;
/* Commits what is queued, then stops the writer (no-op without one).
 * Call before db_close, after the last request. */
void audit_writer_stop(void);
/* Returns once every row queued for db before the call is committed (or
 * dropped after failing). Readers of audit_events call it first so a client
 * sees the rows of its earlier requests. No-op without a writer for db. */
void audit_flush(struct db *db);

/* Logs {"event":"audit_write_failed", event_type, actor_type, success,
 * error} at error level with the event's correlation id. detail (NULL ok)
 * is appended to rc's name in `error`. */
void audit_log_write_failed(const struct audit_event *ev, rc_t rc, const char *detail);

/* "user" | "service" | "admin" | "system"; out-of-range values → "system".
 * Static string. */
const char *audit_actor_name(enum audit_actor a);

/* Sanitised deep copy of metadata per api-admin §9.3 (compat): for each
 * key, normalised as Python's key.strip().lower().replace("-", "_"), that
 * contains api_key, apikey, authorization, cookie, email, otp, password,
 * secret or token, the value (any type) becomes "***REDACTED***"; other
 * values: null/bool/number kept, strings kept unless the whole string looks
 * like an e-mail address ([^@\s]+@[^@\s]+\.[^@\s]+, \s = Unicode
 * whitespace) which becomes "***REDACTED***", objects and arrays recursed.
 * Keys are kept as given. An empty top-level object → NULL. Storage
 * guards: U+0000 in keys and strings → U+FFFD; containers nested deeper
 * than AUDIT_METADATA_MAX_DEPTH → null. Returns a new reference (caller
 * decrefs) or NULL for NULL, JSON null, an empty object or a non-object
 * (callers get RC_INVALID for the latter from audit_write). */
json_t *audit_metadata_sanitise(const json_t *metadata);

/* Correlation id → stored uuid (api-admin §9.2, compat). A string that
 * parses as a UUID the way Python's uuid.UUID() does ("urn:" and "uuid:"
 * removed, surrounding braces stripped, hyphens removed, then exactly 32
 * hex digits) gives its canonical form; any other non-empty string gives
 * uuid5(NAMESPACE_URL = 6ba7b811-9dad-11d1-80b4-00c04fd430c8, its bytes).
 * False (out untouched) for NULL or "". */
bool audit_correlation_uuid(const char *s, char out[UUID_STR_LEN + 1]);

/* History cursor (api-core §9.6, api-admin §4.3): base64url WITH padding of
 * {"created_at":"YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00","id":"<uuid>"} (keys
 * sorted, no whitespace). Returns a new string (free), or NULL when id is
 * not a UUID. */
char *audit_cursor_encode(int64_t created_at_us, const char *id);
/* Accepts padded or unpadded base64url, a JSON object with string keys
 * created_at (ISO 8601; no offset = UTC; a bare date = midnight UTC) and id
 * (any UUID form); other keys ignored. Anything else (NULL, "", longer than
 * AUDIT_CURSOR_MAX, bad base64/JSON, missing or mistyped key, bad
 * timestamp/UUID) → RC_INVALID. */
rc_t audit_cursor_decode(const char *cursor, struct audit_keyset *out) WUR;

/* One page of a user's history. */
struct audit_page {
    json_t *items;     /* owned array of items (see enum audit_item_shape) */
    char *next_cursor; /* owned; non-NULL iff has_more */
    bool has_more;
};

/* GET /auth/history (shape AUDIT_ITEM_HISTORY) and the admin per-user
 * history (AUDIT_ITEM_FULL): rows of user_id (any UUID form) as actor or
 * target among audit_history_event_types, created_at DESC, id DESC, limit
 * 1..AUDIT_PAGE_MAX items after cursor (NULL or "" = first page). Reads on a
 * DB_READ connection. On success *out is filled (free with
 * audit_page_free); on error it is empty. Errors: RC_INVALID (bad user_id,
 * limit out of range, undecodable cursor → the handler's 422), db
 * checkout/exec errors. */
rc_t audit_history(struct db *db, const char *user_id, const char *cursor, int limit,
                   enum audit_item_shape shape, struct audit_page *out) WUR;
void audit_page_free(struct audit_page *p); /* NULL ok; leaves *p empty */

#endif
