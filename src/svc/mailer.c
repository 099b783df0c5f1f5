/* Email outbox and delivery (see mailer.h, docs/email.md).
 *
 * Queueing (any thread): render → seal the bodies with the outbox key
 * (enc2, AAD = row id) → INSERT on the caller's connection. Nothing else
 * is shared, so enqueue needs no lock.
 *
 * Delivery (one thread per process, started by the first mailer_job): each
 * pass checks on a reader whether anything is due, then repeatedly claims
 * one row (a single UPDATE on the writer that moves next_attempt_at to a
 * lease), releases the connection, sends with no connection held, and
 * records the outcome with an UPDATE that names the lease. A crash at any
 * point leaves the row pending/failed with a next_attempt_at at most one
 * lease ahead: the next poll after a restart finds it (at-least-once; a
 * crash between the server's "250 OK" and the UPDATE sends it twice).
 *
 * Locking: mu/cv guard `kicked` and thread start; `stop` is atomic because
 * libcurl's progress callback reads it from inside a transfer. */
#include "svc/mailer.h"
#include "crypto/envelope.h"
#include "mail/message.h"
#include "store/outbox.h"
#include "util/arena.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "util/uuid.h"
#include "util/thread.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SAFETY_POLL_S 5 /* the thread polls on its own if the runner goes quiet */
#define CLEANUP_INTERVAL_US (24LL * 3600 * 1000000)
#define PASS_MAX_ROWS 1000 /* then yield to the cleanup and the stop flag */
#define TEST_LEASE_US (11LL * 1000000)
#define TEST_DIVISOR_ENV "AUTHD_TEST_EMAIL_RETRY_DIVISOR"
#define FROM_MAX 512

struct mailer {
    struct db *db;
    const struct config *cfg;
    struct envelope_key *key;
    struct mail_transport *transport;
    char from_addr[FROM_MAX]; /* envelope sender */
    char from_name[FROM_MAX]; /* display name, "" when none */
    int retry_divisor;        /* 1, or the test knob */
    int64_t lease_us;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, kicked;
    atomic_bool stop;
    pthread_t thread;
};

int mailer_retry_delay_s(int failures)
{
    static const int delays[MAILER_MAX_ATTEMPTS] = {30, 120, 600};
    if (failures < 1 || failures >= MAILER_MAX_ATTEMPTS)
        return 0;
    return delays[failures - 1];
}

/* EMAIL__EMAIL_FROM is a bare address or `Name <address>`. */
static rc_t parse_from(const char *from, struct mailer *m)
{
    struct str s = str_trim(str_of(from));
    const char *lt = memchr(s.p, '<', s.len);
    if (!lt) {
        snprintf(m->from_addr, sizeof m->from_addr, "%.*s", (int)s.len, s.p);
        return mail_addr_valid(m->from_addr) ? RC_OK : RC_INVALID;
    }
    if (s.p[s.len - 1] != '>')
        return RC_INVALID;
    snprintf(m->from_addr, sizeof m->from_addr, "%.*s", (int)(s.p + s.len - 1 - lt - 1), lt + 1);
    struct str name = str_trim((struct str){s.p, (size_t)(lt - s.p)});
    if (name.len >= 2 && name.p[0] == '"' && name.p[name.len - 1] == '"')
        name = (struct str){name.p + 1, name.len - 2};
    snprintf(m->from_name, sizeof m->from_name, "%.*s", (int)name.len, name.p);
    if (!mail_addr_valid(m->from_addr) ||
        (m->from_name[0] && !mail_header_text_valid(m->from_name)))
        return RC_INVALID;
    return RC_OK;
}

static void test_knobs(struct mailer *m)
{
    m->retry_divisor = 1;
    m->lease_us = MAILER_LEASE_US;
    const char *v = m->cfg->app.test_hooks ? getenv(TEST_DIVISOR_ENV) : NULL;
    int64_t d = 0;
    if (v && str_parse_i64(v, &d) && d >= 1 && d <= 1000000) {
        m->retry_divisor = (int)d;
        m->lease_us = TEST_LEASE_US;
        log_msg(LOG_WARNING, "email_test_knob", "retry delays divided by %d (test hooks)", (int)d);
    }
}

rc_t mailer_new_with_transport(struct db *db, const struct config *cfg, const struct secrets *sec,
                               struct mail_transport *t, struct mailer **out)
{
    *out = NULL;
    struct mailer *m = xcalloc(1, sizeof *m);
    m->db = db;
    m->cfg = cfg;
    m->transport = t;
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&m->stop, false);
    test_knobs(m);
    rc_t rc = parse_from(cfg->email.email_from, m);
    if (rc) {
        log_msg(LOG_ERROR, "email_config_invalid",
                "EMAIL__EMAIL_FROM must be an address or `Name <address>`");
        goto fail;
    }
    const char *pass = sec ? sec->signing_passphrase : NULL;
    rc = envelope_key_new(pass ? pass : "", pass ? strlen(pass) : 0, MAILER_ENVELOPE_INFO, &m->key);
    if (rc)
        goto fail;
    *out = m;
    return RC_OK;
