/* store_data.c - objects, staging files and inode deletion (recovery: store_recover.c).
 * Blob names are relative to the backing directory fd, so path length never matters. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

/* 16 lowercase hex digits exactly (what %016 PRIx64 prints): 0, or -EINVAL. A NUL among them
 * fails the digit test, so short names are safe. */
static int parse_hex16(const char *p, uint64_t *v)
{
	uint64_t x = 0;
	for (int i = 0; i < 16; i++) {
		char c = p[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -EINVAL;
		x = x << 4 | d;
	}
	*v = x;
	return 0;
}

void store_blob_name(uint64_t id, char *buf, size_t size)
{
	snprintf(buf, size, STORE_BLOB_DIR "/%016" PRIx64 ".tpdo", id);
}

int store_blob_name_parse(const char *name, uint64_t *id)
{
	uint64_t v;
	if (!name || parse_hex16(name, &v) < 0 || strcmp(name + 16, ".tpdo") != 0)
		return -EINVAL;
	*id = v;
	return 0;
}

void store_staging_name(uint64_t ino, char *buf, size_t size)
{
	snprintf(buf, size, STORE_STAGING_DIR "/%016" PRIx64, ino);
}

int store_staging_name_parse(const char *name, uint64_t *ino)
{
	uint64_t v;
	if (!name || parse_hex16(name, &v) < 0 || name[16] != 0)
		return -EINVAL;
	*ino = v;
	return 0;
}

void store_staging_path(const store *s, uint64_t ino, char *buf, size_t size)
{
	char rel[STORE_STAGING_NAME_SIZE];
	store_staging_name(ino, rel, sizeof(rel));
	snprintf(buf, size, "%s/%s", s->path, rel);
}

void store_obj_path(const store *s, uint64_t id, char *buf, size_t size)
{
	char rel[STORE_BLOB_NAME_SIZE];
	store_blob_name(id, rel, sizeof(rel));
	snprintf(buf, size, "%s/%s", s->path, rel);
}

int store_obj_open(store *s, uint64_t id, io_rfile **out)
{
	char rel[STORE_BLOB_NAME_SIZE];
	store_blob_name(id, rel, sizeof(rel));
	return blob_open(s->blobs, rel, out);
}

int store_staging_open(store *s, uint64_t ino, int create)
{
	if (!create && s->blobs && blob_is_remote(s->blobs)) {
		/* another node's staged file: the durable copy its row names, fetched */
		int ours, fd = store_bucket_staging_open(s, ino, &ours);
		if (!ours)
			return fd;
	}
	char rel[STORE_STAGING_NAME_SIZE];
	store_staging_name(ino, rel, sizeof(rel));
	int fd = openat(s->dirfd, rel, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (fd < 0)
		return -errno;
	if (create) {
		/* the new name must survive a crash before the inode row says "staged" */
		int dfd = openat(s->dirfd, STORE_STAGING_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			io_fsync_dirfd(dfd);
			close(dfd);
		}
	}
	return fd;
}

/* Statement id with (ino, size, mtime, ctime), lock held. */
static int ino_stmt_locked(store *s, int id, uint64_t ino, uint64_t size, int64_t mtime,
			   int64_t ctime)
{
	db_stmt *st = store_stmt(s, id);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)ino);
	db_bind_i64(st, 2, (int64_t)size);
	db_bind_i64(st, 3, mtime);
	db_bind_i64(st, 4, ctime);
	return store_step_done(s, st);
}

static int run_ino_stmt(store *s, int id, uint64_t ino, uint64_t size, int64_t mtime,
			int64_t ctime)
{
	store_lock(s);
	int r = ino_stmt_locked(s, id, ino, size, mtime, ctime);
	store_unlock(s);
	return r;
}

/* A staging statement (ST_BEGIN_STAGING, ST_COMMIT_SIZE) of a shared store, in one transaction:
 * with claim, the file becomes this session's (-EBUSY when another live node staged it and has
 * not stored it yet); with blobs in a bucket, the bytes are uploaded first as a new copy that the
 * row names, only while this session still owns the file (-EIO when another node took it over),
 * and the copy nothing names any more is deleted after. */
