/* blob_s3.c - blobs in an S3 bucket, read through the node-local block cache (blob_cache.h).
 *
 * A read fetches the blocks it covers that are not cached, each run of consecutive missing blocks
 * with one ranged GET, so a 4 KiB read costs one block of its chunk, not the blob. A reader that
 * goes front to back (and the chain reader's hints for the chunks it decodes next) starts GETs
 * ahead of it on a small pool of fetch threads. A put uploads the finished file (multipart above
 * 64 MiB, checked) before returning, and keeps its bytes in the cache: the node that wrote a
 * version is the one most likely to read it back next (reverse ingest re-reads it at once).
 *
 * Threads: any thread may call anything. The fetch pool's jobs hold copies of what they need;
 * blob_free waits for them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blob_cache.h"
#include "blob_internal.h"
#include "pool.h"

#define RUN_MAX 8        /* blocks fetched by one GET at most */
#define RA_BLOCKS 16     /* read ahead of a sequential reader */
#define RA_JOB_BLOCKS 4  /* blocks one read-ahead job fetches: a window is several jobs, so the
			  * fetch threads have GETs in flight at once */
#define RA_JOBS_MAX 16   /* read-ahead jobs queued at most; more hints are dropped */
#define RA_THREADS 4
#define SEED_MAX_SHARE 4 /* a put larger than capacity / this is not kept in the cache */

typedef struct s3_blobs {
	blob_store b;
	s3 *c;
	bcache *cache;
	pool *ra;
	pthread_mutex_t mu; /* guards ra (made on first use) and ra_jobs */
	unsigned ra_jobs;
} s3_blobs;

typedef struct s3_rfile {
	io_rfile f;
	s3_blobs *o;
	char key[BCACHE_KEY_MAX + 1];
	uint64_t next; /* where the last read ended (sequential detection; racy by design: a hint) */
	uint64_t ra_next; /* first block a sequential read-ahead has not asked for yet (a hint too) */
} s3_rfile;

static uint64_t block_len(uint64_t size, uint64_t blk)
{
	uint64_t off = blk * BCACHE_BLOCK;
	return size - off < BCACHE_BLOCK ? size - off : BCACHE_BLOCK;
}

/* Fetch blocks [first, first + n) of key, all claimed by the caller, with one GET; fill the cache
 * (or release the claims on failure). The bytes are left in run. */
static int fetch_run(s3_blobs *o, const char *key, uint64_t size, uint64_t first, uint64_t n,
		     uint8_t *run)
{
	uint64_t off = first * BCACHE_BLOCK;
	uint64_t end = (first + n) * BCACHE_BLOCK < size ? (first + n) * BCACHE_BLOCK : size;
	int r = s3_get(o->c, key, off, (size_t)(end - off), run);
	for (uint64_t b = first; b < first + n; b++) {
		if (r == 0)
			bcache_fill(o->cache, key, b, run + (b - first) * BCACHE_BLOCK,
				    (size_t)block_len(size, b), size);
		else
			bcache_release(o->cache, key, b);
	}
	return r;
}

typedef struct ra_job {
	s3_blobs *o;
	uint64_t size, first, last;
	char key[BCACHE_KEY_MAX + 1];
} ra_job;

/* Fetch what is missing of [first, last] without waiting on blocks others fetch. */
static void ra_run(void *arg)
{
	ra_job *j = arg;
	s3_blobs *o = j->o;
	uint64_t nb = j->last - j->first + 1 < RUN_MAX ? j->last - j->first + 1 : RUN_MAX;
	uint8_t *buf = malloc((size_t)nb * BCACHE_BLOCK);
	for (uint64_t b = j->first; buf && b <= j->last;) {
		size_t len;
		uint64_t bs;
		int c = bcache_claim(o->cache, j->key, b, 0, 0, NULL, &len, &bs, 0);
		if (c != BCACHE_CLAIMED) {
			b++;
			continue;
		}
		uint64_t n = 1;
		while (b + n <= j->last && n < RUN_MAX &&
		       bcache_claim(o->cache, j->key, b + n, 0, 0, NULL, &len, &bs, 0) ==
			       BCACHE_CLAIMED)
			n++;
		fetch_run(o, j->key, j->size, b, n, buf);
		b += n;
	}
	free(buf);
	pthread_mutex_lock(&o->mu);
	o->ra_jobs--;
	pthread_mutex_unlock(&o->mu);
	free(j);
}

