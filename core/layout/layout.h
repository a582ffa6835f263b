/* layout.h - where the tensors are inside a checkpoint file, and how a new version lines up with
 * its predecessor.
 *
 * Parsers understand safetensors (8-byte LE header length, JSON header, raw tensors) and PyTorch
 * zip archives (.pt/.pth/.bin/.ckpt: stored members under <prefix>/data/, dtypes from data.pkl).
 * Anything else, or anything that lies (lengths past EOF, overlapping tensors, absurd shapes), is
 * LAYOUT_UNKNOWN: parsing hostile input never fails the caller, it only loses tensor awareness.
 */
#ifndef TPDEFS_LAYOUT_H
#define TPDEFS_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include "io.h"

enum layout_kind { LAYOUT_UNKNOWN = 0, LAYOUT_SAFETENSORS = 1, LAYOUT_TORCHZIP = 2 };

typedef struct layout_region {
	char *name;     /* tensor name (safetensors key) or zip member name; NUL-terminated, owned */
	uint64_t off;   /* byte offset in the file */
	uint64_t len;   /* byte length */
	uint8_t width;  /* element width in bytes: 1, 2, 4 or 8 (1 when unknown) */
} layout_region;

typedef struct layout {
	int kind;
	size_t n;
	layout_region *r; /* sorted by off, non-overlapping, all inside the file */
} layout;

/* Parse src. Returns 0 with *out set (kind LAYOUT_UNKNOWN and n = 0 when the format is not
 * recognised or is inconsistent), or -ENOMEM / -EIO. Reads only headers and directories, not
 * tensor payloads. */
int layout_parse(const io_src *src, layout **out);
void layout_free(layout *l);
const char *layout_kind_name(int kind);

/* Fraction (0..1) of the new file's tensor bytes that have a same-named, same-length tensor in
 * the base layout. 0 when either layout is unknown. Used to decide whether a candidate
 * predecessor really is an earlier version of the same thing. */
double layout_match(const layout *newl, const layout *basel);

#define SEG_NO_BASE UINT64_MAX

/* A segment is a run of the new file coded one way: tensor bytes aligned with the same tensor of
 * the base (base_len == len, width from the tensor), or other bytes (headers, pickles, unknown
 * formats) paired with a base region of any length for reference coding, or with no base. */
typedef struct seg {
	uint64_t off, len;
	uint64_t base_off; /* SEG_NO_BASE when nothing in the base lines up */
	uint64_t base_len;
	uint8_t width;     /* element width for tensor segments, 1 otherwise */
	uint8_t tensor;    /* 1 for tensor payload */
} seg;

/* Segments covering [0, new_size) exactly, in order, none empty. basel may be NULL (no base:
 * every segment has base_off = SEG_NO_BASE). Tensors align by name; files whose layouts are
 * unknown align by offset. Returns 0 or -ENOMEM. */
int layout_align(const layout *newl, uint64_t new_size, const layout *basel, uint64_t base_size,
		 seg **out, size_t *nseg);

#endif