static int shared_staging_stmt(store *s, int id, int claim, uint64_t ino, uint64_t size,
			       int64_t mtime, int64_t ctime)
{
	int remote = blob_is_remote(s->blobs);
	uint64_t seq = 0, prev = 0;
	int r = remote ? store_copy_upload(s, ino, size, &seq) : 0;
	if (r < 0)
		return r;
	store_lock(s);
	r = store_begin(s);
	if (r >= 0) {
		int q = claim ? store_shared_claim_locked(s, ino, 0) : 0;
		if (q >= 0 && remote) {
			q = store_shared_set_copy_locked(s, ino, seq, &prev);
			if (q == -EBUSY && !claim)
				q = -EIO; /* taken over by another node */
		}
		if (q >= 0)
			q = ino_stmt_locked(s, id, ino, size, mtime, ctime);
		r = store_end(s, q);
	}
	store_unlock(s);
	/* the copy nothing names any more: the one replaced, or this one if the row did not
	 * change */
	if (remote)
		store_copy_delete(s, ino, s->session, r < 0 ? seq : prev != seq ? prev : 0);
	return r;
}

int store_begin_staging(store *s, uint64_t ino, uint64_t size, int64_t mtime, int64_t ctime)
{
	if (!s->shared)
		return run_ino_stmt(s, ST_BEGIN_STAGING, ino, size, mtime, ctime);
	return shared_staging_stmt(s, ST_BEGIN_STAGING, 1, ino, size, mtime, ctime);
}

int store_commit_size(store *s, uint64_t ino, uint64_t size, int64_t mtime, int64_t ctime)
{
	if (!s->shared || !blob_is_remote(s->blobs))
		return run_ino_stmt(s, ST_COMMIT_SIZE, ino, size, mtime, ctime);
	return shared_staging_stmt(s, ST_COMMIT_SIZE, 0, ino, size, mtime, ctime);
}

static int push_id(uint64_t **v, size_t *n, size_t *cap, uint64_t id)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		uint64_t *p = realloc(*v, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = c;
	}
	(*v)[(*n)++] = id;
	return 0;
}

/* An objects row, selected as (id, base, depth, size, stored, hash, unref). */
void store_obj_from_row(db_stmt *st, store_obj *o)
{
	o->id = (uint64_t)db_col_i64(st, 0);
	o->base = (uint64_t)db_col_i64(st, 1);
	o->depth = (uint32_t)db_col_i64(st, 2);
	o->size = (uint64_t)db_col_i64(st, 3);
	o->stored = (uint64_t)db_col_i64(st, 4);
	o->hash = (uint64_t)db_col_i64(st, 5);
	o->unref = (int)db_col_i64(st, 6);
}

/* Collect column 0 of a prepared statement into a malloc'd array (lock held). */
int store_collect_ids(store *s, db_stmt *st, uint64_t **ids, size_t *n)
{
	*ids = NULL;
	*n = 0;
	size_t cap = 0;
	int rc, r = 0;
	while ((rc = db_step(st)) == DB_ROW) {
		r = push_id(ids, n, &cap, (uint64_t)db_col_i64(st, 0));
		if (r < 0)
			break;
	}
	if (r == 0 && rc != DB_DONE)
		r = rc;
	if (r < 0) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return r;
}

int store_list_staged(store *s, uint64_t **inos, size_t *n)
{
	*inos = NULL;
	*n = 0;
	store_lock(s);
	db_stmt *st = store_stmt(s, ST_LIST_STAGED);
	int r = -EIO;
	if (st) {
		r = store_collect_ids(s, st, inos, n);
		db_reset(st);
	}
	store_unlock(s);
	return r;
}

