/* slab.h - memory for decoded chunks: fixed-size slots carved from mapped regions of 32 slots, in
 * two classes: 1 MiB slots (chunks of 256 KiB - 1 MiB: objects written before the encoder's chunk
 * became 256 KiB) and 256 KiB slots (64 - 256 KiB: the encoder's default chunk and most tensor
 * tails). One class would pin a 1 MiB slot per 256 KiB chunk (4x the address space, and reused
 * slots would stay populated at 1 MiB).
 *
 * Why: the chunk cache turns over its whole budget while a large file streams through it. With
 * malloc, every new chunk landed on freshly faulted pages (the allocator gives back what eviction
 * frees), and page faults were a sixth of the daemon's CPU time on a cold restore. Slots are
 * reused as they are freed, so a cache that has filled once faults no more. (Transparent huge
 * pages were tried: on this VM their first-touch clearing cost more than the faults saved.)
 * Thread-safe. A region whose slots are all free is returned to the system, except one kept
 * spare so that a steady cache does not map and unmap.
 *
 * First touch: on this VM a page the process has never written costs ~0.45 ms per MiB (the
 * host backs it only then), more than decoding into it. So free slots that were used before are
 * handed out first, a slot used for the first time is populated in one call
 * (MADV_POPULATE_WRITE, ~40 % cheaper than 256 page faults), and slab_prefault lets an idle
 * thread prepare slots before the first reads need them.
 */
#ifndef TPDEFS_SLAB_H
#define TPDEFS_SLAB_H

#include <stddef.h>

#define SLAB_SLOT (1u << 20)       /* bytes per slot of the large class */
#define SLAB_SMALL (256u << 10)    /* bytes per slot of the small class */
#define SLAB_MIN (SLAB_SMALL / 4)  /* smaller buffers waste too much of a slot: use malloc */

typedef struct slab slab;

slab *slab_new(void);
void slab_free(slab *s); /* every slot must have been released */

/* A buffer of n bytes (any size): a slot of the smallest class that holds it when
 * SLAB_MIN <= n <= SLAB_SLOT, else malloc.
 * NULL on ENOMEM. Release with slab_release(s, p, n), same n. */
void *slab_alloc(slab *s, size_t n);
void slab_release(slab *s, void *p, size_t n);

/* Map and populate free slots of the small class (the encoder's default chunk) until at least
 * `bytes` of slots are mapped (never more regions than that needs; best effort: stops at
 * ENOMEM). For an idle thread: it takes the slab's lock only to publish each region, never while
 * populating. */
void slab_prefault(slab *s, size_t bytes);
/* Bytes of address space mapped for slots now (regions, populated or not). */
size_t slab_mapped(slab *s);

#endif
