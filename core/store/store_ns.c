/* store_ns.c - namespace operations: lookup, getattr, mknode, link, unlink, rename, readlink,
 * setattr, readdir, parent, and extended attributes. Each change is one transaction under the
 * store lock, using the cached statements of store.c. */
#include "store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/fs.h>

static int getattr_locked(store *s, uint64_t ino, store_attr *a)
{
	db_stmt *st = store_stmt(s, ST_GETATTR);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)ino);
	int rc = db_step(st);
	int r = -ENOENT;
	if (rc == DB_ROW) {
		store_row_attr(st, 0, a);
		r = 0;
	} else if (rc != DB_DONE) {
		r = rc;
	}
	db_reset(st);
	return r;
}

int store_getattr_locked(store *s, uint64_t ino, store_attr *a)
{
	return getattr_locked(s, ino, a);
}

int store_getattr(store *s, uint64_t ino, store_attr *a)
{
	store_lock(s);
	int r = getattr_locked(s, ino, a);
	store_unlock(s);
	return r;
}

static int check_name(const char *name, size_t len)
{
	if (len == 0)
		return -ENOENT;
	if (len > STORE_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int store_lookup(store *s, uint64_t parent, const char *name, size_t len, store_attr *a)
{
	int r = check_name(name, len);
	if (r < 0)
		return r;
	store_lock(s);
	db_stmt *st = store_stmt(s, ST_LOOKUP);
	if (!st) {
		store_unlock(s);
		return -EIO;
	}
	db_bind_i64(st, 1, (int64_t)parent);
	db_bind_blob(st, 2, name, len);
	int rc = db_step(st);
	r = -ENOENT;
	if (rc == DB_ROW) {
		store_row_attr(st, 0, a);
		r = 0;
	} else if (rc != DB_DONE) {
		r = rc;
	}
	db_reset(st);
	store_unlock(s);
	return r;
}

/* Dentry (id, ino, mode) of parent/name; -ENOENT if absent. */
static int dent_get(store *s, uint64_t parent, const char *name, size_t len, int64_t *id,
		    uint64_t *ino, uint32_t *mode)
{
	*id = 0; /* defined on every path (gcc -O3 cannot see that callers check r) */
	*ino = 0;
	*mode = 0;
	db_stmt *st = store_stmt(s, ST_DENT_GET);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)parent);
	db_bind_blob(st, 2, name, len);
	int rc = db_step(st);
	int r = -ENOENT;
	if (rc == DB_ROW) {
		*id = db_col_i64(st, 0);
		*ino = (uint64_t)db_col_i64(st, 1);
		*mode = (uint32_t)db_col_i64(st, 2);
		r = 0;
	} else if (rc != DB_DONE) {
		r = rc;
	}
	db_reset(st);
	return r;
}

static int nlink_add(store *s, uint64_t ino, int delta, int64_t now)
{
	db_stmt *st = store_stmt(s, ST_NLINK_ADD);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)ino);
	db_bind_i64(st, 2, delta);
	db_bind_i64(st, 3, now);
	return store_step_done(s, st);
}

static int touch_dir(store *s, uint64_t dir, int64_t now)
{
	db_stmt *st = store_stmt(s, ST_TOUCH_DIR);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)dir);
	db_bind_i64(st, 2, now);
	return store_step_done(s, st);
}

static int ins_dent(store *s, uint64_t parent, const char *name, size_t len, uint64_t ino)
{
	db_stmt *st = store_stmt(s, ST_INS_DENT);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)parent);
	db_bind_blob(st, 2, name, len);
	db_bind_i64(st, 3, (int64_t)ino);
	return store_step_done(s, st);
}

static int del_dent(store *s, int64_t id)
{
	db_stmt *st = store_stmt(s, ST_DEL_DENT);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, id);
	return store_step_done(s, st);
}

static int has_child(store *s, uint64_t dir)
{
	db_stmt *st = store_stmt(s, ST_HAS_CHILD);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)dir);
	int rc = db_step(st);
	int r = rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : rc;
	db_reset(st);
	return r;
}

int store_isempty_dir(store *s, uint64_t dir)
{
	store_lock(s);
	int r = has_child(s, dir);
	store_unlock(s);
	return r < 0 ? r : !r;
}

