/* gc.c - rebase, free, clean (see gc.h): gc_run and what its passes share. Plan on an in-memory
 * snapshot of the objects table, then re-encode one object at a time; every metadata change is
 * checked against the live table inside its transaction, so a daemon working meanwhile only makes
 * gc skip a step. The passes live by concern: gc_clean.c (files nobody owns), gc_rebase.c
 * (unreferenced bases, chains too deep, keyframes back into chains), gc_reverse.c (newest version
 * as keyframe). */
#include "gc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain_store.h"
#include "gc_internal.h"
#include "ingest.h"
#include "stats.h"
#include "store_admin.h"

void gc_say(gcx *g, const char *fmt, ...)
{
	if (!g->o->hooks.line)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	g->o->hooks.line(g->o->hooks.ctx, buf);
}

int gc_cancelled(gcx *g)
{
	return g->o->hooks.cancelled && g->o->hooks.cancelled(g->o->hooks.ctx);
}

long gc_find(const gcx *g, uint64_t id)
{
	size_t lo = 0, hi = g->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (g->v[mid].o.id == id)
			return (long)mid;
		if (g->v[mid].o.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* ---- reading objects through the chain ---- */

static int read_cancelled(void *ctx)
{
	return gc_cancelled(ctx); /* unmount or client gone: stop, the old blob stays in use */
}

int gc_file_name(gcx *g, uint64_t obj, char *name, size_t *len)
{
	uint64_t ino, parent;
	if (store_admin_first_inode_of_obj(g->s, obj, &ino) < 0 || !ino)
		return -ENOENT;
	return store_parent(g->s, ino, &parent, name, len);
}

void gc_obj_name(gcx *g, uint64_t obj, char *buf, size_t size)
{
	snprintf(buf, size, "-");
	char name[STORE_NAME_MAX + 1];
	size_t len;
	if (gc_file_name(g, obj, name, &len) == 0)
		stats_quote(name, buf, size); /* names are bytes: keep the output one line */
}

/* Re-encode object d (content unchanged) against base a (NULL: keyframe) into a new durable
 * blob; *nw describes it. Layouts already parsed by a fit check are passed on (NULL: parse). */
static int reencode(gcx *g, const store_obj *d, const store_obj *a, const layout *dl,
		    const layout *al, uint64_t max_stored, store_obj *nw)
{
	chain_src nc, bc;
	io_src nsrc, bsrc;
	chain_src_init(&nsrc, &nc, g->ch, d->id, d->size, read_cancelled, g);
	chain_src_init(&bsrc, &bc, g->ch, a ? a->id : 0, a ? a->size : 0, read_cancelled, g);
	ingest_src n = {&nsrc, dl, d->hash};
	ingest_src b = {&bsrc, al, a ? a->hash : 0};
	return ingest_encode_blob(g->s, &n, a ? &b : NULL, a ? a->id : 0, a ? a->depth : 0,
				  max_stored, nw);
}

int gc_replace(gcx *g, const store_obj *d, const store_obj *a, const layout *dl,
	       const layout *al, uint64_t max_stored, store_obj *nw)
{
	int r = reencode(g, d, a, dl, al, max_stored, nw);
	if (r < 0)
		return r;
	uint64_t *inos = NULL, *deps = NULL;
	size_t ninos = 0, ndeps = 0;
	r = store_admin_switch(g->s, d, nw, a ? a->hash : 0, &inos, &ninos, &deps, &ndeps);
	if (r < 0) {
		store_obj_discard(g->s, nw->id);
		return r;
	}
	if (g->o->hooks.switched)
		g->o->hooks.switched(g->o->hooks.ctx, d->id, nw->id, inos, ninos);
	chain_forget(g->ch, d->id);
	for (size_t i = 0; i < ndeps; i++)
		chain_forget(g->ch, deps[i]);
	free(inos);
	free(deps);
	return 0;
}

int gc_fatal(int r)
{
	return r != -EAGAIN && r != -EIO && r != -EBADMSG && r != -ENOENT && r != -ESTALE;
}

static int olds_push(uint64_t **olds, size_t *nolds, size_t *cap, uint64_t id)
{
	if (*nolds == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		uint64_t *p = realloc(*olds, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*olds = p;
		*cap = c;
	}
	(*olds)[(*nolds)++] = id;
	return 0;
}

int gc_retire(gcx *g, uint64_t old, uint64_t **olds, size_t *nolds, size_t *cap)
{
	if (olds_push(olds, nolds, cap, old) < 0)
		return -ENOMEM;
	if (!g->o->online) {
		store_release_retired(g->s, old);
		chain_forget(g->ch, old);
	}
	return 0;
}

uint64_t gc_sum_stored(const store_obj *v, size_t n)
{
	uint64_t t = 0;
	for (size_t i = 0; i < n; i++)
		t += v[i].stored;
	return t;
}

static int run(store *s, const gc_opts *o, gc_result *res)
{
	gcx g = {.s = s, .o = o, .res = res,
		 .max_chain = o->max_chain ? o->max_chain : INGEST_DEFAULT_MAX_CHAIN};
	store_obj *rows = NULL;
	size_t n = 0;
	size_t *order = NULL;
	uint64_t *olds = NULL;
	size_t nolds = 0;
	int own_chain = 0;
	int r;
	size_t ocap = 0;
	if (o->layout_only) {
		/* the daemon's automatic pass: no cleaning, nothing of an explicit gc */
	} else if (!o->online && !o->dry_run) {
		/* what mount does: drop dead inodes, rows nobody points at, tmp leftovers */
		gc_clean_files(&g);
		uint64_t *staged;
		size_t nst;
		r = store_recover(s, &staged, &nst);
		if (r < 0)
			return r;
		free(staged);
	} else {
		gc_clean_files(&g);
	}
	if (o->newest_keyframe) {
		g.ch = o->ch ? o->ch : chain_store_new(s, 128u << 20);
		if (!g.ch)
			return -ENOMEM;
		own_chain = !o->ch;
		r = gc_newest_keyframes(&g, &olds, &nolds, &ocap);
		if (r < 0)
			goto out;
	}
	r = store_admin_objects(s, &rows, &n);
	if (r < 0)
		goto out;
	if (!o->newest_keyframe)
		res->stored_before = gc_sum_stored(rows, n); /* else counted before the reversal */
	g.n = n;
	g.v = calloc(n ? n : 1, sizeof(*g.v));
	order = calloc(n ? n : 1, sizeof(*order));
	if (!g.v || !order) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		g.v[i].o = rows[i];
	for (size_t i = 0; i < n; i++)
		g.v[i].base = rows[i].base ? gc_find(&g, rows[i].base) : -1;
	r = gc_order_by_level(&g, order);
	if (r < 0)
		goto out;
	size_t nplan;
	gc_plan(&g, order, &nplan);
	uint64_t nunref = 0, unref_bytes = 0;
	for (size_t i = 0; i < n; i++)
		if (rows[i].unref) {
			nunref++;
			unref_bytes += rows[i].stored;
		}
	gc_say(&g, "%zu objects (%" PRIu64 " bytes), %" PRIu64 " unreferenced (%" PRIu64
	       " bytes); %zu to re-encode (max chain %u)\n", n, res->stored_before, nunref,
	       unref_bytes, nplan, g.max_chain);
	if (!g.ch)
		g.ch = o->ch;
	if (!g.ch && nplan) {
		g.ch = chain_store_new(s, 128u << 20);
		if (!g.ch) {
			r = -ENOMEM;
			goto out;
		}
		own_chain = 1;
	}
	if (o->hooks.progress && nplan)
		o->hooks.progress(o->hooks.ctx, 0, nplan);
	r = gc_execute(&g, order, nplan, &olds, &nolds, &ocap);
	if (r == 0 && !gc_cancelled(&g) && !o->layout_only) {
		if (!g.ch) {
			g.ch = chain_store_new(s, 128u << 20);
			if (!g.ch) {
				r = -ENOMEM;
				goto out;
			}
			own_chain = 1;
		}
		r = gc_rechain(&g, &olds, &nolds, &ocap);
	}
	if (o->dry_run) {
		res->freed_objects = nunref;
		res->freed_bytes = unref_bytes;
		res->stored_after = res->stored_before - unref_bytes;
		goto out;
	}
	if (o->hooks.quiesce && nolds)
		o->hooks.quiesce(o->hooks.ctx);
	/* free the replaced objects, then whatever chains only they needed (deepest first) */
	for (size_t i = 0; i < nolds; i++)
		store_release_retired(s, olds[i]);
	for (size_t k = n; k-- > 0 && !o->layout_only;) {
		gobj *x = &g.v[order[k]];
		if (rows[order[k]].unref && x->o.id == rows[order[k]].id)
			store_release_retired(s, x->o.id);
	}
	free(rows);
	rows = NULL;
	size_t n2;
	int r2 = store_admin_objects(s, &rows, &n2);
	if (r2 == 0) {
		res->stored_after = gc_sum_stored(rows, n2);
		uint64_t created = res->rebased + res->keyframes;
		res->freed_objects = n + created > n2 ? n + created - n2 : 0;
		uint64_t had = res->stored_before + g.new_bytes;
		res->freed_bytes = had > res->stored_after ? had - res->stored_after : 0;
	}
	if (r == 0 && !o->online)
		gc_clean_dir(&g, "objects", 1); /* blobs of rows freed above are already gone */
	store_admin_checkpoint(s);
out:
	if (own_chain)
		chain_free(g.ch);
	free(olds);
	free(order);
	free(g.v);
	free(rows);
	return r;
}

int gc_run(store *s, const gc_opts *o, gc_result *res)
{
	memset(res, 0, sizeof(*res));
	/* one gc in the whole store (a shared store: other nodes too) */
	int r = store_gc_lock(s);
	if (r < 0)
		return r;
	r = run(s, o, res);
	/* a shared store's deleted blobs are unlinked once their grace period is over */
	if (r == 0 && !o->dry_run)
		store_shared_sweep(s, -1);
	store_gc_unlock(s);
	return r;
}
