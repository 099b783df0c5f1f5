/* PostgreSQL backend of the database driver (see db.h, db_int.h), on libpq.
 *
 * Pool: pool_size + max_overflow slots, connections made lazily at checkout
 * and kept idle afterwards up to pool_size (overflow connections are closed
 * on release). A checkout waits on a condvar for at most pool_timeout_ms.
 * At checkout an idle connection older than pool_recycle_s is replaced,
 * and one whose socket is readable while idle (the server said goodbye or
 * closed it, e.g. after a restart) is reconnected: a cheap poll(2) instead
 * of a round trip.
 *
 * Statements: PQsendQueryParams with text parameters, waited for with
 * poll(2) against a deadline (statement_timeout + grace, or the ping
 * timeout) so a hung server cannot block a thread forever. A statement that
 * fails because the connection broke, outside a transaction, is retried
 * once on a reset connection. Error texts keep only the primary message and
 * SQLSTATE; DETAIL lines (which quote row values) are never kept or logged.
 *
 * Locking: the pool mutex guards the slot array only; connecting, running
 * statements and closing happen outside it on a slot the thread owns. */
#include "db/db_int.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/timeutil.h"

#include <libpq-fe.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Client-side deadline beyond statement_timeout before a connection is
 * given up as hung. */
#define PG_GRACE_MS 10000
/* Text form of an int64 parameter. */
#define PG_INT_TEXT 24

struct pg_conn {
    struct db_conn base; /* first member */
    PGconn *h;           /* NULL = slot has no connection */
    int64_t born_us;     /* monotonic connect time */
    bool busy;
};

struct pg_db {
    char *url; /* owned; may contain a password: wiped at close */
    char options[160];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pg_conn *slots;
    int nslots;
    int nopen; /* slots with a connection; under mu */
};

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* "relation already exists, skipping" and friends */
}

/* First line of a libpq message, without the "ERROR:  " prefix. */
static void set_msg(struct db_conn *c, const char *code, const char *msg)
{
    if (!msg || !*msg)
        msg = "connection to the database failed";
    size_t n = strcspn(msg, "\n");
    db_conn_set_error(c, code, "%.*s", (int)n, msg);
}

static PGconn *connect_url(struct pg_db *p, char *err, size_t errlen)
{
    const char *const keys[] = {"dbname",           "connect_timeout",
                                "options",          "client_encoding",
                                "application_name", "keepalives",
                                "keepalives_idle",  "keepalives_interval",
                                "keepalives_count", NULL};
    char ct[16];
    snprintf(ct, sizeof ct, "%d", DB_PG_CONNECT_TIMEOUT_S);
    const char *const vals[] = {p->url, ct,   p->options, "UTF8", "authd",
                                "1",    "30", "10",       "3",    NULL};
    /* expand_dbname=1: the URL is expanded first; the keywords after it
     * override whatever it says about timeouts and session options. */
    PGconn *h = PQconnectdbParams(keys, vals, 1);
    if (h && PQstatus(h) == CONNECTION_OK) {
        PQsetNoticeProcessor(h, quiet_notice, NULL);
        return h;
    }
    const char *m = h ? PQerrorMessage(h) : "out of memory";
    size_t n = strcspn(m, "\n");
    snprintf(err, errlen, "%.*s", (int)n, m);
    PQfinish(h);
    return NULL;
}

/* Slot fields other than busy belong to the thread that checked the slot
 * out; only the open-connection count is shared, under the mutex. */
static void count_open(struct db *db, int delta)
{
    struct pg_db *p = db->be;
    pthread_mutex_lock(&p->mu);
    p->nopen += delta;
    pthread_mutex_unlock(&p->mu);
}

static rc_t slot_connect(struct db *db, struct pg_conn *c)
{
    char err[DB_ERR_MAX];
    c->h = connect_url(db->be, err, sizeof err);
    if (!c->h) {
        db_conn_set_error(&c->base, "08006", "%s", err);
        log_msg(LOG_ERROR, "db_connect_failed", "postgres: %s", err);
        return RC_UNAVAILABLE;
    }
    c->born_us = time_mono_us();
    count_open(db, 1);
    return RC_OK;
}

static void slot_drop(struct pg_conn *c)
{
    if (!c->h)
        return;
    PQfinish(c->h);
    c->h = NULL;
    count_open(c->base.db, -1);
}

/* An idle connection should have nothing to read; readable or hung-up
 * means the server ended it (shutdown, restart, idle kill). */
