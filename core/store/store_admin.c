/* store_admin.c - maintenance queries over the store (gc, verify, stats). Uses the store's
 * connection and mutex like store.c; statements are prepared per call (these are rare). */
#include "store_admin.h"
#include "store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


/* Column 0 of every row of sql, ?1..?nb bound to b[] (lock held). Prepared per call: these
 * queries are rare. */
static int ids_bound(store *s, const char *sql, const int64_t *b, int nb, uint64_t **ids,
		     size_t *n)
{
	db_stmt *st;
	*ids = NULL;
	*n = 0;
	if (db_prepare(s->db, sql, 0, &st) < 0)
		return -EIO;
	for (int i = 0; i < nb; i++)
		db_bind_i64(st, i + 1, b[i]);
	int r = store_collect_ids(s, st, ids, n);
	db_finalize(st);
	return r;
}

/* ids_bound taking the lock. */
static int admin_ids(store *s, const char *sql, const int64_t *b, int nb, uint64_t **ids,
		     size_t *n)
{
	store_lock(s);
	int r = ids_bound(s, sql, b, nb, ids, n);
	store_unlock(s);
	return r;
}

int store_admin_inodes_of_obj(store *s, uint64_t obj, uint64_t **inos, size_t *n)
{
	int64_t b[] = {(int64_t)obj};
	return admin_ids(s, "SELECT ino FROM inodes WHERE obj=?1 ORDER BY ino", b, 1, inos, n);
}

int store_admin_first_inode_of_obj(store *s, uint64_t obj, uint64_t *ino)
{
	int64_t b[] = {(int64_t)obj};
	uint64_t *v;
	size_t n;
	*ino = 0;
	int r = admin_ids(s, "SELECT ino FROM inodes WHERE obj=?1 ORDER BY ino LIMIT 1", b, 1, &v,
			  &n);
	if (r < 0)
		return r;
	if (n)
		*ino = v[0];
	free(v);
	return 0;
}

int store_admin_inode_objs(store *s, uint64_t **objs, size_t *n)
{
	return admin_ids(s, "SELECT obj FROM inodes WHERE obj IS NOT NULL AND obj<>0 ORDER BY ino",
			 NULL, 0, objs, n);
}

int store_admin_dangling_obj_refs(store *s, uint64_t **inos, size_t *n)
{
	/* objects.id is the primary key (never NULL), so NOT IN means "no such row" */
	return admin_ids(s, "SELECT ino FROM inodes WHERE obj IS NOT NULL AND obj NOT IN "
			 "(SELECT id FROM objects) ORDER BY obj, ino", NULL, 0, inos, n);
}

int store_admin_dangling_pred_hints(store *s, uint64_t **inos, size_t *n)
{
	return admin_ids(s, "SELECT ino FROM inodes WHERE pred_hint IS NOT NULL AND pred_hint NOT IN "
			 "(SELECT id FROM objects) ORDER BY pred_hint, ino", NULL, 0, inos, n);
}

int store_admin_files_without_data(store *s, uint64_t **inos, size_t *n)
{
	int64_t b[] = {S_IFMT, S_IFREG};
	return admin_ids(s, "SELECT ino FROM inodes WHERE (mode & ?1)=?2 AND size>0 AND staged=0 "
			 "AND obj IS NULL AND nlink>0 ORDER BY ino", b, 2, inos, n);
}

int store_admin_objects(store *s, store_obj **objs, size_t *n)
{
	*objs = NULL;
	*n = 0;
	store_lock(s);
	db_stmt *st;
	int r = -EIO;
	if (db_prepare(s->db, "SELECT id, base, depth, size, stored, hash, unref FROM objects "
		       "ORDER BY id", 0, &st) == 0) {
		size_t cap = 0;
		int rc;
		r = 0;
		while ((rc = db_step(st)) == DB_ROW) {
			if (*n == cap) {
				size_t c = cap ? cap * 2 : 64;
				store_obj *p = realloc(*objs, c * sizeof(*p));
				if (!p) {
					r = -ENOMEM;
					break;
				}
				*objs = p;
				cap = c;
			}
			store_obj *o = &(*objs)[(*n)++];
			store_obj_from_row(st, o);
		}
		if (r == 0 && rc != DB_DONE)
			r = rc;
		db_finalize(st);
	}
	store_unlock(s);
	if (r < 0) {
		free(*objs);
		*objs = NULL;
		*n = 0;
	}
	return r;
}

