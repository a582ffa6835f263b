/* codec_planes.c - plane sets and the dense plane codecs PLANES, DSUB, DXOR (planes.h splits
 * elements into byte planes; this file decides how each plane is stored).
 *
 * Payload formats (all integers little-endian). A "plane set" of np planes of n bytes each is
 *   np x { u8 mode (0 raw, 1 zstd, 2 constant byte, 3 zero-gap), u32 stored size } then the
 *   stored planes; raw planes store exactly n bytes, constant planes 1 byte, zstd planes one frame
 *   of n bytes. Zero-gap planes (mostly zero, e.g. the high bytes of small residuals, where zstd
 *   cannot go below ~1 bit per byte) store u32 m (nonzero bytes), u32 b (gap stream bytes), a
 *   plane set of 1 plane of b bytes (Elias-delta gaps between nonzero positions, first = index+1)
 *   and a plane set of 1 plane of m bytes (the nonzero values); nested sets never use mode 3.
 * PLANES u8 width, t = len % width tail bytes, plane set (width planes, n = len / width).
 * DSUB / DXOR  as PLANES, planes of the residuals (planes.h), tail bytes XOR base; width byte
 *        | 0x80 means the elements are in planes_split_grouped order (grouped by base exponent).
 * SPARSE (codec_sparse.c) stores its positions and residuals as plane sets too.
 */
#include "codec_internal.h"

#include <errno.h>
#include <string.h>

#include "eliasdelta.h"
#include "planes.h"

enum { PM_RAW = 0, PM_ZSTD = 1, PM_CONST = 2, PM_ZGAP = 3 };
#define GROUPED 0x80u /* flag in the width byte of DSUB/DXOR: planes_split_grouped order */
#define PS_HDR 5u

/* ---- plane sets ---- */

/* Decide how to store one plane from a sample: constant, raw (high entropy, zstd would only
 * burn time), zero-gap (mostly zeros) or zstd. */
static int plane_class(const uint8_t *p, size_t n, int nested)
{
	uint32_t h[256] = {0};
	size_t step = n > 4096 ? n / 4096 : 1;
	uint32_t total = 0;
	for (size_t i = 0; i < n; i += step) {
		h[p[i]]++;
		total++;
	}
	if (h[p[0]] == total) {
		size_t i = 0;
		while (i < n && p[i] == p[0])
			i++;
		if (i == n)
			return PM_CONST;
	}
	/* Measured on bf16/fp32 residual high bytes: gaps beat zstd by 5-35% from ~70% zeros. */
	if (!nested && n >= 1024 && h[0] >= total * 0.7)
		return PM_ZGAP;
	return codec_entropy_bits(h, 256, total) > 7.9 ? PM_RAW : PM_ZSTD;
}

static int ps_encode_(codec_ctx *c, const uint8_t *planes, size_t n, unsigned np, uint8_t *dst,
		      size_t cap, size_t *used, int nested);

/* Zero-gap body of one plane into dst; -ENOSPC if it does not fit. */
static int zgap_encode(codec_ctx *c, const uint8_t *p, size_t n, uint8_t *dst, size_t cap,
		       size_t *used)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		m += p[i] != 0;
	size_t pb = codec_gaps_bound(m, n);
	if (cap < 8 || pb > UINT32_MAX)
		return -ENOSPC;
	if (codec_grow(&c->g, &c->g_cap, pb) || codec_grow(&c->v, &c->v_cap, m + 1))
		return -ENOMEM;
	ed_writer wr;
	ed_writer_init(&wr, c->g, pb);
	size_t j = 0, last = (size_t)-1;
	for (size_t i = 0; i < n; i++) {
		if (!p[i])
			continue;
		ed_put(&wr, (uint64_t)(i - last));
		last = i;
		c->v[j++] = p[i];
	}
	size_t blen, u1, u2;
	if (ed_writer_finish(&wr, &blen))
		return -ENOSPC;
	le_put32(dst, (uint32_t)m);
	le_put32(dst + 4, (uint32_t)blen);
	int r = ps_encode_(c, c->g, blen, 1, dst + 8, cap - 8, &u1, 1);
	if (!r)
		r = ps_encode_(c, c->v, m, 1, dst + 8 + u1, cap - 8 - u1, &u2, 1);
	if (r)
		return r;
	*used = 8 + u1 + u2;
	return 0;
}

