/* blob_cache.h - a node-local cache of fixed-size blocks of remote blobs, in files under one
 * directory, within a byte budget (least recently used goes first). Blobs are immutable, so a
 * block once fetched is good for as long as its blob's key exists.
 *
 * Every block file carries its key, its blob's size and a checksum of its bytes, checked on every
 * read: a damaged or foreign file is dropped and fetched again, never served. The files survive a
 * remount; the index is rebuilt from them at open (oldest modification first out).
 *
 * Threads: one mutex guards the index; file I/O runs outside it. A block being fetched is marked
 * pending so that a second reader waits for it instead of fetching it again.
 */
#ifndef TPDEFS_BLOB_CACHE_H
#define TPDEFS_BLOB_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"

#define BCACHE_BLOCK (1u << 20)
#define BCACHE_KEY_MAX 64

typedef struct bcache bcache;

int bcache_open(const char *dir, uint64_t capacity, bcache **out);
void bcache_close(bcache *c);

/* The outcome of bcache_claim. */
enum { BCACHE_HIT, BCACHE_CLAIMED };

/* Block blk of key: BCACHE_HIT with its bytes [lo, hi) in dst (*len the block's length,
 * *blob_size the blob's size; only the 64 KiB segments that range touches are read and checked),
 * or BCACHE_CLAIMED: it is not cached and the caller now fetches it, then calls bcache_fill
 * (fetched) or bcache_release (failed). Waits while another thread fetches it. wait = 0: do not
 * wait, return -EAGAIN instead (read-ahead). dst NULL: a probe, which claims a missing block but
 * does not read a cached one (nor check it). */
int bcache_claim(bcache *c, const char *key, uint64_t blk, size_t lo, size_t hi, void *dst,
		 size_t *len, uint64_t *blob_size, int wait);
/* Store the fetched bytes of a claimed block (len bytes; blob_size the whole blob's size) and
 * wake its waiters. Best effort: a full or failing disk leaves the block uncached. */
void bcache_fill(bcache *c, const char *key, uint64_t blk, const void *buf, size_t len,
		 uint64_t blob_size);
/* Give up a claim (the fetch failed): waiters then fetch it themselves. */
void bcache_release(bcache *c, const char *key, uint64_t blk);
/* The size of key's blob when any block of it is cached (no request needed), else -ENOENT. */
int bcache_blob_size(bcache *c, const char *key, uint64_t *size);
/* Drop cached block blk of key (it does not fit the blob being read). */
void bcache_drop(bcache *c, const char *key, uint64_t blk);
/* Drop every cached block of key (its blob was deleted, or is written anew). */
void bcache_forget(bcache *c, const char *key);
void bcache_stats(bcache *c, blob_cache_stats *st);

#endif
