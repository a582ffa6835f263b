/* db_pg.c - the PostgreSQL driver behind db.h (libpq).
 *
 * Statements: the store's portable SQL with ?N placeholders is rewritten to $N and prepared on
 * the server at its first run, with the parameter types of that run (int8, bytea, text; NULL
 * leaves the type to the server). Parameters go in binary (int8 big-endian, bytea raw), results
 * come back as text: integers of any width (sum() is numeric in PostgreSQL) parse alike, bytea
 * columns are unescaped on demand.
 *
 * Transactions: db_begin also takes a transaction-scoped advisory lock, so metadata writers of
 * every node run one at a time, as SQLite's single writer does for one node; reads outside a
 * transaction see what was committed before they started (READ COMMITTED).
 *
 * A lost connection (server restart, network): the statement fails with -EIO after the driver
 * tried to reconnect for up to DB_PG_RETRY_S seconds. A transaction in progress is lost with the
 * connection, so the store's transaction fails and is retried by its caller or reported as EIO;
 * server-side prepared statements are prepared again on the new connection.
 */
#include "db_pg.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db_driver.h"

#define DB_PG_MAX_PARAMS 16
#define DB_PG_RETRY_S 30         /* how long a lost connection is retried before -EIO */
#define DB_PG_WRITER_LOCK 0x7470646566734c4bLL /* "tpdefsLK": the cluster-wide writer lock */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25

typedef struct pg_db {
	struct db base;
	PGconn *c;
	char *conninfo;
	unsigned gen;            /* bumped on every reconnect: statements prepare again */
	unsigned next_name;
	int in_tx;
	struct {
		int64_t key;
		int shared;
	} held[4];               /* session advisory locks held for the connection's life */
	int nheld, lost_held;    /* lost: another session took one while we reconnected */
	char err[512];
} pg_db;

typedef struct pg_stmt {
	struct db_stmt base;
	char name[24];
	char *sql;               /* with $N placeholders */
	int nparams;
	unsigned prepared_gen;   /* 0: not prepared on this connection */
	Oid types[DB_PG_MAX_PARAMS], ptypes[DB_PG_MAX_PARAMS];
	const char *vals[DB_PG_MAX_PARAMS];
	int lens[DB_PG_MAX_PARAMS], fmts[DB_PG_MAX_PARAMS];
	uint64_t i64[DB_PG_MAX_PARAMS]; /* storage of big-endian integers */
	PGresult *res;
	int row, nrows, ran;
	unsigned char *blob;     /* last unescaped bytea (freed at the next column call / step) */
	size_t blob_len;
} pg_stmt;

static const struct db_ops pg_ops;

static void set_err(pg_db *d, const char *what, const char *msg)
{
	snprintf(d->err, sizeof(d->err), "%s%s%s", what, msg && *msg ? ": " : "", msg ? msg : "");
	/* libpq messages end in a newline; messages here are one line */
	size_t n = strlen(d->err);
	while (n && (d->err[n - 1] == '\n' || d->err[n - 1] == ' '))
		d->err[--n] = 0;
}

/* SQLSTATE -> -errno (docs: Appendix A, PostgreSQL Error Codes). */
static int sqlstate_errno(const char *st)
{
	if (!st)
		return -EIO;
	if (!strncmp(st, "23", 2))
		return -EEXIST;        /* integrity constraint violation */
	if (!strcmp(st, "40001") || !strcmp(st, "40P01") || !strcmp(st, "55P03"))
		return -EBUSY;         /* serialization failure, deadlock, lock not available */
	if (!strcmp(st, "53100"))
		return -ENOSPC;        /* disk full */
	if (!strcmp(st, "53200"))
		return -ENOMEM;
	if (!strcmp(st, "25006"))
		return -EROFS;         /* read-only transaction */
	if (!strncmp(st, "08", 2) || !strncmp(st, "57P", 3))
		return -ENOTCONN;      /* connection exception, server shutting down */
	return -EIO;
}

static int64_t mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* pg_try_advisory_lock[_shared](key): 1 taken, 0 not, -EIO. */
static int try_lock_mode(pg_db *d, int64_t key, int shared)
{
	char sql[96];
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock%s(%lld)", shared ? "_shared" : "",
		 (long long)key);
	PGresult *res = PQexec(d->c, sql);
	int r = -EIO;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		r = !strcmp(PQgetvalue(res, 0, 0), "t");
	else
		set_err(d, "PostgreSQL advisory lock", res ? PQresultErrorMessage(res) : "");
	PQclear(res);
	return r;
}

