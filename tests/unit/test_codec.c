/* Unit tests for core/codec.c: every codec round-trips random and adversarial data; selection
 * always yields decodable output; malformed payloads never crash and never write out of bounds. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static const uint8_t all_codecs[] = {CODEC_RAW,  CODEC_ZSTD, CODEC_PLANES, CODEC_SPARSE,
				     CODEC_DSUB, CODEC_DXOR, CODEC_ZREF};

/* Decode into an exactly-sized heap buffer (ASan catches overruns) and compare. */
static void check_decode(codec_ctx *c, uint8_t id, const uint8_t *p, size_t plen,
			 const uint8_t *data, size_t len, const uint8_t *base, size_t base_len,
			 unsigned w)
{
	uint8_t *o = malloc(len ? len : 1);
	cr_assert_not_null(o);
	int r = codec_decode(c, id, p, plen, codec_uses_base(id) ? base : NULL,
			     codec_uses_base(id) ? base_len : 0, w, o, len);
	cr_assert_eq(r, 0, "decode %s len=%zu w=%u: %d", codec_name(id), len, w, r);
	cr_assert_eq(memcmp(o, data, len), 0, "mismatch %s len=%zu w=%u", codec_name(id), len, w);
	free(o);
}

/* Every applicable forced codec plus both selection modes must round-trip. */
static void roundtrip_all(codec_ctx *c, const uint8_t *data, size_t len, const uint8_t *base,
			  size_t base_len, unsigned w)
{
	size_t cap = codec_bound(len);
	uint8_t *p = malloc(cap);
	cr_assert_not_null(p);
	for (size_t i = 0; i < sizeof(all_codecs); i++) {
		uint8_t id = all_codecs[i];
		size_t plen = 0;
		int r = codec_encode_as(c, id, data, len, base, base_len, w, p, &plen);
		if (r == -EINVAL || r == -ENOSPC)
			continue; /* not applicable here */
		cr_assert_eq(r, 0, "encode_as %s: %d", codec_name(id), r);
		cr_assert_leq(plen, cap);
		check_decode(c, id, p, plen, data, len, base, base_len, w);
	}
	for (unsigned f = 0; f <= CODEC_F_TENSOR; f++) {
		size_t plen = 0;
		uint8_t id = 0xff;
		cr_assert_eq(codec_encode(c, data, len, base, base_len, w, f, p, &plen, &id), 0);
		cr_assert_lt(id, CODEC_MAX);
		cr_assert_leq(plen, len + 64, "never much larger than raw");
		check_decode(c, id, p, plen, data, len, base, base_len, w);
	}
	free(p);
}

static uint8_t *rand_buf(size_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	cr_assert_not_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)rnd();
	return b;
}

Test(codec, names)
{
	cr_assert_str_eq(codec_name(CODEC_RAW), "raw");
	cr_assert_str_eq(codec_name(CODEC_SPARSE), "sparse");
	cr_assert_str_eq(codec_name(200), "?");
	cr_assert(codec_uses_base(CODEC_DSUB));
	cr_assert(!codec_uses_base(CODEC_PLANES));
	cr_assert(!codec_uses_base(CODEC_ZSTD));
}

Test(codec, sizes_widths_bases)
{
	codec_ctx *c = codec_ctx_new(3);
	cr_assert_not_null(c);
	size_t lens[] = {0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 1001, 4096, 4099, 70001};
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t len = lens[li];
		uint8_t *base = rand_buf(len);
		uint8_t *same = malloc(len ? len : 1), *few = malloc(len ? len : 1),
			*dense = malloc(len ? len : 1), *unrel = rand_buf(len);
		memcpy(same, base, len);
		memcpy(few, base, len);
		for (size_t i = 0; i < len; i += 97)
			few[i] ^= (uint8_t)(1u << (rnd() % 8));
		for (size_t i = 0; i < len; i++)
			dense[i] = (uint8_t)(base[i] + (i % 4 == 0 ? (rnd() % 5) - 2 : 0));
		for (unsigned w = 1; w <= 8; w *= 2) {
			roundtrip_all(c, same, len, base, len, w);
			roundtrip_all(c, few, len, base, len, w);
			roundtrip_all(c, dense, len, base, len, w);
			roundtrip_all(c, unrel, len, base, len, w);
			roundtrip_all(c, dense, len, NULL, 0, w);
			/* base of another length: only ZREF may use it */
			if (len > 1)
				roundtrip_all(c, dense, len, base, len / 2, w);
		}
		free(base);
		free(same);
		free(few);
		free(dense);
		free(unrel);
	}
	codec_ctx_free(c);
}

