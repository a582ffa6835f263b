/* pool.c - a fixed pthread worker pool (see pool.h). One FIFO queue under one mutex: jobs are
 * chunk-sized (milliseconds), so queue contention is negligible next to the work. */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct pool_job {
	struct pool_job *next;
	pool_fn fn;
	void *arg;
} pool_job;

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t work;  /* signalled when a job is queued or on shutdown */
	pthread_cond_t idle;  /* signalled when the last outstanding job finishes */
	pool_job *head, *tail;
	size_t pending;       /* queued + running */
	int stop;
	unsigned n;
	pthread_t *threads;
};

static void *pool_main(void *arg)
{
	pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stop)
			pthread_cond_wait(&p->work, &p->mu);
		if (!p->head)
			break; /* stop requested and queue drained */
		pool_job *j = p->head;
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		j->fn(j->arg);
		free(j);
		pthread_mutex_lock(&p->mu);
		if (--p->pending == 0)
			pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

pool *pool_new(unsigned nthreads)
{
	if (nthreads == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		nthreads = c > 0 ? (unsigned)c : 1;
	}
	if (nthreads > 256)
		nthreads = 256;
	pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->threads = calloc(nthreads, sizeof *p->threads);
	if (!p->threads) {
		free(p);
		return NULL;
	}
	if (pthread_mutex_init(&p->mu, NULL) != 0)
		goto fail_mu;
	if (pthread_cond_init(&p->work, NULL) != 0)
		goto fail_work;
	if (pthread_cond_init(&p->idle, NULL) != 0)
		goto fail_idle;
	for (; p->n < nthreads; p->n++) {
		if (pthread_create(&p->threads[p->n], NULL, pool_main, p) != 0)
			break;
	}
	if (p->n == nthreads)
		return p;
	/* Partial start: shut down the threads that did start. */
	pool_free(p);
	return NULL;
fail_idle:
	pthread_cond_destroy(&p->work);
fail_work:
	pthread_mutex_destroy(&p->mu);
fail_mu:
	free(p->threads);
	free(p);
	return NULL;
}

unsigned pool_threads(const pool *p)
{
	return p->n;
}

int pool_submit(pool *p, pool_fn fn, void *arg)
{
	pool_job *j = malloc(sizeof *j);
	if (!j)
		return -ENOMEM;
	j->next = NULL;
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&p->mu);
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->pending++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

void pool_wait(pool *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->pending > 0)
		pthread_cond_wait(&p->idle, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

void pool_free(pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->n; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->idle);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->mu);
	free(p->threads);
	free(p);
}
