/* Time sources and timestamp formatting/parsing (see timeutil.h). */
#define _GNU_SOURCE
#include "util/timeutil.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t time_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Writes v as exactly n digits (v < 10^n). */
static char *put_digits(char *p, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

/* Inverse of days_from_civil (H. Hinnant's algorithm): proleptic Gregorian
 * date of a day count since 1970-01-01. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Digits written by hand: gmtime_r takes glibc's time-zone lock even for
 * UTC, and snprintf is most of the rest; a refresh formats about eight
 * timestamps. */
void time_format(int64_t us, enum time_style style, char out[TIME_STR_MAX])
{
    int64_t sec = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        sec -= 1;
    }
    int64_t days = sec / 86400, rem = sec % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    char *p = out;
    if (y >= 0 && y <= 9999) {
        p = put_digits(p, y, 4);
    } else {
        /* Outside ISO 8601's four digits: what "%04d" printed before. */
        int n = snprintf(p, TIME_STR_MAX - 24, "%04lld", (long long)y);
        p += n > 0 && n < TIME_STR_MAX - 24 ? n : 0;
    }
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, rem / 3600, 2);
    *p++ = ':';
    p = put_digits(p, rem / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, rem % 60, 2);
    if (style == TIME_STYLE_DB || style == TIME_STYLE_LOG || frac) {
        *p++ = '.';
        p = put_digits(p, frac, 6);
    }
    const char *zone = (style == TIME_STYLE_Z || style == TIME_STYLE_DB) ? "Z" : "+00:00";
    memcpy(p, zone, strlen(zone) + 1);
}

static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool time_parse(const char *s, int64_t *out_us)
{
    const char *p = s;
    int Y, M, D, h, m, sec, off = 0;
    if (!digits(&p, 4, &Y) || *p++ != '-' || !digits(&p, 2, &M) || *p++ != '-' ||
        !digits(&p, 2, &D))
        return false;
    if (*p != 'T' && *p != ' ')
        return false;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &m) || *p++ != ':' ||
        !digits(&p, 2, &sec))
        return false;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n < 6) {
                frac = frac * 10 + (*p - '0');
                n++;
            }
            p++;
        }
        if (n == 0)
            return false;
        while (n++ < 6)
            frac *= 10;
    }
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (!digits(&p, 2, &oh))
            return false;
        if (*p == ':')
            p++;
        if (isdigit((unsigned char)*p) && !digits(&p, 2, &om))
            return false;
        off = sign * (oh * 3600 + om * 60);
    } else {
        return false;
    }
    if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return false;
    int64_t days = days_from_civil(Y, M, D);
    int64_t t = days * 86400 + h * 3600 + m * 60 + sec - off;
    *out_us = t * 1000000 + frac;
    return true;
}
