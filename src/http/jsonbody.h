/* JSON request bodies per api-core §0.2: accepted content types, a JSON
 * object at the top, no duplicate keys, valid UTF-8 (jansson rejects
 * invalid UTF-8 and \u0000), size already bounded by the caller. Pure
 * functions: thread-safe. */
#ifndef AUTHD_HTTP_JSONBODY_H
#define AUTHD_HTTP_JSONBODY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Absent, application/json, or application/<x>+json (parameters ignored). */
bool jsonbody_content_type_ok(const char *content_type);

/* Parses body into a new object (*out, caller decrefs). On failure returns
 * false and writes a short problem text (for development details) into
 * problem. */
bool jsonbody_parse(const char *content_type, const char *body, size_t len, json_t **out,
                    char *problem, size_t problem_len);

/* Most members of a fast-path object. */
#define JSONBODY_SIMPLE_MAX 4

/* The common shape {"key": "value", ...} (1..JSONBODY_SIMPLE_MAX members,
 * keys and values made only of [A-Za-z0-9_.-], JSON whitespace between
 * tokens, no repeated key), parsed without jansson's per-character scanner:
 * a 770-byte refresh body took ~7 µs through json_loadb. Returns a new
 * object (caller decrefs) equal to what json_loadb(JSON_REJECT_DUPLICATES)
 * returns for the same text, or NULL for any other text, which the caller
 * then parses with jansson (which decides, errors included). */
json_t *jsonbody_parse_simple(const char *body, size_t len);

#endif
