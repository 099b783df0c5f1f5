/* Database driver: one small API over two backends (SQLite, PostgreSQL).
 *
 * SQL text is written once with $1..$N parameters and runs on both: SQLite
 * binds "$N" as a named parameter, libpq natively. Parameters are text,
 * integers, booleans or NULL (libpq receives them all as text); results are
 * read back as text with typed helpers that understand both backends'
 * spellings (booleans t/f vs 1/0, timestamps, text[]). docs/storage.md lists
 * the dialect rules for SQL that must run on both.
 *
 * Connections are checked out of the handle's pool with db_acquire and
 * returned with db_release. SQLite keeps one writer connection (serialised
 * by a mutex: the one-writer discipline) and a set of readers (WAL);
 * callers say which they need. PostgreSQL has a fixed-size pool (+overflow),
 * liveness-checks connections, and reconnects after a server restart.
 *
 * Thread-safety: struct db is shared by all threads; a struct db_conn is
 * used by one thread between acquire and release. Results are independent
 * of the connection once returned.
 */
#ifndef AUTHD_DB_DB_H
#define AUTHD_DB_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/rc.h"

struct db;
struct db_conn;
struct db_res;

enum db_kind { DB_SQLITE, DB_POSTGRES };
enum db_mode { DB_READ, DB_WRITE };

struct db_opts {
    int pool_size;              /* PostgreSQL: base pool (DATABASE__POOL_SIZE) */
    int max_overflow;           /* PostgreSQL: extra connections under load */
    int pool_timeout_ms;        /* wait for a free connection → RC_TIMEOUT */
    int pool_recycle_s;         /* max connection age */
    int statement_timeout_ms;   /* PostgreSQL statement_timeout; 0 = off */
    int sqlite_busy_timeout_ms; /* default 5000 */
    int sqlite_readers;         /* reader connections; default 4 */
};

enum db_ptype { DBP_NULL = 0, DBP_TEXT, DBP_INT, DBP_BOOL };

struct db_param {
    enum db_ptype type;
    const char *s; /* DBP_TEXT: NUL-terminated, borrowed */
    int64_t i;     /* DBP_INT, DBP_BOOL (0/1) */
};

/* Text, or NULL → SQL NULL. A function so char arrays (uuid buffers) can be
 * passed without -Waddress complaining that they are never NULL. */
static inline struct db_param db_param_text(const char *s)
{
    return (struct db_param){.type = s ? DBP_TEXT : DBP_NULL, .s = s};
}
#define DBP_T(x) db_param_text(x)
#define DBP_I(x) ((struct db_param){.type = DBP_INT, .i = (x)})
#define DBP_B(x) ((struct db_param){.type = DBP_BOOL, .i = (x) ? 1 : 0})
#define DBP_NUL ((struct db_param){.type = DBP_NULL})

/* Parses `sqlite:///path`, a bare path, `postgresql://…`, `postgres://…`,
 * `postgresql+asyncpg://…` (the +asyncpg part is ignored). SQLite creates
 * the file (mode 0600) and its directory (0700), sets WAL, foreign_keys=ON,
 * busy timeout; `sqlite:///:memory:` is a private in-memory database whose
 * reads share the writer connection (tests). PostgreSQL connects lazily but
 * checks one connection at open so a wrong URL fails start-up
 * (RC_UNAVAILABLE); sessions run with TimeZone=UTC. opts NULL = defaults;
 * zero fields take the defaults of config-ops §2.2 (pool 20, timeout 30 s,
 * recycle 1800 s, busy 5000 ms, 4 readers); max_overflow and
 * statement_timeout_ms take 0 literally; sqlite_readers < 0 = none. */
rc_t db_open(const char *url, const struct db_opts *opts, struct db **out) WUR;
/* Classifies a DATABASE__URL without opening it (config validation).
 * SQLite: `sqlite:///p` → p as written (`sqlite:///./a.db` → ./a.db,
 * `sqlite:////abs/a.db` → /abs/a.db); a string without "://" is a path.
 * PostgreSQL: the URL with "+asyncpg" removed from the scheme. Anything
 * else (other schemes, `sqlite://host/p`, empty path, '?' in a SQLite URL)
 * is RC_INVALID. *out_target is owned by the caller (free). */
rc_t db_url_parse(const char *url, enum db_kind *out_kind, char **out_target) WUR;
void db_close(struct db *db); /* NULL ok; all connections must be released */
enum db_kind db_kind(const struct db *db);
/* Data directory for SQLite (directory of the file), else NULL. */
const char *db_sqlite_dir(const struct db *db);

/* Checks a connection out. RC_TIMEOUT when the pool stays exhausted for
 * pool_timeout_ms, RC_UNAVAILABLE when the server cannot be reached. */
