/* blob_cache.c - the node-local block cache (blob_cache.h).
 *
 * Block file: <key hash, 16 hex>-<block number, 8 hex>, holding a header then the bytes:
 *   0 "TPDEBLK2" | 8 key length (u16) | 10 key (64 bytes, zero padded) | 74 block length (u32)
 *   | 78 blob size (u64) | 86 cksum64 of each 64 KiB segment of the bytes (16 x u64)
 *   | 214 cksum64 of bytes 0..213 (u64) | 222
 * written to a temporary name and renamed, so a crash leaves a whole block or none. A read
 * checks the header and only the segments it covers: a chunk of 70 KB does not pay for reading
 * and hashing the whole 1 MiB around it.
 */
#include "blob_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cksum.h"
#include "io.h"
#include "le.h"

#define SEG (64u << 10)
#define NSEG (BCACHE_BLOCK / SEG)
#define HDR_CK (86 + 8 * NSEG)     /* where the header's own checksum is */
#define HDR (HDR_CK + 8)
#define NBUCKETS 4096

typedef struct bentry {
	uint64_t kh, blk;
	uint64_t bytes;           /* on disk, header included; 0 while pending */
	int pending;
	struct bentry *hnext;     /* hash chain */
	struct bentry *prev, *next; /* LRU list of present entries, most recent at head */
} bentry;

struct bcache {
	int dirfd;
	uint64_t capacity, used;
	pthread_mutex_t mu;       /* guards everything below */
	pthread_cond_t cv;        /* a pending block was filled or released */
	bentry *ht[NBUCKETS];
	bentry *head, *tail;
	blob_cache_stats st;
};

static uint64_t key_hash(const char *key)
{
	return cksum64(key, strlen(key));
}

static size_t bucket(uint64_t kh, uint64_t blk)
{
	return (size_t)((kh ^ (blk * 0x9e3779b97f4a7c15ULL)) % NBUCKETS);
}

static void file_name(uint64_t kh, uint64_t blk, char *buf, size_t size)
{
	snprintf(buf, size, "%016" PRIx64 "-%08" PRIx64, kh, blk);
}

static bentry *find(bcache *c, uint64_t kh, uint64_t blk)
{
	for (bentry *e = c->ht[bucket(kh, blk)]; e; e = e->hnext)
		if (e->kh == kh && e->blk == blk)
			return e;
	return NULL;
}