int store_admin_obj_exists(store *s, uint64_t id)
{
	store_obj o;
	int r = store_obj_get(s, id, &o);
	if (r == -ENOENT)
		r = store_trash_get(s, id, &o); /* a shared store's blob in its grace period */
	return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

/* Run sql with ?1 = a, ?2 = b (lock held). */
static int exec2(store *s, const char *sql, uint64_t a, uint64_t b)
{
	db_stmt *st;
	if (db_prepare(s->db, sql, 0, &st) < 0)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)a);
	db_bind_i64(st, 2, (int64_t)b);
	int r = store_step_done(s, st);
	db_finalize(st);
	return r;
}

static int ids_of(store *s, const char *sql, uint64_t a, uint64_t **ids, size_t *n)
{
	int64_t b[] = {(int64_t)a};
	return ids_bound(s, sql, b, 1, ids, n);
}

/* 1 if obj's chain of bases passes through anc, 0 if not, -errno. Bounded: a damaged table with a
 * cycle ends the walk instead of looping. */
static int base_descends(store *s, uint64_t obj, uint64_t anc)
{
	db_stmt *st;
	if (db_prepare(s->db,
		       "WITH RECURSIVE a(id, n) AS (SELECT ?1, 0 UNION ALL SELECT o.base, a.n+1 "
		       "FROM objects o JOIN a ON o.id=a.id WHERE o.base IS NOT NULL AND "
		       "o.base<>0 AND a.n < 100000) SELECT 1 FROM a WHERE id=?2 LIMIT 1",
		       0, &st) < 0)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)obj);
	db_bind_i64(st, 2, (int64_t)anc);
	int rc = db_step(st);
	int r = rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : rc;
	db_finalize(st);
	return r;
}

int store_switch_locked(store *s, const store_obj *expect, const store_obj *nw,
			uint64_t base_hash, uint64_t **inos, size_t *ninos, uint64_t **deps,
			size_t *ndeps)
{
	*inos = *deps = NULL;
	*ninos = *ndeps = 0;
	/* the chain must be what we re-encoded from (JuiceFS-style compaction check) */
	store_obj cur;
	db_stmt *st = store_stmt(s, ST_OBJ_GET);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)expect->id);
	int rc = db_step(st);
	if (rc != DB_ROW) {
		db_reset(st);
		return rc == DB_DONE ? -EAGAIN : rc;
	}
	cur.base = (uint64_t)db_col_i64(st, 1);
	cur.hash = (uint64_t)db_col_i64(st, 5);
	cur.unref = (int)db_col_i64(st, 6);
	db_reset(st);
	if (cur.base != expect->base || cur.hash != expect->hash || cur.unref)
		return -EAGAIN;
	int r;
	if (nw->base) {
		st = store_stmt(s, ST_OBJ_GET);
		if (!st)
			return -EIO;
		db_bind_i64(st, 1, (int64_t)nw->base);
		rc = db_step(st);
		/* a retired base (replaced by another gc step meanwhile) is refused: its row is
		 * repointed as that chain changes and could lead back here */
		int ok = rc == DB_ROW && (uint64_t)db_col_i64(st, 5) == base_hash &&
			 !db_col_i64(st, 6);
		db_reset(st);
		if (!ok)
			return rc == DB_ROW || rc == DB_DONE ? -EAGAIN : rc;
		/* the new base must not descend from the object it replaces: after the switch its
		 * descendants point at nw, and nw's chain would be a cycle (unreadable) */
		r = base_descends(s, nw->base, expect->id);
		if (r != 0)
			return r > 0 ? -EAGAIN : r;
	}
	/* every check is above: from here on a failure is an SQL error and the caller's
	 * transaction is rolled back whole */
	r = store_obj_insert_locked(s, nw);
	if (r >= 0)
		r = ids_of(s, "SELECT ino FROM inodes WHERE obj=?1 OR pred_hint=?1", expect->id, inos,
			   ninos);
	if (r >= 0)
		r = ids_of(s, "SELECT id FROM objects WHERE base=?1", expect->id, deps, ndeps);
	if (r >= 0)
		r = exec2(s, "UPDATE inodes SET obj=?2 WHERE obj=?1", expect->id, nw->id);
	if (r >= 0)
		r = exec2(s, "UPDATE inodes SET pred_hint=?2 WHERE pred_hint=?1", expect->id, nw->id);
	if (r >= 0)
		r = exec2(s, "UPDATE objects SET base=?2 WHERE base=?1", expect->id, nw->id);
	/* the same content: its tensor signature moves to the replacement */
	if (r >= 0)
		r = exec2(s, "UPDATE layout_sigs SET obj=?2 WHERE obj=?1", expect->id, nw->id);
	/* the descendants' depths follow the new base depth (bounded: no runaway on a cycle) */
	if (r >= 0)
		r = exec2(s, "WITH RECURSIVE d(id, depth) AS (SELECT id, depth FROM objects WHERE id=?1"
			  " UNION ALL SELECT o.id, d.depth+1 FROM objects o JOIN d ON o.base=d.id"
			  " WHERE d.depth < 100000) UPDATE objects SET depth=(SELECT depth FROM d "
			  "WHERE d.id=objects.id) WHERE id IN (SELECT id FROM d) AND id<>?1 AND ?2=?2",
			  nw->id, 0);
	if (r >= 0)
		r = exec2(s, "UPDATE objects SET unref=1 WHERE id=?1 AND ?2=?2", expect->id, 0);
	if (r < 0) {
		free(*inos);
		free(*deps);
		*inos = *deps = NULL;
		*ninos = *ndeps = 0;
	}
	return r;
}

