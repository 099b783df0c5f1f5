/* SQL of the email_outbox table (data-model §14.2, §10.6). Every function
 * takes a checked-out connection; the caller owns any transaction. Times
 * are Unix microseconds (bound as the fixed-width text of docs/storage.md).
 *
 * Claiming: outbox_claim moves the next_attempt_at of one due row to a
 * lease instant in a single UPDATE (with FOR UPDATE SKIP LOCKED on
 * PostgreSQL; on SQLite the single writer serialises claimers). The lease
 * value is the claim's token: every later update of the row names it, and
 * does nothing (RC_NOT_FOUND) when another claimer has taken the row since.
 * Final states (sent, abandoned) null both bodies in the same statement. */
#ifndef AUTHD_STORE_OUTBOX_H
#define AUTHD_STORE_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"
#include "util/arena.h"
#include "util/rc.h"

#define OUTBOX_ERROR_MAX 1000 /* last_error, in bytes (cut on a UTF-8 boundary) */

struct outbox_new {
    const char *id; /* canonical uuid */
    const char *kind;
    const char *to_address;
    const char *subject;
    const char *body_text; /* enc2 envelope */
    const char *body_html; /* enc2 envelope, or NULL */
    int64_t expires_at_us; /* 0 → NULL */
    int64_t now_us;        /* created_at and next_attempt_at */
};

struct outbox_row {
    char id[37];
    const char *kind; /* strings owned by the arena given to the call */
    const char *to_address;
    const char *subject;
    const char *body_text; /* NULL when wiped */
    const char *body_html;
    int attempt_count;
    int64_t expires_at_us; /* 0 when NULL */
    int64_t lease_us;      /* the claim token (next_attempt_at as claimed) */
};

rc_t outbox_insert(struct db_conn *c, const struct outbox_new *r) WUR;
/* *out_due: some row has status pending/failed and next_attempt_at <= now
 * (a cheap check that runs on a reader before taking the writer). */
rc_t outbox_any_due(struct db_conn *c, int64_t now_us, bool *out_due) WUR;
/* Claims the most overdue row, setting next_attempt_at = lease_us.
 * RC_NOT_FOUND when nothing is due. */
rc_t outbox_claim(struct db_conn *c, struct arena *a, int64_t now_us, int64_t lease_us,
                  struct outbox_row *out) WUR;
/* status sent, attempt_count, sent_at; bodies and last_error nulled. */
rc_t outbox_mark_sent(struct db_conn *c, const char *id, int64_t lease_us, int attempt_count,
                      int64_t now_us) WUR;
/* status failed, attempt_count, next_attempt_at, last_error. */
rc_t outbox_mark_failed(struct db_conn *c, const char *id, int64_t lease_us, int attempt_count,
                        int64_t next_us, const char *error) WUR;
/* status abandoned, attempt_count, last_error (may be NULL: kept), bodies
 * nulled. */
rc_t outbox_mark_abandoned(struct db_conn *c, const char *id, int64_t lease_us, int attempt_count,
                           const char *error) WUR;
/* Gives a claimed row back unattempted: next_attempt_at = now. */
rc_t outbox_release(struct db_conn *c, const char *id, int64_t lease_us, int64_t now_us) WUR;
/* Deletes rows with created_at < cutoff; *out_n (may be NULL) = count. */
rc_t outbox_delete_created_before(struct db_conn *c, int64_t cutoff_us, int64_t *out_n) WUR;

#endif
