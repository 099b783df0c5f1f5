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

static bool json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool plain_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

struct span {
    size_t at, len;
};

static size_t skip_ws(const char *p, size_t i, size_t n)
{
    while (i < n && json_ws(p[i]))
        i++;
    return i;
}

/* A string of plain characters at p[*i] (no escapes possible), *i moved past
 * its closing quote. */
static bool plain_string(const char *p, size_t n, size_t *i, struct span *out)
{
    if (*i >= n || p[*i] != '"')
        return false;
    size_t j = *i + 1;
    while (j < n && plain_char(p[j]))
        j++;
    if (j >= n || p[j] != '"')
        return false;
    *out = (struct span){*i + 1, j - *i - 1};
    *i = j + 1;
    return true;
}

json_t *jsonbody_parse_simple(const char *p, size_t n)
{
    struct span keys[JSONBODY_SIMPLE_MAX], vals[JSONBODY_SIMPLE_MAX];
    size_t i = skip_ws(p, 0, n), count = 0;
    if (i >= n || p[i] != '{')
        return NULL;
    i = skip_ws(p, i + 1, n);
    for (;;) {
        if (count == JSONBODY_SIMPLE_MAX || !plain_string(p, n, &i, &keys[count]))
            return NULL;
        i = skip_ws(p, i, n);
        if (i >= n || p[i] != ':')
            return NULL;
        i = skip_ws(p, i + 1, n);
        if (!plain_string(p, n, &i, &vals[count]))
            return NULL;
        count++;
        i = skip_ws(p, i, n);
        if (i < n && p[i] == ',') {
            i = skip_ws(p, i + 1, n);
            continue;
        }
        if (i < n && p[i] == '}')
            break;
        return NULL;
    }
    if (skip_ws(p, i + 1, n) != n)
        return NULL;
    for (size_t a = 0; a < count; a++)
        for (size_t b = a + 1; b < count; b++)
            if (keys[a].len == keys[b].len &&
                memcmp(p + keys[a].at, p + keys[b].at, keys[a].len) == 0)
                return NULL; /* jansson refuses it, with its own message */
    json_t *o = json_object();
    for (size_t k = 0; o && k < count; k++)
        if (json_object_setn_new_nocheck(o, p + keys[k].at, keys[k].len,
                                         json_stringn_nocheck(p + vals[k].at, vals[k].len)) != 0) {
            json_decref(o);
            o = NULL;
        }
    return o;
}