/* Bit patterns that compare equal as floats but differ as bytes (and vice versa) must survive. */
Test(codec, float_specials)
{
	codec_ctx *c = codec_ctx_new(1);
	cr_assert_not_null(c);
	static const uint32_t sp[] = {0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000,
				      0x7fc00001, 0xffc12345, 0x7f800001, 0x00000001, 0x807fffff,
				      0x3f800000, 0xbf800000, 0x7f7fffff, 0xff7fffff};
	size_t n = 5000, len = n * 4;
	uint32_t *base = malloc(len), *data = malloc(len);
	cr_assert(base && data);
	for (size_t i = 0; i < n; i++) {
		base[i] = sp[rnd() % (sizeof(sp) / 4)];
		data[i] = rnd() % 3 ? base[i] : sp[rnd() % (sizeof(sp) / 4)];
	}
	data[0] = 0x80000000; /* -0.0 over whatever */
	base[0] = 0x00000000;
	roundtrip_all(c, (uint8_t *)data, len, (uint8_t *)base, len, 4);
	roundtrip_all(c, (uint8_t *)data, len - 3, (uint8_t *)base, len - 3, 4);
	/* bf16 view of the same bytes */
	roundtrip_all(c, (uint8_t *)data, len, (uint8_t *)base, len, 2);
	free(base);
	free(data);
	codec_ctx_free(c);
}

Test(codec, identical_chunk_is_tiny)
{
	codec_ctx *c = codec_ctx_new(3);
	size_t len = 1 << 20;
	uint8_t *d = rand_buf(len), *p = malloc(codec_bound(len));
	size_t plen;
	uint8_t id;
	cr_assert_eq(codec_encode(c, d, len, d, len, 4, CODEC_F_TENSOR, p, &plen, &id), 0);
	cr_assert_eq(id, CODEC_SPARSE);
	cr_assert_lt(plen, 64);
	check_decode(c, id, p, plen, d, len, d, len, 4);
	free(d);
	free(p);
	codec_ctx_free(c);
}

Test(codec, selection_prefers_delta)
{
	codec_ctx *c = codec_ctx_new(3);
	size_t n = 1 << 18, len = n * 4;
	uint32_t *b = malloc(len), *d = malloc(len);
	for (size_t i = 0; i < n; i++) {
		b[i] = 0x3c000000u + (uint32_t)(rnd() & 0xffffff);
		d[i] = b[i] + (uint32_t)(rnd() % 64) - 32;
	}
	uint8_t *p = malloc(codec_bound(len));
	size_t plen;
	uint8_t id;
	cr_assert_eq(codec_encode(c, (uint8_t *)d, len, (uint8_t *)b, len, 4, CODEC_F_TENSOR, p,
				  &plen, &id), 0);
	cr_assert(id == CODEC_DSUB || id == CODEC_DXOR, "got %s", codec_name(id));
	cr_assert_lt(plen, len / 2);
	check_decode(c, id, p, plen, (uint8_t *)d, len, (uint8_t *)b, len, 4);
	/* 0.1% changed: sparse */
	memcpy(d, b, len);
	for (size_t i = 0; i < n; i += 500 + rnd() % 1000)
		d[i] += (uint32_t)(rnd() % 1000) + 1;
	cr_assert_eq(codec_encode(c, (uint8_t *)d, len, (uint8_t *)b, len, 4, CODEC_F_TENSOR, p,
				  &plen, &id), 0);
	cr_assert_eq(id, CODEC_SPARSE);
	check_decode(c, id, p, plen, (uint8_t *)d, len, (uint8_t *)b, len, 4);
	free(b);
	free(d);
	free(p);
	codec_ctx_free(c);
}

