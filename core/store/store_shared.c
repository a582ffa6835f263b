/* store_shared.c - a store whose BACKING is a PostgreSQL URI: metadata in the server, blobs in a
 * directory every node mounts (docs/SCALE-OUT.md). Format and open; everything after opening is
 * the same store code over the PostgreSQL driver (db_pg.c).
 *
 * For now one daemon (or one offline admin command) serves a shared store at a time: it holds a
 * session-level advisory lock for as long as its connection lives, and a second mount on any node
 * is refused with a message naming where the store is mounted. The server drops the lock when the
 * holder's connection ends, so a killed daemon does not keep the store locked. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "db_pg.h"
#include "io.h"
#include "store_uri.h"

#define SHARED_MARKER ".tpdefs-blobs"
#define SHARED_MOUNT_LOCK 0x74706465664d4e54LL /* "tpdefMNT": held by the serving process */

static void seterr(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t n, const char *fmt, ...)
{
	if (!err || !n)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
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

/* 1 when the directory holds nothing (a lost+found aside), 0 when it does, -errno. */
static int dir_empty(int dirfd)
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
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "lost+found"))
			empty = 0;
	closedir(d);
	return empty;
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
		seterr(err, errlen, "%s: cannot connect: %s", u->redacted, msg);
		return r;
	}
	return 0;
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
			seterr(err, errlen, "%s: cannot list the database's tables: %s", u.redacted,
			       db_errmsg(d));
		else if (store_meta_get(d, "format", v, sizeof(v)) == 0 && !strcmp(v, STORE_FORMAT_NAME))
			seterr(err, errlen, "%s: already holds a tpdefs store; refusing to format it",
			       u.redacted);
		else
			seterr(err, errlen, "%s: the database holds %lld tables of something else; "
			       "format needs an empty database", u.redacted, (long long)ntables);
		r = -EEXIST;
		goto out;
	}
	if (!blobs_dir || blobs_dir[0] != '/') {
		seterr(err, errlen, "--blobs needs an absolute path (a directory every node mounts)");
		r = -EINVAL;
		goto out;
	}
	r = mkdir_p(blobs_dir, 0700);
	dfd = r == 0 ? open(blobs_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (dfd < 0) {
		r = r < 0 ? r : -errno;
		seterr(err, errlen, "%s: %s", blobs_dir, strerror(-r));
		goto out;
	}
	char other[80];
	if (read_marker(dfd, other, sizeof(other)) == 0) {
		seterr(err, errlen, "%s is already the blobs directory of tpdefs store %s; one blobs "
		       "directory per store", blobs_dir, other);
		r = -EEXIST;
		goto out;
	}
	if ((r = dir_empty(dfd)) != 1) {
		seterr(err, errlen, "%s is not empty; the blobs directory must be new or empty",
		       blobs_dir);
		r = r < 0 ? r : -ENOTEMPTY;
		goto out;
	}
	unsigned char rnd[16];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		r = -errno;
		seterr(err, errlen, "no random bytes for the store id: %s", strerror(errno));
		goto out;
	}
	char id[40];
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(id + 2 * i, 3, "%02x", rnd[i]);
	static const char *const dirs[] = {"objects", "staging", "tmp"};
	for (size_t i = 0; i < 3; i++)
		if (mkdirat(dfd, dirs[i], 0700) < 0 && errno != EEXIST) {
			r = -errno;
			seterr(err, errlen, "%s/%s: %s", blobs_dir, dirs[i], strerror(errno));
			goto out;
		}
	if ((r = write_marker(dfd, id)) < 0) {
		seterr(err, errlen, "%s/%s: %s", blobs_dir, SHARED_MARKER, strerror(-r));
		goto out;
	}
	made_marker = 1;
	char real[PATH_MAX];
	if (!realpath(blobs_dir, real))
		snprintf(real, sizeof(real), "%s", blobs_dir);
	r = db_begin(d);
	if (r == 0)
		r = store_schema_create(d, store_now_ns(), S_IFDIR | 0755, (uint32_t)getuid(),
					(uint32_t)getgid());
	if (r == 0)
		r = meta_put(d, "blobs_dir", real);
	if (r == 0)
		r = meta_put(d, "store_id", id);
	r = r == 0 ? db_commit(d) : (db_rollback(d), r);
	if (r < 0)
		seterr(err, errlen, "%s: cannot create the schema: %s", u.redacted, db_errmsg(d));
