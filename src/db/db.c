/* Database driver front end (see db.h): URL parsing, dispatch to the backend
 * ops table, the transaction state machine shared by both backends, error
 * logging, and the backend-independent result type with its typed getters.
 *
 * Invariants: a struct db_conn belongs to one thread between acquire and
 * release; c->tx is only changed here. When a statement fails inside a
 * unit, the unit is rolled back at once (SQLite would otherwise keep the
 * earlier statements of the unit and commit them), so both backends give
 * the same all-or-nothing behaviour. */
#include "db/db_int.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/timeutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct db_res {
    int rows, cols;
    int64_t affected;
    const char **cells; /* rows*cols, NULL = SQL NULL */
    char *text;         /* storage for builder results */
    void *owner;
    void (*owner_free)(void *);
};

/* ---- URL ---------------------------------------------------------------- */

static const char *after_scheme(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);
    if (strncasecmp(url, scheme, n) == 0 && strncmp(url + n, "://", 3) == 0)
        return url + n + 3;
    return NULL;
}

static rc_t parse_pg(const char *url, char **out_target)
{
    static const char *const schemes[] = {"postgresql", "postgres", "postgresql+asyncpg",
                                          "postgres+asyncpg"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        const char *rest = after_scheme(url, schemes[i]);
        if (!rest)
            continue;
        /* libpq only knows postgresql:// and postgres://; drop +asyncpg. */
        size_t n = strlen(rest);
        char *t = xmalloc(sizeof "postgresql://" + n);
        memcpy(t, "postgresql://", sizeof "postgresql://" - 1);
        memcpy(t + sizeof "postgresql://" - 1, rest, n + 1);
        *out_target = t;
        return RC_OK;
    }
    return RC_INVALID;
}

rc_t db_url_parse(const char *url, enum db_kind *out_kind, char **out_target)
{
    if (!url || !*url)
        return RC_INVALID;
    if (!strstr(url, "://")) {
        /* A bare path; "scheme:..." without // is a malformed URL, not a
         * file name. */
        size_t scheme = strcspn(url, ":/");
        if (strchr(url, '?') || url[scheme] == ':')
            return RC_INVALID;
        *out_kind = DB_SQLITE;
        *out_target = xstrdup(url);
        return RC_OK;
    }
    const char *rest = after_scheme(url, "sqlite");
    if (rest) {
        /* sqlite:///<path>: empty host, then the path exactly as written. */
        if (rest[0] != '/' || rest[1] == '\0' || strchr(rest, '?'))
            return RC_INVALID;
        *out_kind = DB_SQLITE;
        *out_target = xstrdup(rest + 1);
        return RC_OK;
    }
    if (parse_pg(url, out_target) == RC_OK) {
        *out_kind = DB_POSTGRES;
        return RC_OK;
    }
    return RC_INVALID;
}

static void apply_defaults(struct db_opts *o, const struct db_opts *in)
{
    if (in)
        *o = *in;
    else
        memset(o, 0, sizeof *o);
    if (o->pool_size <= 0)
        o->pool_size = DB_DEFAULT_POOL_SIZE;
    if (o->max_overflow < 0)
        o->max_overflow = 0;
    if (o->pool_timeout_ms <= 0)
        o->pool_timeout_ms = DB_DEFAULT_POOL_TIMEOUT_MS;
    if (o->pool_recycle_s <= 0)
        o->pool_recycle_s = DB_DEFAULT_POOL_RECYCLE_S;
    if (o->statement_timeout_ms < 0)
        o->statement_timeout_ms = 0;
    if (o->sqlite_busy_timeout_ms <= 0)
        o->sqlite_busy_timeout_ms = DB_DEFAULT_BUSY_TIMEOUT_MS;
    if (o->sqlite_readers == 0)
        o->sqlite_readers = DB_DEFAULT_SQLITE_READERS;
    else if (o->sqlite_readers < 0)
        o->sqlite_readers = 0;
}

/* ---- handle ------------------------------------------------------------- */

