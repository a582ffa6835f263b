/* ops.c - FUSE low-level operations: translate requests into store / node / chain calls. */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io.h"

/* How long the kernel may cache names and attributes: long when every change goes through this
 * daemon, a second on a shared store (other nodes change it: close-to-open, docs/SCALE-OUT.md). */
#define TIMEOUT (FS(req)->timeout)
/* Staged bytes between early writeback kicks (see do_write). */
#define WB_WINDOW (8u << 20)

typedef struct fs_fh {
	fs_node *n;
	int writer;
	int flushed;
	int direct;            /* write-only: FOPEN_DIRECT_IO, writes bypass the page cache */
	/* S_ISUID/S_ISGID as last checked for this handle's writes (direct only; n->mu): */
	uint64_t priv_epoch;   /* attr_epoch then (PRIV_UNKNOWN: not yet) */
	int priv_left;         /* bits remained: kept by priv_pid's CAP_FSETID */
	int priv_pid;
	int64_t opened_ns;     /* when it was opened (a shared store: the oldest open handle keeps
				* deleted objects' blobs from being unlinked) */
	struct fs_fh *prev, *next; /* fs.handles (fs.hmu) */
} fs_fh;

#define PRIV_UNKNOWN UINT64_MAX

/* Bumped after every change of a mode, owner or group: a direct handle checks S_ISUID/S_ISGID
 * again at its next write (write_privs). */
static atomic_uint_fast64_t attr_epoch;
/* Mode changes of chmod and of the daemon's own S_ISUID/S_ISGID clearing (a read, then a write
 * of the mode) one at a time, so that neither undoes the other. */
static pthread_mutex_t modemu = PTHREAD_MUTEX_INITIALIZER;

static fs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void ns_to_ts(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / 1000000000LL;
	ts->tv_nsec = ns % 1000000000LL;
	if (ts->tv_nsec < 0) {
		ts->tv_nsec += 1000000000LL;
		ts->tv_sec--;
	}
}

/* Attributes as the kernel should see them: the store row, overlaid with live staging state. */
static void fill_stat(fs *f, const store_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blksize = 1 << 20;
	ns_to_ts(a->atime, &st->st_atim);
	ns_to_ts(a->mtime, &st->st_mtim);
	ns_to_ts(a->ctime, &st->st_ctim);
	st->st_blocks = (blkcnt_t)((a->stored_bytes + 511) / 512);
	if (!S_ISREG(a->mode))
		return;
	fs_node *n = fs_node_find(f, a->ino);
	if (n) {
		pthread_mutex_lock(&n->mu);
		if (n->staged) {
			st->st_size = (off_t)n->size;
			ns_to_ts(n->mtime, &st->st_mtim);
			ns_to_ts(n->ctime, &st->st_ctim);
			struct stat ss;
			if (n->sfd >= 0 && fstat(n->sfd, &ss) == 0)
				st->st_blocks = ss.st_blocks;
		}
		pthread_mutex_unlock(&n->mu);
		fs_node_put(f, n);
	} else if (a->staged) {
		char p[4096];
		store_staging_path(f->st, a->ino, p, sizeof(p));
		struct stat ss;
		if (stat(p, &ss) == 0)
			st->st_blocks = ss.st_blocks;
	}
}

/* Reply with an entry for a and take one kernel reference on its node. */
static void reply_entry(fuse_req_t req, const store_attr *a)
{
	fs *f = FS(req);
	fs_node *n;
	int r = fs_node_get(f, a->ino, &n);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = a->ino;
	e.generation = 1;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fill_stat(f, a, &e.attr);
	fs_node_lookup_inc(f, n);
	if (fuse_reply_entry(req, &e) != 0)
		fs_node_forget(f, a->ino, 1);
	fs_node_put(f, n);
}

/* ---- what FUSE leaves to the filesystem (as ext4) ---- */

/* CAP_FSETID as the kernel's capable() sees it: in the effective set, in the initial user
 * namespace (here: the daemon's; one the caller made for itself gives no rights over files).
 * Read from /proc: FUSE requests carry no capabilities. Cannot tell: no (the safe side). */
