/* gc_reverse.c - pass 0 (gc_opts.newest_keyframe, see gc.h): the newest version of each chain
 * becomes its keyframe and the older ones reverse deltas against their successors, since the
 * newest is the one a resumed job loads. Runs before the snapshot the rebase passes plan on. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc_internal.h"
#include "pred.h"
#include "store_admin.h"

/* Are the newest leaf and the keyframe versions of one named series (ckpt_009 / ckpt_000, the
 * same name in checkpoint-N directories)? A leaf that is a copy found by its tensors under
 * another name (last.ckpt on its epoch file) stays the delta: making it the keyframe would hang
 * the named series on a file that is replaced every epoch. */
static int same_series(gcx *g, uint64_t leaf, uint64_t root)
{
	char a[STORE_NAME_MAX + 1], b[STORE_NAME_MAX + 1];
	size_t la, lb;
	if (gc_file_name(g, leaf, a, &la) < 0 || gc_file_name(g, root, b, &lb) < 0)
		return 1; /* cannot tell (a hint object without a file): as before */
	if (la == lb && !memcmp(a, b, la))
		return 1;
	pred_name pa, pb;
	return pred_name_parse(a, la, &pa) == 0 && pred_name_parse(b, lb, &pb) == 0 &&
	       pred_same_series(&pa, &pb);
}

/* rank[i] orders objects by the newest file holding them (inode numbers only grow: a higher
 * one was created later); 0: no file holds object i. One query for the whole table. */
static int newest_file_ranks(gcx *g, const gcx *t, uint64_t *rank)
{
	uint64_t *objs;
	size_t m;
	int r = store_admin_inode_objs(g->s, &objs, &m);
	if (r < 0)
		return r;
	for (size_t p = 0; p < m; p++) {
		long i = gc_find(t, objs[p]);
		if (i >= 0)
			rank[i] = p + 1; /* ascending inodes: the last one seen is the newest */
	}
	free(objs);
	return 0;
}

/* Re-encode path[0] (the newest) as a keyframe, then each path[i] against the new path[i-1].
 * Every step is a switch of its own: stopping anywhere leaves two valid chains. */
static int reverse_path(gcx *g, const store_obj *path, size_t len, uint64_t **olds,
			size_t *nolds, size_t *cap)
{
	store_obj prev;
	for (size_t i = 0; i < len && !gc_cancelled(g); i++) {
		store_obj d = path[i], nw;
		char nm[STORE_NAME_MAX + 1];
		gc_obj_name(g, d.id, nm, sizeof(nm));
		int r = gc_replace(g, &d, i ? &prev : NULL, NULL, NULL, 0, &nw);
		if (r == -ECANCELED)
			return 0;
		if (r < 0) {
			g->res->skipped++;
			gc_say(g, "object %" PRIu64 " (%s): %s; chain left as it was from here\n",
			       d.id, nm, r == -EAGAIN ? "changed meanwhile" : strerror(-r));
			return gc_fatal(r) ? r : 0;
		}
		g->new_bytes += nw.stored;
		if (i)
			g->res->rebased++;
		else
			g->res->keyframes++;
		char how[80] = "the newest version: keyframe";
		if (i)
			snprintf(how, sizeof(how), "a delta against its successor, object %" PRIu64,
				 prev.id);
		gc_say(g, "re-encoded object %" PRIu64 " (%s) as object %" PRIu64 ", %s: %" PRIu64
		       " -> %" PRIu64 " bytes\n", d.id, nm, nw.id, how, d.stored, nw.stored);
		if ((r = gc_retire(g, d.id, olds, nolds, cap)) < 0)
			return r;
		prev = nw;
	}
	return 0;
}

int gc_newest_keyframes(gcx *g, uint64_t **olds, size_t *nolds, size_t *cap)
{
	store_obj *rows;
	size_t n;
	int r = store_admin_objects(g->s, &rows, &n); /* ordered by id */
	if (r < 0)
		return r;
	g->res->stored_before = gc_sum_stored(rows, n);
	/* per object: its keyframe (root), whether anything is based on it */
	long *root = malloc((n ? n : 1) * sizeof(*root));
	char *based = calloc(n ? n : 1, 1);
	long *pick = malloc((n ? n : 1) * sizeof(*pick)); /* per root: the newest leaf */
	uint64_t *rank = calloc(n ? n : 1, sizeof(*rank));
	gcx tmp = *g;
	tmp.n = n;
	tmp.v = calloc(n ? n : 1, sizeof(*tmp.v));
	if (!root || !based || !pick || !rank || !tmp.v) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		tmp.v[i].o = rows[i];
	for (size_t i = 0; i < n; i++) {
		tmp.v[i].base = rows[i].base ? gc_find(&tmp, rows[i].base) : -1;
		if (tmp.v[i].base >= 0)
			based[tmp.v[i].base] = 1;
		pick[i] = -1;
	}
	for (size_t i = 0; i < n; i++) {
		long j = (long)i;
		size_t steps = 0;
		while (j >= 0 && tmp.v[j].base >= 0 && steps++ <= n)
			j = tmp.v[j].base;
		root[i] = j >= 0 && !rows[j].base && steps <= n ? j : -1; /* -1: missing base, cycle */
	}
	/* The newest file of a tree is the leaf whose inode is the newest; worth reversing only if
	 * it is newer than the keyframe's file (a reversed chain's leaf is its oldest version). */
	if ((r = newest_file_ranks(g, &tmp, rank)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		long k = root[i];
		if (k < 0 || (size_t)k == i || based[i] || rows[i].unref || !rank[i] ||
		    rank[i] <= rank[k])
			continue;
		if (pick[k] < 0 || rank[i] > rank[pick[k]])
			pick[k] = (long)i;
	}
	store_obj *path = malloc((n ? n : 1) * sizeof(*path));
	if (!path) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < n && r == 0 && !gc_cancelled(g); k++) {
		if (pick[k] < 0)
			continue;
		size_t len = 0;
		int dead = 0;
		for (long j = pick[k]; j >= 0; j = tmp.v[j].base) {
			dead |= rows[j].unref; /* a deleted file on the path: explicit gc first */
			path[len++] = rows[j];
		}
		if (dead || !same_series(g, path[0].id, rows[k].id))
			continue;
		if (g->o->dry_run) {
			gc_say(g, "would make object %" PRIu64 " the keyframe of its chain"
			       " (%zu re-encodes)\n", path[0].id, len);
			continue;
		}
		uint64_t before = g->res->keyframes;
		r = reverse_path(g, path, len, olds, nolds, cap);
		if (g->res->keyframes > before)
			g->res->reversed++;
	}
	free(path);
out:
	free(tmp.v);
	free(rank);
	free(pick);
	free(based);
	free(root);
	free(rows);
	return r;
}
