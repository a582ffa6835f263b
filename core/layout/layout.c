/* layout.c - format detection, region bookkeeping and layout matching. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "layout_internal.h"

int layout_build_add(layout_build *b, const char *name, size_t namelen, uint64_t off,
		     uint64_t len, uint8_t width)
{
	if (b->n >= LAYOUT_MAX_REGIONS)
		return 1;
	if (b->n == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 16;
		layout_region *nr = realloc(b->r, ncap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		b->r = nr;
		b->cap = ncap;
	}
	char *s = malloc(namelen + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, name, namelen);
	s[namelen] = '\0';
	b->r[b->n].name = s;
	b->r[b->n].off = off;
	b->r[b->n].len = len;
	b->r[b->n].width = width;
	b->n++;
	return 0;
}

void layout_build_free(layout_build *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->r[i].name);
	free(b->r);
	b->r = NULL;
	b->n = b->cap = 0;
}

static int region_cmp(const void *a, const void *b)
{
	const layout_region *x = a, *y = b;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;
	return strcmp(*x, *y);
}

/* 1 when two regions share a name (embedded NULs in names can make distinct keys equal). Names
 * must be unique for alignment by name to mean anything. -ENOMEM on allocation failure. */
static int has_duplicate_names(const layout_build *b)
{
	if (b->n < 2)
		return 0;
	const char **v = malloc(b->n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < b->n; i++)
		v[i] = b->r[i].name;
	qsort(v, b->n, sizeof(*v), name_cmp);
	int dup = 0;
	for (size_t i = 1; i < b->n && !dup; i++)
		dup = strcmp(v[i - 1], v[i]) == 0;
	free(v);
	return dup;
}

int layout_build_finish(layout_build *b, uint64_t file_size)
{
	int dup = has_duplicate_names(b);
	if (dup != 0)
		return dup < 0 ? dup : 0;
	if (b->n > 1)
		qsort(b->r, b->n, sizeof(*b->r), region_cmp);
	uint64_t end = 0;
	for (size_t i = 0; i < b->n; i++) {
		const layout_region *r = &b->r[i];
		if (r->off > file_size || r->len > file_size - r->off)
			return 0;
		if (r->off < end)
			return 0;
		if (r->width != 1 && r->width != 2 && r->width != 4 && r->width != 8)
			return 0;
		end = r->off + r->len;
	}
	return 1;
}

int layout_parse(const io_src *src, layout **out)
{
	*out = NULL;
	layout *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->kind = LAYOUT_UNKNOWN;

	static int (*const parsers[])(const io_src *, layout_build *) = {
		layout_parse_safetensors, layout_parse_torchzip,
	};
	static const int kinds[] = { LAYOUT_SAFETENSORS, LAYOUT_TORCHZIP };
	for (size_t i = 0; i < sizeof(parsers) / sizeof(parsers[0]); i++) {
		layout_build b = { 0 };
		int rc = parsers[i](src, &b);
		if (rc < 0) {
			layout_build_free(&b);
			free(l);
			return rc;
		}
		if (rc == 1) {
			l->kind = kinds[i];
			l->n = b.n;
			l->r = b.r;
			break;
		}
		layout_build_free(&b);
	}
	*out = l;
	return 0;
}

void layout_free(layout *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->r[i].name);
	free(l->r);
	free(l);
}

const char *layout_kind_name(int kind)
{
	switch (kind) {
	case LAYOUT_SAFETENSORS:
		return "safetensors";
	case LAYOUT_TORCHZIP:
		return "torchzip";
	default:
		return "unknown";
	}
}
