/* store.c - the backing directory and its connection: open (init, format check, LOCK, integrity
 * check), reopen, close; the statement cache, transactions and the lock. The schema is in
 * store_schema.c; every statement goes through the SQL driver (db.h, db_sqlite.c).
 * Namespace operations are in store_ns.c, objects and staging in store_data.c, mount-time
 * recovery in store_recover.c, maintenance queries in store_admin.c. Layout: docs/FORMAT.md
 * (backing directory). */
#include "store_internal.h"
#include "store_uri.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "io.h"

#define ICOLS "i.ino,i.mode,i.uid,i.gid,i.nlink,i.size,i.atime,i.mtime,i.ctime,i.rdev,i.obj," \
	      "i.pred_hint,i.staged,(SELECT stored FROM objects WHERE id=i.obj)"

static const char *const sql_text[ST_COUNT] = {
	[ST_GETATTR] = "SELECT " ICOLS " FROM inodes i WHERE i.ino=?1",
	[ST_LOOKUP] = "SELECT " ICOLS " FROM dentries d JOIN inodes i ON i.ino=d.ino "
		      "WHERE d.parent=?1 AND d.name=?2",
	[ST_DENT_GET] = "SELECT d.id, d.ino, i.mode FROM dentries d JOIN inodes i ON i.ino=d.ino "
			"WHERE d.parent=?1 AND d.name=?2",
	/* ?8 the target's length: bound from C, no engine-specific length() of a parameter */
	[ST_INS_INODE] = "INSERT INTO inodes(mode,uid,gid,nlink,size,atime,mtime,ctime,rdev,target)"
			 " VALUES(?1,?2,?3,?4,?8,?5,?5,?5,?6,?7) RETURNING ino",
	[ST_INS_DENT] = "INSERT INTO dentries(parent,name,ino) VALUES(?1,?2,?3)",
	[ST_DEL_DENT] = "DELETE FROM dentries WHERE id=?1",
	[ST_NLINK_ADD] = "UPDATE inodes SET nlink=nlink+?2, ctime=?3 WHERE ino=?1",
	[ST_TOUCH_DIR] = "UPDATE inodes SET mtime=?2, ctime=?2 WHERE ino=?1",
	[ST_HAS_CHILD] = "SELECT 1 FROM dentries WHERE parent=?1 LIMIT 1",
	[ST_MOVE_DENT] = "UPDATE dentries SET parent=?2, name=?3 WHERE id=?1",
	[ST_SET_DENT_INO] = "UPDATE dentries SET ino=?2 WHERE id=?1",
	[ST_PARENT] = "SELECT parent, name FROM dentries WHERE ino=?1 ORDER BY id LIMIT 1",
	[ST_READLINK] = "SELECT target FROM inodes WHERE ino=?1",
	[ST_READDIR] = "SELECT d.id, d.name, " ICOLS " FROM dentries d JOIN inodes i ON i.ino=d.ino"
		       " WHERE d.parent=?1 AND d.id>?2 ORDER BY d.id",
	[ST_XGET] = "SELECT value FROM xattrs WHERE ino=?1 AND name=?2",
	[ST_XSET] = "INSERT INTO xattrs(ino,name,value) VALUES(?1,?2,?3) "
		    "ON CONFLICT(ino, name) DO UPDATE SET value=excluded.value",
	[ST_XDEL] = "DELETE FROM xattrs WHERE ino=?1 AND name=?2 RETURNING ino",
	[ST_XLIST] = "SELECT name FROM xattrs WHERE ino=?1 ORDER BY name",
	[ST_XDEL_ALL] = "DELETE FROM xattrs WHERE ino=?1",
	[ST_DEL_INODE] = "DELETE FROM inodes WHERE ino=?1",
	[ST_SET_PRED] = "UPDATE inodes SET pred_hint=?2 WHERE ino=?1",
	[ST_OBJ_GET] = "SELECT id, base, depth, size, stored, hash, unref FROM objects WHERE id=?1",
	[ST_OBJ_USED_INODE] = "SELECT 1 FROM inodes WHERE obj=?1 UNION ALL "
			      "SELECT 1 FROM inodes WHERE pred_hint=?1 LIMIT 1",
	[ST_OBJ_HAS_DEP] = "SELECT 1 FROM objects WHERE base=?1 LIMIT 1",
	[ST_OBJ_NEEDED] = "SELECT 1 FROM inodes WHERE obj=?1 UNION ALL SELECT 1 FROM inodes "
			  "WHERE pred_hint=?1 AND ino<>?2 UNION ALL SELECT 1 FROM objects "
			  "WHERE base=?1 LIMIT 1",
	[ST_OBJ_UNREF] = "UPDATE objects SET unref=1 WHERE id=?1",
	[ST_OBJ_REREF] = "UPDATE objects SET unref=0 WHERE id=?1",
	[ST_OBJ_DEL] = "DELETE FROM objects WHERE id=?1",
	[ST_OBJ_INS] = "INSERT INTO objects(id,base,depth,size,stored,hash,unref,created) "
		       "VALUES(?1,?2,?3,?4,?5,?6,0,?7)",
	/* meta.value has no type in SQLite (an integer here) and is TEXT elsewhere: the CAST reads
	 * both; SQLite stores the sum as the integer it always was */
	[ST_OBJ_RESERVE] = "UPDATE meta SET value=CAST(value AS BIGINT)+1 WHERE key='next_obj' "
			   "RETURNING CAST(value AS BIGINT)-1",
	[ST_INODE_SET_OBJ] = "UPDATE inodes SET obj=?2, staged=0, pred_hint=NULL, size=?3 WHERE ino=?1",
	[ST_BEGIN_STAGING] = "UPDATE inodes SET staged=1, pred_hint=COALESCE(pred_hint,obj), obj=NULL,"
			     " size=?2, mtime=?3, ctime=?4 WHERE ino=?1",
	[ST_COMMIT_SIZE] = "UPDATE inodes SET size=?2, mtime=?3, ctime=?4 WHERE ino=?1",
	[ST_LIST_STAGED] = "SELECT ino FROM inodes WHERE staged=1 AND nlink>0 ORDER BY mtime, ino",
	[ST_STAGED_BYTES] = "SELECT COALESCE(SUM(size),0) FROM inodes WHERE staged=1",
};

