/* Durable side of the in-process KV store (data-model §10.7): the
 * kv_entries table behind kv_set_persistence, so sessions, access bindings,
 * the logout blocklist and used action tokens survive a restart of the
 * one-box server. Each call but kv_entries_put_many_on takes its own writer
 * connection: never call those while holding the database writer.
 * Thread-safe. */
#ifndef AUTHD_STORE_KV_ENTRIES_H
#define AUTHD_STORE_KV_ENTRIES_H

#include <stdint.h>

#include "db/db.h"
#include "util/rc.h"

/* expires_at_us: wall clock, 0 = none. */
rc_t kv_entries_put(struct db *db, const char *key, const char *val, int64_t expires_at_us) WUR;
rc_t kv_entries_del(struct db *db, const char *key) WUR;
/* Several upserts in one transaction. */
rc_t kv_entries_put_many(struct db *db, const char *const *keys, const char *const *vals,
                         const int64_t *expires_at_us, int n) WUR;
/* The same upserts on c, inside the caller's open write transaction. */
rc_t kv_entries_put_many_on(struct db_conn *c, const char *const *keys, const char *const *vals,
                            const int64_t *expires_at_us, int n) WUR;
/* Calls cb for every live row. */
rc_t kv_entries_load(struct db *db,
                     void (*cb)(void *cb_ctx, const char *key, const char *val,
                                int64_t expires_at_us),
                     void *cb_ctx) WUR;
/* Deletes expired rows; returns how many. */
int kv_entries_sweep(struct db *db);

#endif
