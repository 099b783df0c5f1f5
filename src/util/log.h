/* JSON-lines logging (config-ops §7). One object per line on stdout, written
 * with a single write(2) so lines from threads never interleave. Use:
 *
 *   if (log_enabled(LOG_INFO)) {
 *       struct log_line l;
 *       log_begin(&l, LOG_INFO, "request_completed", corr_id);
 *       log_str(&l, "method", "GET");
 *       log_end(&l);
 *   }
 *
 * or the LOGF shorthand for a single message field. Request-derived strings
 * are truncated to LOG_FIELD_MAX bytes. Never pass a secret to any of this. */
#ifndef AUTHD_UTIL_LOG_H
#define AUTHD_UTIL_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_CRITICAL };

#define LOG_FIELD_MAX 512
#define LOG_LINE_MAX 8192

/* Called once at start-up, before threads. Strings are copied. */
void log_init(enum log_level min, const char *service, const char *environment);
/* Redirects output (tests); fd 1 by default. */
void log_set_fd(int fd);
bool log_enabled(enum log_level lvl);
/* "DEBUG".."CRITICAL" → level; false on anything else. */
bool log_level_parse(const char *s, enum log_level *out);

struct log_line {
    struct buf b;
    enum log_level lvl;
    bool skip; /* below APP__LOG_LEVEL: every call is a no-op */
};

/* Turns on per-thread buffering with a flusher thread (see log.c); lines
 * reach the fd within about 50 ms, errors at once. */
void log_start_flusher(void);
/* Writes every buffered line now. */
void log_flush(void);
/* Stops the flusher and writes everything; logging continues unbuffered. */
void log_shutdown(void);

/* corr_id NULL → "unknown". Lines below the configured level are dropped
 * here, so callers may skip the log_enabled check when formatting is cheap. */
void log_begin(struct log_line *l, enum log_level lvl, const char *event, const char *corr_id);
void log_str(struct log_line *l, const char *key, const char *val); /* NULL → null */
void log_strn(struct log_line *l, const char *key, const char *val, size_t n);
void log_int(struct log_line *l, const char *key, int64_t v);
void log_bool(struct log_line *l, const char *key, bool v);
void log_double(struct log_line *l, const char *key, double v, int decimals);
/* A number with exactly two decimals from an integer count of hundredths. */
void log_fixed2(struct log_line *l, const char *key, int64_t hundredths);
/* Inserts pre-rendered JSON (object, array, number) as the value. */
void log_raw(struct log_line *l, const char *key, const char *json);
void log_end(struct log_line *l);

/* One-field convenience: {"event":ev,...,"message":fmt...}. */
void log_msg(enum log_level lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
