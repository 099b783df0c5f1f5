/* Email through an outbox (architecture decision 6, api-flows §7,
 * data-model §14.2): services queue a mail as an email_outbox row inside
 * their own transaction; a delivery thread sends it after commit over SMTP
 * (libcurl) or into <data dir>/mail/<id>.eml, with retries, and wipes the
 * bodies once the row is final. docs/email.md has the whole story.
 *
 * How a service sends mail:
 *
 *     db_begin(c);
 *     ... change the user ...
 *     rc = mailer_enqueue(m, c, MAIL_VERIFY_EMAIL, email,
 *                         &(struct mail_vars){.token = token}, token_exp_us, id);
 *     ... if (rc) rollback and fail ...
 *     rc = db_commit(c);
 *     db_release(c);
 *     if (rc == RC_OK) mailer_kick(m);     // deliver now, not at the next poll
 *
 * A rolled-back transaction takes the row with it: nothing is sent.
 * Forgetting mailer_kick only delays delivery to the next poll (1 s).
 *
 * Delivery runs only in processes that run the job runner: the runner calls
 * mailer_job every second, and the first call starts the mailer's own
 * delivery thread (so `authd serve --no-worker` constructs a mailer that
 * only queues). SMTP never runs on an HTTP thread or on the runner thread.
 *
 * Thread-safety: every function may be called from any thread once
 * mailer_new has returned; mailer_free must run after the job runner has
 * stopped. */
#ifndef AUTHD_SVC_MAILER_H
#define AUTHD_SVC_MAILER_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "db/db.h"
#include "mail/templates.h"
#include "mail/transport.h"
#include "svc/secrets.h"
#include "util/rc.h"

/* Attempts: immediately, then 30 s, 120 s and 600 s after each failure;
 * the 4th failure abandons the row (data-model §14.2). */
#define MAILER_MAX_ATTEMPTS 4
/* Rows are hard-deleted this long after created_at, by a daily cleanup. */
#define MAILER_RETENTION_US (7LL * 24 * 3600 * 1000000)
/* A claimed row's next_attempt_at is pushed this far ahead while it is
 * being sent (longer than the 10 s SMTP timeout), so no other claimer
 * picks it up; a crash mid-send retries it after the lease. */
#define MAILER_LEASE_US (60LL * 1000000)
/* HKDF info of the body envelope (enc2, AAD = row id, key from the
 * signing-key passphrase chain). */
#define MAILER_ENVELOPE_INFO "authd email-outbox encryption v2"

struct mailer;

/* Builds the mailer: the body key (from sec->signing_passphrase), the
 * transport (SMTP when EMAIL__MAILHOG_HOST is set, else files under
 * <data_dir>/mail) and the delivery thread's state (not started).
 * RC_INVALID when EMAIL__EMAIL_FROM or the SMTP host cannot be used in a
 * message (control characters, not an address), RC_CRYPTO when the key
 * cannot be derived. db, cfg and sec must outlive the mailer. With
 * APP__TEST_HOOKS=true the hidden variable AUTHD_TEST_EMAIL_RETRY_DIVISOR=N
 * divides every retry delay by N and shortens the lease to 11 s (tests). */
rc_t mailer_new(struct db *db, const struct config *cfg, const struct secrets *sec,
                const char *data_dir, struct mailer **out) WUR;
/* Same with a given transport, which the mailer takes over (tests inject
 * fault-injecting transports). */
rc_t mailer_new_with_transport(struct db *db, const struct config *cfg, const struct secrets *sec,
                               struct mail_transport *t, struct mailer **out) WUR;
/* Stops and joins the delivery thread (an SMTP exchange in progress is
 * aborted and its row released for the next poll), frees everything. NULL
 * ok. */
void mailer_free(struct mailer *m);

/* Renders the template of `kind` for `to` with vars, encrypts the bodies
 * (enc2, AAD = the new row id) and inserts the email_outbox row on c — in
 * c's transaction when one is open, so the row commits or rolls back with
 * the caller's change. expires_at_us: the instant after which the mail
 * must not be sent (token or OTP expiry; 0 = never). *out_id (may be NULL)
 * receives the row id. Nothing is sent here; call mailer_kick after the
 * commit. Errors: RC_INVALID (address or variable unusable: control
 * characters, missing link/code/action; nothing is written), RC_CRYPTO,
 * and db_exec's codes (the caller's transaction is then rolled back by the
 * driver). Never logs the address, a link or a code. */
rc_t mailer_enqueue(struct mailer *m, struct db_conn *c, enum mail_kind kind, const char *to,
                    const struct mail_vars *vars, int64_t expires_at_us, char out_id[37]) WUR;
/* Wakes the delivery thread after the caller's commit. Cheap, never blocks
 * on I/O; a no-op in a process whose delivery thread is not running (the
 * poll of a worker finds the row). NULL ok. */
void mailer_kick(struct mailer *m);

/* The job runner's duty (every second): starts the delivery thread on the
 * first call, then wakes it to poll for due rows. Returns at once. */
void mailer_job(struct mailer *m);

/* One synchronous delivery pass at wall-clock instant now_us, on the
 * calling thread: claims due rows one at a time (status pending/failed,
 * next_attempt_at <= now; FOR UPDATE SKIP LOCKED on PostgreSQL) and
 * delivers, fails or abandons each. The delivery thread runs this; tests
 * call it directly with a chosen clock. Counts go to out (may be NULL). */
struct mailer_pass {
    int sent, failed, abandoned;
};
rc_t mailer_deliver_due(struct mailer *m, int64_t now_us, struct mailer_pass *out) WUR;
/* Hard-deletes rows created before now_us - MAILER_RETENTION_US. The
 * delivery thread runs it at start and every 24 h. */
rc_t mailer_cleanup(struct mailer *m, int64_t now_us, int64_t *out_deleted) WUR;

/* Retry schedule (pure): the delay before the next attempt after
 * `failures` failed attempts (1 → 30 s, 2 → 120 s, 3 → 600 s), in seconds;
 * 0 when the row is to be abandoned (failures >= MAILER_MAX_ATTEMPTS) or
 * failures < 1. */
int mailer_retry_delay_s(int failures);

#endif
