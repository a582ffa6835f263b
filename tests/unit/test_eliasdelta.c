/* Unit tests for core/eliasdelta.c: known codes bit by bit, boundaries, random round trips,
 * truncated and malformed streams. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "eliasdelta.h"

/* Encode one value and return its code as a '0'/'1' string. */
static void code_string(uint64_t x, char *s, size_t cap)
{
	uint8_t buf[32];
	ed_writer w;
	ed_writer_init(&w, buf, sizeof(buf));
	cr_assert_eq(ed_put(&w, x), 0);
	size_t len;
	cr_assert_eq(ed_writer_finish(&w, &len), 0);
	unsigned bits = ed_code_bits(x);
	cr_assert_lt(bits, cap);
	cr_assert_eq(len, (bits + 7) / 8);
	for (unsigned i = 0; i < bits; i++)
		s[i] = (buf[i / 8] >> (7 - i % 8)) & 1 ? '1' : '0';
	s[bits] = 0;
	for (unsigned i = bits; i < len * 8; i++)
		cr_assert_eq((buf[i / 8] >> (7 - i % 8)) & 1, 0, "padding must be zero");
}

Test(eliasdelta, known_codes)
{
	static const struct {
		uint64_t x;
		const char *code;
	} v[] = {
		{1, "1"},       {2, "0100"},     {3, "0101"},      {4, "01100"},
		{5, "01101"},   {7, "01111"},    {8, "00100000"},  {15, "00100111"},
		{16, "001010000"}, {17, "001010001"},
	};
	char s[128];
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		code_string(v[i].x, s, sizeof(s));
		cr_assert_str_eq(s, v[i].code, "x=%llu", (unsigned long long)v[i].x);
	}
}

Test(eliasdelta, code_lengths)
{
	cr_assert_eq(ed_code_bits(1), 1);
	cr_assert_eq(ed_code_bits(2), 4);
	cr_assert_eq(ed_code_bits(UINT64_MAX), 6 + 7 + 63);
	cr_assert_eq(ed_code_bits((uint64_t)1 << 32), 5 + 6 + 32);
}

Test(eliasdelta, zero_rejected)
{
	uint8_t buf[8];
	ed_writer w;
	ed_writer_init(&w, buf, sizeof(buf));
	cr_assert_eq(ed_put(&w, 0), -EINVAL);
}

static void roundtrip(const uint64_t *v, size_t n)
{
	size_t cap = n * 10 + 16;
	uint8_t *buf = malloc(cap);
	cr_assert_not_null(buf);
	ed_writer w;
	ed_writer_init(&w, buf, cap);
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(ed_put(&w, v[i]), 0);
		total += ed_code_bits(v[i]);
	}
	size_t len;
	cr_assert_eq(ed_writer_finish(&w, &len), 0);
	cr_assert_eq(len, (total + 7) / 8);
	ed_reader r;
	ed_reader_init(&r, buf, len);
	for (size_t i = 0; i < n; i++) {
		uint64_t x = 0;
		cr_assert_eq(ed_get(&r, &x), 0, "i=%zu", i);
		cr_assert_eq(x, v[i], "i=%zu", i);
	}
	cr_assert_lt(ed_reader_left(&r), 8);
	uint64_t x;
	cr_assert_eq(ed_get(&r, &x), -EBADMSG, "reading past the end must fail");
	free(buf);
}

Test(eliasdelta, boundaries)
{
	uint64_t v[300];
	size_t n = 0;
	v[n++] = 1;
	for (unsigned k = 1; k < 64; k++) {
		v[n++] = ((uint64_t)1 << k) - 1;
		v[n++] = (uint64_t)1 << k;
		v[n++] = ((uint64_t)1 << k) + 1;
	}
	v[n++] = UINT64_MAX;
	v[n++] = (uint64_t)1 << 32;
	v[n++] = (uint64_t)1 << 63;
	roundtrip(v, n);
	/* each alone as well, so every alignment of the final byte is exercised */
	for (size_t i = 0; i < n; i++)
		roundtrip(&v[i], 1);
}

Test(eliasdelta, random_roundtrip)
{
	srand(1234);
	size_t n = 100000;
	uint64_t *v = malloc(n * sizeof(*v));
	cr_assert_not_null(v);
	for (size_t i = 0; i < n; i++) {
		uint64_t x = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
		unsigned sh = (unsigned)rand() % 64;
		x >>= sh;
		v[i] = x ? x : 1;
	}
	roundtrip(v, n);
	free(v);
}

