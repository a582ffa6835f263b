/* store_shared.c - a store whose BACKING is a PostgreSQL URI: metadata in the server, blobs in a
 * directory every node mounts (docs/SCALE-OUT.md). Format and open; everything after opening is
 * the same store code over the PostgreSQL driver (db_pg.c).
 *
 * Several nodes serve one store. Each serving daemon is a session: a row in sessions and an
 * advisory lock on its own key, held for as long as its connection lives, so "is that session
 * alive" is a try of its lock, and a killed daemon's locks go with its connection (no heartbeat
 * to miss). Daemons hold the mount lock shared; an offline admin command takes it exclusive and
 * so runs only when no daemon serves the store. A staged file belongs to the session that staged
 * it (stage_owner): only it encodes and commits it, another node's writer gets EBUSY until it is
 * stored, and the files of a dead session are taken over by whoever looks at them next. Blobs of
 * deleted objects go to trash and are unlinked after a grace period: another node may still be
 * reading an object it opened before the delete. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db_pg.h"
#include "io.h"
#include "s3.h"
#include "store_uri.h"

#define SHARED_MARKER ".tpdefs-blobs"
#define SHARED_MOUNT_LOCK 0x74706465664d4e54LL   /* daemons: shared; offline admin: exclusive */
#define SHARED_RECOVER_LOCK 0x7470646566524543LL /* a mount deciding whether it is alone */
#define SHARED_GC_LOCK 0x7470646566204743LL      /* one gc in the whole store */
#define SHARED_SESSION_BASE 0x5400000000000000LL /* + session id: held by that session */
#define SHARED_TRASH_GRACE_NS (600LL * 1000000000LL)

static int64_t session_key(uint64_t id)
{
	return SHARED_SESSION_BASE | (int64_t)(id & 0x00ffffffffffffffULL);
}

