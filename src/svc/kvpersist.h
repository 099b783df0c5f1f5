/* Adapter from the in-process KV store's persistence hook (kv.h) to the
 * kv_entries table (store/kv_entries.h): which key families survive a
 * restart (data-model §10.7), and how. ctx of the ops is the struct db *. */
#ifndef AUTHD_SVC_KVPERSIST_H
#define AUTHD_SVC_KVPERSIST_H

#include "kv/kv.h"

extern const struct kv_persist_ops kvpersist_ops;
extern const char *const kvpersist_prefixes[];
extern const int kvpersist_nprefixes;

#endif