/* parent must exist and be a directory. */
/* 0 when parent has no entry called name, -EEXIST when it has, -errno on failure. */
static int name_free(store *s, uint64_t parent, const char *name, size_t len)
{
	int64_t id;
	uint64_t ino;
	uint32_t mode;
	int r = dent_get(s, parent, name, len, &id, &ino, &mode);
	return r == 0 ? -EEXIST : r == -ENOENT ? 0 : r;
}

static int check_parent(store *s, uint64_t parent)
{
	store_attr pa;
	int r = getattr_locked(s, parent, &pa);
	if (r < 0)
		return r;
	if (!S_ISDIR(pa.mode))
		return -ENOTDIR;
	if (pa.nlink == 0)
		return -ENOENT; /* removed directory */
	return 0;
}

int store_mknode(store *s, uint64_t parent, const char *name, size_t len, uint32_t mode,
		 uint32_t uid, uint32_t gid, uint64_t rdev, const char *target, store_attr *a)
{
	int r = check_name(name, len);
	if (r < 0)
		return r;
	store_lock(s);
	r = store_begin(s);
	if (r < 0)
		goto out;
	int64_t now = store_now_ns();
	r = check_parent(s, parent);
	if (r == 0)
		r = name_free(s, parent, name, len);
	if (r < 0)
		goto end;
	db_stmt *st = store_stmt(s, ST_INS_INODE);
	if (!st) {
		r = -EIO;
		goto end;
	}
	int isdir = S_ISDIR(mode);
	size_t tlen = target ? strlen(target) : 0;
	db_bind_i64(st, 1, mode);
	db_bind_i64(st, 2, uid);
	db_bind_i64(st, 3, gid);
	db_bind_i64(st, 4, isdir ? 2 : 1);
	db_bind_i64(st, 5, now);
	db_bind_i64(st, 6, (int64_t)rdev);
	if (target)
		db_bind_blob(st, 7, target, tlen);
	else
		db_bind_null(st, 7);
	db_bind_i64(st, 8, (int64_t)tlen); /* size: a symlink's is its target's length */
	/* the new inode number comes back through RETURNING (no engine's last-insert-id) */
	int rc = db_step(st);
	uint64_t ino = rc == DB_ROW ? (uint64_t)db_col_i64(st, 0) : 0;
	r = store_step_done(s, st); /* the insert runs to completion, then the reset */
	if (r == 0 && rc != DB_ROW)
		r = rc < 0 ? rc : -EIO;
	if (r < 0)
		goto end;
	r = ins_dent(s, parent, name, len, ino);
	if (r < 0)
		goto end;
	if (isdir)
		r = nlink_add(s, parent, 1, now);
	if (r >= 0)
		r = touch_dir(s, parent, now);
	if (r >= 0)
		r = getattr_locked(s, ino, a);
end:
	r = store_end(s, r);
out:
	store_unlock(s);
	return r;
}

int store_link(store *s, uint64_t ino, uint64_t parent, const char *name, size_t len,
	       store_attr *a)
{
	int r = check_name(name, len);
	if (r < 0)
		return r;
	store_lock(s);
	r = store_begin(s);
	if (r < 0)
		goto out;
	int64_t now = store_now_ns();
	r = check_parent(s, parent);
	if (r < 0)
		goto end;
	r = getattr_locked(s, ino, a);
	if (r < 0)
		goto end;
	if (S_ISDIR(a->mode)) {
		r = -EPERM;
		goto end;
	}
	if (a->nlink == 0) {
		r = -ENOENT;
		goto end;
	}
	r = name_free(s, parent, name, len);
	if (r < 0)
		goto end;
	r = ins_dent(s, parent, name, len, ino);
	if (r >= 0)
		r = nlink_add(s, ino, 1, now);
	if (r >= 0)
		r = touch_dir(s, parent, now);
	if (r >= 0)
		r = getattr_locked(s, ino, a);
end:
	r = store_end(s, r);
out:
	store_unlock(s);
	return r;
}

