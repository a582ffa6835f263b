/* chain_store.c - chain reads over a store's objects (see chain_store.h). */
#include "chain_store.h"

#include <errno.h>

int chain_store_open(void *ctx, uint64_t obj, obj_reader **r, uint64_t *base_obj)
{
	store *s = ctx;
	store_obj o;
	int rr = store_obj_get(s, obj, &o);
	int trashed = rr == -ENOENT;
	if (trashed)
		/* deleted by another node of a shared store while this one still reads it: the
		 * blob waits out a grace period, and the trash row keeps its base (not its size
		 * or hash) */
		rr = store_trash_get(s, obj, &o);
	if (rr < 0)
		return rr;
	io_rfile *f;
	rr = store_obj_open(s, obj, &f);
	if (rr == -ENOENT)
		return -EIO; /* a row without its blob: a damaged store, not a missing file */
	if (rr < 0)
		return rr;
	/* No read-ahead of the whole object: the chain reader asks for exactly the payloads it is
	 * about to decode (obj_reader_prefetch), so a 4 KiB read waits for its chunk and its chain,
	 * not behind the whole of every object of the chain. */
	rr = obj_reader_open_file(f, r);
	if (rr < 0)
		return rr == -EBADMSG ? -EIO : rr;
	const obj_info *in = obj_reader_info(*r);
	if (!trashed && (in->size != o.size || in->content_hash != o.hash)) {
		/* a blob that is not the one the row names (a foreign or stale copy): its chunks
		 * may all check, and still it is not this object */
		obj_reader_close(*r);
		*r = NULL;
		return -EIO;
	}
	*base_obj = o.base;
	return 0;
}

chain *chain_store_new(store *s, size_t cache_bytes)
{
	chain_opts co = {.cache_bytes = cache_bytes, .readahead = 2, .max_open = 64};
	return chain_new(&co, chain_store_open, s);
}
