/* encoder.h - encode a whole file, against an optional predecessor, into an object file.
 * Streaming: memory is bounded by chunk_size x threads x a small constant, never the file size. */
#ifndef TPDEFS_ENCODER_H
#define TPDEFS_ENCODER_H

#include <stdint.h>
#include "codec.h"
#include "io.h"
#include "layout.h"

#define ENC_DEFAULT_CHUNK (256u << 10)

typedef struct enc_opts {
	uint32_t chunk_size; /* 0: ENC_DEFAULT_CHUNK */
	int zstd_level;      /* 0: default */
	unsigned threads;    /* 0: one per online CPU */
	/* Layouts the caller parsed already (borrowed, never freed here), so that a file taken in
	 * once is parsed once: NULL means parse it here. */
	const layout *new_layout, *base_layout;
	/* > 0: record in the object that its input was thresholded (the CLI's opt-in lossy mode;
	 * the encoding itself stays exact for the bytes it is given). */
	float lossy_threshold;
} enc_opts;

typedef struct enc_stats {
	uint64_t in_bytes, out_bytes;
	uint64_t chunks[CODEC_MAX];      /* chunks coded with each codec */
	uint64_t bytes_in[CODEC_MAX];    /* decoded bytes coded with each codec */
	uint64_t bytes_out[CODEC_MAX];   /* payload bytes of each codec */
	int layout_kind;                 /* enum layout_kind of the new file */
	double layout_match;             /* layout_match(new, base), 0 without base */
	uint64_t content_hash;
} enc_stats;

/* Encode newf into out_fd (an empty file, written from offset 0). With base != NULL, chunks are
 * coded against it and base_hash (its content hash) is recorded so that a decoder can refuse a
 * wrong base. Does not fsync. st may be NULL. 0 or -errno. */
int enc_encode(const enc_opts *o, const io_src *newf, const io_src *base, uint64_t base_hash,
	       int out_fd, enc_stats *st);

/* Content hash of a whole source (cksum64 streaming), as recorded in objects. */
int enc_content_hash(const io_src *s, uint64_t *hash);

#endif
