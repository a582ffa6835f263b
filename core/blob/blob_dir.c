/* blob_dir.c - blobs as files under a directory: BACKING of the embedded store, or the blobs
 * directory every node of a shared store mounts. A key is a relative path. */
#include "blob_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct blob_dir {
	blob_store b;
	int dirfd; /* not owned */
} blob_dir;

#define DIRFD(b) (((blob_dir *)(b))->dirfd)

/* fsync the directory a key lives in (after a rename into it). */
static int sync_parent(int dirfd, const char *key)
{
	const char *slash = strrchr(key, '/');
	if (!slash)
		return io_fsync_dirfd(dirfd);
	char dir[256];
	size_t n = (size_t)(slash - key);
	if (n >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, key, n);
	dir[n] = 0;
	int dfd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int r = io_fsync_dirfd(dfd);
	close(dfd);
	return r;
}

static int dir_put(blob_store *b, const char *key, int fd, uint64_t size, int tmp_dirfd,
		   const char *tmp_rel)
{
	(void)size;
	if (fsync(fd) < 0)
		return -errno;
	if (renameat(tmp_dirfd, tmp_rel, DIRFD(b), key) < 0)
		return -errno;
	return sync_parent(DIRFD(b), key);
}

static int dir_open(blob_store *b, const char *key, io_rfile **out)
{
	int fd = openat(DIRFD(b), key, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return io_rfile_from_fd(fd, out);
}

static int dir_fetch_file(blob_store *b, const char *key, int fd, uint64_t *size)
{
	int src = openat(DIRFD(b), key, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return -errno;
	struct stat st;
	int r = fstat(src, &st) < 0 ? -errno : io_copy_fd(src, fd, (uint64_t)st.st_size);
	close(src);
	if (r == 0 && size)
		*size = (uint64_t)st.st_size;
	return r;
}

static int dir_stat(blob_store *b, const char *key, uint64_t *size)
{
	struct stat st;
	if (fstatat(DIRFD(b), key, &st, 0) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int dir_del(blob_store *b, const char *key)
{
	if (unlinkat(DIRFD(b), key, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int dir_list(blob_store *b, const char *dir, blob_list_fn fn, void *ctx)
{
	int dfd = openat(DIRFD(b), dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = errno;
		close(dfd);
		return -e;
	}
	int r = 0;
	struct dirent *e;
	while (r == 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		r = fn(ctx, e->d_name, (uint64_t)st.st_size,
		       (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
	}
	closedir(d);
	return r;
}

static void dir_destroy(blob_store *b)
{
	free(b);
}

static const blob_engine dir_engine = {
	.remote = 0,
	.put = dir_put,
	.open = dir_open,
	.fetch_file = dir_fetch_file,
	.stat = dir_stat,
	.del = dir_del,
	.list = dir_list,
	.destroy = dir_destroy,
};

int blob_dir_new(int dirfd, blob_store **out)
{
	blob_dir *d = calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	d->b.e = &dir_engine;
	d->dirfd = dirfd;
	*out = &d->b;
	return 0;
}