/* libpq's messages end with a newline and may span lines: keep the first line. */
static void one_line(char *s)
{
	s[strcspn(s, "\n")] = 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	for (char *q = p + 1; *q; q++) {
		if (*q != '/')
			continue;
		*q = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*q = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

void store_host_name(char *buf, size_t size)
{
	/* TPDEFS_HOST names the node instead of the host name: how tests stand in for several
	 * nodes on one machine */
	const char *env = getenv("TPDEFS_HOST");
	if (env && *env) {
		snprintf(buf, size, "%s", env);
		return;
	}
	if (gethostname(buf, size) < 0)
		snprintf(buf, size, "?");
	buf[size - 1] = 0;
}

static int start_session(store *s, char *err, size_t errlen);
typedef struct live_session {
	uint64_t id;
	const char *host, *local;
	int64_t oldest_open;
	int self;              /* this process's own session */
} live_session;

static int each_live_session(store *s, int (*fn)(void *ctx, const live_session *ls), void *ctx);
static int live_sessions(store *s, char *host, size_t hlen, char *local, size_t llen,
			 char *any_host, size_t alen);

static int meta_put(db *d, const char *key, const char *val)
{
	db_stmt *st;
	int r = db_prepare(d, "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO "
			   "UPDATE SET value=excluded.value", 0, &st);
	if (r < 0)
		return r;
	db_bind_text(st, 1, key);
	db_bind_text(st, 2, val);
	r = db_step(st);
	db_finalize(st);
	return r < 0 ? r : 0;
}

/* The marker names the store a blobs directory belongs to: "<store id>\n". */
static int read_marker(int dirfd, char *id, size_t size)
{
	int fd = openat(dirfd, SHARED_MARKER, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, id, size - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	id[n] = 0;
	id[strcspn(id, "\n")] = 0;
	return 0;
}

static int write_marker(int dirfd, const char *id)
{
	int fd = openat(dirfd, SHARED_MARKER ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	char line[80];
	int n = snprintf(line, sizeof(line), "%s\n", id);
	int r = write(fd, line, (size_t)n) == n && fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	if (r == 0 && renameat(dirfd, SHARED_MARKER ".tmp", dirfd, SHARED_MARKER) < 0)
		r = -errno;
	if (r == 0)
		r = io_fsync_dirfd(dirfd);
	return r;
}

/* What an empty blobs directory may hold. */
static int blobs_dir_entry_ok(const char *n)
{
	return !strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "lost+found");
}

static int connect_uri(const char *uri, store_uri *u, db **d, char *err, size_t errlen)
{
	int r = store_uri_parse(uri, u, err, errlen);
	if (r < 0)
		return r;
	char msg[512];
	r = db_open_pg(uri, d, msg, sizeof(msg));
	if (r < 0) {
		one_line(msg);
		store_seterr(err, errlen, "%s: cannot connect: %s", u->redacted, msg);
		return r;
	}
	return 0;
}

/* A new store's blobs directory: made (or found empty), its subdirectories and marker. On
 * success *dfd is open on it (the caller closes it, and removes the marker if the format fails
 * later). */
static int format_blobs_dir(const char *blobs_dir, const char *id, int *dfd, char *err,
			    size_t errlen)
{
	if (!blobs_dir || blobs_dir[0] != '/') {
		store_seterr(err, errlen, "--blobs needs an absolute path (a directory every node "
			     "mounts) or an s3:// URI");
		return -EINVAL;
	}
	int r = mkdir_p(blobs_dir, 0700);
	*dfd = r == 0 ? open(blobs_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (*dfd < 0) {
		r = r < 0 ? r : -errno;
		store_seterr(err, errlen, "%s: %s", blobs_dir, strerror(-r));
		return r;
	}
	char other[80];
	if (read_marker(*dfd, other, sizeof(other)) == 0) {
		store_seterr(err, errlen, "%s is already the blobs directory of tpdefs store %s; one "
			     "blobs directory per store", blobs_dir, other);
		return -EEXIST;
	}
	if ((r = store_dir_empty(*dfd, blobs_dir_entry_ok)) != 1) {
		store_seterr(err, errlen, "%s is not empty; the blobs directory must be new or empty",
			     blobs_dir);
		return r < 0 ? r : -ENOTEMPTY;
	}
	static const char *const dirs[] = {"objects", "staging", "tmp"};
	for (size_t i = 0; i < 3; i++)
		if (mkdirat(*dfd, dirs[i], 0700) < 0 && errno != EEXIST) {
			r = -errno;
			store_seterr(err, errlen, "%s/%s: %s", blobs_dir, dirs[i], strerror(errno));
			return r;
		}
	if ((r = write_marker(*dfd, id)) < 0)
		store_seterr(err, errlen, "%s/%s: %s", blobs_dir, SHARED_MARKER, strerror(-r));
	return r;
}

int store_format_shared(const char *uri, const char *blobs_dir, char *err, size_t errlen)
{
	store_uri u;
	db *d = NULL;
	int r = connect_uri(uri, &u, &d, err, errlen);
	if (r < 0)
		return r;
	int dfd = -1, made_marker = 0;
	/* an empty database only: never mix a store into someone else's tables */
	db_stmt *st;
	r = db_prepare(d, "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN "
		       "('pg_catalog', 'information_schema')", 0, &st);
	int64_t ntables = -1;
	if (r == 0 && db_step(st) == DB_ROW)
		ntables = db_col_i64(st, 0);
	db_finalize(st);
	if (ntables != 0) {
		char v[64];
		if (ntables < 0)
			store_seterr(err, errlen, "%s: cannot list the database's tables: %s", u.redacted,
			       db_errmsg(d));
		else if (store_meta_get(d, "format", v, sizeof(v)) == 0 && !strcmp(v, STORE_FORMAT_NAME))
			store_seterr(err, errlen, "%s: already holds a tpdefs store; refusing to format it",
			       u.redacted);
		else
			store_seterr(err, errlen, "%s: the database holds %lld tables of something else; "
			       "format needs an empty database", u.redacted, (long long)ntables);
		r = -EEXIST;
		goto out;
	}
	unsigned char rnd[16];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		r = -errno;
		store_seterr(err, errlen, "no random bytes for the store id: %s", strerror(errno));
		goto out;
	}
	char id[40];
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(id + 2 * i, 3, "%02x", rnd[i]);
	char real[PATH_MAX];
	const char *blobs_key = "blobs_dir";
	if (blobs_dir && s3_uri_is(blobs_dir)) {
		blobs_key = "blobs_uri";
		if ((r = store_bucket_format(blobs_dir, id, real, sizeof(real), err, errlen)) < 0)
			goto out;
	} else {
		if ((r = format_blobs_dir(blobs_dir, id, &dfd, err, errlen)) < 0)
			goto out;
		made_marker = 1;
		if (!realpath(blobs_dir, real))
			snprintf(real, sizeof(real), "%s", blobs_dir);
	}
	r = db_begin(d);
	if (r == 0)
		r = store_schema_create(d, store_now_ns(), S_IFDIR | 0755, (uint32_t)getuid(),
					(uint32_t)getgid());
	if (r == 0)
		r = meta_put(d, blobs_key, real);
	if (r == 0)
		r = meta_put(d, "store_id", id);
	r = r == 0 ? db_commit(d) : (db_rollback(d), r);
	if (r < 0)
		store_seterr(err, errlen, "%s: cannot create the schema: %s", u.redacted, db_errmsg(d));
out:
	if (r < 0 && made_marker)
		unlinkat(dfd, SHARED_MARKER, 0);
	if (dfd >= 0)
		close(dfd);
	db_close(d);
	return r;
}

/* Blobs in a bucket: staging/ and tmp/ in the node's own directory (dirfd), the bucket and its
 * cache; an inspection without local_dir gets a private cache removed at close. */
static int open_bucket(store *s, const char *canon, const char *id, const store_opts *o,
		       char *err, size_t errlen)
{
	char cache[PATH_MAX];
	if (s->localfd < 0) {
		char tmpl[] = "/var/tmp/tpdefs-cache.XXXXXX";
		if (!mkdtemp(tmpl) || !(s->tmpcache = strdup(tmpl))) {
			int r = -errno;
			store_seterr(err, errlen, "a private blob cache under /var/tmp: %s",
				     strerror(errno));
			return r ? r : -ENOMEM;
		}
		snprintf(cache, sizeof(cache), "%s", s->tmpcache);
	} else {
		static const char *const dirs[] = {"staging", "tmp"};
		for (size_t i = 0; i < 2; i++)
			if (mkdirat(s->localfd, dirs[i], 0700) < 0 && errno != EEXIST) {
				int r = -errno;
				store_seterr(err, errlen, "%s/%s: %s", s->local, dirs[i],
					     strerror(errno));
				return r;
			}
		if ((s->dirfd = dup(s->localfd)) < 0)
			return -errno;
		/* one cache directory per store: object ids start at 1 in every store, and a
		 * local_dir may serve another store later */
		if (mkdirat(s->localfd, "blobcache", 0700) < 0 && errno != EEXIST) {
			int r = -errno;
			store_seterr(err, errlen, "%s/blobcache: %s", s->local, strerror(errno));
			return r;
		}
		snprintf(cache, sizeof(cache), "%s/blobcache/%s", s->local, id);
	}
	return store_bucket_open(s, canon, id, cache, o, err, errlen);
}

int store_open_shared(store *s, const char *uri, const store_opts *o, int flags, char *err,
		      size_t errlen)
{
	const char *local_dir = o ? o->local_dir : NULL;
	store_uri u;
	int r = connect_uri(uri, &u, &s->db, err, errlen);
	if (r < 0)
		return r;
	if (!(s->path = strdup(u.redacted)))
		return -ENOMEM;
	if ((r = store_check_format(s, err, errlen)) < 0)
		return r;
	/* (the tensor signature index is part of the PostgreSQL schema from its first version) */
	char blobs[PATH_MAX], id[80], mark[80];
	int bucket = store_meta_get(s->db, "blobs_uri", blobs, sizeof(blobs)) == 0;
	if ((!bucket && store_meta_get(s->db, "blobs_dir", blobs, sizeof(blobs)) < 0) ||
	    store_meta_get(s->db, "store_id", id, sizeof(id)) < 0) {
		store_seterr(err, errlen, "%s: the store records no blobs directory (damaged metadata)",
		       s->path);
		return -EMEDIUMTYPE;
	}
	if (!bucket && (o && (o->blob_cache_set || o->s3_credentials))) {
		store_seterr(err, errlen, "%s: blob_cache and s3_credentials are for blobs in a bucket; "
			     "this store's blobs are in the directory %s", s->path, blobs);
		return -EINVAL;
	}
	if (bucket)
		goto local;
	s->dirfd = open(blobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = -errno;
		store_seterr(err, errlen, "%s: blobs directory %s: %s (is the shared filesystem mounted on "
		       "this node?)", s->path, blobs, strerror(errno));
		return r;
	}
	if (read_marker(s->dirfd, mark, sizeof(mark)) < 0 || strcmp(mark, id)) {
		store_seterr(err, errlen, "%s: %s is not this store's blobs directory (its %s is %s): not "
		       "the shared directory the store was formatted with?", s->path, blobs,
		       SHARED_MARKER, faccessat(s->dirfd, SHARED_MARKER, F_OK, 0) ? "missing" :
		       "another store's");
		return -EMEDIUMTYPE;
	}
	if ((r = blob_dir_new(s->dirfd, &s->blobs)) < 0)
		return r;
local:
	if (!local_dir) {
		if (!(flags & STORE_O_NOLOCK)) {
			store_seterr(err, errlen, "%s: a shared store needs a node-local directory "
			       "(local_dir)", s->path);
			return -EINVAL;
		}
		s->local = NULL;
		/* inspection: no LOCK, no mount lock */
		return bucket ? open_bucket(s, blobs, id, o, err, errlen) : 0;
	}
	if ((r = mkdir_p(local_dir, 0700)) < 0) {
		store_seterr(err, errlen, "local_dir %s: %s", local_dir, strerror(-r));
		return r;
	}
	if (!(s->local = realpath(local_dir, NULL)) ||
	    (s->localfd = open(s->local, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		store_seterr(err, errlen, "local_dir %s: %s", local_dir, strerror(errno));
		return r;
	}
	if (bucket && (r = open_bucket(s, blobs, id, o, err, errlen)) < 0)
		return r;
	if ((r = store_take_lock(s, flags, err, errlen)) < 0)
		return r;
	if (flags & STORE_O_NOLOCK)
		return 0;
	if (!(flags & STORE_O_SHARE)) {
		/* an offline command: the store to itself, or not at all */
		r = db_pg_hold_lock(s->db, SHARED_MOUNT_LOCK, 0);
		if (r != 1) {
			store_seterr(err, errlen, "%s: served by a mounted tpdefs daemon; run the command "
			       "through it (on its host) or unmount first", s->path);
			return r < 0 ? r : -EBUSY;
		}
		s->alone = 1;
		return 0;
	}
	return start_session(s, err, errlen);
}

/* A serving daemon: its session row and lock, the mount lock shared, and (under the recovery
 * lock, released by store_recover) whether any other session is alive. */
static int start_session(store *s, char *err, size_t errlen)
{
	if (getrandom(&s->session, sizeof(s->session), 0) != (ssize_t)sizeof(s->session)) {
		store_seterr(err, errlen, "no random bytes for the session id: %s", strerror(errno));
		return -EIO;
	}
	s->session &= 0x00ffffffffffffffULL;
	int r = db_pg_hold_lock(s->db, session_key(s->session), 0);
	if (r == 1)
		r = db_pg_hold_lock(s->db, SHARED_MOUNT_LOCK, 1);
	if (r != 1) {
		store_seterr(err, errlen, "%s: an offline tpdefs-admin command has the store; try again "
		       "when it is done", s->path);
		return r < 0 ? r : -EBUSY;
	}
	if ((r = db_pg_lock_wait(s->db, SHARED_RECOVER_LOCK)) < 0) {
		store_seterr(err, errlen, "%s: %s", s->path, db_errmsg(s->db));
		return r;
	}
	s->recover_locked = 1;
	char host[256];
	store_host_name(host, sizeof(host));
	db_stmt *st;
	r = db_prepare(s->db, "INSERT INTO sessions(id, host, local_dir, pid, started) "
		       "VALUES(?1, ?2, ?3, ?4, ?5)", 0, &st);
	if (r == 0) {
		db_bind_i64(st, 1, (int64_t)s->session);
		db_bind_text(st, 2, host);
		db_bind_text(st, 3, s->local);
		db_bind_i64(st, 4, getpid());
		db_bind_i64(st, 5, store_now_ns());
		r = db_step(st);
		db_finalize(st);
	}
	if (r < 0) {
		store_seterr(err, errlen, "%s: cannot record the session: %s", s->path, db_errmsg(s->db));
		return r;
	}
	int others = live_sessions(s, NULL, 0, NULL, 0, NULL, 0);
	if (others < 0) {
		store_seterr(err, errlen, "%s: cannot list the sessions: %s", s->path, db_errmsg(s->db));
		return others;
	}
	s->alone = others == 0;
	if (s->rdonly)
		store_shared_recovered(s);
	return 0;
}

void store_shared_recovered(store *s)
{
	if (s->shared && s->recover_locked) {
		db_pg_unlock(s->db, SHARED_RECOVER_LOCK);
		s->recover_locked = 0;
	}
}

/* Other sessions that are alive (their lock is held); dead ones' rows are removed. With host,
 * the first live one on this host (or any) is described. Count, or -errno. Lock held or not
 * (the caller's business: this runs its own statements). */
/* Call fn for every session whose node is alive (its session lock is held; this process's own
 * counts as alive), oldest first, and remove the rows of dead ones. fn stops the walk with a
 * negative return. 0, or -errno. The caller holds the store lock or owns the store alone. */
static int each_live_session(store *s, int (*fn)(void *ctx, const live_session *ls), void *ctx)
{
	db_stmt *st;
	int r = db_prepare(s->db, "SELECT id, host, local_dir, oldest_open FROM sessions ORDER BY "
			   "started", 0, &st);
	if (r < 0)
		return r;
	uint64_t dead[64];
	size_t ndead = 0;
	while ((r = db_step(st)) == DB_ROW) {
		live_session ls = {(uint64_t)db_col_i64(st, 0), db_col_text(st, 1),
				   db_col_text(st, 2), db_col_i64(st, 3), 0};
		ls.self = s->session && ls.id == s->session;
		if (!ls.self) {
			/* (a try of one's own lock would succeed: the lock is re-entrant) */
			int taken = db_pg_lock_taken(s->db, session_key(ls.id));
			if (taken < 0) {
				r = taken;
				break;
			}
			if (!taken) {
				if (ndead < 64)
					dead[ndead++] = ls.id;
				continue;
			}
		}
		if (!ls.host)
			ls.host = "?";
		if (!ls.local)
			ls.local = "";
		if ((r = fn(ctx, &ls)) < 0)
			break;
	}
	db_finalize(st);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ndead; i++) {
		if (db_prepare(s->db, "DELETE FROM sessions WHERE id=?1", 0, &st) == 0) {
			db_bind_i64(st, 1, (int64_t)dead[i]);
			db_step(st);
			db_finalize(st);
		}
	}
	return 0;
}

typedef struct others_ctx {
	char me[256];
	char *host, *local, *any_host;
	size_t hlen, llen, alen;
	int alive;
} others_ctx;

static int count_other(void *ctx, const live_session *ls)
{
	others_ctx *c = ctx;
	if (ls->self)
		return 0;
	if (c->any_host && c->alive == 0)
		snprintf(c->any_host, c->alen, "%s", ls->host);
	if (c->host && !strcmp(ls->host, c->me) && !c->host[0]) {
		snprintf(c->host, c->hlen, "%s", ls->host);
		snprintf(c->local, c->llen, "%s", ls->local);
	}
	c->alive++;
	return 0;
}

/* Other sessions that are alive; with host, the first live one on this host is described, with
 * any_host the first of any. Count, or -errno. */
static int live_sessions(store *s, char *host, size_t hlen, char *local, size_t llen,
			 char *any_host, size_t alen)
{
	others_ctx c = {.host = host, .local = local, .any_host = any_host, .hlen = hlen,
			.llen = llen, .alen = alen};
	store_host_name(c.me, sizeof(c.me));
	int r = each_live_session(s, count_other, &c);
	return r < 0 ? r : c.alive;
}

int store_shared_mount(store *s, char *host, size_t hlen, char *local, size_t llen)
{
	if (!s->shared)
		return -EINVAL;
	host[0] = local[0] = 0;
	char any[256] = "";
	store_lock(s);
	int r = live_sessions(s, host, hlen, local, llen, any, sizeof(any));
	store_unlock(s);
	if (r > 0 && !host[0])
		snprintf(host, hlen, "%s", any); /* served, but from other hosts only */
	return r < 0 ? r : r > 0;
}

typedef struct dirs_ctx {
	char me[256];
	char **dirs;
	size_t n, cap;
} dirs_ctx;

static int add_local_dir(void *ctx, const live_session *ls)
{
	dirs_ctx *c = ctx;
	if (strcmp(ls->host, c->me))
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 4;
		char **p = realloc(c->dirs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		c->dirs = p;
		c->cap = cap;
	}
	if (!(c->dirs[c->n] = strdup(ls->local)))
		return -ENOMEM;
	c->n++;
	return 0;
}

int store_shared_local_dirs(store *s, char ***dirs, size_t *n)
{
	*dirs = NULL;
	*n = 0;
	if (!s->shared)
		return -EINVAL;
	dirs_ctx c = {.dirs = NULL};
	store_host_name(c.me, sizeof(c.me));
	store_lock(s);
	int r = each_live_session(s, add_local_dir, &c);
	store_unlock(s);
	if (r < 0) {
		for (size_t i = 0; i < c.n; i++)
			free(c.dirs[i]);
		free(c.dirs);
		return r;
	}
	*dirs = c.dirs;
	*n = c.n;
	return 0;
}

/* ---- staging ownership (lock and, where said, a transaction held) ---- */

static int owner_of(store *s, uint64_t ino, uint64_t *owner)
{
	db_stmt *st;
	int r = db_prepare(s->db, "SELECT session FROM stage_owner WHERE ino=?1", 0, &st);
	if (r < 0)
		return r;
	db_bind_i64(st, 1, (int64_t)ino);
	r = db_step(st);
	*owner = r == DB_ROW ? (uint64_t)db_col_i64(st, 0) : 0;
	db_finalize(st);
	return r < 0 ? r : 0;
}

static int set_owner(store *s, uint64_t ino, uint64_t owner)
{
	db_stmt *st;
	int r = db_prepare(s->db, owner ? "INSERT INTO stage_owner(ino, session) VALUES(?1, ?2) ON "
			   "CONFLICT(ino) DO UPDATE SET session=excluded.session"
			   : "DELETE FROM stage_owner WHERE ino=?1", 0, &st);
	if (r < 0)
		return r;
	db_bind_i64(st, 1, (int64_t)ino);
	if (owner)
		db_bind_i64(st, 2, (int64_t)owner);
	r = db_step(st);
	db_finalize(st);
	return r < 0 ? r : 0;
}

int store_shared_claim_locked(store *s, uint64_t ino, int take_live)
{
	if (!s->shared)
		return 0;
	if (!s->session)
		return s->alone ? 0 : -EBUSY; /* an admin command: only with the store to itself */
	uint64_t owner;
	int r = owner_of(s, ino, &owner);
	if (r < 0)
		return r;
	if (owner && owner != s->session && !take_live) {
		int alive = db_pg_lock_taken(s->db, session_key(owner));
		if (alive < 0)
			return alive;
		if (alive)
			return -EBUSY; /* staged by another node that has not stored it yet */
	}
	return owner == s->session ? 0 : set_owner(s, ino, s->session);
}

int store_shared_owned_locked(store *s, uint64_t ino)
{
	if (!s->shared)
		return 1;
	if (!s->session)
		return s->alone;
	uint64_t owner;
	int r = owner_of(s, ino, &owner);
	return r < 0 ? r : owner == s->session;
}

/* Run a prepared statement and count the rows it changed (RETURNING 1), then finalize it. */
static int count_rows(db_stmt *st)
{
	int n = 0, rc;
	while ((rc = db_step(st)) == DB_ROW)
		n++;
	db_finalize(st);
	return rc == DB_DONE ? n : rc < 0 ? rc : -EIO;
}

/* (owner_of without the copy: stores whose blobs are in a directory may predate that column) */
int store_shared_copy_locked(store *s, uint64_t ino, uint64_t *owner, uint64_t *seq)
{
	*owner = *seq = 0;
	db_stmt *st;
	int r = db_prepare(s->db, "SELECT session, copy FROM stage_owner WHERE ino=?1", 0, &st);
	if (r < 0)
		return r;
	db_bind_i64(st, 1, (int64_t)ino);
	r = db_step(st);
	if (r == DB_ROW) {
		*owner = (uint64_t)db_col_i64(st, 0);
		*seq = (uint64_t)db_col_i64(st, 1);
	}
	db_finalize(st);
	return r < 0 ? r : 0;
}

int store_shared_set_copy_locked(store *s, uint64_t ino, uint64_t seq, uint64_t *prev)
{
	uint64_t owner;
	int r = store_shared_copy_locked(s, ino, &owner, prev);
	if (r < 0)
		return r;
	if (owner != s->session || !s->session)
		return -EBUSY; /* no longer ours: another node took it over */
	db_stmt *st;
	if ((r = db_prepare(s->db, "UPDATE stage_owner SET copy=?2 WHERE ino=?1 AND session=?3 "
			    "RETURNING 1", 0, &st)) < 0)
		return r;
	db_bind_i64(st, 1, (int64_t)ino);
	db_bind_i64(st, 2, (int64_t)seq);
	db_bind_i64(st, 3, (int64_t)s->session);
	r = count_rows(st);
	return r < 0 ? r : r == 1 ? 0 : -EBUSY;
}

int store_shared_take_locked(store *s, uint64_t ino, uint64_t from, uint64_t from_seq,
			     uint64_t seq)
{
	db_stmt *st;
	int r = from ? db_prepare(s->db, "UPDATE stage_owner SET session=?2, copy=?3 WHERE ino=?1 "
				  "AND session=?4 AND copy=?5 RETURNING 1", 0, &st)
		     : db_prepare(s->db, "INSERT INTO stage_owner(ino, session, copy) VALUES(?1, ?2, "
				  "?3) ON CONFLICT(ino) DO NOTHING RETURNING 1", 0, &st);
	if (r < 0)
		return r;
	db_bind_i64(st, 1, (int64_t)ino);
	db_bind_i64(st, 2, (int64_t)s->session);
	db_bind_i64(st, 3, (int64_t)seq);
	if (from) {
		db_bind_i64(st, 4, (int64_t)from);
		db_bind_i64(st, 5, (int64_t)from_seq);
	}
	r = count_rows(st);
	return r < 0 ? r : r == 1 ? 0 : -EBUSY;
}

int store_shared_alive_locked(store *s, uint64_t session)
{
	return db_pg_lock_taken(s->db, session_key(session));
}

int store_shared_disown_locked(store *s, uint64_t ino)
{
	if (!s->shared)
		return 0;
	if (s->blobs && blob_is_remote(s->blobs)) {
		/* stored (or gone): its durable copy goes once this transaction commits, whoever
		 * staged it (an offline flush stores another session's files too) */
		uint64_t owner, seq;
		int r = store_shared_copy_locked(s, ino, &owner, &seq);
		if (r < 0)
			return r;
		if (seq && s->ngone_copy < STORE_GONE_MAX)
			s->gone_copy[s->ngone_copy++] = (struct store_gone_copy){ino, owner, seq};
		return set_owner(s, ino, 0);
	}
	return s->session ? set_owner(s, ino, 0) : 0;
}

int store_stage_mine(store *s, uint64_t ino)
{
	if (!s->shared)
		return 1;
	if (!s->session)
		return s->alone;
	if (blob_is_remote(s->blobs)) {
		int taken;
		return store_bucket_take(s, ino, &taken);
	}
	store_lock(s);
	int r = store_begin(s);
	if (r >= 0)
		r = store_end(s, store_shared_claim_locked(s, ino, 0));
	store_unlock(s);
	return r == 0 ? 1 : r == -EBUSY ? 0 : r;
}

int store_stage_takeover(store *s, uint64_t ino)
{
	if (!s->shared || !s->session)
		return 0;
	if (blob_is_remote(s->blobs)) {
		int taken, r = store_bucket_take(s, ino, &taken);
		return r < 0 ? r : taken;
	}
	store_lock(s);
	uint64_t owner;
	int r = owner_of(s, ino, &owner);
	if (r == 0 && owner == s->session)
		r = 1; /* ours already: nothing to take over */
	else if (r == 0 && owner && db_pg_lock_taken(s->db, session_key(owner)) != 0)
		r = 1; /* a live node's (or cannot tell): leave it */
	else if (r == 0) {
		r = store_begin(s);
		if (r >= 0)
			r = store_end(s, store_shared_claim_locked(s, ino, 0));
		r = r == 0 ? 2 : r == -EBUSY ? 1 : r;
	}
	store_unlock(s);
	return r < 0 ? r : r == 2;
}

/* ---- blobs of deleted objects ---- */

int store_shared_trash_locked(store *s, const store_obj *o)
{
	db_stmt *st;
	int r = db_prepare(s->db, "INSERT INTO trash(id, base, stored, at) VALUES(?1, ?2, ?3, ?4) "
			   "ON CONFLICT(id) DO NOTHING", 0, &st);
	if (r < 0)
		return r;
	db_bind_i64(st, 1, (int64_t)o->id);
	if (o->base)
		db_bind_i64(st, 2, (int64_t)o->base);
	db_bind_i64(st, 3, (int64_t)o->stored);
	db_bind_i64(st, 4, store_now_ns());
	r = db_step(st);
	db_finalize(st);
	return r < 0 ? r : 0;
}

int store_trash_get(store *s, uint64_t id, store_obj *o)
{
	if (!s->shared)
		return -ENOENT;
	memset(o, 0, sizeof(*o));
	store_lock(s);
	db_stmt *st;
	int r = db_prepare(s->db, "SELECT base, stored FROM trash WHERE id=?1", 0, &st);
	if (r == 0) {
		db_bind_i64(st, 1, (int64_t)id);
		r = db_step(st);
		if (r == DB_ROW) {
			o->id = id;
			o->base = (uint64_t)db_col_i64(st, 0);
			o->stored = (uint64_t)db_col_i64(st, 1);
			o->unref = 1;
			r = 0;
		} else if (r == DB_DONE) {
			r = -ENOENT;
		}
		db_finalize(st);
	}
	store_unlock(s);
	return r;
}

int store_shared_set_oldest_open(store *s, int64_t ns)
{
	if (!s->shared || !s->session)
		return 0;
	store_lock(s);
	db_stmt *st;
	int r = db_prepare(s->db, "UPDATE sessions SET oldest_open=?2 WHERE id=?1", 0, &st);
	if (r == 0) {
		db_bind_i64(st, 1, (int64_t)s->session);
		db_bind_i64(st, 2, ns);
		r = db_step(st);
		db_finalize(st);
	}
	store_unlock(s);
	return r < 0 ? r : 0;
}

/* The oldest open handle of any live session (0: none), so that no blob a reader may still open
 * is unlinked. Lock held. */
static int min_open(void *ctx, const live_session *ls)
{
	int64_t *oldest = ctx;
	if (ls->oldest_open > 0 && (!*oldest || ls->oldest_open < *oldest))
		*oldest = ls->oldest_open;
	return 0;
}

static int64_t oldest_open_anywhere(store *s)
{
	int64_t oldest = 0;
	return each_live_session(s, min_open, &oldest) < 0 ? -1 : oldest;
}

int store_shared_sweep(store *s, int64_t grace_ns)
{
	if (!s->shared)
		return 0;
	if (grace_ns < 0) {
		const char *env = getenv("TPDEFS_TRASH_GRACE_S");
		grace_ns = env ? strtoll(env, NULL, 10) * 1000000000LL : SHARED_TRASH_GRACE_NS;
	}
	uint64_t *ids = NULL;
	size_t n = 0;
	store_lock(s);
	db_stmt *st;
	int64_t cutoff = store_now_ns() - grace_ns, oldest = oldest_open_anywhere(s);
	if (oldest < 0)
		cutoff = 0; /* cannot tell who reads what: keep everything this time */
	else if (oldest && oldest < cutoff)
		cutoff = oldest; /* a handle opened before that may still read those objects */
	int r = db_prepare(s->db, "SELECT id FROM trash WHERE at < ?1", 0, &st);
	if (r == 0) {
		db_bind_i64(st, 1, cutoff);
		r = store_collect_ids(s, st, &ids, &n);
		db_finalize(st);
	}
	size_t done = 0;
	for (size_t i = 0; r >= 0 && i < n; i++) {
		char p[STORE_BLOB_NAME_SIZE];
		store_blob_name(ids[i], p, sizeof(p));
		if (blob_delete(s->blobs, p) < 0)
			continue; /* kept in trash: tried again next time */
		if (db_prepare(s->db, "DELETE FROM trash WHERE id=?1", 0, &st) == 0) {
			db_bind_i64(st, 1, (int64_t)ids[i]);
			db_step(st);
			db_finalize(st);
		}
		done++;
	}
	store_unlock(s);
	free(ids);
	return r < 0 ? r : (int)done;
}

/* ---- one gc in the whole store ---- */

int store_gc_lock(store *s)
{
	if (!s->shared)
		return 0;
	store_lock(s);
	int r = db_pg_hold_lock(s->db, SHARED_GC_LOCK, 0);
	store_unlock(s);
	return r == 1 ? 0 : r == 0 ? -EBUSY : r;
}

void store_gc_unlock(store *s)
{
	if (!s->shared)
		return;
	store_lock(s);
	db_pg_release_lock(s->db, SHARED_GC_LOCK, 0);
	store_unlock(s);
}
