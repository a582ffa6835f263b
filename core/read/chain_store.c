/* chain_store.c - chain reads over a store's objects (see chain_store.h). */
#include "chain_store.h"

#include <errno.h>
#include <fcntl.h>

#define CHAIN_STORE_PREFETCH_MAX (64u << 20) /* object files read ahead whole on open */

int chain_store_open(void *ctx, uint64_t obj, obj_reader **r, uint64_t *base_obj)
{
	store *s = ctx;
	store_obj o;
	int rr = store_obj_get(s, obj, &o);
	if (rr == -ENOENT)
		/* deleted by another node of a shared store while this one still reads it: the
		 * blob waits out a grace period, and the trash row keeps its base */
		rr = store_trash_get(s, obj, &o);
	if (rr < 0)
		return rr;
	int fd = store_obj_open(s, obj);
	if (fd < 0)
		return fd;
	/* A cold read of a chain decodes every level chunk by chunk, each level waiting for its own
	 * small synchronous reads: ask for the whole (small) object file at once so the disk reads
	 * of all levels overlap. Larger objects are left to kernel read-ahead (a 4 KiB read of a
	 * big file must not pull gigabytes). */
	if (o.stored <= CHAIN_STORE_PREFETCH_MAX)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	rr = obj_reader_open(fd, r);
	if (rr < 0)
		return rr == -EBADMSG ? -EIO : rr;
	*base_obj = o.base;
	return 0;
}

chain *chain_store_new(store *s, size_t cache_bytes)
{
	chain_opts co = {.cache_bytes = cache_bytes, .readahead = 2, .max_open = 64};
	return chain_new(&co, chain_store_open, s);
}
