/* JSON-lines logger (see log.h). Configuration is written once before any
 * thread starts and read-only afterwards.
 *
 * Buffering: with log_start_flusher, each thread appends finished lines to
 * its own buffer (one uncontended mutex) instead of making a write(2) per
 * line — at 100k requests/s the syscall alone cost about a fifth of the
 * server's time. Buffers are written when they pass LOG_BUF_FLUSH bytes, by
 * the flusher thread every LOG_FLUSH_MS, at thread exit, and at
 * log_shutdown. Lines at error and above are written at once. Every
 * write(2) holds write_mu so batches larger than PIPE_BUF never interleave. */
#include "util/log.h"
#include "util/mem.h"
#include "util/timeutil.h"
#include "util/thread.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static struct {
    enum log_level min;
    char service[128];
    char environment[32];
    int fd;
    char fixed[512]; /* pre-rendered ,"environment":…,"service":… */
    size_t fixed_len;
} g_log = {LOG_INFO, "auth-service", "development", 1, "", 0};

static void render_fixed(void)
{
    struct buf b;
    buf_init(&b, sizeof g_log.fixed - 1);
    buf_puts(&b, ",\"environment\":\"");
    buf_json_escape(&b, g_log.environment, sizeof g_log.environment);
    buf_puts(&b, "\",\"service\":\"");
    buf_json_escape(&b, g_log.service, sizeof g_log.service);
    buf_putc(&b, '"');
    g_log.fixed_len = b.err ? 0 : b.len;
    if (!b.err)
        memcpy(g_log.fixed, b.data, b.len);
    buf_free(&b);
}

static const char *const level_names[] = {"debug", "info", "warning", "error", "critical"};

void log_init(enum log_level min, const char *service, const char *environment)
{
    g_log.min = min;
    snprintf(g_log.service, sizeof g_log.service, "%s", service);
    snprintf(g_log.environment, sizeof g_log.environment, "%s", environment);
    render_fixed();
}

void log_set_fd(int fd)
{
    g_log.fd = fd;
}

#define LOG_BUF_CAP (64 * 1024)
#define LOG_BUF_FLUSH (32 * 1024)
#define LOG_FLUSH_MS 50

struct tbuf {
    pthread_mutex_t mu;
    char *data;
    size_t len;
    bool dead; /* owning thread exited; freed at log_shutdown */
    struct tbuf *next;
};

static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tbuf *buffers;
static pthread_key_t tbuf_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool buffering;
static pthread_t flusher;
static pthread_mutex_t flush_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flush_cv;
static bool flusher_stop, flusher_running;

static void write_all(const char *p, size_t n)
{
    pthread_mutex_lock(&write_mu);
    while (n > 0) {
        ssize_t w = write(g_log.fd, p, n);
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&write_mu);
}

/* Caller holds t->mu. */
static void tbuf_flush_locked(struct tbuf *t)
{
    if (t->len) {
        write_all(t->data, t->len);
        t->len = 0;
    }
}

static void tbuf_thread_exit(void *p)
{
    struct tbuf *t = p;
    pthread_mutex_lock(&t->mu);
    tbuf_flush_locked(t);
    t->dead = true;
    pthread_mutex_unlock(&t->mu);
}

static void make_key(void)
{
    pthread_key_create(&tbuf_key, tbuf_thread_exit);
}

static struct tbuf *tbuf_get(void)
{
    struct tbuf *t = pthread_getspecific(tbuf_key);
    if (t)
        return t;
    t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->data = xmalloc(LOG_BUF_CAP);
    pthread_mutex_lock(&list_mu);
    t->next = buffers;
    buffers = t;
    pthread_mutex_unlock(&list_mu);
    pthread_setspecific(tbuf_key, t);
    return t;
}

void log_flush(void)
{
    pthread_mutex_lock(&list_mu);
    for (struct tbuf *t = buffers; t; t = t->next) {
        pthread_mutex_lock(&t->mu);
        tbuf_flush_locked(t);
        pthread_mutex_unlock(&t->mu);
    }
    pthread_mutex_unlock(&list_mu);
}

static void *flusher_main(void *unused)
{
    (void)unused;
    thread_set_name("log-flush");
    pthread_mutex_lock(&flush_mu);
    while (!flusher_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += LOG_FLUSH_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&flush_cv, &flush_mu, &ts);
        pthread_mutex_unlock(&flush_mu);
        log_flush();
        pthread_mutex_lock(&flush_mu);
    }
    pthread_mutex_unlock(&flush_mu);
    return NULL;
}

void log_start_flusher(void)
{
    pthread_once(&key_once, make_key);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&flush_cv, &ca);
    pthread_condattr_destroy(&ca);
    flusher_stop = false;
    if (pthread_create(&flusher, NULL, flusher_main, NULL) == 0) {
        flusher_running = true;
        buffering = true;
    }
}

void log_shutdown(void)
{
    if (flusher_running) {
        pthread_mutex_lock(&flush_mu);
        flusher_stop = true;
        pthread_cond_signal(&flush_cv);
        pthread_mutex_unlock(&flush_mu);
        pthread_join(flusher, NULL);
        flusher_running = false;
    }
    buffering = false;
    log_flush();
    pthread_mutex_lock(&list_mu);
    /* Buffers of live threads stay registered (their thread-exit hook still
     * points at them); dead ones are freed. */
    struct tbuf **pp = &buffers;
    while (*pp) {
        struct tbuf *t = *pp;
        if (t->dead) {
            *pp = t->next;
            pthread_mutex_destroy(&t->mu);
            free(t->data);
            free(t);
        } else {
            pp = &t->next;
        }
    }
    pthread_mutex_unlock(&list_mu);
}