/* Drop one link of ino (a removed dentry). Directories go to nlink 0 at once. */
static int drop_link(store *s, uint64_t ino, uint32_t mode, uint64_t parent, int64_t now,
		     uint32_t *nlink_out)
{
	int r;
	if (S_ISDIR(mode)) {
		store_attr a;
		r = getattr_locked(s, ino, &a);
		if (r < 0)
			return r;
		r = nlink_add(s, ino, -(int)a.nlink, now);
		if (r >= 0)
			r = nlink_add(s, parent, -1, now);
		*nlink_out = 0;
		return r;
	}
	r = nlink_add(s, ino, -1, now);
	if (r < 0)
		return r;
	store_attr a;
	r = getattr_locked(s, ino, &a);
	if (r >= 0)
		*nlink_out = a.nlink;
	return r;
}

int store_unlink(store *s, uint64_t parent, const char *name, size_t len, int isdir,
		 uint64_t *ino_out, uint32_t *nlink_out)
{
	int r = check_name(name, len);
	if (r < 0)
		return r;
	store_lock(s);
	r = store_begin(s);
	if (r < 0)
		goto out;
	int64_t now = store_now_ns();
	int64_t did;
	uint64_t ino;
	uint32_t mode;
	r = dent_get(s, parent, name, len, &did, &ino, &mode);
	if (r < 0)
		goto end;
	if (isdir && !S_ISDIR(mode)) {
		r = -ENOTDIR;
		goto end;
	}
	if (!isdir && S_ISDIR(mode)) {
		r = -EISDIR;
		goto end;
	}
	if (isdir) {
		r = has_child(s, ino);
		if (r < 0)
			goto end;
		if (r) {
			r = -ENOTEMPTY;
			goto end;
		}
	}
	r = del_dent(s, did);
	if (r >= 0)
		r = drop_link(s, ino, mode, parent, now, nlink_out);
	if (r >= 0)
		r = touch_dir(s, parent, now);
	*ino_out = ino;
end:
	r = store_end(s, r);
out:
	store_unlock(s);
	return r;
}

/* 1 if anc is dir or an ancestor of dir. */
static int is_ancestor(store *s, uint64_t anc, uint64_t dir)
{
	for (int depth = 0; depth < 4096; depth++) {
		if (dir == anc)
			return 1;
		if (dir == STORE_ROOT_INO)
			return 0;
		db_stmt *st = store_stmt(s, ST_PARENT);
		if (!st)
			return -EIO;
		db_bind_i64(st, 1, (int64_t)dir);
		int rc = db_step(st);
		if (rc != DB_ROW) {
			db_reset(st);
			return rc == DB_DONE ? 0 : rc;
		}
		dir = (uint64_t)db_col_i64(st, 0);
		db_reset(st);
	}
	return -ELOOP;
}

static int move_dent(store *s, int64_t id, uint64_t parent, const char *name, size_t len)
{
	db_stmt *st = store_stmt(s, ST_MOVE_DENT);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, id);
	db_bind_i64(st, 2, (int64_t)parent);
	db_bind_blob(st, 3, name, len);
	return store_step_done(s, st);
}

static int set_dent_ino(store *s, int64_t id, uint64_t ino)
{
	db_stmt *st = store_stmt(s, ST_SET_DENT_INO);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, id);
	db_bind_i64(st, 2, (int64_t)ino);
	return store_step_done(s, st);
}

static int set_pred(store *s, uint64_t ino, uint64_t obj)
{
	db_stmt *st = store_stmt(s, ST_SET_PRED);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)ino);
	if (obj)
		db_bind_i64(st, 2, (int64_t)obj);
	else
		db_bind_null(st, 2);
	return store_step_done(s, st);
}

