/* test_db.c - the SQL driver (db.h) over SQLite: parameters and columns round trip (NULL, empty
 * and binary blobs, 64-bit extremes), errno mapping, RETURNING and ON CONFLICT, transactions,
 * engine operations (setup, checkpoint, check, read-only opening). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"

static char dir[64], path[128];
static db *d;

static void setup(void)
{
	strcpy(dir, "/tmp/tpdefs-db-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/t.db", dir);
	char err[256];
	cr_assert_eq(db_open_sqlite(path, DB_OPEN_CREATE, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_dialect(d), DB_SQLITE);
	cr_assert_eq(db_exec(d, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL UNIQUE,"
			     " b BLOB, s TEXT);"
			     "CREATE TABLE x(ino INTEGER NOT NULL, name BLOB NOT NULL, value BLOB NOT NULL,"
			     " PRIMARY KEY(ino, name)) WITHOUT ROWID;"), 0, "%s", db_errmsg(d));
}

static void teardown(void)
{
	db_close(d);
	d = NULL;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(db, .init = setup, .fini = teardown);

static db_stmt *prep(const char *sql)
{
	db_stmt *st = NULL;
	cr_assert_eq(db_prepare(d, sql, 0, &st), 0, "%s: %s", sql, db_errmsg(d));
	cr_assert_not_null(st);
	return st;
}

/* Insert (k, b, s) and return the id RETURNING gives. */
static int64_t ins(int64_t k, const void *b, size_t n, int null_blob, const char *s)
{
	db_stmt *st = prep("INSERT INTO t(k, b, s) VALUES(?1, ?2, ?3) RETURNING id");
	db_bind_i64(st, 1, k);
	if (null_blob)
		db_bind_null(st, 2);
	else
		db_bind_blob(st, 2, b, n);
	if (s)
		db_bind_text(st, 3, s);
	cr_assert_eq(db_step(st), DB_ROW, "%s", db_errmsg(d));
	int64_t id = db_col_i64(st, 0);
	cr_assert_eq(db_step(st), DB_DONE);
	db_finalize(st);
	return id;
}

Test(db, round_trip_null_empty_binary)
{
	static const unsigned char bin[] = {0, 1, 0, 0xff, 0x80, 0};
	int64_t a = ins(INT64_MIN, bin, sizeof(bin), 0, "text");
	int64_t b = ins(INT64_MAX, NULL, 0, 0, NULL); /* 0 bytes, no pointer: empty, not NULL */
	int64_t c = ins(0, "", 0, 0, NULL);
	int64_t n = ins(-1, NULL, 0, 1, NULL);
	cr_assert(a > 0 && b > a && c > b && n > c, "RETURNING ids %lld %lld %lld %lld",
		  (long long)a, (long long)b, (long long)c, (long long)n);

	db_stmt *st = prep("SELECT k, b, s, id FROM t WHERE id=?1");
	db_bind_i64(st, 1, a);
	cr_assert_eq(db_step(st), DB_ROW);
	cr_assert_eq(db_col_i64(st, 0), INT64_MIN);
	cr_assert_not(db_col_is_null(st, 1));
	cr_assert_eq(db_col_bytes(st, 1), sizeof(bin));
	cr_assert_eq(memcmp(db_col_blob(st, 1), bin, sizeof(bin)), 0);
	cr_assert_str_eq(db_col_text(st, 2), "text");
	cr_assert_eq(db_step(st), DB_DONE);

	for (int i = 0; i < 2; i++) { /* both spellings of an empty blob */
		db_reset(st);
		db_bind_i64(st, 1, i ? c : b);
		cr_assert_eq(db_step(st), DB_ROW);
		cr_assert_eq(db_col_i64(st, 0), i ? 0 : INT64_MAX);
		cr_assert_not(db_col_is_null(st, 1), "an empty blob read back as NULL");
		cr_assert_not_null(db_col_blob(st, 1));
		cr_assert_eq(db_col_bytes(st, 1), 0);
		cr_assert(db_col_is_null(st, 2));
		cr_assert_null(db_col_text(st, 2));
	}

	db_reset(st);
	db_bind_i64(st, 1, n);
	cr_assert_eq(db_step(st), DB_ROW);
	cr_assert(db_col_is_null(st, 1));
	cr_assert_null(db_col_blob(st, 1));
	cr_assert_eq(db_col_bytes(st, 1), 0);
	cr_assert_eq(db_col_i64(st, 0), -1);
	cr_assert_eq(db_col_i64(st, 2), 0); /* NULL reads as 0 */

	/* reset makes every parameter NULL again: id=NULL matches nothing */
	db_reset(st);
	cr_assert_eq(db_step(st), DB_DONE);
	db_finalize(st);
}