rc_t db_acquire(struct db *db, enum db_mode mode, struct db_conn **out) WUR;
/* Returns a connection. A connection released inside an open transaction
 * is rolled back first. NULL ok. */
void db_release(struct db_conn *c);

/* Runs one statement. out may be NULL when no rows are wanted. Errors:
 * RC_CONFLICT (unique violation), RC_CONSTRAINT (FK/check/not-null),
 * RC_UNAVAILABLE (connection lost; a failed statement outside a transaction
 * is retried once on a fresh connection), RC_TIMEOUT (statement timeout;
 * SQLite: busy timeout), RC_BUSY (PostgreSQL deadlock / serialization /
 * lock_not_available: retry the unit), RC_INVALID (nparams does not match
 * the $N of the SQL, or several statements in sql), RC_DB otherwise. The
 * database's message goes to db_conn_error, never to a client; failures are
 * logged (event "db_error": error level, but debug level for RC_CONFLICT
 * and RC_CONSTRAINT, which callers handle) with the SQL text, never with
 * parameter values. */
rc_t db_exec(struct db_conn *c, const char *sql, int nparams, const struct db_param *params,
             struct db_res **out) WUR;
/* db_exec for an UPDATE/DELETE that must change at least one row:
 * RC_NOT_FOUND when it changed none. */
rc_t db_exec_one(struct db_conn *c, const char *sql, int nparams,
                 const struct db_param *params) WUR;
/* Several statements without parameters (migrations). */
rc_t db_exec_script(struct db_conn *c, const char *sql) WUR;
/* Last error text of this connection ("" when none); borrowed. */
const char *db_conn_error(const struct db_conn *c);
enum db_kind db_conn_kind(const struct db_conn *c);

/* Transactions: a unit is begin → statements → commit; any failure →
 * rollback and the whole unit is gone. SQLite write transactions use BEGIN
 * IMMEDIATE on the writer connection; DB_READ units are read-only snapshots.
 * Both backends behave alike when a statement fails inside a unit: the
 * driver rolls the unit back at once, later db_exec calls fail with RC_DB
 * without running, db_commit returns the first failure's code, and
 * db_rollback just closes the unit. (To tolerate a duplicate inside a unit,
 * write INSERT ... ON CONFLICT DO NOTHING.) Nesting is RC_INTERNAL. */
rc_t db_begin(struct db_conn *c) WUR;
rc_t db_commit(struct db_conn *c) WUR;
void db_rollback(struct db_conn *c); /* no-op outside a transaction */
bool db_in_tx(const struct db_conn *c);

/* Results. Row and column indexes are 0-based. Values are borrowed from the
 * result; NULL means SQL NULL. */
int db_res_rows(const struct db_res *r);
int db_res_cols(const struct db_res *r);
int64_t db_res_affected(const struct db_res *r); /* rows changed by the statement */
const char *db_res_get(const struct db_res *r, int row, int col);
bool db_res_is_null(const struct db_res *r, int row, int col);
int64_t db_res_int(const struct db_res *r, int row, int col); /* NULL → 0 */
bool db_res_bool(const struct db_res *r, int row, int col);   /* t/true/1 */
/* Timestamp (either backend's text) → Unix microseconds; false if NULL/bad. */
bool db_res_time(const struct db_res *r, int row, int col, int64_t *out_us);
void db_res_free(struct db_res *r); /* NULL ok */

/* text[] columns (oauth_clients.scopes, webhook_endpoints.events) are
 * spelled differently by the backends: SQLite stores a JSON array of
 * strings, PostgreSQL a varchar[] (`{a,"b c"}` text form). These two helpers
 * hide that. db_text_array_new encodes items for a DBP_TEXT parameter of
 * the given backend; the result is owned (free). db_res_text_array decodes
 * either spelling into one xmalloc'd block (free it with free()) holding a
 * NULL-terminated array of strings; SQL NULL → 0 items; a malformed value
 * or a NULL element → RC_INVALID. */
char *db_text_array_new(enum db_kind kind, const char *const *items, size_t n);
rc_t db_res_text_array(const struct db_res *r, int row, int col, char ***out_items,
                       size_t *out_n) WUR;

/* Readiness: SELECT 1 on a connection (fresh if needed). Answers within
 * about DB_PING_TIMEOUT_MS (5 s) even when the server is down or hung:
 * RC_UNAVAILABLE / RC_TIMEOUT. */
rc_t db_ping(struct db *db) WUR;

struct db_pool_stats {
    int in_use;
    int idle;
    int max;
};
void db_pool_stats(struct db *db, struct db_pool_stats *out);

#endif
