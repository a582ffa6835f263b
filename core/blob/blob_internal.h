/* blob_internal.h - the engine table behind blob.h; included by the blob_*.c files only. */
#ifndef TPDEFS_BLOB_INTERNAL_H
#define TPDEFS_BLOB_INTERNAL_H

#include "blob.h"

typedef struct blob_engine {
	int remote;
	int (*put)(blob_store *b, const char *key, int fd, uint64_t size, int tmp_dirfd,
		   const char *tmp_rel);
	int (*upload)(blob_store *b, const char *key, int fd, uint64_t size); /* remote only */
	int (*open)(blob_store *b, const char *key, io_rfile **out);
	int (*fetch_file)(blob_store *b, const char *key, int fd, uint64_t *size);
	int (*stat)(blob_store *b, const char *key, uint64_t *size);
	int (*del)(blob_store *b, const char *key);
	int (*list)(blob_store *b, const char *dir, blob_list_fn fn, void *ctx);
	int (*uploads_clean)(blob_store *b, int64_t before_ns, blob_upload_fn fn, void *ctx);
	void (*stats)(blob_store *b, blob_cache_stats *st);
	s3 *(*client)(blob_store *b);
	void (*destroy)(blob_store *b);
} blob_engine;

/* Every engine's handle starts with this. */
struct blob_store {
	const blob_engine *e;
};

#endif