static int caller_has_fsetid(fuse_req_t req)
{
	int pid = (int)fuse_req_ctx(req)->pid;
	if (pid <= 0)
		return 0;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *fp = fopen(path, "re");
	if (!fp)
		return 0;
	char line[256];
	unsigned long long eff = 0;
	int got = 0;
	while (!got && fgets(line, sizeof(line), fp))
		got = sscanf(line, "CapEff: %llx", &eff) == 1;
	fclose(fp);
	if (!got || !(eff & (1ull << CAP_FSETID)))
		return 0;
	struct stat mine, theirs;
	snprintf(path, sizeof(path), "/proc/%d/ns/user", pid);
	if (stat("/proc/self/ns/user", &mine) < 0 || stat(path, &theirs) < 0)
		return 0;
	return mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev;
}

/* The caller's fsgid or one of its supplementary groups is gid. Cannot tell: no. */
static int caller_in_group(fuse_req_t req, uint32_t gid)
{
	if (fuse_req_ctx(req)->gid == gid)
		return 1;
	gid_t small[64], *list = small;
	int n = fuse_req_getgroups(req, 64, small);
	if (n > 64) {
		list = malloc((size_t)n * sizeof(*list));
		if (!list)
			return 0;
		int m = fuse_req_getgroups(req, n, list);
		n = m <= n ? m : -1; /* grew meanwhile: give up */
	}
	int in = 0;
	for (int i = 0; i < n && !in; i++)
		in = list[i] == gid;
	if (list != small)
		free(list);
	return in;
}

/* The bits a write or truncation by the caller clears (the VFS's setattr_should_drop_suidgid,
 * as on ext4): without CAP_FSETID, S_ISUID, and S_ISGID if the file is group-executable or the
 * caller is not in its group. */
static uint32_t privs_to_clear(fuse_req_t req, const store_attr *a)
{
	if (!S_ISREG(a->mode))
		return 0;
	uint32_t bits = a->mode & S_ISUID;
	if ((a->mode & S_ISGID) && ((a->mode & S_IXGRP) || !caller_in_group(req, a->gid)))
		bits |= S_ISGID;
	return bits && !caller_has_fsetid(req) ? bits : 0;
}

#define XATTR_CAPS "security.capability"

/* Clear what privs_to_clear says, and file capabilities (which any write removes, whoever
 * writes: cap_inode_killpriv), before the write or truncation that asks for it. The kernel's
 * cached attributes are dropped (exec would trust a stale S_ISUID). 1: S_ISUID/S_ISGID remain
 * (the caller may keep them), 0: none remain, or -errno. */
static int clear_privs(fuse_req_t req, fuse_ino_t ino)
{
	fs *f = FS(req);
	store_attr a;
	pthread_mutex_lock(&modemu);
	int r = store_getattr(f->st, ino, &a);
	uint32_t bits = r == 0 ? privs_to_clear(req, &a) : 0;
	if (bits) {
		a.mode &= ~bits;
		a.ctime = store_now_ns();
		r = store_setattr(f->st, ino, &a, STORE_SET_MODE | STORE_SET_CTIME);
		atomic_fetch_add(&attr_epoch, 1);
	}
	if (r == 0 && S_ISREG(a.mode) && store_getxattr(f->st, ino, XATTR_CAPS, NULL, 0) >= 0) {
		r = store_removexattr(f->st, ino, XATTR_CAPS);
		r = r == -ENODATA ? 0 : r;
	}
	pthread_mutex_unlock(&modemu);
	if (r < 0)
		return r;
	if (bits)
		fuse_lowlevel_notify_inval_inode(f->se, ino, -1, 0);
	return (a.mode & (S_ISUID | S_ISGID)) ? 1 : 0;
}

/* Before a write through a direct handle: the kernel clears S_ISUID/S_ISGID before writes
 * through the page cache (a SETATTR), not before these. Checked again only after a mode or
 * owner change, or for another writer while bits remain: the checkpoint path pays nothing. */
static int write_privs(fuse_req_t req, fs_fh *h)
{
	fs_node *n = h->n;
	int pid = (int)fuse_req_ctx(req)->pid;
	uint64_t e = atomic_load(&attr_epoch);
	pthread_mutex_lock(&n->mu);
	int known = h->priv_epoch == e && (!h->priv_left || h->priv_pid == pid);
	pthread_mutex_unlock(&n->mu);
	if (known)
		return 0;
	int r = clear_privs(req, n->ino);
	if (r < 0)
		return r;
	pthread_mutex_lock(&n->mu);
	h->priv_epoch = e; /* e, not the value after a clear: the next write looks once more */
	h->priv_left = r;
	h->priv_pid = pid;
	pthread_mutex_unlock(&n->mu);
	return 0;
}

