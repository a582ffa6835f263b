/* chain.c - random-access reads of stored objects through delta chains.
 *
 * Read path
 * ---------
 * chain_pread(obj, off, len):
 *   1. Reader: the object's obj_reader (index of chunks) comes from a table of open readers,
 *      opened on first use through the chain_open_fn callback, which also names the base object.
 *      Readers are refcounted; idle ones are closed least-recently-used first beyond max_open.
 *   2. Chunks: obj_reader_find gives the chunk holding `off`; every chunk the range covers is
 *      fetched from the cache of decoded chunks, keyed (obj, chunk index), and copied out.
 *   3. Decode (cache miss): the loader reads the payload and calls dec_chunk, which checks the
 *      decoded bytes against the chunk's checksum. A chunk whose codec uses the base first gets the
 *      base region [base_off, base_off+base_len) by calling the same read path on the base object
 *      (recursively, so base chunks are decoded once and shared through the cache), and only then
 *      checks out a codec_ctx: a context is held only while bytes are actually being decoded, never
 *      across the recursion, so contexts in use are bounded by the threads, not by chain depth.
 *   4. Read-ahead: a read that starts where the previous read of the same object ended is
 *      sequential; it queues decodes of the next `readahead` chunks in the pool (cache_get, then
 *      release at once: the chunks stay cached). At most a bounded number of such jobs are in
 *      flight, and chain_free finishes them all before freeing anything.
 * Integrity: every returned byte comes from a chunk that passed its checksum; a damaged payload,
 * index or base anywhere in the chain is -EIO, never data. Failed decodes are not cached.
 * Memory: the cache budget + read-ahead in flight + open readers' indexes + one base region per
 * recursion level of each running read; nothing proportional to file size.
 * Chain cycles (corrupt metadata) are caught per read by walking the frames of the recursion
 * (-ELOOP), and depth is capped at CHAIN_MAX_DEPTH.
 */
#include "chain.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "codec.h"
#include "decoder.h"
#include "io.h"
#include "pool.h"

#define CHAIN_MAX_DEPTH 256          /* well above the filesystem's chain limit */
#define CHAIN_DEFAULT_CACHE (256u << 20)
#define CHAIN_DEFAULT_OPEN 64
#define CHAIN_IDLE_CTX 32            /* idle codec contexts kept for reuse */

typedef struct chain_rd {
	uint64_t obj, base;
	obj_reader *r;
	unsigned refs;
	int in_table;     /* 0 after chain_forget: closed by the last rd_put */
	uint64_t next_off; /* where a sequential read would start next */
	long ra_upto;     /* highest chunk index queued for read-ahead, -1 none */
	struct chain_rd *hnext;
	struct chain_rd *prev, *next; /* idle list (refs == 0), most recent first */
} chain_rd;

struct chain {
	chain_opts o;
	chain_open_fn open;
	void *open_ctx;
	cache *cache;
	pool *pool; /* NULL without read-ahead */

	pthread_mutex_t mu; /* readers table, idle list, codec contexts, read-ahead counters */
	chain_rd **tab;
	size_t nbuckets; /* power of two */
	size_t nopen;    /* readers in the table */
	chain_rd idle;   /* sentinel */
	codec_ctx *ctxs[CHAIN_IDLE_CTX];
	size_t nctx;
	unsigned ra_inflight, ra_cap;
};

/* One level of the recursion: used to detect cycles in the chain and to bound its depth. */
typedef struct read_frame {
	uint64_t obj;
	unsigned depth;
	const struct read_frame *up;
} read_frame;

static ssize_t chain_read(chain *c, uint64_t obj, void *buf, size_t len, uint64_t off,
			  const read_frame *up, int readahead);

/* ---- readers ---------------------------------------------------------------------------- */

static size_t rd_hash(const chain *c, uint64_t obj)
{
	uint64_t x = obj * 0x9e3779b97f4a7c15ull;
	return (size_t)(x ^ (x >> 29)) & (c->nbuckets - 1);
}

static chain_rd *rd_find(chain *c, uint64_t obj)
{
	for (chain_rd *d = c->tab[rd_hash(c, obj)]; d; d = d->hnext)
		if (d->obj == obj)
			return d;
	return NULL;
}

