/* UUID v4/v7 generation and parsing (api-core §0.2: output lowercase hyphenated
 * 36 chars; input hyphenated or 32 hex, any case). Thread-safe. */
#ifndef AUTHD_UTIL_UUID_H
#define AUTHD_UTIL_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UUID_STR_LEN 36

/* out receives 36 chars + NUL. Uses the kernel CSPRNG. */
void uuid_v4(char out[UUID_STR_LEN + 1]);
/* RFC 9562 version 7: unix_ms in the first 48 bits, 74 random bits. For
 * row ids that are not secrets and are inserted in time order (audit rows):
 * a B-tree keyed by them grows at its right edge instead of dirtying a
 * random page per insert. Never for token ids (jti must be v4). */
void uuid_v7(int64_t unix_ms, char out[UUID_STR_LEN + 1]);
/* Canonicalises s (len bytes) into out; false when s is not a UUID. */
bool uuid_parse(const char *s, size_t len, char out[UUID_STR_LEN + 1]);
/* Fills buf with n random bytes from the kernel CSPRNG (getrandom). */
void rand_bytes(void *buf, size_t n);

#endif
