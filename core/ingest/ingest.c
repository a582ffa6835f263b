/* store_encode.c - staged file -> installed delta object (see store_encode.h). */
#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "encoder.h"
#include "io.h"
#include "layout.h"
#include "objfile.h"
#include "pred.h"

#define PROBE_CANDS 8                  /* candidates compared by a trial encode */
#define PROBE_WINDOWS 8                /* sample windows per trial */
#define PROBE_WINDOW (64u << 10)       /* bytes per sample window */

/* The staging file as the encoder reads it: fails once cancelled, so that unmounting never waits
 * for a long encode (the file stays staged for the next mount). */
typedef struct cancel_src {
	int fd;
	const int *cancel;
} cancel_src;

static ssize_t cancel_pread(const io_src *s, void *buf, size_t len, uint64_t off)
{
	const cancel_src *c = s->ctx;
	if (c->cancel && __atomic_load_n(c->cancel, __ATOMIC_RELAXED))
		return -ECANCELED;
	io_src f;
	io_src_from_fd(&f, c->fd, s->size);
	return f.pread(&f, buf, len, off);
}

/* Does the base look like an earlier version of the new file? When it does, its parsed layout
 * goes to *keep (the caller frees it) so that a trial encode need not parse it again. */
static int layouts_fit(const layout *nl, uint64_t nsize, const io_src *bsrc, layout **keep)
{
	layout *bl = NULL;
	*keep = NULL;
	if (layout_parse(bsrc, &bl) < 0)
		return 0;
	int ok;
	if (nl->kind != LAYOUT_UNKNOWN && bl->kind != LAYOUT_UNKNOWN)
		ok = layout_match(nl, bl) >= 0.5;
	else if (nl->kind == LAYOUT_UNKNOWN && bl->kind == LAYOUT_UNKNOWN)
		ok = nsize <= 2 * bsrc->size && bsrc->size <= 2 * nsize;
	else
		ok = 0;
	if (ok)
		*keep = bl;
	else
		layout_free(bl);
	return ok;
}

/* Trial-encode a sample of the new file against a candidate base: PROBE_WINDOWS windows spread
 * over the segments that line up with the base. Names alone cannot tell a shard axis from a time
 * axis (step1_rank1 vs step1_rank0 / step0_rank1) and every shard has the same layout, but the
 * same shard's previous version codes far smaller. Returns the coded size, UINT64_MAX on error. */
static uint64_t probe_cost(const layout *nl, const layout *bl, const io_src *nsrc,
			   const io_src *bsrc, codec_ctx *cc, uint8_t *nb, uint8_t *bb, uint8_t *out)
{
	seg *sg = NULL;
	size_t ns = 0;
	uint64_t cost = UINT64_MAX;
	if (!bl)
		return cost;
	if (layout_align(nl, nsrc->size, bl, bsrc->size, &sg, &ns) < 0)
		goto out;
	uint64_t paired = 0;
	for (size_t i = 0; i < ns; i++)
		if (sg[i].base_off != SEG_NO_BASE)
			paired += sg[i].len;
	if (paired == 0)
		goto out;
	cost = 0;
	/* window k starts at the k/PROBE_WINDOWS point of the paired bytes */
	uint64_t step = paired / PROBE_WINDOWS, pos = 0, next = step / 2;
	for (size_t i = 0; i < ns; i++) {
		const seg *g = &sg[i];
		if (g->base_off == SEG_NO_BASE)
			continue;
		while (next < pos + g->len) {
			uint64_t rel = next - pos;
			unsigned w = g->width ? g->width : 1;
			rel -= rel % w;
			size_t len = PROBE_WINDOW;
			if (len > g->len - rel)
				len = (size_t)(g->len - rel);
			len -= len % w;
			size_t blen = len;
			if (!g->tensor)
				blen = rel < g->base_len ? (size_t)(g->base_len - rel < len ? g->base_len - rel : len) : 0;
			size_t olen = 0;
			uint8_t codec;
			if (len && io_pread_full(nsrc, nb, len, g->off + rel) == 0 &&
			    (blen == 0 || io_pread_full(bsrc, bb, blen, g->base_off + rel) == 0) &&
			    codec_encode(cc, nb, len, blen ? bb : NULL, blen, w,
					 g->tensor ? CODEC_F_TENSOR : 0, out, &olen, &codec) == 0)
				cost += olen;
			else if (len)
				cost += len; /* unreadable window: count it as incompressible */
			next += step ? step : 1;
			if (step == 0)
				break;
		}
		pos += g->len;
	}
out:
	free(sg);
	return cost;
}