static int try_lock(pg_db *d, int64_t key)
{
	return try_lock_mode(d, key, 0);
}

static void unlock_mode(pg_db *d, int64_t key, int shared)
{
	char sql[96];
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock%s(%lld)", shared ? "_shared" : "",
		 (long long)key);
	PQclear(PQexec(d->c, sql));
}

/* Bring a broken connection back (bounded); 0 or -EIO. A transaction in progress is gone. */
static int reconnect(pg_db *d)
{
	/* TPDEFS_PG_RETRY_S shortens (or lengthens) the wait, e.g. for tests of a server outage */
	const char *env = getenv("TPDEFS_PG_RETRY_S");
	long retry = env ? strtol(env, NULL, 10) : DB_PG_RETRY_S;
	if (retry < 0 || retry > 3600)
		retry = DB_PG_RETRY_S;
	int64_t until = mono_s() + retry;
	unsigned delay_ms = 100;
	for (;;) {
		PQreset(d->c);
		if (PQstatus(d->c) == CONNECTION_OK) {
			d->gen++;
			d->in_tx = 0;
			for (int i = 0; i < d->nheld; i++)
				if (try_lock_mode(d, d->held[i].key, d->held[i].shared) != 1) {
					/* another session took what this one held: it must not
					 * go on as if nothing happened */
					d->lost_held = 1;
					set_err(d, "PostgreSQL", "lost a store lock to another session "
						"while reconnecting");
					return -EIO;
				}
			return 0;
		}
		if (mono_s() >= until)
			break;
		struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		if (delay_ms < 2000)
			delay_ms *= 2;
	}
	set_err(d, "PostgreSQL server unreachable", PQerrorMessage(d->c));
	return -EIO;
}

/* The result of a command: 0, or -errno with the message kept. A lost connection is brought
 * back (the command itself is not repeated: -ENOTCONN tells the caller it did not run). */
static int result_err(pg_db *d, PGresult *res, const char *what)
{
	ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return 0;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	set_err(d, what, res ? PQresultErrorMessage(res) : PQerrorMessage(d->c));
	int r = sqlstate_errno(state);
	if (PQstatus(d->c) != CONNECTION_OK) {
		int in_tx = d->in_tx;
		if (reconnect(d) < 0)
			return -EIO;
		r = in_tx ? -EIO : -ENOTCONN; /* a transaction's work is lost with the connection */
	}
	return r;
}

/* The server's NOTICEs (e.g. "already exists, skipping") are not errors and not for stderr. */
static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

