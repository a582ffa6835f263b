/* gc_internal.h - shared by the gc modules only (gc.c, gc_clean.c, gc_rebase.c, gc_reverse.c):
 * the run's context and the steps gc_run chains together. Nothing outside core/maint includes
 * it. */
#ifndef TPDEFS_GC_INTERNAL_H
#define TPDEFS_GC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "chain.h"
#include "gc.h"
#include "layout.h"
#include "store.h"

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

/* ---- gc.c: what every pass uses ---- */

/* One line of progress through hooks.line (nothing when there is none). */
void gc_say(gcx *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Nonzero when hooks.cancelled asks to stop. */
int gc_cancelled(gcx *g);
/* Index of object id in g->v (sorted by id), -1 when absent. */
long gc_find(const gcx *g, uint64_t id);
uint64_t gc_sum_stored(const store_obj *v, size_t n);
/* A short name for messages: one file name using the object, or "-". */
void gc_obj_name(gcx *g, uint64_t obj, char *buf, size_t size);
/* One file name holding obj (name gets STORE_NAME_MAX + 1 bytes), 0 or -errno. */
int gc_file_name(gcx *g, uint64_t obj, char *name, size_t *len);
/* Re-encode d against a (NULL: keyframe) and switch the metadata to the new blob; the daemon is
 * told and readers holding the old id reopen. 0 (*nw describes the new object) or -errno, and
 * then nothing changed. Layouts already parsed by a fit check are passed on (NULL: parse). */
int gc_replace(gcx *g, const store_obj *d, const store_obj *a, const layout *dl,
	       const layout *al, uint64_t max_stored, store_obj *nw);
/* A failed re-encode that ends the run (ENOSPC, ENOMEM...); the others only skip a step. */
int gc_fatal(int r);
/* The replaced object old is no longer named: freed at the end of the run (online: after the
 * readers' barrier), at once when nobody else reads the store. */
int gc_retire(gcx *g, uint64_t old, uint64_t **olds, size_t *nolds, size_t *cap);

/* ---- gc_clean.c: files nobody owns ---- */

/* Remove (dry run: report) the stale files of one of tmp/, objects/, staging/ when doit. */
void gc_clean_dir(gcx *g, const char *sub, int doit);
void gc_clean_files(gcx *g);

/* ---- gc_rebase.c: rebase onto surviving ancestors, then keyframes back into chains ---- */

/* Levels of g->v, and order[] = its indices bases first. 0 or -ENOMEM. */
int gc_order_by_level(gcx *g, size_t *order);
/* Choose a target for each object that must move; *nplan of them. */
int gc_plan(gcx *g, size_t *order, size_t *nplan);
int gc_execute(gcx *g, size_t *order, size_t nplan, uint64_t **olds, size_t *nolds,
	       size_t *capp);
/* Pass 2: keyframes the depth limit made, re-encoded as deltas where that saves 10%. */
int gc_rechain(gcx *g, uint64_t **olds, size_t *nolds, size_t *cap);

/* ---- gc_reverse.c: pass 0, the newest version of each chain becomes its keyframe ---- */

/* Also sets res->stored_before (the sizes before anything is re-encoded). */
int gc_newest_keyframes(gcx *g, uint64_t **olds, size_t *nolds, size_t *cap);

#endif
