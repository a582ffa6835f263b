/* encoder.c - whole-file encode (see encoder.h).
 *
 * The calling thread walks the aligned segments chunk by chunk in file order: it reads each
 * chunk's new bytes and base region into a slot of a small ring, hands the slot to the pool, and
 * writes finished slots in order. The ring has 2 x threads slots of ~4 chunk buffers each, so
 * memory is bounded by chunk_size x threads, whatever the file size. Every payload is decoded
 * again by the worker that made it and compared with the input (bytes read == bytes written even
 * if a codec has a bug; costs one decode, the fast direction).
 */
#include "encoder.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cksum.h"
#include "layout.h"
#include "objfile.h"
#include "pool.h"

#define ENC_MAX_CHUNK (64u << 20)
#define ENC_HASH_BUF (1u << 20)

typedef struct enc_run enc_run;

typedef struct enc_slot {
	enc_run *run;
	uint8_t *nbuf, *bbuf, *obuf, *vbuf;
	obj_chunk c;
	unsigned flags;
	size_t olen;
	int rc;
	int done;
} enc_slot;

struct enc_run {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a slot finished */
	codec_stash *ctxs; /* codec contexts of the jobs running (at most `threads`) */
};

/* Chunk cursor over the segments. */
typedef struct cursor {
	const seg *s;
	size_t nseg, i;
	uint64_t k; /* chunk number inside segment i */
	uint32_t C;
} cursor;

static int width_ok(unsigned w)
{
	return w == 1 || w == 2 || w == 4 || w == 8;
}

/* Next chunk: logical range, width, flags and base region. 0 at the end, 1 with a chunk. */
static int cursor_next(cursor *cu, obj_chunk *c, unsigned *flags)
{
	while (cu->i < cu->nseg) {
		const seg *s = &cu->s[cu->i];
		unsigned w = s->tensor && width_ok(s->width) ? s->width : 1;
		/* Tensor chunks end on element boundaries, counted from the segment start. */
		uint64_t L = s->tensor ? cu->C - cu->C % w : cu->C;
		if (L == 0)
			L = w;
		uint64_t rel = cu->k * L;
		if (rel >= s->len) {
			cu->i++;
			cu->k = 0;
			continue;
		}
		uint64_t len = s->len - rel < L ? s->len - rel : L;
		memset(c, 0, sizeof *c);
		c->off = s->off + rel;
		c->len = (uint32_t)len;
		c->width = (uint8_t)w;
		c->base_off = OBJ_NO_BASE;
		*flags = s->tensor ? CODEC_F_TENSOR : 0;
		if (s->base_off != SEG_NO_BASE && rel < s->base_len) {
			/* Tensors: the same relative bytes of the base tensor. Others: the k-th
			 * chunk-sized window of the paired base region. Both clipped to it. */
			uint64_t blen = s->base_len - rel;
			uint64_t want = s->tensor ? len : cu->C;
			c->base_off = s->base_off + rel;
			c->base_len = (uint32_t)(blen < want ? blen : want);
		}
		cu->k++;
		return 1;
	}
	return 0;
}

/* layout_align's output is checked, not trusted: a wrong segment list must not produce an
 * object that does not cover the file. */
static int segs_valid(const seg *s, size_t n, uint64_t size, const io_src *base)
{
	uint64_t off = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i].off != off || s[i].len == 0 || s[i].len > size - off)
			return 0;
		if (s[i].base_off != SEG_NO_BASE) {
			if (!base || s[i].base_off > base->size ||
			    s[i].base_len > base->size - s[i].base_off)
				return 0;
		}
		off += s[i].len;
	}
	return off == size;
}

