/* cache.c - LRU of decoded chunks with a byte budget.
 *
 * One mutex guards the table, the two idle lists and the byte count; it is never held while a
 * loader runs. An entry is in one of three states: LOADING (its first requester runs the loader,
 * later requesters pin it and wait on the entry's own condition variable), READY, or FAILED
 * (removed from the table; waiters get the error, the last reference frees it). Only READY
 * entries with no references sit on an idle list, so eviction never has to skip pinned entries.
 * Idle entries are on the spent list (released spent by every holder since they were last idle:
 * evicted first, least recently released first) or on the LRU list (warm releases at the front,
 * cold ones at the back). Bytes are counted from the moment a load starts, so loads in flight
 * count against the budget too; the budget is exceeded only while pinned (or loading) bytes
 * alone exceed it.
 */
#include "cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "slab.h"

enum { ST_LOADING, ST_READY, ST_FAILED };
/* How an entry was released, weakest first: the strongest release since it was last idle picks
 * its idle list (spent list; back of the LRU; front of the LRU). */
enum use { USE_SPENT, USE_COLD, USE_WARM };

struct cache_entry {
	uint64_t obj, idx;
	size_t len;
	uint8_t *data;
	unsigned refs;
	int state;
	int err;         /* loader result when FAILED */
	int in_table;    /* 0 once dropped or failed: freed by the last cache_put */
	int use;         /* the strongest release since the entry was last idle (enum use) */
	pthread_cond_t done; /* signalled when LOADING ends */
	cache_entry *hnext;  /* hash chain */
	cache_entry *prev, *next; /* LRU list (only READY, refs == 0, in_table) */
};

struct cache {
	pthread_mutex_t mu;
	size_t budget;
	size_t bytes;   /* data bytes of every live entry (table, loading, dropped-but-pinned) */
	cache_entry **tab;
	size_t nbuckets; /* power of two */
	size_t count;    /* entries in the table */
	cache_entry lru; /* sentinel: lru.next is most recent, lru.prev least recent */
	cache_entry spent; /* sentinel, same order: spent idle entries, the first to evict */
	slab *mem;       /* entries' data */
};

static size_t key_hash(uint64_t obj, uint64_t idx)
{
	/* splitmix64 finalizer over both halves: ids and indexes are small and sequential */
	uint64_t x = obj * 0x9e3779b97f4a7c15ull ^ (idx + 0x632be59bd9b4e019ull);
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (size_t)x;
}

cache *cache_new(size_t budget_bytes)
{
	cache *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->nbuckets = 64;
	c->tab = calloc(c->nbuckets, sizeof *c->tab);
	c->mem = slab_new();
	if (!c->tab || !c->mem || pthread_mutex_init(&c->mu, NULL) != 0) {
		slab_free(c->mem);
		free(c->tab);
		free(c);
		return NULL;
	}
	c->budget = budget_bytes;
	c->lru.next = c->lru.prev = &c->lru;
	c->spent.next = c->spent.prev = &c->spent;
	return c;
}

static void entry_free(cache *c, cache_entry *e)
{
	pthread_cond_destroy(&e->done);
	slab_release(c->mem, e->data, e->len);
	free(e);
}