rc_t db_open(const char *url, const struct db_opts *opts, struct db **out)
{
    enum db_kind kind;
    char *target = NULL;
    *out = NULL;
    rc_t rc = db_url_parse(url, &kind, &target);
    if (rc) {
        log_msg(LOG_ERROR, "db_open_failed", "unsupported database URL form");
        return rc;
    }
    struct db *db = xcalloc(1, sizeof *db);
    db->kind = kind;
    db->ops = kind == DB_SQLITE ? &db_sqlite_ops : &db_pg_ops;
    apply_defaults(&db->opts, opts);
    rc = db->ops->open(db, target);
    /* The PostgreSQL URL may hold a password: wipe our copy. */
    xfree_secret_str(target);
    if (rc) {
        free(db->sqlite_dir);
        free(db);
        return rc;
    }
    *out = db;
    return RC_OK;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    db->ops->close(db);
    free(db->sqlite_dir);
    free(db);
}

enum db_kind db_kind(const struct db *db)
{
    return db->kind;
}

const char *db_sqlite_dir(const struct db *db)
{
    return db->kind == DB_SQLITE ? db->sqlite_dir : NULL;
}

rc_t db_acquire(struct db *db, enum db_mode mode, struct db_conn **out)
{
    *out = NULL;
    return db->ops->acquire(db, mode, db->opts.pool_timeout_ms, out);
}

void db_release(struct db_conn *c)
{
    if (!c)
        return;
    db_rollback(c);
    c->tx = DB_TX_NONE;
    db_conn_clear_error(c);
    c->db->ops->release(c);
}

rc_t db_ping(struct db *db)
{
    return db->ops->ping(db);
}

void db_pool_stats(struct db *db, struct db_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    db->ops->pool_stats(db, out);
}

/* ---- errors ------------------------------------------------------------- */

void db_conn_set_error(struct db_conn *c, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    snprintf(c->code, sizeof c->code, "%s", code ? code : "");
    /* Drop trailing newlines of libpq messages. */
    size_t n = strlen(c->err);
    while (n && (c->err[n - 1] == '\n' || c->err[n - 1] == ' '))
        c->err[--n] = '\0';
}

void db_conn_clear_error(struct db_conn *c)
{
    c->err[0] = '\0';
    c->code[0] = '\0';
}

const char *db_conn_error(const struct db_conn *c)
{
    return c->err;
}

enum db_kind db_conn_kind(const struct db_conn *c)
{
    return c->db->kind;
}

static void log_failure(const struct db_conn *c, rc_t rc, const char *sql)
{
    /* Conflicts and constraint failures are answers the caller handles
     * (duplicate email, ...): keep them out of the error log. */
    enum log_level lvl = (rc == RC_CONFLICT || rc == RC_CONSTRAINT) ? LOG_DEBUG : LOG_ERROR;
    if (!log_enabled(lvl))
        return;
    struct log_line l;
    log_begin(&l, lvl, "db_error", NULL);
    log_str(&l, "backend", c->db->ops->name);
    log_str(&l, "rc", rc_str(rc));
    log_str(&l, "code", c->code);
    log_str(&l, "error", c->err);
    /* SQL text only: values are always bound parameters, never logged. */
    log_strn(&l, "sql", sql, 200);
    log_bool(&l, "in_transaction", c->tx != DB_TX_NONE);
    log_end(&l);
}

/* Runs a control statement (BEGIN/COMMIT/ROLLBACK) without touching tx. */
static rc_t exec_ctl(struct db_conn *c, const char *sql)
{
    rc_t rc = c->db->ops->exec(c, sql, 0, NULL, NULL);
    if (rc)
        log_failure(c, rc, sql);
    return rc;
}

static void fail_unit(struct db_conn *c, rc_t rc)
{
    if (c->tx != DB_TX_OPEN)
        return;
    char keep_err[DB_ERR_MAX], keep_code[sizeof c->code];
    memcpy(keep_err, c->err, sizeof keep_err);
    memcpy(keep_code, c->code, sizeof keep_code);
    /* Best effort: on a lost connection the server already rolled back. */
    (void)c->db->ops->exec(c, "ROLLBACK", 0, NULL, NULL);
    memcpy(c->err, keep_err, sizeof keep_err);
    memcpy(c->code, keep_code, sizeof keep_code);
    c->tx = DB_TX_FAILED;
    c->tx_rc = rc;
}