int store_admin_switch(store *s, const store_obj *expect, const store_obj *nw, uint64_t base_hash,
		       uint64_t **inos, size_t *ninos, uint64_t **deps, size_t *ndeps)
{
	*inos = *deps = NULL;
	*ninos = *ndeps = 0;
	store_lock(s);
	int r = store_begin(s);
	if (r >= 0)
		r = store_end(s, store_switch_locked(s, expect, nw, base_hash, inos, ninos, deps,
						     ndeps));
	store_unlock(s);
	if (r < 0) {
		free(*inos);
		free(*deps);
		*inos = *deps = NULL;
		*ninos = *ndeps = 0;
	}
	return r;
}

int store_admin_quick_check(store *s, char *msg, size_t len)
{
	store_lock(s);
	/* integrity_check, not quick_check: a damaged index (dentries by name) sends lookups to
	 * the wrong inode, and only integrity_check compares indexes with their tables. The
	 * metadata database is small, so the extra time is negligible. No limit (0): the report
	 * holds up to the engine's default number of problems. */
	int r = db_check(s->db, 0, msg, len);
	store_unlock(s);
	if (r < 0)
		snprintf(msg, len, "integrity_check could not run");
	return r == 0 ? 0 : -EIO;
}

int store_admin_page_sums(store *s, int *version)
{
	long v;
	store_lock(s);
	store_meta_version(s->db, &v);
	*version = (int)v;
	int r = db_page_sums(s->db);
	store_unlock(s);
	return r;
}

int store_admin_next_obj(store *s, uint64_t *next)
{
	*next = 0;
	store_lock(s);
	db_stmt *st;
	int r = -EIO;
	/* the CAST: meta.value is typeless in SQLite (an integer here), TEXT in other dialects */
	if (db_prepare(s->db, "SELECT CAST(value AS BIGINT) FROM meta WHERE key=?1", 0, &st) == 0) {
		db_bind_text(st, 1, "next_obj");
		int rc = db_step(st);
		if (rc == DB_ROW) {
			*next = (uint64_t)db_col_i64(st, 0);
			r = 0;
		} else if (rc != DB_DONE) {
			r = rc;
		}
		db_finalize(st); /* DB_DONE: no counter row, a damaged store (-EIO) */
	}
	store_unlock(s);
	return r;
}

int store_admin_checkpoint(store *s)
{
	store_lock(s);
	int r = db_checkpoint(s->db);
	store_unlock(s);
	return r == -EBUSY ? 0 : r; /* best effort: readers in progress keep part of the log */
}
