/* Unit tests for core/pool.c. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "pool.h"

static void bump(void *arg)
{
	atomic_fetch_add((atomic_long *)arg, 1);
}

typedef struct slot {
	int done;
	long val;
} slot;

static void fill(void *arg)
{
	slot *s = arg;
	volatile long x = 0;
	for (long i = 0; i < 1000; i++)
		x += i;
	s->val = x;
	s->done = 1;
}

Test(pool, runs_every_job)
{
	pool *p = pool_new(4);
	cr_assert_not_null(p);
	cr_assert_eq(pool_threads(p), 4);
	atomic_long n = 0;
	for (int i = 0; i < 10000; i++)
		cr_assert_eq(pool_submit(p, bump, &n), 0);
	pool_wait(p);
	cr_assert_eq(atomic_load(&n), 10000);
	/* The pool is reusable after a wait. */
	for (int i = 0; i < 500; i++)
		cr_assert_eq(pool_submit(p, bump, &n), 0);
	pool_wait(p);
	cr_assert_eq(atomic_load(&n), 10500);
	pool_free(p);
}

Test(pool, every_job_gets_its_own_argument)
{
	pool *p = pool_new(3);
	cr_assert_not_null(p);
	slot *s = calloc(2000, sizeof *s);
	cr_assert_not_null(s);
	for (int i = 0; i < 2000; i++)
		cr_assert_eq(pool_submit(p, fill, &s[i]), 0);
	pool_wait(p);
	for (int i = 0; i < 2000; i++) {
		cr_assert_eq(s[i].done, 1);
		cr_assert_eq(s[i].val, 499500);
	}
	free(s);
	pool_free(p);
}

Test(pool, free_finishes_queued_jobs)
{
	pool *p = pool_new(1);
	cr_assert_not_null(p);
	atomic_long n = 0;
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(pool_submit(p, bump, &n), 0);
	pool_free(p);
	cr_assert_eq(atomic_load(&n), 1000);
}

Test(pool, zero_means_online_cpus_and_wait_on_idle_returns)
{
	pool *p = pool_new(0);
	cr_assert_not_null(p);
	cr_assert_geq(pool_threads(p), 1);
	pool_wait(p); /* nothing submitted */
	pool_free(p);
	pool_free(NULL);
}
