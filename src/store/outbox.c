/* email_outbox statements (see outbox.h). The only dialect split is the
 * claim: PostgreSQL locks the chosen row with FOR UPDATE SKIP LOCKED so
 * concurrent claimers in other processes pass over it; SQLite has no row
 * locks and needs none (one writer at a time). */
#include "store/outbox.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <string.h>

#define CLAIM_RETURNING                                                                            \
    " RETURNING id, kind, to_address, subject, body_text, body_html, attempt_count, expires_at"

#define DUE_WHERE "status IN ('pending', 'failed') AND next_attempt_at <= $1"

static const char claim_sqlite[] =
    "UPDATE email_outbox SET next_attempt_at = $2 WHERE id = (SELECT id FROM email_outbox "
    "WHERE " DUE_WHERE " ORDER BY next_attempt_at LIMIT 1)" CLAIM_RETURNING;

static const char claim_pg[] =
    "UPDATE email_outbox SET next_attempt_at = $2 WHERE id = (SELECT id FROM email_outbox "
    "WHERE " DUE_WHERE " ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)" CLAIM_RETURNING;

static const char *dup_or_null(struct arena *a, const struct db_res *r, int col)
{
    const char *v = db_res_get(r, 0, col);
    return v ? arena_strdup(a, v) : NULL;
}

/* last_error is short: at most OUTBOX_ERROR_MAX bytes, cut before a UTF-8
 * continuation byte. */
static void clip_error(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in);
    if (n > cap - 1) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)in[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, in, n);
    out[n] = '\0';
}

rc_t outbox_insert(struct db_conn *c, const struct outbox_new *r)
{
    char now[TIME_STR_MAX], exp[TIME_STR_MAX];
    time_format(r->now_us, TIME_STYLE_DB, now);
    time_format(r->expires_at_us, TIME_STYLE_DB, exp);
    struct db_param p[] = {
        DBP_T(r->id),         DBP_T(r->kind),
        DBP_T(r->to_address), DBP_T(r->subject),
        DBP_T(r->body_text),  DBP_T(r->body_html),
        DBP_T(now),           DBP_T(r->expires_at_us ? exp : NULL),
    };
    return db_exec(c,
                   "INSERT INTO email_outbox (id, kind, to_address, subject, body_text, body_html, "
                   "status, attempt_count, next_attempt_at, expires_at, created_at) VALUES "
                   "($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $7)",
                   8, p, NULL);
}