int db_open_pg(const char *conninfo, db **out, char *err, size_t errlen)
{
	*out = NULL;
	pg_db *d = calloc(1, sizeof(*d));
	if (!d || !(d->conninfo = strdup(conninfo))) {
		free(d);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->base.ops = &pg_ops;
	d->gen = 1;
	d->c = PQconnectdb(conninfo);
	if (d->c)
		PQsetNoticeProcessor(d->c, quiet_notice, NULL);
	if (!d->c || PQstatus(d->c) != CONNECTION_OK) {
		/* libpq's message names host and user, never the password */
		const char *m = d->c ? PQerrorMessage(d->c) : "out of memory";
		snprintf(err, errlen, "%s", m);
		size_t n = strlen(err);
		while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
			err[--n] = 0;
		PQfinish(d->c);
		free(d->conninfo);
		free(d);
		return -EIO;
	}
	*out = &d->base;
	return 0;
}

static int pg_exec_raw(pg_db *d, const char *sql)
{
	if (d->lost_held)
		return -EIO;
	PGresult *res = PQexec(d->c, sql);
	int r = result_err(d, res, "PostgreSQL");
	PQclear(res);
	if (r == -ENOTCONN) { /* the connection was back: run it once more */
		res = PQexec(d->c, sql);
		r = result_err(d, res, "PostgreSQL");
		PQclear(res);
		if (r == -ENOTCONN)
			r = -EIO;
	}
	return r;
}

static void pg_close(db *b)
{
	pg_db *d = (pg_db *)b;
	if (!d)
		return;
	PQfinish(d->c);
	free(d->conninfo);
	free(d);
}

static int pg_setup(db *b)
{
	(void)b;
	return 0; /* durability is the server's (synchronous_commit as configured) */
}

static const char *pg_errmsg(db *b)
{
	return ((pg_db *)b)->err;
}

static int pg_begin(db *b)
{
	pg_db *d = (pg_db *)b;
	char sql[96];
	snprintf(sql, sizeof(sql), "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
		 (long long)DB_PG_WRITER_LOCK);
	int r = pg_exec_raw(d, sql);
	if (r == 0)
		d->in_tx = 1;
	else
		pg_exec_raw(d, "ROLLBACK");
	return r;
}

static int pg_commit(db *b)
{
	pg_db *d = (pg_db *)b;
	int r = pg_exec_raw(d, "COMMIT");
	d->in_tx = 0;
	return r;
}

static int pg_rollback(db *b)
{
	pg_db *d = (pg_db *)b;
	int r = d->in_tx ? pg_exec_raw(d, "ROLLBACK") : 0;
	d->in_tx = 0;
	return r;
}

static int pg_check(db *b, int max_problems, char *msg, size_t len)
{
	(void)max_problems;
	pg_db *d = (pg_db *)b;
	/* the server keeps its own structures consistent (WAL, checksums if enabled); what can be
	 * checked from here is that it answers */
	int r = pg_exec_raw(d, "SELECT 1");
	snprintf(msg, len, "%s", r == 0 ? "ok" : d->err);
	return r == 0 ? 0 : r;
}

static int pg_reindex(db *b)
{
	(void)b;
	return 0;
}

static int pg_checkpoint(db *b)
{
	(void)b;
	return 0; /* the server manages its WAL */
}

static int pg_exec(db *b, const char *sql)
{
	return pg_exec_raw((pg_db *)b, sql);
}

static int pg_prepare(db *b, const char *sql, unsigned flags, db_stmt **out)
{
	(void)flags;
	pg_db *d = (pg_db *)b;
	*out = NULL;
	pg_stmt *s = calloc(1, sizeof(*s));
	size_t n = strlen(sql);
	char *q = malloc(n + 16);
	if (!s || !q) {
		free(s);
		free(q);
		return -ENOMEM;
	}
	/* ?N -> $N; ? inside a quoted literal stays */
	size_t k = 0;
	int quoted = 0, maxp = 0;
	for (size_t i = 0; i < n; i++) {
		char c = sql[i];
		if (c == '\'')
			quoted = !quoted;
		if (c == '?' && !quoted && i + 1 < n && sql[i + 1] >= '0' && sql[i + 1] <= '9') {
			int v = 0;
			size_t j = i + 1;
			while (j < n && sql[j] >= '0' && sql[j] <= '9')
				v = v * 10 + (sql[j++] - '0');
			if (v < 1 || v > DB_PG_MAX_PARAMS) {
				free(q);
				free(s);
				set_err(d, "statement has too many parameters", sql);
				return -EINVAL;
			}
			if (v > maxp)
				maxp = v;
			q[k++] = '$';
			continue; /* the digits are copied next */
		}
		q[k++] = c;
	}
	q[k] = 0;
	s->base.d = b;
	s->sql = q;
	s->nparams = maxp;
	snprintf(s->name, sizeof(s->name), "s%u", ++d->next_name);
	*out = &s->base;
	return 0;
}

static void drop_result(pg_stmt *s)
{
	PQclear(s->res);
	s->res = NULL;
	s->row = s->nrows = s->ran = 0;
	PQfreemem(s->blob);
	s->blob = NULL;
	s->blob_len = 0;
}

static void pg_reset(db_stmt *b)
{
	pg_stmt *s = (pg_stmt *)b;
	drop_result(s);
	for (int i = 0; i < DB_PG_MAX_PARAMS; i++) {
		s->vals[i] = NULL;
		s->lens[i] = 0;
		s->fmts[i] = 0;
		s->types[i] = 0;
	}
}

static void pg_finalize(db_stmt *b)
{
	pg_stmt *s = (pg_stmt *)b;
	if (!s)
		return;
	pg_reset(b);
	pg_db *d = (pg_db *)b->d;
	if (s->prepared_gen == d->gen && PQstatus(d->c) == CONNECTION_OK) {
		char sql[48];
		snprintf(sql, sizeof(sql), "DEALLOCATE %s", s->name);
		PQclear(PQexec(d->c, sql));
	}
	free(s->sql);
	free(s);
}

static int check_idx(pg_stmt *s, int idx)
{
	return idx >= 1 && idx <= s->nparams && idx <= DB_PG_MAX_PARAMS ? 0 : -ERANGE;
}

static int pg_bind_i64(db_stmt *b, int idx, int64_t v)
{
	pg_stmt *s = (pg_stmt *)b;
	if (check_idx(s, idx) < 0)
		return -ERANGE;
	int i = idx - 1;
	s->i64[i] = htobe64((uint64_t)v);
	s->vals[i] = (const char *)&s->i64[i];
	s->lens[i] = 8;
	s->fmts[i] = 1;
	s->types[i] = OID_INT8;
	return 0;
}

static int pg_bind_blob(db_stmt *b, int idx, const void *p, size_t n)
{
	pg_stmt *s = (pg_stmt *)b;
	if (check_idx(s, idx) < 0 || n > INT32_MAX)
		return -ERANGE;
	int i = idx - 1;
	static const char empty[1] = {0};
	s->vals[i] = n ? p : empty; /* non-NULL: an empty value, not SQL NULL */
	s->lens[i] = (int)n;
	s->fmts[i] = 1;
	s->types[i] = OID_BYTEA;
	return 0;
}

static int pg_bind_text(db_stmt *b, int idx, const char *t)
{
	pg_stmt *s = (pg_stmt *)b;
	if (check_idx(s, idx) < 0)
		return -ERANGE;
	int i = idx - 1;
	s->vals[i] = t;
	s->lens[i] = 0;
	s->fmts[i] = 0;
	s->types[i] = OID_TEXT;
	return 0;
}

static int pg_bind_null(db_stmt *b, int idx)
{
	pg_stmt *s = (pg_stmt *)b;
	if (check_idx(s, idx) < 0)
		return -ERANGE;
	int i = idx - 1;
	s->vals[i] = NULL;
	s->lens[i] = 0;
	s->fmts[i] = 0;
	s->types[i] = 0;
	return 0;
}

/* Prepare on the server for this connection and these parameter types. */
static int ensure_prepared(pg_db *d, pg_stmt *s)
{
	int same = s->prepared_gen == d->gen;
	for (int i = 0; same && i < s->nparams; i++)
		if (s->types[i] && s->ptypes[i] && s->types[i] != s->ptypes[i])
			same = 0;
	if (same)
		return 0;
	if (s->prepared_gen == d->gen) {
		/* other parameter types than at its first run: a statement of its own */
		snprintf(s->name, sizeof(s->name), "s%u", ++d->next_name);
	}
	for (int i = 0; i < s->nparams; i++)
		s->ptypes[i] = s->types[i];
	PGresult *res = PQprepare(d->c, s->name, s->sql, s->nparams, s->ptypes);
	int r = result_err(d, res, "PostgreSQL prepare");
	PQclear(res);
	if (r == 0)
		s->prepared_gen = d->gen;
	return r;
}

static int pg_step(db_stmt *b)
{
	pg_stmt *s = (pg_stmt *)b;
	pg_db *d = (pg_db *)b->d;
	PQfreemem(s->blob);
	s->blob = NULL;
	if (d->lost_held)
		return -EIO;
	if (!s->ran) {
		int r = -ENOTCONN;
		for (int attempt = 0; attempt < 2 && r == -ENOTCONN; attempt++) {
			r = ensure_prepared(d, s);
			if (r == 0) {
				PGresult *res = PQexecPrepared(d->c, s->name, s->nparams, s->vals,
							       s->lens, s->fmts, 0);
				r = result_err(d, res, "PostgreSQL");
				if (r == 0)
					s->res = res;
				else
					PQclear(res);
			}
		}
		if (r == -ENOTCONN)
			r = -EIO;
		if (r < 0)
			return r;
		s->ran = 1;
		s->row = -1;
		s->nrows = PQntuples(s->res);
	}
	if (s->row + 1 < s->nrows) {
		s->row++;
		return DB_ROW;
	}
	s->row = s->nrows;
	return DB_DONE;
}

static int has_cell(pg_stmt *s, int col)
{
	return s->res && s->row >= 0 && s->row < s->nrows && col >= 0 && col < PQnfields(s->res) &&
	       !PQgetisnull(s->res, s->row, col);
}

static int64_t pg_col_i64(db_stmt *b, int col)
{
	pg_stmt *s = (pg_stmt *)b;
	if (!has_cell(s, col))
		return 0;
	const char *v = PQgetvalue(s->res, s->row, col);
	if (!strcmp(v, "t"))
		return 1; /* boolean */
	return strtoll(v, NULL, 10);
}

static int pg_col_is_null(db_stmt *b, int col)
{
	pg_stmt *s = (pg_stmt *)b;
	return !has_cell(s, col);
}

static const void *pg_col_blob(db_stmt *b, int col)
{
	pg_stmt *s = (pg_stmt *)b;
	PQfreemem(s->blob);
	s->blob = NULL;
	s->blob_len = 0;
	if (!has_cell(s, col))
		return NULL;
	const char *v = PQgetvalue(s->res, s->row, col);
	if (PQftype(s->res, col) != OID_BYTEA) {
		s->blob_len = (size_t)PQgetlength(s->res, s->row, col);
		return v;
	}
	s->blob = PQunescapeBytea((const unsigned char *)v, &s->blob_len);
	static const unsigned char empty[1] = {0};
	return s->blob ? (const void *)s->blob : (const void *)empty;
}

static size_t pg_col_bytes(db_stmt *b, int col)
{
	pg_stmt *s = (pg_stmt *)b;
	if (!has_cell(s, col))
		return 0;
	if (PQftype(s->res, col) != OID_BYTEA)
		return (size_t)PQgetlength(s->res, s->row, col);
	if (!s->blob)
		pg_col_blob(b, col);
	return s->blob_len;
}

static const char *pg_col_text(db_stmt *b, int col)
{
	pg_stmt *s = (pg_stmt *)b;
	return has_cell(s, col) ? PQgetvalue(s->res, s->row, col) : NULL;
}

static const struct db_ops pg_ops = {
	.dialect = DB_PG,
	.close = pg_close,
	.setup = pg_setup,
	.errmsg = pg_errmsg,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.check = pg_check,
	.reindex = pg_reindex,
	.checkpoint = pg_checkpoint,
	.exec = pg_exec,
	.prepare = pg_prepare,
	.reset = pg_reset,
	.finalize = pg_finalize,
	.bind_i64 = pg_bind_i64,
	.bind_blob = pg_bind_blob,
	.bind_text = pg_bind_text,
	.bind_null = pg_bind_null,
	.step = pg_step,
	.col_i64 = pg_col_i64,
	.col_is_null = pg_col_is_null,
	.col_blob = pg_col_blob,
	.col_bytes = pg_col_bytes,
	.col_text = pg_col_text,
};

int db_pg_hold_lock(db *b, int64_t key, int shared)
{
	pg_db *d = (pg_db *)b;
	if (b->ops != &pg_ops || d->nheld >= 4)
		return -EINVAL;
	int r = try_lock_mode(d, key, shared);
	if (r == 1) {
		d->held[d->nheld].key = key;
		d->held[d->nheld].shared = shared;
		d->nheld++;
	}
	return r;
}

void db_pg_release_lock(db *b, int64_t key, int shared)
{
	pg_db *d = (pg_db *)b;
	if (b->ops != &pg_ops)
		return;
	for (int i = 0; i < d->nheld; i++)
		if (d->held[i].key == key && d->held[i].shared == shared) {
			d->held[i] = d->held[--d->nheld];
			unlock_mode(d, key, shared);
			return;
		}
}

int db_pg_lock_taken(db *b, int64_t key)
{
	pg_db *d = (pg_db *)b;
	if (b->ops != &pg_ops)
		return -EINVAL;
	int r = try_lock(d, key);
	if (r == 1) {
		unlock_mode(d, key, 0);
		return 0;
	}
	return r == 0 ? 1 : r;
}

int db_pg_lock_wait(db *b, int64_t key)
{
	pg_db *d = (pg_db *)b;
	if (b->ops != &pg_ops)
		return -EINVAL;
	char sql[80];
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%lld)", (long long)key);
	return pg_exec_raw(d, sql);
}

void db_pg_unlock(db *b, int64_t key)
{
	pg_db *d = (pg_db *)b;
	if (b->ops == &pg_ops)
		unlock_mode(d, key, 0);
}
