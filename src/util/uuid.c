/* UUID v4/v7 and kernel randomness (see uuid.h). */
#define _GNU_SOURCE
#include "util/uuid.h"
#include "util/str.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void rand_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            abort(); /* no randomness: nothing secure can continue */
        }
        p += r;
        n -= (size_t)r;
    }
}

static const char hexd[] = "0123456789abcdef";

static void format(const unsigned char b[16], char out[UUID_STR_LEN + 1])
{
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hexd[b[i] >> 4];
        out[o++] = hexd[b[i] & 15];
    }
    out[o] = '\0';
}

/* UUIDs are drawn from a per-thread pool refilled from the kernel CSPRNG,
 * one getrandom(2) per 32 ids instead of one per request. */
#define UUID_POOL 512
static _Thread_local unsigned char pool[UUID_POOL];
static _Thread_local size_t pool_left;

static void pool_take(unsigned char b[16])
{
    if (pool_left < 16) {
        rand_bytes(pool, sizeof pool);
        pool_left = sizeof pool;
    }
    memcpy(b, pool + (UUID_POOL - pool_left), 16);
    memset(pool + (UUID_POOL - pool_left), 0, 16);
    pool_left -= 16;
}

void uuid_v4(char out[UUID_STR_LEN + 1])
{
    unsigned char b[16];
    pool_take(b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    format(b, out);
}

void uuid_v7(int64_t unix_ms, char out[UUID_STR_LEN + 1])
{
    unsigned char b[16];
    pool_take(b);
    uint64_t ms = unix_ms > 0 ? (uint64_t)unix_ms : 0;
    for (int i = 5; i >= 0; i--, ms >>= 8)
        b[i] = (unsigned char)(ms & 0xff);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    format(b, out);
}

bool uuid_parse(const char *s, size_t len, char out[UUID_STR_LEN + 1])
{
    unsigned char b[16];
    bool hyph = len == 36;
    if (len != 36 && len != 32)
        return false;
    size_t i = 0;
    for (int k = 0; k < 16; k++) {
        if (hyph && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (s[i] != '-')
                return false;
            i++;
        }
        int hi = str_hex_digit(s[i]), lo = str_hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        b[k] = (unsigned char)(hi << 4 | lo);
        i += 2;
    }
    format(b, out);
    return true;
}