/* Queue one job fetching blocks [first, last] (not waiting for any). */
static void ra_submit(s3_rfile *f, uint64_t first, uint64_t last)
{
	s3_blobs *o = f->o;
	pthread_mutex_lock(&o->mu);
	/* the pool is started by the first hint, not at open: a daemon opens its store before it
	 * forks into the background, and threads do not survive a fork */
	if (!o->ra)
		o->ra = pool_new(RA_THREADS);
	int go = o->ra && o->ra_jobs < RA_JOBS_MAX;
	o->ra_jobs += go;
	pthread_mutex_unlock(&o->mu);
	if (!go)
		return;
	ra_job *j = malloc(sizeof(*j));
	if (j) {
		*j = (ra_job){.o = o, .size = f->f.size, .first = first, .last = last};
		memcpy(j->key, f->key, sizeof(j->key));
	}
	if (!j || pool_submit(o->ra, ra_run, j) < 0) {
		free(j);
		pthread_mutex_lock(&o->mu);
		o->ra_jobs--;
		pthread_mutex_unlock(&o->mu);
	}
}

/* Start fetching [off, off + len) in jobs of RA_JOB_BLOCKS blocks. */
static void read_ahead(s3_rfile *f, uint64_t off, uint64_t len)
{
	if (!len || off >= f->f.size)
		return;
	if (len > f->f.size - off)
		len = f->f.size - off;
	uint64_t first = off / BCACHE_BLOCK, last = (off + len - 1) / BCACHE_BLOCK;
	if (last - first >= 4 * RUN_MAX)
		last = first + 4 * RUN_MAX - 1;
	for (uint64_t b = first; b <= last; b += RA_JOB_BLOCKS)
		ra_submit(f, b, b + RA_JOB_BLOCKS - 1 < last ? b + RA_JOB_BLOCKS - 1 : last);
}

static int rf_pread(io_rfile *io, void *out, size_t len, uint64_t off)
{
	s3_rfile *f = (s3_rfile *)io;
	s3_blobs *o = f->o;
	if (off > f->f.size || len > f->f.size - off)
		return -EIO; /* past the end: the object is shorter than its reader thinks */
	if (!len)
		return 0;
	uint64_t end = off + len, first = off / BCACHE_BLOCK, last = (end - 1) / BCACHE_BLOCK;
	uint8_t *run = NULL; /* fetched runs land here: made at the first miss */
	int r = 0;
	for (uint64_t b = first; r == 0 && b <= last;) {
		uint64_t bo = b * BCACHE_BLOCK;
		size_t lo = (size_t)((off > bo ? off : bo) - bo);
		size_t hi = (size_t)((end < bo + BCACHE_BLOCK ? end : bo + BCACHE_BLOCK) - bo);
		size_t got;
		uint64_t bs, n = 1;
		/* a hit goes straight into the caller's buffer, checked segment by segment */
		int c = bcache_claim(o->cache, f->key, b, lo, hi, (uint8_t *)out + (bo + lo - off),
				     &got, &bs, 1);
		if (c == BCACHE_HIT && (got != block_len(f->f.size, b) || bs != f->f.size)) {
			/* a cached block of a blob of another size: not this one's; fetch it */
			bcache_drop(o->cache, f->key, b);
			continue;
		}
		if (c < 0)
			r = c;
		if (c != BCACHE_CLAIMED) {
			b++;
			continue;
		}
		/* extend the run over the next blocks nobody has or fetches */
		while (b + n <= last && n < RUN_MAX &&
		       bcache_claim(o->cache, f->key, b + n, 0, 0, NULL, &got, &bs, 0) ==
			       BCACHE_CLAIMED)
			n++;
		if (!run) {
			uint64_t most = last - first + 1 < RUN_MAX ? last - first + 1 : RUN_MAX;
			run = malloc((size_t)most * BCACHE_BLOCK);
		}
		if (!run) {
			for (uint64_t k = b; k < b + n; k++)
				bcache_release(o->cache, f->key, k);
			r = -ENOMEM;
			break;
		}
		r = fetch_run(o, f->key, f->f.size, b, n, run);
		for (uint64_t k = b; r == 0 && k < b + n; k++) {
			uint64_t ko = k * BCACHE_BLOCK;
			uint64_t klo = off > ko ? off : ko;
			uint64_t khi = end < ko + BCACHE_BLOCK ? end : ko + BCACHE_BLOCK;
			memcpy((uint8_t *)out + (klo - off), run + (k - b) * BCACHE_BLOCK + (klo - ko),
			       (size_t)(khi - klo));
		}
		b += n;
	}
	free(run);
	if (r == 0) {
		if (off < f->next && f->ra_next > end / BCACHE_BLOCK + 2 * RA_BLOCKS)
			f->ra_next = 0; /* went back: a second pass reads ahead again */
		if (off && off == f->next) {
			/* sequential: keep RA_BLOCKS ahead, asking only for blocks not asked yet */
			uint64_t from = end / BCACHE_BLOCK, to = from + RA_BLOCKS;
			if (f->ra_next > from)
				from = f->ra_next;
			if (from < to) {
				read_ahead(f, from * BCACHE_BLOCK, (to - from) * BCACHE_BLOCK);
				f->ra_next = to;
			}
		}
		f->next = end;
	}
	return r;
}

