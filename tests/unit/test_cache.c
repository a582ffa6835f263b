/* Unit tests for core/cache.c: LRU order, budget, pinning, single-flight loads, failures, drops. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "cache.h"

typedef struct loader {
	atomic_int calls;
	int fail;      /* -errno to return, 0 for success */
	int delay_ms;  /* widen the race window for the concurrency tests */
} loader;

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static uint8_t pattern(uint64_t obj, uint64_t idx, size_t i)
{
	return (uint8_t)(obj * 31 + idx * 7 + i);
}

static int load(void *ctx, uint64_t obj, uint64_t idx, uint8_t *buf, size_t len)
{
	loader *l = ctx;
	atomic_fetch_add(&l->calls, 1);
	if (l->delay_ms)
		sleep_ms(l->delay_ms);
	if (l->fail)
		return l->fail;
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(obj, idx, i);
	return 0;
}

static int check_data(const cache_entry *e, uint64_t obj, uint64_t idx, size_t len)
{
	if (cache_entry_len(e) != len)
		return 0;
	const uint8_t *d = cache_entry_data(e);
	for (size_t i = 0; i < len; i++)
		if (d[i] != pattern(obj, idx, i))
			return 0;
	return 1;
}

/* get + check + put; returns whether the key was present before (no loader call). */
static int touch(cache *c, loader *l, uint64_t obj, uint64_t idx, size_t len)
{
	int before = atomic_load(&l->calls);
	cache_entry *e;
	cr_assert_eq(cache_get(c, obj, idx, len, load, l, &e), 0);
	cr_assert(check_data(e, obj, idx, len));
	cache_put(c, e);
	return atomic_load(&l->calls) == before;
}

static int present(cache *c, uint64_t obj, uint64_t idx)
{
	cache_entry *e = cache_peek(c, obj, idx);
	if (!e)
		return 0;
	cache_put(c, e);
	return 1;
}

Test(cache, lru_order_and_budget)
{
	cache *c = cache_new(300);
	cr_assert_not_null(c);
	loader l = {0};
	cr_assert_not(touch(c, &l, 1, 0, 100));
	cr_assert_not(touch(c, &l, 1, 1, 100));
	cr_assert_not(touch(c, &l, 1, 2, 100));
	cr_assert_eq(cache_bytes(c), 300);
	cr_assert(touch(c, &l, 1, 0, 100)); /* hit; 0 becomes most recent, 1 is now the oldest */
	cr_assert_not(touch(c, &l, 1, 3, 100));
	cr_assert_eq(cache_bytes(c), 300);
	cr_assert_not(present(c, 1, 1));
	cr_assert(present(c, 1, 0));
	cr_assert(present(c, 1, 2));
	cr_assert(present(c, 1, 3));
	/* peek refreshed 0, 2, 3 in that order: a 150-byte entry evicts 0 and 2 */
	cr_assert_not(touch(c, &l, 2, 0, 150));
	cr_assert_not(present(c, 1, 0));
	cr_assert_not(present(c, 1, 2));
	cr_assert(present(c, 1, 3));
	cr_assert_leq(cache_bytes(c), 300);
	cr_assert_eq(atomic_load(&l.calls), 5);
	cache_free(c);
}

Test(cache, many_keys_table_growth)
{
	cache *c = cache_new(1 << 20);
	loader l = {0};
	for (uint64_t i = 0; i < 5000; i++)
		cr_assert_not(touch(c, &l, i % 7, i, 64));
	for (uint64_t i = 0; i < 5000; i++)
		cr_assert(touch(c, &l, i % 7, i, 64));
	cr_assert_eq(cache_bytes(c), 5000 * 64);
	cache_free(c);
}

