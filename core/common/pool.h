/* pool.h - a fixed worker pool. The encoder and the read path own one each; whoever creates a
 * pool destroys it after its last submitted job has finished. */
#ifndef TPDEFS_POOL_H
#define TPDEFS_POOL_H

typedef struct pool pool;
typedef void (*pool_fn)(void *arg);

pool *pool_new(unsigned nthreads); /* NULL on failure; nthreads 0 means one per online CPU */
unsigned pool_threads(const pool *p);
/* Queue fn(arg). 0 or -ENOMEM. Jobs run in submission order, in parallel. */
int pool_submit(pool *p, pool_fn fn, void *arg);
/* Wait until every job submitted so far has finished. */
void pool_wait(pool *p);
/* Finish queued jobs, join the threads, free. */
void pool_free(pool *p);

#endif