static void rf_advise(io_rfile *io, uint64_t off, uint64_t len, int advice)
{
	if (advice == IO_WILLNEED)
		read_ahead((s3_rfile *)io, off, len);
	/* IO_DONTNEED: the cache keeps blocks by recency; a stream's old blocks age out */
}

static void rf_close(io_rfile *io)
{
	free(io);
}

static const io_rfile_ops s3_rfile_ops = {rf_pread, rf_advise, rf_close};

static int s3b_open(blob_store *b, const char *key, io_rfile **out)
{
	s3_blobs *o = (s3_blobs *)b;
	if (strlen(key) > BCACHE_KEY_MAX)
		return -ENAMETOOLONG;
	uint64_t size;
	int r = bcache_blob_size(o->cache, key, &size);
	if (r < 0)
		r = s3_head(o->c, key, &size);
	if (r < 0)
		return r;
	s3_rfile *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->f.ops = &s3_rfile_ops;
	f->f.size = size;
	f->o = o;
	strcpy(f->key, key);
	*out = &f->f;
	return 0;
}

/* Keep a just-uploaded file's bytes in the cache (best effort). */
static void seed(s3_blobs *o, const char *key, int fd, uint64_t size)
{
	blob_cache_stats st;
	bcache_stats(o->cache, &st);
	if (strlen(key) > BCACHE_KEY_MAX || size > st.capacity / SEED_MAX_SHARE)
		return;
	uint8_t *buf = malloc(BCACHE_BLOCK);
	for (uint64_t b = 0; buf && b * BCACHE_BLOCK < size; b++) {
		size_t len;
		uint64_t bs;
		if (bcache_claim(o->cache, key, b, 0, 0, NULL, &len, &bs, 0) != BCACHE_CLAIMED)
			continue;
		size_t n = (size_t)block_len(size, b);
		if (io_pread_fd_full(fd, buf, n, b * BCACHE_BLOCK) == 0)
			bcache_fill(o->cache, key, b, buf, n, size);
		else
			bcache_release(o->cache, key, b);
	}
	free(buf);
}

static int s3b_put(blob_store *b, const char *key, int fd, uint64_t size, int tmp_dirfd,
		   const char *tmp_rel)
{
	s3_blobs *o = (s3_blobs *)b;
	int r = s3_put_file(o->c, key, fd, size);
	if (r < 0)
		return r;
	/* whatever was cached under this key belonged to an earlier blob of that name (ids of a
	 * store restored from a backup start again): never mixed with the new one's bytes */
	bcache_forget(o->cache, key);
	seed(o, key, fd, size);
	if (tmp_rel)
		unlinkat(tmp_dirfd, tmp_rel, 0);
	return 0;
}

static int s3b_upload(blob_store *b, const char *key, int fd, uint64_t size)
{
	return s3_put_file(((s3_blobs *)b)->c, key, fd, size);
}

