/* db_sqlite_vfs.h - page checksums for the embedded store's SQLite database.
 *
 * SQLite pages carry no checksum: a flipped bit inside a record (a size, an object id, a mode) is
 * a valid, different record, and would be served as metadata. This VFS shim, layered over
 * SQLite's default VFS, keeps an 8-byte checksum in the reserved bytes at the end of every page
 * of a main database file whose header reserves exactly 8 bytes a page: written with each page,
 * checked with each page read. A page that fails is SQLITE_IOERR_DATA (the store's -EIO), never
 * data. Databases that reserve no bytes (stores made before format version 2) pass through
 * unchanged. The checksum (docs/FORMAT.md): over the page's first pgsz - 8 bytes read as
 * little-endian 32-bit words w, with s1 = page number and s2 = 0, s1 += w then s2 += s1 for each
 * word (mod 2^32); s1 and s2 are stored little-endian in that order. The page number makes a page
 * written at the wrong place fail too.
 *
 * Only main database files are wrapped: the WAL keeps SQLite's own frame checksums (verified when
 * it is recovered), and a page gets its page checksum when a checkpoint writes it to the database
 * file. */
#ifndef TPDEFS_DB_SQLITE_VFS_H
#define TPDEFS_DB_SQLITE_VFS_H

#include <stddef.h>
#include <stdint.h>

/* Bytes reserved at the end of each page for the checksum. */
#define DBVFS_RESERVE 8

/* sqlite3_file_control(db, "main", DBVFS_FCNTL, &v) on a database opened through the shim: v is
 * a set of DBVFS_* bits to apply (v < 0: change nothing); v comes back as the bits now in
 * force. -> SQLITE_NOTFOUND on a file not opened through the shim. */
#define DBVFS_FCNTL 0x74706401   /* above SQLite's own opcodes (< 100) */
#define DBVFS_SUMS 1             /* keep a checksum in every page written */
#define DBVFS_VERIFY 2           /* check the checksum of every page read (default while SUMS) */
#define DBVFS_NOVERIFY 4         /* to apply: stop checking (repair: pages with stale sums) */

/* Name of the shim, registered with SQLite on first call (thread-safe; never the default VFS);
 * NULL if registration failed. */
const char *dbvfs_name(void);

/* The checksum of one page (pgno counts from 1; pgsz a power of two >= 512) into out[8]. */
void dbvfs_page_sum(const uint8_t *page, size_t pgsz, uint32_t pgno, uint8_t out[8]);

#endif
