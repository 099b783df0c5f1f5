/* WAL write-coalescing VFS (src/db/walbuf.c). A counting layer registered
 * as the default VFS before the shim wraps it sees every write the shim
 * hands down, so the cases check both what reaches the file (one write per
 * commit) and what other connections and a later process read back: a
 * reader sees each commit at once, and a process that dies right after its
 * commits (no close, no checkpoint) loses none of them, including commits
 * whose frames were spilled, overwritten in place and rolled back. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/walbuf.h"

static char g_dir[] = "/tmp/authd-test-walbuf-XXXXXX";

/* ---- counting layer under the shim ---- */

static sqlite3_vfs *g_base;
static sqlite3_vfs g_count_vfs;
static sqlite3_io_methods g_count_io;
static const sqlite3_io_methods *g_wal_io;
static int g_wal_writes;

static int count_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    g_wal_writes++;
    return g_wal_io->xWrite(f, p, n, off);
}

static int count_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
    (void)vfs;
    int e = g_base->xOpen(g_base, name, file, flags, out);
    if (e == SQLITE_OK && (flags & SQLITE_OPEN_WAL) && file->pMethods) {
        g_wal_io = file->pMethods;
        g_count_io = *g_wal_io;
        g_count_io.xWrite = count_write;
        file->pMethods = &g_count_io;
    }
    return e;
}

static void count_vfs_install(void)
{
    g_base = sqlite3_vfs_find(NULL);
    g_count_vfs = *g_base;
    g_count_vfs.zName = "count";
    g_count_vfs.pNext = NULL;
    g_count_vfs.xOpen = count_open;
    assert_int_equal(sqlite3_vfs_register(&g_count_vfs, 1), SQLITE_OK);
}

/* ---- helpers ---- */

