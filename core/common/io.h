/* io.h - positional byte sources and full-length I/O helpers.
 *
 * The codec never sees paths: it reads through an io_src, so the same encoder and decoder work on
 * plain files (CLI), staging files (daemon) and reconstructed objects (chain reads).
 */
#ifndef TPDEFS_IO_H
#define TPDEFS_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct io_src io_src;

/* Read up to len bytes at off. Returns bytes read (short only at end of source) or -errno.
 * Gets the io_src itself so that it can use both ctx and size. */
typedef ssize_t (*io_pread_fn)(const io_src *s, void *buf, size_t len, uint64_t off);

/* The len bytes at off, in place, when the source holds them contiguously in memory (a buffer,
 * a pinned decoded chunk); NULL otherwise (then read them). Lets a decoder skip a copy. */
typedef const void *(*io_view_fn)(const io_src *s, size_t len, uint64_t off);

struct io_src {
	io_pread_fn pread;
	void *ctx;
	uint64_t size;  /* logical size of the source */
	io_view_fn view; /* optional */
};

/* s->view(s, len, off) if the source has one, else NULL. */
const void *io_view(const io_src *s, size_t len, uint64_t off);

/* An io_src over an open file descriptor (fd is not owned). */
void io_src_from_fd(io_src *s, int fd, uint64_t size);
/* An io_src over a memory buffer (not owned). */
void io_src_from_mem(io_src *s, const void *buf, uint64_t size);

/* Exactly len bytes at off or an error: -EIO if the source ends early, -errno otherwise. */
int io_pread_full(const io_src *s, void *buf, size_t len, uint64_t off);

/* Loop over short writes and EINTR. 0 or -errno. */
int io_write_full(int fd, const void *buf, size_t len);
int io_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* Loop over short reads and EINTR; -EIO if the file ends before len bytes. */
int io_pread_fd_full(int fd, void *buf, size_t len, uint64_t off);

/* A readable file that need not be a local file descriptor: an object blob in a directory (an
 * fd) or in object storage (read through a node-local cache). Whoever opens one owns it and closes
 * it with io_rfile_close; pread may be called from several threads at once. */
typedef struct io_rfile io_rfile;
enum { IO_WILLNEED, IO_DONTNEED };
typedef struct io_rfile_ops {
	/* Exactly len bytes at off, or -errno (-EIO when the file ends first). */
	int (*pread)(io_rfile *f, void *buf, size_t len, uint64_t off);
	/* A hint: [off, off + len) is needed soon (start fetching it) or not again soon. */
	void (*advise)(io_rfile *f, uint64_t off, uint64_t len, int advice);
	void (*close)(io_rfile *f);
} io_rfile_ops;
struct io_rfile {
	const io_rfile_ops *ops;
	uint64_t size; /* bytes in the file */
};

/* An io_rfile over fd, which it owns (closed with it, also on failure). -errno from fstat. */
int io_rfile_from_fd(int fd, io_rfile **out);
static inline int io_rfile_pread(io_rfile *f, void *buf, size_t len, uint64_t off)
{
	return f->ops->pread(f, buf, len, off);
}
static inline void io_rfile_advise(io_rfile *f, uint64_t off, uint64_t len, int advice)
{
	if (f->ops->advise)
		f->ops->advise(f, off, len, advice);
}
static inline void io_rfile_close(io_rfile *f)
{
	if (f)
		f->ops->close(f);
}

/* The first size bytes of src into dst from offset 0 (-EIO if src is shorter), then dst cut to
 * size and fsync'd. 0 or -errno. */
int io_copy_fd(int src, int dst, uint64_t size);

/* fsync the directory that holds path (after a rename or create, for durability). 0 or -errno. */
int io_fsync_dir_of(const char *path);
int io_fsync_dirfd(int dirfd);

#endif
