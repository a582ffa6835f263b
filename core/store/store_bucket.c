/* store_bucket.c - a shared store whose blobs live in an S3 bucket (docs/SCALE-OUT.md, object
 * storage): format and open of the bucket, and the durable copies of staged files.
 *
 * In a bucket nothing of a node's local disk is seen by the others, so a staged file (written on
 * this node, not yet encoded) lives in local_dir/staging and, each time its size is committed
 * (fsync, close), is first uploaded whole as staging/<ino>: close-to-open holds across nodes and a
 * closed file survives the loss of the node that wrote it. Another node reading it, or taking it
 * over when its node is gone, fetches that copy.
 */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "s3.h"

#define BUCKET_MARKER ".tpdefs-blobs"
#define BUCKET_CACHE_DIR "blobcache"

/* A client for uri (or the canonical form a store records), credentials from cred_file or the
 * environment; each failed try of a request goes to o->log (none without). */
static int client_for(const char *uri, const store_opts *o, s3 **c, char *err, size_t errlen)
{
	const char *cred_file = o ? o->s3_credentials : NULL;
	s3_cfg cfg;
	char msg[512] = "";
	int r = s3_uri_parse(uri, &cfg, msg, sizeof(msg));
	if (r < 0) {
		/* not the URI itself: a refused one may carry a key */
		store_seterr(err, errlen, "--blobs: %s", msg);
		return r;
	}
	if (cred_file && *cred_file)
		snprintf(cfg.cred_file, sizeof(cfg.cred_file), "%s", cred_file);
	cfg.log = o ? o->log : NULL;
	cfg.log_ctx = o ? o->log_ctx : NULL;
	if ((r = s3_new(&cfg, c, msg, sizeof(msg))) < 0)
		store_seterr(err, errlen, "%s", msg);
	return r;
}

typedef struct any_key {
	char first[256];
	int n;
} any_key;

static int note_key(void *ctx, const char *key, uint64_t size, int64_t mtime)
{
	any_key *a = ctx;
	if (!a->n++)
		snprintf(a->first, sizeof(a->first), "%s", key);
	return 1; /* one is enough */
}

int store_bucket_format(const char *uri, const char *id, char *canon, size_t clen, char *err,
			size_t errlen)
{
	s3 *c;
	int r = client_for(uri, NULL, &c, err, errlen); /* format: the one-line error says it */
	if (r < 0)
		return r;
	char desc[S3_URI_MAX];
	s3_cfg_describe(s3_config(c), desc, sizeof(desc));
	char msg[512] = "";
	r = s3_bucket_check(c, msg, sizeof(msg));
	if (r == -ENOENT)
		r = s3_bucket_create(c, msg, sizeof(msg));
	if (r < 0) {
		store_seterr(err, errlen, "%s: %s", desc, msg);
		goto out;
	}
	char other[80] = "";
	r = s3_get(c, BUCKET_MARKER, 0, 32, other);
	if (r == 0) {
		other[32] = 0;
		store_seterr(err, errlen, "%s already holds the blobs of tpdefs store %s; one prefix per "
			     "store", desc, other);
		r = -EEXIST;
		goto out;
	}
	any_key a = {.n = 0};
	r = s3_list(c, "", note_key, &a);
	if (r < 0) {
		store_seterr(err, errlen, "%s: cannot list the bucket: %s", desc, strerror(-r));
		goto out;
	}
	if (a.n) {
		store_seterr(err, errlen, "%s is not empty (it holds %s); the blobs prefix must be new or "
			     "empty", desc, a.first);
		r = -ENOTEMPTY;
		goto out;
	}
	if ((r = s3_put_mem(c, BUCKET_MARKER, id, strlen(id))) < 0) {
		store_seterr(err, errlen, "%s: cannot write %s: %s", desc, BUCKET_MARKER,
			     strerror(-r));
		goto out;
	}
	snprintf(canon, clen, "%s", desc);
out:
	s3_free(c);
	return r;
}

/* The bucket's blobs for store s: a client, the marker checked, the cache under cache_dir. */
int store_bucket_open(store *s, const char *canon, const char *id, const char *cache_dir,
		      const store_opts *o, char *err, size_t errlen)
{
	s3 *c;
	int r = client_for(canon, o, &c, err, errlen);
	if (r < 0)
		return r;
	char msg[512] = "";
	if ((r = s3_bucket_check(c, msg, sizeof(msg))) < 0) {
		store_seterr(err, errlen, "%s: blobs in %s: %s", s->path, canon, msg);
		s3_free(c);
		return r;
	}
	char mark[40] = "";
	size_t idlen = strlen(id);
	r = idlen < sizeof(mark) ? s3_get(c, BUCKET_MARKER, 0, idlen, mark) : -EINVAL;
	if (r < 0 || memcmp(mark, id, idlen)) {
		store_seterr(err, errlen, "%s: %s is not this store's blobs prefix (its %s is %s)",
			     s->path, canon, BUCKET_MARKER, r == -ENOENT ? "missing" :
			     r < 0 ? strerror(-r) : "another store's");
		s3_free(c);
		return r < 0 && r != -ENOENT ? r : -EMEDIUMTYPE;
	}
	uint64_t cap = o && o->blob_cache_set ? o->blob_cache : STORE_BLOB_CACHE_DEFAULT;
	if (s->tmpcache && cap > STORE_BLOB_CACHE_INSPECT)
		cap = STORE_BLOB_CACHE_INSPECT; /* an inspection reads each object once */
	if ((r = blob_s3_new(c, cache_dir, cap, &s->blobs)) < 0)
		store_seterr(err, errlen, "blob cache %s: %s", cache_dir, strerror(-r));
	return r;
}