int64_t store_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void store_name_escape(const char *name, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c > 0x20 && c < 0x7f && c != '\\') {
			*out++ = (char)c;
		} else {
			*out++ = '\\';
			*out++ = 'x';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		}
	}
	*out = 0;
}

void store_seterr(char *err, size_t n, const char *fmt, ...)
{
	if (!err || !n)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

/* The engine's name for messages. */
static const char *db_name(const store *s)
{
	return db_dialect(s->db) == DB_SQLITE ? "sqlite" : "postgresql";
}

db_stmt *store_stmt(store *s, int id)
{
	if (!s->st[id]) {
		if (db_prepare(s->db, sql_text[id], DB_PREPARE_PERSISTENT, &s->st[id]) < 0) {
			fprintf(stderr, "tpdefs: %s prepare failed: %s\n", db_name(s),
				db_errmsg(s->db));
			return NULL;
		}
	}
	db_reset(s->st[id]);
	return s->st[id];
}

/* Run a statement that returns no rows (or ignores them). */
int store_step_done(store *s, db_stmt *st)
{
	int rc;
	while ((rc = db_step(st)) == DB_ROW)
		;
	db_reset(st);
	return rc; /* DB_DONE (0) or -errno */
}

int store_step_count(store *s, db_stmt *st)
{
	int rc, n = 0;
	while ((rc = db_step(st)) == DB_ROW)
		n++;
	db_reset(st);
	return rc < 0 ? rc : n;
}

/* A failed transaction statement is logged: the caller only sees an errno. */
static int txn_result(store *s, int r, const char *what)
{
	if (r < 0)
		fprintf(stderr, "tpdefs: %s: %s (%s)\n", db_name(s), db_errmsg(s->db), what);
	return r;
}

int store_begin(store *s)
{
	return txn_result(s, db_begin(s->db), "BEGIN");
}

int store_end(store *s, int r)
{
	if (r < 0) {
		txn_result(s, db_rollback(s->db), "ROLLBACK");
		s->ngone = s->ngone_copy = 0; /* those rows are back */
		return r;
	}
	int c = txn_result(s, db_commit(s->db), "COMMIT");
	if (c < 0) {
		txn_result(s, db_rollback(s->db), "ROLLBACK");
		s->ngone = s->ngone_copy = 0;
		return c;
	}
	return r;
}

void store_lock(store *s)
{
	pthread_mutex_lock(&s->mu);
}

/* Unlock, then tell the reader layer about objects deleted meanwhile (blobs unlinked here,
 * after the transaction that dropped their rows committed). */
void store_unlock(store *s)
{
	uint64_t gone[STORE_GONE_MAX];
	size_t n = s->ngone;
	memcpy(gone, s->gone, n * sizeof(*gone));
	s->ngone = 0;
	struct store_gone_copy copies[STORE_GONE_MAX];
	size_t nc = s->ngone_copy;
	memcpy(copies, s->gone_copy, nc * sizeof(*copies));
	s->ngone_copy = 0;
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < nc; i++)
		store_copy_delete(s, copies[i].ino, copies[i].session, copies[i].seq);
	for (size_t i = 0; i < n; i++) {
		char p[STORE_BLOB_NAME_SIZE];
		store_blob_name(gone[i], p, sizeof(p));
		/* a shared store's blobs wait in trash: another node may still read them */
		if (!s->shared)
			blob_delete(s->blobs, p);
		if (s->gone_fn)
			s->gone_fn(s->gone_ctx, gone[i]);
	}
}

