/* SQLite backend of the database driver (see db.h, db_int.h).
 *
 * One writer connection, serialised by the pool mutex (the one-writer
 * discipline: at most one DB_WRITE checkout at a time, so BEGIN IMMEDIATE
 * never waits on ourselves), plus `sqlite_readers` reader connections in
 * WAL mode with query_only=1. Every connection is opened NOMUTEX: it is
 * used by one thread between acquire and release, and the pool mutex
 * orders those hand-overs.
 *
 * Each connection caches its prepared statements (SQLITE_PREPARE_PERSISTENT)
 * in a small open-addressing table keyed by the SQL text; statements are
 * reset and their bindings cleared after every use, so a cached statement
 * never holds a read snapshot or a borrowed parameter. "$N" parameters are
 * bound by name, so a statement may use $2 before $1 or repeat $1.
 *
 * Checkpoints run on a thread of their own (PASSIVE, on a private
 * connection), never on the writer: with synchronous=NORMAL a commit does not
 * fsync, but SQLite's automatic checkpoint does — twice — while the writer
 * holds the one write slot, which stalled every writer behind a disk flush
 * (measured: ~20% of both cores idle under the refresh benchmark). */
#include "db/db_int.h"
#include "db/walbuf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/thread.h"

#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Statement cache size per connection (power of two) and its fill limit;
 * past the limit the cache is flushed (only hit by dynamic SQL). */
#define SQ_CACHE_SLOTS 512
#define SQ_CACHE_FILL 384

struct sq_slot {
    uint64_t hash;
    sqlite3_stmt *st; /* NULL = empty */
};

struct sq_conn {
    struct db_conn base; /* first member */
    sqlite3 *h;
    bool busy;
    struct sq_slot *cache;
    size_t ncached;
};

/* WAL size (pages, 16 MiB) at which the writer wakes the checkpointer —
 * above SQLite's 1000-page default because a page rewritten many times
 * between checkpoints is copied and synced once — and the size past which the checkpointer uses
 * RESTART so readers that never let go cannot grow the log without bound. */
#define SQ_CKPT_PAGES 4096
#define SQ_CKPT_RESTART_PAGES 65536
#define SQ_CKPT_IDLE_MS 1000

struct sq_ckpt {
    sqlite3 *h;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, stop, wanted;
    int last_pages; /* WAL size reported by the last commit */
};

struct sq_db {
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* signalled when a reader is released */
    pthread_cond_t cvw; /* signalled when the writer is released (all waiters
                           use it when there are no readers) */
    struct sq_conn writer;
    struct sq_conn *readers;
    int nreaders;
    struct sq_ckpt ckpt;
};

static void ckpt_stop(struct sq_db *s);

static uint64_t sql_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void cache_flush(struct sq_conn *c)
{
    if (!c->cache)
        return;
    for (size_t i = 0; i < SQ_CACHE_SLOTS; i++) {
        sqlite3_finalize(c->cache[i].st);
        c->cache[i].st = NULL;
    }
    c->ncached = 0;
}

static rc_t map_sqlite(int ext)
{
    switch (ext) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return RC_CONFLICT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_INTERRUPT:
        return RC_TIMEOUT;
    case SQLITE_NOMEM:
        return RC_NOMEM;
    case SQLITE_TOOBIG:
        return RC_LIMIT;
    default:
        break;
    }
    switch (ext & 0xFF) {
    case SQLITE_CONSTRAINT:
        return RC_CONSTRAINT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return RC_TIMEOUT;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
        return RC_IO;
    default:
        return RC_DB;
    }
}

static rc_t fail(struct sq_conn *c, int ext)
{
    char code[16];
    snprintf(code, sizeof code, "%d", ext);
    db_conn_set_error(&c->base, code, "%s", sqlite3_errmsg(c->h));
    return map_sqlite(ext);
}

