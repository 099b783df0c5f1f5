/* Request rate limiting (api-core §11) on the KV store, so limits hold
 * across instances with Redis. Thread-safe.
 * (Skeleton: filled in by the abuse-controls work.) */
#ifndef AUTHD_SVC_RATELIMIT_H
#define AUTHD_SVC_RATELIMIT_H

#include "config/config.h"
#include "kv/kv.h"
#include "util/rc.h"

struct ratelimit;

rc_t ratelimit_new(struct kv *kv, const struct config *cfg, struct ratelimit **out) WUR;
void ratelimit_free(struct ratelimit *rl); /* NULL ok */

#endif