void store_row_attr(db_stmt *st, int c, store_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = (uint64_t)db_col_i64(st, c + 0);
	a->mode = (uint32_t)db_col_i64(st, c + 1);
	a->uid = (uint32_t)db_col_i64(st, c + 2);
	a->gid = (uint32_t)db_col_i64(st, c + 3);
	a->nlink = (uint32_t)db_col_i64(st, c + 4);
	a->size = (uint64_t)db_col_i64(st, c + 5);
	a->atime = db_col_i64(st, c + 6);
	a->mtime = db_col_i64(st, c + 7);
	a->ctime = db_col_i64(st, c + 8);
	a->rdev = (uint64_t)db_col_i64(st, c + 9);
	a->obj = (uint64_t)db_col_i64(st, c + 10);
	a->pred_hint = (uint64_t)db_col_i64(st, c + 11);
	a->staged = (int)db_col_i64(st, c + 12);
	a->stored_bytes = (uint64_t)db_col_i64(st, c + 13);
}

/* ---- open / init ---- */

int store_meta_get(db *d, const char *key, char *buf, size_t n)
{
	db_stmt *st;
	/* damage (a page failing its checksum) is -EIO: not to be taken for a foreign file */
	if (db_prepare(d, "SELECT value FROM meta WHERE key=?1", 0, &st) < 0)
		return db_damaged(d) ? -EIO : -EMEDIUMTYPE;
	db_bind_text(st, 1, key);
	int r = -ENOENT;
	int rs = db_step(st);
	if (rs == DB_ROW) {
		const char *v = db_col_text(st, 0);
		snprintf(buf, n, "%s", v ? v : "");
		r = 0;
	} else if (rs < 0 && db_damaged(d)) {
		r = -EIO;
	}
	db_finalize(st);
	return r;
}

static int is_own_entry(const char *n)
{
	return !strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "LOCK") ||
	       !strcmp(n, "objects") || !strcmp(n, "staging") || !strcmp(n, "tmp") ||
	       !strcmp(n, "lost+found") || !strcmp(n, STORE_SOCK_NAME) || !strcmp(n, "tpdefs.db.init") ||
	       !strcmp(n, "tpdefs.db.init-journal");
}