Test(cache, pinned_entries_survive_over_budget)
{
	cache *c = cache_new(100);
	loader l = {0};
	cache_entry *a, *b;
	cr_assert_eq(cache_get(c, 1, 0, 100, load, &l, &a), 0);
	cr_assert_eq(cache_get(c, 1, 1, 100, load, &l, &b), 0);
	cr_assert_eq(cache_bytes(c), 200); /* over budget only by pinned bytes */
	cr_assert(check_data(a, 1, 0, 100));
	cr_assert(check_data(b, 1, 1, 100));
	/* a second pin of a pinned entry is the same entry, no reload */
	cache_entry *a2 = cache_peek(c, 1, 0);
	cr_assert_eq(a2, a);
	cache_put(c, a2);
	cache_put(c, b); /* b becomes idle while over budget: evicted at once */
	cr_assert_eq(cache_bytes(c), 100);
	cr_assert_not(present(c, 1, 1));
	cr_assert(check_data(a, 1, 0, 100));
	cache_put(c, a);
	cr_assert_eq(cache_bytes(c), 100); /* within budget: stays cached */
	cr_assert(present(c, 1, 0));
	cr_assert_eq(atomic_load(&l.calls), 2);
	cache_free(c);
}

typedef struct getter {
	cache *c;
	loader *l;
	int rc;
	int ok;
	const cache_entry *seen;
} getter;

static void *get_thread(void *arg)
{
	getter *g = arg;
	cache_entry *e;
	g->rc = cache_get(g->c, 9, 3, 4096, load, g->l, &e);
	if (g->rc == 0) {
		g->ok = check_data(e, 9, 3, 4096);
		g->seen = e;
		sleep_ms(20); /* hold the pin while the others look */
		cache_put(g->c, e);
	}
	return NULL;
}