Test(codec, dsub2_and_unknown_rejected)
{
	codec_ctx *c = codec_ctx_new(3);
	uint8_t p[16] = {0}, o[16];
	cr_assert_eq(codec_decode(c, CODEC_DSUB2, p, 16, p, 16, 4, o, 16), -EBADMSG);
	cr_assert_eq(codec_decode(c, 42, p, 16, NULL, 0, 4, o, 16), -EBADMSG);
	size_t plen;
	cr_assert_eq(codec_encode_as(c, CODEC_DSUB2, p, 16, p, 16, 4, o, &plen), -EINVAL);
	codec_ctx_free(c);
}

Test(codec, wrong_base_or_width_rejected)
{
	codec_ctx *c = codec_ctx_new(3);
	size_t len = 4096;
	uint8_t *b = rand_buf(len), *d = malloc(len), *p = malloc(codec_bound(len)), *o = malloc(len);
	memcpy(d, b, len);
	d[100]++;
	size_t plen;
	cr_assert_eq(codec_encode_as(c, CODEC_SPARSE, d, len, b, len, 4, p, &plen), 0);
	cr_assert_eq(codec_decode(c, CODEC_SPARSE, p, plen, NULL, 0, 4, o, len), -EBADMSG);
	cr_assert_eq(codec_decode(c, CODEC_SPARSE, p, plen, b, len - 1, 4, o, len - 1), -EBADMSG);
	cr_assert_eq(codec_decode(c, CODEC_SPARSE, p, plen, b, len, 2, o, len), -EBADMSG);
	cr_assert_eq(codec_decode(c, CODEC_SPARSE, p, plen, b, len, 3, o, len), -EBADMSG);
	free(b);
	free(d);
	free(p);
	free(o);
	codec_ctx_free(c);
}

/* Mutated payloads: decode must return 0 or -EBADMSG, never crash or write past out[len]. */
static void fuzz_payload(codec_ctx *c, uint8_t id, const uint8_t *p, size_t plen,
			 const uint8_t *base, size_t len, unsigned w)
{
	const uint8_t *bb = codec_uses_base(id) ? base : NULL;
	size_t bl = codec_uses_base(id) ? len : 0;
	uint8_t *o = malloc(len ? len : 1);
	for (size_t cut = 0; cut < plen; cut += 1 + plen / 40) {
		uint8_t *q = malloc(cut ? cut : 1);
		memcpy(q, p, cut);
		int r = codec_decode(c, id, q, cut, bb, bl, w, o, len);
		cr_assert(r == 0 || r == -EBADMSG, "truncated %s cut=%zu r=%d", codec_name(id), cut, r);
		free(q);
	}
	uint8_t *q = malloc(plen ? plen : 1);
	for (int it = 0; it < 300; it++) {
		memcpy(q, p, plen);
		int flips = 1 + (int)(rnd() % 4);
		for (int f = 0; f < flips && plen; f++) {
			size_t at = rnd() % plen;
			/* bias toward headers, where lengths live */
			if (rnd() % 2)
				at = rnd() % (plen < 48 ? plen : 48);
			q[at] ^= (uint8_t)(1u << (rnd() % 8));
		}
		int r = codec_decode(c, id, q, plen, bb, bl, w, o, len);
		cr_assert(r == 0 || r == -EBADMSG, "flipped %s r=%d", codec_name(id), r);
	}
	for (int it = 0; it < 100; it++) {
		size_t gl = rnd() % 200;
		uint8_t *g = rand_buf(gl);
		if (gl)
			g[0] = (uint8_t)w; /* get past the width check sometimes */
		int r = codec_decode(c, id, g, gl, bb, bl, w, o, len);
		cr_assert(r == 0 || r == -EBADMSG);
		free(g);
	}
	free(q);
	free(o);
}

Test(codec, corrupted_payloads)
{
	codec_ctx *c = codec_ctx_new(3);
	size_t lens[] = {0, 5, 1000, 20003};
	for (size_t li = 0; li < 4; li++) {
		size_t len = lens[li];
		uint8_t *b = rand_buf(len), *d = malloc(len ? len : 1), *p = malloc(codec_bound(len));
		for (size_t i = 0; i < len; i++)
			d[i] = i % 3 ? b[i] : (uint8_t)(b[i] + 1);
		for (unsigned w = 1; w <= 8; w *= 2)
			for (size_t i = 0; i < sizeof(all_codecs); i++) {
				size_t plen;
				if (codec_encode_as(c, all_codecs[i], d, len, b, len, w, p, &plen))
					continue;
				fuzz_payload(c, all_codecs[i], p, plen, b, len, w);
			}
		free(b);
		free(d);
		free(p);
	}
	codec_ctx_free(c);
}

