/* codec.h - chunk codecs: turn one chunk (and optionally the aligned region of its base) into a
 * payload and back. Stateless apart from per-thread scratch in codec_ctx.
 *
 * A chunk is at most a few MiB. "Base" is the aligned bytes of the predecessor version: for tensor
 * chunks the same tensor's bytes at the same element offset (base_len == len); for other chunks
 * whatever region the aligner paired it with (any base_len, only the ZREF codec uses it).
 */
#ifndef TPDEFS_CODEC_H
#define TPDEFS_CODEC_H

#include <stddef.h>
#include <stdint.h>

enum codec_id {
	CODEC_RAW = 0,    /* payload = the bytes */
	CODEC_ZSTD = 1,   /* zstd of the bytes */
	CODEC_PLANES = 2, /* byte planes of width-wide elements, each plane raw or zstd; no base */
	CODEC_SPARSE = 3, /* TPDE: Elias-delta gaps of changed element positions + their residuals */
	CODEC_DSUB = 4,   /* dense residual: (new - base) as integers, zigzag, byte planes */
	CODEC_DXOR = 5,   /* dense residual: new ^ base, byte planes */
	CODEC_ZREF = 6,   /* zstd with the base region as prefix (like zstd --patch-from) */
	CODEC_DSUB2 = 7,  /* residual against 2*b1 - b2 (two predecessors); reserved, may be unused */
	CODEC_MAX = 8
};

/* Flags for codec_encode. */
#define CODEC_F_TENSOR 0x1u /* chunk is tensor payload with element width `width`: try planes/deltas */

typedef struct codec_ctx codec_ctx; /* per thread: zstd contexts and scratch buffers */

codec_ctx *codec_ctx_new(int zstd_level); /* NULL on ENOMEM */
void codec_ctx_free(codec_ctx *c);
/* Buffers for the caller's own use around codec calls (a chunk's payload, its base region),
 * kept with the context so that steady-state decoding neither allocates nor faults in pages.
 * Valid until the next call with the same `which`; NULL on ENOMEM. */
enum codec_scratch { CODEC_SCRATCH_PAYLOAD, CODEC_SCRATCH_BASE, CODEC_SCRATCH_N };
uint8_t *codec_ctx_scratch(codec_ctx *c, enum codec_scratch which, size_t n);

/* Worst-case payload size for a chunk of len bytes (any codec). */
size_t codec_bound(size_t len);

/* Encode len bytes of data. base may be NULL (base_len 0). width is the element width (1,2,4,8;
 * 1 for untyped). Picks the smallest payload among the codecs that apply, never larger than
 * len + small constant (CODEC_RAW is always a candidate). out has capacity codec_bound(len).
 * Returns 0 and sets *out_len, *codec; or -errno (ENOMEM, EINVAL). */
int codec_encode(codec_ctx *c, const uint8_t *data, size_t len, const uint8_t *base,
		 size_t base_len, unsigned width, unsigned flags, uint8_t *out, size_t *out_len,
		 uint8_t *codec);

/* Encode with one given codec (tools, benchmarks and tests; codec_encode picks by itself).
 * Same buffers as codec_encode. -EINVAL if the codec does not apply (CODEC_DSUB2; a delta codec
 * without base_len == len; bad width), -ENOSPC if its payload would exceed codec_bound(len). */
int codec_encode_as(codec_ctx *c, uint8_t codec, const uint8_t *data, size_t len,
		    const uint8_t *base, size_t base_len, unsigned width, uint8_t *out,
		    size_t *out_len);

/* Decode a payload into exactly len bytes at out. Needs the same base region that was given to
 * encode (NULL if the codec uses none). Malformed payloads return -EBADMSG, never crash or write
 * past out[len). The caller verifies the chunk checksum. */
int codec_decode(codec_ctx *c, uint8_t codec, const uint8_t *payload, size_t plen,
		 const uint8_t *base, size_t base_len, unsigned width, uint8_t *out, size_t len);

/* Whether this codec reads the base region. */
int codec_uses_base(uint8_t codec);
const char *codec_name(uint8_t codec); /* "raw", "zstd", ... or "?" */

/* A thread-safe stash of idle codec contexts (core/codec_stash.c): a worker takes one for a job
 * and gives it back, so contexts (zstd state, scratch) are reused across jobs and threads.
 * Take creates a context when none is idle (NULL on ENOMEM); give keeps at most `keep` idle
 * ones and frees the rest. */
typedef struct codec_stash codec_stash;

codec_stash *codec_stash_new(unsigned keep, int zstd_level); /* NULL on ENOMEM */
codec_ctx *codec_stash_take(codec_stash *s);
void codec_stash_give(codec_stash *s, codec_ctx *c);
void codec_stash_free(codec_stash *s); /* every taken context must have been given back */

#endif
