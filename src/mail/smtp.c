/* SMTP transport through libcurl (api-flows §7.1): one connection per
 * message, smtp://host:port, MAIL FROM / RCPT TO from the envelope, the
 * message uploaded as it is (libcurl dot-stuffs it), optional AUTH and
 * STARTTLS (CURLUSESSL_ALL: never fall back to plain text), a 10 s limit
 * for the whole exchange. The error text handed back comes from libcurl's
 * error buffer (connect failures, "RCPT failed: 550", ...), which never
 * quotes the message or the recipient. */
#include "mail/transport.h"
#include "util/mem.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMTP_TIMEOUT_MS_DEFAULT 10000

struct smtp {
    struct mail_transport base;
    char *url;
    char *username;
    char *password;
    bool starttls;
    long timeout_ms;
};

struct upload {
    const char *p;
    size_t left;
};

static size_t read_cb(char *dst, size_t size, size_t nmemb, void *arg)
{
    struct upload *u = arg;
    size_t n = size * nmemb;
    if (n > u->left)
        n = u->left;
    memcpy(dst, u->p, n);
    u->p += n;
    u->left -= n;
    return n;
}

static int progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const atomic_bool *cancel = arg;
    return cancel && atomic_load(cancel) ? 1 : 0;
}

static rc_t map_code(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_WEIRD_SERVER_REPLY:
        return RC_UNAVAILABLE;
    case CURLE_OPERATION_TIMEDOUT:
        return RC_TIMEOUT;
    case CURLE_LOGIN_DENIED:
    case CURLE_SEND_FAIL_REWIND:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return RC_UNAVAILABLE;
    default:
        return RC_INVALID;
    }
}

static void set_options(CURL *h, struct smtp *s, const struct mail_envelope *env,
                        struct curl_slist *rcpt, struct upload *up, const atomic_bool *cancel,
                        char *errbuf)
{
    char from[512];
    snprintf(from, sizeof from, "<%s>", env->from);
    curl_easy_setopt(h, CURLOPT_URL, s->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp");
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, up);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up->left);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)cancel);
    if (s->username) {
        curl_easy_setopt(h, CURLOPT_USERNAME, s->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->password ? s->password : "");
    }
    if (s->starttls)
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
}

static rc_t smtp_send(struct mail_transport *t, const struct mail_envelope *env, const char *msg,
                      size_t len, const atomic_bool *cancel, struct mail_send_result *res)
{
    struct smtp *s = (struct smtp *)t;
    char errbuf[CURL_ERROR_SIZE] = "";
    char to[512];
    res->info[0] = '\0';
    res->cancelled = false;
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(res->info, sizeof res->info, "cannot create a libcurl handle");
        return RC_INTERNAL;
    }
    snprintf(to, sizeof to, "<%s>", env->to);
    struct curl_slist *rcpt = curl_slist_append(NULL, to);
    struct upload up = {msg, len};
    set_options(h, s, env, rcpt, &up, cancel, errbuf);
    CURLcode cc = curl_easy_perform(h);
    rc_t rc = RC_OK;
    if (cc != CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        res->cancelled = cc == CURLE_ABORTED_BY_CALLBACK;
        const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cc);
        if (code > 0)
            snprintf(res->info, sizeof res->info, "%s (smtp %ld)", why, code);
        else
            snprintf(res->info, sizeof res->info, "%s", why);
        rc = map_code(cc);
    }
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(h);
    return rc;
}

static void smtp_free(struct mail_transport *t)
{
    struct smtp *s = (struct smtp *)t;
    free(s->url);
    free(s->username);
    xfree_secret_str(s->password);
    free(s);
    curl_global_cleanup();
}

static const struct mail_transport_ops smtp_ops = {"smtp", smtp_send, smtp_free};

static bool host_ok(const char *h)
{
    if (!h || !*h || strlen(h) > 253)
        return false;
    for (const char *p = h; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || strchr("/@?#[]\\%", c))
            return false;
    }
    return true;
}

rc_t mail_smtp_new(const struct mail_smtp_opts *o, struct mail_transport **out)
{
    *out = NULL;
    if (!host_ok(o->host) || o->port < 1 || o->port > 65535)
        return RC_INVALID;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return RC_INTERNAL;
    struct smtp *s = xcalloc(1, sizeof *s);
    s->base.ops = &smtp_ops;
    size_t n = strlen(o->host) + 32;
    s->url = xmalloc(n);
    /* An IPv6 literal goes in brackets. */
    bool v6 = strchr(o->host, ':') != NULL;
    snprintf(s->url, n, "smtp://%s%s%s:%d", v6 ? "[" : "", o->host, v6 ? "]" : "", o->port);
    s->username = o->username ? xstrdup(o->username) : NULL;
    s->password = o->password ? xstrdup(o->password) : NULL;
    s->starttls = o->starttls;
    s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : SMTP_TIMEOUT_MS_DEFAULT;
    *out = &s->base;
    return RC_OK;
}
