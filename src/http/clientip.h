/* Client IP resolution (api-core §3.4) and trusted-proxy CIDR sets.
 * Immutable after cidrset_new: thread-safe. */
#ifndef AUTHD_HTTP_CLIENTIP_H
#define AUTHD_HTTP_CLIENTIP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define IP_STR_MAX 46

struct cidrset;

/* Unparsable entries are ignored (config-ops §2.1); host bits allowed. */
struct cidrset *cidrset_new(const char *const *cidrs, int n);
void cidrset_free(struct cidrset *s);
int cidrset_count(const struct cidrset *s);

/* Canonical text of a bare IP (IPv4 dotted quad, IPv6 compressed lowercase,
 * IPv4-mapped IPv6 kept as IPv6). False when s (len bytes) is not one. */
bool ip_canonical(const char *s, size_t len, char out[IP_STR_MAX]);
bool ip_from_sockaddr(const struct sockaddr *sa, char out[IP_STR_MAX]);

/* peer: canonical peer text or NULL (unknown). xff: header value or NULL.
 * Writes the client ip or "unknown" into out. */
void clientip_resolve(const struct cidrset *trusted, const char *peer, const char *xff,
                      char out[IP_STR_MAX]);

#endif
