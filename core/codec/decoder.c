/* decoder.c - chunk and whole-file decode (see decoder.h).
 *
 * Every decoded chunk is checked against its checksum before anyone sees it, and dec_file also
 * checks the whole-file content hash from the footer, so a damaged object or a wrong base can
 * only ever produce an error.
 */
#include "decoder.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cksum.h"
#include "encoder.h"
#include "pool.h"

int dec_chunk(codec_ctx *c, const obj_reader *r, size_t i, const io_src *base, uint8_t *out)
{
	const obj_chunk *ch = obj_reader_chunk(r, i);
	if (!ch)
		return -EINVAL;
	uint8_t *payload;
	const uint8_t *bbuf = NULL;
	int rc;
	int need_base = codec_uses_base(ch->codec) && ch->base_off != OBJ_NO_BASE;
	if (need_base) {
		if (!base)
			return -EINVAL;
		/* A base too short for the recorded region is not the base this was coded against. */
		if (ch->base_off > base->size || ch->base_len > base->size - ch->base_off)
			return -ESTALE;
	}
	payload = codec_ctx_scratch(c, CODEC_SCRATCH_PAYLOAD, ch->data_len ? ch->data_len : 1);
	if (!payload) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = obj_reader_payload(r, i, payload)) < 0)
		goto out;
	if (need_base && ch->base_len && !(bbuf = io_view(base, ch->base_len, ch->base_off))) {
		uint8_t *copy = codec_ctx_scratch(c, CODEC_SCRATCH_BASE, ch->base_len);
		if (!copy) {
			rc = -ENOMEM;
			goto out;
		}
		if ((rc = io_pread_full(base, copy, ch->base_len, ch->base_off)) < 0)
			goto out;
		bbuf = copy;
	}
	rc = codec_decode(c, ch->codec, payload, ch->data_len, bbuf, need_base ? ch->base_len : 0,
			  ch->width, out, ch->len);
	if (rc == 0 && cksum64(out, ch->len) != ch->cksum)
		rc = -EIO;
out:
	if (rc < 0)
		memset(out, 0, ch->len); /* never leave unverified bytes behind */
	return rc;
}

typedef struct dec_run dec_run;

/* A job is a run of consecutive chunks (up to DEC_GROUP bytes): per-tensor chunks are often a
 * few KiB, and one pool handoff per chunk cost more than decoding it. */
#define DEC_GROUP (1u << 20)

typedef struct dec_slot {
	dec_run *run;
	size_t idx, count; /* chunks [idx, idx + count) */
	size_t len;        /* their decoded bytes, back to back in buf */
	uint8_t *buf;
	int rc;
	int done;
} dec_slot;

struct dec_run {
	const obj_reader *r;
	const io_src *base;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	codec_stash *ctxs;
};

static void dec_job(void *arg)
{
	dec_slot *sl = arg;
	dec_run *run = sl->run;
	codec_ctx *ctx = codec_stash_take(run->ctxs);
	int rc = ctx ? 0 : -ENOMEM;
	size_t off = 0;
	for (size_t k = sl->idx; k < sl->idx + sl->count && rc == 0; k++) {
		rc = dec_chunk(ctx, run->r, k, run->base, sl->buf + off);
		off += obj_reader_chunk(run->r, k)->len;
	}
	codec_stash_give(run->ctxs, ctx);
	pthread_mutex_lock(&run->mu);
	sl->rc = rc;
	sl->done = 1;
	pthread_cond_broadcast(&run->cv);
	pthread_mutex_unlock(&run->mu);
}

int dec_file(const obj_reader *r, const io_src *base, int verify_base, unsigned threads, int out_fd)
{
	const obj_info *info = obj_reader_info(r);
	int rc;
	if (info->has_base) {
		if (!base)
			return -EINVAL;
		if (base->size != info->base_size)
			return -ESTALE;
		if (verify_base) {
			uint64_t h;
			if ((rc = enc_content_hash(base, &h)) < 0)
				return rc;
			if (h != info->base_hash)
				return -ESTALE;
		}
	} else {
		base = NULL;
	}
	size_t n = obj_reader_nchunks(r);
	pool *p = NULL;
	dec_slot *slots = NULL;
	size_t nslots = 0;
	cksum_state *cs = NULL;
	dec_run run;
	int run_init = 0;
	memset(&run, 0, sizeof run);
	run.r = r;
	run.base = base;

	if (!(cs = cksum_new())) {
		rc = -ENOMEM;
		goto out;
	}
	p = pool_new(threads);
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
	if (!(run.ctxs = codec_stash_new(nthr, 0))) {
		rc = -ENOMEM;
		goto out;
	}
	nslots = 2 * (size_t)nthr;
	if (nslots > n)
		nslots = n;
	slots = calloc(nslots ? nslots : 1, sizeof *slots);
	if (!slots) {
		rc = -ENOMEM;
		goto out;
	}
	/* Buffers as large as the largest chunk actually present: a hostile header's chunk_size
	 * alone must not make us allocate hundreds of MiB. */
	size_t cap = DEC_GROUP;
	for (size_t i = 0; i < n; i++)
		if (obj_reader_chunk(r, i)->len > cap)
			cap = obj_reader_chunk(r, i)->len;
	for (size_t i = 0; i < nslots; i++) {
		slots[i].run = &run;
		if (!(slots[i].buf = malloc(cap))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	size_t next = 0, head = 0, inflight = 0;
	rc = 0;
	while (next < n || inflight) {
		if (next < n && inflight < nslots) {
			dec_slot *sl = &slots[(head + inflight) % nslots];
			sl->idx = next;
			sl->len = obj_reader_chunk(r, next++)->len;
			while (next < n && sl->len + obj_reader_chunk(r, next)->len <= cap)
				sl->len += obj_reader_chunk(r, next++)->len;
			sl->count = next - sl->idx;
			sl->done = 0;
			if ((rc = pool_submit(p, dec_job, sl)) < 0)
				break;
			inflight++;
			continue;
		}
		dec_slot *sl = &slots[head];
		pthread_mutex_lock(&run.mu);
		while (!sl->done)
			pthread_cond_wait(&run.cv, &run.mu);
		pthread_mutex_unlock(&run.mu);
		head = (head + 1) % nslots;
		inflight--;
		if ((rc = sl->rc) < 0)
			break;
		cksum_update(cs, sl->buf, sl->len);
		if ((rc = io_write_full(out_fd, sl->buf, sl->len)) < 0)
			break;
	}
	pool_wait(p);
	if (rc == 0 && cksum_digest(cs) != info->content_hash)
		rc = -EIO;
out:
	pool_free(p);
	if (cs)
		cksum_free(cs);
	if (slots) {
		for (size_t i = 0; i < nslots; i++)
			free(slots[i].buf);
		free(slots);
	}
	codec_stash_free(run.ctxs);
	if (run_init) {
		pthread_cond_destroy(&run.cv);
		pthread_mutex_destroy(&run.mu);
	}
	return rc;
}