Test(db, constraint_is_eexist)
{
	ins(7, "a", 1, 0, NULL);
	db_stmt *st = prep("INSERT INTO t(k) VALUES(?1)");
	db_bind_i64(st, 1, 7);
	cr_assert_eq(db_step(st), -EEXIST);
	db_reset(st);
	db_bind_i64(st, 1, 8);
	cr_assert_eq(db_step(st), DB_DONE, "the statement runs again after a failure and a reset");
	db_finalize(st);
	st = prep("INSERT INTO t(k, b) VALUES(?1, ?2)"); /* k NOT NULL */
	cr_assert_eq(db_step(st), -EEXIST);
	db_finalize(st);
}

Test(db, returning_counts_changed_rows)
{
	for (int64_t k = 1; k <= 5; k++)
		ins(k, "x", 1, 0, NULL);
	db_stmt *st = prep("UPDATE t SET s='big' WHERE k>?1 RETURNING id");
	db_bind_i64(st, 1, 2);
	int n = 0, r;
	while ((r = db_step(st)) == DB_ROW)
		n++;
	cr_assert_eq(r, DB_DONE);
	cr_assert_eq(n, 3);
	db_finalize(st);
	st = prep("DELETE FROM t WHERE k=?1 RETURNING id");
	db_bind_i64(st, 1, 99);
	cr_assert_eq(db_step(st), DB_DONE, "nothing deleted: no row");
	db_reset(st);
	db_bind_i64(st, 1, 1);
	cr_assert_eq(db_step(st), DB_ROW);
	cr_assert_eq(db_step(st), DB_DONE);
	db_finalize(st);
}

Test(db, upsert_replaces_value)
{
	db_stmt *st = prep("INSERT INTO x(ino,name,value) VALUES(?1,?2,?3) "
			   "ON CONFLICT(ino, name) DO UPDATE SET value=excluded.value");
	const char *vals[] = {"first", "second", ""};
	for (int i = 0; i < 3; i++) {
		db_reset(st);
		db_bind_i64(st, 1, 5);
		db_bind_blob(st, 2, "user.a", 6);
		db_bind_blob(st, 3, vals[i], strlen(vals[i]));
		cr_assert_eq(db_step(st), DB_DONE, "%s", db_errmsg(d));
	}
	db_finalize(st);
	st = prep("SELECT count(*), max(length(value)) FROM x");
	cr_assert_eq(db_step(st), DB_ROW);
	cr_assert_eq(db_col_i64(st, 0), 1);
	cr_assert_eq(db_col_i64(st, 1), 0);
	db_finalize(st);
}

Test(db, bind_errors_reach_step)
{
	db_stmt *st = prep("SELECT ?1");
	db_bind_i64(st, 2, 1); /* no such parameter */
	db_bind_i64(st, 1, 1); /* a later good bind does not hide it */
	cr_assert_lt(db_step(st), 0);
	db_reset(st);
	db_bind_i64(st, 1, 42);
	cr_assert_eq(db_step(st), DB_ROW);
	cr_assert_eq(db_col_i64(st, 0), 42);
	db_finalize(st);
}

Test(db, prepare_errors)
{
	db_stmt *st = (db_stmt *)1;
	cr_assert_lt(db_prepare(d, "SELEC nonsense", 0, &st), 0);
	cr_assert_null(st);
	cr_assert_neq(db_errmsg(d)[0], 0);
	cr_assert_eq(db_prepare(d, "  ", 0, &st), -EINVAL);
	cr_assert_null(st);
	cr_assert_eq(db_prepare(d, "SELECT 1", DB_PREPARE_PERSISTENT, &st), 0);
	cr_assert_eq(db_step(st), DB_ROW);
	db_finalize(st);
	db_finalize(NULL);
	cr_assert_lt(db_exec(d, "CREATE TABLE t(a)"), 0, "exists already");
}