static void enc_job(void *arg)
{
	enc_slot *sl = arg;
	enc_run *run = sl->run;
	codec_ctx *ctx = codec_stash_take(run->ctxs);
	obj_chunk *c = &sl->c;
	if (!ctx) {
		pthread_mutex_lock(&run->mu);
		sl->rc = -ENOMEM;
		sl->done = 1;
		pthread_cond_broadcast(&run->cv);
		pthread_mutex_unlock(&run->mu);
		return;
	}
	const uint8_t *b = c->base_len ? sl->bbuf : NULL;
	uint8_t codec = 0;
	c->cksum = cksum64(sl->nbuf, c->len);
	int rc = codec_encode(ctx, sl->nbuf, c->len, b, c->base_len, c->width, sl->flags, sl->obuf,
			      &sl->olen, &codec);
	if (rc == 0) {
		c->codec = codec;
		const uint8_t *vb = codec_uses_base(codec) ? b : NULL;
		size_t vbl = vb ? c->base_len : 0;
		rc = codec_decode(ctx, codec, sl->obuf, sl->olen, vb, vbl, c->width, sl->vbuf,
				  c->len);
		if (rc == 0 && memcmp(sl->vbuf, sl->nbuf, c->len) != 0)
			rc = -EIO;
		if (rc < 0) {
			/* The codec could not reproduce its input: store the bytes instead. */
			memcpy(sl->obuf, sl->nbuf, c->len);
			sl->olen = c->len;
			c->codec = CODEC_RAW;
			rc = 0;
		}
		if (!codec_uses_base(c->codec)) {
			c->base_off = OBJ_NO_BASE; /* the decoder then needs no base for it */
			c->base_len = 0;
		}
	}
	codec_stash_give(run->ctxs, ctx);
	pthread_mutex_lock(&run->mu);
	sl->rc = rc;
	sl->done = 1;
	pthread_cond_broadcast(&run->cv);
	pthread_mutex_unlock(&run->mu);
}

int enc_content_hash(const io_src *s, uint64_t *hash)
{
	uint8_t *buf = malloc(ENC_HASH_BUF);
	cksum_state *cs = cksum_new();
	int rc = 0;
	if (!buf || !cs) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint64_t off = 0; off < s->size;) {
		size_t n = s->size - off < ENC_HASH_BUF ? (size_t)(s->size - off) : ENC_HASH_BUF;
		if ((rc = io_pread_full(s, buf, n, off)) < 0)
			goto out;
		cksum_update(cs, buf, n);
		off += n;
	}
	*hash = cksum_digest(cs);
out:
	free(buf);
	if (cs)
		cksum_free(cs);
	return rc;
}

