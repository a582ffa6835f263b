/* eliasdelta.c - MSB-first bit I/O and Elias-delta codes (see eliasdelta.h). */
#include "eliasdelta.h"

#include <errno.h>
#include <string.h>

void ed_writer_init(ed_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->pos = 0;
	w->acc = 0;
	w->nbits = 0;
	w->overflow = 0;
}

void ed_flush32_(ed_writer *w)
{
	uint32_t word = (uint32_t)(w->acc >> (w->nbits - 32));
	w->nbits -= 32;
	if (w->pos > w->cap || w->cap - w->pos < 4) {
		w->overflow = 1;
		return;
	}
	uint8_t *p = w->buf + w->pos;
	p[0] = (uint8_t)(word >> 24);
	p[1] = (uint8_t)(word >> 16);
	p[2] = (uint8_t)(word >> 8);
	p[3] = (uint8_t)word;
	w->pos += 4;
}

int ed_writer_finish(ed_writer *w, size_t *out_len)
{
	while (w->nbits > 0) {
		unsigned take = w->nbits >= 8 ? 8 : w->nbits;
		uint8_t byte = (uint8_t)((w->acc >> (w->nbits - take)) << (8 - take));
		w->nbits -= take;
		if (w->pos >= w->cap) {
			w->overflow = 1;
			break;
		}
		w->buf[w->pos++] = byte;
	}
	w->nbits = 0;
	if (w->overflow)
		return -ENOSPC;
	*out_len = w->pos;
	return 0;
}

void ed_reader_init(ed_reader *r, const uint8_t *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->bit = 0;
}

/* 64 bits starting at bit position `bit`, zero past the end; valid for the first 57 bits at
 * least. Callers check lengths against ed_reader_left separately. */
static inline uint64_t peek(const ed_reader *r, uint64_t bit)
{
	size_t byte = (size_t)(bit >> 3);
	uint64_t v = 0;
	if (byte + 8 <= r->len) {
		memcpy(&v, r->buf + byte, 8);
		v = __builtin_bswap64(v);
	} else {
		for (unsigned i = 0; i < 8; i++)
			v = (v << 8) | (byte + i < r->len ? r->buf[byte + i] : 0);
	}
	return v << (bit & 7);
}

int ed_get_bits(ed_reader *r, unsigned n, uint64_t *v)
{
	if (n > 64 || n > ed_reader_left(r))
		return -EBADMSG;
	uint64_t out = 0;
	uint64_t bit = r->bit;
	unsigned left = n;
	while (left) {
		unsigned take = left > 32 ? 32 : left;
		out = (out << take) | (peek(r, bit) >> (64 - take));
		bit += take;
		left -= take;
	}
	r->bit = bit;
	*v = out;
	return 0;
}

int ed_get_slow_(ed_reader *r, uint64_t *x)
{
	uint64_t left = ed_reader_left(r);
	uint64_t win = peek(r, r->bit);
	if (win == 0)
		return -EBADMSG; /* no terminating 1 within 64 bits: malformed or truncated */
	unsigned l = (unsigned)__builtin_clzll(win);
	if (l > 6)
		return -EBADMSG; /* N would exceed 64 */
	unsigned hdr = 2 * l + 1;
	uint64_t n = win >> (64 - hdr); /* top bit is the 1 that ended the zero run */
	if (n > 64)
		return -EBADMSG;
	if ((uint64_t)hdr + (n - 1) > left)
		return -EBADMSG;
	ed_reader tmp = *r;
	tmp.bit += hdr;
	uint64_t low = 0;
	if (n > 1 && ed_get_bits(&tmp, (unsigned)n - 1, &low))
		return -EBADMSG;
	*x = ((uint64_t)1 << (n - 1)) | low;
	r->bit = tmp.bit;
	return 0;
}
