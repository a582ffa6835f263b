/* Unit tests for core/slab.c: slot sizes, no overlap, reuse of released slots, regions. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"

Test(slab, sizes_outside_the_slot_range_use_malloc_and_round_trip)
{
	slab *s = slab_new();
	cr_assert_not_null(s);
	size_t sizes[] = {0, 1, 4096, SLAB_MIN - 1, SLAB_SLOT + 1, 3 * SLAB_SLOT};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		uint8_t *p = slab_alloc(s, sizes[i]);
		cr_assert_not_null(p);
		memset(p, 0xa5, sizes[i]);
		slab_release(s, p, sizes[i]);
	}
	slab_free(s);
}

/* 100 live slots (more than three regions): distinct, non-overlapping, each keeps its bytes. */
Test(slab, live_slots_never_overlap)
{
	enum { N = 100 };
	slab *s = slab_new();
	uint8_t *p[N];
	for (int i = 0; i < N; i++) {
		size_t n = i % 2 ? SLAB_SLOT : SLAB_MIN + (size_t)i;
		p[i] = slab_alloc(s, n);
		cr_assert_not_null(p[i]);
		memset(p[i], i, n);
	}
	for (int i = 0; i < N; i++) {
		size_t n = i % 2 ? SLAB_SLOT : SLAB_MIN + (size_t)i;
		for (size_t k = 0; k < n; k += 4093)
			cr_assert_eq(p[i][k], (uint8_t)i, "slot %d byte %zu overwritten", i, k);
		cr_assert_eq(p[i][n - 1], (uint8_t)i);
		for (int j = 0; j < i; j++) {
			uintptr_t a = (uintptr_t)p[i], b = (uintptr_t)p[j];
			size_t na = i % 2 ? SLAB_SLOT : SLAB_MIN + (size_t)i;
			size_t nb = j % 2 ? SLAB_SLOT : SLAB_MIN + (size_t)j;
			cr_assert(a + na <= b || b + nb <= a, "slots %d and %d overlap", i, j);
		}
	}
	for (int i = 0; i < N; i++)
		slab_release(s, p[i], i % 2 ? SLAB_SLOT : SLAB_MIN + (size_t)i);
	slab_free(s);
}

/* A released slot is the next one handed out: memory is reused, not faulted in afresh. */
Test(slab, released_slot_is_reused)
{
	slab *s = slab_new();
	void *a = slab_alloc(s, SLAB_SLOT);
	void *b = slab_alloc(s, SLAB_SLOT);
	cr_assert(a && b && a != b);
	slab_release(s, a, SLAB_SLOT);
	void *c = slab_alloc(s, SLAB_SLOT);
	cr_assert_eq(c, a);
	slab_release(s, b, SLAB_SLOT);
	slab_release(s, c, SLAB_SLOT);
	slab_free(s);
}

/* Prefaulted regions serve the next allocations: nothing more is mapped until they are used up,
 * and a second prefault of a smaller size maps nothing. */
Test(slab, prefault_maps_what_it_is_asked_and_serves_from_it)
{
	slab *s = slab_new();
	cr_assert_eq(slab_mapped(s), 0);
	slab_prefault(s, 40u << 20);
	size_t m = slab_mapped(s);
	cr_assert_geq(m, 40u << 20);
	cr_assert_lt(m, (40u << 20) + (64u << 20), "prefault mapped %zu bytes", m);
	slab_prefault(s, 10u << 20);
	cr_assert_eq(slab_mapped(s), m);
	size_t nslots = m / SLAB_SMALL;
	uint8_t **p = calloc(nslots, sizeof *p);
	cr_assert_not_null(p);
	for (size_t i = 0; i < nslots; i++) {
		p[i] = slab_alloc(s, SLAB_SMALL);
		cr_assert_not_null(p[i]);
		memset(p[i], (int)i, SLAB_SMALL);
	}
	cr_assert_eq(slab_mapped(s), m, "allocations within the prefaulted slots mapped more");
	for (size_t i = 0; i < nslots; i++) {
		cr_assert_eq(p[i][SLAB_SMALL - 1], (uint8_t)i);
		slab_release(s, p[i], SLAB_SMALL);
	}
	free(p);
	slab_free(s);
}

/* A slot first used for a small buffer and then for a full one holds the full size. */
Test(slab, partly_populated_slot_grows)
{
	slab *s = slab_new();
	uint8_t *a = slab_alloc(s, SLAB_MIN);
	cr_assert_not_null(a);
	memset(a, 1, SLAB_MIN);
	slab_release(s, a, SLAB_MIN);
	uint8_t *b = slab_alloc(s, SLAB_SMALL);
	cr_assert_eq(b, a);
	memset(b, 2, SLAB_SMALL);
	cr_assert_eq(b[SLAB_SMALL - 1], 2);
	slab_release(s, b, SLAB_SMALL);
	/* the large class: same rule */
	a = slab_alloc(s, SLAB_SMALL + 1);
	cr_assert_not_null(a);
	memset(a, 1, SLAB_SMALL + 1);
	slab_release(s, a, SLAB_SMALL + 1);
	b = slab_alloc(s, SLAB_SLOT);
	cr_assert_eq(b, a);
	memset(b, 2, SLAB_SLOT);
	cr_assert_eq(b[SLAB_SLOT - 1], 2);
	slab_release(s, b, SLAB_SLOT);
	slab_free(s);
}