int store_staged_bytes(store *s, uint64_t *bytes)
{
	store_lock(s);
	db_stmt *st = store_stmt(s, ST_STAGED_BYTES);
	int r = -EIO;
	if (st) {
		int rc = db_step(st);
		r = rc == DB_ROW ? 0 : rc; /* an aggregate: always one row */
		*bytes = rc == DB_ROW ? (uint64_t)db_col_i64(st, 0) : 0;
		db_reset(st);
	}
	store_unlock(s);
	return r;
}

int store_obj_get_locked(store *s, uint64_t id, store_obj *o)
{
	db_stmt *st = store_stmt(s, ST_OBJ_GET);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)id);
	int rc = db_step(st);
	int r = -ENOENT;
	if (rc == DB_ROW) {
		store_obj_from_row(st, o);
		r = 0;
	} else if (rc != DB_DONE) {
		r = rc;
	}
	db_reset(st);
	return r;
}

int store_obj_get(store *s, uint64_t id, store_obj *o)
{
	store_lock(s);
	int r = store_obj_get_locked(s, id, o);
	store_unlock(s);
	return r;
}

int store_obj_reserve(store *s, uint64_t *id)
{
	store_lock(s);
	int r = store_begin(s);
	if (r >= 0) {
		db_stmt *st = store_stmt(s, ST_OBJ_RESERVE);
		r = -EIO;
		if (st) {
			int rc = db_step(st);
			if (rc == DB_ROW) {
				*id = (uint64_t)db_col_i64(st, 0);
				r = 0;
			} else {
				r = rc == DB_DONE ? -EIO : rc;
			}
			if (r == 0)
				r = store_step_done(s, st);
			db_reset(st);
		}
		r = store_end(s, r);
	}
	store_unlock(s);
	return r;
}

int store_tmp_create(store *s, char *path, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	for (int tries = 0; tries < 100; tries++) {
		uint64_t v = (uint64_t)store_now_ns() ^ ((uint64_t)getpid() << 40) ^
			     ((uint64_t)(uintptr_t)path << 7) ^ (uint64_t)tries * 0x9e3779b97f4a7c15ULL;
		char name[32];
		for (int i = 0; i < 16; i++)
			name[i] = hex[(v >> (4 * i)) & 15];
		name[16] = 0;
		snprintf(path, size, "tmp/%s", name);
		int fd = openat(s->dirfd, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int store_obj_install(store *s, int fd, const char *tmp_path, uint64_t id)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	char rel[STORE_BLOB_NAME_SIZE];
	store_blob_name(id, rel, sizeof(rel));
	return blob_put(s->blobs, rel, fd, (uint64_t)st.st_size, s->dirfd, tmp_path);
}

void store_obj_discard(store *s, uint64_t id)
{
	char rel[STORE_BLOB_NAME_SIZE];
	store_blob_name(id, rel, sizeof(rel));
	blob_delete(s->blobs, rel);
}

typedef struct blob_walk {
	store_blob_fn fn;
	void *ctx;
} blob_walk;

static int blob_walk_one(void *ctx, const char *name, uint64_t size, int64_t mtime_ns)
{
	blob_walk *w = ctx;
	uint64_t id;
	int ours = store_blob_name_parse(name, &id) == 0;
	return w->fn(w->ctx, name, ours ? id : 0, size, mtime_ns);
}

int store_blob_list(store *s, store_blob_fn fn, void *ctx)
{
	blob_walk w = {fn, ctx};
	return blob_list(s->blobs, STORE_BLOB_DIR, blob_walk_one, &w);
}

int store_blob_delete(store *s, const char *name)
{
	char rel[300];
	if (snprintf(rel, sizeof(rel), STORE_BLOB_DIR "/%s", name) >= (int)sizeof(rel))
		return -ENAMETOOLONG;
	return blob_delete(s->blobs, rel);
}

void store_blob_report(store *s, char *buf, size_t size)
{
	blob_cache_stats c;
	blob_cache_stats_get(s->blobs, &c);
	s3_stats t = {0};
	s3 *cl = blob_s3(s->blobs);
	if (cl)
		s3_stats_get(cl, &t);
	snprintf(buf, size, "blob cache: hits=%" PRIu64 " misses=%" PRIu64 " cached=%" PRIu64
		 " capacity=%" PRIu64 " evictions=%" PRIu64 " damaged=%" PRIu64 "; s3: gets=%"
		 PRIu64 " puts=%" PRIu64 " heads=%" PRIu64 " deletes=%" PRIu64 " lists=%" PRIu64
		 " retries=%" PRIu64 " failures=%" PRIu64 " bytes_in=%" PRIu64 " bytes_out=%"
		 PRIu64, c.hits, c.misses, c.bytes_cached, c.capacity, c.evictions, c.damaged,
		 t.gets, t.puts, t.heads, t.deletes, t.lists, t.retries, t.failures, t.bytes_in,
		 t.bytes_out);
}

int store_blob_uploads_clean(store *s, int64_t before_ns, blob_upload_fn fn, void *ctx)
{
	return blob_uploads_clean(s->blobs, before_ns, fn, ctx);
}

int store_blobs_remote(const store *s)
{
	return s->blobs && blob_is_remote(s->blobs);
}

static int exists_query(store *s, int id, uint64_t v)
{
	db_stmt *st = store_stmt(s, id);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)v);
	int rc = db_step(st);
	int r = rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : rc;
	db_reset(st);
	return r;
}

