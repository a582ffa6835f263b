/* cache.h - LRU of decoded chunks with a byte budget. Concurrent requests for the same chunk wait
 * for one decode (no thundering herd). Entries are refcounted: a pinned entry is never freed. */
#ifndef TPDEFS_CACHE_H
#define TPDEFS_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct cache cache;
typedef struct cache_entry cache_entry;

/* Fill buf (len bytes, allocated by the cache) for key; 0 or -errno (then nothing is cached). */
typedef int (*cache_load_fn)(void *ctx, uint64_t obj, uint64_t idx, uint8_t *buf, size_t len);

cache *cache_new(size_t budget_bytes);
void cache_free(cache *c); /* all entries must be released */

/* Return the pinned entry for (obj, idx), loading it with load(ctx, ...) if absent. len is the
 * chunk's decoded size. 0 or the loader's -errno. */
int cache_get(cache *c, uint64_t obj, uint64_t idx, size_t len, cache_load_fn load, void *ctx,
	      cache_entry **out);
/* Return the entry if it is already cached (pinned), else NULL. Never loads. */
cache_entry *cache_peek(cache *c, uint64_t obj, uint64_t idx);
const uint8_t *cache_entry_data(const cache_entry *e);
size_t cache_entry_len(const cache_entry *e);
void cache_put(cache *c, cache_entry *e); /* unpin */
/* Unpin, and make the entry the first to evict when it becomes idle: for chunks that were only
 * needed to decode another one (chain bases), so they do not push out the chunks being read. */
void cache_put_cold(cache *c, cache_entry *e);
/* Unpin an entry whose bytes the reader has consumed and will not ask for again soon (a stream
 * that read through the chunk's end; the kernel's page cache now holds them): evicted before
 * every other idle entry, unless another holder released it warm or cold since it was idle. */
void cache_put_spent(cache *c, cache_entry *e);
/* Drop every unpinned entry of obj (deleted or re-encoded object). */
void cache_drop_obj(cache *c, uint64_t obj);
size_t cache_bytes(const cache *c); /* bytes held now */
/* Prepare memory for up to `bytes` of entries (capped at the budget) so that the first loads do
 * not fault fresh pages in; for an idle thread, may take a while (see slab_prefault). */
void cache_prefault(cache *c, size_t bytes);

#endif