static int64_t count_t(void)
{
	db_stmt *st = prep("SELECT count(*) FROM t");
	cr_assert_eq(db_step(st), DB_ROW);
	int64_t n = db_col_i64(st, 0);
	db_finalize(st);
	return n;
}

Test(db, transactions)
{
	cr_assert_eq(db_begin(d), 0);
	ins(1, "a", 1, 0, NULL);
	cr_assert_eq(db_rollback(d), 0);
	cr_assert_eq(count_t(), 0);
	cr_assert_eq(db_begin(d), 0);
	ins(1, "a", 1, 0, NULL);
	cr_assert_eq(db_commit(d), 0);
	cr_assert_eq(count_t(), 1);
	cr_assert_lt(db_commit(d), 0, "no transaction open");
	/* an open transaction is rolled back by close */
	cr_assert_eq(db_begin(d), 0);
	ins(2, "b", 1, 0, NULL);
	db_close(d);
	char err[256];
	cr_assert_eq(db_open_sqlite(path, DB_OPEN_RW, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(count_t(), 1);
}

static off_t fsize(const char *suffix)
{
	char p[160];
	struct stat st;
	snprintf(p, sizeof(p), "%s%s", path, suffix);
	return stat(p, &st) == 0 ? st.st_size : -1;
}

Test(db, setup_check_checkpoint_readonly)
{
	db_close(d);
	char err[256], msg[128];
	cr_assert_eq(db_open_sqlite(path, DB_OPEN_RW, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_setup(d), 0, "%s", db_errmsg(d));
	ins(1, "a", 1, 0, NULL);
	cr_assert_gt(fsize("-wal"), 0, "db_setup turns the write-ahead log on");
	cr_assert_eq(db_check(d, 1, msg, sizeof(msg)), 0);
	cr_assert_str_eq(msg, "ok");
	cr_assert_eq(db_check(d, 0, msg, sizeof(msg)), 0);
	cr_assert_eq(db_reindex(d), 0);
	cr_assert_eq(db_checkpoint(d), 0);
	cr_assert_eq(fsize("-wal"), 0, "checkpoint truncates the log");
	db_close(d);
	d = NULL;
	cr_assert_eq(fsize("-wal"), -1, "the last close removes the log");

	/* read-only with no log content: immutable, no -wal/-shm appears, writes refused */
	cr_assert_eq(db_open_sqlite(path, DB_OPEN_RO, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(count_t(), 1);
	db_stmt *st = prep("INSERT INTO t(k) VALUES(2)");
	cr_assert_eq(db_step(st), -EROFS);
	db_finalize(st);
	cr_assert_eq(fsize("-wal"), -1);
	cr_assert_eq(fsize("-shm"), -1);
	db_close(d);
	d = NULL;

	/* missing file: no database is created, the engine says why */
	snprintf(path, sizeof(path), "%s/missing.db", dir);
	err[0] = 0;
	cr_assert_lt(db_open_sqlite(path, DB_OPEN_RW, &d, err, sizeof(err)), 0);
	cr_assert_null(d);
	cr_assert_neq(err[0], 0);
	cr_assert_neq(access(path, F_OK), 0);
}

/* ---- page checksums (db_sqlite_vfs.c) ------------------------------------------------------ */

#include <sqlite3.h>

#include "db_sqlite_vfs.h"

static uint8_t *slurp(size_t *n)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(*n);
	cr_assert_not_null(b);
	cr_assert_eq(fread(b, 1, *n, f), *n);
	fclose(f);
	return b;
}

static void spill(const uint8_t *b, size_t n)
{
	FILE *f = fopen(path, "r+b");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(b, 1, n, f), n);
	fclose(f);
}

/* The database on disk, every page of it checked the way a reader outside tpdefs would. */
static size_t bad_pages(const uint8_t *b, size_t n)
{
	size_t pg = ((size_t)b[16] << 8) | b[17], bad = 0;
	for (size_t i = 0; i + pg <= n; i += pg) {
		uint8_t s[DBVFS_RESERVE];
		dbvfs_page_sum(b + i, pg, (uint32_t)(i / pg) + 1, s);
		bad += memcmp(b + i + pg - DBVFS_RESERVE, s, DBVFS_RESERVE) != 0;
	}
	return bad;
}

/* Enough rows for several pages; returns the offset of a row's text in the file. */
static size_t fill_and_find(const char *needle)
{
	char s[64];
	for (int i = 0; i < 400; i++) {
		if (i == 321)
			snprintf(s, sizeof s, "%s", needle);
		else
			snprintf(s, sizeof s, "row-%04d-padding-padding-padding", i);
		ins(1000 + i, s, strlen(s), 0, s);
	}
	db_close(d);
	d = NULL;
	size_t n;
	uint8_t *b = slurp(&n);
	uint8_t *at = memmem(b, n, needle, strlen(needle));
	cr_assert_not_null(at, "row text not in the database file");
	size_t off = (size_t)(at - b);
	free(b);
	return off;
}

Test(db, page_sum_known_answer)
{
	/* 512 zero bytes, page 1: s1 stays 1, s2 adds it 126 times; the format is pinned here */
	uint8_t page[512] = {0}, s[8];
	dbvfs_page_sum(page, sizeof page, 1, s);
	const uint8_t want[8] = {1, 0, 0, 0, 126, 0, 0, 0};
	cr_assert_arr_eq(s, want, 8);
	page[0] = 1;
	dbvfs_page_sum(page, sizeof page, 1, s);
	const uint8_t want2[8] = {2, 0, 0, 0, 252, 0, 0, 0};
	cr_assert_arr_eq(s, want2, 8);
	dbvfs_page_sum(page, sizeof page, 2, s);
	cr_assert_neq(memcmp(s, want2, 8), 0, "the page number is part of the sum");
}

Test(db, new_database_keeps_page_checksums)
{
	fill_and_find("needle-row-text");
	size_t n;
	uint8_t *b = slurp(&n);
	cr_assert_eq(b[20], DBVFS_RESERVE, "a new database reserves room for a checksum a page");
	cr_assert_gt(n / 4096, 3);
	cr_assert_eq(bad_pages(b, n), 0, "every page on disk carries its checksum");
	free(b);
}

Test(db, flipped_bit_in_a_record_is_eio_and_check_names_it)
{
	size_t off = fill_and_find("needle-row-text");
	size_t n;
	uint8_t *b = slurp(&n);
	b[off + 3] ^= 0x08; /* "needle" -> "neudle": a valid record, a different value */
	spill(b, n);
	free(b);
	char err[256], msg[256];
	cr_assert_eq(db_open_sqlite(path, DB_OPEN_RW, &d, err, sizeof(err)), 0, "%s", err);
	db_stmt *st = prep("SELECT s FROM t WHERE k = 1321");
	cr_assert_eq(db_step(st), -EIO, "the damaged row is an error, not 'neudle'");
	db_finalize(st);
	cr_assert_eq(db_check(d, 0, msg, sizeof(msg)), 1);
	cr_assert_not_null(strstr(msg, "checksum"), "%s", msg);
	/* rows on other pages still read */
	st = prep("SELECT s FROM t WHERE k = 1000");
	cr_assert_eq(db_step(st), DB_ROW);
	db_finalize(st);
}

/* The test database replaced by one SQLite makes without the shim (no reserved bytes: a store
 * from before format 2), holding what sql creates. */
static void plain_db(const char *sql)
{
	db_close(d);
	d = NULL;
	unlink(path);
	sqlite3 *h;
	cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(h));
	sqlite3_close(h);
}

Test(db, database_without_reserved_bytes_passes_through)
{
	/* a store made before format 2: plain SQLite, no reserved bytes; read and written as is */
	plain_db("CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL UNIQUE, b BLOB, s TEXT);"
		 " INSERT INTO t(k, s) VALUES(7, 'old');");
	char err[256], msg[256];
	cr_assert_eq(db_open_sqlite(path, DB_OPEN_RW, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(count_t(), 1);
	ins(8, "x", 1, 0, "new");
	cr_assert_eq(db_check(d, 0, msg, sizeof(msg)), 0, "%s", msg);
	db_close(d);
	d = NULL;
	size_t n;
	uint8_t *b = slurp(&n);
	cr_assert_eq(b[20], 0, "an old database is not converted behind its owner's back");
	free(b);
	cr_assert_eq(db_open_sqlite(path, DB_OPEN_RO, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(count_t(), 2);
}

Test(db, page_cut_short_at_the_end_is_eio)
{
	fill_and_find("needle-row-text");
	size_t n;
	uint8_t *b = slurp(&n);
	free(b);
	cr_assert_eq(truncate(path, (off_t)n - 11), 0); /* the last page loses its tail */
	char err[256], msg[256];
	cr_assert_eq(db_open_sqlite(path, DB_OPEN_RW, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_check(d, 0, msg, sizeof(msg)), 1, "a zero-filled tail passed: %s", msg);
	cr_assert_not_null(strstr(msg, "checksum"), "%s", msg);
}

/* A connection that read page 1 before another one added page checksums (a VACUUM with reserved
 * bytes, committed in the WAL) must sum what its own checkpoint writes: it reads page 1 from the
 * WAL, never through the shim, so it looks at the header on disk when a checkpoint starts. */
static void ok_exec(sqlite3 *h, const char *q)
{
	cr_assert_eq(sqlite3_exec(h, q, NULL, NULL, NULL), SQLITE_OK, "%s: %s", q, sqlite3_errmsg(h));
}

Test(db, checkpoint_after_another_connection_added_sums)
{
	plain_db("PRAGMA journal_mode=WAL; CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);"
		 "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<2000)"
		 " INSERT INTO t SELECT i, randomblob(100) FROM c;");
	sqlite3 *g, *u;
	cr_assert_eq(sqlite3_open_v2(path, &g, SQLITE_OPEN_READWRITE, dbvfs_name()), SQLITE_OK);
	cr_assert_eq(sqlite3_open_v2(path, &u, SQLITE_OPEN_READWRITE, dbvfs_name()), SQLITE_OK);
	ok_exec(g, "SELECT count(*) FROM t");
	int n = DBVFS_RESERVE;
	ok_exec(u, "PRAGMA wal_autocheckpoint=0");
	cr_assert_eq(sqlite3_file_control(u, "main", SQLITE_FCNTL_RESERVE_BYTES, &n), SQLITE_OK);
	ok_exec(u, "VACUUM");
	ok_exec(g, "PRAGMA wal_autocheckpoint=0; BEGIN IMMEDIATE; SELECT count(*) FROM t;");
	cr_assert_eq(sqlite3_wal_checkpoint_v2(u, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL),
		     SQLITE_OK);
	ok_exec(g, "UPDATE t SET v = randomblob(100) WHERE k BETWEEN 1000 AND 1010; COMMIT;");
	cr_assert_eq(sqlite3_wal_checkpoint_v2(g, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL),
		     SQLITE_OK);
	sqlite3_close(g);
	sqlite3_close(u);
	size_t sz;
	uint8_t *bytes = slurp(&sz);
	cr_assert_eq(bytes[20], DBVFS_RESERVE);
	cr_assert_eq(bad_pages(bytes, sz), 0, "pages written without their sum");
	free(bytes);
	char err[256], msg[256];
	cr_assert_eq(db_open_sqlite(path, DB_OPEN_RW, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_check(d, 0, msg, sizeof(msg)), 0, "%s", msg);
}

Test(db, add_page_sums_needs_wal_and_new_database_sums_every_page)
{
	/* rollback mode: refused (a failed VACUUM would roll pages back through the shim) */
	plain_db("CREATE TABLE t(x)");
	char err[256];
	cr_assert_eq(db_open_sqlite(path, DB_OPEN_RW, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_add_page_sums(d), -EINVAL);
	cr_assert_eq(db_page_sums(d), 0);
	db_close(d);
	d = NULL;
	/* a new database whose first transaction spills pages before page 1 is written */
	unlink(path);
	cr_assert_eq(db_open_sqlite(path, DB_OPEN_CREATE, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(db_exec(d, "PRAGMA cache_size=10; BEGIN; CREATE TABLE big(k INTEGER PRIMARY "
			     "KEY, v BLOB); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 "
			     "FROM c WHERE i<3000) INSERT INTO big SELECT i, randomblob(300) FROM c;"
			     " COMMIT;"), 0, "%s", db_errmsg(d));
	db_close(d);
	d = NULL;
	size_t n;
	uint8_t *bytes = slurp(&n);
	cr_assert_gt(n / 4096, 100);
	cr_assert_eq(bad_pages(bytes, n), 0, "pages written before page 1 without their sum");
	free(bytes);
}
