/* planes.c - byte-plane split/merge and residuals (see planes.h).
 *
 * One loop per (width, op), written on fixed-width integer types so the compiler can unroll and
 * vectorise; the per-element op is resolved at compile time through the macros below. Elements are
 * read with memcpy + little-endian byte extraction, so the code is endian-neutral and alignment-free.
 */
#include "planes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"

static inline uint8_t ld8(const uint8_t *p) { return *p; }

/* The decode loops read and write whole elements; on little-endian hosts memcpy is one load or
 * store (gcc does not always merge byte-wise loads and stores), elsewhere the byte-wise forms of
 * le.h. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define DEF_NATIVE(B, T, LD, ST)                                                               \
	static inline T ldn##B(const uint8_t *p)                                               \
	{                                                                                      \
		T v;                                                                           \
		memcpy(&v, p, sizeof v);                                                       \
		return v;                                                                      \
	}                                                                                      \
	static inline void stn##B(uint8_t *p, T v) { memcpy(p, &v, sizeof v); }
#else
static inline void st8(uint8_t *p, uint8_t v) { *p = v; }
#define DEF_NATIVE(B, T, LD, ST)                                                               \
	static inline T ldn##B(const uint8_t *p) { return LD(p); }                             \
	static inline void stn##B(uint8_t *p, T v) { ST(p, v); }
#endif

/* zigzag of a difference already reduced to T (unsigned, width bits). */
#define ZZ_ENC(T, d) ((T)(((T)((d) << 1)) ^ (T)(0 - (T)((d) >> (sizeof(T) * 8 - 1)))))
#define ZZ_DEC(T, z) ((T)(((T)((z) >> 1)) ^ (T)(0 - (T)((z) & 1))))

#define OP_FWD_COPY(T, a, b) (a)
#define OP_FWD_SUB(T, a, b) ZZ_ENC(T, (T)((a) - (b)))
#define OP_FWD_XOR(T, a, b) ((T)((a) ^ (b)))
#define OP_INV_COPY(T, r, b) (r)
#define OP_INV_SUB(T, r, b) ((T)(ZZ_DEC(T, r) + (b)))
#define OP_INV_XOR(T, r, b) ((T)((r) ^ (b)))
/* OP_INV_* split into a part on the residual alone (PRE, identity unless SUB) and one with b. */
#define PRE_NONE(T, r) ((T)(r))
#define PRE_SUB(T, r) ZZ_DEC(T, (T)(r))
#define OPB_COPY(T, r, b) (r)
#define OPB_SUB(T, r, b) ((T)((r) + (b)))
#define OPB_XOR(T, r, b) ((T)((r) ^ (b)))

/* Byte k of r into plane k at element i, fully unrolled per width: a loop over k with a variable
 * shift is not unrolled at -O2 and costs 3x. */
static inline void put1(uint8_t *restrict d, size_t n, size_t i, uint8_t r) { (void)n; d[i] = r; }
static inline void put2(uint8_t *restrict d, size_t n, size_t i, uint16_t r)
{
	d[i] = (uint8_t)r;
	d[n + i] = (uint8_t)(r >> 8);
}
static inline void put4(uint8_t *restrict d, size_t n, size_t i, uint32_t r)
{
	d[i] = (uint8_t)r;
	d[n + i] = (uint8_t)(r >> 8);
	d[2 * n + i] = (uint8_t)(r >> 16);
	d[3 * n + i] = (uint8_t)(r >> 24);
}
static inline void put8(uint8_t *restrict d, size_t n, size_t i, uint64_t r)
{
	put4(d, n, i, (uint32_t)r);
	put4(d + 4 * n, n, i, (uint32_t)(r >> 32));
}
DEF_NATIVE(8, uint8_t, ld8, st8)
DEF_NATIVE(16, uint16_t, le_get16, le_put16)
DEF_NATIVE(32, uint32_t, le_get32, le_put32)
DEF_NATIVE(64, uint64_t, le_get64, le_put64)

