/* db_driver.h - what an engine driver (db_sqlite.c, later db_pg.c) fills in behind db.h. Only
 * db.c and the drivers include it; the store sees the opaque handles of db.h. */
#ifndef TPDEFS_DB_DRIVER_H
#define TPDEFS_DB_DRIVER_H

#include "db.h"

/* One table per engine. Binds return 0 or -errno (db.c keeps the first failure for db_step);
 * everything else is as in db.h. */
struct db_ops {
	int dialect; /* DB_SQLITE, DB_PG */
	void (*close)(db *d);
	int (*setup)(db *d);
	const char *(*errmsg)(db *d);
	int (*begin)(db *d);
	int (*commit)(db *d);
	int (*rollback)(db *d);
	int (*check)(db *d, int max_problems, char *msg, size_t len);
	int (*reindex)(db *d);
	int (*checkpoint)(db *d);
	int (*page_sums)(db *d);     /* NULL: the engine has no pages of ours (-EOPNOTSUPP) */
	int (*add_page_sums)(db *d);
	int (*page_verify)(db *d, int on);
	int (*damaged)(db *d);           /* NULL: never */
	int (*exec)(db *d, const char *sql);
	int (*prepare)(db *d, const char *sql, unsigned flags, db_stmt **st);
	void (*reset)(db_stmt *st);
	void (*finalize)(db_stmt *st);
	int (*bind_i64)(db_stmt *st, int idx, int64_t v);
	int (*bind_blob)(db_stmt *st, int idx, const void *p, size_t n);
	int (*bind_text)(db_stmt *st, int idx, const char *s);
	int (*bind_null)(db_stmt *st, int idx);
	int (*step)(db_stmt *st);
	int64_t (*col_i64)(db_stmt *st, int col);
	int (*col_is_null)(db_stmt *st, int col);
	const void *(*col_blob)(db_stmt *st, int col);
	size_t (*col_bytes)(db_stmt *st, int col);
	const char *(*col_text)(db_stmt *st, int col);
};

/* The first member of every driver's connection and statement (the driver's own struct starts
 * with it, so a pointer to either is a pointer to the other). */
struct db {
	const struct db_ops *ops;
};

struct db_stmt {
	db *d;
	int err; /* first failed bind since the last reset (-errno), reported by db_step */
};

#endif
