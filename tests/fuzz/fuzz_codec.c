/* libFuzzer target for core/codec.c (and planes/eliasdelta under it).
 *
 * Input: byte 0 selects the mode, codec and width; bytes 1..2 the decoded length; byte 3 the
 * base length (relative); then the base bytes, then the rest.
 *   decode mode: the rest is a payload for codec_decode of any codec id (also ids >= CODEC_MAX),
 *     with and without a base. It must return 0 or a negative errno, never crash or write past
 *     out[len) (ASan guard: out is exactly len bytes).
 *   round-trip mode: the rest is data; codec_encode (auto) and codec_encode_as (every codec) must
 *     produce a payload that decodes back to exactly the data (abort otherwise).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static codec_ctx *ctx(void)
{
	/* One context per process: the codec is stateless apart from scratch buffers, and
	 * reusing them across inputs is what the daemon does too (catches stale-scratch bugs). */
	static codec_ctx *c;
	if (!c) {
		c = codec_ctx_new(1);
		if (!c)
			abort();
	}
	return c;
}

/* mut: (position, xor) byte pairs applied to the payload before decoding: near-valid payloads
 * reach deep into the decoders, where random bytes rarely get. */
static void roundtrip(uint8_t id, const uint8_t *d, size_t len, const uint8_t *base,
		      size_t blen, unsigned width, int as, const uint8_t *mut, size_t nmut)
{
	size_t cap = codec_bound(len);
	uint8_t *out = malloc(cap ? cap : 1);
	uint8_t *back = malloc(len ? len : 1);
	if (!out || !back)
		abort();
	size_t olen = 0;
	uint8_t codec = id;
	int rc;
	if (as)
		rc = codec_encode_as(ctx(), id, d, len, base, blen, width, out, &olen);
	else
		rc = codec_encode(ctx(), d, len, base, blen, width, CODEC_F_TENSOR, out, &olen,
				  &codec);
	if (rc == 0) {
		if (olen > cap)
			abort();
		if (!as && olen > len + 64)
			abort(); /* the contract: never much larger than raw */
		const uint8_t *b = codec_uses_base(codec) ? base : NULL;
		size_t bl = codec_uses_base(codec) ? blen : 0;
		if (nmut && olen) {
			for (size_t i = 0; i + 1 < nmut; i += 2)
				out[(mut[i] * 131u + i) % olen] ^= mut[i + 1] ? mut[i + 1] : 1;
			int dr = codec_decode(ctx(), codec, out, olen, b, bl, width, back, len);
			if (dr > 0)
				abort();
		} else {
			int dr = codec_decode(ctx(), codec, out, olen, b, bl, width, back, len);
			if (dr != 0 || (len && memcmp(back, d, len) != 0))
				abort();
		}
	} else if (!as || (rc != -EINVAL && rc != -ENOSPC)) {
		abort(); /* codec_encode never fails on valid arguments except ENOMEM */
	}
	free(out);
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	static const unsigned widths[4] = {1, 2, 4, 8};
	unsigned sel = data[0];
	int rt = sel & 0x80;
	unsigned width = widths[(sel >> 4) & 3];
	uint8_t id = sel & 0x0f; /* 8..15 are invalid codec ids: must be rejected */
	size_t len = (size_t)data[1] | ((size_t)data[2] << 8);
	const uint8_t *p = data + 4;
	size_t rest = size - 4;
	/* Base: the same length as the chunk (tensor delta codecs) or any other length (ZREF). */
	size_t blen = data[3] == 0xff ? len : (size_t)data[3] * 16;
	if (data[3] == 0)
		blen = 0;

	if (rt) {
		/* round trip: base first, then the data (same length as the base for 0xff) */
		const uint8_t *d;
		if (data[3] == 0xff) {
			len = blen = rest / 2;
		} else {
			if (blen > rest)
				blen = rest;
			len = rest - blen;
		}
		d = p + blen;
		const uint8_t *base = blen ? p : NULL;
		/* id bit 3: the last min(len, 8) data bytes double as payload mutations */
		size_t nmut = (id & 8) ? (len < 8 ? len : 8) : 0;
		const uint8_t *mut = d + len - nmut;
		roundtrip(0, d, len, base, blen, width, 0, mut, nmut);
		for (uint8_t c = 0; c < CODEC_MAX; c++)
			roundtrip(c, d, len, base, blen, width, 1, mut, nmut);
		return 0;
	}

	if (blen > rest)
		blen = rest;
	uint8_t *base = blen ? malloc(blen) : NULL;
	if (blen && !base)
		abort();
	if (blen)
		memcpy(base, p, blen);
	const uint8_t *payload = p + blen;
	size_t plen = rest - blen;
	/* Copy the payload so ASan catches reads past its end. */
	uint8_t *pl = malloc(plen ? plen : 1);
	uint8_t *out = malloc(len ? len : 1);
	if (!pl || !out)
		abort();
	if (plen)
		memcpy(pl, payload, plen);
	for (int withbase = 0; withbase < 2; withbase++) {
		int rc = codec_decode(ctx(), id, pl, plen, withbase ? base : NULL,
				      withbase ? blen : 0, width, out, len);
		if (rc > 0 || (rc < 0 && rc < -4095))
			abort();
	}
	free(pl);
	free(out);
	free(base);
	return 0;
}
