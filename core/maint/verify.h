/* verify.h - check a backing store end to end: every object blob validates and every chunk
 * decodes (through its real chain) to bytes matching its checksum, object content hashes match
 * the metadata, and metadata and files agree (rows <-> blobs, inodes -> objects, bases, cycles,
 * depths, staging files, SQLite quick_check). Read-only: safe while the daemon serves the store.
 */
#ifndef TPDEFS_VERIFY_H
#define TPDEFS_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "chain.h"
#include "store.h"

typedef struct verify_opts {
	int online;   /* a daemon may change the store meanwhile: re-check before reporting */
	chain *ch;    /* NULL: verify makes its own */
	void *ctx;
	void (*line)(void *ctx, const char *text);                  /* one problem / note */
	void (*progress)(void *ctx, uint64_t done, uint64_t total); /* objects checked */
} verify_opts;

typedef struct verify_result {
	uint64_t objects, chunks, bytes;  /* checked */
	uint64_t bad_objects, bad_chunks;
	uint64_t problems;                /* everything found (0: all good) */
	uint64_t *bad_inos;               /* inodes whose data cannot be read back (malloc'd) */
	size_t nbad_inos;
} verify_result;

/* 0 when it could run (look at res->problems), -errno when it could not. */
int verify_run(store *s, const verify_opts *o, verify_result *res);
void verify_result_free(verify_result *res);

#endif
