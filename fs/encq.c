/* encq.c - the encode queue: one thread turns closed staging files into stored objects through
 * core's ingest (ingest.h), FIFO, after a short debounce (a rename right after close can still
 * name the predecessor).
 *
 * With newest_keyframe=1 each ingest codes the new version as its chain's keyframe and re-codes
 * its predecessor against it, in one job and one transaction; the predecessor's old object is
 * released after a readers' barrier. Once the queue has been idle for a debounce period (at once
 * under a flush) the same thread runs gc's layout_only pass, which rebases versions pushed past
 * max_chain and reverses chains an ingest could not (an older store, a predecessor that changed
 * meanwhile). Being on the encoder's thread, it never races an ingest
 * for a base; unmount cancels it between re-encodes. */
#include "fs.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gc.h"
#include "ingest.h"
#include "pred.h"

typedef struct job {
	uint64_t ino;
	uint64_t bytes;
	int64_t ready_ns;
	/* the file's series (directory + name with its numbers), for taking a batch of versions
	 * in newest first; as named when queued */
	int series;
	uint64_t parent;
	pred_name pn;
	struct job *next;
} job;

struct encq {
	fs *f;
	pthread_t th;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* queue changed / job finished */
	job *head, *tail;
	uint64_t queued, queued_bytes, done;
	uint64_t running;       /* ino being encoded, 0 if idle */
	int stop;               /* read by the encoder's sources without the lock */
	unsigned flushers;      /* >0: no debounce, collect a report */
	int layout_due;         /* objects were committed since the last layout pass */
	int64_t idle_since_ns;  /* when the queue last became empty */
	int64_t layout_retry_ns; /* not before then: an explicit gc held the store */
	unsigned flush_failed;  /* encodes that failed while flushers > 0 */
	char *rep;
	size_t rep_len, rep_cap;
	int64_t orphans_ns;     /* next look for staged files of dead nodes (shared store) */
};