void cache_free(cache *c)
{
	if (!c)
		return;
	for (size_t b = 0; b < c->nbuckets; b++) {
		cache_entry *e = c->tab[b];
		while (e) {
			cache_entry *n = e->hnext;
			entry_free(c, e);
			e = n;
		}
	}
	free(c->tab);
	slab_free(c->mem);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static void lru_unlink(cache_entry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = NULL;
}

static void list_push_front(cache_entry *head, cache_entry *e)
{
	e->next = head->next;
	e->prev = head;
	head->next->prev = e;
	head->next = e;
}

static cache_entry *table_find(cache *c, uint64_t obj, uint64_t idx)
{
	for (cache_entry *e = c->tab[key_hash(obj, idx) & (c->nbuckets - 1)]; e; e = e->hnext)
		if (e->obj == obj && e->idx == idx)
			return e;
	return NULL;
}

static void table_remove(cache *c, cache_entry *e)
{
	cache_entry **pp = &c->tab[key_hash(e->obj, e->idx) & (c->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	e->in_table = 0;
	c->count--;
}

/* Double the table when it gets crowded; on ENOMEM keep the old one (longer chains, still right). */
static void table_grow(cache *c)
{
	size_t nb = c->nbuckets * 2;
	cache_entry **t = calloc(nb, sizeof *t);
	if (!t)
		return;
	for (size_t b = 0; b < c->nbuckets; b++) {
		cache_entry *e = c->tab[b];
		while (e) {
			cache_entry *n = e->hnext;
			size_t h = key_hash(e->obj, e->idx) & (nb - 1);
			e->hnext = t[h];
			t[h] = e;
			e = n;
		}
	}
	free(c->tab);
	c->tab = t;
	c->nbuckets = nb;
}

static void table_insert(cache *c, cache_entry *e)
{
	if (c->count >= c->nbuckets)
		table_grow(c);
	size_t h = key_hash(e->obj, e->idx) & (c->nbuckets - 1);
	e->hnext = c->tab[h];
	c->tab[h] = e;
	e->in_table = 1;
	c->count++;
}

/* Unlink least recently used entries until the budget holds; returns them chained by hnext so
 * that the caller frees them after unlocking. */
static cache_entry *evict_locked(cache *c)
{
	cache_entry *victims = NULL;
	while (c->bytes > c->budget && (c->spent.prev != &c->spent || c->lru.prev != &c->lru)) {
		cache_entry *e = c->spent.prev != &c->spent ? c->spent.prev : c->lru.prev;
		lru_unlink(e);
		table_remove(c, e);
		c->bytes -= e->len;
		e->hnext = victims;
		victims = e;
	}
	return victims;
}

static void free_list(cache *c, cache_entry *e)
{
	while (e) {
		cache_entry *n = e->hnext;
		entry_free(c, e);
		e = n;
	}
}

/* Pin e (under the lock): take it off the LRU list if it was idle. */
static void pin_locked(cache_entry *e)
{
	if (e->refs++ == 0 && e->prev)
		lru_unlink(e);
}

static void lru_push_back(cache *c, cache_entry *e)
{
	e->prev = c->lru.prev;
	e->next = &c->lru;
	c->lru.prev->next = e;
	c->lru.prev = e;
}

/* Drop one reference (under the lock); returns e if it must now be freed by the caller. The
 * strongest release since the entry was last idle places it (see enum use). */
static cache_entry *unpin_locked_as(cache *c, cache_entry *e, int use)
{
	if (use > e->use)
		e->use = use;
	if (--e->refs > 0)
		return NULL;
	if (!e->in_table) {
		/* dropped or failed: nobody can find it any more */
		if (e->state != ST_FAILED)
			c->bytes -= e->len;
		return e;
	}
	if (e->use == USE_WARM)
		list_push_front(&c->lru, e);
	else if (e->use == USE_COLD)
		lru_push_back(c, e);
	else
		list_push_front(&c->spent, e);
	e->use = USE_SPENT;
	return NULL;
}

static cache_entry *unpin_locked(cache *c, cache_entry *e)
{
	return unpin_locked_as(c, e, USE_WARM);
}

int cache_get(cache *c, uint64_t obj, uint64_t idx, size_t len, cache_load_fn load, void *ctx,
	      cache_entry **out)
{
	*out = NULL;
	pthread_mutex_lock(&c->mu);
	cache_entry *e = table_find(c, obj, idx);
	if (e) {
		pin_locked(e);
		while (e->state == ST_LOADING)
			pthread_cond_wait(&e->done, &c->mu);
		if (e->state == ST_READY) {
			pthread_mutex_unlock(&c->mu);
			*out = e;
			return 0;
		}
		int err = e->err;
		cache_entry *dead = unpin_locked(c, e);
		pthread_mutex_unlock(&c->mu);
		if (dead)
			entry_free(c, dead);
		return err;
	}

	/* Miss: publish a LOADING entry so that concurrent requests wait for this one load. */
	e = calloc(1, sizeof *e);
	if (!e || pthread_cond_init(&e->done, NULL) != 0) {
		pthread_mutex_unlock(&c->mu);
		free(e);
		return -ENOMEM;
	}
	e->obj = obj;
	e->idx = idx;
	e->len = len;
	e->refs = 1;
	e->state = ST_LOADING;
	table_insert(c, e);
	c->bytes += len;
	cache_entry *victims = evict_locked(c);
	pthread_mutex_unlock(&c->mu);
	free_list(c, victims);

	int err = 0;
	e->data = slab_alloc(c->mem, len);
	if (!e->data)
		err = -ENOMEM;
	else
		err = load(ctx, obj, idx, e->data, len);
	if (err > 0)
		err = -EIO; /* a loader must return 0 or -errno; never treat anything else as data */

	pthread_mutex_lock(&c->mu);
	if (err == 0) {
		e->state = ST_READY;
		pthread_cond_broadcast(&e->done);
		pthread_mutex_unlock(&c->mu);
		*out = e;
		return 0;
	}
	/* Failed loads are not cached: unpublish, wake waiters with the error. */
	e->state = ST_FAILED;
	e->err = err;
	if (e->in_table)
		table_remove(c, e);
	c->bytes -= len;
	pthread_cond_broadcast(&e->done);
	cache_entry *dead = unpin_locked(c, e);
	pthread_mutex_unlock(&c->mu);
	if (dead)
		entry_free(c, dead);
	return err;
}

cache_entry *cache_peek(cache *c, uint64_t obj, uint64_t idx)
{
	pthread_mutex_lock(&c->mu);
	cache_entry *e = table_find(c, obj, idx);
	if (e && e->state == ST_READY)
		pin_locked(e);
	else
		e = NULL;
	pthread_mutex_unlock(&c->mu);
	return e;
}

const uint8_t *cache_entry_data(const cache_entry *e)
{
	return e->data;
}

size_t cache_entry_len(const cache_entry *e)
{
	return e->len;
}

static void put_as(cache *c, cache_entry *e, int cold)
{
	if (!e)
		return;
	pthread_mutex_lock(&c->mu);
	cache_entry *dead = unpin_locked_as(c, e, cold);
	cache_entry *victims = evict_locked(c);
	pthread_mutex_unlock(&c->mu);
	if (dead)
		entry_free(c, dead);
	free_list(c, victims);
}

void cache_put(cache *c, cache_entry *e)
{
	put_as(c, e, USE_WARM);
}

void cache_put_cold(cache *c, cache_entry *e)
{
	put_as(c, e, USE_COLD);
}

void cache_put_spent(cache *c, cache_entry *e)
{
	put_as(c, e, USE_SPENT);
}

void cache_drop_obj(cache *c, uint64_t obj)
{
	cache_entry *victims = NULL;
	pthread_mutex_lock(&c->mu);
	for (size_t b = 0; b < c->nbuckets; b++) {
		cache_entry **pp = &c->tab[b];
		while (*pp) {
			cache_entry *e = *pp;
			if (e->obj != obj) {
				pp = &e->hnext;
				continue;
			}
			*pp = e->hnext;
			e->hnext = NULL;
			e->in_table = 0;
			c->count--;
			if (e->refs == 0) {
				/* idle READY entry: on an idle list */
				lru_unlink(e);
				c->bytes -= e->len;
				e->hnext = victims;
				victims = e;
			}
			/* pinned (or loading) entries are freed by their last cache_put */
		}
	}
	pthread_mutex_unlock(&c->mu);
	free_list(c, victims);
}

size_t cache_bytes(const cache *c)
{
	/* the mutex is state of the cache, not of its value: locking it keeps readers race-free */
	cache *m = (cache *)(uintptr_t)c;
	pthread_mutex_lock(&m->mu);
	size_t n = m->bytes;
	pthread_mutex_unlock(&m->mu);
	return n;
}

void cache_prefault(cache *c, size_t bytes)
{
	/* budget is set once at cache_new: read without the lock */
	slab_prefault(c->mem, bytes < c->budget ? bytes : c->budget);
}
