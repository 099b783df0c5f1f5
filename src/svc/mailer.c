/* Email outbox and delivery (see mailer.h). Skeleton until the email work
 * lands. */
#include "svc/mailer.h"
#include "util/mem.h"

#include <stdlib.h>

struct mailer {
    struct db *db;
};

rc_t mailer_new(struct db *db, const struct config *cfg, const struct secrets *sec,
                const char *data_dir, struct mailer **out)
{
    (void)cfg;
    (void)sec;
    (void)data_dir;
    struct mailer *m = xcalloc(1, sizeof *m);
    m->db = db;
    *out = m;
    return RC_OK;
}

void mailer_free(struct mailer *m)
{
    free(m);
}

void mailer_job(struct mailer *m)
{
    (void)m;
}
