/* codec_sparse.c - SPARSE (TPDE): the positions of the changed elements as Elias-delta gaps,
 * plus their residuals. Pays off when few elements change (e.g. frozen layers); the choice in
 * codec.c counts the changes first (codec_sparse_scan) to decide.
 *
 * Payload (integers little-endian): u8 width, u32 k (changed elements), u32 b (bit stream bytes),
 * t = len % width tail bytes XOR base, plane set (codec_planes.c: 1 plane of b bytes, the
 * Elias-delta gaps, first gap = index + 1), plane set (width planes, n = k: zigzag(new - base) of
 * the changed elements). "Changed" means the bit pattern differs.
 */
#include "codec_internal.h"

#include <errno.h>
#include <string.h>

#include "eliasdelta.h"

/* Per-width change counts: k and the exact bit cost of the gaps, which the choice needs before
 * anything is encoded. */
#define DEF_SCAN(NAME, T, W)                                                                   \
	static void NAME(const uint8_t *d, const uint8_t *b, size_t n, size_t *k_out,          \
			 uint64_t *bits_out)                                                   \
	{                                                                                      \
		size_t k = 0, last = (size_t)-1;                                               \
		uint64_t bits = 0;                                                             \
		for (size_t i = 0; i < n; i++) {                                               \
			T x, y;                                                                \
			memcpy(&x, d + i * W, W);                                              \
			memcpy(&y, b + i * W, W);                                              \
			if (x != y) {                                                          \
				bits += ed_code_bits((uint64_t)(i - last));                    \
				last = i;                                                      \
				k++;                                                           \
			}                                                                      \
		}                                                                              \
		*k_out = k;                                                                    \
		*bits_out = bits;                                                              \
	}
DEF_SCAN(scan1, uint8_t, 1)
DEF_SCAN(scan2, uint16_t, 2)
DEF_SCAN(scan4, uint32_t, 4)
DEF_SCAN(scan8, uint64_t, 8)

void codec_sparse_scan(const uint8_t *d, const uint8_t *b, size_t n, unsigned w, size_t *k,
		       uint64_t *bits)
{
	switch (w) {
	case 1: scan1(d, b, n, k, bits); break;
	case 2: scan2(d, b, n, k, bits); break;
	case 4: scan4(d, b, n, k, bits); break;
	default: scan8(d, b, n, k, bits); break;
	}
}

/* Per-width loops of SPARSE. gather: gap codes of changed elements into wr, zigzag residual byte
 * q of the j-th changed element into res[q*k + j]; returns the number gathered (<= k).
 * scatter: the inverse, adding residuals onto out (which already holds the base). */
#define DEF_SPARSE(W, T)                                                                       \
	static size_t gather##W(const uint8_t *d, const uint8_t *b, size_t n, size_t k,        \
				ed_writer *wr, uint8_t *res)                                   \
	{                                                                                      \
		size_t j = 0, last = (size_t)-1;                                               \
		for (size_t i = 0; i < n && j < k; i++) {                                      \
			T x, y;                                                                \
			memcpy(&x, d + i * W, W);                                              \
			memcpy(&y, b + i * W, W);                                              \
			if (x == y)                                                            \
				continue;                                                      \
			ed_put(wr, (uint64_t)(i - last));                                      \
			last = i;                                                              \
			T r = (T)(le##W(x) - le##W(y));                                        \
			r = (T)((T)(r << 1) ^ (T)(0 - (T)(r >> (8 * W - 1))));                 \
			for (unsigned q = 0; q < W; q++)                                       \
				res[q * k + j] = (uint8_t)(r >> (8 * q));                      \
			j++;                                                                   \
		}                                                                              \
		return j;                                                                      \
	}                                                                                      \
	static int scatter##W(ed_reader *rd, const uint8_t *res, size_t k, size_t n,           \
			      uint8_t *out)                                                    \
	{                                                                                      \
		uint64_t idx = (uint64_t)-1;                                                   \
		for (size_t j = 0; j < k; j++) {                                               \
			uint64_t gap;                                                          \
			if (ed_get(rd, &gap))                                                  \
				return -EBADMSG;                                               \
			idx += gap;                                                            \
			if (idx >= n || idx + 1 < gap) /* out of range or wrapped */           \
				return -EBADMSG;                                               \
			T z = 0;                                                               \
			for (unsigned q = 0; q < W; q++)                                       \
				z |= (T)((T)res[q * k + j] << (8 * q));                        \
			T dlt = (T)((T)(z >> 1) ^ (T)(0 - (T)(z & 1)));                        \
			T y;                                                                   \
			memcpy(&y, out + idx * W, W);                                          \
			y = le##W((T)(le##W(y) + dlt));                                        \
			memcpy(out + idx * W, &y, W);                                          \
		}                                                                              \
		return 0;                                                                      \
	}