/* ---- staged files ----
 *
 * Each durable copy has its own key, staging/<ino>.<session>.<seq> (16 hex digits each), and is
 * never overwritten: a commit uploads a new copy, then one transaction records its number in the
 * stage_owner row, only while this session still owns the file, and only then is the copy it
 * replaces deleted. A node that lost its ownership (its database connection and with it its
 * session lock) can still upload, but its copy is named by no row, so nobody reads it; a reader
 * or a node taking over fetches exactly the copy the row names.
 */

void store_copy_key(uint64_t ino, uint64_t session, uint64_t seq, char *buf, size_t size)
{
	snprintf(buf, size, STORE_STAGING_DIR "/%016" PRIx64 ".%016" PRIx64 ".%016" PRIx64, ino,
		 session, seq);
}

/* A name found under staging/ in the bucket: 0 and its parts, or -EINVAL. */
static int copy_parse(const char *name, uint64_t *ino, uint64_t *session, uint64_t *seq)
{
	int used = 0;
	if (strlen(name) != 50 || sscanf(name, "%16" SCNx64 ".%16" SCNx64 ".%16" SCNx64 "%n", ino,
					   session, seq, &used) != 3 || used != 50)
		return -EINVAL;
	for (const char *p = name; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == '.'))
			return -EINVAL;
	return 0;
}

void store_copy_delete(store *s, uint64_t ino, uint64_t session, uint64_t seq)
{
	if (!seq)
		return;
	char key[64];
	store_copy_key(ino, session, seq, key, sizeof(key));
	blob_delete(s->blobs, key); /* best effort: gc removes what a failure leaves */
}

/* Upload the first size bytes of fd as a new copy of ino by this session: its number in *seq
 * (0 and nothing uploaded for size 0: there is nothing to keep). */
static int upload_copy(store *s, uint64_t ino, int fd, uint64_t size, uint64_t *seq)
{
	*seq = 0;
	if (size == 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < size)
		return -EIO; /* the local file lost bytes the row is about to promise */
	uint64_t n = __atomic_add_fetch(&s->copy_seq, 1, __ATOMIC_RELAXED);
	char key[64];
	store_copy_key(ino, s->session, n, key, sizeof(key));
	int r = blob_upload(s->blobs, key, fd, size);
	if (r == 0)
		*seq = n;
	return r;
}

