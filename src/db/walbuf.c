#include "db/walbuf.h"
#include "util/mem.h"

#include <sqlite3.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WALBUF_NAME "authd-walbuf"
/* WAL file format (https://sqlite.org/fileformat2.html#walformat). */
#define WAL_FRAME_HDR 24
#define WAL_FILE_HDR 32

struct wb_file {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, allocated right after */
    unsigned char *buf;
    size_t len, cap;
    sqlite3_int64 off;          /* file offset of buf[0] */
    sqlite3_int64 end;          /* end of the furthest byte handed to the real file */
    sqlite3_int64 page_through; /* offset right after a header written through */
    bool commit;                /* buf ends with a commit frame's header */
};

#define WB_HDR ((sizeof(struct wb_file) + 15) & ~(size_t)15)

static sqlite3_vfs wb_vfs;
static sqlite3_vfs *wb_real;
static sqlite3_io_methods wb_io;
static pthread_once_t wb_once = PTHREAD_ONCE_INIT;

static struct wb_file *wb(sqlite3_file *f)
{
    return (struct wb_file *)f;
}

static int real_write(struct wb_file *f, const void *p, int amt, sqlite3_int64 off)
{
    int e = f->real->pMethods->xWrite(f->real, p, amt, off);
    if (e == SQLITE_OK && off + amt > f->end)
        f->end = off + amt;
    return e;
}

/* Hands the buffered run to the real file, in pieces the default VFS
 * accepts (its unixWrite writes at most 128 KiB - 1 per call). The run is
 * dropped either way: after an error SQLite abandons the transaction the
 * frames belonged to. */
static int wb_flush(struct wb_file *f)
{
    int e = SQLITE_OK;
    for (size_t done = 0; done < f->len && e == SQLITE_OK;) {
        size_t n = f->len - done < WALBUF_WRITE_MAX ? f->len - done : WALBUF_WRITE_MAX;
        e = real_write(f, f->buf + done, (int)n, f->off + (sqlite3_int64)done);
        done += n;
    }
    f->len = 0;
    f->commit = false;
    return e;
}

static bool commit_frame_header(const void *p, int amt)
{
    const unsigned char *h = p;
    /* bytes 4..7: database size in pages after a commit, 0 otherwise */
    return amt == WAL_FRAME_HDR && (h[4] | h[5] | h[6] | h[7]) != 0;
}

static int wb_write(sqlite3_file *file, const void *p, int amt, sqlite3_int64 off)
{
    struct wb_file *f = wb(file);
    bool contiguous = f->len && off == f->off + (sqlite3_int64)f->len;
    /* A commit frame's page always joins its header (the run may then pass
     * the limit by one page): flushing between them would leave the page
     * buffered with nothing left to flush it before the commit is published. */
    if (!contiguous || (!f->commit && f->len + (size_t)amt > WALBUF_MAX_BYTES)) {
        int e = wb_flush(f);
        if (e != SQLITE_OK)
            return e;
        /* Only appends past everything written are buffered: a write over
         * existing bytes (the file header of a restarted log, checksums
         * rewritten by walRewriteChecksums, frames after a rollback) goes
         * straight through, so nothing published can sit in the buffer.
         * A frame's page follows its header through even when it starts at
         * or past `end` (a file that ended mid-frame, after a crash or a
         * failed write): the commit mark is read from the header only when
         * the header is buffered, so a page must never be buffered behind a
         * header that was not. */
        bool page_of_through = off == f->page_through;
        f->page_through = -1;
        if (off < f->end || off < WAL_FILE_HDR || (size_t)amt > WALBUF_MAX_BYTES ||
            page_of_through) {
            if (off < WAL_FILE_HDR)
                f->end = 0; /* a new log starts at the header */
            if (amt == WAL_FRAME_HDR)
                f->page_through = off + amt;
            return real_write(f, p, amt, off);
        }
        f->off = off;
    }
    if (f->len + (size_t)amt > f->cap) {
        f->cap = f->cap ? f->cap : 64 * 1024;
        while (f->cap < f->len + (size_t)amt)
            f->cap *= 2;
        f->buf = xrealloc(f->buf, f->cap);
    }
    memcpy(f->buf + f->len, p, (size_t)amt);
    f->len += (size_t)amt;
    if (f->commit)
        return wb_flush(f); /* the commit frame's page: the commit is complete */
    f->commit = commit_frame_header(p, amt);
    return SQLITE_OK;
}

static int wb_close(sqlite3_file *file)
{
    struct wb_file *f = wb(file);
    (void)wb_flush(f); /* only frames of an unfinished transaction can be left */
    int e = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return e;
}

static int wb_read(sqlite3_file *file, void *p, int amt, sqlite3_int64 off)
{
    struct wb_file *f = wb(file);
    int e = wb_flush(f);
    return e != SQLITE_OK ? e : f->real->pMethods->xRead(f->real, p, amt, off);
}