int store_obj_release_locked(store *s, uint64_t obj)
{
	while (obj) {
		int r = exists_query(s, ST_OBJ_USED_INODE, obj);
		if (r)
			return r < 0 ? r : 0;
		store_obj o = {0};
		r = store_obj_get_locked(s, obj, &o);
		if (r < 0)
			return r == -ENOENT ? 0 : r;
		r = exists_query(s, ST_OBJ_HAS_DEP, obj);
		if (r < 0)
			return r;
		if (!r) { /* deleted: its signature goes with it */
			db_stmt *ds;
			if (db_prepare(s->db, "DELETE FROM layout_sigs WHERE obj=?1", 0, &ds) == 0) {
				db_bind_i64(ds, 1, (int64_t)obj);
				int dr = db_step(ds);
				db_finalize(ds);
				if (dr < 0)
					return dr;
			}
		}
		db_stmt *st = store_stmt(s, r ? ST_OBJ_UNREF : ST_OBJ_DEL);
		if (!st)
			return -EIO;
		db_bind_i64(st, 1, (int64_t)obj);
		int dep = r;
		r = store_step_done(s, st);
		if (r < 0 || dep)
			return r; /* kept hidden as a base; gc re-encodes its dependents */
		if (s->shared && (r = store_shared_trash_locked(s, &o)) < 0)
			return r;
		if (s->ngone < STORE_GONE_MAX)
			s->gone[s->ngone++] = obj;
		obj = o.base;
	}
	return 0;
}

/* Insert the row of a freshly installed object (caller holds the lock, inside a transaction). */
int store_obj_insert_locked(store *s, const store_obj *o)
{
	db_stmt *st = store_stmt(s, ST_OBJ_INS);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)o->id);
	if (o->base)
		db_bind_i64(st, 2, (int64_t)o->base);
	else
		db_bind_null(st, 2); /* a keyframe */
	db_bind_i64(st, 3, o->depth);
	db_bind_i64(st, 4, (int64_t)o->size);
	db_bind_i64(st, 5, (int64_t)o->stored);
	db_bind_i64(st, 6, (int64_t)o->hash);
	db_bind_i64(st, 7, store_now_ns());
	return store_step_done(s, st);
}

/* The commit of a staged file may go ahead (lock + transaction held): check(ctx) agrees, this
 * node owns the staged data (a shared store), and *a is the inode as it is now. */
static int commit_may_locked(store *s, uint64_t ino, int (*check)(void *ctx), void *ctx,
			     store_attr *a)
{
	if (check && check(ctx) != 1)
		return -EAGAIN;
	int r = store_shared_owned_locked(s, ino);
	if (r != 1)
		return r < 0 ? r : -EAGAIN;
	return store_getattr_locked(s, ino, a);
}

