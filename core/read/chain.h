/* chain.h - random-access reads of stored objects, walking delta chains through the cache.
 *
 * Reading [off, off+len) of object N decodes only the chunks it covers; each such chunk that was
 * coded against a base reads the base region through the same path (recursively), so materialized
 * bases are shared through the cache. Sequential readers get read-ahead in the pool.
 */
#ifndef TPDEFS_CHAIN_H
#define TPDEFS_CHAIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "io.h"
#include "objfile.h"

/* Open object `obj`: return a reader (ownership passes to the chain) and the id of its base
 * object (0 when it has none). -ENOENT for unknown objects, -errno otherwise. */
typedef int (*chain_open_fn)(void *ctx, uint64_t obj, obj_reader **r, uint64_t *base_obj);

typedef struct chain chain;

typedef struct chain_opts {
	size_t cache_bytes;  /* budget of decoded chunks held */
	unsigned threads;    /* decode workers for read-ahead; 0 = one per CPU */
	unsigned readahead;  /* chunks decoded ahead of a sequential reader; 0 = none */
	unsigned max_open;   /* object readers (file descriptors) kept open */
	size_t readahead_bytes; /* ...and at least this many bytes ahead (chunks vary from a few
				 * bytes of archive header to 1 MiB of tensor); needs readahead > 0 */
	size_t prefault_bytes;  /* cache memory a pool thread prepares right after chain_new, so
				 * that the first reads decode into memory already backed (first
				 * touch is slow on VMs); 0 = none; needs readahead > 0 */
} chain_opts;

chain *chain_new(const chain_opts *o, chain_open_fn open, void *ctx);
void chain_free(chain *c);

/* Read up to len bytes at off of object obj (short only at end of file). Bytes returned are
 * always verified against chunk checksums: damage is -EIO, never wrong data. Thread-safe. */
ssize_t chain_pread(chain *c, uint64_t obj, void *buf, size_t len, uint64_t off);

/* Zero-copy reads: the bytes of [off, off+len) as slices of pinned decoded chunks, for replies
 * that point into the cache (FUSE writev) instead of copying. Same bytes, checks and errors as
 * chain_pread; -E2BIG (nothing held) when the range spans more than CHAIN_VIEW_MAX chunks: then
 * use chain_pread. Release with chain_view_put once the bytes are sent.
 * 128: a torch archive alternates tensors with small header chunks, so a 1 MiB reply of the
 * corpus's GPT checkpoints spans 7 to ~50 chunks (16 sent half of them to the copying path, a
 * fresh 1 MiB buffer each). What a view pins is bounded by its bytes, not its count: the
 * chunks inside the range and the two at its ends. */
#define CHAIN_VIEW_MAX 128

typedef struct chain_slice {
	const void *data;
	size_t len;
} chain_slice;

typedef struct chain_view {
	size_t n;
	chain_slice slice[CHAIN_VIEW_MAX];
	void *pin_[CHAIN_VIEW_MAX][2]; /* private: the cache entry or private copy behind a slice */
	unsigned char rel_[CHAIN_VIEW_MAX]; /* private: how chain_view_put releases it */
} chain_view;

ssize_t chain_view_get(chain *c, uint64_t obj, size_t len, uint64_t off, chain_view *v);
void chain_view_put(chain *c, chain_view *v);

/* The object was deleted or replaced: close its reader and drop its cached chunks. */
void chain_forget(chain *c, uint64_t obj);

/* Counters since chain_new, for tests and diagnostics. */
typedef struct chain_stats {
	uint64_t decoded;   /* chunks decoded (and verified), at any level of a chain */
	uint64_t readahead; /* read-ahead decodes queued */
} chain_stats;

void chain_stats_get(chain *c, chain_stats *st);

/* An io_src over object obj (size = its logical size) read through the chain, so that the
 * encoder can take a stored object as new file or base. cancelled(ctx), when given, is polled
 * before every read: nonzero fails the read with -ECANCELED (work that must give way to an
 * unmount). The chain_src must outlive the io_src. */
typedef struct chain_src {
	chain *ch;
	uint64_t obj;
	int (*cancelled)(void *ctx);
	void *ctx;
} chain_src;

void chain_src_init(io_src *s, chain_src *cs, chain *ch, uint64_t obj, uint64_t size,
		    int (*cancelled)(void *ctx), void *ctx);

#endif