static void rd_table_remove(chain *c, chain_rd *d)
{
	chain_rd **pp = &c->tab[rd_hash(c, d->obj)];
	while (*pp != d)
		pp = &(*pp)->hnext;
	*pp = d->hnext;
	d->hnext = NULL;
	d->in_table = 0;
	c->nopen--;
}

static void idle_unlink(chain_rd *d)
{
	d->prev->next = d->next;
	d->next->prev = d->prev;
	d->prev = d->next = NULL;
}

static void rd_pin_locked(chain_rd *d)
{
	if (d->refs++ == 0 && d->prev)
		idle_unlink(d);
}

/* Unlink idle readers beyond max_open; returned chained by hnext, closed after unlocking. */
static chain_rd *rd_trim_locked(chain *c)
{
	chain_rd *victims = NULL;
	while (c->nopen > c->o.max_open && c->idle.prev != &c->idle) {
		chain_rd *d = c->idle.prev;
		idle_unlink(d);
		rd_table_remove(c, d);
		d->hnext = victims;
		victims = d;
	}
	return victims;
}

static void rd_close_list(chain_rd *d)
{
	while (d) {
		chain_rd *n = d->hnext;
		obj_reader_close(d->r);
		free(d);
		d = n;
	}
}

static int rd_get(chain *c, uint64_t obj, chain_rd **out)
{
	pthread_mutex_lock(&c->mu);
	chain_rd *d = rd_find(c, obj);
	if (d) {
		rd_pin_locked(d);
		pthread_mutex_unlock(&c->mu);
		*out = d;
		return 0;
	}
	pthread_mutex_unlock(&c->mu);

	/* Open without the lock (the callback may do I/O or SQLite); a racing open of the same
	 * object is resolved below by keeping the first one in the table. */
	obj_reader *r = NULL;
	uint64_t base = 0;
	int rc = c->open(c->open_ctx, obj, &r, &base);
	if (rc < 0)
		return rc;
	if (!r)
		return -EIO;
	chain_rd *nd = calloc(1, sizeof *nd);
	if (!nd) {
		obj_reader_close(r);
		return -ENOMEM;
	}
	nd->obj = obj;
	nd->base = base;
	nd->r = r;
	nd->refs = 1;
	nd->ra_upto = -1;

	pthread_mutex_lock(&c->mu);
	d = rd_find(c, obj);
	if (d) {
		rd_pin_locked(d);
		pthread_mutex_unlock(&c->mu);
		obj_reader_close(r);
		free(nd);
		*out = d;
		return 0;
	}
	size_t h = rd_hash(c, obj);
	nd->hnext = c->tab[h];
	c->tab[h] = nd;
	nd->in_table = 1;
	c->nopen++;
	chain_rd *victims = rd_trim_locked(c);
	pthread_mutex_unlock(&c->mu);
	rd_close_list(victims);
	*out = nd;
	return 0;
}

static void rd_put(chain *c, chain_rd *d)
{
	chain_rd *victims = NULL;
	pthread_mutex_lock(&c->mu);
	if (--d->refs == 0) {
		if (!d->in_table) {
			victims = d; /* forgotten while in use */
			d->hnext = NULL;
		} else {
			d->next = c->idle.next;
			d->prev = &c->idle;
			c->idle.next->prev = d;
			c->idle.next = d;
			victims = rd_trim_locked(c);
		}
	}
	pthread_mutex_unlock(&c->mu);
	rd_close_list(victims);
}

/* ---- codec contexts --------------------------------------------------------------------- */

static codec_ctx *ctx_get(chain *c)
{
	pthread_mutex_lock(&c->mu);
	codec_ctx *x = c->nctx ? c->ctxs[--c->nctx] : NULL;
	pthread_mutex_unlock(&c->mu);
	return x ? x : codec_ctx_new(0);
}

