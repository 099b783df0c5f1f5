/* Email: outbox rows written inside the caller's transaction, delivered by
 * a worker over SMTP (libcurl) or to files under ./data/mail, with retries
 * (api-flows §7, data-model §14.2). Thread-safe.
 * (Skeleton: filled in by the email work.) */
#ifndef AUTHD_SVC_MAILER_H
#define AUTHD_SVC_MAILER_H

#include "config/config.h"
#include "db/db.h"
#include "svc/secrets.h"
#include "util/rc.h"

struct mailer;

rc_t mailer_new(struct db *db, const struct config *cfg, const struct secrets *sec,
                const char *data_dir, struct mailer **out) WUR;
void mailer_free(struct mailer *m); /* NULL ok */
/* Periodic duty (every second from the job runner): deliver due rows. */
void mailer_job(struct mailer *m);

#endif
