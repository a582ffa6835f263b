/* db.c - the driver-independent half of db.h: each call goes to the connection's engine
 * (struct db_ops, db_driver.h). A failed bind is kept on the statement and reported by the next
 * db_step, so callers check once per step, not once per parameter. */
#include "db_driver.h"

#include <errno.h>

#include <stddef.h>

void db_close(db *d)
{
	if (d)
		d->ops->close(d);
}

int db_setup(db *d)
{
	return d->ops->setup(d);
}

int db_dialect(const db *d)
{
	return d->ops->dialect;
}

const char *db_errmsg(db *d)
{
	return d->ops->errmsg(d);
}

int db_begin(db *d)
{
	return d->ops->begin(d);
}

int db_commit(db *d)
{
	return d->ops->commit(d);
}

int db_rollback(db *d)
{
	return d->ops->rollback(d);
}

int db_check(db *d, int max_problems, char *msg, size_t len)
{
	return d->ops->check(d, max_problems, msg, len);
}

int db_reindex(db *d)
{
	return d->ops->reindex(d);
}

int db_checkpoint(db *d)
{
	return d->ops->checkpoint(d);
}

int db_page_sums(db *d)
{
	return d->ops->page_sums ? d->ops->page_sums(d) : -EOPNOTSUPP;
}

int db_add_page_sums(db *d)
{
	return d->ops->add_page_sums ? d->ops->add_page_sums(d) : -EOPNOTSUPP;
}

int db_page_verify(db *d, int on)
{
	return d->ops->page_verify ? d->ops->page_verify(d, on) : -EOPNOTSUPP;
}

int db_damaged(db *d)
{
	return d->ops->damaged ? d->ops->damaged(d) : 0;
}

int db_exec(db *d, const char *sql)
{
	return d->ops->exec(d, sql);
}

int db_prepare(db *d, const char *sql, unsigned flags, db_stmt **st)
{
	*st = NULL;
	return d->ops->prepare(d, sql, flags, st);
}

void db_reset(db_stmt *st)
{
	st->d->ops->reset(st);
	st->err = 0;
}

void db_finalize(db_stmt *st)
{
	if (st)
		st->d->ops->finalize(st);
}

/* Keep the first failure: a later bind must not hide it. */
static void bind_result(db_stmt *st, int r)
{
	if (r < 0 && !st->err)
		st->err = r;
}

void db_bind_i64(db_stmt *st, int idx, int64_t v)
{
	bind_result(st, st->d->ops->bind_i64(st, idx, v));
}

void db_bind_blob(db_stmt *st, int idx, const void *p, size_t n)
{
	bind_result(st, st->d->ops->bind_blob(st, idx, p, n));
}

void db_bind_text(db_stmt *st, int idx, const char *s)
{
	bind_result(st, st->d->ops->bind_text(st, idx, s));
}

void db_bind_null(db_stmt *st, int idx)
{
	bind_result(st, st->d->ops->bind_null(st, idx));
}

int db_step(db_stmt *st)
{
	if (st->err)
		return st->err;
	return st->d->ops->step(st);
}

int64_t db_col_i64(db_stmt *st, int col)
{
	return st->d->ops->col_i64(st, col);
}

int db_col_is_null(db_stmt *st, int col)
{
	return st->d->ops->col_is_null(st, col);
}

const void *db_col_blob(db_stmt *st, int col)
{
	return st->d->ops->col_blob(st, col);
}

size_t db_col_bytes(db_stmt *st, int col)
{
	return st->d->ops->col_bytes(st, col);
}

const char *db_col_text(db_stmt *st, int col)
{
	return st->d->ops->col_text(st, col);
}