rc_t db_exec(struct db_conn *c, const char *sql, int nparams, const struct db_param *params,
             struct db_res **out)
{
    if (out)
        *out = NULL;
    if (c->tx == DB_TX_FAILED) {
        db_conn_set_error(c, "", "statement in a failed transaction (rolled back)");
        return RC_DB;
    }
    if (nparams < 0 || (nparams > 0 && !params))
        return RC_INVALID;
    db_conn_clear_error(c);
    rc_t rc = c->db->ops->exec(c, sql, nparams, params, out);
    if (rc) {
        log_failure(c, rc, sql);
        fail_unit(c, rc);
    }
    return rc;
}

rc_t db_exec_script(struct db_conn *c, const char *sql)
{
    if (c->tx == DB_TX_FAILED) {
        db_conn_set_error(c, "", "statement in a failed transaction (rolled back)");
        return RC_DB;
    }
    db_conn_clear_error(c);
    rc_t rc = c->db->ops->exec_script(c, sql);
    if (rc) {
        log_failure(c, rc, "(script)");
        fail_unit(c, rc);
    }
    return rc;
}

/* ---- transactions ------------------------------------------------------- */

rc_t db_begin(struct db_conn *c)
{
    if (c->tx != DB_TX_NONE) {
        db_conn_set_error(c, "", "transaction already open");
        return RC_INTERNAL;
    }
    const char *sql;
    if (c->db->kind == DB_SQLITE)
        sql = c->mode == DB_WRITE ? "BEGIN IMMEDIATE" : "BEGIN";
    else
        sql = c->mode == DB_WRITE ? "BEGIN" : "BEGIN READ ONLY";
    db_conn_clear_error(c);
    rc_t rc = exec_ctl(c, sql);
    if (rc == RC_OK) {
        c->tx = DB_TX_OPEN;
        c->tx_rc = RC_OK;
    }
    return rc;
}

rc_t db_commit(struct db_conn *c)
{
    if (c->tx == DB_TX_NONE) {
        db_conn_set_error(c, "", "commit without a transaction");
        return RC_INTERNAL;
    }
    if (c->tx == DB_TX_FAILED) {
        c->tx = DB_TX_NONE;
        return c->tx_rc ? c->tx_rc : RC_DB;
    }
    rc_t rc = exec_ctl(c, "COMMIT");
    if (rc) {
        /* SQLite keeps the transaction open when COMMIT fails (busy). */
        (void)c->db->ops->exec(c, "ROLLBACK", 0, NULL, NULL);
    }
    c->tx = DB_TX_NONE;
    return rc;
}

void db_rollback(struct db_conn *c)
{
    if (c->tx == DB_TX_OPEN)
        (void)exec_ctl(c, "ROLLBACK");
    c->tx = DB_TX_NONE;
}

bool db_in_tx(const struct db_conn *c)
{
    return c->tx != DB_TX_NONE;
}

/* ---- results ------------------------------------------------------------ */

void db_res_builder_init(struct db_res_builder *b, int cols)
{
    memset(b, 0, sizeof *b);
    buf_init(&b->text, DB_RES_MAX_BYTES);
    b->cols = cols;
}

void db_res_builder_cell(struct db_res_builder *b, const char *p, size_t n)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->offs = xrealloc(b->offs, b->cap * sizeof *b->offs);
    }
    if (!p) {
        b->offs[b->n++] = SIZE_MAX;
        return;
    }
    b->offs[b->n++] = b->text.len;
    buf_append(&b->text, p, n);
    buf_putc(&b->text, '\0');
}

void db_res_builder_free(struct db_res_builder *b)
{
    buf_free(&b->text);
    free(b->offs);
    b->offs = NULL;
    b->n = b->cap = 0;
}

