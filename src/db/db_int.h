/* Private header of the database driver (src/db/): the backend ops table,
 * the shared handle/connection structs and the result builder that both
 * backends use. Nothing outside src/db/ and tests/unit/test_db.c includes
 * this file.
 *
 * Layout: struct db is the shared handle; each backend keeps its own state
 * behind db->be. A backend connection struct starts with a struct db_conn
 * (first member) so a pointer to one is a pointer to the other. db.c owns
 * the transaction state machine (c->tx) and error logging; backends only
 * run statements, fill c->err / c->code and map errors to rc_t. */
#ifndef AUTHD_DB_DB_INT_H
#define AUTHD_DB_DB_INT_H

#include "db/db.h"
#include "util/buf.h"

#include <pthread.h>

/* Longest error text kept per connection (truncated beyond). */
#define DB_ERR_MAX 512
/* Largest result a single statement may materialise (RC_LIMIT beyond). */
#define DB_RES_MAX_BYTES ((size_t)256 * 1024 * 1024)
/* Defaults applied by db_open to zero fields of struct db_opts. */
#define DB_DEFAULT_POOL_SIZE 20
#define DB_DEFAULT_POOL_TIMEOUT_MS 30000
#define DB_DEFAULT_POOL_RECYCLE_S 1800
#define DB_DEFAULT_BUSY_TIMEOUT_MS 5000
#define DB_DEFAULT_SQLITE_READERS 4
/* db_ping waits at most this long, for a connection and for its answer. */
#define DB_PING_TIMEOUT_MS 5000
/* PostgreSQL connect_timeout in seconds. */
#define DB_PG_CONNECT_TIMEOUT_S 5

enum db_tx {
    DB_TX_NONE = 0, /* autocommit */
    DB_TX_OPEN,     /* begin succeeded, every statement since succeeded */
    DB_TX_FAILED    /* a statement failed: already rolled back, awaiting commit/rollback */
};

struct db_ops {
    const char *name; /* "sqlite" / "postgres", for logs */
    /* target = path (SQLite) or libpq URL with +asyncpg stripped. */
    rc_t (*open)(struct db *db, const char *target);
    void (*close)(struct db *db);
    rc_t (*acquire)(struct db *db, enum db_mode mode, int timeout_ms, struct db_conn **out);
    void (*release)(struct db_conn *c);
    /* Runs one statement. Sets c->err/c->code on failure. May retry on a
     * fresh connection when c->tx == DB_TX_NONE (PostgreSQL). */
    rc_t (*exec)(struct db_conn *c, const char *sql, int nparams, const struct db_param *params,
                 struct db_res **out);
    rc_t (*exec_script)(struct db_conn *c, const char *sql);
    /* SELECT 1 within DB_PING_TIMEOUT_MS. */
    rc_t (*ping)(struct db *db);
    void (*pool_stats)(struct db *db, struct db_pool_stats *out);
};

extern const struct db_ops db_sqlite_ops;
extern const struct db_ops db_pg_ops;

struct db {
    enum db_kind kind;
    const struct db_ops *ops;
    struct db_opts opts; /* defaults applied */
    char *sqlite_dir;    /* SQLite: directory of the file; owned */
    void *be;            /* backend state; owned by the backend */
};

struct db_conn {
    struct db *db;
    enum db_mode mode;
    enum db_tx tx;
    rc_t tx_rc;           /* first failure of the current transaction */
    char code[16];        /* SQLSTATE or SQLite extended code of the last error */
    char err[DB_ERR_MAX]; /* last error text, never parameter values */
};

/* Sets c->err (printf-style, truncated) and c->code. */
void db_conn_set_error(struct db_conn *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void db_conn_clear_error(struct db_conn *c);

/* Result builder: cells are appended row-major; a NULL pointer is SQL
 * NULL. Used by SQLite, which must copy values before resetting a
 * statement. */
struct db_res_builder {
    struct buf text;
    size_t *offs; /* per cell offset into text, SIZE_MAX = NULL */
    size_t n, cap;
    int cols;
};
void db_res_builder_init(struct db_res_builder *b, int cols);
void db_res_builder_cell(struct db_res_builder *b, const char *p, size_t n);
/* Consumes the builder (also on failure). RC_LIMIT past DB_RES_MAX_BYTES. */
rc_t db_res_builder_finish(struct db_res_builder *b, int64_t affected, struct db_res **out);
void db_res_builder_free(struct db_res_builder *b);

/* Wraps cells owned elsewhere (PostgreSQL: pointers into a PGresult).
 * Takes ownership of the cells array (xmalloc'd) and of owner, released
 * with owner_free at db_res_free. */
struct db_res *db_res_wrap(int rows, int cols, int64_t affected, const char **cells, void *owner,
                           void (*owner_free)(void *));

/* Absolute CLOCK_MONOTONIC deadline ms from now, for pthread_cond_timedwait
 * on a condvar made by db_cond_init. */
void db_deadline(struct timespec *ts, int ms);
int db_cond_init(pthread_cond_t *cv);

#endif
