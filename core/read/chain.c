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
 *      decoded bytes against the chunk's checksum. A chunk whose codec uses the base first pins
 *      the base chunks covering [base_off, base_off+base_len) through the same path on the base
 *      object (recursively, so base chunks are decoded once and shared through the cache; the
 *      decoder copies straight out of the pinned entries), and only then checks out a codec_ctx:
 *      a context is held only while bytes are actually being decoded, never across the recursion,
 *      so contexts in use are bounded by the threads, not by chain depth. Before descending, a
 *      level asks for its own payload (obj_reader_prefetch), so the disk reads of all levels of
 *      one chunk overlap; nothing else is read ahead in the object files.
 *   4. Release: base chunks are released "cold" (evicted before chunks read warm); chunks a
 *      stream has read through their end are released "spent" (evicted before anything else:
 *      the reader has them, the kernel's page cache holds them). In a reverse chain read oldest
 *      first, the bases are exactly the versions read next, and the stream's own chunks are the
 *      ones nobody asks for again.
 *   5. Read-ahead: a top-level read that starts where the previous read of the same object
 *      ended is sequential; from the second such read in a row (a stream), it queues decodes of
 *      the next chunks in the pool (cache_get, then release at once: the chunks stay cached), at
 *      least `readahead` chunks and `readahead_bytes` bytes, and asks for their payloads in one
 *      request. At most a bounded number of such jobs are in flight, and chain_free finishes
 *      them all before freeing anything.
 * Integrity: every returned byte comes from a chunk that passed its checksum; a damaged payload,
 * index or base anywhere in the chain is -EIO, never data. Failed decodes are not cached.
 * Memory: the cache budget + read-ahead in flight + open readers' indexes; the budget is exceeded
 * only by pinned chunks (per running decode, one base region per chain level); nothing
 * proportional to file size. A stream through an object file larger than the budget also lets
 * the kernel drop that file's pages behind it (and its bases'), so a restore leaves the page
 * cache as a plain read of the file would.
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
#define CHAIN_RA_JOBS 64             /* read-ahead jobs in flight with a byte window */
#define CHAIN_DROP_MIN (4u << 20)    /* a stream drops pages in steps of at least this */

