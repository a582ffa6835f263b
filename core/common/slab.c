/* slab.c - slots in regions of 32, two slot sizes (see slab.h). */
#include "slab.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define REGION_SLOTS 32
#define NCLASS 2

static const size_t class_slot[NCLASS] = {SLAB_SMALL, SLAB_SLOT};

typedef struct region {
	uint8_t *base;
	size_t slot; /* bytes per slot */
	unsigned nfree;
	uint32_t freemask; /* bit i: slot i is free */
	uint32_t touched;  /* bit i: slot i was used before or prefaulted (popped[i] > 0) */
	uint32_t popped[REGION_SLOTS]; /* bytes of slot i populated so far, whole pages */
	struct region *next;
} region;

typedef struct sclass {
	region *regions;
	size_t nregions;
} sclass;

struct slab {
	pthread_mutex_t mu;
	sclass cl[NCLASS];
};

static int class_of(size_t n)
{
	if (n < SLAB_MIN || n > SLAB_SLOT)
		return -1;
	return n <= SLAB_SMALL ? 0 : 1;
}

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
	munmap(r->base, REGION_SLOTS * r->slot);
	free(r);
}

void slab_free(slab *s)
{
	if (!s)
		return;
	for (int k = 0; k < NCLASS; k++)
		for (region *r = s->cl[k].regions, *n; r; r = n) {
			n = r->next;
			region_unmap(r);
		}
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static region *region_map(size_t slot)
{
	region *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	void *m = mmap(NULL, REGION_SLOTS * slot, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (m == MAP_FAILED) {
		free(r);
		return NULL;
	}
	r->base = m;
	r->slot = slot;
	r->nfree = REGION_SLOTS;
	r->freemask = UINT32_MAX;
	return r;
}

void *slab_alloc(slab *s, size_t n)
{
	int k = class_of(n);
	if (k < 0)
		return malloc(n ? n : 1);
	sclass *cl = &s->cl[k];
	pthread_mutex_lock(&s->mu);
	/* A free slot whose pages are already populated, else any free slot, else a new region. */
	region *r = cl->regions;
	while (r && !(r->freemask & r->touched))
		r = r->next;
	if (!r) {
		r = cl->regions;
		while (r && !r->nfree)
			r = r->next;
	}
	if (!r) {
		if (!(r = region_map(class_slot[k]))) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		r->next = cl->regions;
		cl->regions = r;
		cl->nregions++;
	}
	uint32_t warm = r->freemask & r->touched;
	unsigned i = (unsigned)__builtin_ctz(warm ? warm : r->freemask);
	r->freemask &= ~(1u << i);
	r->nfree--;
	r->touched |= 1u << i;
	/* Populate only what this buffer needs (a 100 KiB tail must not make a whole slot
	 * resident): the pages past popped[i], in one call. */
	size_t from = r->popped[i], to = (n + 4095) & ~(size_t)4095;
	if (to > from)
		r->popped[i] = (uint32_t)to;
	pthread_mutex_unlock(&s->mu);
	uint8_t *p = r->base + (size_t)i * r->slot;
	if (to > from) /* best effort: without it the caller's writes fault the pages in */
		(void)madvise(p + from, to - from, MADV_POPULATE_WRITE);
	return p;
}

static size_t mapped_locked(const slab *s)
{
	size_t m = 0;
	for (int k = 0; k < NCLASS; k++)
		m += s->cl[k].nregions * REGION_SLOTS * class_slot[k];
	return m;
}

/* Map and populate one region of class k, then publish it. 0 or -1 (ENOMEM). */
static int region_add_populated(slab *s, int k)
{
	region *r = region_map(class_slot[k]);
	if (!r)
		return -1;
	/* Populate before publishing: nobody else can see the region yet. */
	if (madvise(r->base, REGION_SLOTS * r->slot, MADV_POPULATE_WRITE) == 0) {
		r->touched = UINT32_MAX;
		for (unsigned i = 0; i < REGION_SLOTS; i++)
			r->popped[i] = (uint32_t)r->slot;
	}
	pthread_mutex_lock(&s->mu);
	sclass *cl = &s->cl[k];
	r->next = cl->regions;
	cl->regions = r;
	cl->nregions++;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void slab_prefault(slab *s, size_t bytes)
{
	for (;;) {
		pthread_mutex_lock(&s->mu);
		int enough = s->cl[0].nregions * REGION_SLOTS * class_slot[0] >= bytes;
		pthread_mutex_unlock(&s->mu);
		if (enough || region_add_populated(s, 0) < 0)
			return;
	}
}

void slab_release(slab *s, void *p, size_t n)
{
	if (!p)
		return;
	int k = class_of(n);
	if (k < 0) {
		free(p);
		return;
	}
	sclass *cl = &s->cl[k];
	region *dead = NULL;
	pthread_mutex_lock(&s->mu);
	for (region **pp = &cl->regions; *pp; pp = &(*pp)->next) {
		region *r = *pp;
		if ((uint8_t *)p < r->base || (uint8_t *)p >= r->base + REGION_SLOTS * r->slot)
			continue;
		unsigned i = (unsigned)(((uint8_t *)p - r->base) / r->slot);
		r->freemask |= 1u << i;
		r->nfree++;
		if (r->nfree == REGION_SLOTS) {
			/* keep one wholly free region spare per class; return any other */
			size_t spare = 0;
			for (region *q = cl->regions; q; q = q->next)
				spare += q != r && q->nfree == REGION_SLOTS;
			if (spare) {
				*pp = r->next;
				cl->nregions--;
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
	size_t n = mapped_locked(s);
	pthread_mutex_unlock(&s->mu);
	return n;
}