out:
	if (r < 0 && made_marker)
		unlinkat(dfd, SHARED_MARKER, 0);
	if (dfd >= 0)
		close(dfd);
	db_close(d);
	return r;
}

int store_open_shared(store *s, const char *uri, const char *local_dir, int flags, char *err,
		      size_t errlen)
{
	store_uri u;
	int r = connect_uri(uri, &u, &s->db, err, errlen);
	if (r < 0)
		return r;
	if (!(s->path = strdup(u.redacted)))
		return -ENOMEM;
	if ((r = store_check_format(s, err, errlen)) < 0)
		return r;
	char blobs[PATH_MAX], id[80], mark[80];
	if (store_meta_get(s->db, "blobs_dir", blobs, sizeof(blobs)) < 0 ||
	    store_meta_get(s->db, "store_id", id, sizeof(id)) < 0) {
		seterr(err, errlen, "%s: the store records no blobs directory (damaged metadata)",
		       s->path);
		return -EMEDIUMTYPE;
	}
	s->dirfd = open(blobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = -errno;
		seterr(err, errlen, "%s: blobs directory %s: %s (is the shared filesystem mounted on "
		       "this node?)", s->path, blobs, strerror(errno));
		return r;
	}
	if (read_marker(s->dirfd, mark, sizeof(mark)) < 0 || strcmp(mark, id)) {
		seterr(err, errlen, "%s: %s is not this store's blobs directory (its %s is %s): not "
		       "the shared directory the store was formatted with?", s->path, blobs,
		       SHARED_MARKER, faccessat(s->dirfd, SHARED_MARKER, F_OK, 0) ? "missing" :
		       "another store's");
		return -EMEDIUMTYPE;
	}
	if (!local_dir) {
		if (!(flags & STORE_O_NOLOCK)) {
			seterr(err, errlen, "%s: a shared store needs a node-local directory "
			       "(local_dir)", s->path);
			return -EINVAL;
		}
		s->local = NULL;
		return 0; /* inspection: no LOCK, no mount lock */
	}
	if ((r = mkdir_p(local_dir, 0700)) < 0) {
		seterr(err, errlen, "local_dir %s: %s", local_dir, strerror(-r));
		return r;
	}
	if (!(s->local = realpath(local_dir, NULL)) ||
	    (s->localfd = open(s->local, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		seterr(err, errlen, "local_dir %s: %s", local_dir, strerror(errno));
		return r;
	}
	if ((r = store_take_lock(s, flags, err, errlen)) < 0)
		return r;
	if (flags & STORE_O_NOLOCK)
		return 0;
	r = db_pg_hold_lock(s->db, SHARED_MOUNT_LOCK);
	if (r != 1) {
		char host[256] = "?", where[PATH_MAX] = "?";
		store_meta_get(s->db, "mount_host", host, sizeof(host));
		store_meta_get(s->db, "mount_local_dir", where, sizeof(where));
		seterr(err, errlen, "%s: already served by another tpdefs process (host %s, local_dir "
		       "%s); a shared store is served by one mount at a time for now", s->path, host,
		       where);
		return r < 0 ? r : -EBUSY;
	}
	char host[256];
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "?");
	host[sizeof(host) - 1] = 0;
	if (!s->rdonly && ((r = meta_put(s->db, "mount_host", host)) < 0 ||
			   (r = meta_put(s->db, "mount_local_dir", s->local)) < 0)) {
		seterr(err, errlen, "%s: cannot record the mount: %s", s->path, db_errmsg(s->db));
		return r;
	}
	return 0;
}

int store_shared_mount(store *s, char *host, size_t hlen, char *local, size_t llen)
{
	if (!s->shared)
		return -EINVAL;
	store_lock(s);
	int r = db_pg_lock_taken(s->db, SHARED_MOUNT_LOCK);
	if (r == 1) {
		if (store_meta_get(s->db, "mount_host", host, hlen) < 0)
			snprintf(host, hlen, "?");
		if (store_meta_get(s->db, "mount_local_dir", local, llen) < 0)
			snprintf(local, llen, "?");
	}
	store_unlock(s);
	return r;
}