static int point_inode_locked(store *s, uint64_t ino, const store_obj *o)
{
	db_stmt *st = store_stmt(s, ST_INODE_SET_OBJ);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)ino);
	db_bind_i64(st, 2, (int64_t)o->id);
	db_bind_i64(st, 3, (int64_t)o->size);
	return store_step_done(s, st);
}

/* After the inode points at its new object: it is no longer staged by anyone, and what it held
 * before (its predecessor hint, an old object) goes unless it is keep or keep2. */
static int release_replaced_locked(store *s, uint64_t ino, const store_attr *a, uint64_t keep,
				   uint64_t keep2)
{
	int r = store_shared_disown_locked(s, ino);
	if (r >= 0 && a->pred_hint && a->pred_hint != keep && a->pred_hint != keep2)
		r = store_obj_release_locked(s, a->pred_hint);
	if (r >= 0 && a->obj && a->obj != keep && a->obj != keep2)
		r = store_obj_release_locked(s, a->obj);
	return r;
}

void store_staging_gone(store *s, uint64_t ino)
{
	char rel[STORE_STAGING_NAME_SIZE];
	store_staging_name(ino, rel, sizeof(rel));
	unlinkat(s->dirfd, rel, 0);
	/* (its durable copy in a bucket goes with its stage_owner row: store_shared_disown_locked) */
}

int store_commit_version(store *s, uint64_t ino, const store_obj *o, store_rebase *rb,
			 int (*check)(void *ctx), void *ctx)
{
	if (rb) {
		rb->switched = 0;
		rb->inos = rb->deps = NULL;
		rb->ninos = rb->ndeps = 0;
	}
	store_lock(s);
	int r = store_begin(s);
	if (r < 0)
		goto out;
	store_attr a;
	if ((r = commit_may_locked(s, ino, check, ctx, &a)) < 0)
		goto end;
	store_obj bo;
	if (o->base && store_obj_get_locked(s, o->base, &bo) < 0) {
		r = -ESTALE; /* the base was deleted while we encoded against it */
		goto end;
	}
	r = store_obj_insert_locked(s, o);
	if (r >= 0)
		r = point_inode_locked(s, ino, o);
	if (r >= 0 && rb) {
		/* the predecessor re-coded against the new version: switched in the same
		 * transaction, or (changed meanwhile) left as it was, the new version then standing
		 * alone as a keyframe */
		int sr = store_switch_locked(s, &rb->expect, &rb->nw, o->hash, &rb->inos, &rb->ninos,
					     &rb->deps, &rb->ndeps);
		if (sr == 0)
			rb->switched = 1;
		else if (sr != -EAGAIN)
			r = sr;
	}
	/* a switched predecessor is retired, not freed: readers may still hold its id, and the
	 * caller releases it once they are done */
	if (r >= 0)
		r = release_replaced_locked(s, ino, &a, o->id, rb && rb->switched ? rb->expect.id : 0);
end:
	r = store_end(s, r);
	if (r >= 0)
		store_staging_gone(s, ino);
out:
	store_unlock(s);
	if (r < 0 && rb) {
		free(rb->inos);
		free(rb->deps);
		rb->inos = rb->deps = NULL;
		rb->ninos = rb->ndeps = 0;
		rb->switched = 0;
	}
	return r;
}

int store_obj_needed(store *s, uint64_t id, uint64_t ino)
{
	store_lock(s);
	db_stmt *st = store_stmt(s, ST_OBJ_NEEDED);
	int r = -EIO;
	if (st) {
		db_bind_i64(st, 1, (int64_t)id);
		db_bind_i64(st, 2, (int64_t)ino);
		int rc = db_step(st);
		r = rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : rc;
		db_reset(st);
	}
	store_unlock(s);
	return r;
}

int store_release_retired(store *s, uint64_t id)
{
	store_lock(s);
	int r = store_begin(s);
	if (r >= 0)
		r = store_end(s, store_obj_release_locked(s, id));
	store_unlock(s); /* unlinks the freed blobs and tells the obj_gone hook */
	return r;
}