static bool idle_alive(PGconn *h)
{
    if (PQstatus(h) != CONNECTION_OK || PQtransactionStatus(h) != PQTRANS_IDLE)
        return false;
    struct pollfd pfd = {.fd = PQsocket(h), .events = POLLIN};
    if (pfd.fd < 0)
        return false;
    int n = poll(&pfd, 1, 0);
    return n == 0;
}

/* ---- statements --------------------------------------------------------- */

static rc_t map_state(const char *st)
{
    if (!st || !*st)
        return RC_DB;
    if (strcmp(st, "23505") == 0)
        return RC_CONFLICT;
    if (strncmp(st, "23", 2) == 0)
        return RC_CONSTRAINT; /* 23503 FK, 23514 check, 23502 not null, ... */
    if (strcmp(st, "57014") == 0)
        return RC_TIMEOUT;
    if (strcmp(st, "08P01") == 0)
        return RC_INVALID; /* protocol violation: wrong parameter count */
    if (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
        strcmp(st, "57P03") == 0)
        return RC_UNAVAILABLE;
    if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
        return RC_BUSY;
    return RC_DB;
}

/* Waits for the results of a sent query until deadline_us (monotonic; 0 =
 * none). Keeps the first error result, else the last result. *timed_out is
 * set when the deadline passed or polling failed: the connection is then in
 * an unknown state and must be dropped. */
static PGresult *wait_result(PGconn *h, int64_t deadline_us, bool *timed_out)
{
    PGresult *keep = NULL, *r;
    *timed_out = false;
    for (;;) {
        while (PQisBusy(h)) {
            int ms = -1;
            if (deadline_us) {
                int64_t left = deadline_us - time_mono_us();
                if (left <= 0)
                    goto hung;
                ms = (int)((left + 999) / 1000);
            }
            struct pollfd pfd = {.fd = PQsocket(h), .events = POLLIN};
            int n = poll(&pfd, 1, ms);
            if (n < 0 && errno != EINTR)
                goto hung;
            if (n > 0 && !PQconsumeInput(h))
                break; /* connection lost: PQgetResult reports it, then NULL */
        }
        r = PQgetResult(h);
        if (!r)
            return keep;
        if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
    }
hung:
    *timed_out = true;
    PQclear(keep);
    return NULL;
}

static void pgres_free(void *p)
{
    PQclear(p);
}

static struct db_res *to_res(PGresult *r)
{
    int rows = PQntuples(r), cols = PQnfields(r);
    int64_t affected = 0;
    const char *st = PQcmdStatus(r);
    if (st && strncmp(st, "SELECT", 6) != 0) {
        const char *t = PQcmdTuples(r);
        if (t && *t)
            affected = strtoll(t, NULL, 10);
    }
    size_t n = (size_t)rows * (size_t)cols;
    const char **cells = xmalloc((n ? n : 1) * sizeof *cells);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            cells[(size_t)i * (size_t)cols + (size_t)j] =
                PQgetisnull(r, i, j) ? NULL : PQgetvalue(r, i, j);
    return db_res_wrap(rows, cols, affected, cells, r, pgres_free);
}

/* One attempt: send, wait, classify. *broken when the connection is gone. */
static rc_t run_once(struct pg_conn *c, const char *sql, int n, const char *const *vals,
                     bool script, int64_t deadline_us, struct db_res **out, bool *broken)
{
    PGconn *h = c->h;
    bool timed_out = false;
    *broken = false;
    int sent =
        script ? PQsendQuery(h, sql) : PQsendQueryParams(h, sql, n, NULL, vals, NULL, NULL, 0);
    PGresult *r = sent ? wait_result(h, deadline_us, &timed_out) : NULL;
    if (timed_out) {
        *broken = true;
        db_conn_set_error(&c->base, "57014", "no answer from the server in time");
        slot_drop(c);
        return RC_TIMEOUT;
    }
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY) {
        if (out)
            *out = to_res(r);
        else
            PQclear(r);
        return RC_OK;
    }
    if (PQstatus(h) == CONNECTION_BAD) {
        *broken = true;
        set_msg(&c->base, "08006", PQerrorMessage(h));
        PQclear(r);
        return RC_UNAVAILABLE;
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    rc_t rc = map_state(state);
    if (state && strncmp(state, "22", 2) == 0) {
        /* Data exceptions quote the offending input: keep only the code. */
        db_conn_set_error(&c->base, state, "invalid input value for a column type");
    } else {
        set_msg(&c->base, state, primary ? primary : PQerrorMessage(h));
    }
    PQclear(r);
    return rc;
}

