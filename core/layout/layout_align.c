/* layout_align.c - line up a new file's layout with its predecessor's.
 *
 * Tensors pair by name (and length); the bytes between tensors (headers, pickles, zip
 * directories) pair with the bytes before the same-named tensor in the base, so that a reference
 * coder sees similar text. Unknown formats fall back to pairing equal offsets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"

/* Name index over a layout: region indices sorted by name, for binary search. */
typedef struct name_index {
	const layout *l;
	size_t *idx;
	size_t n;
} name_index;

static int name_index_build(name_index *ni, const layout *l)
{
	ni->l = l;
	ni->idx = NULL;
	ni->n = 0;
	if (!l || l->n == 0 || !l->r)
		return 0;
	ni->idx = malloc(l->n * sizeof(*ni->idx));
	if (!ni->idx)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++)
		if (l->r[i].name)
			ni->idx[k++] = i;
	ni->n = k;
	/* Insertion sort would be quadratic on big layouts; a merge sort keeps it deterministic
	 * without a global comparison context (qsort cannot carry l). */
	size_t *tmp = malloc((k ? k : 1) * sizeof(*tmp));
	if (!tmp) {
		free(ni->idx);
		ni->idx = NULL;
		return -ENOMEM;
	}
	for (size_t w = 1; w < k; w *= 2) {
		for (size_t lo = 0; lo < k; lo += 2 * w) {
			size_t mid = lo + w < k ? lo + w : k;
			size_t hi = lo + 2 * w < k ? lo + 2 * w : k;
			size_t a = lo, b = mid, o = lo;
			while (a < mid && b < hi) {
				/* <= keeps equal names in region order: first wins on lookup. */
				if (strcmp(l->r[ni->idx[a]].name, l->r[ni->idx[b]].name) <= 0)
					tmp[o++] = ni->idx[a++];
				else
					tmp[o++] = ni->idx[b++];
			}
			while (a < mid)
				tmp[o++] = ni->idx[a++];
			while (b < hi)
				tmp[o++] = ni->idx[b++];
		}
		memcpy(ni->idx, tmp, k * sizeof(*tmp));
	}
	free(tmp);
	return 0;
}

/* Region index of the first region called name, or SIZE_MAX. */
static size_t name_index_find(const name_index *ni, const char *name)
{
	size_t lo = 0, hi = ni->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(ni->l->r[ni->idx[mid]].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ni->n && strcmp(ni->l->r[ni->idx[lo]].name, name) == 0)
		return ni->idx[lo];
	return SIZE_MAX;
}

static void name_index_free(name_index *ni)
{
	free(ni->idx);
	ni->idx = NULL;
}

static int layout_known(const layout *l)
{
	return l && l->kind != LAYOUT_UNKNOWN && (l->n == 0 || l->r);
}

double layout_match(const layout *newl, const layout *basel)
{
	if (!layout_known(newl) || !layout_known(basel))
		return 0.0;
	name_index ni;
	if (name_index_build(&ni, basel) < 0)
		return 0.0;
	/* Doubles: hostile layouts may carry lengths whose sum overflows 64 bits. */
	double total = 0, hit = 0;
	for (size_t i = 0; i < newl->n; i++) {
		const layout_region *r = &newl->r[i];
		total += (double)r->len;
		if (!r->name)
			continue;
		size_t j = name_index_find(&ni, r->name);
		if (j != SIZE_MAX && basel->r[j].len == r->len)
			hit += (double)r->len;
	}
	name_index_free(&ni);
	if (total <= 0 || hit <= 0)
		return 0.0;
	return hit >= total ? 1.0 : hit / total;
}

typedef struct seg_list {
	seg *s;
	size_t n, cap;
} seg_list;

