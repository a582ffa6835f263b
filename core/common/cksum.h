/* cksum.h - the one checksum used on disk: XXH3-64 (libxxhash).
 * Why xxhash: >10 GB/s per core, so checksumming every decoded chunk costs <5% of decode time. */
#ifndef TPDEFS_CKSUM_H
#define TPDEFS_CKSUM_H

#include <stddef.h>
#include <stdint.h>

uint64_t cksum64(const void *buf, size_t len);

/* Streaming form, for whole-file content hashes. */
typedef struct cksum_state cksum_state;
cksum_state *cksum_new(void);            /* NULL on ENOMEM */
void cksum_update(cksum_state *s, const void *buf, size_t len);
uint64_t cksum_digest(const cksum_state *s);
void cksum_free(cksum_state *s);

#endif