static void ctx_put(chain *c, codec_ctx *x)
{
	pthread_mutex_lock(&c->mu);
	if (c->nctx < CHAIN_IDLE_CTX) {
		c->ctxs[c->nctx++] = x;
		x = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	if (x)
		codec_ctx_free(x);
}

/* ---- chunk loading ---------------------------------------------------------------------- */

/* The base as dec_chunk sees it: the prefetched region from memory, anything else through the
 * read path (the decoder normally asks for exactly the prefetched region). */
typedef struct base_src {
	chain *c;
	uint64_t obj;
	const read_frame *frame;
	const uint8_t *win;
	uint64_t win_off;
	size_t win_len;
} base_src;

static ssize_t base_pread(const io_src *s, void *buf, size_t len, uint64_t off)
{
	const base_src *b = s->ctx;
	if (b->win && off >= b->win_off && off - b->win_off <= b->win_len &&
	    len <= b->win_len - (off - b->win_off)) {
		memcpy(buf, b->win + (off - b->win_off), len);
		return (ssize_t)len;
	}
	return chain_read(b->c, b->obj, buf, len, off, b->frame, 0);
}

typedef struct load_ctx {
	chain *c;
	chain_rd *rd;
	const read_frame *frame; /* the frame of the object being decoded */
} load_ctx;

/* A base that cannot be found or read is damage of this object's chain, reported as EIO. */
static int base_err(ssize_t n)
{
	if (n == -ENOMEM || n == -EINTR)
		return (int)n;
	return -EIO;
}

/* Decode chunk idx of lc->rd into buf (len bytes), verified. */
static int chunk_decode(const load_ctx *lc, uint64_t idx, uint8_t *buf, size_t len)
{
	chain *c = lc->c;
	const chain_rd *rd = lc->rd;
	if (idx >= obj_reader_nchunks(rd->r))
		return -EIO;
	const obj_chunk *ch = obj_reader_chunk(rd->r, (size_t)idx);
	if (ch->len != len)
		return -EIO;

	base_src bs = {.c = c, .obj = rd->base, .frame = lc->frame};
	io_src src = {.pread = base_pread, .ctx = &bs, .size = obj_reader_info(rd->r)->base_size};
	uint8_t *win = NULL;
	int rc;
	if (codec_uses_base(ch->codec) && ch->base_off != OBJ_NO_BASE && ch->base_len > 0) {
		if (!rd->base)
			return -EIO; /* the chunk needs a predecessor the store does not know */
		win = malloc(ch->base_len);
		if (!win)
			return -ENOMEM;
		ssize_t n = chain_read(c, rd->base, win, ch->base_len, ch->base_off, lc->frame, 0);
		if (n != (ssize_t)ch->base_len) {
			free(win);
			return n < 0 ? base_err(n) : -EIO;
		}
		bs.win = win;
		bs.win_off = ch->base_off;
		bs.win_len = ch->base_len;
	}

	codec_ctx *x = ctx_get(c);
	if (!x) {
		free(win);
		return -ENOMEM;
	}
	rc = dec_chunk(x, rd->r, (size_t)idx, rd->base ? &src : NULL, buf);
	ctx_put(c, x);
	free(win);
	if (rc == -EINVAL || rc == -EBADMSG || rc == -ESTALE || rc == -ENOENT || rc == -ELOOP)
		rc = -EIO; /* malformed payload or inconsistent chain: damage */
	return rc;
}

static int rd_forgotten(chain *c, const chain_rd *rd)
{
	pthread_mutex_lock(&c->mu);
	int gone = !rd->in_table;
	pthread_mutex_unlock(&c->mu);
	return gone;
}

/* The cache loader. A load through a reader that chain_forget removed meanwhile must not leave an
 * entry behind (the id may come back with other content): such loads fail with -ESTALE, which is
 * never cached, and chain_read then decodes the chunk privately for the read in flight. The check
 * comes after the decode: an entry created after cache_drop_obj always sees the forget. */
static int chunk_load(void *ctx, uint64_t obj, uint64_t idx, uint8_t *buf, size_t len)
{
	const load_ctx *lc = ctx;
	(void)obj;
	int rc = chunk_decode(lc, idx, buf, len);
	if (rc == 0 && rd_forgotten(lc->c, lc->rd))
		rc = -ESTALE;
	return rc;
}

/* ---- read-ahead ------------------------------------------------------------------------- */

typedef struct ra_job {
	chain *c;
	chain_rd *rd; /* pinned for the job's lifetime */
	size_t idx;
} ra_job;

static void ra_run(void *arg)
{
	ra_job *j = arg;
	chain *c = j->c;
	if (rd_forgotten(c, j->rd))
		goto out;
	read_frame fr = {.obj = j->rd->obj, .depth = 0, .up = NULL};
	load_ctx lc = {.c = c, .rd = j->rd, .frame = &fr};
	const obj_chunk *ch = obj_reader_chunk(j->rd->r, j->idx);
	cache_entry *e;
	/* errors are dropped: a foreground read of the chunk will meet and report them */
	if (cache_get(c->cache, j->rd->obj, j->idx, ch->len, chunk_load, &lc, &e) == 0)
		cache_put(c->cache, e);
out:
	pthread_mutex_lock(&c->mu);
	c->ra_inflight--;
	pthread_mutex_unlock(&c->mu);
	rd_put(c, j->rd);
	free(j);
}

/* After a read of [off, end) whose last chunk was `last`: queue the next chunks if sequential. */
static void ra_after_read(chain *c, chain_rd *rd, uint64_t off, uint64_t end, size_t last)
{
	size_t n = obj_reader_nchunks(rd->r);
	pthread_mutex_lock(&c->mu);
	int seq = off == rd->next_off;
	rd->next_off = end;
	if (!seq) {
		rd->ra_upto = (long)last; /* a seek restarts the window */
		pthread_mutex_unlock(&c->mu);
		return;
	}
	size_t from = last + 1;
	if (rd->ra_upto >= 0 && (size_t)rd->ra_upto + 1 > from)
		from = (size_t)rd->ra_upto + 1;
	size_t to = last + c->o.readahead; /* inclusive */
	if (to >= n)
		to = n - 1;
	for (size_t i = from; i <= to && c->ra_inflight < c->ra_cap; i++) {
		cache_entry *hit = cache_peek(c->cache, rd->obj, i);
		if (hit) {
			cache_put(c->cache, hit);
			rd->ra_upto = (long)i;
			continue;
		}
		ra_job *j = malloc(sizeof *j);
		if (!j)
			break;
		*j = (ra_job){.c = c, .rd = rd, .idx = i};
		rd->refs++; /* rd is pinned by the caller, so it is not on the idle list */
		c->ra_inflight++;
		if (pool_submit(c->pool, ra_run, j) < 0) {
			rd->refs--;
			c->ra_inflight--;
			free(j);
			break;
		}
		rd->ra_upto = (long)i;
	}
	pthread_mutex_unlock(&c->mu);
}

/* ---- reads ------------------------------------------------------------------------------ */

static ssize_t chain_read(chain *c, uint64_t obj, void *buf, size_t len, uint64_t off,
			  const read_frame *up, int readahead)
{
	for (const read_frame *f = up; f; f = f->up)
		if (f->obj == obj)
			return -ELOOP; /* the chain loops back on itself: corrupt metadata */
	read_frame me = {.obj = obj, .depth = up ? up->depth + 1 : 0, .up = up};
	if (me.depth > CHAIN_MAX_DEPTH)
		return -ELOOP;

	chain_rd *rd;
	int rc = rd_get(c, obj, &rd);
	if (rc < 0)
		return rc;
	uint64_t size = obj_reader_info(rd->r)->size;
	if (off >= size || len == 0) {
		rd_put(c, rd);
		return 0;
	}
	if (len > size - off)
		len = (size_t)(size - off);

	load_ctx lc = {.c = c, .rd = rd, .frame = &me};
	long li = obj_reader_find(rd->r, off);
	size_t i = li < 0 ? 0 : (size_t)li;
	size_t done = 0;
	ssize_t ret = 0;
	size_t nchunks = obj_reader_nchunks(rd->r);
	while (li >= 0 && done < len) {
		const obj_chunk *ch = i < nchunks ? obj_reader_chunk(rd->r, i) : NULL;
		uint64_t pos = off + done;
		if (!ch || ch->len == 0 || pos < ch->off || pos - ch->off >= ch->len) {
			ret = -EIO; /* the index does not cover the file: damage */
			break;
		}
		size_t in = (size_t)(pos - ch->off);
		size_t n = ch->len - in;
		if (n > len - done)
			n = len - done;
		cache_entry *e;
		rc = cache_get(c->cache, obj, i, ch->len, chunk_load, &lc, &e);
		if (rc == -ESTALE) {
			/* forgotten under us: serve this read without caching */
			uint8_t *tmp = malloc(ch->len);
			rc = tmp ? chunk_decode(&lc, i, tmp, ch->len) : -ENOMEM;
			if (rc == 0)
				memcpy((uint8_t *)buf + done, tmp + in, n);
			free(tmp);
			if (rc < 0) {
				ret = rc;
				break;
			}
		} else if (rc < 0) {
			ret = rc;
			break;
		} else {
			memcpy((uint8_t *)buf + done, cache_entry_data(e) + in, n);
			cache_put(c->cache, e);
		}
		done += n;
		if (done < len)
			i++;
	}
	if (li < 0)
		ret = -EIO;
	if (ret == 0) {
		ret = (ssize_t)done;
		if (readahead && c->pool)
			ra_after_read(c, rd, off, off + done, i);
	}
	rd_put(c, rd);
	return ret;
}

ssize_t chain_pread(chain *c, uint64_t obj, void *buf, size_t len, uint64_t off)
{
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	ssize_t n = chain_read(c, obj, buf, len, off, NULL, c->o.readahead > 0);
	if (n == -EBADMSG || n == -ELOOP)
		n = -EIO; /* a damaged object file or chain is damage, whatever layer noticed it */
	return n;
}

void chain_forget(chain *c, uint64_t obj)
{
	chain_rd *victim = NULL;
	pthread_mutex_lock(&c->mu);
	chain_rd *d = rd_find(c, obj);
	if (d) {
		rd_table_remove(c, d);
		if (d->refs == 0) {
			idle_unlink(d);
			victim = d;
		}
	}
	pthread_mutex_unlock(&c->mu);
	rd_close_list(victim);
	cache_drop_obj(c->cache, obj);
}

/* ---- lifetime --------------------------------------------------------------------------- */

chain *chain_new(const chain_opts *o, chain_open_fn open, void *ctx)
{
	if (!o || !open)
		return NULL;
	chain *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->o = *o;
	if (!c->o.cache_bytes)
		c->o.cache_bytes = CHAIN_DEFAULT_CACHE;
	if (!c->o.max_open)
		c->o.max_open = CHAIN_DEFAULT_OPEN;
	c->open = open;
	c->open_ctx = ctx;
	c->idle.next = c->idle.prev = &c->idle;
	c->nbuckets = 16;
	while (c->nbuckets < 2 * (size_t)c->o.max_open && c->nbuckets < (1u << 16))
		c->nbuckets *= 2;
	c->tab = calloc(c->nbuckets, sizeof *c->tab);
	c->cache = cache_new(c->o.cache_bytes);
	if (!c->tab || !c->cache || pthread_mutex_init(&c->mu, NULL) != 0)
		goto fail;
	if (c->o.readahead) {
		c->pool = pool_new(c->o.threads);
		if (!c->pool) {
			pthread_mutex_destroy(&c->mu);
			goto fail;
		}
		/* enough to keep every worker busy on a few sequential readers, bounded memory */
		c->ra_cap = 2 * c->o.readahead + pool_threads(c->pool);
	}
	return c;
fail:
	cache_free(c->cache);
	free(c->tab);
	free(c);
	return NULL;
}

void chain_free(chain *c)
{
	if (!c)
		return;
	/* Read-ahead jobs use readers and the cache: finish them all first. */
	pool_free(c->pool);
	for (size_t b = 0; b < c->nbuckets; b++)
		rd_close_list(c->tab[b]);
	for (size_t i = 0; i < c->nctx; i++)
		codec_ctx_free(c->ctxs[i]);
	cache_free(c->cache);
	pthread_mutex_destroy(&c->mu);
	free(c->tab);
	free(c);
}
