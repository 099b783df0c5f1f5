/* SQLite VFS shim that turns the many small writes of one WAL commit into a
 * single write (src/db/ private; used by db_sqlite.c).
 *
 * SQLite appends each WAL frame with two writes (24-byte header, then the
 * page), so a commit of n pages costs 2n pwrite calls, each of which takes
 * the inode lock and walks the filesystem's write path. The shim buffers
 * sequential writes to a "-wal" file and writes them out as one pwrite:
 *   - when the data page of a commit frame (header field "database size
 *     after commit" non-zero) has been buffered: the commit is on the file
 *     before sqlite3WalFrames publishes it in the wal-index, and a failed
 *     write is returned from that xWrite like any other write error;
 *   - before any other operation on the file (read, sync, truncate, size,
 *     close, locks, file controls), so SQLite never observes the buffer;
 *   - when a write is not contiguous with the buffer, or the buffer would
 *     exceed WALBUF_MAX_BYTES (a large transaction spilling frames).
 * Writes over bytes already in the file go straight through, and so does
 * the page of a frame whose header did: a page is never buffered unless its
 * header is, so every commit page either joins its (marked) header or is on
 * the file when its xWrite returns.
 * A crash before a flush loses only frames of a commit that had not
 * finished, which SQLite already treats as never written. Every other file
 * (database, journal, temp) is the default VFS's own object, untouched.
 *
 * Thread safety: walbuf_vfs_name may be called from any thread; each
 * sqlite3_file is used by one connection at a time, as SQLite requires. */
#ifndef AUTHD_DB_WALBUF_H
#define AUTHD_DB_WALBUF_H

#include "util/rc.h"

/* Largest buffered run before an early flush, and the largest piece a
 * flush hands to the default VFS in one call. */
#define WALBUF_MAX_BYTES ((size_t)256 * 1024)
#define WALBUF_WRITE_MAX ((size_t)64 * 1024)

/* Registers the shim (once, over the default VFS) and returns its name for
 * sqlite3_open_v2; NULL when SQLite has no default VFS. */
const char *walbuf_vfs_name(void);

#endif
