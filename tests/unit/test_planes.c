/* Unit tests for core/planes.c: known layouts and residual values, round trips for every width,
 * op and length (including lengths that are not a multiple of the width). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "planes.h"

Test(planes, known_split_width4)
{
	/* two LE uint32 elements 0x04030201, 0x08070605 and 3 tail bytes */
	const uint8_t d[11] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
	uint8_t p[11];
	cr_assert_eq(planes_split(d, NULL, sizeof(d), 4, PLANES_COPY, p), 0);
	const uint8_t want[11] = {1, 5, 2, 6, 3, 7, 4, 8, 9, 10, 11};
	cr_assert_arr_eq(p, want, sizeof(want));
	uint8_t back[11];
	cr_assert_eq(planes_merge(p, NULL, sizeof(d), 4, PLANES_COPY, back), 0);
	cr_assert_arr_eq(back, d, sizeof(d));
}

Test(planes, zigzag_values)
{
	cr_assert_eq(planes_zz_enc(0, 4), 0);
	cr_assert_eq(planes_zz_enc(0xffffffffu, 4), 1); /* -1 */
	cr_assert_eq(planes_zz_enc(1, 4), 2);
	cr_assert_eq(planes_zz_enc(0xfffffffeu, 4), 3); /* -2 */
	cr_assert_eq(planes_zz_enc(0x7fffffffu, 4), 0xfffffffeu);
	cr_assert_eq(planes_zz_enc(0x80000000u, 4), 0xffffffffu);
	cr_assert_eq(planes_zz_enc(0xff, 1), 1);
	cr_assert_eq(planes_zz_enc(UINT64_MAX, 8), 1);
	for (unsigned w = 1; w <= 8; w *= 2)
		for (uint64_t v = 0; v < 70000; v += 7) {
			uint64_t m = w == 8 ? UINT64_MAX : ((uint64_t)1 << (8 * w)) - 1;
			uint64_t x = (v * 0x9e3779b97f4a7c15ull) & m;
			cr_assert_eq(planes_zz_dec(planes_zz_enc(x, w), w), x);
		}
}

Test(planes, known_sub_xor)
{
	/* uint16 elements: new 0x0005, base 0x0007 -> diff -2 -> zigzag 3; new 0x1234 base 0x1234 -> 0 */
	const uint8_t d[4] = {0x05, 0x00, 0x34, 0x12};
	const uint8_t b[4] = {0x07, 0x00, 0x34, 0x12};
	uint8_t r[4];
	planes_residual(d, b, 4, 2, PLANES_SUB, r);
	const uint8_t want_sub[4] = {3, 0, 0, 0};
	cr_assert_arr_eq(r, want_sub, 4);
	planes_residual(d, b, 4, 2, PLANES_XOR, r);
	const uint8_t want_xor[4] = {2, 0, 0, 0};
	cr_assert_arr_eq(r, want_xor, 4);
	uint8_t p[4];
	planes_split(d, b, 4, 2, PLANES_SUB, p);
	const uint8_t want_p[4] = {3, 0, 0, 0}; /* plane 0: 3, 0; plane 1: 0, 0 */
	cr_assert_arr_eq(p, want_p, 4);
}

Test(planes, bad_width)
{
	uint8_t x[8] = {0}, y[8];
	cr_assert_eq(planes_split(x, x, 8, 3, PLANES_SUB, y), -EINVAL);
	cr_assert_eq(planes_merge(x, x, 8, 0, PLANES_SUB, y), -EINVAL);
	cr_assert_eq(planes_residual(x, x, 8, 16, PLANES_SUB, y), -EINVAL);
}

Test(planes, roundtrips_all_widths_ops_lengths)
{
	srand(7);
	size_t lens[] = {0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 255, 1000, 4097, 65539};
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t len = lens[li];
		uint8_t *d = malloc(len + 1), *b = malloc(len + 1), *p = malloc(len + 1),
			*o = malloc(len + 1), *r = malloc(len + 1);
		cr_assert(d && b && p && o && r);
		for (size_t i = 0; i < len; i++) {
			b[i] = (uint8_t)rand();
			/* mostly small changes, some big, some equal */
			int m = rand() % 4;
			d[i] = m == 0 ? b[i] : m == 1 ? (uint8_t)(b[i] + 1) : (uint8_t)rand();
		}
		for (unsigned w = 1; w <= 8; w *= 2)
			for (int op = PLANES_COPY; op <= PLANES_XOR; op++) {
				memset(o, 0xaa, len + 1);
				cr_assert_eq(planes_split(d, b, len, w, op, p), 0);
				cr_assert_eq(planes_merge(p, b, len, w, op, o), 0);
				cr_assert_eq(memcmp(o, d, len), 0, "len=%zu w=%u op=%d", len, w, op);
				cr_assert_eq(o[len], 0xaa, "wrote past the end");
				/* residual + split(copy) == split(op) */
				cr_assert_eq(planes_residual(d, b, len, w, op, r), 0);
				uint8_t *p2 = malloc(len + 1);
				planes_split(r, NULL, len, w, PLANES_COPY, p2);
				cr_assert_eq(memcmp(p2, p, len), 0, "len=%zu w=%u op=%d", len, w, op);
				free(p2);
				cr_assert_eq(planes_unresidual(r, b, len, w, op, o), 0);
				cr_assert_eq(memcmp(o, d, len), 0);
			}
		free(d);
		free(b);
		free(p);
		free(o);
		free(r);
	}
}