#define ENCQ_ORPHAN_CHECK_NS (5LL * 1000000000LL)

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void report(encq *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(encq *q, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		/* cut long lines (long escaped names) but keep them lines: the control protocol's
		 * final OK/ERR line must start a line of its own */
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (q->f->o->debug)
		fprintf(stderr, "tpdefs: %s", line);
	pthread_mutex_lock(&q->mu);
	if (q->flushers && q->rep_len + (size_t)n + 1 <= 1u << 20) {
		if (q->rep_len + (size_t)n + 1 > q->rep_cap) {
			size_t c = q->rep_cap ? q->rep_cap * 2 : 4096;
			while (c < q->rep_len + (size_t)n + 1)
				c *= 2;
			char *p = realloc(q->rep, c);
			if (p) {
				q->rep = p;
				q->rep_cap = c;
			}
		}
		if (q->rep_len + (size_t)n + 1 <= q->rep_cap) {
			memcpy(q->rep + q->rep_len, line, (size_t)n + 1);
			q->rep_len += (size_t)n;
		}
	}
	pthread_mutex_unlock(&q->mu);
}

/* ---- encoding one inode ---- */

typedef struct commit_ctx {
	fs_node *n;
	uint64_t gen;
} commit_ctx;

/* Called inside the commit transaction with n->mu held: commit only unchanged, closed data. */
static int commit_check(void *ctx)
{
	commit_ctx *c = ctx;
	fs_node *n = c->n;
	return n->staged && n->gen == c->gen && n->inflight == 0 && n->unflushed == 0;
}

static int encode_one(encq *q, uint64_t ino, int depth);

typedef struct first_ctx {
	encq *q;
	int depth;
} first_ctx;

static void encode_first(void *ctx, uint64_t ino)
{
	first_ctx *c = ctx;
	if (c->depth == 0) /* one level: a waiting predecessor's own predecessor is stored */
		encode_one(c->q, ino, c->depth + 1);
}

static int encode_one(encq *q, uint64_t ino, int depth)
{
	fs *f = q->f;
	fs_node *n;
	int r = fs_node_get(f, ino, &n);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	pthread_mutex_lock(&n->mu);
	int skip = !n->staged || n->unflushed > 0;
	uint64_t gen0 = n->gen;
	pthread_mutex_unlock(&n->mu);
	store_attr a;
	if (!skip && (store_getattr(f->st, ino, &a) < 0 || a.nlink == 0))
		skip = 1;
	/* a shared store: another live node staged it and encodes it (a dead node's files are
	 * taken over here) */
	if (!skip && store_stage_mine(f->st, ino) != 1)
		skip = 1;
	if (skip) {
		fs_node_put(f, n);
		return 0;
	}
	int64_t t0 = mono_ns();
	int sfd = store_staging_open(f->st, ino, 0);
	if (sfd < 0) {
		fs_node_put(f, n);
		return sfd;
	}
	struct stat st;
	ingest_job j;
	memset(&j, 0, sizeof(j));
	if (fstat(sfd, &st) < 0) {
		r = -errno;
		goto out;
	}
	first_ctx fc = {q, depth};
	ingest_opts io = {f->o->max_chain, (int)f->o->newest_keyframe, &q->stop, encode_first,
			  &fc};
	r = ingest_prepare(f->st, f->ch, ino, sfd, (uint64_t)st.st_size, &io, &j);
	if (r < 0)
		goto out;
	commit_ctx cc = {n, gen0};
	pthread_rwlock_wrlock(&n->dlock);
	pthread_mutex_lock(&n->mu);
	r = ingest_commit(f->st, &j, commit_check, &cc);
	if (r == 0)
		fs_node_encoded(n, j.obj.id);
	pthread_mutex_unlock(&n->mu);
	pthread_rwlock_unlock(&n->dlock);
	if (r < 0) {
		if (r == -EAGAIN)
			r = 0; /* changed meanwhile: its next close queues it again */
		else if (r == -ESTALE)
			encq_push(q, ino, 0); /* its base was deleted meanwhile: again */
		goto out;
	}
	if (j.retired) {
		/* the predecessor's files now read its re-coded object; the old one goes once no
		 * read that started before the switch can still hold its id (at once: a flush of
		 * many versions must not hold two copies of each until the end) */
		fs_nodes_repoint(f, j.retired, j.rb.nw.id, j.rb.inos, j.rb.ninos);
		chain_forget(f->ch, j.retired);
		for (size_t i = 0; i < j.rb.ndeps; i++)
			chain_forget(f->ch, j.rb.deps[i]);
		fs_nodes_barrier(f);
		store_release_retired(f->st, j.retired);
	}
	char raw[STORE_NAME_MAX + 1], name[4 * STORE_NAME_MAX + 1] = "?";
	uint64_t parent;
	size_t nlen;
	if (store_parent(f->st, ino, &parent, raw, &nlen) == 0)
		store_name_escape(raw, nlen, name);
	const store_obj *o = &j.obj;
	char how[160];
	if (j.dedup)
		snprintf(how, sizeof(how), "shared=%" PRIu64 " (%s)", o->id, j.why);
	else if (j.retired)
		snprintf(how, sizeof(how), "base=%" PRIu64 " (%s) pred=%" PRIu64 " (%s) recoded=%"
			 PRIu64 " (%" PRIu64 " bytes)", o->base, o->base ? "the series' anchor" :
			 "keyframe", j.retired, j.why, j.rb.nw.id, j.rb.nw.stored);
	else
		snprintf(how, sizeof(how), "base=%" PRIu64 " (%s)", o->base, j.why);
	report(q,
	       "encoded ino=%" PRIu64 " name=%s size=%" PRIu64 " stored=%" PRIu64
	       " ratio=%.2f %s depth=%u tensor-lookup=%zu/%" PRId64 "us %.0f ms\n",
	       ino, name, o->size, o->stored, o->stored ? (double)o->size / (double)o->stored : 0.0,
	       how, o->depth, j.lookups, j.lookup_us, (double)(mono_ns() - t0) / 1e6);
	if (f->o->newest_keyframe) {
		pthread_mutex_lock(&q->mu);
		q->layout_due = 1; /* chains may have grown past max_chain */
		pthread_mutex_unlock(&q->mu);
	}
out:
	ingest_job_done(&j);
	close(sfd);
	if (r < 0 && r != -ECANCELED) {
		report(q, "encode of ino=%" PRIu64 " failed: %s (kept in staging)\n", ino,
		       strerror(-r));
		pthread_mutex_lock(&q->mu);
		q->flush_failed++;
		pthread_mutex_unlock(&q->mu);
	}
	fs_node_put(f, n);
	return r;
}

/* ---- the layout pass ---- */

static void layout_line(void *ctx, const char *text)
{
	encq *q = ctx;
	if (q->f->o->debug)
		fprintf(stderr, "layout: %s", text);
}

static void layout_switched(void *ctx, uint64_t old, uint64_t nw, const uint64_t *inos, size_t n)
{
	encq *q = ctx;
	fs_nodes_repoint(q->f, old, nw, inos, n);
}

static void layout_quiesce(void *ctx)
{
	encq *q = ctx;
	fs_nodes_barrier(q->f); /* no encode can be in flight: this is the encoder's thread */
}

static int layout_cancelled(void *ctx)
{
	encq *q = ctx;
	return __atomic_load_n(&q->stop, __ATOMIC_RELAXED);
}

/* -EBUSY when an explicit gc holds the store: never wait for it here, its quiesce waits for
 * this thread's queue to drain. */
static int layout_pass(encq *q)
{
	if (pthread_mutex_trylock(&q->f->gcmu) != 0)
		return -EBUSY;
	gc_opts o;
	memset(&o, 0, sizeof(o));
	o.online = 1;
	o.newest_keyframe = 1;
	o.layout_only = 1;
	o.ch = q->f->ch;
	o.max_chain = q->f->o->max_chain;
	o.hooks = (gc_hooks){q, layout_line, NULL, layout_switched, layout_quiesce,
			     layout_cancelled};
	gc_result res;
	int64_t t0 = mono_ns();
	int r = gc_run(q->f->st, &o, &res);
	pthread_mutex_unlock(&q->f->gcmu);
	if (r == -EBUSY)
		return -EBUSY; /* another node's gc: after it */
	if (r < 0)
		report(q, "layout pass failed: %s (files stay as they are, readable)\n", strerror(-r));
	else if (res.reversed || res.rebased || res.keyframes)
		report(q, "layout: %" PRIu64 " chains now end in a keyframe (%" PRIu64
		       " keyframes, %" PRIu64 " deltas re-encoded, %" PRIu64 " skipped) %.0f ms\n",
		       res.reversed, res.keyframes, res.rebased, res.skipped,
		       (double)(mono_ns() - t0) / 1e6);
	return 0;
}

/* ---- the queue ---- */

/* Wait on the queue's condition until monotonic time at_ns (or a signal). Holds q->mu. */
static void wait_until(encq *q, int64_t at_ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t wait = at_ns - mono_ns();
	if (wait < 0)
		wait = 0;
	ts.tv_sec += wait / 1000000000LL;
	ts.tv_nsec += wait % 1000000000LL;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

/* Reverse ingest takes a batch of versions of one series (ckpt_001 ... ckpt_009 closed before
 * the first was encoded) newest first: the newest becomes the keyframe and each older one is coded
 * once, forward, against its stored successor, where oldest-first would code each version twice
 * (as the keyframe, then again against the next). Returns the job to run instead of j: the
 * highest-numbered queued version of j's series. Holds q->mu. */
static job *newest_of_series(encq *q, job *j)
{
	if (!q->f->o->newest_keyframe || !j->series)
		return j;
	job *best = j;
	for (job *k = q->head; k; k = k->next)
		if (k->series && k->parent == j->parent && pred_same_series(&k->pn, &best->pn) &&
		    pred_num_cmp(&k->pn, &best->pn) > 0)
			best = k;
	return best;
}

static void unlink_job(encq *q, job *j)
{
	job **pp = &q->head, *prev = NULL;
	while (*pp && *pp != j) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = j->next;
	if (q->tail == j)
		q->tail = prev;
}

/* Staged files whose node died (a shared store) are queued here; the sweep of the trash runs
 * with it. Outside q->mu. */
static void take_over_orphans(encq *q)
{
	uint64_t *inos;
	size_t n;
	if (store_list_staged(q->f->st, &inos, &n) < 0)
		return;
	for (size_t i = 0; i < n && !__atomic_load_n(&q->stop, __ATOMIC_RELAXED); i++)
		if (store_stage_takeover(q->f->st, inos[i]) == 1) {
			report(q, "taking over staged ino=%" PRIu64 " of a node that is gone\n",
			       inos[i]);
			encq_push(q, inos[i], 1);
		}
	free(inos);
	store_shared_set_oldest_open(q->f->st, fs_oldest_open(q->f));
	store_shared_sweep(q->f->st, -1);
}

static void *worker(void *arg)
{
	encq *q = arg;
	pthread_mutex_lock(&q->mu);
	while (!q->stop) {
		job *j = q->head;
		if (!j && q->layout_due) {
			int64_t at = q->idle_since_ns + (int64_t)q->f->o->debounce_ms * 1000000LL;
			if (q->flushers)
				at = 0;
			if (at < q->layout_retry_ns)
				at = q->layout_retry_ns;
			if (mono_ns() >= at) {
				q->layout_due = 0;
				q->running = UINT64_MAX; /* a flush waits for the pass */
				pthread_mutex_unlock(&q->mu);
				int busy = layout_pass(q) == -EBUSY;
				pthread_mutex_lock(&q->mu);
				q->running = 0;
				q->idle_since_ns = mono_ns();
				if (busy) {
					q->layout_due = 1; /* after that gc, which may well finish it */
					q->layout_retry_ns = q->idle_since_ns + 200000000LL;
				}
				pthread_cond_broadcast(&q->cv);
				continue;
			}
			wait_until(q, at);
			continue;
		}
		if (!j) {
			if (!store_is_shared(q->f->st)) {
				pthread_cond_wait(&q->cv, &q->mu);
				continue;
			}
			/* a shared store: every few seconds, take over what dead nodes left staged */
			int64_t now = mono_ns();
			if (now < q->orphans_ns) {
				wait_until(q, q->orphans_ns);
				continue;
			}
			q->orphans_ns = now + ENCQ_ORPHAN_CHECK_NS;
			pthread_mutex_unlock(&q->mu);
			take_over_orphans(q);
			pthread_mutex_lock(&q->mu);
			continue;
		}
		j = newest_of_series(q, j);
		int64_t now = mono_ns();
		if (!q->flushers && j->ready_ns > now) {
			wait_until(q, j->ready_ns);
			continue;
		}
		unlink_job(q, j);
		q->running = j->ino;
		pthread_mutex_unlock(&q->mu);
		encode_one(q, j->ino, 0);
		pthread_mutex_lock(&q->mu);
		q->idle_since_ns = mono_ns();
		q->running = 0;
		q->queued--;
		q->queued_bytes -= j->bytes;
		q->done++;
		free(j);
		pthread_cond_broadcast(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int encq_new(fs *f, encq **out)
{
	encq *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->f = f;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	int r = pthread_create(&q->th, NULL, worker, q);
	if (r) {
		pthread_cond_destroy(&q->cv);
		pthread_mutex_destroy(&q->mu);
		free(q);
		return -r;
	}
	q->started = 1;
	*out = q;
	return 0;
}

void encq_stop(encq *q)
{
	if (!q || !q->started)
		return;
	pthread_mutex_lock(&q->mu);
	__atomic_store_n(&q->stop, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->th, NULL);
	q->started = 0;
}

void encq_free(encq *q)
{
	if (!q)
		return;
	encq_stop(q);
	while (q->head) {
		job *j = q->head;
		q->head = j->next;
		free(j);
	}
	free(q->rep);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

void encq_push(encq *q, uint64_t ino, int now)
{
	store_attr a;
	uint64_t bytes = store_getattr(q->f->st, ino, &a) == 0 ? a.size : 0;
	char name[STORE_NAME_MAX + 1];
	size_t len;
	uint64_t parent = 0;
	pred_name pn;
	memset(&pn, 0, sizeof(pn));
	int series = store_parent(q->f->st, ino, &parent, name, &len) == 0 &&
		     pred_name_parse(name, len, &pn) == 0;
	pthread_mutex_lock(&q->mu);
	for (job *j = q->head; j; j = j->next) {
		if (j->ino == ino) {
			/* already waiting: restart its debounce, keep its place, take its new name */
			j->ready_ns = now ? 0 : mono_ns() + (int64_t)q->f->o->debounce_ms * 1000000LL;
			j->series = series;
			j->parent = parent;
			j->pn = pn;
			pthread_mutex_unlock(&q->mu);
			return;
		}
	}
	job *j = calloc(1, sizeof(*j));
	if (!j) {
		pthread_mutex_unlock(&q->mu);
		return; /* stays staged; the next mount or flush picks it up */
	}
	j->series = series;
	j->parent = parent;
	j->pn = pn;
	j->ino = ino;
	j->bytes = bytes;
	j->ready_ns = now ? 0 : mono_ns() + (int64_t)q->f->o->debounce_ms * 1000000LL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->queued++;
	q->queued_bytes += bytes;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

void encq_throttle(encq *q)
{
	pthread_mutex_lock(&q->mu);
	while (!q->stop && q->queued_bytes > q->f->o->staging_limit && q->queued > 1)
		pthread_cond_wait(&q->cv, &q->mu);
	pthread_mutex_unlock(&q->mu);
}

int encq_flush(encq *q, char **rep, unsigned *failed)
{
	*rep = NULL;
	*failed = 0;
	pthread_mutex_lock(&q->mu);
	if (q->flushers++ == 0) {
		q->rep_len = 0;
		q->flush_failed = 0;
	}
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	/* closed files whose release has not arrived yet, or left from a previous run */
	uint64_t *inos;
	size_t n;
	int r = store_list_staged(q->f->st, &inos, &n);
	if (r == 0) {
		for (size_t i = 0; i < n; i++) {
			fs_node *nd = fs_node_find(q->f, inos[i]);
			int closed = 1;
			if (nd) {
				pthread_mutex_lock(&nd->mu);
				closed = nd->unflushed == 0;
				pthread_mutex_unlock(&nd->mu);
				fs_node_put(q->f, nd);
			}
			if (closed)
				encq_push(q, inos[i], 1);
		}
		free(inos);
	}
	pthread_mutex_lock(&q->mu);
	while (!q->stop && (q->head || q->running || q->layout_due))
		pthread_cond_wait(&q->cv, &q->mu);
	if (q->rep_len)
		*rep = strdup(q->rep);
	*failed = q->flush_failed;
	if (--q->flushers == 0)
		q->rep_len = 0;
	int stopped = q->stop;
	pthread_mutex_unlock(&q->mu);
	if (!stopped)
		store_checkpoint(q->f->st);
	return stopped ? -ESHUTDOWN : r;
}

void encq_status(encq *q, uint64_t *queued, uint64_t *queued_bytes, uint64_t *done)
{
	pthread_mutex_lock(&q->mu);
	*queued = q->queued;
	*queued_bytes = q->queued_bytes;
	*done = q->done;
	pthread_mutex_unlock(&q->mu);
}
