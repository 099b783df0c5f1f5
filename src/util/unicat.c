/* Category lookups by binary search over generated ranges (see unicat.h). */
#include "util/unicat.h"

static bool in(const struct unicat_range *r, unsigned n, uint32_t cp)
{
    unsigned lo = 0, hi = n;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

bool unicat_is_lu(uint32_t cp)
{
    return in(unicat_lu, unicat_lu_n, cp);
}

bool unicat_is_nd(uint32_t cp)
{
    return in(unicat_nd, unicat_nd_n, cp);
}

int utf8_decode(const char *s, uint32_t *out_cp)
{
    const unsigned char *p = (const unsigned char *)s;
    if (p[0] < 0x80) {
        *out_cp = p[0];
        return 1;
    }
    if ((p[0] & 0xe0) == 0xc0) {
        *out_cp = (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
        return 2;
    }
    if ((p[0] & 0xf0) == 0xe0) {
        *out_cp = (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
        return 3;
    }
    *out_cp = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
              (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
    return 4;
}
