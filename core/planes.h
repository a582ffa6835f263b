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
