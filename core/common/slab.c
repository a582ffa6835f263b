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
	region *r = s->regions;
	while (r && !r->nfree)
		r = r->next;
	if (!r) {
		if (!(r = region_map())) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		r->next = s->regions;
		s->regions = r;
		s->nregions++;
	}
	unsigned i = (unsigned)__builtin_ctz(r->freemask);
	r->freemask &= ~(1u << i);
	r->nfree--;
	pthread_mutex_unlock(&s->mu);
	return r->base + (size_t)i * SLAB_SLOT;
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
