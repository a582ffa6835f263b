/* decoder.h - decode chunks of an object back to the original bytes. */
#ifndef TPDEFS_DECODER_H
#define TPDEFS_DECODER_H

#include <stdint.h>
#include "codec.h"
#include "io.h"
#include "objfile.h"

/* Decode chunk i of r into out (obj_reader_chunk(r,i)->len bytes). base supplies the predecessor
 * (NULL for objects without one; a chunk that needs a base then fails with -EINVAL). The decoded
 * bytes are checked against the chunk checksum: -EIO on mismatch, -EBADMSG on a malformed
 * payload. Nothing unverified is ever left in out on success paths. */
int dec_chunk(codec_ctx *c, const obj_reader *r, size_t i, const io_src *base, uint8_t *out);

/* Decode the whole object to out_fd (sequential, chunks decoded in parallel by `threads`).
 * Checks base->size and, when verify_base is set, the base content hash first (-ESTALE on a
 * wrong base). 0 or -errno. */
int dec_file(const obj_reader *r, const io_src *base, int verify_base, unsigned threads, int out_fd);

#endif