static int ps_encode_(codec_ctx *c, const uint8_t *planes, size_t n, unsigned np, uint8_t *dst,
		      size_t cap, size_t *used, int nested)
{
	size_t pos = (size_t)np * PS_HDR;
	if (cap < pos)
		return -ENOSPC;
	for (unsigned k = 0; k < np; k++) {
		const uint8_t *p = planes + (size_t)k * n;
		int mode = n ? plane_class(p, n, nested) : PM_RAW;
		size_t sz = 0;
		if (mode == PM_CONST) {
			if (cap - pos < 1)
				return -ENOSPC;
			dst[pos] = p[0];
			sz = 1;
		} else if (mode == PM_ZGAP) {
			size_t room = cap - pos < n - 1 ? cap - pos : n - 1;
			int r = zgap_encode(c, p, n, dst + pos, room, &sz);
			if (r == -ENOMEM)
				return r;
			if (r)
				mode = PM_ZSTD;
		}
		if (mode == PM_ZSTD) {
			size_t room = cap - pos < n - 1 ? cap - pos : n - 1;
			if (!room)
				sz = 0;
			else if (!nested && c->nseg > 1)
				sz = codec_zstd_compress_seg(c, c->plane_level, dst + pos,
							     room, p, n);
			else
				sz = codec_zstd_compress(c, c->plane_level, NULL, 0, dst + pos,
							 room, p, n);
			if (!sz)
				mode = PM_RAW;
		}
		if (mode == PM_RAW) {
			if (cap - pos < n)
				return -ENOSPC;
			if (n)
				memcpy(dst + pos, p, n);
			sz = n;
		}
		dst[k * PS_HDR] = (uint8_t)mode;
		le_put32(dst + k * PS_HDR + 1, (uint32_t)sz);
		pos += sz;
	}
	*used = pos;
	return 0;
}

int codec_planeset_encode(codec_ctx *c, const uint8_t *planes, size_t n, unsigned np,
			  uint8_t *dst, size_t cap, size_t *used)
{
	return ps_encode_(c, planes, n, np, dst, cap, used, 0);
}

static int ps_decode_(codec_ctx *c, const uint8_t *src, size_t slen, size_t *used,
		      uint8_t *planes, size_t n, unsigned np, int nested);

static int zgap_decode(codec_ctx *c, const uint8_t *src, size_t sz, uint8_t *p, size_t n)
{
	if (sz < 8)
		return -EBADMSG;
	size_t m = le_get32(src), blen = le_get32(src + 4);
	if (m > n || blen > codec_gaps_bound(m, n))
		return -EBADMSG;
	if (codec_grow(&c->g, &c->g_cap, blen + 1) || codec_grow(&c->v, &c->v_cap, m + 1))
		return -ENOMEM;
	size_t u1, u2;
	if (ps_decode_(c, src + 8, sz - 8, &u1, c->g, blen, 1, 1) ||
	    ps_decode_(c, src + 8 + u1, sz - 8 - u1, &u2, c->v, m, 1, 1) || 8 + u1 + u2 != sz)
		return -EBADMSG;
	memset(p, 0, n);
	ed_reader rd;
	ed_reader_init(&rd, c->g, blen);
	uint64_t idx = (uint64_t)-1;
	for (size_t j = 0; j < m; j++) {
		uint64_t gap;
		if (ed_get(&rd, &gap))
			return -EBADMSG;
		idx += gap;
		if (idx >= n || idx + 1 < gap)
			return -EBADMSG;
		p[idx] = c->v[j];
	}
	return ed_reader_left(&rd) >= 8 ? -EBADMSG : 0;
}