/* Residual high bytes that are mostly zero take the zero-gap plane mode; round-trip it and fuzz
 * it (the nested plane sets and the gap stream are the most intricate structure). */
Test(codec, zero_gap_planes)
{
	codec_ctx *c = codec_ctx_new(1);
	size_t len = 40000;
	uint8_t *b = rand_buf(len), *d = malloc(len), *p = malloc(codec_bound(len));
	for (unsigned w = 1; w <= 8; w *= 2) {
		memcpy(d, b, len);
		for (size_t i = 0; i + w <= len; i += w)
			if (rnd() % 10 == 0)
				d[i] = (uint8_t)(d[i] + 1 + rnd() % 3); /* small residuals: high planes ~0 */
			else if (rnd() % 4 == 0)
				d[i + w - 1] ^= 0x40; /* some big ones */
		for (uint8_t id = CODEC_PLANES; id <= CODEC_DXOR; id++) {
			size_t plen;
			cr_assert_eq(codec_encode_as(c, id, d, len, b, len, w, p, &plen), 0);
			check_decode(c, id, p, plen, d, len, b, len, w);
			fuzz_payload(c, id, p, plen, b, len, w);
		}
		roundtrip_all(c, d, len, b, len, w);
	}
	/* an all-but-one zero residual plane with the nonzero at the very end */
	memcpy(d, b, len);
	d[len - 4] ^= 1;
	size_t plen;
	cr_assert_eq(codec_encode_as(c, CODEC_DXOR, d, len, b, len, 4, p, &plen), 0);
	check_decode(c, CODEC_DXOR, p, plen, d, len, b, len, 4);
	free(b);
	free(d);
	free(p);
	codec_ctx_free(c);
}

/* Residual magnitude that depends on the base exponent makes selection group DSUB planes by
 * exponent (flag 0x80 in the width byte); round-trip and fuzz that layout. */
Test(codec, grouped_dsub)
{
	codec_ctx *c = codec_ctx_new(0);
	for (unsigned w = 2; w <= 4; w *= 2) {
		size_t n = 60001, len = n * w + (w == 2 ? 1 : 3);
		uint8_t *b = malloc(len), *d = malloc(len), *p = malloc(codec_bound(len));
		for (size_t i = 0; i < len; i++)
			b[i] = d[i] = (uint8_t)rnd();
		unsigned shift = w == 2 ? 7 : 23;
		for (size_t i = 0; i < n; i++) {
			uint64_t e = 100 + rnd() % 24; /* exponent */
			uint64_t x = (e << shift) | (rnd() & ((1u << shift) - 1));
			/* smaller exponents move by more ulps, as with Adam updates */
			uint64_t step = 1 + rnd() % (1u << ((124 - e) / 3 + 1));
			uint64_t y = rnd() % 2 ? x + step : x - step;
			for (unsigned q = 0; q < w; q++) {
				b[i * w + q] = (uint8_t)(x >> (8 * q));
				d[i * w + q] = (uint8_t)(y >> (8 * q));
			}
		}
		size_t plen;
		uint8_t id;
		cr_assert_eq(codec_encode(c, d, len, b, len, w, CODEC_F_TENSOR, p, &plen, &id), 0);
		cr_assert_eq(id, CODEC_DSUB, "w=%u got %s", w, codec_name(id));
		cr_assert_eq(p[0], 0x80 | w, "grouped layout expected");
		check_decode(c, id, p, plen, d, len, b, len, w);
		fuzz_payload(c, id, p, plen, b, len, w);
		/* the grouped flag is meaningless without a base: PLANES must reject it */
		uint8_t *o = malloc(len);
		cr_assert_eq(codec_decode(c, CODEC_PLANES, p, plen, NULL, 0, w, o, len), -EBADMSG);
		free(o);
		free(b);
		free(d);
		free(p);
	}
	codec_ctx_free(c);
}
