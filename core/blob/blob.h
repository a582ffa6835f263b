/* blob.h - where a store keeps its immutable blobs: one interface, one file per engine family
 * (blob_dir.c: a directory, local or shared by every node; blob_s3.c: an S3 bucket read through a
 * node-local cache). The store above names blobs by key ("objects/00000000000000ab.tpdo",
 * "staging/000000000000002a"); nothing here knows what a key holds.
 *
 * Data before metadata: blob_put returns only once the blob is durable where every node can
 * read it (fsync'd and renamed into place; uploaded, multipart uploads completed and checked), so
 * the caller may then name it in a row. Threads: every function may be called from any thread.
 */
#ifndef TPDEFS_BLOB_H
#define TPDEFS_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "io.h"
#include "s3.h"

typedef struct blob_store blob_store;

/* The blobs under dirfd (not owned): key k is the file dirfd/k. */
int blob_dir_new(int dirfd, blob_store **out);
/* The blobs in the bucket of c (owned), read through a cache of fetched blocks in cache_dir
 * (created; kept across mounts, every block checksummed and checked on each use) holding at most
 * cache_bytes. */
int blob_s3_new(s3 *c, const char *cache_dir, uint64_t cache_bytes, blob_store **out);
void blob_free(blob_store *b);

/* 1 when blobs live in object storage (then a node's local files are not seen by others). */
int blob_is_remote(const blob_store *b);
/* The S3 client of an S3 engine, NULL otherwise. */
s3 *blob_s3(blob_store *b);

/* Make the finished local file fd (at tmp_dirfd/tmp_rel, size bytes) the blob key. The
 * directory engine fsyncs and renames it into place (tmp_dirfd must be on its filesystem); the
 * S3 engine uploads it, keeps its bytes in the cache and unlinks the local file. */
int blob_put(blob_store *b, const char *key, int fd, uint64_t size, int tmp_dirfd,
	     const char *tmp_rel);
/* A copy of fd's size bytes as key; the local file stays (a staged file's durable copy in a
 * bucket). Remote engines only: -EOPNOTSUPP for a directory, whose files every node sees. */
int blob_upload(blob_store *b, const char *key, int fd, uint64_t size);
/* Open key for reading. -ENOENT when there is no such blob. */
int blob_open(blob_store *b, const char *key, io_rfile **out);
/* The whole blob into fd (from offset 0, then fsync'd); its size in *size. */
int blob_fetch_file(blob_store *b, const char *key, int fd, uint64_t *size);
/* Size of key; -ENOENT when absent. */
int blob_stat(blob_store *b, const char *key, uint64_t *size);
/* Remove key (0 also when it was not there); its cached blocks go too. */
int blob_delete(blob_store *b, const char *key);
/* Every blob whose key starts with dir + "/": fn gets the name after that slash. */
typedef int (*blob_list_fn)(void *ctx, const char *name, uint64_t size, int64_t mtime_ns);
int blob_list(blob_store *b, const char *dir, blob_list_fn fn, void *ctx);

/* Multipart uploads begun before before_ns and never completed (a node died mid-upload): abort
 * them, telling fn each key. Count aborted, or -errno. 0 for a directory (its tmp files are the
 * store's to clean). */
typedef void (*blob_upload_fn)(void *ctx, const char *key);
int blob_uploads_clean(blob_store *b, int64_t before_ns, blob_upload_fn fn, void *ctx);

/* What the node-local cache of an S3 engine did since it was made (all 0 for a directory). */
typedef struct blob_cache_stats {
	uint64_t hits, misses;       /* block lookups served from the cache / fetched */
	uint64_t bytes_cached, capacity;
	uint64_t fetched_bytes, evictions, damaged; /* damaged: blocks that failed their check */
} blob_cache_stats;
void blob_cache_stats_get(blob_store *b, blob_cache_stats *st);

#endif