/* Returns the cached statement for sql, preparing it on first use. */
static rc_t stmt_get(struct sq_conn *c, const char *sql, sqlite3_stmt **out)
{
    uint64_t h = sql_hash(sql);
    size_t mask = SQ_CACHE_SLOTS - 1, i = (size_t)h & mask;
    for (; c->cache[i].st; i = (i + 1) & mask) {
        if (c->cache[i].hash == h && strcmp(sqlite3_sql(c->cache[i].st), sql) == 0) {
            *out = c->cache[i].st;
            return RC_OK;
        }
    }
    const char *tail = NULL;
    sqlite3_stmt *st = NULL;
    int e = sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (e != SQLITE_OK)
        return fail(c, sqlite3_extended_errcode(c->h));
    if (!st) {
        db_conn_set_error(&c->base, "", "empty statement");
        return RC_INVALID;
    }
    while (tail &&
           (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' || *tail == ';'))
        tail++;
    if (tail && *tail) {
        sqlite3_finalize(st);
        db_conn_set_error(&c->base, "", "several statements in one db_exec");
        return RC_INVALID;
    }
    if (c->ncached >= SQ_CACHE_FILL) {
        cache_flush(c);
        i = (size_t)h & mask;
    }
    /* Find the first free slot again (the flush may have emptied them). */
    while (c->cache[i].st)
        i = (i + 1) & mask;
    c->cache[i].hash = h;
    c->cache[i].st = st;
    c->ncached++;
    *out = st;
    return RC_OK;
}

/* "$<i + 1>" by hand: this runs for every parameter of every statement,
 * and snprintf cost ~670 instructions each (a refresh binds ~40). */
static void param_name(int i, char out[16])
{
    char rev[12];
    int n = 0;
    unsigned v = (unsigned)i + 1;
    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    out[0] = '$';
    for (int k = 0; k < n; k++)
        out[1 + k] = rev[n - 1 - k];
    out[1 + n] = '\0';
}

static rc_t bind_all(struct sq_conn *c, sqlite3_stmt *st, int n, const struct db_param *p)
{
    if (sqlite3_bind_parameter_count(st) != n) {
        db_conn_set_error(&c->base, "", "statement has %d parameters, %d given",
                          sqlite3_bind_parameter_count(st), n);
        return RC_INVALID;
    }
    for (int i = 0; i < n; i++) {
        char name[16];
        param_name(i, name);
        int idx = sqlite3_bind_parameter_index(st, name);
        if (idx == 0) {
            db_conn_set_error(&c->base, "", "statement does not use parameter %s", name);
            return RC_INVALID;
        }
        int e;
        switch (p[i].type) {
        case DBP_TEXT:
            e = p[i].s ? sqlite3_bind_text(st, idx, p[i].s, -1, SQLITE_STATIC)
                       : sqlite3_bind_null(st, idx);
            break;
        case DBP_INT:
        case DBP_BOOL:
            e = sqlite3_bind_int64(st, idx, p[i].i);
            break;
        default:
            e = sqlite3_bind_null(st, idx);
            break;
        }
        if (e != SQLITE_OK)
            return fail(c, e);
    }
    return RC_OK;
}

static rc_t step_all(struct sq_conn *c, sqlite3_stmt *st, struct db_res **out)
{
    struct db_res_builder b;
    int cols = sqlite3_column_count(st), e;
    db_res_builder_init(&b, cols);
    while ((e = sqlite3_step(st)) == SQLITE_ROW) {
        if (!out)
            continue;
        for (int j = 0; j < cols; j++) {
            const unsigned char *v = sqlite3_column_text(st, j);
            if (!v && sqlite3_column_type(st, j) != SQLITE_NULL) {
                db_res_builder_free(&b);
                return fail(c, SQLITE_NOMEM);
            }
            db_res_builder_cell(&b, (const char *)v, (size_t)sqlite3_column_bytes(st, j));
        }
    }
    if (e != SQLITE_DONE) {
        db_res_builder_free(&b);
        return fail(c, sqlite3_extended_errcode(c->h));
    }
    int64_t affected = sqlite3_stmt_readonly(st) ? 0 : sqlite3_changes64(c->h);
    if (!out) {
        db_res_builder_free(&b);
        return RC_OK;
    }
    rc_t rc = db_res_builder_finish(&b, affected, out);
    if (rc)
        db_conn_set_error(&c->base, "", "result larger than %zu bytes", DB_RES_MAX_BYTES);
    return rc;
}

static rc_t sq_exec(struct db_conn *bc, const char *sql, int n, const struct db_param *p,
                    struct db_res **out)
{
    struct sq_conn *c = (struct sq_conn *)bc;
    sqlite3_stmt *st = NULL;
    rc_t rc = stmt_get(c, sql, &st);
    if (rc)
        return rc;
    rc = bind_all(c, st, n, p);
    if (rc == RC_OK)
        rc = step_all(c, st, out);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static rc_t sq_exec_script(struct db_conn *bc, const char *sql)
{
    struct sq_conn *c = (struct sq_conn *)bc;
    char *msg = NULL;
    int e = sqlite3_exec(c->h, sql, NULL, NULL, &msg);
    if (e == SQLITE_OK)
        return RC_OK;
    int ext = sqlite3_extended_errcode(c->h);
    char code[16];
    snprintf(code, sizeof code, "%d", ext);
    db_conn_set_error(bc, code, "%s", msg ? msg : sqlite3_errstr(e));
    sqlite3_free(msg);
    return map_sqlite(ext);
}

/* ---- open / close ------------------------------------------------------- */

/* mkdir -p of the directory part of path, mode 0700 for what we create. */
static rc_t make_parent(const char *path, char **out_dir)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            *p = '/';
            free(dir);
            return RC_IO;
        }
        *p = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        free(dir);
        return RC_IO;
    }
    *out_dir = dir;
    return RC_OK;
}

