/* Email templates (api-flows §7.2). Subjects are fixed strings; the bodies
 * are a sentence or two around the link or code, which appears verbatim in
 * the text part (integration tests and people copy it from there). The
 * HTML part of a link mail repeats the intro in one paragraph and holds the
 * HTML-escaped link as both href and anchor text in a second one. */
#include "mail/templates.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACTION_MAX 64
#define CODE_MAX 32
#define LINK_MAX 4096

static const char *const kind_names[MAIL_KIND_COUNT] = {
    [MAIL_VERIFY_EMAIL] = "verify_email",
    [MAIL_PASSWORD_RESET] = "password_reset",
    [MAIL_PASSWORD_RESET_CONFIRMATION] = "password_reset_confirmation",
    [MAIL_LOGIN_OTP] = "login_otp",
    [MAIL_ACTION_OTP] = "action_otp",
};

const char *mail_kind_name(enum mail_kind k)
{
    return (unsigned)k < MAIL_KIND_COUNT ? kind_names[k] : NULL;
}

bool mail_kind_parse(const char *s, enum mail_kind *out)
{
    for (int k = 0; s && k < MAIL_KIND_COUNT; k++) {
        if (strcmp(s, kind_names[k]) == 0) {
            *out = (enum mail_kind)k;
            return true;
        }
    }
    return false;
}

bool mail_kind_has_link(enum mail_kind k)
{
    return k == MAIL_VERIFY_EMAIL || k == MAIL_PASSWORD_RESET;
}

void mail_html_escape(struct buf *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            buf_puts(out, "&amp;");
            break;
        case '<':
            buf_puts(out, "&lt;");
            break;
        case '>':
            buf_puts(out, "&gt;");
            break;
        case '"':
            buf_puts(out, "&quot;");
            break;
        case '\'':
            buf_puts(out, "&#x27;");
            break;
        default:
            buf_putc(out, *s);
        }
    }
}

char *mail_link_new(const char *base_url, enum mail_kind kind, const char *token)
{
    const char *path = kind == MAIL_VERIFY_EMAIL     ? "/auth/verify-email?token="
                       : kind == MAIL_PASSWORD_RESET ? "/auth/password/reset?token="
                                                     : NULL;
    if (!path || !base_url || !token)
        return NULL;
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    size_t len = n + strlen(path) + strlen(token) + 1;
    char *s = xmalloc(len);
    snprintf(s, len, "%.*s%s%s", (int)n, base_url, path, token);
    return s;
}

/* A link goes into a body verbatim: printable ASCII only, so it can neither
 * break the text part nor smuggle markup past the escaping. */
static bool link_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > LINK_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

static bool code_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > CODE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool action_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > ACTION_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static void render_link(struct mail_rendered *out, const char *subject, const char *intro,
                        const char *link)
{
    struct buf b;
    out->subject = xstrdup(subject);
    /* Escaping grows a character to at most 6; reserving up front keeps
     * realloc from leaving copies of the link in freed memory. */
    buf_init(&b, 16 * LINK_MAX + 1024);
    buf_reserve(&b, 13 * strlen(link) + 256);
    buf_printf(&b, "%s: %s\n", intro, link);
    out->text = buf_take(&b);
    buf_reserve(&b, 13 * strlen(link) + 256);
    buf_printf(&b, "<p>%s:</p>\n<p><a href=\"", intro);
    mail_html_escape(&b, link);
    buf_puts(&b, "\">");
    mail_html_escape(&b, link);
    buf_puts(&b, "</a></p>\n");
    out->html = buf_take(&b);
    buf_free(&b);
}

static void render_code(struct mail_rendered *out, const char *subject, const char *lead,
                        const char *code, int ttl_seconds)
{
    struct buf b;
    out->subject = xstrdup(subject);
    buf_init(&b, 1024);
    int minutes = ttl_seconds / 60;
    buf_printf(&b, "%s: %s\nThis code expires in %d minute%s.\n", lead, code, minutes,
               minutes == 1 ? "" : "s");
    out->text = buf_take(&b);
    buf_free(&b);
}

rc_t mail_render(enum mail_kind kind, const struct mail_vars *v, struct mail_rendered *out)
{
    static const struct mail_vars none = {0};
    memset(out, 0, sizeof *out);
    if (!v)
        v = &none;
    switch (kind) {
    case MAIL_VERIFY_EMAIL:
        if (!link_ok(v->link))
            return RC_INVALID;
        render_link(out, "Verify your email", "Please open this link to verify your email",
                    v->link);
        return RC_OK;
    case MAIL_PASSWORD_RESET:
        if (!link_ok(v->link))
            return RC_INVALID;
        render_link(out, "Reset your password", "Please open this link to reset your password",
                    v->link);
        return RC_OK;
    case MAIL_PASSWORD_RESET_CONFIRMATION:
        out->subject = xstrdup("Your password has been reset");
        out->text = xstrdup("Your password has been reset. If you did not do this, please "
                            "contact support immediately.\n");
        return RC_OK;
    case MAIL_LOGIN_OTP:
        if (!code_ok(v->code) || v->ttl_seconds < 0)
            return RC_INVALID;
        render_code(out, "Your login verification code", "Your login verification code is", v->code,
                    v->ttl_seconds);
        return RC_OK;
    case MAIL_ACTION_OTP: {
        if (!code_ok(v->code) || v->ttl_seconds < 0 || !action_ok(v->action))
            return RC_INVALID;
        char subject[sizeof "Verification code for " + ACTION_MAX];
        snprintf(subject, sizeof subject, "Verification code for %s", v->action);
        render_code(out, subject, "Your verification code is", v->code, v->ttl_seconds);
        return RC_OK;
    }
    case MAIL_KIND_COUNT:
        break;
    }
    return RC_INVALID;
}

void mail_rendered_free(struct mail_rendered *r)
{
    if (!r)
        return;
    free(r->subject);
    xfree_secret_str(r->text);
    xfree_secret_str(r->html);
    memset(r, 0, sizeof *r);
}
