/* db_sqlite.c - the SQLite driver of db.h: the only file that calls SQLite. Connections are
 * opened SQLITE_OPEN_NOMUTEX: the caller serialises (db.h), so SQLite's own mutex would only
 * cost time. */
#include "db_driver.h"
#include "db_sqlite_vfs.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct sq_db {
	db base; /* first: a db * is a sq_db * */
	sqlite3 *h;
} sq_db;

typedef struct sq_stmt {
	db_stmt base; /* first: a db_stmt * is a sq_stmt * */
	sqlite3_stmt *h;
} sq_stmt;

static sqlite3 *H(db *d)
{
	return ((sq_db *)d)->h;
}

static sqlite3_stmt *SH(db_stmt *st)
{
	return ((sq_stmt *)st)->h;
}

/* SQLite result code -> -errno (0 for the success codes). */
static int sq_err(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EIO;
	default:
		return -EIO;
	}
}

/* A failure code as -errno, never 0 (a caller tests r < 0). */
static int sq_fail(int rc)
{
	int r = sq_err(rc);
	return r ? r : -EIO;
}

static void sq_close(db *d)
{
	sqlite3_close(H(d));
	free(d);
}

static int sq_exec(db *d, const char *sql)
{
	int rc = sqlite3_exec(H(d), sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sq_fail(rc);
}

/* WAL: readers never block the writer; FULL: a committed transaction survives power loss. */
static int sq_setup(db *d)
{
	return sq_exec(d, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
		       "PRAGMA foreign_keys=OFF; PRAGMA cache_size=-16384;"
		       /* keep the WAL small: du on the store's directory should show stored data */
		       "PRAGMA wal_autocheckpoint=256; PRAGMA journal_size_limit=1048576;");
}

static const char *sq_errmsg(db *d)
{
	return sqlite3_errmsg(H(d));
}

static int sq_begin(db *d)
{
	return sq_exec(d, "BEGIN IMMEDIATE");
}

static int sq_commit(db *d)
{
	return sq_exec(d, "COMMIT");
}

static int sq_rollback(db *d)
{
	return sq_exec(d, "ROLLBACK");
}

static int sq_check(db *d, int max_problems, char *msg, size_t len)
{
	char sql[64];
	if (max_problems > 0)
		snprintf(sql, sizeof(sql), "PRAGMA integrity_check(%d)", max_problems);
	else
		snprintf(sql, sizeof(sql), "PRAGMA integrity_check");
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(H(d), sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	int r;
	if (rc == SQLITE_ROW) {
		const char *res = (const char *)sqlite3_column_text(st, 0);
		r = res && !strcmp(res, "ok") ? 0 : 1;
		/* SQLite reports a page it could not read by its error code; 8202 is SQLITE_IOERR_DATA,
		 * a page that failed its checksum (db_sqlite_vfs.c): say so */
		char code[32];
		snprintf(code, sizeof(code), "error code=%d", SQLITE_IOERR_DATA);
		const char *pg = res ? strstr(res, "Page ") : NULL;
		if (res && strstr(res, code))
			snprintf(msg, len, "page %ld of the database fails its checksum (the file is "
				 "damaged)", pg ? strtol(pg + 5, NULL, 10) : 0L);
		else
			snprintf(msg, len, "%s", res ? res : "?");
	} else if (sqlite3_extended_errcode(H(d)) == SQLITE_IOERR_DATA) {
		/* a page failed its checksum (db_sqlite_vfs.c): damage, found */
		snprintf(msg, len, "a page of the database fails its checksum (the file is damaged)");
		r = 1;
	} else {
		snprintf(msg, len, "%s", sqlite3_errmsg(H(d)));
		r = sq_fail(rc);
	}
	sqlite3_finalize(st);
	return r;
}

static int sq_reindex(db *d)
{
	return sq_exec(d, "REINDEX;");
}

/* What the shim keeps and checks for this connection's database (DBVFS_* bits), after applying
 * set (-1: nothing). */
static int shim_bits(db *d, int set)
{
	int v = set;
	int rc = sqlite3_file_control(H(d), "main", DBVFS_FCNTL, &v);
	return rc == SQLITE_OK ? v : sq_fail(rc);
}

static int sq_page_sums(db *d)
{
	int v = shim_bits(d, -1);
	return v < 0 ? v : !!(v & DBVFS_SUMS);
}

static int sq_page_verify(db *d, int on)
{
	int v = shim_bits(d, on ? DBVFS_VERIFY : DBVFS_NOVERIFY);
	return v < 0 ? v : 0;
}

static int sq_damaged(db *d)
{
	int x = sqlite3_extended_errcode(H(d));
	return x == SQLITE_IOERR_DATA || (x & 0xff) == SQLITE_CORRUPT;
}

/* SQLite lets the reserved bytes grow, never shrink, and lays pages out anew only in a VACUUM.
 * In WAL mode only: the VACUUM's pages reach the database file in a checkpoint after it commits
 * (page 1 first), and a VACUUM that fails leaves the file as it was. In rollback mode a failed
 * VACUUM would roll old pages back through the shim. */
static int sq_add_page_sums(db *d)
{
	sqlite3_stmt *st = NULL;
	int wal = 0;
	if (sqlite3_prepare_v2(H(d), "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		wal = !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	if (!wal)
		return -EINVAL;
	int n = DBVFS_RESERVE;
	int rc = sqlite3_file_control(H(d), "main", SQLITE_FCNTL_RESERVE_BYTES, &n);
	if (rc != SQLITE_OK)
		return sq_fail(rc);
	int r = sq_exec(d, "VACUUM");
	if (r < 0)
		return r;
	/* committed in the WAL with reserved bytes: from here on every page written carries a sum,
	 * whatever order the checkpoint writes them in */
	r = shim_bits(d, DBVFS_SUMS);
	return r < 0 ? r : 0;
}

static int sq_checkpoint(db *d)
{
	int rc = sqlite3_wal_checkpoint_v2(H(d), NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sq_fail(rc);
}

static int sq_prepare(db *d, const char *sql, unsigned flags, db_stmt **out)
{
	sq_stmt *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	int rc = sqlite3_prepare_v3(H(d), sql, -1,
				    flags & DB_PREPARE_PERSISTENT ? SQLITE_PREPARE_PERSISTENT : 0,
				    &st->h, NULL);
	if (rc != SQLITE_OK || !st->h) { /* no statement at all (empty text): a caller's mistake */
		sqlite3_finalize(st->h);
		free(st);
		return rc != SQLITE_OK ? sq_fail(rc) : -EINVAL;
	}
	st->base.d = d;
	*out = &st->base;
	return 0;
}

static void sq_reset(db_stmt *st)
{
	sqlite3_reset(SH(st));
	sqlite3_clear_bindings(SH(st));
}

static void sq_finalize(db_stmt *st)
{
	sqlite3_finalize(SH(st));
	free(st);
}

static int sq_bind_i64(db_stmt *st, int idx, int64_t v)
{
	return sq_err(sqlite3_bind_int64(SH(st), idx, v));
}

/* SQLITE_STATIC: the caller keeps the bytes until reset (db.h), so SQLite need not copy them. */
static int sq_bind_blob(db_stmt *st, int idx, const void *p, size_t n)
{
	if (n > INT_MAX)
		return -E2BIG;
	/* a NULL pointer would bind SQL NULL; an empty blob needs a non-NULL one */
	return sq_err(sqlite3_bind_blob(SH(st), idx, p ? p : "", (int)n, SQLITE_STATIC));
}

static int sq_bind_text(db_stmt *st, int idx, const char *s)
{
	return sq_err(sqlite3_bind_text(SH(st), idx, s, -1, SQLITE_STATIC));
}

static int sq_bind_null(db_stmt *st, int idx)
{
	return sq_err(sqlite3_bind_null(SH(st), idx));
}

static int sq_step(db_stmt *st)
{
	int rc = sqlite3_step(SH(st));
	if (rc == SQLITE_ROW)
		return DB_ROW;
	if (rc == SQLITE_DONE)
		return DB_DONE;
	return sq_fail(rc);
}

static int64_t sq_col_i64(db_stmt *st, int col)
{
	return sqlite3_column_int64(SH(st), col);
}

static int sq_col_is_null(db_stmt *st, int col)
{
	return sqlite3_column_type(SH(st), col) == SQLITE_NULL;
}

/* SQLite returns NULL for an empty blob; db.h promises non-NULL for any non-NULL value. */
static const void *sq_col_blob(db_stmt *st, int col)
{
	if (sqlite3_column_type(SH(st), col) == SQLITE_NULL)
		return NULL;
	const void *p = sqlite3_column_blob(SH(st), col);
	return p ? p : "";
}

static size_t sq_col_bytes(db_stmt *st, int col)
{
	return (size_t)sqlite3_column_bytes(SH(st), col);
}

static const char *sq_col_text(db_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(SH(st), col);
}

static const struct db_ops sq_ops = {
	.dialect = DB_SQLITE,
	.close = sq_close,
	.setup = sq_setup,
	.errmsg = sq_errmsg,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.check = sq_check,
	.reindex = sq_reindex,
	.checkpoint = sq_checkpoint,
	.page_sums = sq_page_sums,
	.add_page_sums = sq_add_page_sums,
	.page_verify = sq_page_verify,
	.damaged = sq_damaged,
	.exec = sq_exec,
	.prepare = sq_prepare,
	.reset = sq_reset,
	.finalize = sq_finalize,
	.bind_i64 = sq_bind_i64,
	.bind_blob = sq_bind_blob,
	.bind_text = sq_bind_text,
	.bind_null = sq_bind_null,
	.step = sq_step,
	.col_i64 = sq_col_i64,
	.col_is_null = sq_col_is_null,
	.col_blob = sq_col_blob,
	.col_bytes = sq_col_bytes,
	.col_text = sq_col_text,
};

/* Read-only opening that leaves the directory as it is: SQLite creates path-wal and -shm for any
 * WAL reader. With no WAL content (a clean close folds it back) the database is opened
 * immutable: no file is created. With WAL content (the writer died) the committed frames must be
 * read: a read-only connection uses the -wal and -shm the writer left (-shm is SQLite's index of
 * the WAL, rebuilt from it; no stored data changes). */
static int open_rdonly(const char *path, const char *vfs, sqlite3 **h)
{
	char wal[PATH_MAX + 8];
	struct stat st;
	snprintf(wal, sizeof(wal), "%s-wal", path);
	if (stat(wal, &st) == 0 && st.st_size > 0)
		return sqlite3_open_v2(path, h, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, vfs);
	char uri[3 * PATH_MAX + 32], *u = uri;
	u += sprintf(u, "file:");
	for (const char *c = path; *c; c++) /* percent-encode all but unreserved and '/' */
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		    strchr("/-._~", *c))
			*u++ = *c;
		else
			u += sprintf(u, "%%%02X", (unsigned char)*c);
	strcpy(u, "?mode=ro&immutable=1");
	return sqlite3_open_v2(uri, h, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
			       vfs);
}

int db_open_sqlite(const char *path, int mode, db **out, char *err, size_t errlen)
{
	*out = NULL;
	if (strlen(path) >= PATH_MAX) { /* open_rdonly's URI buffer is sized for PATH_MAX */
		snprintf(err, errlen, "path too long");
		return -ENAMETOOLONG;
	}
	sq_db *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->base.ops = &sq_ops;
	/* Every database goes through the page-checksum shim: it checks the pages of databases
	 * that reserve room for a checksum and passes older ones through. */
	const char *vfs = dbvfs_name();
	if (!vfs) {
		snprintf(err, errlen, "cannot register the page-checksum VFS with SQLite");
		free(d);
		return -EIO;
	}
	int noverify = !!(mode & DB_OPEN_NOVERIFY);
	mode &= ~DB_OPEN_NOVERIFY;
	struct stat fst;
	int fresh = stat(path, &fst) != 0 || fst.st_size == 0; /* nothing laid out yet */
	int rc;
	if (mode == DB_OPEN_RO)
		rc = open_rdonly(path, vfs, &d->h);
	else if (mode == DB_OPEN_CREATE)
		rc = sqlite3_open_v2(path, &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
	else
		rc = sqlite3_open_v2(path, &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs);
	if (rc == SQLITE_OK && mode == DB_OPEN_CREATE && fresh) {
		/* A new database reserves DBVFS_RESERVE bytes a page for its checksums, set before
		 * its first page is written; it commits durably from its first transaction (it is
		 * renamed into place right after). */
		int n = DBVFS_RESERVE;
		rc = sqlite3_file_control(d->h, "main", SQLITE_FCNTL_RESERVE_BYTES, &n);
		if (rc == SQLITE_OK && shim_bits(&d->base, DBVFS_SUMS) < 0) /* every page summed, */
			rc = SQLITE_ERROR;                        /* page 1 written first or not */
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(d->h, "PRAGMA synchronous=FULL;", NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK && noverify && shim_bits(&d->base, DBVFS_NOVERIFY) < 0)
		rc = SQLITE_ERROR;
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s", d->h ? sqlite3_errmsg(d->h) : "no memory");
		sqlite3_close(d->h);
		free(d);
		return -EIO;
	}
	/* a reader of a store being written, or a writer waiting for a checkpointing reader */
	if (mode != DB_OPEN_CREATE)
		sqlite3_busy_timeout(d->h, 10000);
	*out = &d->base;
	return 0;
}
