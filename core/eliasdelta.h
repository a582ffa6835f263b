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
void ed_put_bits(ed_writer *w, uint64_t v, unsigned n);
/* Append the Elias-delta code of x. -EINVAL for x == 0 (nothing written). */
int ed_put(ed_writer *w, uint64_t x);
/* Flush the partial byte (zero padded). Returns 0 and the byte length, or -ENOSPC if any write
 * did not fit into cap. */
int ed_writer_finish(ed_writer *w, size_t *out_len);
/* Length in bits of the Elias-delta code of x (x >= 1). */
unsigned ed_code_bits(uint64_t x);

void ed_reader_init(ed_reader *r, const uint8_t *buf, size_t len);
/* Read n bits (n <= 64). -EBADMSG if fewer than n bits remain. */
int ed_get_bits(ed_reader *r, unsigned n, uint64_t *v);
/* Decode one Elias-delta value into *x (>= 1). -EBADMSG on truncation or a malformed code
 * (length prefix over 64 bits). The reader does not advance on error. */
int ed_get(ed_reader *r, uint64_t *x);
/* Bits not yet consumed. */
uint64_t ed_reader_left(const ed_reader *r);

#endif
