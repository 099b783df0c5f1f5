/* RFC 5322 / MIME message builder for outgoing mail: Date, Message-ID,
 * From, To, Subject (RFC 2047 encoded words when not ASCII), MIME-Version
 * and either one text/plain part or multipart/alternative (text + HTML).
 * Bodies go out as 7bit when they are ASCII with short lines (so links stay
 * verbatim in the raw message, api-flows §7.3), else quoted-printable.
 * Every line ends in CRLF. Dot-stuffing is the SMTP client's job.
 *
 * Header injection is impossible by construction: addresses and the
 * subject are refused (RC_INVALID) when they hold CR, LF or any other
 * control character. Pure functions, thread-safe. */
#ifndef AUTHD_MAIL_MESSAGE_H
#define AUTHD_MAIL_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/rc.h"

#define MAIL_ADDR_MAX 320
#define MAIL_SUBJECT_MAX 255
#define MAIL_MESSAGE_MAX (1024 * 1024)

struct mail_msg {
    const char *id;        /* uuid: Message-ID <id@domain of from> */
    const char *from;      /* bare address */
    const char *from_name; /* display name (UTF-8, no control chars) or NULL */
    const char *to;        /* bare address */
    const char *subject;   /* UTF-8, no control characters */
    const char *text;      /* UTF-8 text part (required) */
    const char *html;      /* UTF-8 HTML part, or NULL */
    int64_t date_us;       /* Date header (Unix µs, rendered in UTC) */
};

/* A bare addr-spec we are willing to put in headers and SMTP commands:
 * 3..MAIL_ADDR_MAX bytes, one '@' with text on both sides, no control
 * character, space, or any of <>()[],;:"\ . Non-ASCII bytes must be valid
 * UTF-8. */
bool mail_addr_valid(const char *addr);
/* A header value: valid UTF-8, no control characters (CR, LF, NUL, ...),
 * at most MAIL_SUBJECT_MAX bytes. */
bool mail_header_text_valid(const char *s);

/* Builds the message into out (a fresh buf is fine; its max should be at
 * least MAIL_MESSAGE_MAX). RC_INVALID when an address or the subject is
 * refused, a body is not UTF-8, or id is not a uuid; RC_LIMIT when the
 * message outgrows out's maximum. */
rc_t mail_message_build(const struct mail_msg *m, struct buf *out) WUR;

/* Encoders, exposed for tests. */
/* RFC 2047 "B" encoded words (UTF-8) when s is not printable ASCII,
 * folded so each line stays under 78 characters; s as it is otherwise. */
void mail_encode_header_word(struct buf *out, const char *s, size_t first_line_used);
/* Quoted-printable (RFC 2045 §6.7) of UTF-8 text with LF or CRLF line
 * ends; hard line breaks become CRLF, lines are soft-broken at 76. */
void mail_encode_qp(struct buf *out, const char *s);
/* RFC 5322 date, e.g. "Thu, 16 Apr 2026 09:00:00 +0000". */
void mail_format_date(int64_t us, char out[40]);

#endif
