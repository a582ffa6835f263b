/* node.c - in-memory inode table: kernel lookup counts, open handles, staging state. */
#include "fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

int fs_nodes_init(fs *f)
{
	f->htsize = 4096;
	f->ht = calloc(f->htsize, sizeof(*f->ht));
	if (!f->ht)
		return -ENOMEM;
	pthread_mutex_init(&f->nmu, NULL);
	return 0;
}

static void node_destroy(fs_node *n)
{
	if (n->sfd >= 0)
		close(n->sfd);
	pthread_rwlock_destroy(&n->dlock);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

void fs_nodes_free(fs *f)
{
	for (size_t i = 0; i < f->htsize; i++) {
		fs_node *n = f->ht[i];
		while (n) {
			fs_node *nx = n->next;
			node_destroy(n);
			n = nx;
		}
	}
	free(f->ht);
	pthread_mutex_destroy(&f->nmu);
}

static size_t slot(fs *f, uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 20) % f->htsize;
}

fs_node *fs_node_find(fs *f, uint64_t ino)
{
	pthread_mutex_lock(&f->nmu);
	fs_node *n = f->ht[slot(f, ino)];
	while (n && n->ino != ino)
		n = n->next;
	if (n)
		n->refs++;
	pthread_mutex_unlock(&f->nmu);
	return n;
}

static int node_load(fs *f, fs_node *n)
{
	store_attr a;
	int tries = 0;
again:;
	int r = store_getattr(f->st, n->ino, &a);
	if (r < 0)
		return r;
	n->staged = a.staged;
	n->obj = a.obj;
	n->size = a.size;
	n->mtime = a.mtime;
	n->ctime = a.ctime;
	if (a.staged) {
		int fd = store_staging_open(f->st, n->ino, 0);
		if (fd == -ESTALE && tries++ < 3)
			goto again; /* stored by another node between the two looks */
		if (fd < 0 && fd == -ENOENT)
			fd = store_staging_open(f->st, n->ino, 1); /* lost staging: empty, not a crash */
		if (fd < 0)
			return fd;
		n->sfd = fd;
		struct stat st;
		if (fstat(fd, &st) == 0)
			n->size = (uint64_t)st.st_size;
	}
	n->loaded = 1;
	return 0;
}

int fs_node_get(fs *f, uint64_t ino, fs_node **out)
{
	*out = NULL;
	pthread_mutex_lock(&f->nmu);
	size_t h = slot(f, ino);
	fs_node *n = f->ht[h];
	while (n && n->ino != ino)
		n = n->next;
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&f->nmu);
			return -ENOMEM;
		}
		n->ino = ino;
		n->sfd = -1;
		pthread_rwlock_init(&n->dlock, NULL);
		pthread_mutex_init(&n->mu, NULL);
		n->next = f->ht[h];
		f->ht[h] = n;
	}
	n->refs++;
	pthread_mutex_unlock(&f->nmu);
	pthread_mutex_lock(&n->mu);
	int r = n->loaded ? 0 : node_load(f, n);
	pthread_mutex_unlock(&n->mu);
	if (r < 0) {
		fs_node_put(f, n);
		return r;
	}
	*out = n;
	return 0;
}

/* Unhook and destroy n if nobody references it; then drop the inode if it has no links. */
static void maybe_free(fs *f, fs_node *n)
{
	if (n->refs || n->nlookup) {
		pthread_mutex_unlock(&f->nmu);
		return;
	}
	fs_node **pp = &f->ht[slot(f, n->ino)];
	while (*pp && *pp != n)
		pp = &(*pp)->next;
	if (*pp)
		*pp = n->next;
	pthread_mutex_unlock(&f->nmu);
	uint64_t ino = n->ino;
	node_destroy(n);
	store_drop_inode(f->st, ino); /* no-op while it still has links */
}

void fs_node_put(fs *f, fs_node *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&f->nmu);
	n->refs--;
	maybe_free(f, n);
}