int store_rename(store *s, uint64_t p1, const char *n1, size_t l1, uint64_t p2, const char *n2,
		 size_t l2, unsigned flags, uint64_t *victim, uint32_t *victim_nlink)
{
	*victim = 0;
	*victim_nlink = 0;
	int r = check_name(n1, l1);
	if (r == 0)
		r = check_name(n2, l2);
	if (r < 0)
		return r;
	if ((flags & RENAME_EXCHANGE) && (flags & RENAME_NOREPLACE))
		return -EINVAL;
	if (flags & ~(unsigned)(RENAME_EXCHANGE | RENAME_NOREPLACE))
		return -EINVAL;
	store_lock(s);
	r = store_begin(s);
	if (r < 0)
		goto out;
	int64_t now = store_now_ns();
	int64_t sid, did = 0;
	uint64_t sino, dino = 0;
	uint32_t smode, dmode = 0;
	r = dent_get(s, p1, n1, l1, &sid, &sino, &smode);
	if (r < 0)
		goto end;
	r = check_parent(s, p2);
	if (r < 0)
		goto end;
	r = dent_get(s, p2, n2, l2, &did, &dino, &dmode);
	if (r < 0 && r != -ENOENT)
		goto end;
	int dexists = r == 0;
	r = 0;
	if ((flags & RENAME_EXCHANGE) && !dexists) {
		r = -ENOENT;
		goto end;
	}
	if ((flags & RENAME_NOREPLACE) && dexists) {
		r = -EEXIST;
		goto end;
	}
	if (dexists && dino == sino)
		goto end; /* same inode: rename(2) does nothing */
	/* A directory cannot move below itself. */
	if (S_ISDIR(smode) && p1 != p2) {
		r = is_ancestor(s, sino, p2);
		if (r < 0)
			goto end;
		if (r) {
			r = -EINVAL;
			goto end;
		}
	}
	if ((flags & RENAME_EXCHANGE)) {
		if (S_ISDIR(dmode) && p1 != p2) {
			r = is_ancestor(s, dino, p1);
			if (r < 0)
				goto end;
			if (r) {
				r = -EINVAL;
				goto end;
			}
		}
		r = set_dent_ino(s, sid, dino);
		if (r >= 0)
			r = set_dent_ino(s, did, sino);
		if (r >= 0 && p1 != p2 && S_ISDIR(smode) != S_ISDIR(dmode)) {
			/* the directory changes parent */
			uint64_t from = S_ISDIR(smode) ? p1 : p2, to = S_ISDIR(smode) ? p2 : p1;
			r = nlink_add(s, from, -1, now);
			if (r >= 0)
				r = nlink_add(s, to, 1, now);
		}
		if (r >= 0)
			r = nlink_add(s, sino, 0, now);
		if (r >= 0)
			r = nlink_add(s, dino, 0, now);
		goto times;
	}
	if (dexists) {
		if (S_ISDIR(smode) && !S_ISDIR(dmode)) {
			r = -ENOTDIR;
			goto end;
		}
		if (!S_ISDIR(smode) && S_ISDIR(dmode)) {
			r = -EISDIR;
			goto end;
		}
		if (S_ISDIR(dmode)) {
			r = has_child(s, dino);
			if (r < 0)
				goto end;
			if (r) {
				r = -ENOTEMPTY;
				goto end;
			}
		}
		/* Predecessor hint: the new file replaces the stored one (write tmp + rename). */
		if (S_ISREG(smode)) {
			store_attr sa, da;
			if (getattr_locked(s, sino, &sa) == 0 && getattr_locked(s, dino, &da) == 0 &&
			    !sa.pred_hint && (da.obj || da.pred_hint)) {
				r = set_pred(s, sino, da.obj ? da.obj : da.pred_hint);
				if (r < 0)
					goto end;
			}
		}
		r = del_dent(s, did);
		if (r >= 0)
			r = drop_link(s, dino, dmode, p2, now, victim_nlink);
		if (r < 0)
			goto end;
		*victim = dino;
	}
	r = move_dent(s, sid, p2, n2, l2);
	if (r >= 0 && S_ISDIR(smode) && p1 != p2) {
		r = nlink_add(s, p1, -1, now);
		if (r >= 0)
			r = nlink_add(s, p2, 1, now);
	}
	if (r >= 0)
		r = nlink_add(s, sino, 0, now); /* ctime */
times:
	if (r >= 0)
		r = touch_dir(s, p1, now);
	if (r >= 0 && p2 != p1)
		r = touch_dir(s, p2, now);
end:
	r = store_end(s, r);
	if (r < 0) {
		*victim = 0;
		*victim_nlink = 0;
	}
out:
	store_unlock(s);
	return r;
}