int store_dir_empty(int dirfd, int (*ours)(const char *name))
{
	int fd = dup(dirfd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int empty = 1;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!ours(e->d_name)) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	return empty;
}

static int init_db(store *s, char *err, size_t errlen)
{
	static const char *const dirs[] = {"objects", "staging", "tmp"};
	for (size_t i = 0; i < 3; i++)
		if (mkdirat(s->dirfd, dirs[i], 0700) < 0 && errno != EEXIST) {
			int e = errno;
			store_seterr(err, errlen, "cannot create %s/%s: %s", s->path, dirs[i], strerror(e));
			return -e;
		}
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/tpdefs.db.init", s->path);
	unlink(p);
	db *d = NULL;
	char msg[256];
	int r = db_open_sqlite(p, DB_OPEN_CREATE, &d, msg, sizeof(msg));
	if (r < 0) {
		store_seterr(err, errlen, "cannot create %s: %s", p, msg);
		return -EIO;
	}
	int64_t now = store_now_ns();
	r = db_begin(d);
	if (r == 0)
		r = store_schema_create(d, now, S_IFDIR | 0755, (uint32_t)getuid(), (uint32_t)getgid());
	if (r == 0)
		r = db_commit(d);
	if (r < 0) {
		store_seterr(err, errlen, "cannot initialise %s: %s", p, db_errmsg(d));
		db_close(d); /* rolls back */
		return -EIO;
	}
	db_close(d);
	char q[PATH_MAX];
	snprintf(q, sizeof(q), "%s/tpdefs.db", s->path);
	if (rename(p, q) < 0) {
		int e = errno;
		store_seterr(err, errlen, "cannot rename %s: %s", p, strerror(e));
		return -e;
	}
	return io_fsync_dirfd(s->dirfd);
}

/* Read-only (a ro mount) opening leaves BACKING as it is: no -wal/-shm is created unless a
 * daemon died and left WAL content to read (db_open_sqlite, DB_OPEN_RO). */
static int open_db(store *s, char *err, size_t errlen)
{
	char p[PATH_MAX], msg[256];
	snprintf(p, sizeof(p), "%s/tpdefs.db", s->path);
	int mode = (s->rdonly ? DB_OPEN_RO : DB_OPEN_RW) | (s->repair ? DB_OPEN_NOVERIFY : 0);
	if (db_open_sqlite(p, mode, &s->db, msg, sizeof(msg)) < 0) {
		store_seterr(err, errlen, "%s: cannot open database: %s", s->path, msg);
		return -EIO;
	}
	int r = store_check_format(s, err, errlen);
	if (r < 0)
		return r;
	/* WAL, synchronous=FULL (db_setup) only now that the file is known to be ours. A read-only
	 * connection changes nothing (the store is in WAL mode since its creation). */
	if (!s->rdonly && db_setup(s->db) < 0) {
		store_seterr(err, errlen, "%s: cannot configure database: %s", s->path, db_errmsg(s->db));
		return -EIO;
	}
	if (!s->rdonly && store_sigs_ensure(s) < 0) {
		store_seterr(err, errlen, "%s: cannot add the tensor signature index: %s", s->path,
		       db_errmsg(s->db));
		return -EIO;
	}
	return 0;
}

/* A page holding the format record failed its checksum or is malformed: damage, which must not
 * read as "not a tpdefs backing directory" (an invitation to re-create the store). */
static int meta_damaged(store *s, char *err, size_t errlen)
{
	store_seterr(err, errlen, "%s: the metadata database is damaged (a page of its header or of "
	       "its format record fails its checksum or is malformed); refusing to serve it. If a tool "
	       "outside tpdefs wrote to tpdefs.db (an older tpdefs, the sqlite3 shell), tpdefs-admin "
	       "upgrade --resum %s repairs the sums; otherwise restore it from a backup", s->path,
	       s->path);
	return -EIO;
}

int store_meta_version(db *d, long *ver)
{
	char v[32];
	int r = store_meta_get(d, "version", v, sizeof(v));
	*ver = r == 0 ? strtol(v, NULL, 10) : 0;
	return r;
}

