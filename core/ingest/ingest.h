/* ingest.h - a new file version into the store, one way: choose its base (pred.h), check that the
 * layouts fit, encode, install the blob durably, commit. The daemon's encode jobs, the offline
 * `tpdefs-admin flush` and gc's re-encodes all go through here.
 *
 * Reverse ingest (newest_keyframe, the default): the new version is coded once, as its chain's
 * keyframe, and its predecessor once, against it; one transaction switches both. A resumed job
 * reads the newest version, which is then never a delta. A version older than one stored already
 * (a batch taken in newest first) is coded once, forward, against its stored successor. Forward
 * ingest: the new version is coded once, as a delta against its predecessor.
 *
 * Crash safety: blobs are durable before the transaction that names them; the predecessor that
 * was replaced is retired (row and blob kept) until no reader can hold its id, and a crash before
 * that leaves only a row that mount-time recovery frees.
 */
#ifndef TPDEFS_INGEST_H
#define TPDEFS_INGEST_H

#include <stdint.h>

#include "chain.h"
#include "io.h"
#include "layout.h"
#include "store.h"

/* The defaults, defined once for the daemon, the tools and gc. */
#define INGEST_DEFAULT_MAX_CHAIN 8       /* delta chain depth bound */
#define INGEST_DEFAULT_NEWEST_KEYFRAME 1 /* reverse ingest */

typedef struct ingest_opts {
	unsigned max_chain;    /* forward: a base this deep is replaced by an ancestor at depth <=
				* max_chain / 2. 0: INGEST_DEFAULT_MAX_CHAIN */
	int reverse;           /* 1: reverse ingest (see above) */
	const int *cancel;     /* when *cancel becomes nonzero, encoding stops with -ECANCELED */
	/* Ingest staged inode ino now (a predecessor candidate still waiting); may be NULL. */
	void (*encode_first)(void *ctx, uint64_t ino);
	void *ctx;
} ingest_opts;

typedef struct ingest_job {
	uint64_t ino;
	store_obj obj;         /* the new version, installed; row committed by ingest_commit */
	int kind;              /* enum pred_kind of the predecessor, 0 for none */
	const char *why;       /* static text: how the predecessor was chosen or why there is none */
	uint64_t pred;         /* the predecessor object, 0 for none */
	int dedup;             /* obj is an existing object with the same bytes: nothing encoded,
				* the file shares it (whole-file dedup) */
	uint64_t sigs[STORE_SIG_MAX]; /* the file's tensor signatures, recorded with obj */
	size_t nsigs;
	int64_t lookup_us;     /* what finding same-tensor files cost, and how many it found */
	size_t lookups;
	uint64_t anchor;       /* reverse: the predecessor's base, which obj was coded against
				* instead of standing alone (a fine-tune keeps its model), 0 if none */
	int has_rebase;        /* reverse: rb.nw holds the predecessor re-coded against obj */
	store_rebase rb;
	uint64_t retired;      /* after ingest_commit: the predecessor object replaced by rb.nw,
				* to be released with store_release_retired once readers are done */
} ingest_job;

/* Encode the staged file of ino, readable through sfd (size bytes), and install its blob (and,
 * reverse, its predecessor's re-coded blob). A file whose bytes equal a stored object's (content
 * hash, then every byte compared) shares that object instead (j->dedup). 0 with *j ready to
 * commit, or -errno (nothing left behind). */
int ingest_prepare(store *s, chain *ch, uint64_t ino, int sfd, uint64_t size,
		   const ingest_opts *o, ingest_job *j);

/* One transaction: the new version's row, the inode pointed at it, the predecessor's switch;
 * only when check(ctx) returns 1 inside it (else -EAGAIN). On failure the blobs are discarded.
 * On success j->retired names the object to release later (0: none). */
int ingest_commit(store *s, ingest_job *j, int (*check)(void *ctx), void *ctx);

/* Frees what ingest_commit left in j (the switch's lists), not the objects. */
void ingest_job_done(ingest_job *j);

/* Keys for "the same tensors" (at most STORE_SIG_MAX into sigs): the whole layout, then its
 * largest tensors' names, lengths and widths. 0 keys when the layout holds no tensors. */
size_t ingest_layout_sigs(const layout *l, uint64_t *sigs);

/* 1 when a and b hold the same bytes (same size, compared block by block), 0 when not, -errno. */
int ingest_same_bytes(const io_src *a, const io_src *b);

/* Does base look like an earlier version of new? Both layouts are kept by the caller. */
int ingest_layouts_fit(const layout *nl, uint64_t nsize, const layout *bl, uint64_t bsize);

/* Parse both layouts and check that they fit; on 1 *nl and *bl are the caller's to free, on 0
 * they are NULL. */
int ingest_fit(const io_src *nsrc, const io_src *bsrc, layout **nl, layout **bl);

/* What to encode, for ingest_encode_blob. */
typedef struct ingest_src {
	const io_src *src;
	const layout *lay;     /* parsed layout, or NULL to parse it */
	uint64_t hash;         /* content hash it must have (0: not known, take what is read) */
} ingest_src;

/* Encode src against base (NULL: keyframe; base_hash its content hash) and install the blob
 * durably under a fresh id: *out gets id, size, stored, hash, base (base_id) and depth (base
 * depth + 1 given in base_depth). -EIO when what was read does not hash to src->hash, -EFBIG when
 * the blob would be larger than max_stored (0: no bound). Nothing is left behind on failure. */
int ingest_encode_blob(store *s, const ingest_src *src, const ingest_src *base, uint64_t base_id,
		       uint32_t base_depth, uint64_t max_stored, store_obj *out);

#endif
