/* Client IP per api-core §3.4: the peer unless it is a trusted proxy, then
 * X-Forwarded-For walked right to left to the first untrusted entry. No
 * address is trusted implicitly, and no other header is consulted. */
#include "http/clientip.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix;
};

struct cidrset {
    int n;
    struct cidr *v;
};

static bool parse_addr(const char *s, int *family, unsigned char out[16])
{
    if (inet_pton(AF_INET, s, out) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        *family = AF_INET6;
        return true;
    }
    return false;
}

static bool parse_cidr(const char *in, struct cidr *out)
{
    char tmp[80];
    size_t len = strlen(in);
    while (len && isspace((unsigned char)in[len - 1]))
        len--;
    while (len && isspace((unsigned char)*in)) {
        in++;
        len--;
    }
    if (len == 0 || len >= sizeof tmp)
        return false;
    memcpy(tmp, in, len);
    tmp[len] = '\0';
    char *slash = strchr(tmp, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        if (!isdigit((unsigned char)slash[1]))
            return false;
        prefix = strtol(slash + 1, &end, 10);
        if (*end)
            return false;
    }
    if (!parse_addr(tmp, &out->family, out->addr))
        return false;
    int max = out->family == AF_INET ? 32 : 128;
    if (prefix < 0)
        prefix = max;
    if (prefix > max)
        return false;
    out->prefix = (int)prefix;
    return true;
}

struct cidrset *cidrset_new(const char *const *cidrs, int n)
{
    struct cidrset *s = xcalloc(1, sizeof *s);
    s->v = xcalloc(n > 0 ? (size_t)n : 1, sizeof *s->v);
    for (int i = 0; i < n; i++)
        if (parse_cidr(cidrs[i], &s->v[s->n]))
            s->n++;
    return s;
}

void cidrset_free(struct cidrset *s)
{
    if (!s)
        return;
    free(s->v);
    free(s);
}

int cidrset_count(const struct cidrset *s)
{
    return s->n;
}

static bool in_cidr(const struct cidr *c, int family, const unsigned char *a)
{
    if (c->family != family)
        return false;
    int full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, a, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (a[full] & mask);
}

static bool trusted(const struct cidrset *s, const char *ip)
{
    int family;
    unsigned char a[16];
    if (!parse_addr(ip, &family, a))
        return false;
    for (int i = 0; i < s->n; i++)
        if (in_cidr(&s->v[i], family, a))
            return true;
    return false;
}

bool ip_canonical(const char *s, size_t len, char out[IP_STR_MAX])
{
    char tmp[IP_STR_MAX + 8];
    if (len == 0 || len >= sizeof tmp)
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    int family;
    unsigned char a[16];
    if (!parse_addr(tmp, &family, a))
        return false;
    return inet_ntop(family, a, out, IP_STR_MAX) != NULL;
}

bool ip_from_sockaddr(const struct sockaddr *sa, char out[IP_STR_MAX])
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return inet_ntop(AF_INET, &in->sin_addr, out, IP_STR_MAX) != NULL;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return inet_ntop(AF_INET6, &in6->sin6_addr, out, IP_STR_MAX) != NULL;
    }
    return false;
}

#define XFF_MAX_ENTRIES 32

void clientip_resolve(const struct cidrset *ts, const char *peer, const char *xff,
                      char out[IP_STR_MAX])
{
    if (!peer) {
        snprintf(out, IP_STR_MAX, "%s", "unknown");
        return;
    }
    snprintf(out, IP_STR_MAX, "%s", peer);
    if (!xff || ts->n == 0 || !trusted(ts, peer))
        return;
    char list[XFF_MAX_ENTRIES][IP_STR_MAX];
    int n = 0;
    const char *p = xff;
    /* Only the rightmost XFF_MAX_ENTRIES entries can matter for a walk that
     * stops at the first untrusted one; keep a ring of the last ones. */
    int total = 0;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *b = p, *e = p + len;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        char canon[IP_STR_MAX];
        if (ip_canonical(b, (size_t)(e - b), canon)) {
            memcpy(list[total % XFF_MAX_ENTRIES], canon, IP_STR_MAX);
            total++;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    n = total < XFF_MAX_ENTRIES ? total : XFF_MAX_ENTRIES;
    if (n == 0)
        return;
    int first = total - n; /* logical index of the oldest kept entry */
    for (int i = total - 1; i >= first; i--) {
        const char *ip = list[i % XFF_MAX_ENTRIES];
        if (!trusted(ts, ip)) {
            snprintf(out, IP_STR_MAX, "%s", ip);
            return;
        }
    }
    /* Every kept entry is trusted: the leftmost one. When entries were
     * dropped from the left the true leftmost is unknown to us; the oldest
     * kept entry is the closest safe answer. */
    snprintf(out, IP_STR_MAX, "%s", list[first % XFF_MAX_ENTRIES]);
}
