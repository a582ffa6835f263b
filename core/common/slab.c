/* slab.c - 1 MiB slots in 32 MiB regions (see slab.h). */
#include "slab.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define REGION_SLOTS 32
#define REGION_BYTES ((size_t)REGION_SLOTS * SLAB_SLOT)

typedef struct region {
	uint8_t *base;
	unsigned nfree;
	uint32_t freemask; /* bit i: slot i is free */
	uint32_t touched;  /* bit i: slot i was used before or prefaulted (popped[i] > 0) */
	uint32_t popped[REGION_SLOTS]; /* bytes of slot i populated so far, whole pages */
	struct region *next;
} region;

struct slab {
	pthread_mutex_t mu;
	region *regions;
	size_t nregions;
};

slab *slab_new(void)
{
	slab *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	if (pthread_mutex_init(&s->mu, NULL) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

static void region_unmap(region *r)
{
	munmap(r->base, REGION_BYTES);
	free(r);
}

void slab_free(slab *s)
{
	if (!s)
		return;
	for (region *r = s->regions, *n; r; r = n) {
		n = r->next;
		region_unmap(r);
	}
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static region *region_map(void)
{
	region *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	void *m = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		free(r);
		return NULL;
	}
	r->base = m;
	r->nfree = REGION_SLOTS;
	r->freemask = UINT32_MAX;
	return r;
}

void *slab_alloc(slab *s, size_t n)
{
	if (n < SLAB_MIN || n > SLAB_SLOT)
		return malloc(n ? n : 1);
	pthread_mutex_lock(&s->mu);
	/* A free slot whose pages are already populated, else any free slot, else a new region. */
	region *r = s->regions;
	while (r && !(r->freemask & r->touched))
		r = r->next;
	if (!r) {
		r = s->regions;
		while (r && !r->nfree)
			r = r->next;
	}
	if (!r) {
		if (!(r = region_map())) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		r->next = s->regions;
		s->regions = r;
		s->nregions++;
	}
	uint32_t warm = r->freemask & r->touched;
	unsigned i = (unsigned)__builtin_ctz(warm ? warm : r->freemask);
	r->freemask &= ~(1u << i);
	r->nfree--;
	r->touched |= 1u << i;
	/* Populate only what this buffer needs (a 300 KiB chunk must not make a whole slot
	 * resident): the pages past popped[i], in one call. */
	size_t from = r->popped[i], to = (n + 4095) & ~(size_t)4095;
	if (to > from)
		r->popped[i] = (uint32_t)to;
	pthread_mutex_unlock(&s->mu);
	uint8_t *p = r->base + (size_t)i * SLAB_SLOT;
	if (to > from) /* best effort: without it the caller's writes fault the pages in */
		(void)madvise(p + from, to - from, MADV_POPULATE_WRITE);
	return p;
}

void slab_prefault(slab *s, size_t bytes)
{
	for (;;) {
		pthread_mutex_lock(&s->mu);
		int enough = s->nregions * REGION_BYTES >= bytes;
		pthread_mutex_unlock(&s->mu);
		if (enough)
			return;
		region *r = region_map();
		if (!r)
			return;
		/* Populate before publishing: nobody else can see the region yet. */
		if (madvise(r->base, REGION_BYTES, MADV_POPULATE_WRITE) == 0) {
			r->touched = UINT32_MAX;
			for (unsigned i = 0; i < REGION_SLOTS; i++)
				r->popped[i] = SLAB_SLOT;
		}
		pthread_mutex_lock(&s->mu);
		r->next = s->regions;
		s->regions = r;
		s->nregions++;
		pthread_mutex_unlock(&s->mu);
	}
}

void slab_release(slab *s, void *p, size_t n)
{
	if (!p)
		return;
	if (n < SLAB_MIN || n > SLAB_SLOT) {
		free(p);
		return;
	}
	region *dead = NULL;
	pthread_mutex_lock(&s->mu);
	for (region **pp = &s->regions; *pp; pp = &(*pp)->next) {
		region *r = *pp;
		if ((uint8_t *)p < r->base || (uint8_t *)p >= r->base + REGION_BYTES)
			continue;
		unsigned i = (unsigned)(((uint8_t *)p - r->base) / SLAB_SLOT);
		r->freemask |= 1u << i;
		r->nfree++;
		if (r->nfree == REGION_SLOTS) {
			/* keep one wholly free region spare; return any other */
			size_t spare = 0;
			for (region *q = s->regions; q; q = q->next)
				spare += q != r && q->nfree == REGION_SLOTS;
			if (spare) {
				*pp = r->next;
				s->nregions--;
				dead = r;
			}
		}
		break;
	}
	pthread_mutex_unlock(&s->mu);
	if (dead)
		region_unmap(dead);
}

size_t slab_mapped(slab *s)
{
	pthread_mutex_lock(&s->mu);
	size_t n = s->nregions * REGION_BYTES;
	pthread_mutex_unlock(&s->mu);
	return n;
}