rc_t outbox_any_due(struct db_conn *c, int64_t now_us, bool *out_due)
{
    char now[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    struct db_param p[] = {DBP_T(now)};
    struct db_res *r = NULL;
    rc_t rc = db_exec(c, "SELECT 1 FROM email_outbox WHERE " DUE_WHERE " LIMIT 1", 1, p, &r);
    *out_due = rc == RC_OK && db_res_rows(r) > 0;
    db_res_free(r);
    return rc;
}

rc_t outbox_claim(struct db_conn *c, struct arena *a, int64_t now_us, int64_t lease_us,
                  struct outbox_row *out)
{
    char now[TIME_STR_MAX], lease[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    time_format(lease_us, TIME_STYLE_DB, lease);
    struct db_param p[] = {DBP_T(now), DBP_T(lease)};
    struct db_res *r = NULL;
    const char *sql = db_conn_kind(c) == DB_POSTGRES ? claim_pg : claim_sqlite;
    rc_t rc = db_exec(c, sql, 2, p, &r);
    if (rc == RC_OK && db_res_rows(r) == 0)
        rc = RC_NOT_FOUND;
    if (rc == RC_OK) {
        memset(out, 0, sizeof *out);
        snprintf(out->id, sizeof out->id, "%s", db_res_get(r, 0, 0) ? db_res_get(r, 0, 0) : "");
        out->kind = dup_or_null(a, r, 1);
        out->to_address = dup_or_null(a, r, 2);
        out->subject = dup_or_null(a, r, 3);
        out->body_text = dup_or_null(a, r, 4);
        out->body_html = dup_or_null(a, r, 5);
        out->attempt_count = (int)db_res_int(r, 0, 6);
        if (!db_res_time(r, 0, 7, &out->expires_at_us))
            out->expires_at_us = 0;
        out->lease_us = lease_us;
    }
    db_res_free(r);
    return rc;
}

rc_t outbox_mark_sent(struct db_conn *c, const char *id, int64_t lease_us, int attempt_count,
                      int64_t now_us)
{
    char now[TIME_STR_MAX], lease[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    time_format(lease_us, TIME_STYLE_DB, lease);
    struct db_param p[] = {DBP_T(id), DBP_T(lease), DBP_T(now), DBP_I(attempt_count)};
    return db_exec_one(c,
                       "UPDATE email_outbox SET status = 'sent', sent_at = $3, attempt_count = $4, "
                       "body_text = NULL, body_html = NULL, last_error = NULL WHERE id = $1 AND "
                       "next_attempt_at = $2 AND status IN ('pending', 'failed')",
                       4, p);
}

rc_t outbox_mark_failed(struct db_conn *c, const char *id, int64_t lease_us, int attempt_count,
                        int64_t next_us, const char *error)
{
    char lease[TIME_STR_MAX], next[TIME_STR_MAX], err[OUTBOX_ERROR_MAX + 1];
    time_format(lease_us, TIME_STYLE_DB, lease);
    time_format(next_us, TIME_STYLE_DB, next);
    clip_error(error ? error : "", err, sizeof err);
    struct db_param p[] = {DBP_T(id), DBP_T(lease), DBP_I(attempt_count), DBP_T(next), DBP_T(err)};
    return db_exec_one(
        c,
        "UPDATE email_outbox SET status = 'failed', attempt_count = $3, "
        "next_attempt_at = $4, last_error = $5 WHERE id = $1 AND next_attempt_at = $2 "
        "AND status IN ('pending', 'failed')",
        5, p);
}

rc_t outbox_mark_abandoned(struct db_conn *c, const char *id, int64_t lease_us, int attempt_count,
                           const char *error)
{
    char lease[TIME_STR_MAX], err[OUTBOX_ERROR_MAX + 1];
    time_format(lease_us, TIME_STYLE_DB, lease);
    if (error)
        clip_error(error, err, sizeof err);
    struct db_param p[] = {DBP_T(id), DBP_T(lease), DBP_I(attempt_count),
                           DBP_T(error ? err : NULL)};
    return db_exec_one(c,
                       "UPDATE email_outbox SET status = 'abandoned', attempt_count = $3, "
                       "last_error = COALESCE($4, last_error), body_text = NULL, body_html = NULL "
                       "WHERE id = $1 AND next_attempt_at = $2 AND status IN ('pending', 'failed')",
                       4, p);
}

rc_t outbox_release(struct db_conn *c, const char *id, int64_t lease_us, int64_t now_us)
{
    char now[TIME_STR_MAX], lease[TIME_STR_MAX];
    time_format(now_us, TIME_STYLE_DB, now);
    time_format(lease_us, TIME_STYLE_DB, lease);
    struct db_param p[] = {DBP_T(id), DBP_T(lease), DBP_T(now)};
    return db_exec_one(c,
                       "UPDATE email_outbox SET next_attempt_at = $3 WHERE id = $1 AND "
                       "next_attempt_at = $2 AND status IN ('pending', 'failed')",
                       3, p);
}

rc_t outbox_delete_created_before(struct db_conn *c, int64_t cutoff_us, int64_t *out_n)
{
    char cutoff[TIME_STR_MAX];
    time_format(cutoff_us, TIME_STYLE_DB, cutoff);
    struct db_param p[] = {DBP_T(cutoff)};
    struct db_res *r = NULL;
    rc_t rc = db_exec(c, "DELETE FROM email_outbox WHERE created_at < $1", 1, p, &r);
    if (out_n)
        *out_n = rc == RC_OK ? db_res_affected(r) : 0;
    db_res_free(r);
    return rc;
}
