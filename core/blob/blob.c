/* blob.c - the blob interface: dispatch to the engine a handle was made by (blob.h). */
#include "blob_internal.h"

#include <errno.h>
#include <string.h>

void blob_free(blob_store *b)
{
	if (b)
		b->e->destroy(b);
}

int blob_is_remote(const blob_store *b)
{
	return b->e->remote;
}

s3 *blob_s3(blob_store *b)
{
	return b->e->client ? b->e->client(b) : NULL;
}

int blob_put(blob_store *b, const char *key, int fd, uint64_t size, int tmp_dirfd,
	     const char *tmp_rel)
{
	return b->e->put(b, key, fd, size, tmp_dirfd, tmp_rel);
}

int blob_upload(blob_store *b, const char *key, int fd, uint64_t size)
{
	return b->e->upload ? b->e->upload(b, key, fd, size) : -EOPNOTSUPP;
}

int blob_open(blob_store *b, const char *key, io_rfile **out)
{
	*out = NULL;
	return b->e->open(b, key, out);
}

int blob_fetch_file(blob_store *b, const char *key, int fd, uint64_t *size)
{
	return b->e->fetch_file(b, key, fd, size);
}

int blob_stat(blob_store *b, const char *key, uint64_t *size)
{
	return b->e->stat(b, key, size);
}

int blob_delete(blob_store *b, const char *key)
{
	return b->e->del(b, key);
}

int blob_list(blob_store *b, const char *dir, blob_list_fn fn, void *ctx)
{
	return b->e->list(b, dir, fn, ctx);
}

int blob_uploads_clean(blob_store *b, int64_t before_ns, blob_upload_fn fn, void *ctx)
{
	return b->e->uploads_clean ? b->e->uploads_clean(b, before_ns, fn, ctx) : 0;
}

void blob_cache_stats_get(blob_store *b, blob_cache_stats *st)
{
	memset(st, 0, sizeof *st);
	if (b->e->stats)
		b->e->stats(b, st);
}