static void choose_base(store *s, chain *ch, uint64_t ino, const io_src *nsrc,
			const store_enc_ctl *c, store_enc_out *out)
{
	memset(&out->obj, 0, sizeof(out->obj));
	out->kind = 0;
	out->why = "no candidate";
	pred_cand cand[8];
	size_t nc = 0;
	if (pred_candidates(s, ino, cand, 8, &nc) < 0 || nc == 0)
		return;
	layout *nl = NULL;
	if (layout_parse(nsrc, &nl) < 0)
		return;
	store_obj fit[PROBE_CANDS];
	int fit_kind[PROBE_CANDS];
	layout *fit_l[PROBE_CANDS]; /* their layouts, for the trial encodes */
	size_t nfit = 0;
	for (size_t i = 0; i < nc && nfit < PROBE_CANDS; i++) {
		uint64_t bobj = cand[i].obj;
		if (!bobj && cand[i].ino) {
			/* the predecessor is itself waiting: encode it first (only the best-ranked
			 * one: later candidates are compared only if they are stored already) */
			if (!c->encode_first || nfit > 0)
				continue;
			c->encode_first(c->ctx, cand[i].ino);
			store_attr a;
			if (store_getattr(s, cand[i].ino, &a) < 0 || a.staged || !a.obj)
				continue;
			bobj = a.obj;
		}
		store_obj bo;
		if (store_obj_get(s, bobj, &bo) < 0)
			continue;
		chain_src cs;
		io_src bsrc;
		chain_src_init(&bsrc, &cs, ch, bobj, bo.size, NULL, NULL);
		layout *bl;
		if (!layouts_fit(nl, nsrc->size, &bsrc, &bl)) {
			if (nfit == 0)
				out->why = "layout mismatch";
			continue;
		}
		if (bo.depth + 1 > c->max_chain) {
			/* Depth limit: rather than a keyframe (which costs a whole standalone copy),
			 * code against the candidate's ancestor at depth <= max_chain / 2: a delta
			 * spanning a few versions is still far smaller, and depth stays bounded. */
			layout_free(bl); /* the ancestor is used alone, never compared */
			if (nfit > 0)
				break;
			while (bo.base && bo.depth > c->max_chain / 2 &&
			       store_obj_get(s, bo.base, &bo) == 0)
				;
			if (bo.depth + 1 > c->max_chain || bo.depth > c->max_chain / 2) {
				out->why = "chain depth limit: keyframe";
				break;
			}
			fit[nfit] = bo;
			fit_kind[nfit] = cand[i].kind;
			fit_l[nfit] = NULL;
			nfit++;
			break;
		}
		fit[nfit] = bo;
		fit_kind[nfit] = cand[i].kind;
		fit_l[nfit] = bl;
		nfit++;
	}
	size_t best = 0;
	if (nfit > 1) {
		codec_ctx *cc = codec_ctx_new(0);
		uint8_t *nb = malloc(PROBE_WINDOW), *bb = malloc(PROBE_WINDOW);
		uint8_t *ob = malloc(codec_bound(PROBE_WINDOW));
		if (cc && nb && bb && ob) {
			uint64_t cost[PROBE_CANDS];
			for (size_t i = 0; i < nfit; i++) {
				chain_src cs;
				io_src bsrc;
				chain_src_init(&bsrc, &cs, ch, fit[i].id, fit[i].size, NULL, NULL);
				cost[i] = probe_cost(nl, fit_l[i], nsrc, &bsrc, cc, nb, bb, ob);
			}
			/* the name ranking's first choice keeps its place unless another base
			 * codes clearly (3%) smaller: a shard of another rank codes no better
			 * than no base at all, the same rank's previous save ~10% better */
			for (size_t i = 1; i < nfit; i++)
				if (cost[i] < cost[best] && cost[i] < cost[0] - cost[0] / 32)
					best = i;
		}
		free(ob);
		free(bb);
		free(nb);
		codec_ctx_free(cc);
	}
	if (nfit > 0) {
		const store_obj *bo = &fit[best];
		out->obj.base = bo->id;
		out->obj.depth = bo->depth + 1;
		out->obj.hash = bo->hash;       /* base hash until encoded */
		out->obj.size = bo->size;       /* base size until encoded */
		out->kind = fit_kind[best];
		out->why = pred_kind_name(fit_kind[best]);
	}
	for (size_t i = 0; i < nfit; i++)
		layout_free(fit_l[i]);
	layout_free(nl);
}

int store_encode_staged(store *s, chain *ch, uint64_t ino, int sfd, uint64_t size,
			const store_enc_ctl *c, store_enc_out *out)
{
	cancel_src csrc = {sfd, c->cancel};
	io_src nsrc = {.pread = cancel_pread, .ctx = &csrc, .size = size};
	choose_base(s, ch, ino, &nsrc, c, out);
	chain_src cs;
	io_src bsrc;
	chain_src_init(&bsrc, &cs, ch, out->obj.base, out->obj.size, NULL, NULL);
	uint64_t base_hash = out->obj.hash;
	uint64_t id;
	int r = store_obj_reserve(s, &id);
	if (r < 0)
		return r;
	char tmp[64];
	int tfd = store_tmp_create(s, tmp, sizeof(tmp));
	if (tfd < 0)
		return tfd;
	enc_opts eo = {0, 0, 0};
	enc_stats es;
	memset(&es, 0, sizeof(es));
	r = enc_encode(&eo, &nsrc, out->obj.base ? &bsrc : NULL, base_hash, tfd, &es);
	struct stat ts;
	if (r == 0 && fstat(tfd, &ts) < 0)
		r = -errno;
	if (r == 0)
		r = store_obj_install(s, tfd, tmp, id);
	close(tfd);
	if (r < 0) {
		unlinkat(store_dirfd(s), tmp, 0);
		return r;
	}
	out->obj.id = id;
	out->obj.size = size;
	out->obj.stored = (uint64_t)ts.st_size;
	out->obj.hash = es.content_hash;
	out->obj.unref = 0;
	return 0;
}