int store_copy_upload(store *s, uint64_t ino, uint64_t size, uint64_t *seq)
{
	*seq = 0;
	if (size == 0)
		return 0; /* creating a file needs no request: it works while the endpoint is away */
	char rel[STORE_STAGING_NAME_SIZE];
	store_staging_name(ino, rel, sizeof(rel));
	int fd = openat(s->dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = upload_copy(s, ino, fd, size, seq);
	close(fd);
	return r;
}

/* ino's staged bytes as the row names them (owner's copy seq, size bytes) into the local
 * staging file: the fd. The copy is fetched into tmp/ first and copied in only when whole, so a
 * fetch that fails half way leaves the local file as it was; the copy-in writes the file in
 * place, so an fd this process holds on it sees the new bytes. No lock held (network). */
static int pull_copy(store *s, uint64_t ino, uint64_t owner, uint64_t seq, uint64_t size)
{
	if (size > 0 && !seq)
		return -EIO; /* the row promises bytes and names no copy of them */
	char rel[STORE_STAGING_NAME_SIZE];
	store_staging_name(ino, rel, sizeof(rel));
	int fd = openat(s->dirfd, rel, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (size == 0) {
		int r = ftruncate(fd, 0) < 0 ? -errno : 0;
		if (r < 0) {
			close(fd);
			return r;
		}
		return fd;
	}
	char tmp[64], key[64];
	int tfd = store_tmp_create(s, tmp, sizeof(tmp));
	if (tfd < 0) {
		close(fd);
		return tfd;
	}
	store_copy_key(ino, owner, seq, key, sizeof(key));
	uint64_t got = 0;
	int r = blob_fetch_file(s->blobs, key, tfd, &got);
	if (r == -ENOENT || (r == 0 && got < size))
		r = -EIO; /* missing or shorter than its committed size: never returned as data */
	if (r == 0)
		r = io_copy_fd(tfd, fd, size);
	close(tfd);
	unlinkat(s->dirfd, tmp, 0);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* ino's attributes and, when it is staged, who owns it and which copy the row names (lock
 * held): -ESTALE when it is not staged (any more). */
static int staged_row_locked(store *s, uint64_t ino, store_attr *a, uint64_t *owner,
			     uint64_t *seq)
{
	*owner = *seq = 0;
	int r = store_getattr_locked(s, ino, a);
	if (r == 0 && !a->staged)
		r = -ESTALE;
	return r < 0 ? r : store_shared_copy_locked(s, ino, owner, seq);
}

int store_bucket_staging_open(store *s, uint64_t ino, int *ours)
{
	*ours = 0;
	store_attr a;
	uint64_t owner, seq;
	store_lock(s);
	int r = staged_row_locked(s, ino, &a, &owner, &seq); /* -ESTALE: the caller looks again */
	store_unlock(s);
	if (r < 0)
		return r;
	if (s->session && owner == s->session) {
		*ours = 1; /* the local file is the newest: the caller opens it */
		return 0;
	}
	return pull_copy(s, ino, owner, seq, a.size);
}

int store_bucket_take(store *s, uint64_t ino, int *taken)
{
	*taken = 0;
	store_attr a;
	uint64_t from, seq;
	store_lock(s);
	int r = staged_row_locked(s, ino, &a, &from, &seq);
	if (r == -ESTALE)
		r = -ENOENT; /* stored meanwhile: nothing to take */
	if (r == 0 && from == s->session) {
		store_unlock(s);
		return 1; /* ours already */
	}
	if (r == 0 && from) {
		int alive = store_shared_alive_locked(s, from);
		if (alive != 0)
			r = alive < 0 ? alive : 1; /* a live node's: leave it */
	}
	store_unlock(s);
	if (r != 0)
		return r < 0 ? r : 0;
	/* the dead node's copy into the local file, then a copy of this session's own, then the
	 * row, only if it still names the copy fetched (nobody else took it meanwhile) */
	int fd = pull_copy(s, ino, from, seq, a.size);
	if (fd < 0)
		return fd;
	uint64_t mine = 0;
	r = upload_copy(s, ino, fd, a.size, &mine);
	close(fd);
	if (r < 0)
		return r;
	store_lock(s);
	r = store_begin(s);
	if (r >= 0)
		r = store_end(s, store_shared_take_locked(s, ino, from, seq, mine));
	store_unlock(s);
	if (r < 0) {
		store_copy_delete(s, ino, s->session, mine);
		return r == -EBUSY ? 0 : r;
	}
	store_copy_delete(s, ino, from, seq);
	*taken = 1;
	return 1;
}

int store_staging_durable(store *s, uint64_t ino)
{
	if (!blob_is_remote(s->blobs)) {
		char rel[STORE_STAGING_NAME_SIZE];
		store_staging_name(ino, rel, sizeof(rel));
		return faccessat(s->dirfd, rel, F_OK, 0) == 0 ? 1 : errno == ENOENT ? 0 : -errno;
	}
	store_attr a;
	uint64_t owner, seq;
	store_lock(s);
	int r = staged_row_locked(s, ino, &a, &owner, &seq);
	store_unlock(s);
	if (r == -ESTALE || (r == 0 && a.size == 0))
		return 1; /* nothing to keep */
	if (r < 0)
		return r;
	if (!seq)
		return 0;
	char key[64];
	uint64_t size;
	store_copy_key(ino, owner, seq, key, sizeof(key));
	r = blob_stat(s->blobs, key, &size);
	return r == 0 ? size >= a.size : r == -ENOENT ? 0 : r;
}

typedef struct copies_scan {
	store *s;
	int64_t before;
	store_copy_fn fn;
	void *ctx;
	int n;
} copies_scan;

static int stale_copy(void *ctx, const char *name, uint64_t size, int64_t mtime_ns)
{
	copies_scan *c = ctx;
	uint64_t ino, session, seq, owner, cur;
	if (copy_parse(name, &ino, &session, &seq) < 0 || mtime_ns >= c->before)
		return 0; /* not ours, or young enough to be a commit in flight */
	store_attr a;
	store_lock(c->s);
	int r = staged_row_locked(c->s, ino, &a, &owner, &cur);
	store_unlock(c->s);
	if ((r == 0 && owner == session && cur == seq) || (r < 0 && r != -ENOENT && r != -ESTALE))
		return 0; /* the copy a row names, or cannot tell */
	char key[64];
	store_copy_key(ino, session, seq, key, sizeof(key));
	if (blob_delete(c->s->blobs, key) == 0) {
		c->n++;
		if (c->fn)
			c->fn(c->ctx, key, size);
	}
	return 0;
}

int store_staging_copies_clean(store *s, int64_t before_ns, store_copy_fn fn, void *ctx)
{
	if (!blob_is_remote(s->blobs))
		return 0;
	copies_scan c = {s, before_ns, fn, ctx, 0};
	int r = blob_list(s->blobs, STORE_STAGING_DIR, stale_copy, &c);
	return r < 0 ? r : c.n;
}