static int seg_push(seg_list *sl, uint64_t off, uint64_t len, uint64_t base_off, uint64_t base_len,
		    uint8_t width, uint8_t tensor)
{
	if (len == 0)
		return 0;
	if (base_off == SEG_NO_BASE || base_len == 0) {
		base_off = SEG_NO_BASE;
		base_len = 0;
	}
	if (sl->n == sl->cap) {
		size_t ncap = sl->cap ? sl->cap * 2 : 16;
		seg *ns = realloc(sl->s, ncap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		sl->s = ns;
		sl->cap = ncap;
	}
	sl->s[sl->n++] = (seg){ .off = off, .len = len, .base_off = base_off,
				.base_len = base_len, .width = width, .tensor = tensor };
	return 0;
}

/* Offset alignment: equal offsets pair up, the rest has no base. */
static int align_by_offset(seg_list *sl, uint64_t new_size, int have_base, uint64_t base_size)
{
	uint64_t common = have_base ? (new_size < base_size ? new_size : base_size) : 0;
	int rc = seg_push(sl, 0, common, 0, common, 1, 0);
	if (rc == 0)
		rc = seg_push(sl, common, new_size - common, SEG_NO_BASE, 0, 1, 0);
	return rc;
}

static int width_ok(uint8_t w)
{
	return w == 1 || w == 2 || w == 4 || w == 8;
}

/* Where the gap before base region j starts: the end of the region before it (regions are
 * sorted). A malformed base (overlap, out of range) yields an empty gap rather than an
 * inverted range. */
static uint64_t base_gap_start(const layout *b, size_t j, uint64_t base_size)
{
	uint64_t off = b->r[j].off;
	if (off > base_size)
		return base_size;
	if (j == 0)
		return 0;
	const layout_region *p = &b->r[j - 1];
	if (p->off <= off && p->len <= off - p->off)
		return p->off + p->len;
	return off;
}

int layout_align(const layout *newl, uint64_t new_size, const layout *basel, uint64_t base_size,
		 seg **out, size_t *nseg)
{
	seg_list sl = { 0 };
	int rc = 0;
	*out = NULL;
	*nseg = 0;

	if (!layout_known(newl) || (basel && !layout_known(basel))) {
		rc = align_by_offset(&sl, new_size, basel != NULL, base_size);
		goto done;
	}

	name_index ni = { 0 };
	rc = name_index_build(&ni, basel);
	if (rc < 0)
		goto done;

	/* End of the last region in the base that lies inside it: start of its trailing gap. */
	uint64_t base_tail = 0;
	if (basel) {
		for (size_t j = 0; j < basel->n; j++) {
			const layout_region *b = &basel->r[j];
			if (b->off <= base_size && b->len <= base_size - b->off &&
			    b->off + b->len > base_tail)
				base_tail = b->off + b->len;
		}
	}

	uint64_t pos = 0;
	for (size_t i = 0; i < newl->n && rc == 0; i++) {
		const layout_region *r = &newl->r[i];
		/* Regions out of order, overlapping or past the end are ignored (their bytes fall
		 * into a gap): alignment must cover the file whatever the layout says. */
		if (r->len == 0 || r->off < pos || r->off > new_size || r->len > new_size - r->off)
			continue;
		size_t j = (basel && r->name) ? name_index_find(&ni, r->name) : SIZE_MAX;
		const layout_region *b = j != SIZE_MAX ? &basel->r[j] : NULL;
		if (b && (b->off > base_size || b->len > base_size - b->off))
			b = NULL; /* base region outside the base: do not trust it */

		if (r->off > pos) {
			uint64_t boff = SEG_NO_BASE, blen = 0;
			if (b) {
				boff = base_gap_start(basel, j, base_size);
				blen = b->off - boff;
			}
			rc = seg_push(&sl, pos, r->off - pos, boff, blen, 1, 0);
			if (rc < 0)
				break;
		}
		uint8_t w = width_ok(r->width) ? r->width : 1;
		if (b && b->len == r->len)
			rc = seg_push(&sl, r->off, r->len, b->off, b->len, w, 1);
		else
			rc = seg_push(&sl, r->off, r->len, SEG_NO_BASE, 0, w, 1);
		pos = r->off + r->len;
	}
	if (rc == 0 && pos < new_size) {
		if (basel && base_tail < base_size)
			rc = seg_push(&sl, pos, new_size - pos, base_tail, base_size - base_tail, 1, 0);
		else
			rc = seg_push(&sl, pos, new_size - pos, SEG_NO_BASE, 0, 1, 0);
	}
	name_index_free(&ni);

done:
	if (rc < 0) {
		free(sl.s);
		return rc;
	}
	*out = sl.s;
	*nseg = sl.n;
	return 0;
}
