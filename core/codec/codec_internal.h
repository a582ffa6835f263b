/* codec_internal.h - what the chunk codec files share; private to core/codec/codec*.c.
 *
 *   codec.c         contexts, the codec choice (sampled estimate), dispatch by codec id
 *   codec_zstd.c    every zstd frame the codecs write or read (ZSTD, ZREF, zstd planes)
 *   codec_planes.c  plane sets and the dense plane codecs PLANES, DSUB, DXOR
 *   codec_sparse.c  SPARSE (TPDE): changed positions as Elias-delta gaps + their residuals
 *
 * The payload formats are described in the file that writes them (and in docs/FORMAT.md).
 */
#ifndef TPDEFS_CODEC_INTERNAL_H
#define TPDEFS_CODEC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "codec.h"
#include "eliasdelta.h"
#include "le.h"

struct codec_ctx {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	int level;       /* whole-chunk zstd/zref streams (0 = zstd default) */
	int plane_level; /* byte planes and their sub-streams */
	/* Scratch grown on demand and kept, so steady state does no allocation. */
	uint8_t *a, *b, *cand, *g, *v; /* g, v: gap stream and values of PM_ZGAP planes */
	size_t a_cap, b_cap, cand_cap, g_cap, v_cap;
	uint8_t *user[CODEC_SCRATCH_N]; /* codec_ctx_scratch */
	size_t user_cap[CODEC_SCRATCH_N];
	uint32_t *lk;   /* estimate(): histogram of residual bit length per group key */
	/* Grouped planes: zstd block boundaries at group ends (segment end offsets, in elements),
	 * so each block's entropy tables fit one exponent group. Encoder only: the frame is plain. */
	size_t seg[256];
	unsigned nseg;
	int dsub_group; /* selection decided the next DSUB encode uses grouped planes */
};

/* ---- shared helpers (codec.c) ---- */

/* Grow a scratch buffer to at least need bytes (kept for reuse); -ENOMEM. */
int codec_grow(uint8_t **p, size_t *cap, size_t need);

/* Order-0 entropy in bits per symbol of a histogram of nsym symbols with `total` samples: ranks
 * codecs in the choice and classifies planes. */
double codec_entropy_bits(const uint32_t *h, unsigned nsym, uint32_t total);

/* Bytes that k Elias-delta gaps between positions in [0, n) can take: SPARSE positions and
 * zero-gap planes both store such a stream. */
static inline size_t codec_gaps_bound(size_t k, size_t n)
{
	/* Every gap is <= n, so at most ed_code_bits(n) bits each. */
	return (k * ed_code_bits(n ? n : 1) + 7) / 8 + 8;
}

/* ---- zstd frames (codec_zstd.c) ---- */

/* Compress n bytes of src into one frame at dst, with prefix (prefix_len > 0) as raw-content
 * prefix. Returns the frame size, or 0 if it did not fit (or failed): callers then store raw. */
size_t codec_zstd_compress(codec_ctx *c, int level, const uint8_t *prefix, size_t prefix_len,
			   uint8_t *dst, size_t cap, const uint8_t *src, size_t n);
/* As codec_zstd_compress without prefix, but ending a zstd block at each of c->seg[0, nseg). */
size_t codec_zstd_compress_seg(codec_ctx *c, int level, uint8_t *dst, size_t cap,
			       const uint8_t *src, size_t n);
/* Decompress one frame that must declare and fill exactly n bytes; -EBADMSG otherwise. */
int codec_zstd_decompress(codec_ctx *c, const uint8_t *prefix, size_t prefix_len, uint8_t *dst,
			  size_t n, const uint8_t *src, size_t slen);

/* ---- plane sets and dense plane codecs (codec_planes.c) ---- */

/* Store np planes of n bytes each (planes[k * n ...]) as a plane set; -ENOSPC past cap. */
int codec_planeset_encode(codec_ctx *c, const uint8_t *planes, size_t n, unsigned np,
			  uint8_t *dst, size_t cap, size_t *used);
/* Read a plane set of np planes of n bytes from src; *used = its stored size. */
int codec_planeset_decode(codec_ctx *c, const uint8_t *src, size_t slen, size_t *used,
			  uint8_t *planes, size_t n, unsigned np);
/* PLANES, DSUB, DXOR (id); DSUB is grouped when c->dsub_group is set. */
int codec_dense_encode(codec_ctx *c, uint8_t id, const uint8_t *data, const uint8_t *base,
		       size_t len, unsigned w, uint8_t *dst, size_t cap, size_t *out_len);
int codec_dense_decode(codec_ctx *c, uint8_t id, const uint8_t *p, size_t plen,
		       const uint8_t *base, unsigned w, uint8_t *out, size_t len);

/* ---- SPARSE (codec_sparse.c) ---- */

/* Count the changed elements of n (k) and the bits of their Elias-delta gaps. */
void codec_sparse_scan(const uint8_t *d, const uint8_t *b, size_t n, unsigned w, size_t *k,
		       uint64_t *bits);
/* k: the count from codec_sparse_scan on the same data. */
int codec_sparse_encode(codec_ctx *c, const uint8_t *data, const uint8_t *base, size_t len,
			unsigned w, size_t k, uint8_t *dst, size_t cap, size_t *out_len);
int codec_sparse_decode(codec_ctx *c, const uint8_t *p, size_t plen, const uint8_t *base,
			unsigned w, uint8_t *out, size_t len);

#endif