static rc_t conn_open(struct db *db, struct sq_conn *c, const char *path, bool reader)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE |
                (reader ? 0 : SQLITE_OPEN_CREATE);
    c->base.db = db;
    int e = sqlite3_open_v2(path, &c->h, flags, walbuf_vfs_name());
    if (e != SQLITE_OK) {
        log_msg(LOG_ERROR, "db_open_failed", "sqlite: %s",
                c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(e));
        return map_sqlite(e) == RC_DB ? RC_IO : map_sqlite(e);
    }
    sqlite3_busy_timeout(c->h, db->opts.sqlite_busy_timeout_ms);
    c->cache = xcalloc(SQ_CACHE_SLOTS, sizeof *c->cache);
    const char *pragmas = reader ? "PRAGMA foreign_keys=ON; PRAGMA query_only=1;"
                                 : "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;";
    rc_t rc = sq_exec_script(&c->base, pragmas);
    if (rc == RC_OK && !reader) {
        struct db_res *r = NULL;
        rc = sq_exec(&c->base, "PRAGMA journal_mode=WAL", 0, NULL, &r);
        const char *mode = rc ? NULL : db_res_get(r, 0, 0);
        if (mode && strcmp(mode, "wal") != 0 && strcmp(path, ":memory:") != 0)
            log_msg(LOG_WARNING, "db_sqlite_no_wal", "journal_mode is %s, not wal", mode);
        db_res_free(r);
    }
    if (rc)
        log_msg(LOG_ERROR, "db_open_failed", "sqlite: %s", c->base.err);
    return rc;
}

static void conn_close(struct sq_conn *c)
{
    cache_flush(c);
    free(c->cache);
    c->cache = NULL;
    if (c->h)
        sqlite3_close(c->h);
    c->h = NULL;
}

static void sq_close(struct db *db)
{
    struct sq_db *s = db->be;
    if (!s)
        return;
    ckpt_stop(s);
    for (int i = 0; i < s->nreaders; i++)
        conn_close(&s->readers[i]);
    conn_close(&s->writer);
    free(s->readers);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->cvw);
    pthread_mutex_destroy(&s->mu);
    free(s);
    db->be = NULL;
}

/* ---- background checkpoints ---------------------------------------------- */

/* Runs on the writer's thread after every commit, instead of SQLite's own
 * autocheckpoint (registering a WAL hook replaces it). */
