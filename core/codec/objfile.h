/* objfile.h - the stored object: one encoded version of one file (format in docs/FORMAT.md).
 *
 * header | chunk payloads ... | chunk index | footer
 * Written in one sequential pass (the index goes at the end, so encoding streams). Chunks are
 * independently decodable: a reader fetches the index once and then any chunk by number.
 */
#ifndef TPDEFS_OBJFILE_H
#define TPDEFS_OBJFILE_H

#include <stddef.h>
#include <stdint.h>

#include "io.h"

#define OBJ_FORMAT_VERSION 1
#define OBJ_NO_BASE UINT64_MAX

typedef struct obj_chunk {
	uint64_t off;      /* offset in the logical (decoded) file */
	uint32_t len;      /* decoded length */
	uint8_t codec;     /* enum codec_id */
	uint8_t width;     /* element width passed to the codec */
	uint64_t base_off; /* region of the base this chunk was coded against, OBJ_NO_BASE if none */
	uint32_t base_len;
	uint64_t data_off; /* payload position in the object file */
	uint32_t data_len;
	uint64_t cksum;    /* cksum64 of the decoded bytes */
} obj_chunk;

typedef struct obj_info {
	uint64_t size;         /* logical size of the decoded file */
	uint32_t chunk_size;   /* nominal chunk size used by the encoder */
	int has_base;          /* 1 when chunks refer to a predecessor */
	uint64_t base_size;    /* logical size of the predecessor */
	uint64_t base_hash;    /* content hash of the predecessor (cksum64 stream over it) */
	uint64_t content_hash; /* content hash of this file, from the footer */
	float lossy_threshold; /* > 0: a lossy object (tpde encode --lossy-threshold): the bytes it
				* decodes to are the input with changes smaller than this dropped */
} obj_info;

typedef struct obj_writer obj_writer;

/* Write the header to fd (at its current position 0). info->content_hash is ignored. */
int obj_writer_open(int fd, const obj_info *info, obj_writer **out);
/* Append one chunk payload. c->off must equal the end of the previous chunk; data_off and
 * data_len are filled in by the writer. */
int obj_writer_add(obj_writer *w, const obj_chunk *c, const void *payload, size_t plen);
/* Write index and footer; chunks must cover [0, size). Does not fsync. 0 or -errno. */
int obj_writer_finish(obj_writer *w, uint64_t content_hash);
/* Bytes written so far (header + payloads [+ index + footer after finish]). */
uint64_t obj_writer_bytes(const obj_writer *w);
void obj_writer_free(obj_writer *w);

typedef struct obj_reader obj_reader;

/* Validate header, footer and index (checksummed; chunks contiguous, inside the file, sane
 * lengths). Takes ownership of fd (closed by obj_reader_close, also on failure).
 * Errors: -EBADMSG damaged or not an object, -EPROTONOSUPPORT newer format, -errno for I/O. */
int obj_reader_open(int fd, obj_reader **out);
/* obj_reader_open over any readable file (a blob in object storage): owns f. */
int obj_reader_open_file(io_rfile *f, obj_reader **out);
const obj_info *obj_reader_info(const obj_reader *r);
size_t obj_reader_nchunks(const obj_reader *r);
const obj_chunk *obj_reader_chunk(const obj_reader *r, size_t i);
/* Index of the chunk containing off, or -ERANGE when off >= size. */
long obj_reader_find(const obj_reader *r, uint64_t off);
/* Read chunk i's payload (data_len bytes) into buf. Thread-safe (pread). */
int obj_reader_payload(const obj_reader *r, size_t i, void *buf);
/* Start reading the payloads of chunks [first, last] into the page cache without waiting
 * (POSIX_FADV_WILLNEED; best effort, a no-op for pages already cached): for a reader that will
 * need them soon and has other work to do first. */
void obj_reader_prefetch(const obj_reader *r, size_t first, size_t last);
/* The payloads of chunks [first, last] will not be read again soon: let the kernel drop their
 * page-cache pages (POSIX_FADV_DONTNEED; best effort), and those of up to 2 MiB before them
 * (what a previous call could not drop: the kernel drops whole folios only). */
void obj_reader_drop(const obj_reader *r, size_t first, size_t last);
uint64_t obj_reader_file_bytes(const obj_reader *r); /* stored size of the object file */
void obj_reader_close(obj_reader *r);

#endif
