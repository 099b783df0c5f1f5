/* Wall and monotonic time, and the timestamp text formats of the contract:
 * style Z (`...Z`, fraction only when non-zero), style O (`+00:00`), the
 * fixed-width database form (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, always 6
 * digits) and the log form (6 digits, `+00:00`). All UTC, microseconds. */
#ifndef AUTHD_UTIL_TIMEUTIL_H
#define AUTHD_UTIL_TIMEUTIL_H

#include <stdbool.h>
#include <stdint.h>

#define TIME_STR_MAX 40

int64_t time_now_us(void);  /* wall clock, Unix microseconds */
int64_t time_mono_us(void); /* monotonic, for durations and deadlines */

enum time_style {
    TIME_STYLE_Z,  /* 2026-04-16T09:00:00Z / ...00.123456Z */
    TIME_STYLE_O,  /* 2026-04-16T09:00:00+00:00 / ...00.123456+00:00 */
    TIME_STYLE_DB, /* 2026-04-16T09:00:00.000000Z (fixed width) */
    TIME_STYLE_LOG /* 2026-04-16T09:00:00.000000+00:00 (fixed width) */
};

/* Writes a NUL-terminated string into out (TIME_STR_MAX bytes). */
void time_format(int64_t us, enum time_style style, char out[TIME_STR_MAX]);
/* Parses RFC 3339 / ISO 8601 as written by SQLite rows (our DB style) and by
 * PostgreSQL text output (`2026-04-16 09:00:00.123+00`). Returns false on
 * anything else. */
bool time_parse(const char *s, int64_t *out_us);

#endif
