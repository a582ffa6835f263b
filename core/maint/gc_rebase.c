/* gc_rebase.c - the rebase passes, planned on a snapshot of the objects table: dependents of
 * unreferenced objects and of chains deeper than max_chain are re-encoded against a surviving
 * ancestor or as keyframes (plan, execute), then keyframes the depth limit made are tried as
 * deltas again (rechain, pass 2). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc_internal.h"
#include "ingest.h"
#include "pred.h"
#include "store_admin.h"

/* Levels = distance to the keyframe through existing rows; -1 on a cycle or a missing base. */
static int compute_levels(gcx *g)
{
	size_t *path = malloc((g->n ? g->n : 1) * sizeof(*path));
	if (!path)
		return -ENOMEM;
	for (size_t i = 0; i < g->n; i++)
		g->v[i].level = -3; /* unknown */
	for (size_t i = 0; i < g->n; i++) {
		size_t len = 0;
		long j = (long)i, top;
		while (j >= 0 && g->v[j].level == -3) {
			g->v[j].level = -4; /* on the current path */
			path[len++] = (size_t)j;
			if (!g->v[j].o.base) {
				j = -2;
				break;
			}
			j = g->v[j].base;
		}
		if (j == -2)
			top = -1; /* the path ends in a keyframe: it gets level 0 */
		else if (j < 0 || g->v[j].level < 0)
			top = -2; /* missing base, cycle or broken ancestor */
		else
			top = g->v[j].level;
		for (size_t k = len; k-- > 0;) {
			if (top == -2) {
				g->v[path[k]].level = -1;
				continue;
			}
			g->v[path[k]].level = ++top;
		}
	}
	free(path);
	return 0;
}

static int cmp_level(const void *a, const void *b, void *ctx)
{
	const gcx *g = ctx;
	const gobj *x = &g->v[*(const size_t *)a], *y = &g->v[*(const size_t *)b];
	if (x->level != y->level)
		return x->level < y->level ? -1 : 1;
	return x->o.id < y->o.id ? -1 : x->o.id > y->o.id;
}

int gc_order_by_level(gcx *g, size_t *order)
{
	int r = compute_levels(g);
	if (r < 0)
		return r;
	for (size_t i = 0; i < g->n; i++)
		order[i] = i;
	qsort_r(order, g->n, sizeof(*order), cmp_level, g);
	return 0;
}

/* ---- plan ---- */

int gc_plan(gcx *g, size_t *order, size_t *nplan)
{
	*nplan = 0;
	for (size_t k = 0; k < g->n; k++) {
		gobj *x = &g->v[order[k]];
		x->target = -2;
		if (x->level < 0)
			continue; /* broken chain: verify reports it, gc never touches it */
		x->depth = x->base >= 0 ? g->v[x->base].depth + 1 : 0;
		if (x->o.unref || x->base < 0)
			continue;
		const gobj *b = &g->v[x->base];
		if (!b->o.unref && x->depth <= g->max_chain)
			continue;
		if (g->o->layout_only && x->depth <= g->max_chain)
			continue; /* an unreferenced base is an explicit gc's business */
		long a = x->base;
		while (a >= 0 && g->v[a].o.unref)
			a = g->v[a].base;
		/* Too deep: a delta against an ancestor half way up the chain, not a keyframe (one
		 * skip delta costs far less than a keyframe, and leaves room below it). */
		unsigned half = g->max_chain / 2 ? g->max_chain / 2 : 1;
		if (a >= 0 && g->v[a].depth + 1 > g->max_chain)
			while (a >= 0 && (g->v[a].o.unref || g->v[a].depth + 1 > half))
				a = g->v[a].base;
		x->target = a;
		x->depth = a >= 0 ? g->v[a].depth + 1 : 0;
		(*nplan)++;
	}
	return 0;
}

int gc_execute(gcx *g, size_t *order, size_t nplan, uint64_t **olds, size_t *nolds,
	       size_t *capp)
{
	uint64_t done = 0;
	for (size_t k = 0; k < g->n && !gc_cancelled(g); k++) {
		gobj *x = &g->v[order[k]];
		if (x->target == -2)
			continue;
		long ai = x->target;
		store_obj d = x->o;
		d.base = g->v[x->base].o.id;
		store_obj a;
		memset(&a, 0, sizeof(a));
		if (ai >= 0) {
			a = g->v[ai].o;
			a.depth = g->v[ai].depth;
		}
		char nm[STORE_NAME_MAX + 1];
		gc_obj_name(g, d.id, nm, sizeof(nm));
		layout *dl = NULL, *al = NULL; /* parsed once, for the fit and the encode */
		if (ai >= 0) {
			chain_src nc, bc;
			io_src nsrc, bsrc;
			chain_src_init(&nsrc, &nc, g->ch, d.id, d.size, NULL, NULL);
			chain_src_init(&bsrc, &bc, g->ch, a.id, a.size, NULL, NULL);
			if (!ingest_fit(&nsrc, &bsrc, &dl, &al)) {
				ai = -1;
				x->target = -1;
				x->depth = 0;
			}
		}
		if (g->o->dry_run) {
			layout_free(dl);
			layout_free(al);
			if (ai >= 0)
				gc_say(g, "would re-encode object %" PRIu64 " (%s, %" PRIu64
				       " bytes) against object %" PRIu64 " (depth %u)\n",
				       d.id, nm, d.stored, a.id, a.depth + 1);
			else
				gc_say(g, "would re-encode object %" PRIu64 " (%s, %" PRIu64
				       " bytes) as a keyframe\n", d.id, nm, d.stored);
			if (ai >= 0)
				g->res->rebased++;
			else
				g->res->keyframes++;
			continue;
		}
		store_obj nw;
		int r = gc_replace(g, &d, ai >= 0 ? &a : NULL, dl, al, 0, &nw);
		layout_free(dl);
		layout_free(al);
		done++;
		if (r == -ECANCELED)
			return 0;
		if (r < 0) {
			g->res->skipped++;
			gc_say(g, "object %" PRIu64 " (%s): %s; left as it was\n", d.id, nm,
			       r == -EAGAIN ? "changed meanwhile" : strerror(-r));
			if (g->o->hooks.progress)
				g->o->hooks.progress(g->o->hooks.ctx, done, nplan);
			if (gc_fatal(r))
				return r; /* ENOSPC, ENOMEM...: stop, nothing is lost */
			x->target = -2;
			x->depth = g->v[x->base].depth + 1;
			continue;
		}
		x->o = nw;
		x->o.depth = x->depth;
		x->base = ai;
		g->new_bytes += nw.stored;
		if (ai >= 0)
			g->res->rebased++;
		else
			g->res->keyframes++;
		char how[64] = "a keyframe";
		if (ai >= 0)
			snprintf(how, sizeof(how), "a delta against object %" PRIu64, a.id);
		gc_say(g, "re-encoded object %" PRIu64 " (%s) as object %" PRIu64 ", %s: %" PRIu64
		       " -> %" PRIu64 " bytes, depth %u\n", d.id, nm, nw.id, how, d.stored,
		       nw.stored, nw.depth);
		if (g->o->hooks.progress)
			g->o->hooks.progress(g->o->hooks.ctx, done, nplan);
		if (gc_retire(g, d.id, olds, nolds, capp) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* ---- pass 2: keyframes back into chains ----
 * Shortening chains can leave a keyframe (made one by the depth limit) next to a predecessor
 * that now has room below it: re-encode it as a delta when that saves at least 10%. */

static long find_cur(const gcx *g, uint64_t id)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].o.id == id)
			return (long)i;
	return -1;
}

