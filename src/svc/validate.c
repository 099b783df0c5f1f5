/* Email and password rules (see validate.h). The email grammar is a
 * deliberate subset of RFC 5321/5322: dot-atom local parts only (no quoted
 * strings, no display names), ASCII domain labels (internationalised
 * domains must arrive in their punycode form), special-use names refused. */
#include "svc/validate.h"
#include "util/str.h"
#include "util/unicat.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static bool atext(unsigned char c)
{
    if (c >= 0x80) /* RFC 6531 UTF-8 local parts */
        return true;
    return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool valid_local(const char *p, size_t n)
{
    if (n == 0 || utf8_len(p, n) > 64 || p[0] == '.' || p[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '.') {
            if (p[i + 1] == '.')
                return false;
        } else if (!atext(c)) {
            return false;
        }
    }
    return true;
}

static bool ends_with_label(const char *d, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (n == k)
        return strncasecmp(d, name, k) == 0;
    return n > k && d[n - k - 1] == '.' && strncasecmp(d + n - k, name, k) == 0;
}

static bool valid_domain(const char *d, size_t n)
{
    int labels = 0;
    size_t start = 0;
    bool last_all_digits = false;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && d[i] != '.')
            continue;
        size_t len = i - start;
        if (len < 1 || len > 63 || d[start] == '-' || d[i - 1] == '-')
            return false;
        last_all_digits = true;
        for (size_t k = start; k < i; k++) {
            unsigned char c = (unsigned char)d[k];
            if (!(isalnum(c) || c == '-') || c >= 0x80)
                return false;
            if (!isdigit(c))
                last_all_digits = false;
        }
        labels++;
        start = i + 1;
    }
    if (labels < 2 || last_all_digits)
        return false;
    static const char *const special[] = {"arpa", "invalid", "local", "localhost", "onion", "test"};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++)
        if (ends_with_label(d, n, special[i]))
            return false;
    return true;
}

bool validate_email(const char *in, char out[EMAIL_MAX_BYTES + 1])
{
    struct str s = str_trim(str_of(in));
    if (s.len == 0 || s.len > EMAIL_MAX_BYTES || !utf8_valid(s.p, s.len) ||
        utf8_len(s.p, s.len) > 254)
        return false;
    const char *at = memchr(s.p, '@', s.len);
    if (!at || memchr(at + 1, '@', s.len - (size_t)(at - s.p) - 1))
        return false;
    size_t local_len = (size_t)(at - s.p);
    if (!valid_local(s.p, local_len) || !valid_domain(at + 1, s.len - local_len - 1))
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[s.len] = '\0';
    return true;
}

bool validate_new_password(const char *pw)
{
    size_t n = strlen(pw);
    size_t cps = utf8_len(pw, n);
    if (cps < 8 || cps > 64)
        return false;
    bool upper = false, digit = false, special = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += (size_t)utf8_decode(pw + i, &cp);
        if (cp < 0x80 && ispunct((int)cp))
            special = true;
        else if (unicat_is_lu(cp))
            upper = true;
        else if (unicat_is_nd(cp))
            digit = true;
    }
    return upper && digit && special;
}

bool validate_login_password(const char *pw)
{
    size_t cps = utf8_len(pw, strlen(pw));
    return cps >= 8 && cps <= 256;
}

bool validate_audience(const char *aud)
{
    if (!aud)
        return true;
    size_t cps = utf8_len(aud, strlen(aud));
    return cps >= 1 && cps <= 255;
}
