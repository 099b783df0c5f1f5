/* In-process KV write-through to kv_entries (data-model §10.7): the four
 * durable families survive a "restart" (a new store loading the table),
 * everything else does not; deletes and expiry are durable too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"
#include "kv/kv.h"
#include "svc/kvpersist.h"
#include "store/migrate.h"

static char dir[] = "/tmp/authd-kvp-XXXXXX";
static struct db *db;

static int setup(void **st)
{
    (void)st;
    if (!mkdtemp(dir))
        return -1;
    char url[256];
    snprintf(url, sizeof url, "sqlite:///%s/t.db", dir);
    struct db_opts o = {0};
    int applied;
    if (db_open(url, &o, &db) != RC_OK || migrate_apply(db, &applied) != RC_OK)
        return -1;
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    db_close(db);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct kv *reopen(void)
{
    struct kv *kv = NULL;
    assert_int_equal(kv_open(NULL, &kv), RC_OK);
    assert_int_equal(
        kv_set_persistence(kv, &kvpersist_ops, db, kvpersist_prefixes, kvpersist_nprefixes), RC_OK);
    return kv;
}

static void expect(struct kv *kv, const char *key, const char *want)
{
    char *v = NULL;
    assert_int_equal(kv_get(kv, key, &v), RC_OK);
    if (want) {
        assert_non_null(v);
        assert_string_equal(v, want);
    } else {
        assert_null(v);
    }
    free(v);
}

static void test_survives_restart(void **st)
{
    (void)st;
    struct kv *kv = reopen();
    assert_int_equal(kv_set(kv, "session:s1", "{\"user_id\":\"u\"}", 60000), RC_OK);
    assert_int_equal(kv_set(kv, "session_access:j1", "s1", 60000), RC_OK);
    assert_int_equal(kv_set(kv, "blocklist:jti:j0", "1", 60000), RC_OK);
    bool set = false;
    assert_int_equal(kv_set_nx(kv, "action_token_used:a1", "1", 60000, &set), RC_OK);
    assert_true(set);
    assert_int_equal(kv_set_nx(kv, "action_token_used:a1", "1", 60000, &set), RC_OK);
    assert_false(set);
    assert_int_equal(kv_set(kv, "rate_limit:/x:ip:1", "memory only", 60000), RC_OK);
    assert_int_equal(kv_set(kv, "session:short", "x", 1), RC_OK); /* 1 ms */
    kv_close(kv);
    usleep(5000);

    kv = reopen();
    expect(kv, "session:s1", "{\"user_id\":\"u\"}");
    expect(kv, "session_access:j1", "s1");
    expect(kv, "blocklist:jti:j0", "1");
    expect(kv, "action_token_used:a1", "1");
    expect(kv, "rate_limit:/x:ip:1", NULL);
    expect(kv, "session:short", NULL);
    int64_t ttl = 0;
    assert_int_equal(kv_ttl(kv, "session:s1", &ttl), RC_OK);
    assert_true(ttl > 50000 && ttl <= 60000);

    /* a delete is durable: a revoked session never comes back */
    assert_int_equal(kv_del(kv, "session:s1"), RC_OK);
    char *v = NULL;
    assert_int_equal(kv_getdel(kv, "session_access:j1", &v), RC_OK);
    free(v);
    kv_close(kv);
    kv = reopen();
    expect(kv, "session:s1", NULL);
    expect(kv, "session_access:j1", NULL);
    assert_true(kv_sweep(kv) >= 1); /* the expired session:short row */
    kv_close(kv);
}

static void test_set_many(void **st)
{
    (void)st;
    struct kv *kv = reopen();
    struct kv_item items[] = {{"session:m1", "state", 60000},
                              {"session_access:mj", "m1", 60000},
                              {"other:m", "memory only", 60000}};
    assert_int_equal(kv_set_many(kv, items, 3), RC_OK);
    expect(kv, "other:m", "memory only");
    struct kv_item bad[] = {{"session:x", NULL, 1000}};
    assert_int_equal(kv_set_many(kv, bad, 1), RC_INVALID);
    kv_close(kv);
    kv = reopen();
    expect(kv, "session:m1", "state");
    expect(kv, "session_access:mj", "m1");
    expect(kv, "other:m", NULL);
    kv_close(kv);
}

/* kv_set_many_stage writes the durable copies inside the caller's
 * transaction: they commit or roll back with it, and memory is untouched
 * until kv_set_many_staged. */
static void test_stage_in_callers_transaction(void **st)
{
    (void)st;
    struct kv *kv = reopen();
    struct kv_item items[] = {{"session:t1", "state-1", 60000},
                              {"session_access:tj", "t1", 60000},
                              {"other:t", "memory only", 60000}};
    struct db_conn *c = NULL;

    /* Rolled back: nothing durable, nothing in memory. */
    assert_int_equal(db_acquire(db, DB_WRITE, &c), RC_OK);
    assert_int_equal(db_begin(c), RC_OK);
    assert_int_equal(kv_set_many_stage(kv, c, items, 3), RC_OK);
    expect(kv, "session:t1", NULL);
    db_rollback(c);
    db_release(c);
    kv_close(kv);
    kv = reopen();
    expect(kv, "session:t1", NULL);
    expect(kv, "session_access:tj", NULL);

    /* Committed, then staged into memory. */
    assert_int_equal(db_acquire(db, DB_WRITE, &c), RC_OK);
    assert_int_equal(db_begin(c), RC_OK);
    assert_int_equal(kv_set_many_stage(kv, c, items, 3), RC_OK);
    assert_int_equal(db_commit(c), RC_OK);
    db_release(c);
    assert_int_equal(kv_set_many_staged(kv, items, 3), RC_OK);
    expect(kv, "session:t1", "state-1");
    expect(kv, "other:t", "memory only");
    kv_close(kv);
    kv = reopen();
    expect(kv, "session:t1", "state-1");
    expect(kv, "session_access:tj", "t1");
    expect(kv, "other:t", NULL);

    /* Bad items are refused before anything is written. */
    struct kv_item bad[] = {{"session:t2", "ok", 1000}, {"session:t3", NULL, 1000}};
    assert_int_equal(db_acquire(db, DB_WRITE, &c), RC_OK);
    assert_int_equal(db_begin(c), RC_OK);
    assert_int_equal(kv_set_many_stage(kv, c, bad, 2), RC_INVALID);
    assert_int_equal(db_commit(c), RC_OK);
    db_release(c);
    kv_close(kv);
    kv = reopen();
    expect(kv, "session:t2", NULL);
    kv_close(kv);

    /* Without persistence, staging writes nothing and staged is a plain set. */
    assert_int_equal(kv_open(NULL, &kv), RC_OK);
    assert_int_equal(kv_set_many_stage(kv, NULL, items, 3), RC_OK);
    expect(kv, "session:t1", NULL);
    assert_int_equal(kv_set_many_staged(kv, items, 3), RC_OK);
    expect(kv, "session:t1", "state-1");
    kv_close(kv);
}

static void test_redis_refuses_persistence(void **st)
{
    (void)st;
    struct kv *kv = NULL;
    assert_int_equal(kv_open("redis://127.0.0.1:1/0", &kv), RC_OK);
    assert_int_equal(
        kv_set_persistence(kv, &kvpersist_ops, db, kvpersist_prefixes, kvpersist_nprefixes),
        RC_INVALID);
    kv_close(kv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_survives_restart),
        cmocka_unit_test(test_set_many),
        cmocka_unit_test(test_stage_in_callers_transaction),
        cmocka_unit_test(test_redis_refuses_persistence),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
