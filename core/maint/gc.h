/* gc.h - garbage collection of a backing store: rebase the dependents of unreferenced objects
 * (and of chains deeper than max_chain) onto a surviving ancestor or as keyframes, free what
 * nothing needs, remove orphan blobs and stale tmp/staging files.
 *
 * Crash-safe at every step: a replacement blob is durable (store_obj_install) before one
 * transaction switches the metadata to it, and old blobs are unlinked only after that commit.
 * Runs offline (tpdefs-admin holds BACKING/LOCK) or inside the daemon (hooks below).
 */
#ifndef TPDEFS_GC_H
#define TPDEFS_GC_H

#include <stddef.h>
#include <stdint.h>

#include "chain.h"
#include "ingest.h"
#include "store.h"

typedef struct gc_hooks {
	void *ctx;
	/* One line of human-readable progress (ends with '\n'). */
	void (*line)(void *ctx, const char *text);
	/* done of total re-encodes finished (for a progress bar). */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	/* After the commit that replaced old by nw: inos now use nw (the daemon repoints its
	 * in-memory nodes; it must wait for readers of old to finish). */
	void (*switched)(void *ctx, uint64_t old, uint64_t nw, const uint64_t *inos, size_t n);
	/* Before old objects are freed: readers still using them must be done. */
	void (*quiesce)(void *ctx);
	/* Nonzero: stop after the current step (nothing is lost). */
	int (*cancelled)(void *ctx);
} gc_hooks;

typedef struct gc_opts {
	unsigned max_chain;   /* 0: INGEST_DEFAULT_MAX_CHAIN */
	int dry_run;          /* plan and report, change nothing */
	int online;           /* a daemon is serving the store: leave young tmp/staging/orphan
			       * files alone (they may be encodes in flight) */
	int newest_keyframe;  /* first make the newest version of each chain its keyframe, the
			       * older versions reverse deltas against it (see gc_run) */
	int layout_only;      /* only that and the depth limit: no freeing of unreferenced
			       * objects, no cleaning (the daemon's automatic pass) */
	chain *ch;            /* reader to use (the daemon's); NULL: gc makes its own */
	gc_hooks hooks;
} gc_opts;

typedef struct gc_result {
	uint64_t rebased;          /* objects re-encoded against another base */
	uint64_t keyframes;        /* objects re-encoded as keyframes */
	uint64_t reversed;         /* chains whose newest version became the keyframe */
	uint64_t skipped;          /* re-encodes abandoned (changed meanwhile, or failed) */
	uint64_t freed_objects, freed_bytes;
	uint64_t orphan_blobs, tmp_files, staging_files, orphan_bytes;
	uint64_t stored_before, stored_after;   /* sum of object sizes */
} gc_result;

/* 0, or -errno on a fatal error (the store is consistent either way); -EBUSY when another node
 * of a shared store runs gc.
 *
 * newest_keyframe: a file is first stored as a delta against its predecessor, so the newest
 * version of a chain is the deepest and the slowest to read, though it is the one a resumed job
 * loads. This pass reverses the path from the newest version (the leaf of each chain with the
 * highest object id, referenced by a file) to the chain's keyframe: the newest is re-encoded as
 * the keyframe and each older one as a delta against its successor. Done after every encode,
 * the path is one step long (two re-encodes). Versions pushed beyond max_chain are then rebased
 * against an ancestor at depth <= max_chain / 2, like any chain that is too deep. */
int gc_run(store *s, const gc_opts *o, gc_result *res);

#endif
