/* codec.c - chunk codecs (see codec.h). Minimal first version: RAW and ZSTD. */
#include "codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

struct codec_ctx {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	int level;
};

codec_ctx *codec_ctx_new(int zstd_level)
{
	codec_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->cctx = ZSTD_createCCtx();
	c->dctx = ZSTD_createDCtx();
	if (!c->cctx || !c->dctx) {
		codec_ctx_free(c);
		return NULL;
	}
	c->level = zstd_level;
	return c;
}

void codec_ctx_free(codec_ctx *c)
{
	if (!c)
		return;
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	free(c);
}

size_t codec_bound(size_t len)
{
	size_t zb = ZSTD_compressBound(len);
	return (zb > len ? zb : len) + 64;
}

int codec_encode(codec_ctx *c, const uint8_t *data, size_t len, const uint8_t *base,
		 size_t base_len, unsigned width, unsigned flags, uint8_t *out, size_t *out_len,
		 uint8_t *codec)
{
	(void)base;
	(void)base_len;
	(void)flags;
	if (!c || (!data && len) || !out || !out_len || !codec)
		return -EINVAL;
	if (width != 1 && width != 2 && width != 4 && width != 8)
		return -EINVAL;
	if (len) {
		size_t z = ZSTD_compressCCtx(c->cctx, out, codec_bound(len), data, len, c->level);
		if (!ZSTD_isError(z) && z < len) {
			*out_len = z;
			*codec = CODEC_ZSTD;
			return 0;
		}
		memcpy(out, data, len);
	}
	*out_len = len;
	*codec = CODEC_RAW;
	return 0;
}

int codec_decode(codec_ctx *c, uint8_t codec, const uint8_t *payload, size_t plen,
		 const uint8_t *base, size_t base_len, unsigned width, uint8_t *out, size_t len)
{
	(void)base;
	(void)base_len;
	(void)width;
	if (!c || (!payload && plen) || (!out && len))
		return -EINVAL;
	switch (codec) {
	case CODEC_RAW:
		if (plen != len)
			return -EBADMSG;
		if (len)
			memcpy(out, payload, len);
		return 0;
	case CODEC_ZSTD: {
		size_t r = ZSTD_decompressDCtx(c->dctx, out, len, payload, plen);
		if (ZSTD_isError(r) || r != len)
			return -EBADMSG;
		return 0;
	}
	default:
		return -EBADMSG;
	}
}

int codec_uses_base(uint8_t codec)
{
	return codec == CODEC_SPARSE || codec == CODEC_DSUB || codec == CODEC_DXOR ||
	       codec == CODEC_ZREF || codec == CODEC_DSUB2;
}

const char *codec_name(uint8_t codec)
{
	static const char *const names[CODEC_MAX] = {"raw",  "zstd", "planes", "sparse",
						     "dsub", "dxor", "zref",   "dsub2"};
	return codec < CODEC_MAX ? names[codec] : "?";
}