/* The tensor signature index (files found as bases by their tensors, not their names): an
 * additive table, created when a store opened read-write lacks it, so stores of format 1 from
 * before it stay readable by every version (older ones ignore it). */
int store_sigs_ensure(store *s)
{
	return db_exec(s->db, "CREATE TABLE IF NOT EXISTS layout_sigs(obj BIGINT NOT NULL,"
		       " sig BIGINT NOT NULL, PRIMARY KEY(obj, sig));"
		       "CREATE INDEX IF NOT EXISTS layout_sigs_sig ON layout_sigs(sig);");
}

int store_sig_put(store *s, uint64_t obj, const uint64_t *sigs, size_t n)
{
	store_lock(s);
	int r = store_begin(s);
	if (r < 0) {
		store_unlock(s);
		return r;
	}
	db_stmt *st = NULL;
	r = db_prepare(s->db, "INSERT INTO layout_sigs(obj, sig) VALUES(?1, ?2) ON "
		       "CONFLICT(obj, sig) DO NOTHING", 0, &st);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		db_bind_i64(st, 1, (int64_t)obj);
		db_bind_i64(st, 2, (int64_t)sigs[i]);
		r = db_step(st);
		db_reset(st);
	}
	if (st)
		db_finalize(st);
	r = store_end(s, r < 0 ? r : 0);
	store_unlock(s);
	return r;
}

int store_sig_find(store *s, const uint64_t *sigs, size_t nsigs, uint64_t *objs, size_t max,
		   size_t *n)
{
	*n = 0;
	if (nsigs == 0)
		return 0;
	if (nsigs > STORE_SIG_MAX)
		nsigs = STORE_SIG_MAX;
	/* the objects files hold (not hidden bases) sharing the most signatures, newest first */
	char sql[512];
	int k = snprintf(sql, sizeof(sql), "SELECT l.obj FROM layout_sigs l JOIN objects o ON "
			 "o.id=l.obj WHERE o.unref=0 AND l.sig IN (");
	for (size_t i = 0; i < nsigs; i++)
		k += snprintf(sql + k, sizeof(sql) - (size_t)k, "%s?%zu", i ? "," : "", i + 1);
	snprintf(sql + k, sizeof(sql) - (size_t)k,
		 ") GROUP BY l.obj ORDER BY count(*) DESC, l.obj DESC LIMIT 4");
	store_lock(s);
	db_stmt *st;
	int r = db_prepare(s->db, sql, 0, &st);
	if (r == 0) {
		for (size_t i = 0; i < nsigs; i++)
			db_bind_i64(st, (int)i + 1, (int64_t)sigs[i]);
		while ((r = db_step(st)) == DB_ROW)
			if (*n < max)
				objs[(*n)++] = (uint64_t)db_col_i64(st, 0);
		db_finalize(st);
	}
	store_unlock(s);
	return r < 0 ? r : 0;
}

int store_obj_find_content(store *s, uint64_t size, uint64_t hash, uint64_t *ids, size_t max,
			   size_t *n)
{
	*n = 0;
	store_lock(s);
	db_stmt *st;
	int r = db_prepare(s->db, "SELECT id FROM objects WHERE size=?1 AND hash=?2 ORDER BY id DESC "
			   "LIMIT 8", 0, &st);
	if (r == 0) {
		db_bind_i64(st, 1, (int64_t)size);
		db_bind_i64(st, 2, (int64_t)hash);
		while ((r = db_step(st)) == DB_ROW)
			if (*n < max)
				ids[(*n)++] = (uint64_t)db_col_i64(st, 0);
		db_finalize(st);
	}
	store_unlock(s);
	return r < 0 ? r : 0;
}

