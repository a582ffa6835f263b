/* gc.c - rebase, free, clean (see gc.h). Plan on an in-memory snapshot of the objects table,
 * then re-encode one object at a time; every metadata change is checked against the live table
 * inside its transaction, so a daemon working meanwhile only makes gc skip a step. */
#include "gc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chain_store.h"
#include "ingest.h"
#include "layout.h"
#include "pred.h"
#include "stats.h"
#include "store_admin.h"

/* Files younger than this may belong to an encode in flight (online gc leaves them alone). */
#define GC_ONLINE_MIN_AGE_S 3600

typedef struct gobj {
	store_obj o;       /* current row as gc knows it (id changes when replaced) */
	long base;         /* index of the base, -1 none or missing */
	long level;        /* topological level, -1 unknown (cycle / missing base) */
	uint32_t depth;    /* depth after the planned changes */
	long target;       /* planned: -2 untouched, -1 keyframe, else index of the new base */
} gobj;

typedef struct gcx {
	store *s;
	const gc_opts *o;
	gc_result *res;
	chain *ch;
	gobj *v;
	size_t n;
	unsigned max_chain;
	uint64_t new_bytes; /* blobs written by this run */
} gcx;

static void say(gcx *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(gcx *g, const char *fmt, ...)
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

static int cancelled(gcx *g)
{
	return g->o->hooks.cancelled && g->o->hooks.cancelled(g->o->hooks.ctx);
}

static long find(const gcx *g, uint64_t id)
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

/* ---- reading objects through the chain ---- */

static int gc_cancelled(void *ctx)
{
	return cancelled(ctx); /* unmount or client gone: stop, the old blob stays in use */
}

/* A short name for messages: one file name using the object, or "-". */
static void obj_name(gcx *g, uint64_t obj, char *buf, size_t size)
{
	snprintf(buf, size, "-");
	uint64_t ino;
	if (store_admin_first_inode_of_obj(g->s, obj, &ino) < 0 || !ino)
		return;
	char name[STORE_NAME_MAX + 1];
	size_t len;
	uint64_t parent;
	if (store_parent(g->s, ino, &parent, name, &len) == 0)
		stats_quote(name, buf, size); /* names are bytes: keep the output one line */
}

/* Re-encode object d (content unchanged) against base a (NULL: keyframe) into a new durable
 * blob; *nw describes it. Layouts already parsed by a fit check are passed on (NULL: parse). */
static int reencode(gcx *g, const store_obj *d, const store_obj *a, const layout *dl,
		    const layout *al, uint64_t max_stored, store_obj *nw)
{
	chain_src nc, bc;
	io_src nsrc, bsrc;
	chain_src_init(&nsrc, &nc, g->ch, d->id, d->size, gc_cancelled, g);
	chain_src_init(&bsrc, &bc, g->ch, a ? a->id : 0, a ? a->size : 0, gc_cancelled, g);
	ingest_src n = {&nsrc, dl, d->hash};
	ingest_src b = {&bsrc, al, a ? a->hash : 0};
	return ingest_encode_blob(g->s, &n, a ? &b : NULL, a ? a->id : 0, a ? a->depth : 0,
				  max_stored, nw);
}

/* Re-encode d against a (NULL: keyframe) and switch the metadata to the new blob; the daemon is
 * told and readers holding the old id reopen. 0 (*nw describes the new object) or -errno, and
 * then nothing changed. */
static int replace(gcx *g, const store_obj *d, const store_obj *a, const layout *dl,
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

/* A failed re-encode that ends the run (ENOSPC, ENOMEM...); the others only skip a step. */
static int fatal(int r)
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

/* The replaced object old is no longer named: freed at the end of the run (online: after the
 * readers' barrier), at once when nobody else reads the store. */
static int retire(gcx *g, uint64_t old, uint64_t **olds, size_t *nolds, size_t *cap)
{
	if (olds_push(olds, nolds, cap, old) < 0)
		return -ENOMEM;
	if (!g->o->online) {
		store_release_retired(g->s, old);
		chain_forget(g->ch, old);
	}
	return 0;
}

/* ---- plan ---- */

static int plan(gcx *g, size_t *order, size_t *nplan)
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

/* ---- files nobody owns ---- */

static int old_enough(gcx *g, int dfd, const char *name)
{
	if (!g->o->online)
		return 1;
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return time(NULL) - st.st_mtime > GC_ONLINE_MIN_AGE_S;
}

static void clean_dir(gcx *g, const char *sub, int doit)
{
	int dfd = openat(store_dirfd(g->s), sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	int fd2 = dup(dfd);
	DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
	if (!d) {
		if (fd2 >= 0)
			close(fd2);
		close(dfd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *nm = e->d_name;
		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		int stale = 0;
		uint64_t *kind = NULL;
		if (!strcmp(sub, "tmp")) {
			stale = 1;
			kind = &g->res->tmp_files;
		} else if (!strcmp(sub, "objects")) {
			uint64_t id;
			if (store_blob_name_parse(nm, &id) < 0)
				continue; /* not ours: leave it */
			stale = store_admin_obj_exists(g->s, id) == 0;
			kind = &g->res->orphan_blobs;
		} else {
			uint64_t ino;
			if (store_staging_name_parse(nm, &ino) < 0)
				continue;
			store_attr a;
			int r = store_getattr(g->s, ino, &a);
			stale = r == -ENOENT || (r == 0 && !a.staged);
			kind = &g->res->staging_files;
		}
		if (!stale || !old_enough(g, dfd, nm))
			continue;
		struct stat st;
		uint64_t bytes = fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) == 0 ? (uint64_t)st.st_size
										    : 0;
		if (doit && unlinkat(dfd, nm, 0) < 0)
			continue;
		(*kind)++;
		g->res->orphan_bytes += bytes;
		say(g, "%s %s/%s (%" PRIu64 " bytes)\n", doit ? "removed" : "would remove", sub, nm,
		    bytes);
	}
	closedir(d);
	close(dfd);
}

static void clean_files(gcx *g)
{
	int doit = !g->o->dry_run;
	clean_dir(g, "tmp", doit);
	clean_dir(g, "objects", doit);
	clean_dir(g, "staging", doit);
}

/* ---- run ---- */

static uint64_t sum_stored(const store_obj *v, size_t n)
{
	uint64_t t = 0;
	for (size_t i = 0; i < n; i++)
		t += v[i].stored;
	return t;
}

static int execute(gcx *g, size_t *order, size_t nplan, uint64_t **olds, size_t *nolds,
		   size_t *capp)
{
	uint64_t done = 0;
	for (size_t k = 0; k < g->n && !cancelled(g); k++) {
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
		obj_name(g, d.id, nm, sizeof(nm));
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
				say(g, "would re-encode object %" PRIu64 " (%s, %" PRIu64
				    " bytes) against object %" PRIu64 " (depth %u)\n",
				    d.id, nm, d.stored, a.id, a.depth + 1);
			else
				say(g, "would re-encode object %" PRIu64 " (%s, %" PRIu64
				    " bytes) as a keyframe\n", d.id, nm, d.stored);
			if (ai >= 0)
				g->res->rebased++;
			else
				g->res->keyframes++;
			continue;
		}
		store_obj nw;
		int r = replace(g, &d, ai >= 0 ? &a : NULL, dl, al, 0, &nw);
		layout_free(dl);
		layout_free(al);
		done++;
		if (r == -ECANCELED)
			return 0;
		if (r < 0) {
			g->res->skipped++;
			say(g, "object %" PRIu64 " (%s): %s; left as it was\n", d.id, nm,
			    r == -EAGAIN ? "changed meanwhile" : strerror(-r));
			if (g->o->hooks.progress)
				g->o->hooks.progress(g->o->hooks.ctx, done, nplan);
			if (fatal(r))
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
		say(g, "re-encoded object %" PRIu64 " (%s) as object %" PRIu64 ", %s: %" PRIu64
		    " -> %" PRIu64 " bytes, depth %u\n", d.id, nm, nw.id, how, d.stored, nw.stored,
		    nw.depth);
		if (g->o->hooks.progress)
			g->o->hooks.progress(g->o->hooks.ctx, done, nplan);
		if (retire(g, d.id, olds, nolds, capp) < 0)
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

static int rechain(gcx *g, uint64_t **olds, size_t *nolds, size_t *cap)
{
	uint32_t *height = calloc(g->n ? g->n : 1, sizeof(*height));
	if (!height)
		return -ENOMEM;
	depths(g, height);
	for (size_t i = 0; i < g->n && !cancelled(g); i++) {
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
			obj_name(g, d.id, nm, sizeof(nm));
			if (g->o->dry_run) {
				layout_free(dl);
				layout_free(al);
				say(g, "would try object %" PRIu64 " (%s, keyframe) as a delta against "
				    "object %" PRIu64 "\n", d.id, nm, a.id);
				break;
			}
			store_obj nw;
			int r = replace(g, &d, &a, dl, al, d.stored - d.stored / 10, &nw);
			layout_free(dl);
			layout_free(al);
			if (r == -EFBIG)
				break; /* the best candidate does not help: keep the keyframe */
			if (r == -ECANCELED) {
				free(height);
				return 0;
			}
			if (r < 0) {
				if (fatal(r)) {
					free(height);
					return r;
				}
				break;
			}
			say(g, "re-encoded keyframe %" PRIu64 " (%s) as %" PRIu64 " against object %"
			    PRIu64 ": %" PRIu64 " -> %" PRIu64 " bytes, depth %u\n", d.id, nm, nw.id,
			    a.id, d.stored, nw.stored, nw.depth);
			g->res->rebased++;
			g->new_bytes += nw.stored;
			x->o = nw;
			x->base = p;
			depths(g, height);
			if (retire(g, d.id, olds, nolds, cap) < 0) {
				free(height);
				return -ENOMEM;
			}
			break;
		}
	}
	free(height);
	return 0;
}

/* ---- pass 0: the newest version of each chain becomes its keyframe (see gc.h) ---- */

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
		long i = find(t, objs[p]);
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
	for (size_t i = 0; i < len && !cancelled(g); i++) {
		store_obj d = path[i], nw;
		char nm[STORE_NAME_MAX + 1];
		obj_name(g, d.id, nm, sizeof(nm));
		int r = replace(g, &d, i ? &prev : NULL, NULL, NULL, 0, &nw);
		if (r == -ECANCELED)
			return 0;
		if (r < 0) {
			g->res->skipped++;
			say(g, "object %" PRIu64 " (%s): %s; chain left as it was from here\n", d.id, nm,
			    r == -EAGAIN ? "changed meanwhile" : strerror(-r));
			return fatal(r) ? r : 0;
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
		say(g, "re-encoded object %" PRIu64 " (%s) as object %" PRIu64 ", %s: %" PRIu64
		    " -> %" PRIu64 " bytes\n", d.id, nm, nw.id, how, d.stored, nw.stored);
		if ((r = retire(g, d.id, olds, nolds, cap)) < 0)
			return r;
		prev = nw;
	}
	return 0;
}

static int newest_keyframes(gcx *g, uint64_t **olds, size_t *nolds, size_t *cap)
{
	store_obj *rows;
	size_t n;
	int r = store_admin_objects(g->s, &rows, &n); /* ordered by id */
	if (r < 0)
		return r;
	g->res->stored_before = sum_stored(rows, n);
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
		tmp.v[i].base = rows[i].base ? find(&tmp, rows[i].base) : -1;
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
	for (size_t k = 0; k < n && r == 0 && !cancelled(g); k++) {
		if (pick[k] < 0)
			continue;
		size_t len = 0;
		int dead = 0;
		for (long j = pick[k]; j >= 0; j = tmp.v[j].base) {
			dead |= rows[j].unref; /* a deleted file on the path: explicit gc first */
			path[len++] = rows[j];
		}
		if (dead)
			continue;
		if (g->o->dry_run) {
			say(g, "would make object %" PRIu64 " the keyframe of its chain (%zu re-encodes)\n",
			    path[0].id, len);
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

int gc_run(store *s, const gc_opts *o, gc_result *res)
{
	memset(res, 0, sizeof(*res));
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
		clean_files(&g);
		uint64_t *staged;
		size_t nst;
		r = store_recover(s, &staged, &nst);
		if (r < 0)
			return r;
		free(staged);
	} else {
		clean_files(&g);
	}
	if (o->newest_keyframe) {
		g.ch = o->ch ? o->ch : chain_store_new(s, 128u << 20);
		if (!g.ch)
			return -ENOMEM;
		own_chain = !o->ch;
		r = newest_keyframes(&g, &olds, &nolds, &ocap);
		if (r < 0)
			goto out;
	}
	r = store_admin_objects(s, &rows, &n);
	if (r < 0)
		goto out;
	if (!o->newest_keyframe)
		res->stored_before = sum_stored(rows, n); /* else counted before the reversal */
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
		g.v[i].base = rows[i].base ? find(&g, rows[i].base) : -1;
	r = compute_levels(&g);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), cmp_level, &g);
	size_t nplan;
	plan(&g, order, &nplan);
	uint64_t nunref = 0, unref_bytes = 0;
	for (size_t i = 0; i < n; i++)
		if (rows[i].unref) {
			nunref++;
			unref_bytes += rows[i].stored;
		}
	say(&g, "%zu objects (%" PRIu64 " bytes), %" PRIu64 " unreferenced (%" PRIu64
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
	r = execute(&g, order, nplan, &olds, &nolds, &ocap);
	if (r == 0 && !cancelled(&g) && !o->layout_only) {
		if (!g.ch) {
			g.ch = chain_store_new(s, 128u << 20);
			if (!g.ch) {
				r = -ENOMEM;
				goto out;
			}
			own_chain = 1;
		}
		r = rechain(&g, &olds, &nolds, &ocap);
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
		res->stored_after = sum_stored(rows, n2);
		uint64_t created = res->rebased + res->keyframes;
		res->freed_objects = n + created > n2 ? n + created - n2 : 0;
		uint64_t had = res->stored_before + g.new_bytes;
		res->freed_bytes = had > res->stored_after ? had - res->stored_after : 0;
	}
	if (r == 0 && !o->online)
		clean_dir(&g, "objects", 1); /* blobs of rows freed above are already gone */
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
