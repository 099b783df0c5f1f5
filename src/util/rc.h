/* Result codes shared by every module (curl's CURLcode, SQLite's rc).
 * Functions that can fail return rc_t and hand data back through out_*
 * parameters; RC_OK is 0 so `if (rc)` reads as "failed". */
#ifndef AUTHD_UTIL_RC_H
#define AUTHD_UTIL_RC_H

#define WUR __attribute__((warn_unused_result))

typedef enum rc {
    RC_OK = 0,
    RC_NOMEM,       /* allocation failed (normally aborts in xmalloc) */
    RC_INVALID,     /* bad input or argument */
    RC_NOT_FOUND,   /* no such row / key */
    RC_CONFLICT,    /* unique or state conflict */
    RC_CONSTRAINT,  /* database constraint violated (FK, CHECK, NOT NULL) */
    RC_IO,          /* file or socket error */
    RC_DB,          /* database error other than the above */
    RC_UNAVAILABLE, /* backend (database, redis, smtp) unreachable */
    RC_TIMEOUT,     /* deadline passed */
    RC_BUSY,        /* bounded resource saturated (pool, queue) */
    RC_LIMIT,       /* size or count limit exceeded */
    RC_CRYPTO,      /* cryptographic failure */
    RC_INTERNAL,    /* broken invariant that is not the caller's fault */
} rc_t;

/* Static, never NULL. */
const char *rc_str(rc_t rc);

#endif
