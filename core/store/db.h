/* db.h - the SQL driver under the store: one small interface, one file per engine (db_sqlite.c;
 * a PostgreSQL driver, db_pg.c, comes next). The store modules speak SQL only through these
 * calls, so an engine plugs in without touching them (JuiceFS style: one interface, the engine's
 * quirks in its own file).
 *
 * SQL text given to db_prepare / db_exec is portable: standard SQL that SQLite >= 3.35 and
 * PostgreSQL >= 15 both accept, with numbered placeholders ?1..?N (a driver rewrites them to its
 * own syntax, PostgreSQL's $1..$N). What is not portable is an engine operation below (open,
 * transactions, integrity check, checkpoint) or the schema DDL (store_schema.c, one per dialect).
 *
 * Errors are negative errno values. Threads: a connection and its statements are used by one
 * thread at a time; the caller serialises (the store's mutex guards its connection and its
 * statements). The driver takes no lock of its own.
 */
#ifndef TPDEFS_DB_H
#define TPDEFS_DB_H

#include <stddef.h>
#include <stdint.h>

typedef struct db db;           /* a connection */
typedef struct db_stmt db_stmt; /* a prepared statement of one connection */

/* db_dialect: which SQL engine a connection speaks. */
#define DB_SQLITE 1
#define DB_PG 2

/* db_step results besides -errno. */
#define DB_DONE 0 /* no (more) rows: the statement ran to completion */
#define DB_ROW 1  /* a row is ready for db_col_* */

/* db_open_sqlite modes. */
#define DB_OPEN_RW 0     /* an existing database, read-write */
#define DB_OPEN_RO 1     /* an existing database, read-only, leaving its directory as it is */
#define DB_OPEN_CREATE 2 /* a new database file (created), durable commits, for initialisation */
#define DB_OPEN_NOVERIFY 8 /* or'ed in: page checksums are kept but not checked (the repair of a
			    * database a tool outside tpdefs wrote to: store_resum) */

/* db_prepare flags. */
#define DB_PREPARE_PERSISTENT 1 /* kept for the connection's lifetime (the store's statement
				   cache): a hint, SQLite skips its short-lived memory pools */

/* ---- engine operations (not portable SQL) ---- */

/* Open the SQLite database file path. DB_OPEN_RO uses the WAL the last writer left when it has
 * content (a crashed daemon) and opens the file immutable otherwise, so no -wal/-shm is created.
 * On failure *out is NULL and err holds the engine's message; -EIO or -ENOMEM. */
int db_open_sqlite(const char *path, int mode, db **out, char *err, size_t errlen);
/* Settings of the writing connection (SQLite: WAL, synchronous=FULL, cache and WAL size), once
 * the caller has checked the database is its own: nothing is written to a foreign file. */
int db_setup(db *d);
/* Close (NULL: nothing). Every statement must be finalized first. An open transaction is rolled
 * back. */
void db_close(db *d);
int db_dialect(const db *d);
/* The message of the connection's last failure (valid until its next call). */
const char *db_errmsg(db *d);

/* A write transaction, its writer lock taken at once (SQLite: BEGIN IMMEDIATE, so a busy
 * database fails here, not at the first write). */
int db_begin(db *d);
int db_commit(db *d);
int db_rollback(db *d);

/* Integrity of the database's structures (SQLite: PRAGMA integrity_check, indexes against their
 * tables), stopping after max_problems (0: the engine's default). 0 healthy; 1 damaged, msg holds
 * the engine's report (its first part when long); -errno when the check could not run, msg holds
 * the engine's message. */
int db_check(db *d, int max_problems, char *msg, size_t len);
/* Rebuild every index from its table (damaged indexes found by db_check). */
int db_reindex(db *d);
/* Fold the write-ahead log into the database and truncate it. -EBUSY when readers kept part of
 * it (what could be folded was). */
int db_checkpoint(db *d);
/* Page checksums (db_sqlite_vfs.h): 1 when the database keeps one in every page, 0 when not;
 * db_add_page_sums rewrites the whole database (VACUUM) with room for them, no statement of the
 * connection running. -EOPNOTSUPP for an engine whose pages are not ours (PostgreSQL). */
int db_page_sums(db *d);
int db_add_page_sums(db *d);
/* Turn the checking of page checksums on or off for this connection (-EOPNOTSUPP: no pages). */
int db_page_verify(db *d, int on);
/* 1 when the connection's last failure was damage (a page failing its checksum, a malformed
 * page), 0 otherwise: tells a damaged store from a file that is not a store. */
int db_damaged(db *d);

/* ---- portable SQL ---- */

/* Run one or more statements that return no rows (DDL). */
int db_exec(db *d, const char *sql);
/* Prepare one statement; its parameters start out NULL. */
int db_prepare(db *d, const char *sql, unsigned flags, db_stmt **st);
/* Ready to run again: rows pending are dropped, every parameter is NULL again. */
void db_reset(db_stmt *st);
void db_finalize(db_stmt *st); /* NULL: nothing */

/* Parameters (idx from 1). Blob and text bytes are not copied: they must stay valid until the
 * statement is reset or finalized. A blob of 0 bytes is an empty value, not NULL (p may then be
 * NULL). A bind that fails (bad index, too large, no memory) makes the next db_step return its
 * error, so one check after the step covers all binds. */
void db_bind_i64(db_stmt *st, int idx, int64_t v);
void db_bind_blob(db_stmt *st, int idx, const void *p, size_t n);
void db_bind_text(db_stmt *st, int idx, const char *s); /* NUL-terminated */
void db_bind_null(db_stmt *st, int idx);

/* DB_ROW, DB_DONE or -errno: a constraint violated -EEXIST, busy or locked -EBUSY, disk full
 * -ENOSPC, read-only database -EROFS, no memory -ENOMEM, anything else (I/O error, damaged
 * database) -EIO. */
int db_step(db_stmt *st);

/* Columns (col from 0) of the current row. NULL reads as 0 / NULL / 0 bytes. A blob pointer is
 * valid until the next step, reset or finalize; an empty, non-NULL blob gives a non-NULL
 * pointer. */
int64_t db_col_i64(db_stmt *st, int col);
int db_col_is_null(db_stmt *st, int col);
const void *db_col_blob(db_stmt *st, int col);
size_t db_col_bytes(db_stmt *st, int col);
const char *db_col_text(db_stmt *st, int col); /* NUL-terminated; NULL for NULL */

#endif