int store_commit_existing(store *s, uint64_t ino, const store_obj *o, int (*check)(void *ctx),
			  void *ctx)
{
	store_lock(s);
	int r = store_begin(s);
	if (r < 0) {
		store_unlock(s);
		return r;
	}
	store_attr a;
	if ((r = commit_may_locked(s, ino, check, ctx, &a)) < 0)
		goto end;
	/* still the object that was compared (gc may have replaced it meanwhile) */
	store_obj cur;
	if (store_obj_get_locked(s, o->id, &cur) < 0 || cur.size != o->size || cur.hash != o->hash) {
		r = -EAGAIN;
		goto end;
	}
	r = point_inode_locked(s, ino, o);
	/* a hidden base that a file uses again is a file's data again */
	if (r >= 0 && cur.unref) {
		db_stmt *st = store_stmt(s, ST_OBJ_REREF);
		r = st ? 0 : -EIO;
		if (st) {
			db_bind_i64(st, 1, (int64_t)o->id);
			r = store_step_done(s, st);
		}
	}
	if (r >= 0)
		r = release_replaced_locked(s, ino, &a, o->id, 0);
end:
	r = store_end(s, r);
	if (r >= 0)
		store_staging_gone(s, ino);
	store_unlock(s);
	return r;
}

int store_commit_object(store *s, uint64_t ino, const store_obj *o, int (*check)(void *ctx),
			void *ctx)
{
	return store_commit_version(s, ino, o, NULL, check, ctx);
}

int store_drop_inode_locked(store *s, uint64_t ino)
{
	store_attr a;
	int r = store_getattr_locked(s, ino, &a);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (a.nlink != 0 || ino == STORE_ROOT_INO)
		return 0;
	r = store_begin(s);
	if (r < 0)
		return r;
	db_stmt *st = store_stmt(s, ST_XDEL_ALL);
	r = st ? 0 : -EIO;
	if (r >= 0) {
		db_bind_i64(st, 1, (int64_t)ino);
		r = store_step_done(s, st);
	}
	if (r >= 0) {
		st = store_stmt(s, ST_DEL_INODE);
		r = st ? 0 : -EIO;
		if (st) {
			db_bind_i64(st, 1, (int64_t)ino);
			r = store_step_done(s, st);
		}
	}
	if (r >= 0 && a.obj)
		r = store_obj_release_locked(s, a.obj);
	if (r >= 0 && a.pred_hint)
		r = store_obj_release_locked(s, a.pred_hint);
	if (r >= 0)
		r = store_shared_disown_locked(s, ino);
	r = store_end(s, r);
	if (r >= 0)
		store_staging_gone(s, ino);
	return r;
}

int store_drop_inode(store *s, uint64_t ino)
{
	store_lock(s);
	int r = store_drop_inode_locked(s, ino);
	store_unlock(s);
	return r;
}

int store_totals_get(store *s, store_totals *t)
{
	memset(t, 0, sizeof(*t));
	store_lock(s);
	db_stmt *st;
	int r = -EIO;
	if (db_prepare(s->db,
		       "SELECT (SELECT count(*) FROM inodes),"
		       " (SELECT count(*) FROM inodes WHERE (mode & 61440)=32768),"
		       " (SELECT count(*) FROM objects),"
		       " (SELECT COALESCE(sum(size),0) FROM inodes WHERE (mode & 61440)=32768),"
		       " (SELECT COALESCE(sum(stored),0) FROM objects),"
		       " (SELECT count(*) FROM inodes WHERE staged=1),"
		       " (SELECT count(*) FROM objects WHERE unref=1)",
		       0, &st) == 0) {
		if (db_step(st) == DB_ROW) {
			t->inodes = (uint64_t)db_col_i64(st, 0);
			t->files = (uint64_t)db_col_i64(st, 1);
			t->objects = (uint64_t)db_col_i64(st, 2);
			t->logical_bytes = (uint64_t)db_col_i64(st, 3);
			t->stored_bytes = (uint64_t)db_col_i64(st, 4);
			t->staged_files = (uint64_t)db_col_i64(st, 5);
			t->unref_objects = (uint64_t)db_col_i64(st, 6);
			r = 0;
		}
		db_finalize(st);
	}
	store_unlock(s);
	return r;
}