Test(planes, sub_small_steps_are_small)
{
	/* float32 bit patterns a few ulps apart: residual planes above byte 0 are zero */
	uint32_t a[64], b[64];
	for (int i = 0; i < 64; i++) {
		b[i] = 0x3f800000u + (uint32_t)i * 1000;
		a[i] = b[i] + (uint32_t)(i % 5) - 2;
	}
	uint8_t p[256];
	planes_split((const uint8_t *)a, (const uint8_t *)b, sizeof(a), 4, PLANES_SUB, p);
	for (int i = 64; i < 256; i++)
		cr_assert_eq(p[i], 0);
	for (int i = 0; i < 64; i++)
		cr_assert_leq(p[i], 4);
}

Test(planes, grouped_roundtrips)
{
	srand(11);
	size_t lens[] = {0, 1, 3, 8, 17, 1000, 4099, 65541, 262147};
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t len = lens[li];
		uint8_t *d = malloc(len + 1), *b = malloc(len + 1), *p = malloc(len + 1),
			*o = malloc(len + 1);
		cr_assert(d && b && p && o);
		for (size_t i = 0; i < len; i++) {
			b[i] = (uint8_t)(rand() % 7 == 0 ? rand() : 0x3f + rand() % 3);
			d[i] = rand() % 3 ? b[i] : (uint8_t)rand();
		}
		for (unsigned w = 1; w <= 8; w *= 2)
			for (int op = PLANES_COPY; op <= PLANES_XOR; op++) {
				memset(o, 0xaa, len + 1);
				cr_assert_eq(planes_split_grouped(d, b, len, w, op, p), 0);
				cr_assert_eq(planes_merge_grouped(p, b, len, w, op, o), 0);
				cr_assert_eq(memcmp(o, d, len), 0, "len=%zu w=%u op=%d", len, w, op);
				cr_assert_eq(o[len], 0xaa);
			}
		free(d);
		free(b);
		free(p);
		free(o);
	}
	uint8_t x[4];
	cr_assert_eq(planes_split_grouped(x, NULL, 4, 2, PLANES_SUB, x), -EINVAL);
}

Test(planes, grouped_order)
{
	/* bf16 base exponents 0x80, 0x7f, 0x80, 0x7e: stable order by exponent is 3, 1, 0, 2 */
	const uint16_t base[4] = {0x4000, 0x3f80, 0x4012, 0x3f00};
	const uint16_t data[4] = {10, 11, 12, 13};
	uint8_t p[8];
	cr_assert_eq(planes_split_grouped((const uint8_t *)data, (const uint8_t *)base, 8, 2,
					  PLANES_COPY, p), 0);
	const uint8_t want[8] = {13, 11, 10, 12, 0, 0, 0, 0};
	cr_assert_arr_eq(p, want, 8);
}

Test(planes, group_counts)
{
	/* fp32 exponents 0x7f, 0x80, 0x7f and a 2-byte tail that is not an element */
	const uint32_t base[3] = {0x3f800000u, 0x40000000u, 0xbf812345u};
	uint8_t buf[14] = {0};
	memcpy(buf, base, sizeof(base));
	size_t cnt[256];
	cr_assert_eq(planes_group_counts(buf, sizeof(buf), 4, cnt), 0);
	size_t total = 0;
	for (int k = 0; k < 256; k++)
		total += cnt[k];
	cr_assert_eq(total, 3);
	cr_assert_eq(cnt[0x7f], 2);
	cr_assert_eq(cnt[0x80], 1);
	cr_assert_eq(planes_group_counts(buf, sizeof(buf), 3, cnt), -EINVAL);
}
