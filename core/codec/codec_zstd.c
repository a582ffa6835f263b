/* codec_zstd.c - every zstd frame the chunk codecs write or read: whole chunks (ZSTD, and ZREF
 * with the base region as raw-content prefix, like zstd --patch-from) and the zstd planes of
 * plane sets (codec_planes.c), whose grouped form ends a zstd block at each group end.
 *
 * Payloads: ZSTD is one zstd frame of the chunk; ZREF one zstd frame compressed with the base
 * region as prefix. Decoding demands a frame that declares and fills exactly the expected size.
 */
#include "codec_internal.h"

#include <errno.h>
#include <zstd.h>

/* Returns the frame size, or 0 if it did not fit (or failed): callers then store raw. */
size_t codec_zstd_compress(codec_ctx *c, int level, const uint8_t *prefix, size_t prefix_len,
			   uint8_t *dst, size_t cap, const uint8_t *src, size_t n)
{
	ZSTD_CCtx_reset(c->cctx, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, level);
	if (prefix_len) {
		/* The window must span prefix + data or the start of the base is unreachable. */
		unsigned wl = 10;
		while (wl < 27 && ((size_t)1 << wl) < prefix_len + n)
			wl++;
		ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_windowLog, (int)wl);
		if (ZSTD_isError(ZSTD_CCtx_refPrefix(c->cctx, prefix, prefix_len)))
			return 0;
	}
	size_t r = ZSTD_compress2(c->cctx, dst, cap, src, n);
	return ZSTD_isError(r) ? 0 : r;
}

/* As codec_zstd_compress without prefix, but flushing (ending a zstd block) at each segment end. */
size_t codec_zstd_compress_seg(codec_ctx *c, int level, uint8_t *dst, size_t cap,
			       const uint8_t *src, size_t n)
{
	ZSTD_CCtx_reset(c->cctx, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, level);
	if (ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c->cctx, n)))
		return 0;
	ZSTD_outBuffer ob = {dst, cap, 0};
	size_t start = 0;
	for (unsigned i = 0; i < c->nseg; i++) {
		size_t end = c->seg[i] < n ? c->seg[i] : n;
		if (i + 1 == c->nseg)
			end = n;
		ZSTD_inBuffer ib = {src + start, end - start, 0};
		ZSTD_EndDirective op = end == n ? ZSTD_e_end : ZSTD_e_flush;
		size_t r;
		do {
			size_t before = ob.pos;
			r = ZSTD_compressStream2(c->cctx, &ob, &ib, op);
			if (ZSTD_isError(r))
				return 0;
			/* out of room (no progress possible): the caller stores the plane raw */
			if (r && ob.pos == ob.size && before == ob.pos)
				return 0;
		} while (r != 0 || ib.pos < ib.size);
		start = end;
		if (end == n)
			break;
	}
	return start == n ? ob.pos : 0;
}

int codec_zstd_decompress(codec_ctx *c, const uint8_t *prefix, size_t prefix_len, uint8_t *dst,
			  size_t n, const uint8_t *src, size_t slen)
{
	ZSTD_DCtx_reset(c->dctx, ZSTD_reset_session_and_parameters);
	if (prefix_len && ZSTD_isError(ZSTD_DCtx_refPrefix(c->dctx, prefix, prefix_len)))
		return -EBADMSG;
	/* Exact size: the frame header must declare n and the frame must fill it. */
	unsigned long long fcs = ZSTD_getFrameContentSize(src, slen);
	if (fcs != n)
		return -EBADMSG;
	size_t r = ZSTD_decompressDCtx(c->dctx, dst, n, src, slen);
	if (ZSTD_isError(r) || r != n)
		return -EBADMSG;
	return 0;
}