int store_readlink(store *s, uint64_t ino, char *buf, size_t size)
{
	store_lock(s);
	db_stmt *st = store_stmt(s, ST_READLINK);
	int r = -EIO;
	if (st) {
		db_bind_i64(st, 1, (int64_t)ino);
		int rc = db_step(st);
		if (rc == DB_ROW && !db_col_is_null(st, 0)) {
			const void *p = db_col_blob(st, 0);
			size_t n = db_col_bytes(st, 0);
			if (n > size)
				n = size;
			if (n)
				memcpy(buf, p, n);
			r = (int)n;
		} else {
			r = rc == DB_ROW ? -EINVAL : rc == DB_DONE ? -ENOENT : rc;
		}
		db_reset(st);
	}
	store_unlock(s);
	return r;
}

int store_setattr(store *s, uint64_t ino, const store_attr *a, unsigned mask)
{
	/* Only the columns in mask, numbered ?2.. as they come: every placeholder is bound and
	 * nothing else is (an engine may refuse a parameter the statement does not use). ino=ino
	 * keeps the SET list valid when mask is empty. RETURNING tells whether the inode exists. */
	static const struct {
		unsigned bit;
		const char *col;
	} f[] = {{STORE_SET_MODE, "mode"},   {STORE_SET_UID, "uid"},     {STORE_SET_GID, "gid"},
		 {STORE_SET_SIZE, "size"},   {STORE_SET_ATIME, "atime"}, {STORE_SET_MTIME, "mtime"},
		 {STORE_SET_CTIME, "ctime"}};
	const int64_t v[] = {a->mode, a->uid, a->gid, (int64_t)a->size, a->atime, a->mtime,
			     a->ctime};
	char sql[256] = "UPDATE inodes SET ino=ino";
	size_t len = strlen(sql);
	int64_t bind[sizeof(f) / sizeof(f[0])];
	int nb = 0;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (!(mask & f[i].bit))
			continue;
		len += (size_t)snprintf(sql + len, sizeof(sql) - len, ", %s=?%d", f[i].col, nb + 2);
		bind[nb++] = v[i];
	}
	snprintf(sql + len, sizeof(sql) - len, " WHERE ino=?1 RETURNING ino");
	store_lock(s);
	db_stmt *st;
	int r = -EIO;
	if (db_prepare(s->db, sql, 0, &st) == 0) {
		db_bind_i64(st, 1, (int64_t)ino);
		for (int i = 0; i < nb; i++)
			db_bind_i64(st, i + 2, bind[i]);
		r = store_step_count(s, st);
		if (r == 0)
			r = -ENOENT;
		else if (r > 0)
			r = 0;
		db_finalize(st);
	}
	store_unlock(s);
	return r;
}

int store_readdir(store *s, uint64_t dir, int64_t after, store_dirent_fn fn, void *ctx)
{
	store_lock(s);
	db_stmt *st = store_stmt(s, ST_READDIR);
	int r = -EIO;
	if (st) {
		db_bind_i64(st, 1, (int64_t)dir);
		db_bind_i64(st, 2, after);
		int rc;
		r = 0;
		while ((rc = db_step(st)) == DB_ROW) {
			store_attr a;
			store_row_attr(st, 2, &a);
			if (fn(ctx, db_col_i64(st, 0), db_col_blob(st, 1),
			       db_col_bytes(st, 1), &a))
				break;
		}
		if (rc != DB_ROW && rc != DB_DONE)
			r = rc;
		db_reset(st);
	}
	store_unlock(s);
	return r;
}

int store_parent_locked(store *s, uint64_t ino, uint64_t *parent, char *name, size_t *len)
{
	db_stmt *st = store_stmt(s, ST_PARENT);
	if (!st)
		return -EIO;
	db_bind_i64(st, 1, (int64_t)ino);
	int rc = db_step(st);
	int r = -ENOENT;
	if (rc == DB_ROW) {
		*parent = (uint64_t)db_col_i64(st, 0);
		size_t n = db_col_bytes(st, 1);
		if (n > STORE_NAME_MAX)
			n = STORE_NAME_MAX;
		memcpy(name, db_col_blob(st, 1), n);
		name[n] = 0;
		*len = n;
		r = 0;
	} else if (rc != DB_DONE) {
		r = rc;
	}
	db_reset(st);
	return r;
}

