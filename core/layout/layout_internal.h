/* layout_internal.h - shared between the layout parsers (not part of the public contract). */
#ifndef TPDEFS_LAYOUT_INTERNAL_H
#define TPDEFS_LAYOUT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "io.h"
#include "layout.h"

/* Caps that keep hostile inputs from making us allocate or loop without bound. */
#define LAYOUT_MAX_REGIONS  (1u << 20)
#define LAYOUT_MAX_HEADER   (100ull << 20) /* safetensors JSON header */

/* Growable region list used while parsing. */
typedef struct layout_build {
	layout_region *r;
	size_t n, cap;
} layout_build;

/* Append a region (name copied, namelen bytes). 0, -ENOMEM, or 1 when the cap is exceeded
 * (caller treats the file as unknown). */
int layout_build_add(layout_build *b, const char *name, size_t namelen, uint64_t off,
		     uint64_t len, uint8_t width);
void layout_build_free(layout_build *b);
/* Sort by offset; check bounds, non-overlap, widths and unique names. 1 if consistent, 0 if
 * not, -ENOMEM. */
int layout_build_finish(layout_build *b, uint64_t file_size);

/* Parsers: 1 = recognised (b filled, validated), 0 = not this format or inconsistent,
 * negative errno = -ENOMEM / -EIO. On 0 or error the caller frees b. */
int layout_parse_safetensors(const io_src *src, layout_build *b);
int layout_parse_torchzip(const io_src *src, layout_build *b);

#endif
