/* eliasdelta.h - bit writer/reader and Elias-delta coding of positive 64-bit integers.
 *
 * Bit order: MSB-first. The first bit written is bit 7 of byte 0; the last byte is padded with zero
 * bits. Elias-delta of x >= 1: let N = floor(log2 x) + 1 (bit length of x) and L = floor(log2 N);
 * write L zero bits, then N in L+1 bits, then the N-1 low bits of x. Examples: 1 -> "1",
 * 2 -> "0100", 5 -> "01101", UINT64_MAX -> 76 bits.
 *
 * The writer and reader are transparent structs on purpose: they live on the caller's stack inside
 * hot loops (one call per changed element), so no allocation and inlinable state. Treat the fields
 * as private.
 */
#ifndef TPDEFS_ELIASDELTA_H
#define TPDEFS_ELIASDELTA_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ed_writer {
	uint8_t *buf;
	size_t cap;    /* bytes */
	size_t pos;    /* bytes flushed */
	uint64_t acc;  /* pending bits in the low `nbits` bits */
	unsigned nbits;
	int overflow;  /* set when a write did not fit; reported by ed_writer_finish */
} ed_writer;

typedef struct ed_reader {
	const uint8_t *buf;
	size_t len;    /* bytes */
	uint64_t bit;  /* next bit position */
} ed_reader;

void ed_writer_init(ed_writer *w, uint8_t *buf, size_t cap);
/* Append the n low bits of v (n <= 64), most significant first. */
static inline void ed_put_bits(ed_writer *w, uint64_t v, unsigned n);
/* Append the Elias-delta code of x. -EINVAL for x == 0 (nothing written). */
static inline int ed_put(ed_writer *w, uint64_t x);
/* Flush the partial byte (zero padded). Returns 0 and the byte length, or -ENOSPC if any write
 * did not fit into cap. */
int ed_writer_finish(ed_writer *w, size_t *out_len);
/* Length in bits of the Elias-delta code of x (x >= 1). */
static inline unsigned ed_code_bits(uint64_t x);

void ed_reader_init(ed_reader *r, const uint8_t *buf, size_t len);
/* Read n bits (n <= 64). -EBADMSG if fewer than n bits remain. */
int ed_get_bits(ed_reader *r, unsigned n, uint64_t *v);
/* Decode one Elias-delta value into *x (>= 1). -EBADMSG on truncation or a malformed code
 * (length prefix over 64 bits). The reader does not advance on error. */
static inline int ed_get(ed_reader *r, uint64_t *x);
/* Bits not yet consumed. */
static inline uint64_t ed_reader_left(const ed_reader *r);

/* ---- inline implementations: these run once per changed element ---- */

void ed_flush32_(ed_writer *w); /* internal: emit the top 32 pending bits */
int ed_get_slow_(ed_reader *r, uint64_t *x); /* internal: ed_get near the end of the buffer */

/* n <= 32: the accumulator holds at most 31 pending bits before, so never more than 63 after. */
static inline void ed_put32_(ed_writer *w, uint32_t v, unsigned n)
{
	if (n == 0)
		return;
	w->acc = (w->acc << n) | (v & (uint32_t)(((uint64_t)1 << n) - 1));
	w->nbits += n;
	if (w->nbits >= 32)
		ed_flush32_(w);
}

static inline void ed_put_bits(ed_writer *w, uint64_t v, unsigned n)
{
	if (n > 32) {
		ed_put32_(w, (uint32_t)(v >> 32), n - 32);
		n = 32;
	}
	ed_put32_(w, (uint32_t)v, n);
}

static inline unsigned ed_bitlen_(uint64_t x)
{
	return 64u - (unsigned)__builtin_clzll(x);
}

static inline unsigned ed_code_bits(uint64_t x)
{
	unsigned n = ed_bitlen_(x);
	unsigned l = ed_bitlen_(n) - 1;
	return 2 * l + n;
}

static inline int ed_put(ed_writer *w, uint64_t x)
{
	if (x == 0)
		return -EINVAL;
	unsigned n = ed_bitlen_(x);
	unsigned l = ed_bitlen_(n) - 1;
	if (n <= 16) {
		/* L zeros + N in L+1 bits + N-1 low bits of x = (N << (N-1)) | low, 2L+N <= 23 bits */
		uint32_t low = (uint32_t)x & ((1u << (n - 1)) - 1);
		ed_put32_(w, ((uint32_t)n << (n - 1)) | low, 2 * l + n);
		return 0;
	}
	ed_put32_(w, n, 2 * l + 1);
	ed_put_bits(w, x, n - 1);
	return 0;
}

static inline uint64_t ed_reader_left(const ed_reader *r)
{
	return (uint64_t)r->len * 8 - r->bit;
}

static inline int ed_get(ed_reader *r, uint64_t *x)
{
	size_t byte = (size_t)(r->bit >> 3);
	if (byte + 8 > r->len)
		return ed_get_slow_(r, x);
	uint64_t win;
	__builtin_memcpy(&win, r->buf + byte, 8);
	win = __builtin_bswap64(win) << (r->bit & 7); /* 57 valid bits at least */
	if (win == 0)
		return ed_get_slow_(r, x);
	unsigned l = (unsigned)__builtin_clzll(win);
	unsigned hdr = 2 * l + 1;
	if (l > 3)
		return ed_get_slow_(r, x); /* N >= 16: long codes take the general path */
	unsigned n = (unsigned)(win >> (64 - hdr));
	/* hdr + n - 1 <= 7 + 15 = 22 bits, all inside the window */
	uint64_t low = n > 1 ? (win << hdr) >> (64 - (n - 1)) : 0;
	*x = ((uint64_t)1 << (n - 1)) | low;
	r->bit += hdr + n - 1;
	return 0;
}

#endif