static int ckpt_wal_hook(void *arg, sqlite3 *h, const char *name, int pages)
{
    (void)h;
    (void)name;
    struct sq_ckpt *k = arg;
    pthread_mutex_lock(&k->mu);
    k->last_pages = pages;
    if (pages >= SQ_CKPT_PAGES && !k->wanted) {
        k->wanted = true;
        pthread_cond_signal(&k->cv);
    }
    pthread_mutex_unlock(&k->mu);
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    struct sq_ckpt *k = arg;
    thread_set_name("sqlite-ckpt");
    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        struct timespec dl;
        db_deadline(&dl, SQ_CKPT_IDLE_MS);
        while (!k->stop && !k->wanted)
            if (pthread_cond_timedwait(&k->cv, &k->mu, &dl) == ETIMEDOUT)
                break;
        if (k->stop)
            break;
        int pages = k->last_pages;
        k->wanted = false;
        pthread_mutex_unlock(&k->mu);
        /* An idle second with a non-empty log also checkpoints, so a quiet
         * server leaves a small WAL behind. */
        if (pages > 0) {
            int mode = pages >= SQ_CKPT_RESTART_PAGES ? SQLITE_CHECKPOINT_RESTART
                                                      : SQLITE_CHECKPOINT_PASSIVE;
            int nlog = 0, nckpt = 0;
            int e = sqlite3_wal_checkpoint_v2(k->h, NULL, mode, &nlog, &nckpt);
            if (e != SQLITE_OK && e != SQLITE_BUSY && e != SQLITE_LOCKED)
                log_msg(LOG_WARNING, "db_checkpoint_failed", "sqlite: %s", sqlite3_errstr(e));
        }
        pthread_mutex_lock(&k->mu);
        if (k->last_pages == pages)
            k->last_pages = 0;
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

static rc_t ckpt_start(struct db *db, struct sq_db *s, const char *path)
{
    struct sq_ckpt *k = &s->ckpt;
    if (sqlite3_open_v2(path, &k->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        walbuf_vfs_name()) != SQLITE_OK) {
        log_msg(LOG_ERROR, "db_open_failed", "sqlite: checkpoint connection: %s",
                k->h ? sqlite3_errmsg(k->h) : "out of memory");
        sqlite3_close(k->h);
        k->h = NULL;
        return RC_IO;
    }
    sqlite3_busy_timeout(k->h, db->opts.sqlite_busy_timeout_ms);
    /* A connection learns that the file is in WAL mode only when it first
     * reads it; until then a checkpoint silently does nothing. */
    if (sqlite3_exec(k->h, "PRAGMA journal_mode", NULL, NULL, NULL) != SQLITE_OK) {
        log_msg(LOG_ERROR, "db_open_failed", "sqlite: checkpoint connection: %s",
                sqlite3_errmsg(k->h));
        sqlite3_close(k->h);
        k->h = NULL;
        return RC_IO;
    }
    pthread_mutex_init(&k->mu, NULL);
    if (db_cond_init(&k->cv) != 0 || pthread_create(&k->thread, NULL, ckpt_main, k) != 0) {
        sqlite3_close(k->h);
        k->h = NULL;
        return RC_INTERNAL;
    }
    k->started = true;
    sqlite3_wal_hook(s->writer.h, ckpt_wal_hook, k);
    return RC_OK;
}

static void ckpt_stop(struct sq_db *s)
{
    struct sq_ckpt *k = &s->ckpt;
    if (!k->started)
        return;
    if (s->writer.h)
        sqlite3_wal_hook(s->writer.h, NULL, NULL);
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    sqlite3_close(k->h);
    k->h = NULL;
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    k->started = false;
}

/* Creates the file with mode 0600 so SQLite (and its -wal/-shm files, which
 * copy the database's mode) never makes it world-readable. */
static rc_t precreate(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_msg(LOG_ERROR, "db_open_failed", "sqlite: cannot create database file (errno %d)",
                errno);
        return RC_IO;
    }
    close(fd);
    return RC_OK;
}