static int s3b_fetch_file(blob_store *b, const char *key, int fd, uint64_t *size)
{
	uint64_t n = 0;
	int r = s3_get_file(((s3_blobs *)b)->c, key, fd, &n);
	if (r == 0 && ftruncate(fd, (off_t)n) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && size)
		*size = n;
	return r;
}

static int s3b_stat(blob_store *b, const char *key, uint64_t *size)
{
	return s3_head(((s3_blobs *)b)->c, key, size);
}

static int s3b_del(blob_store *b, const char *key)
{
	s3_blobs *o = (s3_blobs *)b;
	int r = s3_delete(o->c, key);
	bcache_forget(o->cache, key);
	return r;
}

typedef struct list_ctx {
	size_t skip;
	blob_list_fn fn;
	void *ctx;
} list_ctx;

static int list_one(void *ctx, const char *key, uint64_t size, int64_t mtime_ns)
{
	list_ctx *l = ctx;
	if (strlen(key) <= l->skip || strchr(key + l->skip, '/'))
		return 0; /* the prefix itself, or deeper than one level */
	return l->fn(l->ctx, key + l->skip, size, mtime_ns);
}

static int s3b_list(blob_store *b, const char *dir, blob_list_fn fn, void *ctx)
{
	char prefix[256];
	size_t n = (size_t)snprintf(prefix, sizeof(prefix), "%s/", dir);
	if (n >= sizeof(prefix))
		return -ENAMETOOLONG;
	list_ctx l = {n, fn, ctx};
	return s3_list(((s3_blobs *)b)->c, prefix, list_one, &l);
}

typedef struct stale_ctx {
	s3 *c;
	int64_t before;
	blob_upload_fn fn;
	void *ctx;
	int n;
} stale_ctx;

static int abort_stale(void *ctx, const char *key, const char *upload_id, int64_t initiated_ns)
{
	stale_ctx *x = ctx;
	if (initiated_ns >= x->before)
		return 0; /* may be an upload in flight */
	if (s3_upload_abort(x->c, key, upload_id) == 0) {
		x->n++;
		if (x->fn)
			x->fn(x->ctx, key);
	}
	return 0;
}

static int s3b_uploads_clean(blob_store *b, int64_t before_ns, blob_upload_fn fn, void *ctx)
{
	stale_ctx x = {((s3_blobs *)b)->c, before_ns, fn, ctx, 0};
	int r = s3_uploads_list(x.c, "", abort_stale, &x);
	return r < 0 ? r : x.n;
}

static void s3b_stats(blob_store *b, blob_cache_stats *st)
{
	bcache_stats(((s3_blobs *)b)->cache, st);
}

static s3 *s3b_client(blob_store *b)
{
	return ((s3_blobs *)b)->c;
}

static void s3b_destroy(blob_store *b)
{
	s3_blobs *o = (s3_blobs *)b;
	if (o->ra)
		pool_free(o->ra); /* finishes queued read-aheads first */
	bcache_close(o->cache);
	s3_free(o->c);
	pthread_mutex_destroy(&o->mu);
	free(o);
}

static const blob_engine s3_engine = {
	.remote = 1,
	.put = s3b_put,
	.upload = s3b_upload,
	.open = s3b_open,
	.fetch_file = s3b_fetch_file,
	.stat = s3b_stat,
	.del = s3b_del,
	.list = s3b_list,
	.uploads_clean = s3b_uploads_clean,
	.stats = s3b_stats,
	.client = s3b_client,
	.destroy = s3b_destroy,
};

int blob_s3_new(s3 *c, const char *cache_dir, uint64_t cache_bytes, blob_store **out)
{
	*out = NULL;
	s3_blobs *o = calloc(1, sizeof(*o));
	if (!o) {
		s3_free(c);
		return -ENOMEM;
	}
	o->b.e = &s3_engine;
	o->c = c;
	pthread_mutex_init(&o->mu, NULL);
	int r = bcache_open(cache_dir, cache_bytes, &o->cache);
	if (r < 0) {
		s3b_destroy(&o->b);
		return r;
	}
	*out = &o->b;
	return 0;
}
