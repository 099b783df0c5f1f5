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

#endif