static rc_t reconnect(struct pg_conn *c)
{
    if (c->h)
        slot_drop(c);
    return slot_connect(c->base.db, c);
}

static rc_t pg_run(struct pg_conn *c, const char *sql, int n, const char *const *vals, bool script,
                   int64_t deadline_us, struct db_res **out)
{
    bool broken = false;
    rc_t rc;
    if (!c->h && c->base.tx != DB_TX_NONE) {
        /* The connection, and with it the server-side transaction, is gone:
         * nothing to roll back, nothing else may run in that unit. */
        if (strcmp(sql, "ROLLBACK") == 0)
            return RC_OK;
        db_conn_set_error(&c->base, "08003", "connection lost inside a transaction");
        return RC_UNAVAILABLE;
    }
    if (!c->h && (rc = reconnect(c)) != RC_OK)
        return rc;
    rc = run_once(c, sql, n, vals, script, deadline_us, out, &broken);
    /* A lost connection outside a transaction: the statement did not run
     * inside a unit, so one retry on a fresh connection is safe to offer. */
    if (rc && broken && c->base.tx == DB_TX_NONE && rc != RC_TIMEOUT) {
        if (reconnect(c) == RC_OK)
            rc = run_once(c, sql, n, vals, script, deadline_us, out, &broken);
        else
            rc = RC_UNAVAILABLE;
    }
    if (broken && c->h && PQstatus(c->h) == CONNECTION_BAD)
        slot_drop(c);
    return rc;
}

static int64_t exec_deadline(const struct db *db)
{
    if (db->opts.statement_timeout_ms <= 0)
        return 0;
    return time_mono_us() + ((int64_t)db->opts.statement_timeout_ms + PG_GRACE_MS) * 1000;
}

static rc_t pg_exec(struct db_conn *bc, const char *sql, int n, const struct db_param *p,
                    struct db_res **out)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    const char *stackv[16];
    char stackbuf[16][PG_INT_TEXT];
    const char **vals = stackv;
    char(*ibuf)[PG_INT_TEXT] = stackbuf;
    if (n > 16) {
        vals = xmalloc((size_t)n * sizeof *vals);
        ibuf = xmalloc((size_t)n * sizeof *ibuf);
    }
    for (int i = 0; i < n; i++) {
        switch (p[i].type) {
        case DBP_TEXT:
            vals[i] = p[i].s;
            break;
        case DBP_INT:
            snprintf(ibuf[i], PG_INT_TEXT, "%" PRId64, p[i].i);
            vals[i] = ibuf[i];
            break;
        case DBP_BOOL:
            vals[i] = p[i].i ? "true" : "false";
            break;
        default:
            vals[i] = NULL;
            break;
        }
    }
    rc_t rc = pg_run(c, sql, n, vals, false, exec_deadline(bc->db), out);
    if (n > 16) {
        free(vals);
        free(ibuf);
    }
    return rc;
}

static rc_t pg_exec_script(struct db_conn *bc, const char *sql)
{
    return pg_run((struct pg_conn *)bc, sql, 0, NULL, true, exec_deadline(bc->db), NULL);
}

/* ---- pool --------------------------------------------------------------- */

static struct pg_conn *take_slot(struct pg_db *p)
{
    struct pg_conn *empty = NULL;
    for (int i = 0; i < p->nslots; i++) {
        struct pg_conn *c = &p->slots[i];
        if (c->busy)
            continue;
        if (c->h)
            return c;
        if (!empty)
            empty = c;
    }
    return empty;
}