/* Depths from the current base links; heights = longest path below each object. */
static void depths(gcx *g, uint32_t *height)
{
	for (size_t i = 0; i < g->n; i++)
		height[i] = 0;
	for (size_t i = 0; i < g->n; i++) {
		if (g->v[i].level < 0)
			continue;
		uint32_t d = 0;
		long j = g->v[i].base;
		while (j >= 0 && d <= g->n) {
			d++;
			j = g->v[j].base;
		}
		g->v[i].depth = d;
		j = g->v[i].base;
		for (uint32_t k = 1; j >= 0 && k <= d; k++, j = g->v[j].base)
			if (height[j] < k)
				height[j] = k;
	}
}

int gc_rechain(gcx *g, uint64_t **olds, size_t *nolds, size_t *cap)
{
	uint32_t *height = calloc(g->n ? g->n : 1, sizeof(*height));
	if (!height)
		return -ENOMEM;
	depths(g, height);
	for (size_t i = 0; i < g->n && !gc_cancelled(g); i++) {
		gobj *x = &g->v[i];
		if (x->o.unref || x->level < 0 || x->base >= 0)
			continue;
		uint64_t ino;
		if (store_admin_first_inode_of_obj(g->s, x->o.id, &ino) < 0)
			continue;
		pred_cand c[8];
		size_t nc = 0;
		if (!ino || pred_candidates(g->s, ino, c, 8, &nc) < 0)
			continue;
		for (size_t k = 0; k < nc; k++) {
			long p = c[k].obj ? find_cur(g, c[k].obj) : -1;
			if (p < 0 || (size_t)p == i || g->v[p].o.unref || g->v[p].level < 0)
				continue;
			long j = p;
			while (j >= 0 && (size_t)j != i)
				j = g->v[j].base;
			if (j >= 0)
				continue; /* p descends from x: that would be a cycle */
			if (g->v[p].depth + 1 + height[i] > g->max_chain)
				continue;
			store_obj a = g->v[p].o, d = x->o;
			a.depth = g->v[p].depth;
			chain_src nc2, bc;
			io_src nsrc, bsrc;
			chain_src_init(&nsrc, &nc2, g->ch, d.id, d.size, NULL, NULL);
			chain_src_init(&bsrc, &bc, g->ch, a.id, a.size, NULL, NULL);
			layout *dl, *al;
			if (!ingest_fit(&nsrc, &bsrc, &dl, &al))
				continue;
			char nm[STORE_NAME_MAX + 1];
			gc_obj_name(g, d.id, nm, sizeof(nm));
			if (g->o->dry_run) {
				layout_free(dl);
				layout_free(al);
				gc_say(g, "would try object %" PRIu64 " (%s, keyframe) as a delta "
				       "against object %" PRIu64 "\n", d.id, nm, a.id);
				break;
			}
			store_obj nw;
			int r = gc_replace(g, &d, &a, dl, al, d.stored - d.stored / 10, &nw);
			layout_free(dl);
			layout_free(al);
			if (r == -EFBIG)
				break; /* the best candidate does not help: keep the keyframe */
			if (r == -ECANCELED) {
				free(height);
				return 0;
			}
			if (r < 0) {
				if (gc_fatal(r)) {
					free(height);
					return r;
				}
				break;
			}
			gc_say(g, "re-encoded keyframe %" PRIu64 " (%s) as %" PRIu64
			       " against object %" PRIu64 ": %" PRIu64 " -> %" PRIu64
			       " bytes, depth %u\n", d.id, nm, nw.id, a.id, d.stored, nw.stored,
			       nw.depth);
			g->res->rebased++;
			g->new_bytes += nw.stored;
			x->o = nw;
			x->base = p;
			depths(g, height);
			if (gc_retire(g, d.id, olds, nolds, cap) < 0) {
				free(height);
				return -ENOMEM;
			}
			break;
		}
	}
	free(height);
	return 0;
}