static int ps_decode_(codec_ctx *c, const uint8_t *src, size_t slen, size_t *used,
		      uint8_t *planes, size_t n, unsigned np, int nested)
{
	size_t pos = (size_t)np * PS_HDR;
	if (slen < pos)
		return -EBADMSG;
	for (unsigned k = 0; k < np; k++) {
		uint8_t mode = src[k * PS_HDR];
		size_t sz = le_get32(src + k * PS_HDR + 1);
		uint8_t *p = planes + (size_t)k * n;
		if (sz > slen - pos)
			return -EBADMSG;
		switch (mode) {
		case PM_RAW:
			if (sz != n)
				return -EBADMSG;
			if (n)
				memcpy(p, src + pos, n);
			break;
		case PM_ZSTD:
			if (codec_zstd_decompress(c, NULL, 0, p, n, src + pos, sz))
				return -EBADMSG;
			break;
		case PM_CONST:
			if (sz != 1 || n == 0)
				return -EBADMSG;
			memset(p, src[pos], n);
			break;
		case PM_ZGAP: {
			if (nested) /* nested sets live in c->g / c->v themselves */
				return -EBADMSG;
			int r = zgap_decode(c, src + pos, sz, p, n);
			if (r)
				return r;
			break;
		}
		default:
			return -EBADMSG;
		}
		pos += sz;
	}
	*used = pos;
	return 0;
}

int codec_planeset_decode(codec_ctx *c, const uint8_t *src, size_t slen, size_t *used,
			  uint8_t *planes, size_t n, unsigned np)
{
	return ps_decode_(c, src, slen, used, planes, n, np, 0);
}

/* ---- dense plane codecs: PLANES, DSUB, DXOR ---- */

static enum planes_op op_of(uint8_t id)
{
	return id == CODEC_DSUB ? PLANES_SUB : id == CODEC_DXOR ? PLANES_XOR : PLANES_COPY;
}

int codec_dense_encode(codec_ctx *c, uint8_t id, const uint8_t *data, const uint8_t *base,
		       size_t len, unsigned w, uint8_t *dst, size_t cap, size_t *out_len)
{
	size_t n = len / w, t = len % w;
	if (codec_grow(&c->a, &c->a_cap, len))
		return -ENOMEM;
	int grouped = id == CODEC_DSUB && c->dsub_group;
	c->nseg = 0;
	if (grouped) {
		planes_split_grouped(data, base, len, w, op_of(id), c->a);
		/* segment ends at group ends, small groups merged (a block costs its tables) */
		size_t cnt[256], acc = 0, pend = 0;
		planes_group_counts(base, len, w, cnt);
		for (int g = 0; g < 256; g++) {
			acc += cnt[g];
			pend += cnt[g];
			if (pend >= 8192) {
				c->seg[c->nseg++] = acc;
				pend = 0;
			}
		}
		if (pend || !c->nseg)
			c->seg[c->nseg++] = acc;
	} else {
		planes_split(data, base, len, w, op_of(id), c->a);
	}
	if (cap < 1 + t)
		return -ENOSPC;
	dst[0] = (uint8_t)(w | (grouped ? GROUPED : 0));
	memcpy(dst + 1, c->a + n * w, t);
	size_t used;
	int r = codec_planeset_encode(c, c->a, n, w, dst + 1 + t, cap - 1 - t, &used);
	c->nseg = 0;
	if (r)
		return r;
	*out_len = 1 + t + used;
	return 0;
}

int codec_dense_decode(codec_ctx *c, uint8_t id, const uint8_t *p, size_t plen,
		       const uint8_t *base, unsigned w, uint8_t *out, size_t len)
{
	size_t n = len / w, t = len % w;
	if (plen < 1 + t || (p[0] & ~GROUPED) != w)
		return -EBADMSG;
	int grouped = (p[0] & GROUPED) != 0;
	if (grouped && id == CODEC_PLANES)
		return -EBADMSG; /* grouping needs a base */
	if (codec_grow(&c->a, &c->a_cap, len) || (grouped && codec_grow(&c->b, &c->b_cap, len)))
		return -ENOMEM;
	memcpy(c->a + n * w, p + 1, t);
	size_t used;
	int r = codec_planeset_decode(c, p + 1 + t, plen - 1 - t, &used, c->a, n, w);
	if (r)
		return r == -ENOMEM ? r : -EBADMSG;
	if (used != plen - 1 - t)
		return -EBADMSG;
	if (grouped)
		planes_merge_grouped_buf(c->a, base, len, w, op_of(id), out, c->b);
	else
		planes_merge(c->a, base, len, w, op_of(id), out);
	return 0;
}