fail:
    m->transport = NULL; /* the caller keeps t on failure */
    mailer_free(m);
    return rc;
}

rc_t mailer_new(struct db *db, const struct config *cfg, const struct secrets *sec,
                const char *data_dir, struct mailer **out)
{
    struct mail_transport *t = NULL;
    rc_t rc;
    *out = NULL;
    if (cfg->email.mailhog_host) {
        struct mail_smtp_opts o = {
            .host = cfg->email.mailhog_host,
            .port = cfg->email.mailhog_port,
            .username = cfg->email.smtp_username,
            .password = cfg->email.smtp_password,
            .starttls = cfg->email.smtp_starttls,
        };
        rc = mail_smtp_new(&o, &t);
        if (rc == RC_INVALID)
            log_msg(LOG_ERROR, "email_config_invalid", "EMAIL__MAILHOG_HOST is not a host name");
    } else {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/mail", data_dir ? data_dir : "./data");
        rc = mail_file_new(dir, &t);
    }
    if (rc == RC_OK)
        rc = mailer_new_with_transport(db, cfg, sec, t, out);
    if (rc)
        mail_transport_free(t);
    return rc;
}

void mailer_free(struct mailer *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    bool started = m->started;
    atomic_store(&m->stop, true);
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (started)
        pthread_join(m->thread, NULL);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    mail_transport_free(m->transport);
    envelope_key_free(m->key);
    free(m);
}

/* ---------------------------------------------------------------- enqueue */

static rc_t seal(const struct mailer *m, const char *id, const char *body, char **out)
{
    *out = NULL;
    if (!body)
        return RC_OK;
    return envelope_seal(m->key, body, strlen(body), id, strlen(id), out);
}

rc_t mailer_enqueue(struct mailer *m, struct db_conn *c, enum mail_kind kind, const char *to,
                    const struct mail_vars *vars, int64_t expires_at_us, char out_id[37])
{
    struct mail_vars v = vars ? *vars : (struct mail_vars){0};
    struct mail_rendered r = {0};
    char *link = NULL, *text = NULL, *html = NULL;
    char id[UUID_STR_LEN + 1];
    rc_t rc = RC_INVALID;
    if (!mail_kind_name(kind) || !mail_addr_valid(to) || expires_at_us < 0)
        goto out;
    if (mail_kind_has_link(kind) && !v.link && v.token)
        v.link = link = mail_link_new(m->cfg->email.public_base_url, kind, v.token);
    if ((kind == MAIL_LOGIN_OTP || kind == MAIL_ACTION_OTP) && v.ttl_seconds == 0)
        v.ttl_seconds = m->cfg->email.otp_ttl_seconds;
    rc = mail_render(kind, &v, &r);
    if (rc)
        goto out;
    uuid_v4(id);
    rc = seal(m, id, r.text, &text);
    if (rc == RC_OK)
        rc = seal(m, id, r.html, &html);
    if (rc)
        goto out;
    struct outbox_new row = {
        .id = id,
        .kind = mail_kind_name(kind),
        .to_address = to,
        .subject = r.subject,
        .body_text = text,
        .body_html = html,
        .expires_at_us = expires_at_us,
        .now_us = time_now_us(),
    };
    rc = outbox_insert(c, &row);
    if (rc == RC_OK && out_id)
        memcpy(out_id, id, sizeof id);
out:
    xfree_secret_str(link);
    mail_rendered_free(&r);
    free(text);
    free(html);
    return rc;
}

/* ------------------------------------------------------- delivery thread */