void fs_node_lookup_inc(fs *f, fs_node *n)
{
	pthread_mutex_lock(&f->nmu);
	n->nlookup++;
	pthread_mutex_unlock(&f->nmu);
}

void fs_node_forget(fs *f, uint64_t ino, uint64_t nlookup)
{
	pthread_mutex_lock(&f->nmu);
	fs_node *n = f->ht[slot(f, ino)];
	while (n && n->ino != ino)
		n = n->next;
	if (!n) {
		pthread_mutex_unlock(&f->nmu);
		return;
	}
	n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
	maybe_free(f, n);
}

int fs_node_stage(fs *f, fs_node *n, int trunc)
{
	pthread_rwlock_wrlock(&n->dlock);
	pthread_mutex_lock(&n->mu);
	int r = 0;
	int64_t now = store_now_ns();
	if (n->staged) {
		/* a shared store: data another live node staged is its own until stored there */
		int mine = store_stage_mine(f->st, n->ino);
		if (mine != 1) {
			r = mine < 0 ? mine : -EBUSY;
			goto out;
		}
		if (trunc && n->size) {
			/* Commit size 0 before truncating: a crash in between must leave the
			 * old bytes or an empty file, never the old size over a hole. */
			r = store_commit_size(f->st, n->ino, 0, now, now);
			if (r == 0 && ftruncate(n->sfd, 0) < 0)
				r = -errno;
			if (r == 0) {
				n->size = 0;
				n->mtime = n->ctime = now;
				n->dirty = 1;
				n->gen++;
			}
		}
		goto out;
	}
	int fd = store_staging_open(f->st, n->ino, 1);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	if (ftruncate(fd, 0) < 0) {
		r = -errno;
		close(fd);
		goto out;
	}
	uint64_t size = trunc ? 0 : n->size;
	if (size && n->obj) {
		/* materialise the stored version so that writes can land anywhere */
		size_t bs = 1u << 20;
		char *buf = malloc(bs);
		if (!buf)
			r = -ENOMEM;
		for (uint64_t off = 0; r == 0 && off < size;) {
			size_t want = size - off < bs ? (size_t)(size - off) : bs;
			ssize_t got = chain_pread(f->ch, n->obj, buf, want, off);
			if (got < 0)
				r = (int)got;
			else if (got == 0)
				r = -EIO;
			else {
				r = io_pwrite_full(fd, buf, (size_t)got, off);
				off += (uint64_t)got;
			}
		}
		free(buf);
	} else if (size) {
		if (ftruncate(fd, (off_t)size) < 0)
			r = -errno;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0)
		r = store_begin_staging(f->st, n->ino, size, trunc ? now : n->mtime,
					trunc ? now : n->ctime);
	if (r < 0) {
		close(fd);
		goto out;
	}
	n->sfd = fd;
	n->staged = 1;
	n->obj = 0;
	n->size = size;
	if (trunc)
		n->mtime = n->ctime = now;
	n->gen++;
out:
	pthread_mutex_unlock(&n->mu);
	pthread_rwlock_unlock(&n->dlock);
	return r;
}

int fs_node_commit(fs *f, fs_node *n)
{
	pthread_mutex_lock(&n->mu);
	int r = 0;
	if (n->staged && n->sfd >= 0) {
		int fd = n->sfd;
		pthread_mutex_unlock(&n->mu);
		if (fsync(fd) < 0)
			return -errno;
		pthread_mutex_lock(&n->mu);
		if (n->dirty) {
			r = store_commit_size(f->st, n->ino, n->size, n->mtime, n->ctime);
			if (r == 0)
				n->dirty = 0;
		}
	}
	pthread_mutex_unlock(&n->mu);
	return r;
}

