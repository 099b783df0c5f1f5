/* Signing keys (api-core §4, config-ops §5): bootstrap, the active signer,
 * the verification key set (cached ≤ 30 s, reloaded once on an unknown
 * kid), JWKS, rotation and retirement. Thread-safe.
 * (Skeleton: filled in by the signing-keys work.) */
#ifndef AUTHD_SVC_KEYS_H
#define AUTHD_SVC_KEYS_H

#include "config/config.h"
#include "db/db.h"
#include "svc/secrets.h"
#include "util/rc.h"

struct keys;

rc_t keys_new(struct db *db, const struct config *cfg, const struct secrets *sec,
              struct keys **out) WUR;
void keys_free(struct keys *k); /* NULL ok */
/* Periodic duty (every 60 s from the job runner): retirement. */
void keys_job(struct keys *k);

#endif