Test(cache, concurrent_get_loads_once)
{
	cache *c = cache_new(1 << 20);
	loader l = {.delay_ms = 100};
	pthread_t t[8];
	getter g[8];
	for (int i = 0; i < 8; i++) {
		g[i] = (getter){.c = c, .l = &l};
		cr_assert_eq(pthread_create(&t[i], NULL, get_thread, &g[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(atomic_load(&l.calls), 1);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(g[i].rc, 0);
		cr_assert(g[i].ok);
		cr_assert_eq(g[i].seen, g[0].seen);
	}
	cr_assert_eq(cache_bytes(c), 4096);
	cache_free(c);
}

Test(cache, failed_load_not_cached)
{
	cache *c = cache_new(1 << 20);
	loader bad = {.fail = -EIO};
	cache_entry *e = (cache_entry *)1;
	cr_assert_eq(cache_get(c, 1, 0, 100, load, &bad, &e), -EIO);
	cr_assert_null(e);
	cr_assert_eq(cache_bytes(c), 0);
	cr_assert_not(present(c, 1, 0));
	/* the next request loads again, and succeeds with a working loader */
	loader good = {0};
	cr_assert_not(touch(c, &good, 1, 0, 100));
	cr_assert(touch(c, &good, 1, 0, 100));
	cr_assert_eq(atomic_load(&bad.calls), 1);
	cr_assert_eq(atomic_load(&good.calls), 1);
	cache_free(c);
}

Test(cache, failed_load_reaches_every_waiter)
{
	cache *c = cache_new(1 << 20);
	loader bad = {.fail = -EBADMSG, .delay_ms = 150};
	pthread_t t[8];
	getter g[8];
	for (int i = 0; i < 8; i++) {
		g[i] = (getter){.c = c, .l = &bad};
		cr_assert_eq(pthread_create(&t[i], NULL, get_thread, &g[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(g[i].rc, -EBADMSG);
	/* threads that arrived while the load ran shared it; 8 loads would mean no single-flight */
	cr_assert_lt(atomic_load(&bad.calls), 8);
	cr_assert_eq(cache_bytes(c), 0);
	cr_assert_not(present(c, 9, 3));
	cache_free(c);
}

Test(cache, drop_obj)
{
	cache *c = cache_new(1 << 20);
	loader l = {0};
	for (uint64_t i = 0; i < 4; i++) {
		touch(c, &l, 1, i, 100);
		touch(c, &l, 2, i, 100);
	}
	cache_entry *pinned;
	cr_assert_eq(cache_get(c, 1, 2, 100, load, &l, &pinned), 0);
	cr_assert_eq(cache_bytes(c), 800);
	cache_drop_obj(c, 1);
	cr_assert_eq(cache_bytes(c), 500); /* 4 of obj 2 + the pinned one */
	for (uint64_t i = 0; i < 4; i++) {
		cr_assert_not(present(c, 1, i));
		cr_assert(present(c, 2, i));
	}
	cr_assert(check_data(pinned, 1, 2, 100));
	cache_put(c, pinned); /* dropped while pinned: freed now */
	cr_assert_eq(cache_bytes(c), 400);
	cr_assert_not(present(c, 1, 2));
	/* the key can be loaded again afresh */
	cr_assert_not(touch(c, &l, 1, 2, 100));
	cr_assert_eq(cache_bytes(c), 500);
	cache_free(c);
}

Test(cache, zero_budget_still_serves)
{
	cache *c = cache_new(0);
	loader l = {0};
	cr_assert_not(touch(c, &l, 1, 0, 100));
	cr_assert_eq(cache_bytes(c), 0);
	cr_assert_not(touch(c, &l, 1, 0, 100));
	cache_free(c);
}

Test(cache, cold_release_is_evicted_first)
{
	cache *c = cache_new(300);
	loader l = {0};
	cache_entry *e;
	touch(c, &l, 1, 0, 100);
	touch(c, &l, 1, 1, 100);
	cr_assert_eq(cache_get(c, 2, 0, 100, load, &l, &e), 0);
	cache_put_cold(c, e); /* newest, but released cold */
	/* a warm and a cold holder of one entry: the warm release wins */
	cache_entry *a, *b;
	cr_assert_eq(cache_get(c, 1, 0, 100, load, &l, &a), 0);
	cr_assert_eq(cache_get(c, 1, 0, 100, load, &l, &b), 0);
	cache_put(c, a);
	cache_put_cold(c, b);
	cr_assert_not(touch(c, &l, 3, 0, 100)); /* evicts the cold one, not the older warm ones */
	cr_assert_not(present(c, 2, 0));
	cr_assert(present(c, 1, 0));
	cr_assert(present(c, 1, 1));
	cr_assert(present(c, 3, 0));
	cache_free(c);
}

/* Entries a stream has read through are evicted before anything else, least recently released
 * first; a warm or cold holder of the same entry keeps it off the spent list. */
Test(cache, spent_release_is_evicted_first)
{
	cache *c = cache_new(400);
	loader l = {0};
	cache_entry *e;
	touch(c, &l, 1, 0, 100); /* oldest warm */
	cr_assert_eq(cache_get(c, 1, 1, 100, load, &l, &e), 0);
	cache_put_cold(c, e);
	cr_assert_eq(cache_get(c, 2, 0, 100, load, &l, &e), 0);
	cache_put_spent(c, e);
	cache_entry *a, *b;
	cr_assert_eq(cache_get(c, 2, 1, 100, load, &l, &a), 0);
	cr_assert_eq(cache_get(c, 2, 1, 100, load, &l, &b), 0);
	cache_put_spent(c, a);
	cache_put_cold(c, b); /* the cold use wins: not spent */
	cr_assert_not(touch(c, &l, 3, 0, 100)); /* evicts the spent (2, 0) */
	cr_assert_not(present(c, 2, 0));
	cr_assert(present(c, 1, 0) && present(c, 1, 1) && present(c, 2, 1));
	/* no spent entry idle: the LRU end goes, (3, 0) (present() released the others warm) */
	cr_assert_eq(cache_get(c, 4, 0, 100, load, &l, &e), 0);
	cache_put_spent(c, e);
	cr_assert_not(present(c, 3, 0));
	/* the next load evicts the spent (4, 0), not the warm ones */
	cr_assert_eq(cache_get(c, 4, 1, 100, load, &l, &e), 0);
	cache_put_spent(c, e);
	cr_assert_not(present(c, 4, 0));
	cr_assert(present(c, 1, 0) && present(c, 1, 1) && present(c, 2, 1) && present(c, 4, 1));
	cache_free(c);
}

Test(cache, drop_during_load_is_not_cached)
{
	cache *c = cache_new(1 << 20);
	loader l = {.delay_ms = 150};
	pthread_t t;
	getter g = {.c = c, .l = &l};
	cr_assert_eq(pthread_create(&t, NULL, get_thread, &g), 0);
	sleep_ms(50); /* the load is running */
	cache_drop_obj(c, 9);
	pthread_join(t, NULL);
	cr_assert_eq(g.rc, 0); /* the requester still gets its (verified) data */
	cr_assert(g.ok);
	cr_assert_not(present(c, 9, 3)); /* but it is gone from the table */
	cr_assert_eq(cache_bytes(c), 0);
	cache_free(c);
}
