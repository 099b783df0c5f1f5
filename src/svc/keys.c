/* Signing keys (see keys.h). Skeleton until the signing-keys work lands. */
#include "svc/keys.h"
#include "util/mem.h"

#include <stdlib.h>

struct keys {
    struct db *db;
};

rc_t keys_new(struct db *db, const struct config *cfg, const struct secrets *sec, struct keys **out)
{
    (void)cfg;
    (void)sec;
    struct keys *k = xcalloc(1, sizeof *k);
    k->db = db;
    *out = k;
    return RC_OK;
}

void keys_free(struct keys *k)
{
    free(k);
}

void keys_job(struct keys *k)
{
    (void)k;
}
