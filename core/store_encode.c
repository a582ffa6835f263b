/* store_encode.c - staged file -> installed delta object (see store_encode.h). */
#include "store_encode.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encoder.h"
#include "io.h"
#include "layout.h"
#include "objfile.h"
#include "pred.h"

#define STORE_PREFETCH_MAX (64u << 20) /* object files read ahead whole on open */

typedef struct chain_src {
	chain *ch;
	uint64_t obj;
} chain_src;

static ssize_t chain_src_pread(const io_src *s, void *buf, size_t len, uint64_t off)
{
	const chain_src *c = s->ctx;
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

/* Does the base look like an earlier version of the new file? */
static int layouts_fit(const layout *nl, uint64_t nsize, const io_src *bsrc)
{
	layout *bl = NULL;
	if (layout_parse(bsrc, &bl) < 0)
		return 0;
	int ok;
	if (nl->kind != LAYOUT_UNKNOWN && bl->kind != LAYOUT_UNKNOWN)
		ok = layout_match(nl, bl) >= 0.5;
	else if (nl->kind == LAYOUT_UNKNOWN && bl->kind == LAYOUT_UNKNOWN)
		ok = nsize <= 2 * bsrc->size && bsrc->size <= 2 * nsize;
	else
		ok = 0;
	layout_free(bl);
	return ok;
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
	for (size_t i = 0; i < nc; i++) {
		uint64_t bobj = cand[i].obj;
		if (!bobj && cand[i].ino) {
			/* the predecessor is itself waiting: encode it first */
			if (!c->encode_first)
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
		chain_src cs = {ch, bobj};
		io_src bsrc = {chain_src_pread, &cs, bo.size};
		if (!layouts_fit(nl, nsrc->size, &bsrc)) {
			out->why = "layout mismatch";
			continue;
		}
		if (bo.depth + 1 > c->max_chain) {
			out->why = "chain depth limit: keyframe";
			break;
		}
		out->obj.base = bo.id;
		out->obj.depth = bo.depth + 1;
		out->obj.hash = bo.hash;       /* base hash until encoded */
		out->obj.size = bo.size;       /* base size until encoded */
		out->kind = cand[i].kind;
		out->why = pred_kind_name(cand[i].kind);
		break;
	}
	layout_free(nl);
}

int store_encode_staged(store *s, chain *ch, uint64_t ino, int sfd, uint64_t size,
			const store_enc_ctl *c, store_enc_out *out)
{
	cancel_src csrc = {sfd, c->cancel};
	io_src nsrc = {cancel_pread, &csrc, size};
	choose_base(s, ch, ino, &nsrc, c, out);
	chain_src cs = {ch, out->obj.base};
	io_src bsrc = {chain_src_pread, &cs, out->obj.size};
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

int store_chain_open(void *ctx, uint64_t obj, obj_reader **r, uint64_t *base_obj)
{
	store *s = ctx;
	store_obj o;
	int rr = store_obj_get(s, obj, &o);
	if (rr < 0)
		return rr;
	int fd = store_obj_open(s, obj);
	if (fd < 0)
		return fd;
	/* A cold read of a chain decodes every level chunk by chunk, each level waiting for its own
	 * small synchronous reads: ask for the whole (small) object file at once so the disk reads
	 * of all levels overlap. Larger objects are left to kernel read-ahead (a 4 KiB read of a
	 * big file must not pull gigabytes). */
	if (o.stored <= STORE_PREFETCH_MAX)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	rr = obj_reader_open(fd, r);
	if (rr < 0)
		return rr == -EBADMSG ? -EIO : rr;
	*base_obj = o.base;
	return 0;
}