void fs_node_refresh(fs *f, fs_node *n)
{
	store_attr a;
	if (store_getattr(f->st, n->ino, &a) < 0)
		return;
	pthread_rwlock_wrlock(&n->dlock);
	pthread_mutex_lock(&n->mu);
	if (n->nwriters == 0 && !n->dirty && n->loaded &&
	    (a.staged != n->staged || a.obj != n->obj || a.size != n->size || a.mtime != n->mtime)) {
		if (n->sfd >= 0)
			close(n->sfd);
		n->sfd = -1;
		n->loaded = 0;
		if (node_load(f, n) == 0)
			n->gen++;
	}
	pthread_mutex_unlock(&n->mu);
	pthread_rwlock_unlock(&n->dlock);
}

/* ---- transitions of the node state (caller holds n->mu) ---- */

void fs_node_truncated(fs_node *n, uint64_t size, int64_t mtime, int64_t ctime)
{
	n->size = size;
	n->mtime = mtime;
	n->ctime = ctime;
	n->gen++;
	n->dirty = 1;
}

int fs_node_opened(fs_node *n, int writer)
{
	if (writer) {
		n->nwriters++;
		n->unflushed++;
		n->gen++; /* an encode running now must not commit */
	}
	/* the kernel's cached pages are still good when nothing changed since the last open */
	int keep_cache = !writer && n->gen == n->seen_gen;
	n->seen_gen = n->gen;
	return keep_cache;
}

void fs_node_write_begin(fs_node *n, int *handle_flushed)
{
	n->gen++;
	n->inflight++;
	if (*handle_flushed) {
		*handle_flushed = 0;
		n->unflushed++;
	}
}

void fs_node_write_end(fs_node *n, int ok, uint64_t end, int64_t now)
{
	n->inflight--;
	if (ok) {
		if (end > n->size)
			n->size = end;
		n->mtime = n->ctime = now;
		n->dirty = 1;
	}
}

void fs_node_handle_flushed(fs_node *n, int *handle_flushed)
{
	if (!*handle_flushed) {
		*handle_flushed = 1;
		n->unflushed--;
	}
}

int fs_node_writer_closed(fs_node *n, int handle_flushed)
{
	n->nwriters--;
	if (!handle_flushed)
		n->unflushed--;
	n->seen_gen = n->gen; /* the kernel's page cache saw every write */
	return n->nwriters == 0 && n->staged;
}

void fs_node_encoded(fs_node *n, uint64_t obj)
{
	if (n->sfd >= 0)
		close(n->sfd);
	n->sfd = -1;
	n->staged = 0;
	n->obj = obj;
	n->dirty = 0;
}

void fs_nodes_repoint(fs *f, uint64_t old, uint64_t nw, const uint64_t *inos, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		fs_node *nd = fs_node_find(f, inos[i]);
		if (!nd)
			continue;
		/* the exclusive dlock waits for reads of the old object to finish */
		pthread_rwlock_wrlock(&nd->dlock);
		pthread_mutex_lock(&nd->mu);
		if (nd->obj == old)
			nd->obj = nw;
		pthread_mutex_unlock(&nd->mu);
		pthread_rwlock_unlock(&nd->dlock);
		fs_node_put(f, nd);
	}
}

void fs_nodes_barrier(fs *f)
{
	size_t cap = 64, n = 0;
	fs_node **v = malloc(cap * sizeof(*v));
	if (!v) {
		sleep(2); /* no memory for the list: give reads time instead */
		return;
	}
	pthread_mutex_lock(&f->nmu);
	for (size_t b = 0; b < f->htsize; b++)
		for (fs_node *nd = f->ht[b]; nd; nd = nd->next) {
			if (n == cap) {
				fs_node **p = realloc(v, 2 * cap * sizeof(*v));
				if (!p)
					break;
				v = p;
				cap *= 2;
			}
			if (n < cap) {
				nd->refs++;
				v[n++] = nd;
			}
		}
	pthread_mutex_unlock(&f->nmu);
	for (size_t i = 0; i < n; i++) {
		pthread_rwlock_wrlock(&v[i]->dlock);
		pthread_rwlock_unlock(&v[i]->dlock);
		fs_node_put(f, v[i]);
	}
	free(v);
}
