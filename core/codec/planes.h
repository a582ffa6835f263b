/* planes.h - byte planes and per-element residuals for tensor chunks.
 *
 * A buffer of len bytes holds n = len / width little-endian elements of `width` bytes (1, 2, 4, 8)
 * followed by t = len % width tail bytes. Its plane form is also len bytes: plane k (byte k of
 * every element, k = 0 least significant) at offset k * n, then the t tail bytes unchanged.
 *
 * Residuals (element-wise, on the unsigned bit patterns):
 *   PLANES_SUB: zigzag((new - base) mod 2^(8w)): the difference is read as a signed w-byte integer
 *               s and mapped to (s << 1) ^ (s >> (8w-1)), so small +/- steps become small values;
 *   PLANES_XOR: new ^ base.
 * Tail bytes always use XOR (they are not elements).
 */
#ifndef TPDEFS_PLANES_H
#define TPDEFS_PLANES_H

#include <stddef.h>
#include <stdint.h>

enum planes_op {
	PLANES_COPY = 0, /* no base: plain planes */
	PLANES_SUB = 1,
	PLANES_XOR = 2,
};

/* Write the plane form of op(data, base) into dst (len bytes, must not overlap the inputs).
 * base is ignored for PLANES_COPY. width must be 1, 2, 4 or 8 (others: nothing is written and
 * -EINVAL returned); 0 on success. */
int planes_split(const uint8_t *data, const uint8_t *base, size_t len, unsigned width,
		 enum planes_op op, uint8_t *dst);

/* Inverse of planes_split: rebuild the elements from plane form src and base into dst. */
int planes_merge(const uint8_t *src, const uint8_t *base, size_t len, unsigned width,
		 enum planes_op op, uint8_t *dst);

/* As planes_split / planes_merge, but the elements are stably grouped by a key of their base
 * element: the IEEE exponent field for width 2 (bf16/fp16: bits 7..14) and 4 (fp32: bits 23..30),
 * the most significant byte for widths 1 and 8. The decoder recomputes the same order from the
 * base. Residual magnitudes (in ulps) depend on the exponent, so grouping gives zstd's per-block
 * entropy tables homogeneous data (bf16 deltas: 6% smaller). base is required. */
int planes_split_grouped(const uint8_t *data, const uint8_t *base, size_t len, unsigned width,
			 enum planes_op op, uint8_t *dst);
int planes_merge_grouped(const uint8_t *src, const uint8_t *base, size_t len, unsigned width,
			 enum planes_op op, uint8_t *dst);
/* planes_merge_grouped with caller-provided scratch of len bytes (not overlapping the others);
 * planes_merge_grouped allocates it (-ENOMEM if it cannot). */
int planes_merge_grouped_buf(const uint8_t *src, const uint8_t *base, size_t len, unsigned width,
			     enum planes_op op, uint8_t *dst, uint8_t *scratch);
/* Element counts per grouping key of base (n = len / width elements); -EINVAL on a bad width. */
int planes_group_counts(const uint8_t *base, size_t len, unsigned width, size_t cnt[256]);
/* The grouping key of one element (value in the low 8*width bits). */
static inline unsigned planes_group_key(uint64_t x, unsigned width)
{
	switch (width) {
	case 2: return (unsigned)(x >> 7) & 255;
	case 4: return (unsigned)(x >> 23) & 255;
	default: return (unsigned)(x >> (8 * width - 8)) & 255;
	}
}

/* Element residuals without plane split (dst[i] = op(data[i], base[i]) for whole elements,
 * XOR for tail bytes) and their inverse. */
int planes_residual(const uint8_t *data, const uint8_t *base, size_t len, unsigned width,
		    enum planes_op op, uint8_t *dst);
int planes_unresidual(const uint8_t *res, const uint8_t *base, size_t len, unsigned width,
		      enum planes_op op, uint8_t *dst);

/* Zigzag helpers for one element of width w bytes (value in the low 8w bits). */
static inline uint64_t planes_zz_enc(uint64_t d, unsigned w)
{
	unsigned bits = 8 * w;
	uint64_t mask = bits == 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
	uint64_t sign = (d >> (bits - 1)) & 1;
	return ((d << 1) ^ (0 - sign)) & mask;
}

static inline uint64_t planes_zz_dec(uint64_t z, unsigned w)
{
	unsigned bits = 8 * w;
	uint64_t mask = bits == 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
	return ((z >> 1) ^ (0 - (z & 1))) & mask;
}

#endif
