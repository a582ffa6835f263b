/* Unit tests for core/codec.c. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

Test(codec, raw_zstd_roundtrip)
{
	codec_ctx *c = codec_ctx_new(3);
	cr_assert_not_null(c);
	size_t len = 100000;
	uint8_t *d = malloc(len), *o = malloc(codec_bound(len)), *r = malloc(len);
	cr_assert(d && o && r);
	for (size_t i = 0; i < len; i++)
		d[i] = (uint8_t)(i % 7);
	size_t ol = 0;
	uint8_t id = 0xff;
	cr_assert_eq(codec_encode(c, d, len, NULL, 0, 1, 0, o, &ol, &id), 0);
	cr_assert_eq(codec_decode(c, id, o, ol, NULL, 0, 1, r, len), 0);
	cr_assert_eq(memcmp(d, r, len), 0);
	free(d);
	free(o);
	free(r);
	codec_ctx_free(c);
}