rc_t db_res_builder_finish(struct db_res_builder *b, int64_t affected, struct db_res **out)
{
    if (b->text.err) {
        db_res_builder_free(b);
        return RC_LIMIT;
    }
    struct db_res *r = xcalloc(1, sizeof *r);
    r->cols = b->cols;
    r->rows = b->cols ? (int)(b->n / (size_t)b->cols) : 0;
    r->affected = affected;
    r->text = buf_take(&b->text);
    r->cells = xmalloc((b->n ? b->n : 1) * sizeof *r->cells);
    for (size_t i = 0; i < b->n; i++)
        r->cells[i] = b->offs[i] == SIZE_MAX ? NULL : r->text + b->offs[i];
    db_res_builder_free(b);
    *out = r;
    return RC_OK;
}

struct db_res *db_res_wrap(int rows, int cols, int64_t affected, const char **cells, void *owner,
                           void (*owner_free)(void *))
{
    struct db_res *r = xcalloc(1, sizeof *r);
    r->rows = rows;
    r->cols = cols;
    r->affected = affected;
    r->cells = cells;
    r->owner = owner;
    r->owner_free = owner_free;
    return r;
}

void db_res_free(struct db_res *r)
{
    if (!r)
        return;
    if (r->owner_free)
        r->owner_free(r->owner);
    free(r->cells);
    free(r->text);
    free(r);
}

int db_res_rows(const struct db_res *r)
{
    return r ? r->rows : 0;
}

int db_res_cols(const struct db_res *r)
{
    return r ? r->cols : 0;
}

int64_t db_res_affected(const struct db_res *r)
{
    return r ? r->affected : 0;
}

const char *db_res_get(const struct db_res *r, int row, int col)
{
    if (!r || row < 0 || col < 0 || row >= r->rows || col >= r->cols)
        return NULL;
    return r->cells[(size_t)row * (size_t)r->cols + (size_t)col];
}

bool db_res_is_null(const struct db_res *r, int row, int col)
{
    return db_res_get(r, row, col) == NULL;
}

int64_t db_res_int(const struct db_res *r, int row, int col)
{
    const char *s = db_res_get(r, row, col);
    int64_t v;
    if (!s)
        return 0;
    if (str_parse_i64(s, &v))
        return v;
    /* Booleans read as integers. */
    if (strcmp(s, "t") == 0 || strcmp(s, "true") == 0)
        return 1;
    return 0;
}

bool db_res_bool(const struct db_res *r, int row, int col)
{
    const char *s = db_res_get(r, row, col);
    if (!s)
        return false;
    return strcmp(s, "t") == 0 || strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0;
}

bool db_res_time(const struct db_res *r, int row, int col, int64_t *out_us)
{
    const char *s = db_res_get(r, row, col);
    return s && time_parse(s, out_us);
}

/* ---- text[] ------------------------------------------------------------- */

static void json_quote(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)*p);
        } else if (*p < 0x20) {
            buf_printf(b, "\\u%04x", *p);
        } else {
            buf_putc(b, (char)*p);
        }
    }
    buf_putc(b, '"');
}

static void pg_quote(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_putc(b, '\\');
        buf_putc(b, *p);
    }
    buf_putc(b, '"');
}

char *db_text_array_new(enum db_kind kind, const char *const *items, size_t n)
{
    struct buf b;
    buf_init(&b, SIZE_MAX);
    buf_putc(&b, kind == DB_SQLITE ? '[' : '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(&b, ',');
        if (kind == DB_SQLITE)
            json_quote(&b, items[i]);
        else
            pg_quote(&b, items[i]);
    }
    buf_putc(&b, kind == DB_SQLITE ? ']' : '}');
    return buf_take(&b);
}

/* Decoded elements are appended to `out` NUL-separated; count in *n. */
static void put_utf8(struct buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_append(b, u, n);
}

static bool hex4(const char **p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = (*p)[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            return false;
        v = v * 16 + (uint32_t)d;
    }
    *p += 4;
    *out = v;
    return true;
}

