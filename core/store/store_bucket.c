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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
	if ((r = blob_s3_new(c, cache_dir, cap, &s->blobs)) < 0)
		store_seterr(err, errlen, "blob cache %s: %s", cache_dir, strerror(-r));
	return r;
}

/* ---- staged files ---- */

int store_staging_upload(store *s, uint64_t ino, uint64_t size)
{
	if (!blob_is_remote(s->blobs))
		return 0; /* a directory: the staging file itself is durable and shared */
	if (size == 0)
		return 0; /* nothing to keep (a fetch of a size-0 file reads nothing): creating a file
			   * needs no request, so it works while the endpoint is away */
	char rel[STORE_STAGING_NAME_SIZE];
	store_staging_name(ino, rel, sizeof(rel));
	int fd = openat(s->dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int r = fstat(fd, &st) < 0 ? -errno : (uint64_t)st.st_size < size ? -EIO : 0;
	if (r == 0)
		r = blob_upload(s->blobs, rel, fd, size);
	close(fd);
	return r;
}

int store_staging_durable(store *s, uint64_t ino)
{
	char rel[STORE_STAGING_NAME_SIZE];
	store_staging_name(ino, rel, sizeof(rel));
	uint64_t size;
	int r = blob_is_remote(s->blobs) ? blob_stat(s->blobs, rel, &size)
					 : (faccessat(s->dirfd, rel, F_OK, 0) < 0 ? -errno : 0);
	return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

int store_staging_pull_locked(store *s, uint64_t ino)
{
	store_attr a;
	int r = store_getattr_locked(s, ino, &a);
	if (r < 0)
		return r;
	if (!a.staged)
		return -ENOENT;
	char rel[STORE_STAGING_NAME_SIZE];
	store_staging_name(ino, rel, sizeof(rel));
	/* in place, not renamed over: an fd this process holds on the file sees the new bytes */
	int fd = openat(s->dirfd, rel, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	uint64_t got = 0;
	r = blob_fetch_file(s->blobs, rel, fd, &got);
	if (r == -ENOENT && a.size == 0)
		r = ftruncate(fd, 0) < 0 ? -errno : 0; /* staged empty: nothing was uploaded */
	else if (r == 0 && got < a.size)
		r = -EIO; /* shorter than its committed size: never returned as data */
	else if (r == 0 && got > a.size && ftruncate(fd, (off_t)a.size) < 0)
		r = -errno;
	if (r == -ENOENT)
		r = -EIO;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
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
	uint64_t ino;
	store_attr a;
	if (store_staging_name_parse(name, &ino) < 0 || mtime_ns >= c->before)
		return 0; /* not ours, or young enough to be a commit in flight */
	int r = store_getattr(c->s, ino, &a);
	if (r == 0 && a.staged)
		return 0;
	if (r < 0 && r != -ENOENT)
		return 0;
	char rel[STORE_STAGING_NAME_SIZE];
	store_staging_name(ino, rel, sizeof(rel));
	if (blob_delete(c->s->blobs, rel) == 0) {
		c->n++;
		if (c->fn)
			c->fn(c->ctx, rel, size);
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