int store_parent(store *s, uint64_t ino, uint64_t *parent, char *name, size_t *len)
{
	store_lock(s);
	int r = store_parent_locked(s, ino, parent, name, len);
	store_unlock(s);
	return r;
}

/* ---- xattrs ---- */

int store_setxattr(store *s, uint64_t ino, const char *name, const void *val, size_t len,
		   int flags)
{
	size_t nl = strlen(name);
	if (nl == 0)
		return -EINVAL;
	if (nl > 255)
		return -ERANGE;
	if (len > 65536)
		return -E2BIG;
	store_lock(s);
	int r = store_begin(s);
	if (r < 0)
		goto out;
	db_stmt *st = store_stmt(s, ST_XGET);
	if (!st) {
		r = -EIO;
		goto end;
	}
	db_bind_i64(st, 1, (int64_t)ino);
	db_bind_blob(st, 2, name, nl);
	int rc = db_step(st);
	int exists = rc == DB_ROW;
	db_reset(st);
	if (rc != DB_ROW && rc != DB_DONE) {
		r = rc;
		goto end;
	}
	if ((flags & 1 /* XATTR_CREATE */) && exists) {
		r = -EEXIST;
		goto end;
	}
	if ((flags & 2 /* XATTR_REPLACE */) && !exists) {
		r = -ENODATA;
		goto end;
	}
	st = store_stmt(s, ST_XSET);
	if (!st) {
		r = -EIO;
		goto end;
	}
	db_bind_i64(st, 1, (int64_t)ino);
	db_bind_blob(st, 2, name, nl);
	db_bind_blob(st, 3, val, len); /* 0 bytes: an empty value, not NULL (db.h) */
	r = store_step_done(s, st);
	if (r >= 0)
		r = nlink_add(s, ino, 0, store_now_ns());
end:
	r = store_end(s, r);
out:
	store_unlock(s);
	return r;
}

ssize_t store_getxattr(store *s, uint64_t ino, const char *name, void *buf, size_t size)
{
	store_lock(s);
	db_stmt *st = store_stmt(s, ST_XGET);
	ssize_t r = -EIO;
	if (st) {
		db_bind_i64(st, 1, (int64_t)ino);
		db_bind_blob(st, 2, name, strlen(name));
		int rc = db_step(st);
		if (rc == DB_ROW) {
			size_t n = db_col_bytes(st, 0);
			if (size == 0) {
				r = (ssize_t)n;
			} else if (n > size) {
				r = -ERANGE;
			} else {
				if (n)
					memcpy(buf, db_col_blob(st, 0), n);
				r = (ssize_t)n;
			}
		} else {
			r = rc == DB_DONE ? -ENODATA : rc;
		}
		db_reset(st);
	}
	store_unlock(s);
	return r;
}

ssize_t store_listxattr(store *s, uint64_t ino, char *buf, size_t size)
{
	store_lock(s);
	db_stmt *st = store_stmt(s, ST_XLIST);
	ssize_t r = -EIO;
	if (st) {
		db_bind_i64(st, 1, (int64_t)ino);
		size_t total = 0;
		int rc;
		r = 0;
		while ((rc = db_step(st)) == DB_ROW) {
			size_t n = db_col_bytes(st, 0);
			if (size) {
				if (total + n + 1 > size) {
					r = -ERANGE;
					break;
				}
				memcpy(buf + total, db_col_blob(st, 0), n);
				buf[total + n] = 0;
			}
			total += n + 1;
		}
		if (r == 0)
			r = rc == DB_DONE ? (ssize_t)total : rc;
		db_reset(st);
	}
	store_unlock(s);
	return r;
}

int store_removexattr(store *s, uint64_t ino, const char *name)
{
	store_lock(s);
	db_stmt *st = store_stmt(s, ST_XDEL);
	int r = -EIO;
	if (st) {
		db_bind_i64(st, 1, (int64_t)ino);
		db_bind_blob(st, 2, name, strlen(name));
		r = store_step_count(s, st); /* RETURNING: one row per xattr deleted */
		if (r == 0)
			r = -ENODATA;
		else if (r > 0)
			r = 0;
	}
	store_unlock(s);
	return r;
}
