/* Email templates of api-flows §7.2: the five kinds of mail authd sends,
 * their exact subjects and their text (and, for link mails, HTML) bodies.
 * Pure functions: no I/O, no global state, thread-safe.
 *
 * Rendered bodies hold single-use links and OTP codes: free them with
 * mail_rendered_free, which wipes them. */
#ifndef AUTHD_MAIL_TEMPLATES_H
#define AUTHD_MAIL_TEMPLATES_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/rc.h"

/* The `kind` column of email_outbox (data-model §14.2). */
enum mail_kind {
    MAIL_VERIFY_EMAIL = 0,            /* "verify_email": link */
    MAIL_PASSWORD_RESET,              /* "password_reset": link */
    MAIL_PASSWORD_RESET_CONFIRMATION, /* "password_reset_confirmation": no vars */
    MAIL_LOGIN_OTP,                   /* "login_otp": code, ttl_seconds */
    MAIL_ACTION_OTP,                  /* "action_otp": code, ttl_seconds, action */
    MAIL_KIND_COUNT
};

/* What a template needs; unused members are ignored. Strings borrowed. */
struct mail_vars {
    /* Link kinds: the full link (api-flows §1.2 / §1.5). mailer_enqueue
     * also accepts `token` instead and builds the link itself. */
    const char *link;
    const char *token;
    /* OTP kinds: the code (digits) and its lifetime; the mail states
     * ttl_seconds / 60 whole minutes (rounded down). mailer_enqueue
     * replaces 0 with EMAIL__OTP_TTL_SECONDS. */
    const char *code;
    int ttl_seconds;
    /* MAIL_ACTION_OTP: the raw action name ([a-z0-9_], 1..64 chars), shown
     * in the subject "Verification code for <action>". */
    const char *action;
};

struct mail_rendered {
    char *subject; /* owned; ASCII for every template, no CR/LF */
    char *text;    /* owned; UTF-8, LF line ends */
    char *html;    /* owned, or NULL for text-only kinds */
};

/* "verify_email", ...; NULL for an out-of-range value. */
const char *mail_kind_name(enum mail_kind k);
/* Inverse of mail_kind_name; false when s names no kind. */
bool mail_kind_parse(const char *s, enum mail_kind *out);
/* True for the kinds whose body carries a link (MAIL_VERIFY_EMAIL,
 * MAIL_PASSWORD_RESET). */
bool mail_kind_has_link(enum mail_kind k);

/* Renders kind with v. RC_INVALID when a variable the kind needs is
 * missing or malformed (link with a control character, empty code, code
 * not all digits, bad action name, negative ttl); out is then zeroed. */
rc_t mail_render(enum mail_kind kind, const struct mail_vars *v, struct mail_rendered *out) WUR;
/* Wipes and frees the three strings; the struct is zeroed. NULL ok. */
void mail_rendered_free(struct mail_rendered *r);

/* The link of a link kind: base_url without trailing '/' characters, then
 * "/auth/verify-email?token=" or "/auth/password/reset?token=", then the
 * token unencoded (api-flows §1.2, §1.5). Owned (free; holds a secret:
 * xfree_secret_str). NULL for a kind without a link. */
char *mail_link_new(const char *base_url, enum mail_kind kind, const char *token);

/* Appends s to out HTML-escaped (& < > " '). Exposed for tests. */
void mail_html_escape(struct buf *out, const char *s);

#endif
