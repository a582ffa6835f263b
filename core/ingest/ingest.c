/* ingest.c - a staged file version into the store, one way (see ingest.h). */
#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "encoder.h"
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

static int chain_cancelled(void *ctx)
{
	const int *cancel = ctx;
	return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED);
}

int ingest_layouts_fit(const layout *nl, uint64_t nsize, const layout *bl, uint64_t bsize)
{
	if (nl->kind != LAYOUT_UNKNOWN && bl->kind != LAYOUT_UNKNOWN)
		return layout_match(nl, bl) >= 0.5;
	if (nl->kind == LAYOUT_UNKNOWN && bl->kind == LAYOUT_UNKNOWN)
		return nsize <= 2 * bsize && bsize <= 2 * nsize;
	return 0;
}

int ingest_fit(const io_src *nsrc, const io_src *bsrc, layout **nl, layout **bl)
{
	*nl = *bl = NULL;
	if (layout_parse(nsrc, nl) < 0)
		return 0;
	if (layout_parse(bsrc, bl) < 0 ||
	    !ingest_layouts_fit(*nl, nsrc->size, *bl, bsrc->size)) {
		layout_free(*nl);
		layout_free(*bl);
		*nl = *bl = NULL;
		return 0;
	}
	return 1;
}

int ingest_encode_blob(store *s, const ingest_src *src, const ingest_src *base, uint64_t base_id,
		       uint32_t base_depth, uint64_t max_stored, store_obj *out)
{
	uint64_t id;
	int r = store_obj_reserve(s, &id);
	if (r < 0)
		return r;
	char tmp[64];
	int fd = store_tmp_create(s, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	enc_opts eo = {.new_layout = src->lay, .base_layout = base ? base->lay : NULL};
	enc_stats es;
	memset(&es, 0, sizeof(es));
	r = enc_encode(&eo, src->src, base ? base->src : NULL, base ? base->hash : 0, fd, &es);
	if (r == 0 && src->hash && es.content_hash != src->hash)
		r = -EIO; /* what we read is not what was stored: never install it */
	struct stat st;
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r == 0 && max_stored && (uint64_t)st.st_size > max_stored)
		r = -EFBIG; /* not worth it */
	if (r == 0)
		r = store_obj_install(s, fd, tmp, id);
	close(fd);
	if (r < 0) {
		unlinkat(store_dirfd(s), tmp, 0);
		return r;
	}
	memset(out, 0, sizeof(*out));
	out->id = id;
	out->base = base ? base_id : 0;
	out->depth = base ? base_depth + 1 : 0;
	out->size = src->src->size;
	out->stored = (uint64_t)st.st_size;
	out->hash = es.content_hash;
	return 0;
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

#define INGEST_CONTENT_CANDS 2 /* same-tensor files tried beside the name-based candidates */
#define INGEST_SIG_MIN_BYTES (64u << 10) /* tensors smaller than this identify nothing */

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t fnv(uint64_t h, uint64_t v)
{
	return (h ^ v) * 1099511628211ull;
}

static uint64_t region_sig(const layout_region *r)
{
	uint64_t h = 14695981039346656037ull;
	for (const char *c = r->name; *c; c++)
		h = fnv(h, (unsigned char)*c);
	h = fnv(h, 0xff);
	h = fnv(h, r->len);
	return fnv(h, r->width);
}

size_t ingest_layout_sigs(const layout *l, uint64_t *sigs)
{
	if (!l || l->kind == LAYOUT_UNKNOWN || l->n == 0)
		return 0;
	/* [0]: the whole layout in file order (an exact copy of the tensors matches every key);
	 * then the largest tensors one by one (a fine-tune shares its base's big weights even when
	 * the optimizer state differs). Region names are zip members without the archive's root
	 * folder, or safetensors keys. FNV-1a: index keys, never trusted (the fit check and a trial
	 * encode decide). */
	uint64_t h = fnv(14695981039346656037ull, (uint64_t)l->kind);
	for (size_t i = 0; i < l->n; i++)
		h = fnv(h, region_sig(&l->r[i]));
	size_t n = 0;
	sigs[n++] = h ? h : 1;
	enum { K = STORE_SIG_MAX - 1 };
	size_t top[K]; /* indices of the K largest regions, largest first */
	size_t nt = 0;
	for (size_t i = 0; i < l->n; i++) {
		size_t k;
		if (nt < K)
			k = nt++;
		else if (l->r[i].len > l->r[top[K - 1]].len)
			k = K - 1;
		else
			continue;
		while (k > 0 && l->r[top[k - 1]].len < l->r[i].len) {
			top[k] = top[k - 1];
			k--;
		}
		top[k] = i;
	}
	for (size_t i = 0; i < nt; i++)
		if (l->r[top[i]].len >= INGEST_SIG_MIN_BYTES)
			sigs[n++] = region_sig(&l->r[top[i]]);
	return n;
}

/* The chosen predecessor: its row and both parsed layouts (kept for the encodes). */
typedef struct choice {
	store_obj base;        /* id 0: none */
	uint64_t sigs[STORE_SIG_MAX]; /* the new file's tensor signatures */
	size_t nsigs;
	int64_t lookup_us;     /* the signature lookup's cost */
	size_t lookups;        /* objects it found */
	int newer;             /* base is a later version, stored already: code forward against it */
	uint64_t named[8];     /* the objects of the file's candidates by name: its series */
	size_t nnamed;
	int kind;
	const char *why;
	layout *nl, *bl;       /* the new file's layout (NULL if unparsable), the base's */
} choice;

static void choice_free(choice *c)
{
	layout_free(c->nl);
	layout_free(c->bl);
	c->nl = c->bl = NULL;
}

static void choose_base(store *s, chain *ch, uint64_t ino, const io_src *nsrc,
			const ingest_opts *o, choice *out)
{
	memset(out, 0, sizeof(*out));
	out->why = "no candidate";
	unsigned max_chain = o->max_chain ? o->max_chain : INGEST_DEFAULT_MAX_CHAIN;
	pred_cand cand[8 + INGEST_CONTENT_CANDS];
	size_t nc = 0;
	if (pred_candidates(s, ino, cand, 8, &nc) < 0)
		nc = 0;
	if (layout_parse(nsrc, &out->nl) < 0) {
		out->nl = NULL;
		return;
	}
	/* stored files with the same tensors, as extra candidates (after the names'), for a file
	 * that is not part of a named series: a copy of a state under another name (Lightning's
	 * last.ckpt, whose only name-based candidate is the version it replaced), a fine-tune's
	 * first checkpoint. A series has its predecessor already; probing more would cost every
	 * version a trial encode. */
	out->nsigs = ingest_layout_sigs(out->nl, out->sigs);
	int series = 0;
	for (size_t k = 0; k < nc; k++) {
		series |= cand[k].kind == PRED_SIBLING || cand[k].kind == PRED_SIBDIR;
		if (cand[k].obj && out->nnamed < 8)
			out->named[out->nnamed++] = cand[k].obj;
	}
	if (out->nsigs && !series) {
		int64_t t0 = mono_us();
		uint64_t objs[INGEST_CONTENT_CANDS];
		size_t no = 0;
		if (store_sig_find(s, out->sigs, out->nsigs, objs, INGEST_CONTENT_CANDS, &no) == 0)
			for (size_t i = 0; i < no; i++) {
				int dup = 0;
				for (size_t k = 0; k < nc; k++)
					dup |= cand[k].obj == objs[i];
				if (!dup)
					cand[nc++] = (pred_cand){PRED_CONTENT, objs[i], 0, 0};
			}
		out->lookup_us = mono_us() - t0;
		out->lookups = no;
	}
	if (nc == 0)
		return;
	if (o->reverse) {
		/* A later version is stored already (a batch is taken in newest first): this one is
		 * coded once, forward, against it, and the chain's keyframe stays where it is. Those
		 * candidates go first, in their ranked order. */
		pred_cand tmp[8 + INGEST_CONTENT_CANDS];
		size_t k = 0;
		for (int pass = 1; pass >= 0; pass--)
			for (size_t i = 0; i < nc; i++)
				if ((cand[i].newer != 0) == pass)
					tmp[k++] = cand[i];
		memcpy(cand, tmp, nc * sizeof(*cand));
	}
	store_obj fit[PROBE_CANDS];
	int fit_kind[PROBE_CANDS], fit_newer[PROBE_CANDS];
	layout *fit_l[PROBE_CANDS]; /* their layouts, for the trial encodes and the encode */
	size_t nfit = 0;
	for (size_t i = 0; i < nc && nfit < PROBE_CANDS; i++) {
		uint64_t bobj = cand[i].obj;
		if (!bobj && cand[i].ino) {
			/* the predecessor is itself waiting: ingest it first (only the best-ranked
			 * one: later candidates are compared only if they are stored already).
			 * Reverse ingest never does: the waiting older version is coded against
			 * this one once it is stored. */
			if (o->reverse || !o->encode_first || nfit > 0)
				continue;
			o->encode_first(o->ctx, cand[i].ino);
			store_attr a;
			if (store_getattr(s, cand[i].ino, &a) < 0 || a.staged || !a.obj)
				continue;
			bobj = a.obj;
		}
		store_obj bo;
		if (store_obj_get(s, bobj, &bo) < 0 || bo.unref)
			continue; /* a retired object is on its way out: never a base */
		chain_src cs;
		io_src bsrc;
		chain_src_init(&bsrc, &cs, ch, bobj, bo.size, NULL, NULL);
		layout *bl = NULL;
		if (layout_parse(&bsrc, &bl) < 0 ||
		    !ingest_layouts_fit(out->nl, nsrc->size, bl, bsrc.size)) {
			layout_free(bl);
			if (nfit == 0)
				out->why = "layout mismatch";
			continue;
		}
		if ((!o->reverse || cand[i].newer) && bo.depth + 1 > max_chain) {
			/* Depth limit: rather than a keyframe (which costs a whole standalone copy),
			 * code against the candidate's ancestor at depth <= max_chain / 2: a delta
			 * spanning a few versions is still far smaller, and depth stays bounded. (A
			 * reverse ingest makes the new version a keyframe: no limit applies here.) */
			layout_free(bl); /* the ancestor's layout is parsed again when used */
			if (nfit > 0)
				break;
			while (bo.base && bo.depth > max_chain / 2 &&
			       store_obj_get(s, bo.base, &bo) == 0)
				;
			if (bo.depth + 1 > max_chain || bo.depth > max_chain / 2) {
				out->why = "chain depth limit: keyframe";
				break;
			}
			fit[nfit] = bo;
			fit_kind[nfit] = cand[i].kind;
			fit_newer[nfit] = cand[i].newer;
			fit_l[nfit] = NULL;
			nfit++;
			break;
		}
		fit[nfit] = bo;
		fit_kind[nfit] = cand[i].kind;
		fit_newer[nfit] = cand[i].newer;
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
				cost[i] = probe_cost(out->nl, fit_l[i], nsrc, &bsrc, cc, nb, bb, ob);
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
		out->base = fit[best];
		out->newer = fit_newer[best];
		out->kind = fit_kind[best];
		out->why = pred_kind_name(fit_kind[best]);
		out->bl = fit_l[best];
		fit_l[best] = NULL;
	}
	for (size_t i = 0; i < nfit; i++)
		layout_free(fit_l[i]);
}

/* Reverse: the predecessor p (content unchanged) re-coded against the new version, read from
 * staging. Skipped (0, nothing made) when nothing but this file's own hint needs p (the commit
 * then frees it), and when the re-coded blob would not be smaller than p's (incompressible data:
 * p stays as it is, and no space is spent on a second copy). */
static int rebase_pred(store *s, chain *ch, ingest_job *j, const choice *c, const io_src *nsrc,
		       const int *cancel)
{
	int need = store_obj_needed(s, c->base.id, j->ino);
	if (need <= 0)
		return need;
	chain_src cs;
	io_src psrc;
	chain_src_init(&psrc, &cs, ch, c->base.id, c->base.size, chain_cancelled, (void *)cancel);
	ingest_src p = {&psrc, c->bl, c->base.hash};
	ingest_src n = {nsrc, c->nl, j->obj.hash};
	uint64_t bound = c->base.stored > 1 ? c->base.stored - 1 : 1;
	int r = ingest_encode_blob(s, &p, &n, j->obj.id, j->obj.depth, bound, &j->rb.nw);
	if (r == -EFBIG)
		return 0;
	if (r < 0)
		return r;
	j->rb.expect = c->base;
	j->has_rebase = 1;
	return 0;
}

int ingest_same_bytes(const io_src *a, const io_src *b)
{
	if (a->size != b->size)
		return 0;
	size_t bs = 1u << 20;
	uint8_t *x = malloc(bs), *y = malloc(bs);
	int r = x && y ? 1 : -ENOMEM;
	for (uint64_t off = 0; r == 1 && off < a->size;) {
		size_t n = a->size - off < bs ? (size_t)(a->size - off) : bs;
		int e = io_pread_full(a, x, n, off);
		if (e == 0)
			e = io_pread_full(b, y, n, off);
		if (e < 0)
			r = e;
		else if (memcmp(x, y, n))
			r = 0;
		off += n;
	}
	free(x);
	free(y);
	return r;
}

/* Whole-file dedup: a stored object with the same size and content hash whose bytes compare
 * equal (a hash alone is never trusted: another user could craft a collision). 1 with *out
 * set, 0 when none, -errno. */
static int find_same(store *s, chain *ch, const io_src *nsrc, const int *cancel, store_obj *out)
{
	uint64_t hash;
	int r = enc_content_hash(nsrc, &hash);
	if (r < 0)
		return r;
	uint64_t ids[8];
	size_t n;
	if ((r = store_obj_find_content(s, nsrc->size, hash, ids, 8, &n)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		store_obj o;
		if (store_obj_get(s, ids[i], &o) < 0)
			continue;
		chain_src cs;
		io_src osrc;
		chain_src_init(&osrc, &cs, ch, o.id, o.size, chain_cancelled, (void *)cancel);
		r = ingest_same_bytes(nsrc, &osrc);
		if (r == 1) {
			*out = o;
			return 1;
		}
		if (r == -ECANCELED || r == -ENOMEM)
			return r;
	}
	return 0;
}

/* The new version of a series takes over its predecessor's base when the predecessor has one
 * (reverse ingest keeps the newest version a keyframe otherwise): a fine-tune whose first
 * checkpoint was coded against the model it started from stays anchored to that model, instead
 * of paying a whole standalone copy from its second checkpoint on. 1 with the anchor's row and
 * layout when it fits (stored, same tensors, room in the chain), 0 when not. */
static int series_anchor(store *s, chain *ch, const choice *c, const io_src *nsrc,
			 const ingest_opts *o, store_obj *a, layout **al)
{
	unsigned max_chain = o->max_chain ? o->max_chain : INGEST_DEFAULT_MAX_CHAIN;
	*al = NULL;
	if (!c->base.id || !c->base.base || !c->nl || store_obj_get(s, c->base.base, a) < 0 ||
	    a->unref || a->depth + 2 > max_chain)
		return 0;
	/* a base inside the series (a chain of forward deltas from newest_keyframe=0) is not an
	 * anchor: there the newest version becomes the keyframe as usual */
	for (size_t i = 0; i < c->nnamed; i++)
		if (c->named[i] == a->id)
			return 0;
	chain_src cs;
	io_src asrc;
	chain_src_init(&asrc, &cs, ch, a->id, a->size, NULL, NULL);
	if (layout_parse(&asrc, al) < 0 || !ingest_layouts_fit(c->nl, nsrc->size, *al, a->size)) {
		layout_free(*al);
		*al = NULL;
		return 0;
	}
	return 1;
}

int ingest_prepare(store *s, chain *ch, uint64_t ino, int sfd, uint64_t size,
		   const ingest_opts *o, ingest_job *j)
{
	memset(j, 0, sizeof(*j));
	j->ino = ino;
	cancel_src csrc = {sfd, o->cancel};
	io_src nsrc = {.pread = cancel_pread, .ctx = &csrc, .size = size};
	if (size > 0) {
		int d = find_same(s, ch, &nsrc, o->cancel, &j->obj);
		if (d < 0 && d != -EIO)
			return d;
		if (d == 1) {
			j->dedup = 1;
			j->why = "same bytes as a stored file";
			return 0;
		}
	}
	choice c;
	choose_base(s, ch, ino, &nsrc, o, &c);
	j->kind = c.kind;
	j->why = c.why;
	j->pred = c.base.id;
	memcpy(j->sigs, c.sigs, sizeof(j->sigs));
	j->nsigs = c.nsigs;
	j->lookup_us = c.lookup_us;
	j->lookups = c.lookups;
	int r;
	ingest_src n = {&nsrc, c.nl, 0};
	/* Reverse ingest makes the new version its chain's keyframe, except against a later stored
	 * version (a batch newest first) or a file found by its tensors: a copy of a state under
	 * another name (last.ckpt beside its epoch file) is the one that goes first, so it becomes
	 * the delta and the named series keeps its chain. */
	if ((o->reverse && !c.newer && c.kind != PRED_CONTENT) || !c.base.id) {
		store_obj an;
		layout *al;
		if (o->reverse && series_anchor(s, ch, &c, &nsrc, o, &an, &al)) {
			chain_src cs;
			io_src asrc;
			chain_src_init(&asrc, &cs, ch, an.id, an.size, chain_cancelled,
				       (void *)o->cancel);
			ingest_src b = {&asrc, al, an.hash};
			r = ingest_encode_blob(s, &n, &b, an.id, an.depth, 0, &j->obj);
			layout_free(al);
			j->anchor = an.id;
		} else {
			r = ingest_encode_blob(s, &n, NULL, 0, 0, 0, &j->obj);
		}
		if (r == 0 && c.base.id &&
		    rebase_pred(s, ch, j, &c, &nsrc, o->cancel) == -ECANCELED) {
			store_obj_discard(s, j->obj.id);
			r = -ECANCELED;
		}
		/* any other failure to re-code the predecessor (no space, a damaged chain): the new
		 * version stands alone as a keyframe, the predecessor stays as it was */
	} else {
		chain_src cs;
		io_src bsrc;
		chain_src_init(&bsrc, &cs, ch, c.base.id, c.base.size, chain_cancelled,
			       (void *)o->cancel);
		ingest_src b = {&bsrc, c.bl, c.base.hash};
		r = ingest_encode_blob(s, &n, &b, c.base.id, c.base.depth, 0, &j->obj);
	}
	choice_free(&c);
	return r;
}

int ingest_commit(store *s, ingest_job *j, int (*check)(void *ctx), void *ctx)
{
	j->retired = 0;
	if (j->dedup)
		return store_commit_existing(s, j->ino, &j->obj, check, ctx);
	int r = store_commit_version(s, j->ino, &j->obj, j->has_rebase ? &j->rb : NULL, check, ctx);
	if (r < 0) {
		store_obj_discard(s, j->obj.id);
		if (j->has_rebase)
			store_obj_discard(s, j->rb.nw.id);
		return r;
	}
	if (j->has_rebase && !j->rb.switched)
		store_obj_discard(s, j->rb.nw.id); /* the predecessor changed meanwhile */
	if (j->has_rebase && j->rb.switched)
		j->retired = j->rb.expect.id;
	if (j->nsigs)
		store_sig_put(s, j->obj.id, j->sigs, j->nsigs); /* best effort: a lookup aid */
	return 0;
}

void ingest_job_done(ingest_job *j)
{
	free(j->rb.inos);
	free(j->rb.deps);
	j->rb.inos = j->rb.deps = NULL;
	j->rb.ninos = j->rb.ndeps = 0;
}