/* Owner of a new entry (inode_init_owner): in a setgid directory it takes the directory's
 * group and a subdirectory stays setgid. (The kernel already dropped S_ISGID from the mode of
 * a group-executable file whose creator is not in that group.) */
static int new_owner(fuse_req_t req, fuse_ino_t parent, uint32_t *mode, uint32_t *gid)
{
	store_attr pa;
	int r = store_getattr(FS(req)->st, parent, &pa);
	if (r < 0)
		return r;
	*gid = fuse_req_ctx(req)->gid;
	if (S_ISDIR(pa.mode) && (pa.mode & S_ISGID)) {
		*gid = pa.gid;
		if (S_ISDIR(*mode))
			*mode |= S_ISGID;
	}
	return 0;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want |= FUSE_CAP_EXPORT_SUPPORT;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE; /* every write reaches staging at once */
	/* 1 MiB, the kernel's default request limit: writers' 1 MiB buffers (st_blksize) go in
	 * one request. libfuse splices a request only if its pipe can hold max_write + 4 KiB,
	 * i.e. with CAP_SYS_RESOURCE or pipe-max-size > 1 MiB; otherwise it reads it. */
	conn->max_write = FS_IO_MAX;
	conn->max_readahead = FS_IO_MAX;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	store_attr a;
	int r = store_lookup(FS(req)->st, parent, name, strlen(name), &a);
	if (r == -ENOENT) {
		/* negative entry, cacheable: creations go through us */
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		e.entry_timeout = TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_entry(req, &a);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_node_forget(FS(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *fd)
{
	for (size_t i = 0; i < count; i++)
		fs_node_forget(FS(req), fd[i].ino, fd[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	store_attr a;
	int r = store_getattr(FS(req)->st, ino, &a);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	struct stat st;
	fill_stat(FS(req), &a, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)fi;
	fs *f = FS(req);
	store_attr a;
	int r = store_getattr(f->st, ino, &a);
	if (r < 0)
		goto err;
	int64_t now = store_now_ns();
	unsigned mask = STORE_SET_CTIME;
	store_attr na = a;
	na.ctime = now;
	/* A truncation, or the empty SETATTR the kernel sends to drop privileges before a write
	 * through the page cache (and for chown(-1, -1)): the kernel's FUSE code sends the mode
	 * only for S_ISUID and group-executable S_ISGID; ext4 also drops S_ISGID for a caller
	 * outside the file's group. */
	uint32_t drop = 0;
	if (!to_set || (to_set & FUSE_SET_ATTR_SIZE))
		drop = privs_to_clear(req, &a);
	if (to_set & FUSE_SET_ATTR_MODE) {
		na.mode = (a.mode & S_IFMT) | (attr->st_mode & 07777);
		mask |= STORE_SET_MODE;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		na.uid = attr->st_uid;
		mask |= STORE_SET_UID;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		na.gid = attr->st_gid;
		mask |= STORE_SET_GID;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		na.atime = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? now : ts_ns(&attr->st_atim);
		mask |= STORE_SET_ATIME;
	}
	int set_mtime = 0;
	int64_t mtime = 0;
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		mtime = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now : ts_ns(&attr->st_mtim);
		set_mtime = 1;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (S_ISDIR(a.mode)) {
			r = -EISDIR;
			goto err;
		}
		if (!S_ISREG(a.mode)) {
			r = -EINVAL;
			goto err;
		}
		fs_node *n;
		r = fs_node_get(f, ino, &n);
		if (r < 0)
			goto err;
		uint64_t size = (uint64_t)attr->st_size;
		r = fs_node_stage(f, n, size == 0);
		if (r == 0) {
			pthread_rwlock_wrlock(&n->dlock);
			pthread_mutex_lock(&n->mu);
			/* Shrinking: make the smaller size durable before cutting the staging file,
			 * so that a crash in between never leaves the old size over a hole. */
			if (size && size < n->size) {
				if (fsync(n->sfd) < 0)
					r = -errno;
				else
					r = store_commit_size(f->st, ino, size, set_mtime ? mtime : now,
							      now);
			}
			if (r == 0 && ftruncate(n->sfd, (off_t)size) < 0)
				r = -errno;
			if (r == 0)
				fs_node_truncated(n, size, set_mtime ? mtime : now, now);
			unsigned writers = n->nwriters;
			pthread_mutex_unlock(&n->mu);
			if (r == 0)
				r = fs_node_commit(f, n);
			pthread_rwlock_unlock(&n->dlock);
			if (r == 0 && writers == 0)
				encq_push(f->q, ino, 0);
		}
		fs_node_put(f, n);
		if (r < 0)
			goto err;
		set_mtime = 0;
	}
	if (set_mtime) {
		fs_node *n = fs_node_find(f, ino);
		if (n) {
			pthread_mutex_lock(&n->mu);
			n->mtime = mtime;
			pthread_mutex_unlock(&n->mu);
			fs_node_put(f, n);
		}
		na.mtime = mtime;
		mask |= STORE_SET_MTIME;
	}
	if (drop) {
		na.mode &= ~drop;
		mask |= STORE_SET_MODE;
	}
	int owner = mask & (STORE_SET_MODE | STORE_SET_UID | STORE_SET_GID);
	if (owner)
		pthread_mutex_lock(&modemu);
	r = store_setattr(f->st, ino, &na, mask);
	if (owner) {
		atomic_fetch_add(&attr_epoch, 1);
		pthread_mutex_unlock(&modemu);
	}
	if (r < 0)
		goto err;
	op_getattr(req, ino, NULL);
	return;
err:
	fuse_reply_err(req, -r);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[4097];
	int r = store_readlink(FS(req)->st, ino, buf, sizeof(buf) - 1);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	buf[r] = 0;
	fuse_reply_readlink(req, buf);
}

static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      dev_t rdev, const char *target)
{
	uint32_t m = mode, gid;
	store_attr a;
	int r = new_owner(req, parent, &m, &gid);
	if (r == 0)
		r = store_mknode(FS(req)->st, parent, name, strlen(name), m, fuse_req_ctx(req)->uid,
				 gid, rdev, target, &a);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_entry(req, &a);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	make_node(req, parent, name, mode, rdev, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (strlen(link) >= 4096) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	make_node(req, parent, name, S_IFLNK | 0777, 0, link);
}

/* An inode lost its last link: delete it now unless the kernel or a handle still uses it. */
static void unlinked(fs *f, uint64_t ino, uint32_t nlink)
{
	if (!ino || nlink)
		return;
	fs_node *n = fs_node_find(f, ino);
	if (n) {
		fs_node_put(f, n); /* the last put of a linkless node drops it */
		return;
	}
	store_drop_inode(f->st, ino);
}

static void do_unlink(fuse_req_t req, fuse_ino_t parent, const char *name, int isdir)
{
	uint64_t ino = 0;
	uint32_t nlink = 0;
	int r = store_unlink(FS(req)->st, parent, name, strlen(name), isdir, &ino, &nlink);
	if (r == 0)
		unlinked(FS(req), ino, nlink);
	fuse_reply_err(req, -r);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_unlink(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_unlink(req, parent, name, 1);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	uint64_t victim = 0;
	uint32_t vnlink = 0;
	int r = store_rename(FS(req)->st, parent, name, strlen(name), newparent, newname,
			     strlen(newname), flags, &victim, &vnlink);
	if (r == 0)
		unlinked(FS(req), victim, vnlink);
	fuse_reply_err(req, -r);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	store_attr a;
	int r = store_link(FS(req)->st, ino, newparent, newname, strlen(newname), &a);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_entry(req, &a);
}

static void drop_handle(fs *f, fs_fh *h);

/* The empty file committed (a reader's O_TRUNC), and queued for encoding if nobody writes it. */
static int truncate_for_reader(fs *f, fs_node *n)
{
	int r = fs_node_stage(f, n, 1);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&n->dlock);
	r = fs_node_commit(f, n);
	pthread_mutex_lock(&n->mu);
	unsigned writers = n->nwriters;
	pthread_mutex_unlock(&n->mu);
	pthread_rwlock_unlock(&n->dlock);
	if (r == 0 && writers == 0)
		encq_push(f->q, n->ino, 0);
	return r;
}

static int open_handle(fs *f, fuse_ino_t ino, struct fuse_file_info *fi, fs_fh **out)
{
	fs_node *n;
	int r = fs_node_get(f, ino, &n);
	if (r < 0)
		return r;
	fs_fh *h = calloc(1, sizeof(*h));
	if (!h) {
		fs_node_put(f, n);
		return -ENOMEM;
	}
	h->n = n;
	if (store_is_shared(f->st))
		fs_node_refresh(f, n); /* another node may have changed it since: reread */
	int acc = fi->flags & O_ACCMODE;
	h->writer = acc == O_WRONLY || acc == O_RDWR;
	h->direct = acc == O_WRONLY;
	h->priv_epoch = PRIV_UNKNOWN;
	if (h->writer) {
		r = fs_node_stage(f, n, !!(fi->flags & O_TRUNC));
		if (r < 0) {
			free(h);
			fs_node_put(f, n);
			return r;
		}
	} else if (fi->flags & O_TRUNC) {
		/* open(O_RDONLY | O_TRUNC) truncates on Linux too (the kernel has checked write
		 * permission for it); no writer will commit it, so it is committed here */
		r = truncate_for_reader(f, n);
		if (r < 0) {
			free(h);
			fs_node_put(f, n);
			return r;
		}
	}
	pthread_mutex_lock(&n->mu);
	fi->keep_cache = fs_node_opened(n, h->writer);
	/* A write-only handle can neither read nor be mmapped, so its writes can bypass the
	 * mount's page cache (the kernel still invalidates cached pages they overwrite): the
	 * request carries the writer's buffer instead of a copy made in the page cache. */
	fi->direct_io = h->direct;
	pthread_mutex_unlock(&n->mu);
	h->opened_ns = store_now_ns();
	pthread_mutex_lock(&f->hmu);
	h->next = f->handles;
	if (h->next)
		h->next->prev = h;
	f->handles = h;
	pthread_mutex_unlock(&f->hmu);
	fi->fh = (uint64_t)(uintptr_t)h;
	*out = h;
	return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_fh *h;
	if (fi->flags & O_TRUNC) {
		/* the truncation is done here (atomic O_TRUNC; also for O_RDONLY, as on Linux); the
		 * kernel's own S_ISUID/S_ISGID clearing for it is skipped with that capability */
		int r = clear_privs(req, ino);
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	int r = open_handle(FS(req), ino, fi, &h);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (fuse_reply_open(req, fi) != 0)
		drop_handle(FS(req), h); /* interrupted: no release will come */
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	fs *f = FS(req);
	uint32_t m = S_IFREG | (mode & 07777), gid;
	uint64_t epoch = atomic_load(&attr_epoch);
	store_attr a;
	int r = new_owner(req, parent, &m, &gid);
	if (r == 0)
		r = store_mknode(f->st, parent, name, strlen(name), m, fuse_req_ctx(req)->uid, gid, 0,
				 NULL, &a);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fs_fh *h;
	r = open_handle(f, a.ino, fi, &h);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (!(a.mode & (S_ISUID | S_ISGID))) {
		pthread_mutex_lock(&h->n->mu);
		h->priv_epoch = epoch; /* nothing to clear: writes need not look */
		pthread_mutex_unlock(&h->n->mu);
	}
	fs_node_lookup_inc(f, h->n);
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = a.ino;
	e.generation = 1;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fill_stat(f, &a, &e.attr);
	if (fuse_reply_create(req, &e, fi) != 0) {
		fs_node_forget(f, a.ino, 1);
		drop_handle(f, h);
	}
}

/* A stored file's bytes go out as a writev of slices of the pinned decoded chunks: no copy
 * into a reply buffer, no buffer to allocate. */
static void reply_view(fuse_req_t req, fs *f, chain_view *v)
{
	struct iovec iov[CHAIN_VIEW_MAX];
	for (size_t i = 0; i < v->n; i++)
		iov[i] = (struct iovec){.iov_base = (void *)v->slice[i].data, .iov_len = v->slice[i].len};
	fuse_reply_iov(req, iov, (int)v->n);
	chain_view_put(f->ch, v);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	fs *f = FS(req);
	fs_fh *h = (fs_fh *)(uintptr_t)fi->fh;
	fs_node *n = h->n;
	(void)ino;
	pthread_rwlock_rdlock(&n->dlock);
	pthread_mutex_lock(&n->mu);
	uint64_t fsize = n->size, obj = n->obj;
	int staged = n->staged, sfd = n->sfd;
	pthread_mutex_unlock(&n->mu);
	size_t want = 0;
	if ((uint64_t)off < fsize)
		want = fsize - (uint64_t)off < size ? (size_t)(fsize - (uint64_t)off) : size;
	if (want && !staged && obj) {
		chain_view v;
		ssize_t got = chain_view_get(f->ch, obj, want, (uint64_t)off, &v);
		if (got != -E2BIG) { /* -E2BIG: too many small chunks for one view, copy them */
			/* the pins keep the chunks alive after the unlock, whatever replaces the file */
			pthread_rwlock_unlock(&n->dlock);
			if (got < 0)
				fuse_reply_err(req, (int)-got);
			else
				reply_view(req, f, &v);
			return;
		}
	}
	char *buf = malloc(want ? want : 1);
	if (!buf) {
		pthread_rwlock_unlock(&n->dlock);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t got = 0;
	if (want && staged) {
		io_src s;
		io_src_from_fd(&s, sfd, fsize);
		got = s.pread(&s, buf, want, (uint64_t)off);
		if (got >= 0 && (size_t)got < want) {
			/* a sparse tail not yet extended: zeros */
			memset(buf + got, 0, want - (size_t)got);
			got = (ssize_t)want;
		}
	} else if (want && obj) {
		got = chain_pread(f->ch, obj, buf, want, (uint64_t)off);
	}
	pthread_rwlock_unlock(&n->dlock);
	if (got < 0)
		fuse_reply_err(req, (int)-got);
	else
		fuse_reply_buf(req, buf, (size_t)got);
	free(buf);
}

/* Write the request's data (in memory, or in a pipe libfuse spliced it into: then it moves to
 * the staging file without a user-space copy) at off. */
static int stage_write(int sfd, struct fuse_bufvec *in, size_t size, off_t off)
{
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
	dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
	dst.buf[0].fd = sfd;
	dst.buf[0].pos = off;
	size_t done = 0;
	while (done < size) {
		/* both vectors advance: a retry continues where the short copy stopped (libfuse
		 * empties the pipe of whatever an error leaves unconsumed) */
		ssize_t r = fuse_buf_copy(&dst, in, 0);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return 0;
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	(void)ino;
	size_t size = fuse_buf_size(in);
	fs *f = FS(req);
	fs_fh *h = (fs_fh *)(uintptr_t)fi->fh;
	fs_node *n = h->n;
	if (h->direct) {
		int r = write_privs(req, h);
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	encq_throttle(f->q);
	for (;;) {
		pthread_rwlock_rdlock(&n->dlock);
		pthread_mutex_lock(&n->mu);
		if (n->staged && n->sfd >= 0)
			break;
		/* Encoded while this handle was open (every handle had been flushed, e.g. a
		 * close-on-exec copy of the fd): bring the data back to staging. */
		pthread_mutex_unlock(&n->mu);
		pthread_rwlock_unlock(&n->dlock);
		int r = fs_node_stage(f, n, 0);
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	fs_node_write_begin(n, &h->flushed);
	int sfd = n->sfd;
	pthread_mutex_unlock(&n->mu);
	int r = stage_write(sfd, in, size, off);
	if (r == 0) {
		/* Start disk writeback of each completed window now (best effort, errors surface
		 * at fsync): the fsync at close then waits for the tail only, not the file. */
		uint64_t end = (uint64_t)off + size;
		if (end / WB_WINDOW != (uint64_t)off / WB_WINDOW)
			sync_file_range(sfd, (off_t)((end / WB_WINDOW - 1) * WB_WINDOW), WB_WINDOW,
					SYNC_FILE_RANGE_WRITE);
	}
	pthread_mutex_lock(&n->mu);
	fs_node_write_end(n, r == 0, (uint64_t)off + size, store_now_ns());
	pthread_mutex_unlock(&n->mu);
	pthread_rwlock_unlock(&n->dlock);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_write(req, size);
}

/* close(2): make a written file durable (staging fsynced, size committed). */
static int flush_handle(fs *f, fs_fh *h)
{
	if (!h->writer)
		return 0;
	fs_node *n = h->n;
	pthread_rwlock_rdlock(&n->dlock);
	int r = fs_node_commit(f, n);
	pthread_rwlock_unlock(&n->dlock);
	if (r == 0) {
		pthread_mutex_lock(&n->mu);
		fs_node_handle_flushed(n, &h->flushed);
		pthread_mutex_unlock(&n->mu);
	}
	return r;
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	int r = flush_handle(FS(req), (fs_fh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, -r);
}

/* The last close of a handle: a file whose last writer left is queued for encoding. */
static void drop_handle(fs *f, fs_fh *h)
{
	fs_node *n = h->n;
	pthread_mutex_lock(&f->hmu);
	if (h->prev)
		h->prev->next = h->next;
	else
		f->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&f->hmu);
	flush_handle(f, h);
	int enqueue = 0;
	if (h->writer) {
		pthread_mutex_lock(&n->mu);
		enqueue = fs_node_writer_closed(n, h->flushed);
		pthread_mutex_unlock(&n->mu);
	}
	if (enqueue)
		encq_push(f->q, n->ino, 0);
	free(h);
	fs_node_put(f, n);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	drop_handle(FS(req), (fs_fh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	(void)ino;
	fs_fh *h = (fs_fh *)(uintptr_t)fi->fh;
	fs_node *n = h->n;
	pthread_rwlock_rdlock(&n->dlock);
	int r = fs_node_commit(FS(req), n);
	pthread_rwlock_unlock(&n->dlock);
	fuse_reply_err(req, -r);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	store_attr a;
	int r = store_getattr(FS(req)->st, ino, &a);
	if (r == 0 && !S_ISDIR(a.mode))
		r = -ENOTDIR;
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

typedef struct rd_ctx {
	fuse_req_t req;
	char *buf;
	size_t size, used;
} rd_ctx;

static int rd_add(void *ctx, int64_t cookie, const char *name, size_t len, const store_attr *a)
{
	rd_ctx *c = ctx;
	char nm[STORE_NAME_MAX + 1];
	memcpy(nm, name, len);
	nm[len] = 0;
	struct stat st;
	memset(&st, 0, sizeof(st));
	st.st_ino = a->ino;
	st.st_mode = a->mode;
	size_t need = fuse_add_direntry(c->req, c->buf + c->used, c->size - c->used, nm, &st,
					cookie + 2);
	if (need > c->size - c->used)
		return 1;
	c->used += need;
	return 0;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	rd_ctx c = {req, malloc(size ? size : 1), size, 0};
	if (!c.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	struct stat st;
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR;
	if (off < 1) {
		st.st_ino = ino;
		size_t need = fuse_add_direntry(req, c.buf, c.size, ".", &st, 1);
		if (need <= c.size - c.used)
			c.used += need;
		off = 1;
	}
	if (off < 2) {
		st.st_ino = 1;
		size_t need = fuse_add_direntry(req, c.buf + c.used, c.size - c.used, "..", &st, 2);
		if (need <= c.size - c.used) {
			c.used += need;
			off = 2;
		}
	}
	int r = 0;
	if (off >= 2)
		r = store_readdir(FS(req)->st, ino, off - 2, rd_add, &c);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, c.buf, c.used);
	free(c.buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	/* namespace changes are committed synchronously (synchronous=FULL) */
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs sv;
	if (fstatvfs(store_dirfd(FS(req)->st), &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = STORE_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* The name spaces ext4 stores. The kernel checks user.* and trusted.* access and leaves
 * system.* and unknown prefixes to the filesystem: ext4 refuses them (EOPNOTSUPP), and so must
 * we, or anyone could attach them to files they cannot write. (POSIX ACL names never get here:
 * the kernel handles them.) */
static int xattr_name_ok(const char *name)
{
	return !strncmp(name, "user.", 5) || !strncmp(name, "trusted.", 8) ||
	       !strncmp(name, "security.", 9);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	int r = xattr_name_ok(name) ? store_setxattr(FS(req)->st, ino, name, value, size, flags)
				    : -EOPNOTSUPP;
	if (r == 0 && !strcmp(name, XATTR_CAPS))
		atomic_fetch_add(&attr_epoch, 1); /* open write-only handles must look again */
	fuse_reply_err(req, -r);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (!xattr_name_ok(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t r = store_getxattr(FS(req)->st, ino, name, buf, size);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t r = store_listxattr(FS(req)->st, ino, buf, size);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	int r = xattr_name_ok(name) ? store_removexattr(FS(req)->st, ino, name) : -EOPNOTSUPP;
	fuse_reply_err(req, -r);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.create = op_create,
};

int64_t fs_oldest_open(fs *f)
{
	int64_t oldest = 0;
	pthread_mutex_lock(&f->hmu);
	for (fs_fh *h = f->handles; h; h = h->next)
		if (!oldest || h->opened_ns < oldest)
			oldest = h->opened_ns;
	pthread_mutex_unlock(&f->hmu);
	return oldest;
}