/* Native <-> little-endian (a no-op on the little-endian hosts we build for, kept for
 * correctness elsewhere). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define le1(x) (x)
#define le2(x) __builtin_bswap16(x)
#define le4(x) __builtin_bswap32(x)
#define le8(x) __builtin_bswap64(x)
#else
#define le1(x) (x)
#define le2(x) (x)
#define le4(x) (x)
#define le8(x) (x)
#endif

DEF_SPARSE(1, uint8_t)
DEF_SPARSE(2, uint16_t)
DEF_SPARSE(4, uint32_t)
DEF_SPARSE(8, uint64_t)

/* Gather positions (bit stream into c->b) and residual planes (into c->a) of the k changed
 * elements, then store both plane sets. */
int codec_sparse_encode(codec_ctx *c, const uint8_t *data, const uint8_t *base, size_t len,
			unsigned w, size_t k, uint8_t *dst, size_t cap, size_t *out_len)
{
	size_t n = len / w, t = len % w;
	size_t pb = codec_gaps_bound(k, n);
	if (k > UINT32_MAX || pb > UINT32_MAX)
		return -ENOSPC;
	if (codec_grow(&c->a, &c->a_cap, k * w + 1) || codec_grow(&c->b, &c->b_cap, pb))
		return -ENOMEM;
	ed_writer wr;
	ed_writer_init(&wr, c->b, pb);
	size_t j;
	switch (w) {
	case 1: j = gather1(data, base, n, k, &wr, c->a); break;
	case 2: j = gather2(data, base, n, k, &wr, c->a); break;
	case 4: j = gather4(data, base, n, k, &wr, c->a); break;
	default: j = gather8(data, base, n, k, &wr, c->a); break;
	}
	size_t blen;
	if (j != k || ed_writer_finish(&wr, &blen))
		return -EINVAL; /* cannot happen: k came from the same data */
	size_t hdr = 1 + 4 + 4 + t;
	if (cap < hdr)
		return -ENOSPC;
	dst[0] = (uint8_t)w;
	le_put32(dst + 1, (uint32_t)k);
	le_put32(dst + 5, (uint32_t)blen);
	for (size_t i = 0; i < t; i++)
		dst[9 + i] = data[n * w + i] ^ base[n * w + i];
	size_t u1, u2;
	int r = codec_planeset_encode(c, c->b, blen, 1, dst + hdr, cap - hdr, &u1);
	if (!r)
		r = codec_planeset_encode(c, c->a, k, w, dst + hdr + u1, cap - hdr - u1, &u2);
	if (r)
		return r;
	*out_len = hdr + u1 + u2;
	return 0;
}

int codec_sparse_decode(codec_ctx *c, const uint8_t *p, size_t plen, const uint8_t *base,
			unsigned w, uint8_t *out, size_t len)
{
	size_t n = len / w, t = len % w;
	size_t hdr = 1 + 4 + 4 + t;
	if (plen < hdr || p[0] != w)
		return -EBADMSG;
	size_t k = le_get32(p + 1), blen = le_get32(p + 5);
	if (k > n || blen > codec_gaps_bound(k, n))
		return -EBADMSG;
	if (codec_grow(&c->a, &c->a_cap, k * w + 1) || codec_grow(&c->b, &c->b_cap, blen + 1))
		return -ENOMEM;
	size_t u1, u2;
	int r = codec_planeset_decode(c, p + hdr, plen - hdr, &u1, c->b, blen, 1);
	if (!r)
		r = codec_planeset_decode(c, p + hdr + u1, plen - hdr - u1, &u2, c->a, k, w);
	if (r)
		return r == -ENOMEM ? r : -EBADMSG;
	if (hdr + u1 + u2 != plen)
		return -EBADMSG;
	memcpy(out, base, len);
	for (size_t i = 0; i < t; i++)
		out[n * w + i] = base[n * w + i] ^ p[9 + i];
	ed_reader rd;
	ed_reader_init(&rd, c->b, blen);
	switch (w) {
	case 1: r = scatter1(&rd, c->a, k, n, out); break;
	case 2: r = scatter2(&rd, c->a, k, n, out); break;
	case 4: r = scatter4(&rd, c->a, k, n, out); break;
	default: r = scatter8(&rd, c->a, k, n, out); break;
	}
	if (r)
		return r;
	if (ed_reader_left(&rd) >= 8)
		return -EBADMSG; /* trailing garbage beyond the padding byte */
	return 0;
}