static rc_t sq_open(struct db *db, const char *path)
{
    bool mem = strcmp(path, ":memory:") == 0;
    rc_t rc = RC_OK;
    if (!mem) {
        rc = make_parent(path, &db->sqlite_dir);
        if (rc) {
            log_msg(LOG_ERROR, "db_open_failed", "sqlite: cannot create the data directory");
            return rc;
        }
        rc = precreate(path);
        if (rc)
            return rc;
    }
    struct sq_db *s = xcalloc(1, sizeof *s);
    db->be = s;
    pthread_mutex_init(&s->mu, NULL);
    if (db_cond_init(&s->cv) != 0 || db_cond_init(&s->cvw) != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        db->be = NULL;
        return RC_INTERNAL;
    }
    s->writer.base.mode = DB_WRITE;
    rc = conn_open(db, &s->writer, path, false);
    /* A private in-memory database cannot be shared: reads use the writer. */
    int n = mem ? 0 : db->opts.sqlite_readers;
    s->readers = xcalloc((size_t)(n ? n : 1), sizeof *s->readers);
    for (int i = 0; rc == RC_OK && i < n; i++) {
        s->nreaders++;
        s->readers[i].base.mode = DB_READ;
        rc = conn_open(db, &s->readers[i], path, true);
    }
    if (rc == RC_OK && !mem)
        rc = ckpt_start(db, s, path);
    if (rc)
        sq_close(db);
    return rc;
}

/* ---- pool --------------------------------------------------------------- */

static struct sq_conn *try_take(struct sq_db *s, enum db_mode mode)
{
    if (mode == DB_WRITE || s->nreaders == 0)
        return s->writer.busy ? NULL : &s->writer;
    for (int i = 0; i < s->nreaders; i++)
        if (!s->readers[i].busy)
            return &s->readers[i];
    return NULL;
}

static rc_t sq_acquire(struct db *db, enum db_mode mode, int timeout_ms, struct db_conn **out)
{
    struct sq_db *s = db->be;
    struct timespec dl;
    struct sq_conn *c;
    int e = 0;
    db_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (!(c = try_take(s, mode)) && e != ETIMEDOUT)
        e = pthread_cond_timedwait(mode == DB_WRITE || s->nreaders == 0 ? &s->cvw : &s->cv, &s->mu,
                                   &dl);
    if (c)
        c->busy = true;
    pthread_mutex_unlock(&s->mu);
    if (!c) {
        log_msg(LOG_ERROR, "db_pool_timeout", "sqlite: no %s connection within %d ms",
                mode == DB_WRITE ? "writer" : "reader", timeout_ms);
        return RC_TIMEOUT;
    }
    c->base.mode = mode;
    c->base.tx = DB_TX_NONE;
    *out = &c->base;
    return RC_OK;
}

static void sq_release(struct db_conn *bc)
{
    struct sq_conn *c = (struct sq_conn *)bc;
    struct sq_db *s = bc->db->be;
    /* A transaction the caller left open (e.g. after a failed ROLLBACK). */
    if (!sqlite3_get_autocommit(c->h))
        (void)sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_lock(&s->mu);
    c->busy = false;
    /* One waiter per released connection: a broadcast woke every blocked
     * worker to find the slot already taken. */
    pthread_cond_signal(c == &s->writer ? &s->cvw : &s->cv);
    pthread_mutex_unlock(&s->mu);
}

static rc_t sq_ping(struct db *db)
{
    struct db_conn *c = NULL;
    struct db_res *r = NULL;
    rc_t rc = sq_acquire(db, DB_READ, DB_PING_TIMEOUT_MS, &c);
    if (rc)
        return rc;
    rc = sq_exec(c, "SELECT 1", 0, NULL, &r);
    if (rc == RC_OK && (db_res_rows(r) != 1 || db_res_int(r, 0, 0) != 1))
        rc = RC_DB;
    db_res_free(r);
    sq_release(c);
    return rc;
}

static void sq_pool_stats(struct db *db, struct db_pool_stats *out)
{
    struct sq_db *s = db->be;
    pthread_mutex_lock(&s->mu);
    out->max = 1 + s->nreaders;
    out->in_use = s->writer.busy ? 1 : 0;
    for (int i = 0; i < s->nreaders; i++)
        out->in_use += s->readers[i].busy ? 1 : 0;
    out->idle = out->max - out->in_use;
    pthread_mutex_unlock(&s->mu);
}

const struct db_ops db_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .acquire = sq_acquire,
    .release = sq_release,
    .exec = sq_exec,
    .exec_script = sq_exec_script,
    .ping = sq_ping,
    .pool_stats = sq_pool_stats,
};