Test(eliasdelta, raw_bits)
{
	uint8_t buf[64];
	ed_writer w;
	ed_writer_init(&w, buf, sizeof(buf));
	ed_put_bits(&w, 0x5, 3);
	ed_put_bits(&w, 0xdeadbeefcafebabeull, 64);
	ed_put_bits(&w, 0x1234, 13);
	size_t len;
	cr_assert_eq(ed_writer_finish(&w, &len), 0);
	cr_assert_eq(len, 10);
	ed_reader r;
	ed_reader_init(&r, buf, len);
	uint64_t v;
	cr_assert_eq(ed_get_bits(&r, 3, &v), 0);
	cr_assert_eq(v, 5);
	cr_assert_eq(ed_get_bits(&r, 64, &v), 0);
	cr_assert_eq(v, 0xdeadbeefcafebabeull);
	cr_assert_eq(ed_get_bits(&r, 13, &v), 0);
	cr_assert_eq(v, 0x1234 & 0x1fff);
	cr_assert_eq(ed_get_bits(&r, 5, &v), -EBADMSG);
}

Test(eliasdelta, overflow_reported)
{
	uint8_t buf[4];
	ed_writer w;
	ed_writer_init(&w, buf, sizeof(buf));
	for (int i = 0; i < 10; i++)
		ed_put(&w, UINT64_MAX);
	size_t len;
	cr_assert_eq(ed_writer_finish(&w, &len), -ENOSPC);
}

Test(eliasdelta, truncated_and_malformed)
{
	uint8_t buf[32];
	ed_writer w;
	ed_writer_init(&w, buf, sizeof(buf));
	ed_put(&w, UINT64_MAX);
	size_t len;
	cr_assert_eq(ed_writer_finish(&w, &len), 0);
	cr_assert_eq(len, 10);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1); /* exact size so ASan sees over-reads */
		memcpy(copy, buf, cut);
		ed_reader r;
		ed_reader_init(&r, copy, cut);
		uint64_t x;
		cr_assert_eq(ed_get(&r, &x), -EBADMSG, "cut=%zu", cut);
		cr_assert_eq(r.bit, 0, "reader must not advance on error");
		free(copy);
	}
	/* all zeros: no terminating bit */
	uint8_t z[16] = {0};
	ed_reader r;
	ed_reader_init(&r, z, sizeof(z));
	uint64_t x;
	cr_assert_eq(ed_get(&r, &x), -EBADMSG);
	/* length prefix claiming N = 127 (> 64): 6 zeros then 1111111 */
	uint8_t bad[16] = {0x03, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	ed_reader_init(&r, bad, sizeof(bad));
	cr_assert_eq(ed_get(&r, &x), -EBADMSG);
	/* 7 leading zeros: N >= 128 */
	uint8_t bad2[16] = {0x01, 0xff, 0xff};
	ed_reader_init(&r, bad2, sizeof(bad2));
	cr_assert_eq(ed_get(&r, &x), -EBADMSG);
}

Test(eliasdelta, random_garbage_never_crashes)
{
	srand(99);
	for (int it = 0; it < 2000; it++) {
		size_t len = (size_t)rand() % 40;
		uint8_t *b = malloc(len ? len : 1);
		for (size_t i = 0; i < len; i++)
			b[i] = (uint8_t)rand();
		ed_reader r;
		ed_reader_init(&r, b, len);
		uint64_t x;
		while (ed_get(&r, &x) == 0)
			cr_assert_geq(x, 1);
		free(b);
	}
}

/* Small values (the common case: gaps between changed elements) take the inline fast path;
 * mix them with long codes so both paths meet at every bit alignment. */
Test(eliasdelta, small_and_mixed_roundtrip)
{
	srand(4321);
	size_t n = 200000;
	uint64_t *v = malloc(n * sizeof(*v));
	cr_assert_not_null(v);
	for (size_t i = 0; i < n; i++) {
		int m = rand() % 10;
		v[i] = m < 6 ? 1 + (uint64_t)(rand() % 8) : m < 9 ? 1 + (uint64_t)(rand() % 70000)
						     : ((uint64_t)rand() << 33) | 1;
	}
	roundtrip(v, n);
	free(v);
}
