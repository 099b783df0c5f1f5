/* Mail transports behind one const ops table (conventions: backends sit
 * behind ops tables): SMTP through libcurl (smtp.c) and the one-box file
 * transport (file.c). Tests plug in their own ops.
 *
 * A transport takes a complete RFC 5322 message (CRLF line ends, built by
 * mail_message_build) and its envelope, and either delivers it or says why
 * not in a short text that may be logged and stored (it never contains the
 * message or the recipient).
 *
 * Thread-safety: one transport object is used by one thread at a time (the
 * mailer's delivery thread); creating and freeing happen before that thread
 * starts and after it stops. */
#ifndef AUTHD_MAIL_TRANSPORT_H
#define AUTHD_MAIL_TRANSPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/rc.h"

#define MAIL_INFO_MAX 512

struct mail_envelope {
    const char *id;   /* email_outbox row id (a canonical uuid) */
    const char *from; /* envelope sender, a bare address */
    const char *to;   /* the one recipient, a bare address */
};

/* Filled by send: on failure a short reason; on success something worth
 * logging (the file transport: the path written), else empty. */
struct mail_send_result {
    char info[MAIL_INFO_MAX];
    bool cancelled; /* the cancel flag stopped the exchange */
};

struct mail_transport;

struct mail_transport_ops {
    const char *name; /* "smtp", "file", ... */
    /* RC_OK: delivered (accepted by the server / written). RC_UNAVAILABLE
     * (cannot connect), RC_TIMEOUT, RC_IO, RC_INVALID (refused by the
     * server or unusable), RC_INTERNAL otherwise. `cancel`, when not NULL,
     * is polled during the exchange; once true the exchange is abandoned
     * (result.cancelled). */
    rc_t (*send)(struct mail_transport *t, const struct mail_envelope *env, const char *msg,
                 size_t len, const atomic_bool *cancel, struct mail_send_result *res);
    void (*free)(struct mail_transport *t);
};

/* Every transport starts with this header; implementations extend it. */
struct mail_transport {
    const struct mail_transport_ops *ops;
};

struct mail_smtp_opts {
    const char *host; /* name, IPv4 or IPv6 literal (no brackets) */
    int port;
    const char *username; /* NULL = no AUTH */
    const char *password;
    bool starttls;  /* CURLUSESSL_ALL: refuse to send without TLS */
    int timeout_ms; /* whole exchange; 0 = 10000 */
};

/* SMTP transport. Copies the options. RC_INVALID for a host that cannot go
 * into an smtp:// URL (empty, '/', '@', whitespace, ...). */
rc_t mail_smtp_new(const struct mail_smtp_opts *o, struct mail_transport **out) WUR;
/* File transport: each message becomes <dir>/<id>.eml (mode 0600; the
 * directory is created 0700 on first use), written to a temporary name and
 * renamed, so a reader never sees half a message. */
rc_t mail_file_new(const char *dir, struct mail_transport **out) WUR;
/* NULL ok. */
void mail_transport_free(struct mail_transport *t);
static inline const char *mail_transport_name(const struct mail_transport *t)
{
    return t->ops->name;
}

#endif
