/* libFuzzer target for core/layout*.c: any bytes must parse without crashing into a layout that
 * honours the contract, and aligning it against itself must cover the input exactly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	io_src src;
	layout *l = NULL;
	io_src_from_mem(&src, data, size);
	if (layout_parse(&src, &l) != 0)
		return 0; /* only -ENOMEM is possible from memory */
	uint64_t end = 0;
	for (size_t i = 0; i < l->n; i++) {
		const layout_region *r = &l->r[i];
		if (r->off < end || r->len > size || r->off > size - r->len || !r->name ||
		    (r->width != 1 && r->width != 2 && r->width != 4 && r->width != 8))
			abort();
		end = r->off + r->len;
	}
	if (l->kind == LAYOUT_UNKNOWN && l->n != 0)
		abort();
	(void)layout_kind_name(l->kind);
	double m = layout_match(l, l);
	if (m < 0.0 || m > 1.0)
		abort();

	seg *s = NULL;
	size_t n = 0;
	/* Against itself, and against a base of a different size (offset pairing edge cases). */
	for (int pass = 0; pass < 2; pass++) {
		uint64_t bsize = pass ? size / 2 : size;
		if (layout_align(l, size, l, bsize, &s, &n) != 0)
			break;
		uint64_t pos = 0;
		for (size_t i = 0; i < n; i++) {
			if (s[i].off != pos || s[i].len == 0 || s[i].len > size - pos)
				abort();
			if (s[i].base_off != SEG_NO_BASE &&
			    (s[i].base_off > bsize || s[i].base_len > bsize - s[i].base_off))
				abort();
			if (s[i].tensor && s[i].base_off != SEG_NO_BASE && s[i].base_len != s[i].len)
				abort();
			pos += s[i].len;
		}
		if (pos != size)
			abort();
		free(s);
		s = NULL;
	}
	layout_free(l);
	return 0;
}
