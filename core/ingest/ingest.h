/* store_encode.h - turn a staged file into a stored object: choose the predecessor (pred.h),
 * check layouts and chain depth, encode (encoder.h) and install the blob durably. Committing it
 * (store_commit_object) is left to the caller, which knows whether the data changed meanwhile.
 * Used by the daemon's encode queue and by `tpdefs-admin flush` without a daemon. */
#ifndef TPDEFS_INGEST_H
#define TPDEFS_INGEST_H

#include <stdint.h>

#include "chain.h"
#include "store.h"

typedef struct store_enc_ctl {
	unsigned max_chain;    /* a base already this deep makes the new file a keyframe */
	const int *cancel;     /* when *cancel becomes nonzero, encoding stops with -ECANCELED */
	/* Encode staged inode ino now (a predecessor candidate still waiting); may be NULL. */
	void (*encode_first)(void *ctx, uint64_t ino);
	void *ctx;
} store_enc_ctl;

typedef struct store_enc_out {
	store_obj obj;         /* installed under objects/, row not yet committed */
	int kind;              /* enum pred_kind of the base, 0 for a keyframe */
	const char *why;       /* static text: how the base was chosen or why there is none */
} store_enc_out;

/* Encode the staged file of ino, readable through sfd (size bytes). Returns 0 with out->obj
 * installed, or -errno (nothing left behind). */
int store_encode_staged(store *s, chain *ch, uint64_t ino, int sfd, uint64_t size,
			const store_enc_ctl *c, store_enc_out *out);


#endif
