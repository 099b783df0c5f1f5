/* Durable side of the in-process KV store (data-model §10.7): the
 * kv_entries table behind kv_set_persistence, so sessions, access bindings,
 * the logout blocklist and used action tokens survive a restart of the
 * one-box server. Each call takes its own writer connection: never call
 * while holding the database writer. Thread-safe. */
#ifndef AUTHD_STORE_KV_ENTRIES_H
#define AUTHD_STORE_KV_ENTRIES_H

#include "db/db.h"
#include "kv/kv.h"

/* ctx for these ops is the struct db *. */
extern const struct kv_persist_ops kv_entries_ops;

/* The key families that must survive a restart. */
extern const char *const kv_entries_prefixes[];
extern const int kv_entries_nprefixes;

#endif