/* The metadata is a tpdefs store of a version this build reads. */
int store_check_format(store *s, char *err, size_t errlen)
{
	char v[128];
	int r = store_meta_get(s->db, "format", v, sizeof(v));
	if (r == -EIO)
		return meta_damaged(s, err, errlen);
	if (r < 0 || strcmp(v, STORE_FORMAT_NAME) != 0) {
		store_seterr(err, errlen, s->shared ? "%s: the database holds no tpdefs store (tpdefs-admin "
		       "format URI --blobs DIR creates one)" : "%s: not a tpdefs backing directory "
		       "(tpdefs.db has no tpdefs metadata)", s->path);
		return -EMEDIUMTYPE;
	}
	r = store_meta_get(s->db, "version", v, sizeof(v));
	if (r == -EIO)
		return meta_damaged(s, err, errlen);
	if (r < 0) {
		store_seterr(err, errlen, "%s: tpdefs metadata has no format version", s->path);
		return -EMEDIUMTYPE;
	}
	long ver = strtol(v, NULL, 10);
	int newest = s->shared ? STORE_FORMAT_VERSION_SHARED : STORE_FORMAT_VERSION;
	if (ver > newest) {
		store_seterr(err, errlen, "%s: backing format version %ld is newer than this tpdefs "
		       "supports (%d); upgrade tpdefs", s->path, ver, newest);
		return -EPROTONOSUPPORT;
	}
	if (ver < 1) {
		store_seterr(err, errlen, "%s: invalid backing format version '%s'", s->path, v);
		return -EMEDIUMTYPE;
	}
	return 0;
}

/* 1 when a live daemon answers PING on BACKING/control.sock. A connect alone is not enough: the
 * socket of a SIGKILLed daemon whose threads are still finishing (an fsync in flight) accepts
 * connections in the kernel's backlog, and that daemon must be waited for, not reported live. */
static int sock_alive(const store *s)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", s->localfd, STORE_SOCK_NAME);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int ok = 0;
	struct timeval tv = {2, 0};
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
	    send(fd, "PING\n", 5, MSG_NOSIGNAL) == 5) {
		char buf[8];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		ok = n >= 2 && buf[0] == 'O' && buf[1] == 'K';
	}
	close(fd);
	return ok;
}

/* SQLite has no page checksums: a damaged page or index shows only in integrity_check. A damaged
 * index can send a name lookup to another file's inode (wrong bytes, not an error), so the owner
 * checks at open. Indexes are rebuilt from intact tables (REINDEX); anything else refuses. */
static int check_integrity(store *s, char *err, size_t errlen)
{
	for (int pass = 0; pass < 2; pass++) {
		char msg[200] = "";
		if (db_check(s->db, 1, msg, sizeof(msg)) == 0) {
			if (pass)
				fprintf(stderr, "tpdefs: %s: damaged database indexes rebuilt from the tables\n",
					s->path);
			return 0;
		}
		if (pass == 0 && db_reindex(s->db) == 0)
			continue;
		store_seterr(err, errlen, "%s: the metadata database is damaged (%s); refusing to serve it "
		       "(tpdefs-admin verify %s lists what is affected; if a tool outside tpdefs "
		       "wrote to tpdefs.db, tpdefs-admin upgrade --resum repairs the sums)", s->path,
		       msg, s->path);
		return -EIO;
	}
	return -EIO;
}