typedef struct chain_rd {
	uint64_t obj, base;
	obj_reader *r;
	unsigned refs;
	int in_table;     /* 0 after chain_forget: closed by the last rd_put */
	uint64_t next_off; /* where a sequential read would start next */
	unsigned seq_run; /* reads in a row that started where the previous one ended */
	uint64_t dropped_to; /* a stream let the object files' pages below this logical offset go */
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
	codec_stash *ctxs; /* codec contexts of decodes in flight */
	unsigned ra_inflight, ra_cap;
	chain_stats st;    /* under mu */
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

/* ---- chunk loading ---------------------------------------------------------------------- */

typedef struct load_ctx {
	chain *c;
	chain_rd *rd;
	const read_frame *frame; /* the frame of the object being decoded */
} load_ctx;

/* One decoded chunk held for reading: a pinned cache entry, or a private copy when the object
 * was forgotten while the read was in flight (such loads are not cached, see chunk_load). */
typedef struct pin {
	cache_entry *e;
	uint8_t *own;
	uint64_t off; /* the chunk's logical offset */
	size_t len;
} pin;

static int chunk_decode(const load_ctx *lc, uint64_t idx, uint8_t *buf, size_t len);
static int chunk_load(void *ctx, uint64_t obj, uint64_t idx, uint8_t *buf, size_t len);

static int chunk_acquire(chain *c, chain_rd *rd, const read_frame *fr, size_t i, pin *p)
{
	const obj_chunk *ch = obj_reader_chunk(rd->r, i);
	load_ctx lc = {.c = c, .rd = rd, .frame = fr};
	*p = (pin){.off = ch->off, .len = ch->len};
	int rc = cache_get(c->cache, rd->obj, i, ch->len, chunk_load, &lc, &p->e);
	if (rc == 0 && cache_entry_len(p->e) != ch->len) {
		/* an entry left by another object under a reused id: never copy past it */
		cache_put(c->cache, p->e);
		p->e = NULL;
		rc = -EIO;
	}
	if (rc == -ESTALE) {
		p->own = malloc(ch->len);
		rc = p->own ? chunk_decode(&lc, i, p->own, ch->len) : -ENOMEM;
		if (rc < 0) {
			free(p->own);
			p->own = NULL;
		}
	}
	return rc;
}

static const uint8_t *pin_data(const pin *p)
{
	return p->e ? cache_entry_data(p->e) : p->own;
}

/* How a read is done with a chunk, which decides what the cache evicts first. */
enum rel {
	REL_WARM,  /* read by a caller that may come back (random access, partial chunks) */
	REL_COLD,  /* only a base for another chunk; let it go before the chunks read */
	REL_SPENT, /* a stream read through its end: the caller (the kernel's page cache) holds the
		    * bytes now, evicted first; a base's use keeps it longer (cache_put_spent) */
};

static void chunk_release(chain *c, pin *p, enum rel how)
{
	if (p->e) {
		if (how == REL_COLD)
			cache_put_cold(c->cache, p->e);
		else if (how == REL_SPENT)
			cache_put_spent(c->cache, p->e);
		else
			cache_put(c->cache, p->e);
	}
	free(p->own);
	p->e = NULL;
	p->own = NULL;
}

/* Checked index entry i covering logical position pos (defends the read loop against an index
 * that does not tile the file, whatever the reader validated). */
static const obj_chunk *chunk_at(const chain_rd *rd, size_t i, uint64_t pos)
{
	if (i >= obj_reader_nchunks(rd->r))
		return NULL;
	const obj_chunk *ch = obj_reader_chunk(rd->r, i);
	if (ch->len == 0 || pos < ch->off || pos - ch->off >= ch->len)
		return NULL;
	return ch;
}

static int enter_frame(const read_frame *up, uint64_t obj, read_frame *me)
{
	for (const read_frame *f = up; f; f = f->up)
		if (f->obj == obj)
			return -ELOOP; /* the chain loops back on itself: corrupt metadata */
	*me = (read_frame){.obj = obj, .depth = up ? up->depth + 1 : 0, .up = up};
	return me->depth > CHAIN_MAX_DEPTH ? -ELOOP : 0;
}

/* The base region a chunk was coded against, held as pinned base chunks (no copy). */
typedef struct base_pins {
	chain *c;
	uint64_t obj;
	const read_frame *up; /* frame of the object being decoded */
	read_frame me;        /* frame of the base */
	chain_rd *rd;
	pin *p;
	size_t n;
} base_pins;

static void base_release(base_pins *b)
{
	for (size_t i = 0; i < b->n; i++)
		chunk_release(b->c, &b->p[i], REL_COLD);
	free(b->p);
	b->p = NULL;
	b->n = 0;
	if (b->rd)
		rd_put(b->c, b->rd);
	b->rd = NULL;
}

static int base_acquire(base_pins *b, uint64_t off, size_t len)
{
	int rc = enter_frame(b->up, b->obj, &b->me);
	if (rc < 0)
		return rc;
	if ((rc = rd_get(b->c, b->obj, &b->rd)) < 0)
		return rc;
	uint64_t size = obj_reader_info(b->rd->r)->size;
	if (off > size || len > size - off)
		return -EIO; /* the base is shorter than the region this chunk was coded against */
	long first = obj_reader_find(b->rd->r, off);
	long last = obj_reader_find(b->rd->r, off + len - 1);
	if (first < 0 || last < first)
		return -EIO;
	b->p = calloc((size_t)(last - first) + 1, sizeof *b->p);
	if (!b->p)
		return -ENOMEM;
	uint64_t pos = off;
	for (size_t i = (size_t)first; i <= (size_t)last; i++) {
		const obj_chunk *ch = chunk_at(b->rd, i, pos);
		if (!ch)
			return -EIO;
		if ((rc = chunk_acquire(b->c, b->rd, &b->me, i, &b->p[b->n])) < 0)
			return rc;
		b->n++;
		pos = ch->off + ch->len;
	}
	return 0;
}

/* The base as dec_chunk sees it: the pinned region from the cache, anything else through the
 * read path (the decoder normally asks for exactly the pinned region). */
static ssize_t base_pread(const io_src *s, void *buf, size_t len, uint64_t off)
{
	const base_pins *b = s->ctx;
	if (b->n && off >= b->p[0].off && off + len >= off &&
	    off + len <= b->p[b->n - 1].off + b->p[b->n - 1].len) {
		size_t done = 0;
		for (size_t i = 0; i < b->n && done < len; i++) {
			const pin *p = &b->p[i];
			uint64_t pos = off + done;
			if (pos >= p->off + p->len)
				continue;
			size_t in = (size_t)(pos - p->off);
			size_t n = p->len - in < len - done ? p->len - in : len - done;
			memcpy((uint8_t *)buf + done, pin_data(p) + in, n);
			done += n;
		}
		return (ssize_t)done;
	}
	return chain_read(b->c, b->obj, buf, len, off, b->up, 0);
}

/* The pinned region in place when one chunk holds it (the usual case: a tensor's chunk is coded
 * against the same tensor's chunk of the base). */
static const void *base_view(const io_src *s, size_t len, uint64_t off)
{
	const base_pins *b = s->ctx;
	for (size_t i = 0; i < b->n; i++) {
		const pin *p = &b->p[i];
		if (off >= p->off && off - p->off <= p->len && len <= p->len - (off - p->off))
			return pin_data(p) + (off - p->off);
	}
	return NULL;
}

/* A base that cannot be found or read is damage of this object's chain, reported as EIO. */
static int base_err(int rc)
{
	if (rc == -ENOMEM || rc == -EINTR)
		return rc;
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

	base_pins bp = {.c = c, .obj = rd->base, .up = lc->frame};
	io_src src = {.pread = base_pread, .ctx = &bp, .size = obj_reader_info(rd->r)->base_size,
		      .view = base_view};
	int rc;
	if (codec_uses_base(ch->codec) && ch->base_off != OBJ_NO_BASE && ch->base_len > 0) {
		if (!rd->base)
			return -EIO; /* the chunk needs a predecessor the store does not know */
		/* Start this level's payload read before descending: the disk reads of every level
		 * of the chain then overlap instead of each waiting for its own on the way back. */
		obj_reader_prefetch(rd->r, (size_t)idx, (size_t)idx);
		/* Base first, codec context second: contexts are never held across the recursion. */
		if ((rc = base_acquire(&bp, ch->base_off, ch->base_len)) < 0) {
			base_release(&bp);
			return base_err(rc);
		}
	}

	codec_ctx *x = codec_stash_take(c->ctxs);
	if (!x) {
		base_release(&bp);
		return -ENOMEM;
	}
	rc = dec_chunk(x, rd->r, (size_t)idx, rd->base ? &src : NULL, buf);
	codec_stash_give(c->ctxs, x);
	base_release(&bp);
	if (rc == 0) {
		pthread_mutex_lock(&c->mu);
		c->st.decoded++;
		pthread_mutex_unlock(&c->mu);
	}
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
 * never cached, and the read in flight then decodes the chunk privately (chunk_acquire). The
 * check comes after the decode: an entry created after cache_drop_obj always sees the forget. */
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
	const obj_chunk *ch = obj_reader_chunk(j->rd->r, j->idx);
	pthread_mutex_lock(&c->mu);
	/* A job the stream has overtaken (it ran late, on a busy machine): the reader has had
	 * these bytes; decoding them now would only read pages the stream already let go. */
	int stale = !j->rd->in_table || ch->off + ch->len <= j->rd->next_off;
	pthread_mutex_unlock(&c->mu);
	if (stale)
		goto out;
	read_frame fr = {.obj = j->rd->obj, .depth = 0, .up = NULL};
	load_ctx lc = {.c = c, .rd = j->rd, .frame = &fr};
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

/* A top-level read of [off, end) starts: returns how many reads in a row (this one included)
 * started where the previous one ended. A stream is a run of at least SEQ_STREAM: it gets
 * read-ahead, and chunks it reads through are released spent. Two, not one: a random reader
 * lands near its previous read now and then (a 4 KiB reader of a 40 MB file about one read in
 * forty), and each false start queued megabytes of decodes, through the whole chain, ahead of
 * its next reads. */
#define SEQ_STREAM 2
static unsigned seq_note(chain *c, chain_rd *rd, uint64_t off, uint64_t end)
{
	/* Sequential = starts near where the last read ended. The slack absorbs the kernel issuing
	 * a sequential reader's requests out of order (FUSE async reads) without waking on truly
	 * random access, whose jumps are far larger than a few requests. */
	uint64_t slack = 4 * (end - off > (128u << 10) ? end - off : (128u << 10));
	pthread_mutex_lock(&c->mu);
	uint64_t prev = rd->next_off;
	int seq = off <= prev ? prev - off <= slack : off - prev <= slack;
	rd->next_off = end;
	rd->seq_run = seq ? rd->seq_run + 1 : 0;
	unsigned run = rd->seq_run;
	pthread_mutex_unlock(&c->mu);
	return run;
}

/* The payloads covering logical bytes [lo, hi) of one level: prefetch them, or (drop) let the
 * kernel forget their pages when the object file is larger than the cache budget. */
static void level_advise(const chain *c, const obj_reader *r, uint64_t lo, uint64_t hi, int drop)
{
	uint64_t size = obj_reader_info(r)->size;
	if (lo >= size || lo >= hi)
		return;
	if (drop && obj_reader_file_bytes(r) <= c->o.cache_bytes)
		return;
	long f = obj_reader_find(r, lo);
	long l = obj_reader_find(r, (hi < size ? hi : size) - 1);
	if (f < 0 || l < f)
		return;
	if (drop)
		obj_reader_drop(r, (size_t)f, (size_t)l);
	else
		obj_reader_prefetch(r, (size_t)f, (size_t)l);
}

/* The same for every base below rd (pinned by the caller). Prefetch: a stream's read-ahead jobs
 * then find the disk reads of all levels under way, not only those of the level each job has
 * reached. Drop: a stream through a file larger than the cache leaves the page cache as a plain
 * read does, holding its own pages only, not the object files' too (a 100 GB restore would
 * otherwise push out twice its size of everything else). Tensor chunks are coded against the
 * same region of their base, so the same logical window is the right guess; a wrong one only
 * costs a few pages. Best effort: stops at the first base that cannot be opened. */
static void bases_advise(chain *c, const chain_rd *rd, uint64_t lo, uint64_t hi, int drop)
{
	uint64_t base = rd->base;
	for (unsigned depth = 0; base && depth < CHAIN_MAX_DEPTH; depth++) {
		chain_rd *b;
		if (rd_get(c, base, &b) < 0)
			return;
		level_advise(c, b->r, lo, hi, drop);
		base = b->base;
		rd_put(c, b);
	}
}

/* After a top-level read whose last chunk was `last` and whose seq_note was run: queue the next
 * chunks of a stream. */
static void ra_after_read(chain *c, chain_rd *rd, size_t last, unsigned run)
{
	size_t n = obj_reader_nchunks(rd->r);
	pthread_mutex_lock(&c->mu);
	if (run < SEQ_STREAM) {
		rd->ra_upto = (long)last; /* a seek restarts the window */
		pthread_mutex_unlock(&c->mu);
		return;
	}
	size_t from = last + 1;
	if (rd->ra_upto >= 0 && (size_t)rd->ra_upto + 1 > from)
		from = (size_t)rd->ra_upto + 1;
	/* The window: at least `readahead` chunks and `readahead_bytes` bytes past the read. */
	const obj_chunk *lc = obj_reader_chunk(rd->r, last);
	uint64_t upto_off = lc->off + lc->len + c->o.readahead_bytes;
	size_t queued_from = from, queued_to = from; /* [queued_from, queued_to) submitted */
	for (size_t i = from; i < n && c->ra_inflight < c->ra_cap; i++) {
		if (i > last + c->o.readahead && obj_reader_chunk(rd->r, i)->off >= upto_off)
			break;
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
		queued_to = i + 1;
		c->st.readahead++;
	}
	/* Pages more than two windows behind the stream are done with: drop them a window at a
	 * time (big objects only, see bases_advise). */
	uint64_t drop_lo = rd->dropped_to, drop_hi = 0;
	uint64_t behind = 2 * (c->o.readahead_bytes ? c->o.readahead_bytes : CHAIN_DROP_MIN);
	if (lc->off > behind && lc->off - behind >= drop_lo + behind / 2) {
		drop_hi = lc->off - behind;
		rd->dropped_to = drop_hi;
	}
	pthread_mutex_unlock(&c->mu);
	/* The window's payloads in one request per level of the chain: the jobs then find them in
	 * the page cache or on their way. */
	if (queued_to > queued_from) {
		obj_reader_prefetch(rd->r, queued_from, queued_to - 1);
		const obj_chunk *a = obj_reader_chunk(rd->r, queued_from);
		const obj_chunk *b = obj_reader_chunk(rd->r, queued_to - 1);
		bases_advise(c, rd, a->off, b->off + b->len, 0);
	}
	if (drop_hi) {
		level_advise(c, rd->r, drop_lo, drop_hi, 1);
		bases_advise(c, rd, drop_lo, drop_hi, 1);
	}
}

/* ---- reads ------------------------------------------------------------------------------ */

/* Where the chunks of a read go: sink(ctx, pin, in, n, done, how) takes bytes [in, in+n) of
 * the pinned chunk for the read's bytes [done, done+n). It returns 1 if it keeps the pin (a
 * view, to be released `how` later), 0 if the walker may release it, or -errno. */
typedef int (*read_sink)(void *ctx, pin *p, size_t in, size_t n, size_t done, enum rel how);

static int sink_copy(void *ctx, pin *p, size_t in, size_t n, size_t done, enum rel how)
{
	(void)how;
	memcpy((uint8_t *)ctx + done, pin_data(p) + in, n);
	return 0;
}

static ssize_t chain_walk(chain *c, uint64_t obj, size_t len, uint64_t off, const read_frame *up,
			  int readahead, read_sink sink, void *sctx)
{
	read_frame me;
	int rc = enter_frame(up, obj, &me);
	if (rc < 0)
		return rc;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX; /* the count returned must fit */
	chain_rd *rd;
	if ((rc = rd_get(c, obj, &rd)) < 0)
		return rc;
	uint64_t size = obj_reader_info(rd->r)->size;
	if (off >= size || len == 0) {
		rd_put(c, rd);
		return 0;
	}
	if (len > size - off)
		len = (size_t)(size - off);

	/* top-level reads only: the recursion through bases is not a reader's access pattern */
	unsigned run = up ? 0 : seq_note(c, rd, off, off + len);
	long li = obj_reader_find(rd->r, off);
	size_t i = li < 0 ? 0 : (size_t)li;
	size_t done = 0;
	ssize_t ret = li < 0 ? -EIO : 0;
	while (ret == 0 && done < len) {
		uint64_t pos = off + done;
		const obj_chunk *ch = chunk_at(rd, i, pos);
		if (!ch) {
			ret = -EIO; /* the index does not cover the file: damage */
			break;
		}
		pin p;
		if ((rc = chunk_acquire(c, rd, &me, i, &p)) < 0) {
			ret = rc;
			break;
		}
		size_t in = (size_t)(pos - ch->off);
		size_t n = ch->len - in;
		if (n > len - done)
			n = len - done;
		enum rel how = up ? REL_COLD
			       : run >= SEQ_STREAM && in + n == ch->len ? REL_SPENT
									 : REL_WARM;
		rc = sink(sctx, &p, in, n, done, how);
		if (rc <= 0)
			chunk_release(c, &p, how);
		if (rc < 0) {
			ret = rc;
			break;
		}
		done += n;
		if (done < len)
			i++;
	}
	if (ret == 0) {
		ret = (ssize_t)done;
		if (!up && readahead && c->pool)
			ra_after_read(c, rd, i, run);
	}
	rd_put(c, rd);
	return ret;
}

static ssize_t chain_read(chain *c, uint64_t obj, void *buf, size_t len, uint64_t off,
			  const read_frame *up, int readahead)
{
	return chain_walk(c, obj, len, off, up, readahead, sink_copy, buf);
}

static ssize_t read_result(ssize_t n)
{
	if (n == -EBADMSG || n == -ELOOP)
		n = -EIO; /* a damaged object file or chain is damage, whatever layer noticed it */
	return n;
}

ssize_t chain_pread(chain *c, uint64_t obj, void *buf, size_t len, uint64_t off)
{
	return read_result(chain_read(c, obj, buf, len, off, NULL, c->o.readahead > 0));
}

/* The view's sink: keep the pin, point a slice at it. */
static int sink_view(void *ctx, pin *p, size_t in, size_t n, size_t done, enum rel how)
{
	chain_view *v = ctx;
	(void)done;
	if (v->n == CHAIN_VIEW_MAX)
		return -E2BIG;
	v->slice[v->n] = (chain_slice){.data = pin_data(p) + in, .len = n};
	v->pin_[v->n][0] = p->e;
	v->pin_[v->n][1] = p->own;
	v->rel_[v->n] = (unsigned char)how;
	v->n++;
	return 1;
}

ssize_t chain_view_get(chain *c, uint64_t obj, size_t len, uint64_t off, chain_view *v)
{
	v->n = 0;
	ssize_t n = chain_walk(c, obj, len, off, NULL, c->o.readahead > 0, sink_view, v);
	if (n < 0)
		chain_view_put(c, v);
	return read_result(n);
}

void chain_view_put(chain *c, chain_view *v)
{
	for (size_t i = 0; i < v->n; i++) {
		pin p = {.e = v->pin_[i][0], .own = v->pin_[i][1]};
		chunk_release(c, &p, (enum rel)v->rel_[i]);
	}
	v->n = 0;
}

void chain_stats_get(chain *c, chain_stats *st)
{
	pthread_mutex_lock(&c->mu);
	*st = c->st;
	pthread_mutex_unlock(&c->mu);
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

static void prefault_run(void *arg)
{
	chain *c = arg;
	cache_prefault(c->cache, c->o.prefault_bytes);
}

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
	c->ctxs = codec_stash_new(CHAIN_IDLE_CTX, 0);
	if (!c->tab || !c->cache || !c->ctxs || pthread_mutex_init(&c->mu, NULL) != 0)
		goto fail;
	if (c->o.readahead) {
		c->pool = pool_new(c->o.threads);
		if (!c->pool) {
			pthread_mutex_destroy(&c->mu);
			goto fail;
		}
		/* enough to keep every worker busy on a few sequential readers, bounded memory */
		c->ra_cap = 2 * c->o.readahead + pool_threads(c->pool);
		if (c->o.readahead_bytes && c->ra_cap < CHAIN_RA_JOBS)
			c->ra_cap = CHAIN_RA_JOBS; /* a byte window may span many small chunks */
		/* best effort: without it the first decodes fault their pages in themselves */
		if (c->o.prefault_bytes)
			(void)pool_submit(c->pool, prefault_run, c);
	}
	return c;
fail:
	codec_stash_free(c->ctxs);
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
	codec_stash_free(c->ctxs);
	cache_free(c->cache);
	pthread_mutex_destroy(&c->mu);
	free(c->tab);
	free(c);
}

static ssize_t chain_src_pread(const io_src *s, void *buf, size_t len, uint64_t off)
{
	const chain_src *c = s->ctx;
	if (c->cancelled && c->cancelled(c->ctx))
		return -ECANCELED;
	if (off >= s->size)
		return 0;
	if (len > s->size - off)
		len = (size_t)(s->size - off);
	size_t done = 0;
	while (done < len) {
		ssize_t n = chain_pread(c->ch, c->obj, (char *)buf + done, len - done, off + done);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

void chain_src_init(io_src *s, chain_src *cs, chain *ch, uint64_t obj, uint64_t size,
		    int (*cancelled)(void *ctx), void *ctx)
{
	cs->ch = ch;
	cs->obj = obj;
	cs->cancelled = cancelled;
	cs->ctx = ctx;
	s->pread = chain_src_pread;
	s->ctx = cs;
	s->view = NULL;
	s->size = size;
}