static bool json_escape_char(const char **pp, struct buf *b)
{
    const char *p = *pp;
    uint32_t cp, lo;
    switch (*p++) {
    case '"':
        buf_putc(b, '"');
        break;
    case '\\':
        buf_putc(b, '\\');
        break;
    case '/':
        buf_putc(b, '/');
        break;
    case 'b':
        buf_putc(b, '\b');
        break;
    case 'f':
        buf_putc(b, '\f');
        break;
    case 'n':
        buf_putc(b, '\n');
        break;
    case 'r':
        buf_putc(b, '\r');
        break;
    case 't':
        buf_putc(b, '\t');
        break;
    case 'u':
        if (!hex4(&p, &cp) || (cp >= 0xDC00 && cp <= 0xDFFF))
            return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (p[0] != '\\' || p[1] != 'u')
                return false;
            p += 2;
            if (!hex4(&p, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp == 0)
            return false; /* would truncate the C string */
        put_utf8(b, cp);
        break;
    default:
        return false;
    }
    *pp = p;
    return true;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static bool parse_json_array(const char *p, struct buf *b, size_t *n)
{
    p = skip_ws(p);
    if (*p++ != '[')
        return false;
    p = skip_ws(p);
    if (*p == ']')
        return *skip_ws(p + 1) == '\0';
    for (;;) {
        if (*p++ != '"')
            return false;
        while (*p != '"') {
            if (*p == '\0' || (unsigned char)*p < 0x20)
                return false;
            if (*p == '\\') {
                p++;
                if (!json_escape_char(&p, b))
                    return false;
            } else {
                buf_putc(b, *p++);
            }
        }
        p = skip_ws(p + 1);
        buf_putc(b, '\0');
        (*n)++;
        if (*p == ']')
            return *skip_ws(p + 1) == '\0';
        if (*p++ != ',')
            return false;
        p = skip_ws(p);
    }
}

/* PostgreSQL array_out: {a,"b c","d\"e"}; unquoted NULL is a null element. */
static bool parse_pg_array(const char *p, struct buf *b, size_t *n)
{
    if (*p++ != '{')
        return false;
    if (*p == '}')
        return p[1] == '\0';
    for (;;) {
        if (*p == '"') {
            p++;
            while (*p != '"') {
                if (*p == '\0')
                    return false;
                if (*p == '\\' && p[1])
                    p++;
                buf_putc(b, *p++);
            }
            p++;
        } else {
            const char *s = p;
            while (*p && *p != ',' && *p != '}') {
                if (*p == '{' || *p == '"' || *p == '\\')
                    return false;
                p++;
            }
            if (p == s || (p - s == 4 && strncasecmp(s, "NULL", 4) == 0))
                return false;
            buf_append(b, s, (size_t)(p - s));
        }
        buf_putc(b, '\0');
        (*n)++;
        if (*p == '}')
            return p[1] == '\0';
        if (*p++ != ',')
            return false;
    }
}

rc_t db_res_text_array(const struct db_res *r, int row, int col, char ***out_items, size_t *out_n)
{
    const char *s = db_res_get(r, row, col);
    struct buf b;
    size_t n = 0;
    bool ok = true;
    *out_items = NULL;
    *out_n = 0;
    buf_init(&b, DB_RES_MAX_BYTES);
    if (s) {
        const char *t = skip_ws(s);
        ok = *t == '[' ? parse_json_array(t, &b, &n) : parse_pg_array(t, &b, &n);
    }
    if (!ok || b.err) {
        buf_free(&b);
        return RC_INVALID;
    }
    /* One block: n+1 pointers, then the NUL-separated strings. */
    size_t ptrs = (n + 1) * sizeof(char *);
    char **items = xmalloc(ptrs + b.len + 1);
    char *text = (char *)items + ptrs;
    if (b.len)
        memcpy(text, b.data, b.len);
    text[b.len] = '\0';
    for (size_t i = 0; i < n; i++) {
        items[i] = text;
        text += strlen(text) + 1;
    }
    items[n] = NULL;
    buf_free(&b);
    *out_items = items;
    *out_n = n;
    return RC_OK;
}

/* ---- pool helpers ------------------------------------------------------- */

int db_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    int e = pthread_condattr_init(&a);
    if (e)
        return e;
    e = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (!e)
        e = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return e;
}

void db_deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

rc_t db_exec_one(struct db_conn *c, const char *sql, int nparams, const struct db_param *params)
{
    struct db_res *r = NULL;
    rc_t rc = db_exec(c, sql, nparams, params, &r);
    if (rc == RC_OK && db_res_affected(r) == 0)
        rc = RC_NOT_FOUND;
    db_res_free(r);
    return rc;
}
