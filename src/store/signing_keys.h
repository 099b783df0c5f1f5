/* SQL of the signing_keys table (data-model §7), plus the one oauth_clients
 * aggregate the retirement window needs (config-ops §5.3).
 *
 * Every function takes a checked-out connection (the caller owns the
 * transaction) and, where rows come back, an arena that owns the returned
 * strings. RC_NOT_FOUND when no row matches; RC_CONFLICT when an insert
 * hits uq_signing_keys_kid or uq_signing_keys_single_active (a concurrent
 * bootstrap or rotation won). Every query excludes soft-deleted rows.
 * Times are Unix microseconds; the service supplies every time. */
#ifndef AUTHD_STORE_SIGNING_KEYS_H
#define AUTHD_STORE_SIGNING_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db/db.h"
#include "util/arena.h"
#include "util/rc.h"

#define SIGNING_KEY_KID_MAX 128 /* varchar(128) */

struct signing_key_row {
    char id[37];
    char kid[SIGNING_KEY_KID_MAX + 1];
    char status[12];         /* "active" | "retiring" | "retired" */
    const char *public_key;  /* exact stored text (the kid input) */
    const char *private_key; /* stored form (enc2:/enc1:/v1:/plaintext); NULL when not read */
    int64_t retire_after_us; /* 0 when NULL */
};

struct signing_key_new {
    const char *id; /* canonical uuid */
    const char *kid;
    const char *public_key;
    const char *private_key; /* stored form (enc2:...) */
    int64_t now_us;          /* activated_at, created_at, updated_at */
};

/* Inserts a row with status 'active'. RC_CONFLICT when another active row
 * or a row with the same kid exists. */
rc_t signing_keys_insert_active(struct db_conn *c, const struct signing_key_new *k) WUR;

/* The active row, private key included. lock: FOR UPDATE on PostgreSQL
 * (the SQLite writer is exclusive already; use the writer connection). */
rc_t signing_keys_get_active(struct db_conn *c, struct arena *a, bool lock,
                             struct signing_key_row *out) WUR;
/* Any non-deleted row with this kid, private key included. */
rc_t signing_keys_get_by_kid(struct db_conn *c, struct arena *a, const char *kid,
                             struct signing_key_row *out) WUR;

/* The verification set: non-deleted active and retiring rows, without
 * private keys, sorted by kid in byte order (sorted here, not by the
 * database collation). *out is arena memory; *out_n may be 0. */
rc_t signing_keys_list_verification(struct db_conn *c, struct arena *a,
                                    struct signing_key_row **out, size_t *out_n) WUR;
/* Fingerprint of the verification set: "kid:status\n" per row in kid byte
 * order (arena string). Reads two short columns; used to notice a change
 * made by another process without loading the keys. */
rc_t signing_keys_fingerprint(struct db_conn *c, struct arena *a, const char **out) WUR;

/* active → retiring with retire_after. RC_NOT_FOUND when the row is no
 * longer active. */
rc_t signing_keys_demote(struct db_conn *c, const char *id, int64_t retire_after_us,
                         int64_t now_us) WUR;
/* retiring → active (bootstrap of a configured key found retiring while no
 * key is active); clears retire_after. */
rc_t signing_keys_reactivate(struct db_conn *c, const char *id, int64_t now_us) WUR;
/* Retirement: every retiring row whose retire_after <= now becomes retired
 * (retired_at = updated_at = now). *out_kids (arena, sorted, may be NULL
 * when *out_n is 0) lists the kids retired now. */
rc_t signing_keys_retire_due(struct db_conn *c, struct arena *a, int64_t now_us,
                             const char ***out_kids, size_t *out_n) WUR;

/* Largest token_ttl_seconds of active, non-deleted oauth_clients; 0 when
 * there is none. */
rc_t signing_keys_max_client_token_ttl(struct db_conn *c, int64_t *out) WUR;

#endif
