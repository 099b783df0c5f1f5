/* JSON body rules (see jsonbody.h). */
#include "http/jsonbody.h"
#include "util/str.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

bool jsonbody_content_type_ok(const char *ct)
{
    if (!ct)
        return true;
    struct str v = str_trim(str_of(ct));
    const char *semi = memchr(v.p, ';', v.len);
    if (semi)
        v.len = (size_t)(semi - v.p);
    v = str_trim(v);
    if (str_ieq(v, "application/json"))
        return true;
    /* application/<anything>+json: a non-empty subtype without '/' */
    if (v.len > 17 && strncasecmp(v.p, "application/", 12) == 0 &&
        strncasecmp(v.p + v.len - 5, "+json", 5) == 0)
        return memchr(v.p + 12, '/', v.len - 12) == NULL;
    return false;
}

bool jsonbody_parse(const char *ct, const char *body, size_t len, json_t **out, char *problem,
                    size_t problem_len)
{
    *out = NULL;
    if (!jsonbody_content_type_ok(ct)) {
        snprintf(problem, problem_len, "body: unsupported content type");
        return false;
    }
    if (len == 0) {
        snprintf(problem, problem_len, "body: field required");
        return false;
    }
    json_error_t err;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!j) {
        if (json_error_code(&err) == json_error_duplicate_key)
            snprintf(problem, problem_len, "body: duplicate key");
        else if (json_error_code(&err) == json_error_invalid_utf8)
            snprintf(problem, problem_len, "body: invalid UTF-8");
        else
            snprintf(problem, problem_len, "body: malformed JSON at position %d", err.position);
        return false;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(problem, problem_len, "body: expected a JSON object");
        return false;
    }
    *out = j;
    return true;
}