static void path_of(const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

static sqlite3 *open_db(const char *name, const char *vfs)
{
    char path[256];
    path_of(name, path, sizeof path);
    sqlite3 *h = NULL;
    int e = sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
    assert_int_equal(e, SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    return h;
}

static void exec(sqlite3 *h, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
}

static long long scalar(sqlite3 *h, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void assert_intact(sqlite3 *h)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

static sqlite3 *open_wal(const char *name)
{
    sqlite3 *h = open_db(name, walbuf_vfs_name());
    exec(h, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0");
    return h;
}

/* ---- cases ---- */

/* A commit of many pages reaches the WAL file as one write; without the
 * shim the same commit is two writes per page. */
static void test_one_write_per_commit(void **state)
{
    (void)state;
    sqlite3 *h = open_wal("one.db");
    exec(h, "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)");
    exec(h, "INSERT INTO t VALUES (1, zeroblob(1000))");
    g_wal_writes = 0;
    exec(h, "INSERT INTO t VALUES (2, randomblob(40000))");
    assert_int_equal(g_wal_writes, 1);
    long long pages = scalar(h, "PRAGMA page_count");
    assert_true(pages > 10);
    g_wal_writes = 0;
    exec(h, "BEGIN; UPDATE t SET v = randomblob(100) WHERE k = 1; "
            "INSERT INTO t VALUES (3, randomblob(5000)); COMMIT");
    assert_int_equal(g_wal_writes, 1);
    sqlite3_close(h);

    sqlite3 *plain = open_db("plain.db", "count");
    exec(plain, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;"
                "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);"
                "INSERT INTO t VALUES (1, zeroblob(1000))");
    g_wal_writes = 0;
    exec(plain, "INSERT INTO t VALUES (2, randomblob(40000))");
    assert_true(g_wal_writes >= 20);
    sqlite3_close(plain);
}

/* Every commit is on the file before it is published: another connection
 * reads it immediately, through log restarts too. */
static void test_reader_sees_each_commit(void **state)
{
    (void)state;
    sqlite3 *w = open_wal("vis.db");
    exec(w, "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB, s INTEGER)");
    sqlite3 *r = open_db("vis.db", walbuf_vfs_name());
    sqlite3 *ck = open_db("vis.db", NULL);
    char sql[160];
    for (int i = 1; i <= 300; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d, randomblob(%d), %d)", i,
                 100 + (i * 37) % 3000, i);
        exec(w, sql);
        assert_int_equal(scalar(r, "SELECT count(*) FROM t"), i);
        assert_int_equal(scalar(r, "SELECT sum(s) FROM t"), (long long)i * (i + 1) / 2);
        if (i % 50 == 0) {
            int nlog = 0, nckpt = 0;
            assert_int_equal(
                sqlite3_wal_checkpoint_v2(ck, NULL, SQLITE_CHECKPOINT_RESTART, &nlog, &nckpt),
                SQLITE_OK);
            g_wal_writes = 0;
        }
        if (i % 50 == 1 && i > 1) /* first commit after a restart: header + frames */
            assert_true(g_wal_writes <= 2);
    }
    assert_intact(r);
    sqlite3_close(ck);
    sqlite3_close(r);
    sqlite3_close(w);
}

/* Transactions larger than the buffer, and spilled ones (tiny page cache):
 * frames written before the commit, pages then overwritten in place (the
 * log's checksums rewritten), a spilled transaction rolled back and its
 * frames overwritten by the next one. */
static void big_transactions(sqlite3 *h)
{
    exec(h, "PRAGMA cache_size=4; CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB, s INTEGER)");
    exec(h, "BEGIN");
    for (int i = 1; i <= 400; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d, randomblob(900), %d)", i, i);
        exec(h, sql);
    }
    exec(h, "UPDATE t SET s = s * 2 WHERE k % 3 = 0");
    exec(h, "UPDATE t SET s = s + 1 WHERE k % 5 = 0");
    exec(h, "COMMIT");
    exec(h, "BEGIN; UPDATE t SET v = randomblob(950), s = -1; DELETE FROM t WHERE k > 10; "
            "ROLLBACK");
    exec(h, "BEGIN; UPDATE t SET v = randomblob(800) WHERE k % 2 = 0; "
            "INSERT INTO t VALUES (1000, randomblob(300000), 7); COMMIT");
    exec(h, "INSERT INTO t VALUES (1001, x'00', 11)");
    /* Last, so a process dying right after it has nothing left to flush:
     * spilled frames still in the buffer are read back by the UPDATE, and
     * the commit rewrites their checksums in place. */
    exec(h, "BEGIN");
    for (int i = 2000; i < 2060; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES (%d, randomblob(900), 1)", i);
        exec(h, sql);
    }
    exec(h, "UPDATE t SET s = 2, v = randomblob(880) WHERE k >= 2000; COMMIT");
}

static long long expected_sum(void)
{
    long long sum = 0;
    for (int i = 1; i <= 400; i++) {
        long long s = i;
        if (i % 3 == 0)
            s *= 2;
        if (i % 5 == 0)
            s += 1;
        sum += s;
    }
    return sum + 7 + 11 + 60 * 2;
}

static void test_large_and_spilled(void **state)
{
    (void)state;
    sqlite3 *h = open_wal("big.db");
    big_transactions(h);
    sqlite3 *r = open_db("big.db", NULL);
    assert_int_equal(scalar(r, "SELECT count(*) FROM t"), 462);
    assert_int_equal(scalar(r, "SELECT sum(s) FROM t"), expected_sum());
    assert_int_equal(scalar(r, "SELECT length(v) FROM t WHERE k = 1000"), 300000);
    assert_intact(r);
    sqlite3_close(r);
    sqlite3_close(h);
}

/* A process that dies right after committing (nothing closed, nothing
 * checkpointed) loses nothing: recovery in the next process replays every
 * committed frame, which needs them all on the file with valid checksums. */
static void test_process_death_after_commit(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *h = open_wal("crash.db");
        big_transactions(h);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    sqlite3 *h = open_db("crash.db", NULL);
    assert_int_equal(scalar(h, "SELECT count(*) FROM t"), 462);
    assert_int_equal(scalar(h, "SELECT sum(s) FROM t"), expected_sum());
    assert_intact(h);
    sqlite3_close(h);
}

/* Driven through the VFS directly: a log left ending right after a frame
 * header (a crash between SQLite's two writes of a frame), then a commit
 * frame written there. Its header goes straight through (it overwrites
 * bytes), so its page must too: when the page's xWrite returns, both are on
 * the file, before SQLite would publish the commit. */
static void test_commit_frame_across_old_end(void **state)
{
    (void)state;
    char db[256], wal[256];
    path_of("manual.db", db, sizeof db);
    path_of("manual.db-wal", wal, sizeof wal);
    FILE *fp = fopen(db, "w");
    assert_non_null(fp);
    fclose(fp);
    enum { PAGE = 4096, HDR = 24 };
    unsigned char page[PAGE], hdr[HDR] = {0}, filehdr[32] = {0};
    memset(page, 0xab, sizeof page);
    fp = fopen(wal, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(filehdr, 1, 32, fp), 32);
    assert_int_equal(fwrite(hdr, 1, HDR, fp), HDR); /* frame 0: header only */
    fclose(fp);

    sqlite3_vfs *v = sqlite3_vfs_find(walbuf_vfs_name());
    assert_non_null(v);
    sqlite3_file *f = calloc(1, (size_t)v->szOsFile);
    int out = 0;
    assert_int_equal(v->xOpen(v, wal, f, SQLITE_OPEN_READWRITE | SQLITE_OPEN_WAL, &out), SQLITE_OK);
    hdr[7] = 1; /* database size after commit: 1 page → a commit frame */
    assert_int_equal(f->pMethods->xWrite(f, hdr, HDR, 32), SQLITE_OK);
    assert_int_equal(f->pMethods->xWrite(f, page, PAGE, 32 + HDR), SQLITE_OK);
    FILE *rd = fopen(wal, "rb");
    assert_non_null(rd);
    unsigned char back[32 + HDR + PAGE];
    assert_int_equal(fread(back, 1, sizeof back, rd), sizeof back);
    fclose(rd);
    assert_int_equal(back[32 + 7], 1);
    assert_memory_equal(back + 32 + HDR, page, PAGE);

    /* The next frames append past the old end: buffered again, one write. */
    g_wal_writes = 0;
    hdr[7] = 0;
    assert_int_equal(f->pMethods->xWrite(f, hdr, HDR, 32 + HDR + PAGE), SQLITE_OK);
    assert_int_equal(f->pMethods->xWrite(f, page, PAGE, 32 + 2 * HDR + PAGE), SQLITE_OK);
    hdr[7] = 2;
    assert_int_equal(f->pMethods->xWrite(f, hdr, HDR, 32 + 2 * (HDR + PAGE)), SQLITE_OK);
    assert_int_equal(g_wal_writes, 0);
    assert_int_equal(f->pMethods->xWrite(f, page, PAGE, 32 + 3 * HDR + 2 * PAGE), SQLITE_OK);
    assert_int_equal(g_wal_writes, 1);
    sqlite3_int64 size = 0;
    assert_int_equal(f->pMethods->xFileSize(f, &size), SQLITE_OK);
    assert_int_equal(size, 32 + 3 * (HDR + PAGE));
    assert_int_equal(f->pMethods->xClose(f), SQLITE_OK);
    free(f);
}

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
}

int main(void)
{
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    /* Before the shim's first use, so it wraps the counting layer. */
    count_vfs_install();
    if (!walbuf_vfs_name()) {
        fprintf(stderr, "walbuf: no VFS\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_write_per_commit),
        cmocka_unit_test(test_reader_sees_each_commit),
        cmocka_unit_test(test_large_and_spilled),
        cmocka_unit_test(test_process_death_after_commit),
        cmocka_unit_test(test_commit_frame_across_old_end),
    };
    return cmocka_run_group_tests_name("walbuf", tests, NULL, NULL);
}
