/* io.c - positional sources and full-length I/O. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static ssize_t fd_pread(const io_src *s, void *buf, size_t len, uint64_t off)
{
	int fd = (int)(intptr_t)s->ctx;
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

void io_src_from_fd(io_src *s, int fd, uint64_t size)
{
	s->pread = fd_pread;
	s->ctx = (void *)(intptr_t)fd;
	s->size = size;
	s->view = NULL;
}

const void *io_view(const io_src *s, size_t len, uint64_t off)
{
	return s->view ? s->view(s, len, off) : NULL;
}

static const void *mem_view(const io_src *s, size_t len, uint64_t off)
{
	if (off > s->size || len > s->size - off)
		return NULL;
	return (const uint8_t *)s->ctx + off;
}

static ssize_t mem_pread(const io_src *s, void *buf, size_t len, uint64_t off)
{
	if (off >= s->size)
		return 0;
	if (len > s->size - off)
		len = (size_t)(s->size - off);
	memcpy(buf, (const uint8_t *)s->ctx + off, len);
	return (ssize_t)len;
}

void io_src_from_mem(io_src *s, const void *buf, uint64_t size)
{
	s->pread = mem_pread;
	s->ctx = (void *)(uintptr_t)buf;
	s->size = size;
	s->view = mem_view;
}

int io_pread_full(const io_src *s, void *buf, size_t len, uint64_t off)
{
	ssize_t n = s->pread(s, buf, len, off);
	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EIO;
}

int io_pread_fd_full(int fd, void *buf, size_t len, uint64_t off)
{
	io_src s;
	io_src_from_fd(&s, fd, UINT64_MAX); /* fd_pread stops at the real end of the file */
	return io_pread_full(&s, buf, len, off);
}

int io_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int io_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int io_fsync_dirfd(int dirfd)
{
	return fsync(dirfd) < 0 ? -errno : 0;
}

int io_fsync_dir_of(const char *path)
{
	char dir[4096];
	size_t n = strlen(path);
	if (n >= sizeof dir)
		return -ENAMETOOLONG;
	memcpy(dir, path, n + 1);
	char *slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = io_fsync_dirfd(fd);
	close(fd);
	return rc;
}

int io_copy_fd(int src, int dst, uint64_t size)
{
	size_t bs = 1u << 20;
	char *buf = malloc(bs);
	if (!buf)
		return -ENOMEM;
	int r = 0;
	for (uint64_t off = 0; r == 0 && off < size;) {
		size_t want = size - off < bs ? (size_t)(size - off) : bs;
		r = io_pread_fd_full(src, buf, want, off);
		if (r == 0)
			r = io_pwrite_full(dst, buf, want, off);
		off += want;
	}
	free(buf);
	if (r == 0 && ftruncate(dst, (off_t)size) < 0)
		r = -errno;
	if (r == 0 && fsync(dst) < 0)
		r = -errno;
	return r;
}

/* ---- io_rfile over a local file ---- */

typedef struct fd_rfile {
	io_rfile f;
	int fd;
} fd_rfile;

static int fdr_pread(io_rfile *f, void *buf, size_t len, uint64_t off)
{
	return io_pread_fd_full(((fd_rfile *)f)->fd, buf, len, off);
}

static void fdr_advise(io_rfile *f, uint64_t off, uint64_t len, int advice)
{
	(void)posix_fadvise(((fd_rfile *)f)->fd, (off_t)off, (off_t)len,
			    advice == IO_WILLNEED ? POSIX_FADV_WILLNEED : POSIX_FADV_DONTNEED);
}

static void fdr_close(io_rfile *f)
{
	close(((fd_rfile *)f)->fd);
	free(f);
}

static const io_rfile_ops fd_rfile_ops = {fdr_pread, fdr_advise, fdr_close};

int io_rfile_from_fd(int fd, io_rfile **out)
{
	*out = NULL;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	fd_rfile *r = malloc(sizeof *r);
	if (!r) {
		close(fd);
		return -ENOMEM;
	}
	r->f.ops = &fd_rfile_ops;
	r->f.size = (uint64_t)st.st_size;
	r->fd = fd;
	*out = &r->f;
	return 0;
}
