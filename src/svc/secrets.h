/* Secret chains of data-model §11 and config-ops §1.1, resolved once at
 * start-up: the refresh-token/OTP hash secret S, the signing-key passphrase
 * and the webhook-secret passphrase, each the first non-empty link of its
 * chain, ending in the instance key (`<data dir>/instance.key`, 32 random
 * bytes base64url, mode 0600, created on first start) outside production.
 * Immutable after secrets_load; the strings are wiped by secrets_free. */
#ifndef AUTHD_SVC_SECRETS_H
#define AUTHD_SVC_SECRETS_H

#include "config/config.h"
#include "util/rc.h"

struct secrets {
    char *refresh_hash_secret; /* S: REFRESH_TOKEN_HASH_KEY → JWT PEM → instance key */
    char *signing_passphrase;  /* SIGNING_KEYS__ENCRYPTION_KEY → JWT PEM → instance key */
    char *webhook_passphrase;  /* WEBHOOK__SECRET_ENCRYPTION_KEY → signing chain */
};

/* data_dir: where instance.key lives (the SQLite file's directory, or
 * "./data" on PostgreSQL). In production every chain must end before the
 * instance key (config guardrails make sure it does); RC_INVALID otherwise.
 * RC_IO when the instance key cannot be created or read. */
rc_t secrets_load(const struct config *cfg, const char *data_dir, struct secrets **out) WUR;
void secrets_free(struct secrets *s); /* NULL ok */

#endif
