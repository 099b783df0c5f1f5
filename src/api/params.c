/* Input helpers shared by the handlers: strict JSON member types (api-core
 * §0.2), query booleans/UUIDs/pages (api-admin §1.1, §4.1), path UUIDs.
 * Every helper sends the 422 itself (the problem names the field; it is
 * shown in development only, decision R11) and returns false. */
#include "api/api.h"
#include "http/jsonbody.h"
#include "util/str.h"
#include "util/timeutil.h"
#include "util/uuid.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool invalid(struct http_req *r, const char *where, const char *name, const char *what)
{
    char problem[160];
    snprintf(problem, sizeof problem, "%s%s: %s", where, name, what);
    http_reply_invalid(r, problem);
    return false;
}

/* Absent, or null where allowed → true with *present false. */
static bool member(struct http_req *r, const char *name, unsigned opts, json_t **out, bool *present)
{
    json_t *v = json_object_get(http_req_json(r), name);
    *out = v;
    *present = v && !json_is_null(v);
    if (*present)
        return true;
    if (opts & API_REQUIRED)
        return invalid(r, "", name, v ? "must not be null" : "field required");
    if (v && !(opts & API_NULLABLE))
        return invalid(r, "", name, "must not be null");
    return true;
}

bool api_json_string(struct http_req *r, const char *name, unsigned opts, size_t min_cp,
                     size_t max_cp, const char **out)
{
    json_t *v;
    bool present;
    *out = NULL;
    if (!member(r, name, opts, &v, &present))
        return false;
    if (!present)
        return true;
    if (!json_is_string(v))
        return invalid(r, "", name, "must be a string");
    size_t cp = utf8_len(json_string_value(v), json_string_length(v));
    if (cp < min_cp || cp > max_cp) {
        char what[64];
        snprintf(what, sizeof what, "length must be %zu..%zu", min_cp, max_cp);
        return invalid(r, "", name, what);
    }
    *out = json_string_value(v);
    return true;
}

bool api_json_int(struct http_req *r, const char *name, unsigned opts, int64_t min, int64_t max,
                  bool *present, int64_t *out)
{
    json_t *v;
    if (!member(r, name, opts, &v, present))
        return false;
    if (!*present)
        return true;
    /* JSON integers only: 1.0, "1" and true are type errors. */
    if (!json_is_integer(v))
        return invalid(r, "", name, "must be an integer");
    json_int_t n = json_integer_value(v);
    if (n < min || n > max)
        return invalid(r, "", name, "out of range");
    *out = n;
    return true;
}

bool api_json_bool(struct http_req *r, const char *name, unsigned opts, bool *present, bool *out)
{
    json_t *v;
    if (!member(r, name, opts, &v, present))
        return false;
    if (!*present)
        return true;
    if (!json_is_boolean(v))
        return invalid(r, "", name, "must be a boolean");
    *out = json_is_true(v);
    return true;
}

/* RFC 3339 date-time with T or space, Z/±hh:mm or no offset (= UTC). */
static bool parse_datetime(const char *s, bool allow_date, int64_t *out_us)
{
    size_t n = strlen(s);
    char tmp[80];
    if (n < 10 || n > 64)
        return false;
    if (n == 10)
        return allow_date && snprintf(tmp, sizeof tmp, "%sT00:00:00Z", s) > 0 &&
               time_parse(tmp, out_us);
    if (n < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
        return false;
    if (time_parse(s, out_us))
        return true;
    /* No offset: the time is UTC (decision). */
    const char *tail = s + 19;
    if (*tail == '.')
        for (tail++; *tail >= '0' && *tail <= '9'; tail++)
            ;
    if (*tail != '\0')
        return false;
    snprintf(tmp, sizeof tmp, "%sZ", s);
    return time_parse(tmp, out_us);
}

bool api_json_datetime(struct http_req *r, const char *name, unsigned opts, bool *present,
                       int64_t *out_us)
{
    json_t *v;
    if (!member(r, name, opts, &v, present))
        return false;
    if (!*present)
        return true;
    if (!json_is_string(v) || !parse_datetime(json_string_value(v), false, out_us))
        return invalid(r, "", name, "must be an RFC 3339 date-time");
    return true;
}

bool api_query_bool(struct http_req *r, const char *name, bool *present, bool *out)
{
    static const char *const yes[] = {"true", "t", "yes", "y", "on", "1"};
    static const char *const no[] = {"false", "f", "no", "n", "off", "0"};
    const char *v = http_req_query(r, name);
    *present = v != NULL;
    if (!v)
        return true;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return invalid(r, "query.", name, "must be a boolean");
}

bool api_query_uuid(struct http_req *r, const char *name, char out[37])
{
    const char *v = http_req_query(r, name);
    out[0] = '\0';
    if (!v)
        return true;
    if (!uuid_parse(v, strlen(v), out))
        return invalid(r, "query.", name, "must be a UUID");
    return true;
}

bool api_query_page(struct http_req *r, int *limit, const char **cursor)
{
    const char *v = http_req_query(r, "limit");
    int64_t n = API_PAGE_DEFAULT;
    if (v && (!str_parse_i64(v, &n) || n < 1 || n > API_PAGE_MAX))
        return invalid(r, "query.", "limit", "integer 1..200 required");
    *limit = (int)n;
    *cursor = http_req_query(r, "cursor");
    return true;
}

bool api_path_uuid(struct http_req *r, const char *name, char out[37])
{
    const char *v = http_req_param(r, name);
    if (!v || !uuid_parse(v, strlen(v), out))
        return invalid(r, "path.", name, "must be a UUID");
    return true;
}

bool api_optional_json_object(struct http_req *r)
{
    size_t len;
    const char *body = http_req_body(r, &len);
    if (len == 0)
        return true;
    json_t *j = NULL;
    char problem[200];
    bool ok =
        jsonbody_parse(http_req_header(r, "Content-Type"), body, len, &j, problem, sizeof problem);
    json_decref(j);
    if (!ok)
        http_reply_invalid(r, problem);
    return ok;
}