static int wb_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct wb_file *f = wb(file);
    int e = wb_flush(f);
    if (e == SQLITE_OK)
        e = f->real->pMethods->xTruncate(f->real, size);
    if (e == SQLITE_OK && f->end > size)
        f->end = size;
    return e;
}

static int wb_sync(sqlite3_file *file, int flags)
{
    struct wb_file *f = wb(file);
    int e = wb_flush(f);
    return e != SQLITE_OK ? e : f->real->pMethods->xSync(f->real, flags);
}

static int wb_file_size(sqlite3_file *file, sqlite3_int64 *out)
{
    struct wb_file *f = wb(file);
    int e = wb_flush(f);
    return e != SQLITE_OK ? e : f->real->pMethods->xFileSize(f->real, out);
}

static int wb_lock(sqlite3_file *file, int level)
{
    struct wb_file *f = wb(file);
    int e = wb_flush(f);
    return e != SQLITE_OK ? e : f->real->pMethods->xLock(f->real, level);
}

static int wb_unlock(sqlite3_file *file, int level)
{
    struct wb_file *f = wb(file);
    int e = wb_flush(f);
    return e != SQLITE_OK ? e : f->real->pMethods->xUnlock(f->real, level);
}

static int wb_check_reserved(sqlite3_file *file, int *out)
{
    struct wb_file *f = wb(file);
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int wb_file_control(sqlite3_file *file, int op, void *arg)
{
    struct wb_file *f = wb(file);
    int e = wb_flush(f);
    return e != SQLITE_OK ? e : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int wb_sector_size(sqlite3_file *file)
{
    struct wb_file *f = wb(file);
    return f->real->pMethods->xSectorSize(f->real);
}

static int wb_device_chars(sqlite3_file *file)
{
    struct wb_file *f = wb(file);
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* A WAL file has no shared memory and is never memory-mapped; these only
 * complete the version-3 method table. */
static int wb_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **out)
{
    struct wb_file *f = wb(file);
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, out);
}

static int wb_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    struct wb_file *f = wb(file);
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void wb_shm_barrier(sqlite3_file *file)
{
    struct wb_file *f = wb(file);
    f->real->pMethods->xShmBarrier(f->real);
}

static int wb_shm_unmap(sqlite3_file *file, int del)
{
    struct wb_file *f = wb(file);
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int wb_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out)
{
    struct wb_file *f = wb(file);
    int e = wb_flush(f);
    return e != SQLITE_OK ? e : f->real->pMethods->xFetch(f->real, off, amt, out);
}

static int wb_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
    struct wb_file *f = wb(file);
    return f->real->pMethods->xUnfetch(f->real, off, p);
}

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                   int *out_flags)
{
    (void)vfs;
    if (!(flags & SQLITE_OPEN_WAL))
        return wb_real->xOpen(wb_real, name, file, flags, out_flags);
    struct wb_file *f = wb(file);
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)((char *)f + WB_HDR);
    f->page_through = -1;
    int e = wb_real->xOpen(wb_real, name, f->real, flags, out_flags);
    if (e != SQLITE_OK)
        return e; /* base.pMethods stays NULL: SQLite will not call xClose */
    /* Appends start past the file's current end (a log left by an earlier
     * process is overwritten from its header, which goes straight through). */
    if (f->real->pMethods->xFileSize(f->real, &f->end) != SQLITE_OK)
        f->end = INT64_MAX;
    f->base.pMethods = &wb_io;
    return SQLITE_OK;
}

static void wb_init(void)
{
    wb_real = sqlite3_vfs_find(NULL);
    if (!wb_real)
        return;
    wb_vfs = *wb_real;
    wb_vfs.zName = WALBUF_NAME;
    wb_vfs.pNext = NULL;
    wb_vfs.szOsFile = (int)(WB_HDR + (size_t)wb_real->szOsFile);
    wb_vfs.xOpen = wb_open;
    wb_io = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = wb_close,
        .xRead = wb_read,
        .xWrite = wb_write,
        .xTruncate = wb_truncate,
        .xSync = wb_sync,
        .xFileSize = wb_file_size,
        .xLock = wb_lock,
        .xUnlock = wb_unlock,
        .xCheckReservedLock = wb_check_reserved,
        .xFileControl = wb_file_control,
        .xSectorSize = wb_sector_size,
        .xDeviceCharacteristics = wb_device_chars,
        .xShmMap = wb_shm_map,
        .xShmLock = wb_shm_lock,
        .xShmBarrier = wb_shm_barrier,
        .xShmUnmap = wb_shm_unmap,
        .xFetch = wb_fetch,
        .xUnfetch = wb_unfetch,
    };
    if (sqlite3_vfs_register(&wb_vfs, 0) != SQLITE_OK)
        wb_real = NULL;
}

const char *walbuf_vfs_name(void)
{
    pthread_once(&wb_once, wb_init);
    return wb_real ? WALBUF_NAME : NULL;
}