static void emit(const char *line, size_t n, enum log_level lvl)
{
    if (!buffering || lvl >= LOG_ERROR) {
        write_all(line, n);
        return;
    }
    struct tbuf *t = tbuf_get();
    pthread_mutex_lock(&t->mu);
    if (t->len + n > LOG_BUF_CAP)
        tbuf_flush_locked(t);
    if (n > LOG_BUF_CAP) {
        write_all(line, n);
    } else {
        memcpy(t->data + t->len, line, n);
        t->len += n;
        if (t->len >= LOG_BUF_FLUSH)
            tbuf_flush_locked(t);
    }
    pthread_mutex_unlock(&t->mu);
}

bool log_enabled(enum log_level lvl)
{
    return lvl >= g_log.min;
}

bool log_level_parse(const char *s, enum log_level *out)
{
    static const char *const up[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, up[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    return false;
}

/* Keys are literals of ours: no escaping needed. */
static void key(struct log_line *l, const char *k)
{
    /* A skipped line has err set so every later append is dropped. */
    buf_append(&l->b, ",\"", 2);
    buf_puts(&l->b, k);
    buf_append(&l->b, "\":", 2);
}

/* The timestamp's seconds part changes once a second: format it once per
 * thread per second (strftime and gmtime were a visible share of a request). */
static void put_timestamp(struct buf *b)
{
    static _Thread_local int64_t cached_sec = -1;
    static _Thread_local char cached[32];
    int64_t us = time_now_us();
    int64_t sec = us / 1000000;
    if (sec != cached_sec) {
        char full[TIME_STR_MAX];
        time_format(sec * 1000000, TIME_STYLE_LOG, full); /* ...SS.000000+00:00 */
        memcpy(cached, full, 19);                         /* YYYY-MM-DDTHH:MM:SS */
        cached_sec = sec;
    }
    char tail[16];
    int64_t frac = us % 1000000;
    tail[0] = '.';
    for (int i = 6; i >= 1; i--) {
        tail[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    memcpy(tail + 7, "+00:00", 6);
    buf_append(b, cached, 19);
    buf_append(b, tail, 13);
}

static void put_i64(struct buf *b, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[sizeof tmp - 1 - n++] = '-';
    buf_append(b, tmp + sizeof tmp - n, (size_t)n);
}

void log_begin(struct log_line *l, enum log_level lvl, const char *event, const char *corr_id)
{
    buf_init(&l->b, LOG_LINE_MAX);
    l->lvl = lvl;
    l->skip = !log_enabled(lvl);
    if (l->skip) {
        l->b.err = true;
        return;
    }
    buf_reserve(&l->b, 1024);
    buf_append(&l->b, "{\"event\":\"", 10);
    buf_json_escape(&l->b, event, 128);
    buf_append(&l->b, "\",\"level\":\"", 11);
    buf_puts(&l->b, level_names[lvl]);
    buf_append(&l->b, "\",\"timestamp\":\"", 15);
    put_timestamp(&l->b);
    buf_putc(&l->b, '"');
    log_str(l, "correlation_id", corr_id ? corr_id : "unknown");
    buf_append(&l->b, g_log.fixed, g_log.fixed_len);
}

void log_strn(struct log_line *l, const char *k, const char *val, size_t n)
{
    key(l, k);
    if (!val) {
        buf_puts(&l->b, "null");
        return;
    }
    buf_putc(&l->b, '"');
    buf_json_escape(&l->b, val, n < LOG_FIELD_MAX ? n : LOG_FIELD_MAX);
    buf_putc(&l->b, '"');
}

void log_str(struct log_line *l, const char *k, const char *val)
{
    log_strn(l, k, val, val ? strlen(val) : 0);
}

void log_int(struct log_line *l, const char *k, int64_t v)
{
    key(l, k);
    put_i64(&l->b, v);
}

void log_bool(struct log_line *l, const char *k, bool v)
{
    key(l, k);
    buf_puts(&l->b, v ? "true" : "false");
}

void log_double(struct log_line *l, const char *k, double v, int decimals)
{
    key(l, k);
    buf_printf(&l->b, "%.*f", decimals, v);
}

void log_fixed2(struct log_line *l, const char *k, int64_t hundredths)
{
    key(l, k);
    if (hundredths < 0) {
        buf_putc(&l->b, '-');
        hundredths = -hundredths;
    }
    put_i64(&l->b, hundredths / 100);
    char frac[3] = {'.', (char)('0' + hundredths / 10 % 10), (char)('0' + hundredths % 10)};
    buf_append(&l->b, frac, 3);
}

void log_raw(struct log_line *l, const char *k, const char *json)
{
    key(l, k);
    buf_puts(&l->b, json);
}

void log_end(struct log_line *l)
{
    if (l->skip) {
        buf_free(&l->b);
        return;
    }
    if (l->b.err) {
        /* A line over the cap is replaced rather than cut mid-JSON. */
        buf_free(&l->b);
        buf_init(&l->b, LOG_LINE_MAX);
        buf_puts(&l->b, "{\"event\":\"log_line_too_long\",\"level\":\"warning\"");
    }
    buf_puts(&l->b, "}\n");
    emit(l->b.data, l->b.len, l->lvl);
    buf_free(&l->b);
}

void log_msg(enum log_level lvl, const char *event, const char *fmt, ...)
{
    if (!log_enabled(lvl))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct log_line l;
    log_begin(&l, lvl, event, NULL);
    log_str(&l, "message", msg);
    log_end(&l);
}