/* Split: element i of data/base -> byte k into dst[k*n + i]. */
#define DEF_SPLIT(NAME, T, W, LD, PUT, OPF)                                                    \
	static void NAME(const uint8_t *restrict d, const uint8_t *restrict b, size_t n,       \
			 uint8_t *restrict dst)                                                \
	{                                                                                      \
		for (size_t i = 0; i < n; i++) {                                               \
			T a = LD(d + i * W);                                                   \
			T bb = b ? LD(b + i * W) : 0;                                          \
			(void)bb;                                                              \
			PUT(dst, n, i, OPF(T, a, bb));                                         \
		}                                                                              \
	}

/* for (size_t J = 0; J < N; J++) BODY, as blocks of 32 and a scalar rest: gcc's -O2 cost model
 * ("very-cheap") vectorises only loops whose trip count is a multiple of the vector length. */
#define FOR_BLOCKS32(J, N, BODY)                                                               \
	do {                                                                                   \
		size_t n32_ = (N) & ~(size_t)31;                                               \
		for (size_t j0_ = 0; j0_ < n32_; j0_ += 32)                                    \
			for (size_t J = j0_; J < j0_ + 32; J++)                                \
				BODY;                                                          \
		for (size_t J = n32_; J < (N); J++)                                            \
			BODY;                                                                  \
	} while (0)

/* Plane form (W planes of n bytes) -> n whole elements in r (little-endian, as stored). */
static void unplane1(const uint8_t *restrict s, size_t n, uint8_t *restrict r)
{
	memcpy(r, s, n);
}
static void unplane2(const uint8_t *restrict s, size_t n, uint8_t *restrict r)
{
	FOR_BLOCKS32(j, n, (r[2 * j] = s[j], r[2 * j + 1] = s[n + j]));
}
static void unplane4(const uint8_t *restrict s, size_t n, uint8_t *restrict r)
{
	FOR_BLOCKS32(j, n, (r[4 * j] = s[j], r[4 * j + 1] = s[n + j], r[4 * j + 2] = s[2 * n + j],
			    r[4 * j + 3] = s[3 * n + j]));
}
static void unplane8(const uint8_t *restrict s, size_t n, uint8_t *restrict r)
{
	for (size_t j = 0; j < n; j++)
		for (size_t k = 0; k < 8; k++)
			r[8 * j + k] = s[k * n + j];
}

/* Merge: un-plane into dst, then the op in place (both passes vectorise). */
#define DEF_MERGE(NAME, T, W, LDN, STN, UNPLANE, OPI)                                          \
	static void NAME(const uint8_t *restrict s, const uint8_t *restrict b, size_t n,       \
			 uint8_t *restrict dst)                                                \
	{                                                                                      \
		UNPLANE(s, n, dst);                                                            \
		if (b)                                                                         \
			FOR_BLOCKS32(i, n, STN(dst + i * W, OPI(T, LDN(dst + i * W),           \
							       LDN(b + i * W))));              \
	}