static rc_t pg_acquire(struct db *db, enum db_mode mode, int timeout_ms, struct db_conn **out)
{
    struct pg_db *p = db->be;
    struct timespec dl;
    struct pg_conn *c;
    int e = 0;
    db_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (!(c = take_slot(p)) && e != ETIMEDOUT)
        e = pthread_cond_timedwait(&p->cv, &p->mu, &dl);
    if (c)
        c->busy = true;
    pthread_mutex_unlock(&p->mu);
    if (!c) {
        log_msg(LOG_ERROR, "db_pool_timeout", "postgres: no connection within %d ms", timeout_ms);
        return RC_TIMEOUT;
    }
    c->base.mode = mode;
    c->base.tx = DB_TX_NONE;
    db_conn_clear_error(&c->base);
    int64_t max_age = (int64_t)db->opts.pool_recycle_s * 1000000;
    if (c->h && (time_mono_us() - c->born_us > max_age || !idle_alive(c->h)))
        slot_drop(c);
    rc_t rc = c->h ? RC_OK : slot_connect(db, c);
    if (rc) {
        pthread_mutex_lock(&p->mu);
        c->busy = false;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    *out = &c->base;
    return RC_OK;
}

static void pg_release(struct db_conn *bc)
{
    struct pg_conn *c = (struct pg_conn *)bc;
    struct pg_db *p = bc->db->be;
    /* Never pool a connection in an unknown state. */
    if (c->h && (PQstatus(c->h) != CONNECTION_OK || PQtransactionStatus(c->h) != PQTRANS_IDLE))
        slot_drop(c);
    pthread_mutex_lock(&p->mu);
    PGconn *extra = NULL;
    if (c->h && p->nopen > bc->db->opts.pool_size) {
        extra = c->h; /* overflow connection: do not keep it idle */
        c->h = NULL;
        p->nopen--;
    }
    c->busy = false;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    PQfinish(extra);
}

static rc_t pg_ping(struct db *db)
{
    struct db_conn *bc = NULL;
    int wait = db->opts.pool_timeout_ms < DB_PING_TIMEOUT_MS ? db->opts.pool_timeout_ms
                                                             : DB_PING_TIMEOUT_MS;
    rc_t rc = pg_acquire(db, DB_READ, wait, &bc);
    if (rc)
        return rc;
    struct pg_conn *c = (struct pg_conn *)bc;
    struct db_res *r = NULL;
    int64_t deadline = time_mono_us() + (int64_t)DB_PING_TIMEOUT_MS * 1000;
    rc = pg_run(c, "SELECT 1", 0, NULL, false, deadline, &r);
    if (rc == RC_OK && (db_res_rows(r) != 1 || db_res_int(r, 0, 0) != 1))
        rc = RC_DB;
    if (rc)
        log_msg(LOG_ERROR, "db_ping_failed", "postgres: %s", bc->err);
    db_res_free(r);
    pg_release(bc);
    return rc;
}

static void pg_pool_stats(struct db *db, struct db_pool_stats *out)
{
    struct pg_db *p = db->be;
    pthread_mutex_lock(&p->mu);
    out->max = p->nslots;
    for (int i = 0; i < p->nslots; i++)
        out->in_use += p->slots[i].busy;
    /* Approximate while a checked-out slot is (re)connecting. */
    out->idle = p->nopen > out->in_use ? p->nopen - out->in_use : 0;
    pthread_mutex_unlock(&p->mu);
}

/* ---- open / close ------------------------------------------------------- */

static void pg_close(struct db *db)
{
    struct pg_db *p = db->be;
    if (!p)
        return;
    for (int i = 0; i < p->nslots; i++)
        PQfinish(p->slots[i].h);
    free(p->slots);
    xfree_secret_str(p->url);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    db->be = NULL;
}

static rc_t pg_open(struct db *db, const char *url)
{
    struct pg_db *p = xcalloc(1, sizeof *p);
    p->url = xstrdup(url);
    if (db->opts.statement_timeout_ms > 0)
        snprintf(p->options, sizeof p->options,
                 "-c statement_timeout=%d -c TimeZone=UTC -c DateStyle=ISO",
                 db->opts.statement_timeout_ms);
    else
        snprintf(p->options, sizeof p->options, "-c TimeZone=UTC -c DateStyle=ISO");
    p->nslots = db->opts.pool_size + db->opts.max_overflow;
    p->slots = xcalloc((size_t)p->nslots, sizeof *p->slots);
    for (int i = 0; i < p->nslots; i++)
        p->slots[i].base.db = db;
    pthread_mutex_init(&p->mu, NULL);
    if (db_cond_init(&p->cv) != 0) {
        pthread_mutex_destroy(&p->mu);
        xfree_secret_str(p->url);
        free(p->slots);
        free(p);
        return RC_INTERNAL;
    }
    db->be = p;
    /* Check the URL now so a wrong one fails start-up; keep the connection. */
    struct db_conn *c = NULL;
    rc_t rc = pg_acquire(db, DB_WRITE, db->opts.pool_timeout_ms, &c);
    if (rc) {
        pg_close(db);
        return rc;
    }
    pg_release(c);
    return RC_OK;
}

const struct db_ops db_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .acquire = pg_acquire,
    .release = pg_release,
    .exec = pg_exec,
    .exec_script = pg_exec_script,
    .ping = pg_ping,
    .pool_stats = pg_pool_stats,
};