static void lru_unlink(bcache *c, bentry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else if (c->head == e)
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else if (c->tail == e)
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push(bcache *c, bentry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static void lru_append(bcache *c, bentry *e)
{
	e->next = NULL;
	e->prev = c->tail;
	if (c->tail)
		c->tail->next = e;
	c->tail = e;
	if (!c->head)
		c->head = e;
}

static void ht_remove(bcache *c, bentry *e)
{
	bentry **pp = &c->ht[bucket(e->kh, e->blk)];
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
}

static void ht_add(bcache *c, bentry *e)
{
	size_t b = bucket(e->kh, e->blk);
	e->hnext = c->ht[b];
	c->ht[b] = e;
}

/* Remove a present entry and its file (lock held). */
static void drop(bcache *c, bentry *e)
{
	char name[40];
	file_name(e->kh, e->blk, name, sizeof(name));
	unlinkat(c->dirfd, name, 0);
	lru_unlink(c, e);
	ht_remove(c, e);
	c->used -= e->bytes;
	c->st.bytes_cached = c->used;
	free(e);
}

/* Make room for bytes more (lock held). */
static void evict_for(bcache *c, uint64_t bytes)
{
	while (c->tail && c->used + bytes > c->capacity) {
		drop(c, c->tail);
		c->st.evictions++;
	}
}

typedef struct found {
	uint64_t kh, blk, bytes;
	int64_t mtime;
} found;

static int by_mtime(const void *a, const void *b)
{
	const found *x = a, *y = b;
	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* Rebuild the index from the files: oldest modification at the tail. */
static int scan(bcache *c)
{
	int fd = dup(c->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	found *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t kh, blk;
		int used = 0;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (sscanf(de->d_name, "%16" SCNx64 "-%8" SCNx64 "%n", &kh, &blk, &used) != 2 ||
		    de->d_name[used] || used != 25) {
			unlinkat(c->dirfd, de->d_name, 0); /* a .temporary left by a crash */
			continue;
		}
		struct stat st;
		if (fstatat(c->dirfd, de->d_name, &st, 0) < 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			found *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[n++] = (found){kh, blk, (uint64_t)st.st_size,
				 (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
	}
	closedir(d);
	if (r == 0 && n)
		qsort(v, n, sizeof(*v), by_mtime);
	for (size_t i = n; r == 0 && i-- > 0;) {
		bentry *e = calloc(1, sizeof(*e));
		if (!e) {
			r = -ENOMEM;
			break;
		}
		e->kh = v[i].kh;
		e->blk = v[i].blk;
		e->bytes = v[i].bytes;
		ht_add(c, e);
		lru_append(c, e); /* newest first */
		c->used += e->bytes;
	}
	free(v);
	if (r == 0)
		evict_for(c, 0); /* a smaller budget than last time */
	c->st.bytes_cached = c->used;
	return r;
}

int bcache_open(const char *dir, uint64_t capacity, bcache **out)
{
	*out = NULL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	bcache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->capacity = capacity;
	c->st.capacity = capacity;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = c->dirfd < 0 ? -errno : scan(c);
	if (r < 0) {
		bcache_close(c);
		return r;
	}
	*out = c;
	return 0;
}

void bcache_close(bcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < NBUCKETS; i++)
		for (bentry *e = c->ht[i], *nx; e; e = nx) {
			nx = e->hnext;
			free(e);
		}
	if (c->dirfd >= 0)
		close(c->dirfd);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* Check a block file's header against key: the block length, or -EBADMSG. */
static int check_header(const uint8_t *h, const char *key, uint64_t *blob_size)
{
	size_t klen = strlen(key);
	uint64_t len = le_get32(h + 74);
	if (memcmp(h, "TPDEBLK2", 8) || le_get64(h + HDR_CK) != cksum64(h, HDR_CK) ||
	    le_get16(h + 8) != klen || memcmp(h + 10, key, klen) || len == 0 ||
	    len > BCACHE_BLOCK)
		return -EBADMSG;
	*blob_size = le_get64(h + 78);
	return (int)len;
}

/* Bytes [lo, hi) of a cached block into dst, every segment they touch read and checked: the
 * block's length, or -EBADMSG (damaged, foreign, shorter than asked), -errno. */
static int read_block(bcache *c, const char *key, uint64_t kh, uint64_t blk, size_t lo,
		      size_t hi, void *dst, uint64_t *blob_size)
{
	char name[40];
	file_name(kh, blk, name, sizeof(name));
	int fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	uint8_t h[HDR];
	uint8_t *seg = NULL;
	int r = io_pread_fd_full(fd, h, HDR, 0);
	int len = r == 0 ? check_header(h, key, blob_size) : r;
	if (len > 0 && hi > (size_t)len)
		len = -EBADMSG; /* the blob is longer than this block says */
	if (len > 0 && hi > lo) {
		size_t s0 = lo / SEG, s1 = (hi - 1) / SEG;
		size_t a = s0 * SEG, b = (s1 + 1) * SEG < (size_t)len ? (s1 + 1) * SEG : (size_t)len;
		if (!(seg = malloc(b - a)))
			len = -ENOMEM;
		else if ((r = io_pread_fd_full(fd, seg, b - a, HDR + a)) < 0)
			len = r == -EIO ? -EBADMSG : r;
		for (size_t k = s0; len > 0 && k <= s1; k++) {
			size_t sa = k * SEG, sb = sa + SEG < (size_t)len ? sa + SEG : (size_t)len;
			if (cksum64(seg + (sa - a), sb - sa) != le_get64(h + 86 + 8 * k))
				len = -EBADMSG;
		}
		if (len > 0)
			memcpy(dst, seg + (lo - a), hi - lo);
	}
	free(seg);
	close(fd);
	return len;
}

int bcache_claim(bcache *c, const char *key, uint64_t blk, size_t lo, size_t hi, void *dst,
		 size_t *len, uint64_t *blob_size, int wait)
{
	if (strlen(key) > BCACHE_KEY_MAX)
		return -ENAMETOOLONG;
	uint64_t kh = key_hash(key);
	pthread_mutex_lock(&c->mu);
	for (;;) {
		bentry *e = find(c, kh, blk);
		if (!e) {
			e = calloc(1, sizeof(*e));
			if (!e) {
				pthread_mutex_unlock(&c->mu);
				return -ENOMEM;
			}
			e->kh = kh;
			e->blk = blk;
			e->pending = 1;
			ht_add(c, e);
			c->st.misses++;
			pthread_mutex_unlock(&c->mu);
			return BCACHE_CLAIMED;
		}
		if (e->pending) {
			if (!wait) {
				pthread_mutex_unlock(&c->mu);
				return -EAGAIN;
			}
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		/* present: most recently used now; read it outside the lock */
		lru_unlink(c, e);
		lru_push(c, e);
		pthread_mutex_unlock(&c->mu);
		if (!dst)
			return BCACHE_HIT; /* a probe: the caller does not want the bytes */
		int n = read_block(c, key, kh, blk, lo, hi, dst, blob_size);
		pthread_mutex_lock(&c->mu);
		if (n > 0) {
			c->st.hits++;
			pthread_mutex_unlock(&c->mu);
			*len = (size_t)n;
			return BCACHE_HIT;
		}
		/* damaged or gone under us: drop it and fetch the block again */
		c->st.damaged += n == -EBADMSG;
		e = find(c, kh, blk);
		if (e && !e->pending)
			drop(c, e);
	}
}

static void unpend(bcache *c, uint64_t kh, uint64_t blk, uint64_t bytes)
{
	bentry *e = find(c, kh, blk);
	if (e && e->pending) {
		if (bytes) {
			e->pending = 0;
			e->bytes = bytes;
			c->used += bytes;
			c->st.bytes_cached = c->used;
			lru_push(c, e);
		} else {
			ht_remove(c, e);
			free(e);
		}
	}
	pthread_cond_broadcast(&c->cv);
}

void bcache_fill(bcache *c, const char *key, uint64_t blk, const void *buf, size_t len,
		 uint64_t blob_size)
{
	uint64_t kh = key_hash(key);
	size_t klen = strlen(key);
	uint64_t bytes = HDR + (uint64_t)len;
	int ok = klen <= BCACHE_KEY_MAX && len > 0 && len <= BCACHE_BLOCK && bytes <= c->capacity;
	if (ok) {
		pthread_mutex_lock(&c->mu);
		c->st.fetched_bytes += len;
		evict_for(c, bytes);
		pthread_mutex_unlock(&c->mu);
		uint8_t h[HDR];
		memset(h, 0, sizeof(h));
		memcpy(h, "TPDEBLK2", 8);
		le_put16(h + 8, (uint16_t)klen);
		memcpy(h + 10, key, klen);
		le_put32(h + 74, (uint32_t)len);
		le_put64(h + 78, blob_size);
		for (size_t k = 0; k * SEG < len; k++)
			le_put64(h + 86 + 8 * k, cksum64((const uint8_t *)buf + k * SEG,
						      len - k * SEG < SEG ? len - k * SEG : SEG));
		le_put64(h + HDR_CK, cksum64(h, HDR_CK));
		char name[40], tmp[48];
		file_name(kh, blk, name, sizeof(name));
		snprintf(tmp, sizeof(tmp), ".%s.%lx", name, (unsigned long)pthread_self());
		int fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		/* no fsync: a block lost in a crash is fetched again, and a torn one fails its
		 * checksum */
		ok = fd >= 0 && io_pwrite_full(fd, h, HDR, 0) == 0 &&
		     io_pwrite_full(fd, buf, len, HDR) == 0;
		if (fd >= 0)
			close(fd);
		if (ok)
			ok = renameat(c->dirfd, tmp, c->dirfd, name) == 0;
		if (!ok)
			unlinkat(c->dirfd, tmp, 0);
	}
	pthread_mutex_lock(&c->mu);
	unpend(c, kh, blk, ok ? bytes : 0);
	pthread_mutex_unlock(&c->mu);
}

void bcache_release(bcache *c, const char *key, uint64_t blk)
{
	pthread_mutex_lock(&c->mu);
	unpend(c, key_hash(key), blk, 0);
	pthread_mutex_unlock(&c->mu);
}

int bcache_blob_size(bcache *c, const char *key, uint64_t *size)
{
	uint64_t kh = key_hash(key);
	pthread_mutex_lock(&c->mu);
	bentry *e = find(c, kh, 0);
	int present = e && !e->pending;
	pthread_mutex_unlock(&c->mu);
	if (!present)
		return -ENOENT;
	char name[40];
	file_name(kh, 0, name, sizeof(name));
	int fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	uint8_t h[HDR];
	int r = io_pread_fd_full(fd, h, HDR, 0);
	close(fd);
	/* the header alone is checked here; the bytes are checked when read */
	return r == 0 && check_header(h, key, size) > 0 ? 0 : -ENOENT;
}

void bcache_drop(bcache *c, const char *key, uint64_t blk)
{
	pthread_mutex_lock(&c->mu);
	bentry *e = find(c, key_hash(key), blk);
	if (e && !e->pending)
		drop(c, e);
	pthread_mutex_unlock(&c->mu);
}

void bcache_forget(bcache *c, const char *key)
{
	uint64_t kh = key_hash(key);
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < NBUCKETS; i++)
		for (bentry *e = c->ht[i], *nx; e; e = nx) {
			nx = e->hnext;
			if (e->kh == kh && !e->pending)
				drop(c, e);
		}
	pthread_mutex_unlock(&c->mu);
}

void bcache_stats(bcache *c, blob_cache_stats *st)
{
	pthread_mutex_lock(&c->mu);
	*st = c->st;
	pthread_mutex_unlock(&c->mu);
}