#define DEF_ALL(W, T, LD, PUT, LDN, STN)                                                        \
	DEF_SPLIT(split##W##_copy, T, W, LD, PUT, OP_FWD_COPY)                                 \
	DEF_SPLIT(split##W##_sub, T, W, LD, PUT, OP_FWD_SUB)                                   \
	DEF_SPLIT(split##W##_xor, T, W, LD, PUT, OP_FWD_XOR)                                   \
	DEF_MERGE(merge##W##_copy, T, W, LDN, STN, unplane##W, OP_INV_COPY)                    \
	DEF_MERGE(merge##W##_sub, T, W, LDN, STN, unplane##W, OP_INV_SUB)                      \
	DEF_MERGE(merge##W##_xor, T, W, LDN, STN, unplane##W, OP_INV_XOR)

DEF_ALL(1, uint8_t, ld8, put1, ldn8, stn8)
DEF_ALL(2, uint16_t, le_get16, put2, ldn16, stn16)
DEF_ALL(4, uint32_t, le_get32, put4, ldn32, stn32)
DEF_ALL(8, uint64_t, le_get64, put8, ldn64, stn64)

/* Grouped variants: a counting sort by key of the base element gives each element its slot j. */
#define DEF_GSPLIT(NAME, T, W, LD, PUT, OPF)                                                   \
	static void NAME(const uint8_t *restrict d, const uint8_t *restrict b, size_t n,       \
			 uint8_t *restrict dst)                                                \
	{                                                                                      \
		size_t pos[256];                                                               \
		group_slots(b, n, W, pos);                                                     \
		for (size_t i = 0; i < n; i++) {                                               \
			T bb = LD(b + i * W);                                                  \
			size_t j = pos[planes_group_key(bb, W)]++;                             \
			PUT(dst, n, j, OPF(T, LD(d + i * W), bb));                             \
		}                                                                              \
	}

/* Grouped merge in two passes over a scratch buffer r (n * W bytes):
 * 1. un-plane: r gets the residuals in slot order as whole little-endian elements (one
 *    sequential pass over the W planes, vectorised), so that
 * 2. the gather reads one element per output element instead of W bytes from W planes.
 * The gather walks the four quarters of the elements side by side, each with its own cursors
 * (group_slots4): a run of equal keys, the usual case, would otherwise serialise every element on
 * the store and reload of one pos[key]. Quarter m's cursor for key k starts after the slots of
 * the earlier quarters' elements of key k, so every element gets the slot of the one-cursor walk
 * (the encoder's order). */
#define DEF_GMERGE(NAME, T, W, LDN, STN, UNPLANE, HAS_PRE, PRE, OPB)                           \
	static void NAME(const uint8_t *restrict s, const uint8_t *restrict b, size_t n,       \
			 uint8_t *restrict dst, uint8_t *restrict scratch)                     \
	{                                                                                      \
		size_t pos[4][256];                                                            \
		group_slots4(b, n, W, pos);                                                    \
		UNPLANE(s, n, scratch);                                                        \
		if (HAS_PRE) /* zigzag decode in place, vectorised */                          \
			FOR_BLOCKS32(j, n, STN(scratch + j * W, PRE(T, LDN(scratch + j * W))));\
		const uint8_t *restrict r = scratch;                                           \
		size_t q = quarter_len(n, W);                                                  \
		for (size_t i = 0; i < q; i++) {                                               \
			T x0 = LDN(b + i * W), x1 = LDN(b + (q + i) * W);                      \
			T x2 = LDN(b + (2 * q + i) * W), x3 = LDN(b + (3 * q + i) * W);        \
			size_t j0 = pos[0][planes_group_key(x0, W)]++;                         \
			size_t j1 = pos[1][planes_group_key(x1, W)]++;                         \
			size_t j2 = pos[2][planes_group_key(x2, W)]++;                         \
			size_t j3 = pos[3][planes_group_key(x3, W)]++;                         \
			STN(dst + i * W, OPB(T, LDN(r + j0 * W), x0));                         \
			STN(dst + (q + i) * W, OPB(T, LDN(r + j1 * W), x1));                   \
			STN(dst + (2 * q + i) * W, OPB(T, LDN(r + j2 * W), x2));               \
			STN(dst + (3 * q + i) * W, OPB(T, LDN(r + j3 * W), x3));               \
		}                                                                              \
		for (size_t i = 4 * q; i < n; i++) { /* the rest of quarter 3 */               \
			T x = LDN(b + i * W);                                                  \
			size_t j = pos[3][planes_group_key(x, W)]++;                           \
			STN(dst + i * W, OPB(T, LDN(r + j * W), x));                           \
		}                                                                              \
	}

/* pos[k] = number of elements with a smaller key: the first slot of group k. Four interleaved
 * histograms: runs of equal keys (the usual case) would otherwise serialise on one counter. */
#define COUNT_KEYS(KEYEXPR)                                                                    \
	do {                                                                                   \
		size_t i = 0;                                                                  \
		for (; i + 4 <= n; i += 4) {                                                   \
			size_t ii = i;                                                         \
			cnt[0][KEYEXPR]++;                                                     \
			ii = i + 1;                                                            \
			cnt[1][KEYEXPR]++;                                                     \
			ii = i + 2;                                                            \
			cnt[2][KEYEXPR]++;                                                     \
			ii = i + 3;                                                            \
			cnt[3][KEYEXPR]++;                                                     \
		}                                                                              \
		for (size_t ii = i; ii < n; ii++)                                              \
			cnt[0][KEYEXPR]++;                                                     \
	} while (0)

static void group_slots(const uint8_t *b, size_t n, unsigned w, size_t pos[256])
{
	uint32_t cnt[4][256];
	memset(cnt, 0, sizeof(cnt));
	switch (w) {
	case 1: COUNT_KEYS(b[ii]); break;
	case 2: COUNT_KEYS(planes_group_key(le_get16(b + 2 * ii), 2)); break;
	case 4: COUNT_KEYS(planes_group_key(le_get32(b + 4 * ii), 4)); break;
	default: COUNT_KEYS(b[8 * ii + 7]); break;
	}
	size_t acc = 0;
	for (int k = 0; k < 256; k++) {
		pos[k] = acc;
		acc += (size_t)cnt[0][k] + cnt[1][k] + cnt[2][k] + cnt[3][k];
	}
}

/* Quarters for DEF_GMERGE: [m*q, (m+1)*q) for m < 3 and [3q, n). n / 4 elements of a 2^k-byte
 * chunk would put the four streams of base and output 4 KiB apart (same L1 sets, and false
 * store-to-load dependencies); a stride of 3008 mod 4096 bytes spreads them. Quarter 3 gets the
 * extra (at most 4096 / w + 3 elements, walked alone). */
static size_t quarter_len(size_t n, unsigned w)
{
	size_t q = n / 4;
	if (q * w < 8192)
		return q;
	q -= (q * w % 4096) / w;
	return q - (1088 + w - 1) / w;
}

/* Per-quarter cursors for DEF_GMERGE (quarters of quarter_len);
 * pos[m][k] = number of elements with a smaller key, plus those with key k in quarters < m. */
#define COUNT_QUARTERS(KEYEXPR)                                                                \
	do {                                                                                   \
		size_t q = quarter_len(n, w);                                                  \
		for (size_t i = 0; i < q; i++) {                                               \
			size_t ii = i;                                                         \
			cnt[0][KEYEXPR]++;                                                     \
			ii = i + q;                                                            \
			cnt[1][KEYEXPR]++;                                                     \
			ii = i + 2 * q;                                                        \
			cnt[2][KEYEXPR]++;                                                     \
			ii = i + 3 * q;                                                        \
			cnt[3][KEYEXPR]++;                                                     \
		}                                                                              \
		for (size_t ii = 4 * q; ii < n; ii++)                                          \
			cnt[3][KEYEXPR]++;                                                     \
	} while (0)

static void group_slots4(const uint8_t *b, size_t n, unsigned w, size_t pos[4][256])
{
	uint32_t cnt[4][256];
	memset(cnt, 0, sizeof(cnt));
	switch (w) {
	case 1: COUNT_QUARTERS(b[ii]); break;
	case 2: COUNT_QUARTERS(planes_group_key(le_get16(b + 2 * ii), 2)); break;
	case 4: COUNT_QUARTERS(planes_group_key(le_get32(b + 4 * ii), 4)); break;
	default: COUNT_QUARTERS(b[8 * ii + 7]); break;
	}
	size_t acc = 0;
	for (int k = 0; k < 256; k++)
		for (int m = 0; m < 4; m++) {
			pos[m][k] = acc;
			acc += cnt[m][k];
		}
}

#define DEF_GALL(W, T, LD, PUT, LDN, STN)                                                       \
	DEF_GSPLIT(gsplit##W##_copy, T, W, LD, PUT, OP_FWD_COPY)                               \
	DEF_GSPLIT(gsplit##W##_sub, T, W, LD, PUT, OP_FWD_SUB)                                 \
	DEF_GSPLIT(gsplit##W##_xor, T, W, LD, PUT, OP_FWD_XOR)                                 \
	DEF_GMERGE(gmerge##W##_copy, T, W, LDN, STN, unplane##W, 0, PRE_NONE, OPB_COPY)        \
	DEF_GMERGE(gmerge##W##_sub, T, W, LDN, STN, unplane##W, 1, PRE_SUB, OPB_SUB)           \
	DEF_GMERGE(gmerge##W##_xor, T, W, LDN, STN, unplane##W, 0, PRE_NONE, OPB_XOR)

DEF_GALL(1, uint8_t, ld8, put1, ldn8, stn8)
DEF_GALL(2, uint16_t, le_get16, put2, ldn16, stn16)
DEF_GALL(4, uint32_t, le_get32, put4, ldn32, stn32)
DEF_GALL(8, uint64_t, le_get64, put8, ldn64, stn64)

typedef void (*plane_fn)(const uint8_t *, const uint8_t *, size_t, uint8_t *);

typedef void (*gmerge_fn)(const uint8_t *, const uint8_t *, size_t, uint8_t *, uint8_t *);

static int width_index(unsigned width)
{
	return width == 1 ? 0 : width == 2 ? 1 : width == 4 ? 2 : width == 8 ? 3 : -1;
}

static plane_fn pick_gsplit(unsigned width, enum planes_op op)
{
	static const plane_fn tab[4][3] = {
		{gsplit1_copy, gsplit1_sub, gsplit1_xor},
		{gsplit2_copy, gsplit2_sub, gsplit2_xor},
		{gsplit4_copy, gsplit4_sub, gsplit4_xor},
		{gsplit8_copy, gsplit8_sub, gsplit8_xor},
	};
	int wi = width_index(width);
	return wi < 0 || (unsigned)op > PLANES_XOR ? NULL : tab[wi][op];
}

static gmerge_fn pick_gmerge(unsigned width, enum planes_op op)
{
	static const gmerge_fn tab[4][3] = {
		{gmerge1_copy, gmerge1_sub, gmerge1_xor},
		{gmerge2_copy, gmerge2_sub, gmerge2_xor},
		{gmerge4_copy, gmerge4_sub, gmerge4_xor},
		{gmerge8_copy, gmerge8_sub, gmerge8_xor},
	};
	int wi = width_index(width);
	return wi < 0 || (unsigned)op > PLANES_XOR ? NULL : tab[wi][op];
}

static plane_fn pick(int merge, unsigned width, enum planes_op op)
{
	static const plane_fn split_tab[4][3] = {
		{split1_copy, split1_sub, split1_xor},
		{split2_copy, split2_sub, split2_xor},
		{split4_copy, split4_sub, split4_xor},
		{split8_copy, split8_sub, split8_xor},
	};
	static const plane_fn merge_tab[4][3] = {
		{merge1_copy, merge1_sub, merge1_xor},
		{merge2_copy, merge2_sub, merge2_xor},
		{merge4_copy, merge4_sub, merge4_xor},
		{merge8_copy, merge8_sub, merge8_xor},
	};
	int wi = width == 1 ? 0 : width == 2 ? 1 : width == 4 ? 2 : width == 8 ? 3 : -1;
	if (wi < 0 || (unsigned)op > PLANES_XOR)
		return NULL;
	return merge ? merge_tab[wi][op] : split_tab[wi][op];
}

static void tail(const uint8_t *src, const uint8_t *base, size_t len, size_t start,
		 enum planes_op op, uint8_t *dst)
{
	for (size_t i = start; i < len; i++)
		dst[i] = op == PLANES_COPY ? src[i] : (uint8_t)(src[i] ^ base[i]);
}

int planes_split(const uint8_t *data, const uint8_t *base, size_t len, unsigned width,
		 enum planes_op op, uint8_t *dst)
{
	plane_fn f = pick(0, width, op);
	if (!f)
		return -EINVAL;
	size_t n = len / width;
	f(data, op == PLANES_COPY ? NULL : base, n, dst);
	tail(data, base, len, n * width, op, dst);
	return 0;
}

int planes_merge(const uint8_t *src, const uint8_t *base, size_t len, unsigned width,
		 enum planes_op op, uint8_t *dst)
{
	plane_fn f = pick(1, width, op);
	if (!f)
		return -EINVAL;
	size_t n = len / width;
	f(src, op == PLANES_COPY ? NULL : base, n, dst);
	tail(src, base, len, n * width, op, dst);
	return 0;
}

int planes_group_counts(const uint8_t *base, size_t len, unsigned width, size_t cnt[256])
{
	if (width != 1 && width != 2 && width != 4 && width != 8)
		return -EINVAL;
	size_t pos[256], n = len / width;
	group_slots(base, n, width, pos);
	for (int k = 0; k < 256; k++)
		cnt[k] = (k < 255 ? pos[k + 1] : n) - pos[k];
	return 0;
}

int planes_split_grouped(const uint8_t *data, const uint8_t *base, size_t len, unsigned width,
			 enum planes_op op, uint8_t *dst)
{
	plane_fn f = pick_gsplit(width, op);
	if (!f || !base)
		return -EINVAL;
	size_t n = len / width;
	f(data, base, n, dst);
	tail(data, base, len, n * width, op, dst);
	return 0;
}

int planes_merge_grouped_buf(const uint8_t *src, const uint8_t *base, size_t len, unsigned width,
			     enum planes_op op, uint8_t *dst, uint8_t *scratch)
{
	gmerge_fn f = pick_gmerge(width, op);
	if (!f || !base)
		return -EINVAL;
	size_t n = len / width;
	f(src, base, n, dst, scratch);
	tail(src, base, len, n * width, op, dst);
	return 0;
}

int planes_merge_grouped(const uint8_t *src, const uint8_t *base, size_t len, unsigned width,
			 enum planes_op op, uint8_t *dst)
{
	if (!pick_gmerge(width, op) || !base)
		return -EINVAL;
	uint8_t *scratch = malloc(len ? len : 1);
	if (!scratch)
		return -ENOMEM;
	int r = planes_merge_grouped_buf(src, base, len, width, op, dst, scratch);
	free(scratch);
	return r;
}

int planes_residual(const uint8_t *data, const uint8_t *base, size_t len, unsigned width,
		    enum planes_op op, uint8_t *dst)
{
	if (!pick(0, width, op))
		return -EINVAL;
	size_t n = len / width;
	for (size_t i = 0; i < n; i++) {
		uint64_t a = 0, b = 0;
		for (unsigned k = 0; k < width; k++) {
			a |= (uint64_t)data[i * width + k] << (8 * k);
			if (op != PLANES_COPY)
				b |= (uint64_t)base[i * width + k] << (8 * k);
		}
		uint64_t mask = width == 8 ? ~(uint64_t)0 : (((uint64_t)1 << (8 * width)) - 1);
		uint64_t r = op == PLANES_SUB   ? planes_zz_enc((a - b) & mask, width)
			     : op == PLANES_XOR ? a ^ b
						: a;
		for (unsigned k = 0; k < width; k++)
			dst[i * width + k] = (uint8_t)(r >> (8 * k));
	}
	tail(data, base, len, n * width, op, dst);
	return 0;
}

int planes_unresidual(const uint8_t *res, const uint8_t *base, size_t len, unsigned width,
		      enum planes_op op, uint8_t *dst)
{
	if (!pick(0, width, op))
		return -EINVAL;
	size_t n = len / width;
	for (size_t i = 0; i < n; i++) {
		uint64_t r = 0, b = 0;
		for (unsigned k = 0; k < width; k++) {
			r |= (uint64_t)res[i * width + k] << (8 * k);
			if (op != PLANES_COPY)
				b |= (uint64_t)base[i * width + k] << (8 * k);
		}
		uint64_t mask = width == 8 ? ~(uint64_t)0 : (((uint64_t)1 << (8 * width)) - 1);
		uint64_t v = op == PLANES_SUB   ? (planes_zz_dec(r, width) + b) & mask
			     : op == PLANES_XOR ? r ^ b
						: r;
		for (unsigned k = 0; k < width; k++)
			dst[i * width + k] = (uint8_t)(v >> (8 * k));
	}
	tail(res, base, len, n * width, op, dst);
	return 0;
}