int enc_encode(const enc_opts *o, const io_src *newf, const io_src *base, uint64_t base_hash,
	       int out_fd, enc_stats *st)
{
	enc_opts def = {0};
	if (!o)
		o = &def;
	uint32_t C = o->chunk_size ? o->chunk_size : ENC_DEFAULT_CHUNK;
	/* At least 8 so that a chunk always holds one element of any width. */
	if (C < 8 || C > ENC_MAX_CHUNK || !newf || out_fd < 0)
		return -EINVAL;

	int rc;
	layout *nl = NULL, *bl = NULL;
	seg *segs = NULL;
	size_t nseg = 0;
	pool *p = NULL;
	enc_slot *slots = NULL;
	size_t nslots = 0;
	obj_writer *w = NULL;
	cksum_state *cs = NULL;
	enc_run run;
	int run_init = 0;
	memset(&run, 0, sizeof run);

	const layout *nlu = o->new_layout, *blu = base ? o->base_layout : NULL;
	if (!nlu) {
		if ((rc = layout_parse(newf, &nl)) < 0)
			goto out;
		nlu = nl;
	}
	if (base && !blu) {
		if ((rc = layout_parse(base, &bl)) < 0)
			goto out;
		blu = bl;
	}
	if ((rc = layout_align(nlu, newf->size, blu, base ? base->size : 0, &segs, &nseg)) < 0)
		goto out;
	if (!segs_valid(segs, nseg, newf->size, base)) {
		/* Fall back to one untyped segment paired with the whole base. */
		free(segs);
		nseg = newf->size ? 1 : 0;
		segs = calloc(1, sizeof *segs);
		if (!segs) {
			rc = -ENOMEM;
			goto out;
		}
		segs[0] = (seg){.off = 0, .len = newf->size, .width = 1, .tensor = 0,
				.base_off = base && base->size ? 0 : SEG_NO_BASE,
				.base_len = base ? base->size : 0};
	}
	if (st) {
		memset(st, 0, sizeof *st);
		st->layout_kind = nlu->kind;
		st->layout_match = blu ? layout_match(nlu, blu) : 0;
		st->in_bytes = newf->size;
	}

	p = pool_new(o->threads);
	if (!p) {
		rc = -ENOMEM;
		goto out;
	}
	unsigned nthr = pool_threads(p);
	if (pthread_mutex_init(&run.mu, NULL) != 0) {
		rc = -ENOMEM;
		goto out;
	}
	if (pthread_cond_init(&run.cv, NULL) != 0) {
		pthread_mutex_destroy(&run.mu);
		rc = -ENOMEM;
		goto out;
	}
	run_init = 1;
	if (!(run.ctxs = codec_stash_new(nthr, o->zstd_level))) {
		rc = -ENOMEM;
		goto out;
	}
	/* Slots are only needed for as many chunks as the file has. */
	uint64_t maxchunks = newf->size / C + nseg + 1;
	nslots = 2 * (size_t)nthr;
	if (nslots > maxchunks)
		nslots = (size_t)maxchunks;
	slots = calloc(nslots, sizeof *slots);
	if (!slots) {
		rc = -ENOMEM;
		goto out;
	}
	size_t cb = codec_bound(C);
	for (size_t i = 0; i < nslots; i++) {
		slots[i].run = &run;
		slots[i].nbuf = malloc(C);
		slots[i].bbuf = malloc(C);
		slots[i].vbuf = malloc(C);
		slots[i].obuf = malloc(cb > C ? cb : C);
		if (!slots[i].nbuf || !slots[i].bbuf || !slots[i].obuf || !slots[i].vbuf) {
			rc = -ENOMEM;
			goto out;
		}
	}
	if (!(cs = cksum_new())) {
		rc = -ENOMEM;
		goto out;
	}
	obj_info info = {.size = newf->size, .chunk_size = C, .has_base = base != NULL,
			 .base_size = base ? base->size : 0, .base_hash = base ? base_hash : 0,
			 .lossy_threshold = o->lossy_threshold};
	if ((rc = obj_writer_open(out_fd, &info, &w)) < 0)
		goto out;

	cursor cu = {.s = segs, .nseg = nseg, .C = C};
	size_t head = 0, inflight = 0;
	int more = 1;
	while (more || inflight) {
		if (more && inflight < nslots) {
			enc_slot *sl = &slots[(head + inflight) % nslots];
			if (!cursor_next(&cu, &sl->c, &sl->flags)) {
				more = 0;
				continue;
			}
			if ((rc = io_pread_full(newf, sl->nbuf, sl->c.len, sl->c.off)) < 0)
				break;
			cksum_update(cs, sl->nbuf, sl->c.len);
			if (sl->c.base_len &&
			    (rc = io_pread_full(base, sl->bbuf, sl->c.base_len, sl->c.base_off)) < 0)
				break;
			sl->done = 0;
			sl->rc = 0;
			if ((rc = pool_submit(p, enc_job, sl)) < 0)
				break;
			inflight++;
			continue;
		}
		enc_slot *sl = &slots[head];
		pthread_mutex_lock(&run.mu);
		while (!sl->done)
			pthread_cond_wait(&run.cv, &run.mu);
		pthread_mutex_unlock(&run.mu);
		head = (head + 1) % nslots;
		inflight--;
		if ((rc = sl->rc) < 0)
			break;
		if ((rc = obj_writer_add(w, &sl->c, sl->obuf, sl->olen)) < 0)
			break;
		if (st) {
			st->chunks[sl->c.codec]++;
			st->bytes_in[sl->c.codec] += sl->c.len;
			st->bytes_out[sl->c.codec] += sl->olen;
		}
	}
	pool_wait(p); /* on errors, jobs may still be using the slots */
	if (rc < 0)
		goto out;
	uint64_t h = cksum_digest(cs);
	if ((rc = obj_writer_finish(w, h)) < 0)
		goto out;
	if (st) {
		st->out_bytes = obj_writer_bytes(w);
		st->content_hash = h;
	}
out:
	pool_free(p);
	obj_writer_free(w);
	if (cs)
		cksum_free(cs);
	if (slots) {
		for (size_t i = 0; i < nslots; i++) {
			free(slots[i].nbuf);
			free(slots[i].bbuf);
			free(slots[i].obuf);
			free(slots[i].vbuf);
		}
		free(slots);
	}
	codec_stash_free(run.ctxs);
	if (run_init) {
		pthread_cond_destroy(&run.cv);
		pthread_mutex_destroy(&run.mu);
	}
	free(segs);
	layout_free(nl);
	layout_free(bl);
	return rc;
}