/* LOCK in the local directory: one daemon (or offline admin command) per store on this node. */
int store_take_lock(store *s, int flags, char *err, size_t errlen)
{
	int r;
	if (!(flags & STORE_O_NOLOCK)) {
		/* read-only: flock needs no write access, and a missing LOCK is not created */
		s->lockfd = s->rdonly ? openat(s->localfd, "LOCK", O_RDONLY | O_CLOEXEC)
				      : openat(s->localfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (s->lockfd < 0 && !(s->rdonly && errno == ENOENT)) {
			r = -errno;
			store_seterr(err, errlen, "%s/LOCK: %s", s->local, strerror(errno));
			return r;
		}
	}
	if (s->lockfd >= 0) { /* no LOCK at all: no daemon can be serving the store */
		/* A daemon that was just unmounted or killed may still be closing (threads finishing an
		 * fsync keep its fds open): give it up to 20 s. A
		 * live one answers on its control socket: refuse at once. */
		int lr;
		if (!(flags & STORE_O_NOWAIT) && flock(s->lockfd, LOCK_EX | LOCK_NB) < 0 &&
		    errno == EWOULDBLOCK && sock_alive(s))
			flags |= STORE_O_NOWAIT;
		for (int i = 0; (lr = flock(s->lockfd, LOCK_EX | LOCK_NB)) < 0 && errno == EWOULDBLOCK &&
				    !(flags & STORE_O_NOWAIT) && i < 400; i++)
			usleep(50000);
		if (lr < 0) {
			r = errno == EWOULDBLOCK ? -EBUSY : -errno;
			store_seterr(err, errlen, "%s: already in use by a running tpdefs daemon (LOCK held)",
			       s->local);
			return r;
		}
	}
	return 0;
}

int store_open(const char *dir, int flags, store **out, char *err, size_t errlen)
{
	return store_open_at(dir, NULL, flags, out, err, errlen);
}

static int open_shared(const char *uri, const store_opts *o, int flags, store **out, char *err,
		       size_t errlen)
{
	store *s = calloc(1, sizeof(*s));
	if (!s) {
		store_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->lockfd = s->dirfd = s->localfd = -1;
	s->shared = 1;
	s->rdonly = !!(flags & STORE_O_RDONLY);
	pthread_mutex_init(&s->mu, NULL);
	int r = store_open_shared(s, uri, o, flags, err, errlen);
	if (r < 0) {
		store_close(s);
		return r;
	}
	*out = s;
	return 0;
}

int store_open_at(const char *dir, const char *local_dir, int flags, store **out, char *err,
		  size_t errlen)
{
	store_opts o = {.local_dir = local_dir};
	return store_open_opts(dir, &o, flags, out, err, errlen);
}

int store_open_opts(const char *dir, const store_opts *o, int flags, store **out, char *err,
		    size_t errlen)
{
	*out = NULL;
	const char *local_dir = o ? o->local_dir : NULL;
	if (dir && store_uri_is_pg(dir))
		return open_shared(dir, o, flags, out, err, errlen);
	if (o && (o->blob_cache_set || o->s3_credentials)) {
		store_seterr(err, errlen, "blob_cache and s3_credentials are for a shared store whose "
			     "blobs are in a bucket; %s is a directory", dir ? dir : "BACKING");
		return -EINVAL;
	}
	if (local_dir) {
		store_seterr(err, errlen, "local_dir is for a store named by a PostgreSQL URI; %s is a "
		       "directory, which is node-local already", dir);
		return -EINVAL;
	}
	if (!dir || !*dir) {
		store_seterr(err, errlen, "no backing directory given");
		return -EINVAL;
	}
	struct stat st;
	if (stat(dir, &st) < 0) {
		int e = errno;
		if (e != ENOENT || (flags & STORE_O_NOCREATE)) {
			store_seterr(err, errlen, "%s: %s", dir, strerror(e));
			return -e;
		}
		if (mkdir(dir, 0700) < 0) {
			e = errno;
			store_seterr(err, errlen, "cannot create backing directory %s: %s", dir, strerror(e));
			return -e;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		store_seterr(err, errlen, "%s: not a directory", dir);
		return -ENOTDIR;
	}
	store *s = calloc(1, sizeof(*s));
	if (!s) {
		store_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->lockfd = s->dirfd = s->localfd = -1;
	s->repair = !!(flags & STORE_O_REPAIR);
	s->rdonly = !!(flags & STORE_O_RDONLY);
	if (s->rdonly)
		flags |= STORE_O_NOCREATE;
	pthread_mutex_init(&s->mu, NULL);
	s->path = realpath(dir, NULL);
	int r = -ENOMEM;
	if (!s->path) {
		r = -errno;
		store_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	s->dirfd = open(s->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = -errno;
		store_seterr(err, errlen, "%s: %s", s->path, strerror(errno));
		goto fail;
	}
	s->localfd = s->dirfd;
	s->local = s->path;
	if ((r = blob_dir_new(s->dirfd, &s->blobs)) < 0) {
		store_seterr(err, errlen, "out of memory");
		goto fail;
	}
	int have_db = faccessat(s->dirfd, "tpdefs.db", F_OK, 0) == 0;
	if (!have_db) {
		r = store_dir_empty(s->dirfd, is_own_entry);
		if (r < 0) {
			store_seterr(err, errlen, "%s: %s", s->path, strerror(-r));
			goto fail;
		}
		if (!r) {
			r = -EMEDIUMTYPE;
			store_seterr(err, errlen, "%s: not a tpdefs backing directory (not empty and has no "
			       "tpdefs metadata); refusing to use it", s->path);
			goto fail;
		}
		if (flags & STORE_O_NOCREATE) {
			r = -EMEDIUMTYPE;
			store_seterr(err, errlen, "%s: not a tpdefs backing directory (empty)", s->path);
			goto fail;
		}
	}
	r = store_take_lock(s, flags, err, errlen);
	if (r < 0)
		goto fail;
	if (!have_db) {
		r = init_db(s, err, errlen);
		if (r < 0)
			goto fail;
	}
	r = open_db(s, err, errlen);
	if (r < 0)
		goto fail;
	if (have_db && !(flags & (STORE_O_NOLOCK | STORE_O_REPAIR))) {
		r = check_integrity(s, err, errlen);
		if (r < 0)
			goto fail;
	}
	*out = s;
	return 0;
fail:
	store_close(s);
	return r;
}

static void close_db(store *s)
{
	for (int i = 0; i < ST_COUNT; i++) {
		db_finalize(s->st[i]);
		s->st[i] = NULL;
	}
	if (s->db) {
		/* The owner folds the WAL back so the directory is self-contained at rest. */
		if (s->lockfd >= 0 && !s->rdonly)
			db_checkpoint(s->db);
		db_close(s->db);
		s->db = NULL;
	}
}

int store_checkpoint(store *s)
{
	store_lock(s);
	int r = db_checkpoint(s->db);
	store_unlock(s);
	return r == 0 ? 0 : -EBUSY;
}

int store_reopen(store *s)
{
	if (s->shared)
		return 0; /* a libpq connection goes on in the child once the parent stops using it */
	store_lock(s);
	close_db(s);
	char err[512];
	int r = open_db(s, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "tpdefs: %s\n", err);
	store_unlock(s);
	return r;
}

void store_close(store *s)
{
	if (!s)
		return;
	close_db(s);
	blob_free(s->blobs);
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->localfd >= 0 && s->localfd != s->dirfd)
		close(s->localfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	pthread_mutex_destroy(&s->mu);
	if (s->local != s->path)
		free(s->local);
	if (s->tmpcache) {
		/* a private cache of an inspection: its block files, then the directory */
		int fd = open(s->tmpcache, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *e;
		while (d && (e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				unlinkat(fd, e->d_name, 0);
		if (d)
			closedir(d);
		else if (fd >= 0)
			close(fd);
		rmdir(s->tmpcache);
		free(s->tmpcache);
	}
	free(s->path);
	free(s);
}

const char *store_dir(const store *s)
{
	return s->path;
}

const char *store_local_dir(const store *s)
{
	return s->local;
}

int store_local_dirfd(const store *s)
{
	return s->localfd;
}

int store_is_shared(const store *s)
{
	return s->shared;
}

int store_dirfd(const store *s)
{
	return s->dirfd;
}

void store_set_obj_gone(store *s, store_obj_gone_fn fn, void *ctx)
{
	s->gone_fn = fn;
	s->gone_ctx = ctx;
}
