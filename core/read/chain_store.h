/* chain_store.h - the chain reader over a store's objects: the glue between the read path and the
 * store, kept in the read layer so that the store knows nothing of chains. */
#ifndef TPDEFS_CHAIN_STORE_H
#define TPDEFS_CHAIN_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "chain.h"
#include "store.h"

/* chain_open_fn over a store (ctx = store *): the object's blob, validated; its base from the
 * object row. A blob that fails validation is -EIO. */
int chain_store_open(void *ctx, uint64_t obj, obj_reader **r, uint64_t *base_obj);

/* A chain reader over the store's objects for tools and maintenance (the daemon sizes its own).
 * NULL on ENOMEM. */
chain *chain_store_new(store *s, size_t cache_bytes);

#endif