void mailer_kick(struct mailer *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->kicked = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void run_cleanup(struct mailer *m)
{
    int64_t n = 0;
    if (mailer_cleanup(m, time_now_us(), &n) == RC_OK && n > 0) {
        struct log_line l;
        log_begin(&l, LOG_INFO, "email_outbox_cleaned", NULL);
        log_int(&l, "deleted", n);
        log_end(&l);
    }
}

static void *deliver_thread(void *arg)
{
    struct mailer *m = arg;
    thread_set_name("mail-delivery");
    int64_t next_cleanup = 0;
    pthread_mutex_lock(&m->mu);
    while (!atomic_load(&m->stop)) {
        if (!m->kicked) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += SAFETY_POLL_S;
            pthread_cond_timedwait(&m->cv, &m->mu, &ts);
            if (atomic_load(&m->stop))
                break;
        }
        m->kicked = false;
        pthread_mutex_unlock(&m->mu);
        if (time_mono_us() >= next_cleanup) {
            run_cleanup(m);
            next_cleanup = time_mono_us() + CLEANUP_INTERVAL_US;
        }
        (void)!mailer_deliver_due(m, time_now_us(), NULL); /* failures are logged */
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

void mailer_job(struct mailer *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    if (!m->started && !atomic_load(&m->stop)) {
        if (pthread_create(&m->thread, NULL, deliver_thread, m) == 0)
            m->started = true;
        else
            log_msg(LOG_ERROR, "email_worker_failed", "cannot start the delivery thread");
    }
    m->kicked = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* --------------------------------------------------------------- delivery */

static void log_abandoned(const struct outbox_row *row, const char *reason)
{
    struct log_line l;
    log_begin(&l, LOG_ERROR, "email_abandoned", NULL);
    log_str(&l, "email_id", row->id);
    log_str(&l, "kind", row->kind);
    log_str(&l, "reason", reason);
    log_end(&l);
}

static void log_send_failed(const struct outbox_row *row, int attempts, const char *error)
{
    struct log_line l;
    log_begin(&l, LOG_WARNING, "email_send_failed", NULL);
    log_str(&l, "email_id", row->id);
    log_str(&l, "kind", row->kind);
    log_int(&l, "attempt_count", attempts);
    log_str(&l, "error", error);
    log_end(&l);
}

static void log_delivered(const struct mailer *m, const struct outbox_row *row, const char *info)
{
    struct log_line l;
    bool file = strcmp(mail_transport_name(m->transport), "file") == 0;
    log_begin(&l, LOG_INFO, file ? "email_written_to_file" : "email_sent", NULL);
    log_str(&l, "email_id", row->id);
    log_str(&l, "kind", row->kind);
    if (file)
        log_str(&l, "path", info);
    else
        log_str(&l, "transport", mail_transport_name(m->transport));
    log_int(&l, "attempt_count", row->attempt_count + 1);
    log_end(&l);
}

/* Runs one UPDATE on the writer. RC_NOT_FOUND (the lease was lost to
 * another claimer) is worth a line; database errors are logged by the
 * driver. */
enum mark { MARK_SENT, MARK_FAILED, MARK_ABANDONED, MARK_RELEASE };

static rc_t mark(struct mailer *m, const struct outbox_row *row, enum mark what, int attempts,
                 int64_t at_us, const char *error)
{
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(m->db, DB_WRITE, &c);
    if (rc)
        return rc;
    switch (what) {
    case MARK_SENT:
        rc = outbox_mark_sent(c, row->id, row->lease_us, attempts, at_us);
        break;
    case MARK_FAILED:
        rc = outbox_mark_failed(c, row->id, row->lease_us, attempts, at_us, error);
        break;
    case MARK_ABANDONED:
        rc = outbox_mark_abandoned(c, row->id, row->lease_us, attempts, error);
        break;
    case MARK_RELEASE:
        rc = outbox_release(c, row->id, row->lease_us, at_us);
        break;
    }
    db_release(c);
    if (rc == RC_NOT_FOUND)
        log_msg(LOG_WARNING, "email_claim_lost", "email %s was claimed by another worker", row->id);
    return rc;
}

static void abandon(struct mailer *m, const struct outbox_row *row, int attempts,
                    const char *reason, const char *error, struct mailer_pass *p)
{
    if (mark(m, row, MARK_ABANDONED, attempts, 0, error) == RC_OK) {
        log_abandoned(row, reason);
        p->abandoned++;
    }
}

/* A failed attempt: retry per the schedule, or abandon when the attempts
 * are used up or the next one would come after expires_at. */
static void failed(struct mailer *m, const struct outbox_row *row, int64_t now_us,
                   const char *error, struct mailer_pass *p)
{
    int attempts = row->attempt_count + 1;
    log_send_failed(row, attempts, error);
    int delay_s = mailer_retry_delay_s(attempts);
    if (delay_s == 0) {
        abandon(m, row, attempts, "max_attempts", error, p);
        return;
    }
    int64_t next = now_us + (int64_t)delay_s * 1000000 / m->retry_divisor;
    if (row->expires_at_us && next >= row->expires_at_us) {
        abandon(m, row, attempts, "expired", error, p);
        return;
    }
    if (mark(m, row, MARK_FAILED, attempts, next, error) == RC_OK)
        p->failed++;
}

static rc_t open_body(const struct mailer *m, const struct outbox_row *row, const char *stored,
                      char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!stored)
        return RC_OK;
    size_t n = strlen(stored);
    if (envelope_format_of(stored, n) != ENVELOPE_ENC2)
        return RC_CRYPTO; /* we only ever write enc2: anything else is not ours */
    return envelope_open(m->key, stored, n, row->id, strlen(row->id), out, out_len);
}

/* Decrypts, builds the message and hands it to the transport. Returns the
 * transport's result; *out_invalid when the row itself is unusable. */
static rc_t send_row(struct mailer *m, const struct outbox_row *row, int64_t now_us,
                     struct mail_send_result *res, const char **out_abandon_reason)
{
    char *text = NULL, *html = NULL;
    size_t text_len = 0, html_len = 0;
    struct buf msg;
    buf_init(&msg, MAIL_MESSAGE_MAX);
    *out_abandon_reason = NULL;
    rc_t rc = RC_CRYPTO;
    if (!row->body_text || open_body(m, row, row->body_text, &text, &text_len) ||
        open_body(m, row, row->body_html, &html, &html_len)) {
        *out_abandon_reason = "decrypt_failed";
        goto out;
    }
    buf_reserve(&msg, 4 * (text_len + html_len) + 4096);
    struct mail_msg mm = {
        .id = row->id,
        .from = m->from_addr,
        .from_name = m->from_name[0] ? m->from_name : NULL,
        .to = row->to_address,
        .subject = row->subject,
        .text = text,
        .html = html,
        .date_us = now_us,
    };
    rc = mail_message_build(&mm, &msg);
    if (rc) {
        *out_abandon_reason = "invalid_row";
        goto out;
    }
    struct mail_envelope env = {row->id, m->from_addr, row->to_address};
    rc = m->transport->ops->send(m->transport, &env, msg.data, msg.len, &m->stop, res);
out:
    if (msg.data)
        xfree_secret(msg.data, msg.cap);
    if (text)
        xfree_secret(text, text_len);
    if (html)
        xfree_secret(html, html_len);
    return rc;
}

static void deliver_row(struct mailer *m, const struct outbox_row *row, int64_t now_us,
                        struct mailer_pass *p)
{
    enum mail_kind kind;
    if (!mail_kind_parse(row->kind, &kind)) {
        abandon(m, row, row->attempt_count, "invalid_row", "unknown kind", p);
        return;
    }
    if (row->expires_at_us && row->expires_at_us <= now_us) {
        abandon(m, row, row->attempt_count, "expired", NULL, p);
        return;
    }
    struct mail_send_result res = {0};
    const char *reason = NULL;
    rc_t rc = send_row(m, row, now_us, &res, &reason);
    if (reason) {
        abandon(m, row, row->attempt_count, reason, reason, p);
    } else if (rc == RC_OK) {
        if (mark(m, row, MARK_SENT, row->attempt_count + 1, now_us, NULL) == RC_OK) {
            log_delivered(m, row, res.info);
            p->sent++;
        }
    } else if (res.cancelled) {
        /* Shutting down: not the message's fault; the next poll (here or
         * in another worker) takes it again at once. */
        (void)!mark(m, row, MARK_RELEASE, 0, now_us, NULL);
    } else {
        failed(m, row, now_us, res.info[0] ? res.info : rc_str(rc), p);
    }
}

static rc_t any_due(struct mailer *m, int64_t now_us, bool *out_due)
{
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(m->db, DB_READ, &c);
    if (rc == RC_OK)
        rc = outbox_any_due(c, now_us, out_due);
    db_release(c);
    return rc;
}

static rc_t claim(struct mailer *m, struct arena *a, int64_t now_us, struct outbox_row *out)
{
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(m->db, DB_WRITE, &c);
    if (rc == RC_OK)
        rc = outbox_claim(c, a, now_us, now_us + m->lease_us, out);
    db_release(c);
    return rc;
}

rc_t mailer_deliver_due(struct mailer *m, int64_t now_us, struct mailer_pass *out)
{
    struct mailer_pass p = {0};
    bool due = false;
    rc_t rc = any_due(m, now_us, &due);
    /* The pass keeps the caller's clock and advances it by the real time
     * spent sending, so marks carry real instants in production and tests
     * stay on their chosen clock. */
    int64_t mono0 = time_mono_us();
    for (int i = 0; rc == RC_OK && due && i < PASS_MAX_ROWS && !atomic_load(&m->stop); i++) {
        int64_t now = now_us + (time_mono_us() - mono0);
        struct arena *a = arena_new();
        struct outbox_row row;
        rc = claim(m, a, now, &row);
        if (rc == RC_OK)
            deliver_row(m, &row, now, &p);
        arena_free(a);
    }
    if (rc == RC_NOT_FOUND)
        rc = RC_OK;
    if (out)
        *out = p;
    return rc;
}

rc_t mailer_cleanup(struct mailer *m, int64_t now_us, int64_t *out_deleted)
{
    struct db_conn *c = NULL;
    rc_t rc = db_acquire(m->db, DB_WRITE, &c);
    if (rc == RC_OK)
        rc = outbox_delete_created_before(c, now_us - MAILER_RETENTION_US, out_deleted);
    db_release(c);
    return rc;
}
