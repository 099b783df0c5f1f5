/* Names of result codes, for logs and development error details. */
#include "util/rc.h"

const char *rc_str(rc_t rc)
{
    switch (rc) {
    case RC_OK:
        return "ok";
    case RC_NOMEM:
        return "out of memory";
    case RC_INVALID:
        return "invalid input";
    case RC_NOT_FOUND:
        return "not found";
    case RC_CONFLICT:
        return "conflict";
    case RC_CONSTRAINT:
        return "constraint violated";
    case RC_IO:
        return "i/o error";
    case RC_DB:
        return "database error";
    case RC_UNAVAILABLE:
        return "backend unavailable";
    case RC_TIMEOUT:
        return "timeout";
    case RC_BUSY:
        return "busy";
    case RC_LIMIT:
        return "limit exceeded";
    case RC_CRYPTO:
        return "crypto error";
    case RC_INTERNAL:
        return "internal error";
    }
    return "unknown error";
}
