/* Unit tests for core/chain.c: reads through a real 6-deep chain of encoded objects. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chain.h"
#include "codec.h"
#include "encoder.h"
#include "io.h"
#include "objfile.h"

#define NVER 6
#define CHUNK (64u << 10)
#define NFLOAT 300000 /* ~1.2 MB per version: ~19 chunks of 64 KiB */
#define MAXV 16
#define CORPUS TPDEFS_SAMPLE_CORPUS /* from meson: -Dsample_corpus */

typedef struct fixture {
	char dir[64];
	int nver;
	char path[MAXV + 1][128]; /* object id k (1..nver) -> file */
	uint8_t *data[MAXV + 1];  /* original bytes of version k */
	size_t size[MAXV + 1];
	atomic_int opens;
	int cycle; /* report 5 as the base of 4: a corrupt, cyclic chain */
} fixture;

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: deterministic per seed, independent per thread */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static float frand(uint64_t *s)
{
	return (float)((double)(rng_next(s) >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

/* Version 1: random floats plus an odd tail. Version k: version k-1 with ~2% of its floats nudged,
 * every third 64 KiB region left identical, and k*1001 bytes appended. */
static void make_versions(fixture *f)
{
	uint64_t s = 0x1234567;
	size_t sz = (size_t)NFLOAT * 4 + 5;
	f->size[1] = sz;
	f->data[1] = malloc(sz);
	cr_assert_not_null(f->data[1]);
	float *fl = (float *)(void *)f->data[1];
	for (size_t i = 0; i < NFLOAT; i++)
		fl[i] = frand(&s);
	for (size_t i = (size_t)NFLOAT * 4; i < sz; i++)
		f->data[1][i] = (uint8_t)rng_next(&s);
	for (int k = 2; k <= NVER; k++) {
		size_t psz = f->size[k - 1];
		sz = psz + (size_t)k * 1001;
		f->size[k] = sz;
		f->data[k] = malloc(sz);
		cr_assert_not_null(f->data[k]);
		memcpy(f->data[k], f->data[k - 1], psz);
		float *v = (float *)(void *)f->data[k];
		for (size_t i = 0; i < NFLOAT; i++) {
			if ((i * 4 / CHUNK) % 3 == 1)
				continue;
			if (rng_next(&s) % 50 == 0)
				v[i] += frand(&s) * 1e-3f;
		}
		for (size_t i = psz; i < sz; i++)
			f->data[k][i] = (uint8_t)rng_next(&s);
	}
}

static void encode_all(fixture *f, uint32_t chunk)
{
	enc_opts o = {.chunk_size = chunk, .threads = 2};
	for (int k = 1; k <= f->nver; k++) {
		snprintf(f->path[k], sizeof f->path[k], "%s/obj%d", f->dir, k);
		int fd = open(f->path[k], O_RDWR | O_CREAT | O_TRUNC, 0600);
		cr_assert(fd >= 0);
		io_src nw, base;
		io_src_from_mem(&nw, f->data[k], f->size[k]);
		uint64_t bh = 0;
		if (k > 1) {
			io_src_from_mem(&base, f->data[k - 1], f->size[k - 1]);
			cr_assert_eq(enc_content_hash(&base, &bh), 0);
		}
		int rc = enc_encode(&o, &nw, k > 1 ? &base : NULL, bh, fd, NULL);
		cr_assert_eq(rc, 0, "enc_encode v%d: %d", k, rc);
		close(fd);
	}
}

static fixture *fixture_alloc(int nver)
{
	fixture *f = calloc(1, sizeof *f);
	cr_assert_not_null(f);
	f->nver = nver;
	strcpy(f->dir, "/tmp/tpdefs-chain-XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	return f;
}

static fixture *fixture_new(void)
{
	fixture *f = fixture_alloc(NVER);
	make_versions(f);
	encode_all(f, CHUNK);
	return f;
}

/* A chain of real checkpoints: fmt is a printf pattern taking the version number. */
static fixture *fixture_from_corpus(const char *fmt, int nver, uint32_t chunk)
{
	fixture *f = fixture_alloc(nver);
	for (int k = 1; k <= nver; k++) {
		char p[256];
		snprintf(p, sizeof p, fmt, k - 1);
		int fd = open(p, O_RDONLY);
		if (fd < 0) {
			rmdir(f->dir);
			free(f);
			return NULL;
		}
		off_t sz = lseek(fd, 0, SEEK_END);
		cr_assert(sz > 0);
		f->size[k] = (size_t)sz;
		f->data[k] = malloc(f->size[k]);
		cr_assert_not_null(f->data[k]);
		cr_assert_eq(io_pread_fd_full(fd, f->data[k], f->size[k], 0), 0);
		close(fd);
	}
	encode_all(f, chunk);
	return f;
}

static void fixture_free(fixture *f)
{
	for (int k = 1; k <= f->nver; k++) {
		unlink(f->path[k]);
		free(f->data[k]);
	}
	rmdir(f->dir);
	free(f);
}

static int open_obj(void *ctx, uint64_t obj, obj_reader **r, uint64_t *base)
{
	fixture *f = ctx;
	if (obj < 1 || obj > (uint64_t)f->nver)
		return -ENOENT;
	int fd = open(f->path[obj], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	atomic_fetch_add(&f->opens, 1);
	*base = f->cycle && obj == 4 ? 5 : obj - 1;
	return obj_reader_open(fd, r);
}

/* Read [off, off+len) of obj and compare with the original (expecting a short read at EOF). */
static void check_read(chain *c, fixture *f, uint64_t obj, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	cr_assert_not_null(buf);
	ssize_t n = chain_pread(c, obj, buf, len, off);
	size_t sz = f->size[obj];
	size_t want = off >= sz ? 0 : (len < sz - off ? len : sz - off);
	cr_assert_eq(n, (ssize_t)want, "obj %llu off %llu len %zu: got %zd want %zu",
		     (unsigned long long)obj, (unsigned long long)off, len, n, want);
	cr_assert(memcmp(buf, f->data[obj] + off, want) == 0, "obj %llu off %llu len %zu differs",
		  (unsigned long long)obj, (unsigned long long)off, len);
	free(buf);
}

static void random_reads(chain *c, fixture *f, uint64_t seed, int count)
{
	uint64_t s = seed | 1;
	for (int i = 0; i < count; i++) {
		uint64_t obj = 1 + rng_next(&s) % (uint64_t)f->nver;
		uint64_t off = rng_next(&s) % (f->size[obj] + 2000);
		size_t len;
		switch (rng_next(&s) % 4) {
		case 0: len = rng_next(&s) % 64; break;
		case 1: len = rng_next(&s) % (3 * CHUNK); break;
		case 2: /* straddle a chunk boundary */
			off = (rng_next(&s) % (f->size[obj] / CHUNK + 1)) * CHUNK;
			off = off > 100 ? off - rng_next(&s) % 100 : 0;
			len = 200;
			break;
		default: len = 4096; break;
		}
		check_read(c, f, obj, off, len);
	}
}

Test(chain, whole_files_and_edges)
{
	fixture *f = fixture_new();
	chain_opts o = {.cache_bytes = 8u << 20, .max_open = 16};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	for (uint64_t k = NVER; k >= 1; k--)
		check_read(c, f, k, 0, f->size[k] + 100);
	for (uint64_t k = 1; k <= NVER; k++) {
		check_read(c, f, k, f->size[k] - 1, 10); /* last byte */
		check_read(c, f, k, f->size[k], 10);     /* at EOF: 0 */
		check_read(c, f, k, f->size[k] + 12345, 10);
		check_read(c, f, k, CHUNK - 1, 2);      /* across the first boundary */
		check_read(c, f, k, 5, 0);
	}
	uint8_t b[4];
	cr_assert_eq(chain_pread(c, 99, b, 4, 0), -ENOENT);
	/* each object opened once: bases were shared, not re-opened per chunk */
	cr_assert_eq(atomic_load(&f->opens), NVER);
	chain_free(c);
	fixture_free(f);
}

/* Guard against a vacuous suite: the fixture must really produce delta chunks that read a base. */
Test(chain, fixture_has_delta_chunks)
{
	fixture *f = fixture_new();
	size_t uses = 0, total = 0;
	for (int k = 2; k <= NVER; k++) {
		obj_reader *r;
		cr_assert_eq(obj_reader_open(open(f->path[k], O_RDONLY), &r), 0);
		for (size_t i = 0; i < obj_reader_nchunks(r); i++, total++) {
			const obj_chunk *ch = obj_reader_chunk(r, i);
			uses += codec_uses_base(ch->codec) && ch->base_off != OBJ_NO_BASE;
		}
		obj_reader_close(r);
	}
	cr_log_info("%zu of %zu chunks in versions 2..%d read their base", uses, total, NVER);
	cr_assert_gt(uses, total / 2, "only %zu of %zu chunks are coded against a base", uses, total);
	fixture_free(f);
}

Test(chain, random_reads)
{
	fixture *f = fixture_new();
	chain_opts o = {.cache_bytes = 4u << 20, .max_open = 16};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	random_reads(c, f, 42, 1500);
	chain_free(c);
	fixture_free(f);
}

Test(chain, tiny_cache_and_few_readers)
{
	fixture *f = fixture_new();
	/* nothing stays cached and only 2 of the 6 readers stay open: everything re-decoded,
	 * readers re-opened, still exact */
	chain_opts o = {.cache_bytes = 1, .max_open = 2};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	random_reads(c, f, 7, 200);
	check_read(c, f, NVER, 0, f->size[NVER]);
	cr_assert_gt(atomic_load(&f->opens), NVER);
	chain_free(c);
	fixture_free(f);
}

typedef struct reader_arg {
	chain *c;
	fixture *f;
	uint64_t seed;
} reader_arg;

static void *reader_thread(void *p)
{
	reader_arg *a = p;
	random_reads(a->c, a->f, a->seed, 300);
	return NULL;
}

static void concurrent(size_t cache_bytes, unsigned max_open, unsigned readahead)
{
	fixture *f = fixture_new();
	chain_opts o = {.cache_bytes = cache_bytes, .max_open = max_open, .readahead = readahead,
			.threads = 2};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	pthread_t t[6];
	reader_arg a[6];
	for (int i = 0; i < 6; i++) {
		a[i] = (reader_arg){c, f, 1000 + (uint64_t)i};
		cr_assert_eq(pthread_create(&t[i], NULL, reader_thread, &a[i]), 0);
	}
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], NULL);
	chain_free(c);
	fixture_free(f);
}

typedef struct forget_arg {
	chain *c;
	atomic_int stop;
} forget_arg;

static void *forget_thread(void *p)
{
	forget_arg *a = p;
	uint64_t s = 77;
	while (!atomic_load(&a->stop)) {
		chain_forget(a->c, 1 + rng_next(&s) % NVER);
		struct timespec ts = {0, 3000000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* Objects forgotten (ids then re-opened) while other threads read them: every read stays exact. */
Test(chain, forget_while_reading)
{
	fixture *f = fixture_new();
	chain_opts o = {.cache_bytes = 1u << 20, .max_open = 3, .readahead = 2, .threads = 2};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	forget_arg fa = {.c = c};
	pthread_t ft, t[4];
	reader_arg a[4];
	cr_assert_eq(pthread_create(&ft, NULL, forget_thread, &fa), 0);
	for (int i = 0; i < 4; i++) {
		a[i] = (reader_arg){c, f, 500 + (uint64_t)i};
		cr_assert_eq(pthread_create(&t[i], NULL, reader_thread, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	atomic_store(&fa.stop, 1);
	pthread_join(ft, NULL);
	chain_free(c);
	fixture_free(f);
}

Test(chain, concurrent_readers)
{
	concurrent(2u << 20, 16, 0);
}

Test(chain, concurrent_readers_small_cache_readahead)
{
	concurrent(256u << 10, 3, 3);
}

Test(chain, sequential_readahead)
{
	fixture *f = fixture_new();
	chain_opts o = {.cache_bytes = 4u << 20, .max_open = 8, .readahead = 4, .threads = 2};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	for (uint64_t k = NVER; k >= NVER - 1; k--) {
		size_t step = 50000; /* not a divisor of the chunk size */
		for (uint64_t off = 0; off < f->size[k] + step; off += step)
			check_read(c, f, k, off, step);
	}
	/* free while read-ahead may still be running: chain_free waits for it */
	uint8_t b[100];
	cr_assert_eq(chain_pread(c, 3, b, sizeof b, 0), (ssize_t)sizeof b);
	cr_assert_eq(chain_pread(c, 3, b, sizeof b, sizeof b), (ssize_t)sizeof b);
	chain_free(c);
	fixture_free(f);
}

/* Read-ahead starts on the second sequential read in a row, not on a random read that happens
 * to land next to the previous one. */
Test(chain, readahead_needs_two_sequential_reads)
{
	fixture *f = fixture_new();
	chain_opts o = {.cache_bytes = 8u << 20, .max_open = 8, .readahead = 2, .threads = 2};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	chain_stats st;
	uint64_t k = NVER, far = 10 * CHUNK;
	check_read(c, f, k, far, 4096);        /* a seek */
	check_read(c, f, k, far + 8192, 4096); /* lands near it: one in a row */
	check_read(c, f, k, 2 * CHUNK, 4096);  /* another seek */
	chain_stats_get(c, &st);
	cr_assert_eq(st.readahead, 0, "random reads queued %llu read-aheads",
		     (unsigned long long)st.readahead);
	check_read(c, f, k, 2 * CHUNK + 4096, 4096); /* one in a row */
	check_read(c, f, k, 2 * CHUNK + 8192, 4096); /* two: a stream */
	chain_stats_get(c, &st);
	cr_assert_gt(st.readahead, 0);
	chain_free(c);
	fixture_free(f);
}

/* A stream's own chunks leave the cache before the bases it decoded: reading a version and then
 * its base (a restore of a reverse chain, oldest first) decodes the base once. */
Test(chain, stream_keeps_bases_over_its_own_chunks)
{
	fixture *f = fixture_new();
	/* room for version 1 and a little more, not for versions 1 and 2 */
	size_t budget = f->size[1] + f->size[1] / 2;
	cr_assert_lt(budget, f->size[1] + f->size[2]);
	chain_opts o = {.cache_bytes = budget, .max_open = 8};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	for (uint64_t off = 0; off < f->size[2]; off += 4 * CHUNK)
		check_read(c, f, 2, off, 4 * CHUNK);
	chain_stats st0, st1;
	chain_stats_get(c, &st0);
	cr_assert_gt(st0.decoded, 0);
	for (uint64_t off = 0; off < f->size[1]; off += 4 * CHUNK)
		check_read(c, f, 1, off, 4 * CHUNK);
	chain_stats_get(c, &st1);
	/* the chunks of version 1 that no chunk of version 2 was coded against are decoded now,
	 * for the first time; every other one must still be cached */
	obj_reader *r1, *r2;
	cr_assert_eq(obj_reader_open(open(f->path[1], O_RDONLY), &r1), 0);
	cr_assert_eq(obj_reader_open(open(f->path[2], O_RDONLY), &r2), 0);
	size_t n1 = obj_reader_nchunks(r1), unused = 0;
	for (size_t i = 0; i < n1; i++) {
		const obj_chunk *b = obj_reader_chunk(r1, i);
		int used = 0;
		for (size_t j = 0; j < obj_reader_nchunks(r2) && !used; j++) {
			const obj_chunk *ch = obj_reader_chunk(r2, j);
			used = codec_uses_base(ch->codec) && ch->base_off != OBJ_NO_BASE &&
			       ch->base_off < b->off + b->len && b->off < ch->base_off + ch->base_len;
		}
		unused += !used;
	}
	obj_reader_close(r1);
	obj_reader_close(r2);
	cr_assert_lt(unused, n1 / 2);
	cr_assert_eq(st1.decoded - st0.decoded, unused,
		     "version 1: %llu chunks decoded, %zu of %zu were never a base",
		     (unsigned long long)(st1.decoded - st0.decoded), unused, n1);
	chain_free(c);
	fixture_free(f);
}

/* Pages of the object file resident in the page cache among the first `bytes` (mincore). */
static size_t resident_pages(const char *path, size_t bytes)
{
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	void *m = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(m, MAP_FAILED);
	size_t np = (bytes + 4095) / 4096, n = 0;
	unsigned char *v = malloc(np);
	cr_assert_not_null(v);
	cr_assert_eq(mincore(m, bytes, v), 0);
	for (size_t i = 0; i < np; i++)
		n += v[i] & 1;
	free(v);
	munmap(m, bytes);
	close(fd);
	return n;
}

/* A stream through an object file larger than the cache leaves its pages behind it to the
 * kernel (a plain read's page-cache footprint), one whose file fits keeps them. */
Test(chain, stream_drops_pages_behind_it_in_big_objects)
{
	fixture *f = fixture_new();
	uint64_t k = 1; /* the keyframe: no base, its own pages only */
	struct stat st;
	cr_assert_eq(stat(f->path[k], &st), 0);
	size_t head = (size_t)st.st_size / 2 & ~(size_t)4095;
	for (int big = 0; big <= 1; big++) {
		int fd = open(f->path[k], O_RDONLY);
		cr_assert(fd >= 0);
		cr_assert_eq(fsync(fd), 0); /* dirty pages cannot be dropped: stored objects are synced */
		cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
		close(fd);
		chain_opts o = {.cache_bytes = big ? (size_t)st.st_size / 4 : 64u << 20,
				.max_open = 8, .readahead = 2, .threads = 2,
				.readahead_bytes = 2 * CHUNK};
		chain *c = chain_new(&o, open_obj, f);
		cr_assert_not_null(c);
		for (uint64_t off = 0; off < f->size[k]; off += CHUNK)
			check_read(c, f, k, off, CHUNK);
		chain_free(c);
		size_t res = resident_pages(f->path[k], head);
		cr_log_info("cache %s the object: %zu of %zu pages of its first half resident",
			    big ? "smaller than" : "larger than", res, head / 4096);
		if (big)
			cr_assert_lt(res, head / 4096 / 2, "%zu of %zu pages still cached", res,
				     head / 4096);
		else
			cr_assert_gt(res, head / 4096 / 2, "only %zu of %zu pages cached", res,
				     head / 4096);
	}
	fixture_free(f);
}

/* Zero-copy views: the same bytes as chain_pread, slices in order, -E2BIG past CHAIN_VIEW_MAX
 * chunks with nothing left pinned, and pins that outlive a forget of the object. */
static void check_view(chain *c, fixture *f, uint64_t obj, uint64_t off, size_t len)
{
	chain_view v;
	ssize_t n = chain_view_get(c, obj, len, off, &v);
	size_t sz = f->size[obj];
	size_t want = off >= sz ? 0 : (len < sz - off ? len : sz - off);
	if (want > (size_t)(CHAIN_VIEW_MAX - 1) * CHUNK) {
		if (n == -E2BIG) {
			cr_assert_eq(v.n, 0);
			return;
		}
	}
	cr_assert_eq(n, (ssize_t)want, "view obj %llu off %llu len %zu: got %zd want %zu",
		     (unsigned long long)obj, (unsigned long long)off, len, n, want);
	size_t at = 0;
	for (size_t i = 0; i < v.n; i++) {
		cr_assert(v.slice[i].len > 0);
		cr_assert(memcmp(v.slice[i].data, f->data[obj] + off + at, v.slice[i].len) == 0,
			  "view obj %llu off %llu: slice %zu differs", (unsigned long long)obj,
			  (unsigned long long)off, i);
		at += v.slice[i].len;
	}
	cr_assert_eq(at, want);
	chain_view_put(c, &v);
	cr_assert_eq(v.n, 0);
}

Test(chain, views_match_pread)
{
	fixture *f = fixture_new();
	chain_opts o = {.cache_bytes = 2u << 20, .max_open = 16, .readahead = 2, .threads = 2,
			.readahead_bytes = 256u << 10};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	uint64_t s = 7;
	for (int i = 0; i < 600; i++) {
		uint64_t obj = 1 + rng_next(&s) % (uint64_t)f->nver;
		uint64_t off = rng_next(&s) % (f->size[obj] + 1000);
		size_t len = (size_t)(rng_next(&s) % (3 * CHUNK));
		check_view(c, f, obj, off, len);
	}
	/* a whole file of 4 KiB chunks spans more chunks than a view holds */
	chain_view v;
	fixture *small = fixture_alloc(NVER);
	make_versions(small);
	encode_all(small, 4096);
	chain *cs = chain_new(&o, open_obj, small);
	cr_assert_not_null(cs);
	cr_assert_gt(small->size[NVER], (size_t)CHAIN_VIEW_MAX * 4096);
	cr_assert_eq(chain_view_get(cs, NVER, small->size[NVER], 0, &v), -E2BIG);
	cr_assert_eq(v.n, 0);
	check_view(cs, small, NVER, 12345, (size_t)(CHAIN_VIEW_MAX - 2) * 4096);
	chain_free(cs);
	fixture_free(small);
	/* the pins keep the bytes: forget the object while its view is held */
	cr_assert_eq(chain_view_get(c, NVER, 2 * CHUNK, CHUNK / 2, &v), (ssize_t)(2 * CHUNK));
	chain_forget(c, NVER);
	size_t at = 0;
	for (size_t i = 0; i < v.n; i++) {
		cr_assert(memcmp(v.slice[i].data, f->data[NVER] + CHUNK / 2 + at, v.slice[i].len) == 0);
		at += v.slice[i].len;
	}
	chain_view_put(c, &v);
	uint8_t b[8];
	cr_assert_eq(chain_view_get(c, 99, sizeof b, 0, &v), -ENOENT);
	chain_free(c);
	fixture_free(f);
}

/* A byte window: the reader runs ahead by bytes, not only chunks, and reads stay exact. */
Test(chain, sequential_readahead_bytes)
{
	fixture *f = fixture_new();
	chain_opts o = {.cache_bytes = 4u << 20, .max_open = 8, .readahead = 1, .threads = 2,
			.readahead_bytes = 6 * CHUNK};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	for (uint64_t k = NVER; k >= NVER - 2; k--)
		for (uint64_t off = 0; off < f->size[k] + 40000; off += 40000)
			check_read(c, f, k, off, 40000);
	chain_free(c);
	fixture_free(f);
}

Test(chain, forget_then_read)
{
	fixture *f = fixture_new();
	chain_opts o = {.cache_bytes = 8u << 20, .max_open = 16};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	check_read(c, f, NVER, 0, f->size[NVER]);
	int before = atomic_load(&f->opens);
	chain_forget(c, NVER);
	chain_forget(c, 3);
	chain_forget(c, 77); /* unknown: no-op */
	check_read(c, f, NVER, 1000, 3 * CHUNK);
	/* 6 is re-opened and re-decoded against 5, whose chunks are still cached: 3 is not needed */
	cr_assert_eq(atomic_load(&f->opens), before + 1);
	check_read(c, f, 3, 0, f->size[3]);
	cr_assert_eq(atomic_load(&f->opens), before + 2);
	chain_free(c);
	fixture_free(f);
}

/* Byte ranges of version k whose decoding reads the damaged range [lo, hi) of version k-1 (or, at
 * the damaged object itself, the damaged chunk). Each level is kept as one covering span, which
 * is an over-approximation: reads outside the span must succeed, reads inside may fail. */
typedef struct span {
	uint64_t lo, hi;
	int any;
} span;

static void add_span(span *s, uint64_t lo, uint64_t hi)
{
	if (!s->any || lo < s->lo)
		s->lo = lo;
	if (!s->any || hi > s->hi)
		s->hi = hi;
	s->any = 1;
}

static int overlaps(const span *s, uint64_t lo, uint64_t hi)
{
	return s->any && lo < s->hi && s->lo < hi;
}

Test(chain, corruption_is_eio_and_contained)
{
	fixture *f = fixture_new();
	const int bad = 3;
	/* damage the middle of the largest payload of object 3 */
	int fd = open(f->path[bad], O_RDWR);
	cr_assert(fd >= 0);
	obj_reader *r;
	cr_assert_eq(obj_reader_open(dup(fd), &r), 0);
	size_t worst = 0;
	for (size_t i = 0; i < obj_reader_nchunks(r); i++)
		if (obj_reader_chunk(r, i)->data_len > obj_reader_chunk(r, worst)->data_len)
			worst = i;
	const obj_chunk *wc = obj_reader_chunk(r, worst);
	uint64_t at = wc->data_off + wc->data_len / 2;
	span dmg[NVER + 1] = {{0}};
	add_span(&dmg[bad], wc->off, wc->off + wc->len);
	obj_reader_close(r);
	uint8_t byte;
	cr_assert_eq(io_pread_fd_full(fd, &byte, 1, at), 0);
	byte ^= 0x5a;
	cr_assert_eq(io_pwrite_full(fd, &byte, 1, at), 0);
	close(fd);

	/* propagate: a chunk of k+1 is suspect if its codec reads a damaged region of k */
	for (int k = bad + 1; k <= NVER; k++) {
		fd = open(f->path[k], O_RDONLY);
		cr_assert_eq(obj_reader_open(fd, &r), 0);
		for (size_t i = 0; i < obj_reader_nchunks(r); i++) {
			const obj_chunk *ch = obj_reader_chunk(r, i);
			if (codec_uses_base(ch->codec) && ch->base_off != OBJ_NO_BASE &&
			    overlaps(&dmg[k - 1], ch->base_off, ch->base_off + ch->base_len))
				add_span(&dmg[k], ch->off, ch->off + ch->len);
		}
		obj_reader_close(r);
	}

	chain_opts o = {.cache_bytes = 8u << 20, .max_open = 16};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	uint8_t *buf = malloc(CHUNK);
	cr_assert_not_null(buf);
	for (int pass = 0; pass < 2; pass++) { /* the second pass checks errors were not cached */
		for (uint64_t k = 1; k <= NVER; k++) {
			for (uint64_t off = 0; off < f->size[k]; off += CHUNK / 2) {
				size_t len = CHUNK;
				ssize_t n = chain_pread(c, k, buf, len, off);
				size_t want = len < f->size[k] - off ? len : f->size[k] - off;
				if (overlaps(&dmg[k], off, off + want)) {
					cr_assert(n == -EIO || (n == (ssize_t)want &&
						  memcmp(buf, f->data[k] + off, want) == 0),
						  "obj %llu off %llu: %zd", (unsigned long long)k,
						  (unsigned long long)off, n);
				} else {
					cr_assert_eq(n, (ssize_t)want, "obj %llu off %llu: %zd",
						     (unsigned long long)k, (unsigned long long)off, n);
					cr_assert(memcmp(buf, f->data[k] + off, want) == 0);
				}
			}
		}
		/* the damaged chunk itself never reads back as data */
		cr_assert_eq(chain_pread(c, bad, buf, 10, dmg[bad].lo + 1), -EIO);
	}
	free(buf);
	chain_free(c);
	fixture_free(f);
}

Test(chain, not_an_object_is_eio)
{
	fixture *f = fixture_new();
	int fd = open(f->path[1], O_WRONLY | O_TRUNC);
	cr_assert(fd >= 0);
	cr_assert_eq(io_write_full(fd, "garbage, not an object", 22), 0);
	close(fd);
	chain_opts o = {.cache_bytes = 1u << 20};
	chain *c = chain_new(&o, open_obj, f);
	uint8_t b[16];
	cr_assert_eq(chain_pread(c, 1, b, sizeof b, 0), -EIO);
	/* objects whose chunks reference the broken base fail too, unless coded without it */
	ssize_t n = chain_pread(c, 2, b, sizeof b, 0);
	cr_assert(n == -EIO || (n == (ssize_t)sizeof b && memcmp(b, f->data[2], sizeof b) == 0));
	chain_free(c);
	fixture_free(f);
}

Test(chain, cyclic_chain_is_eio_not_hang)
{
	fixture *f = fixture_new();
	f->cycle = 1;
	chain_opts o = {.cache_bytes = 1u << 20, .readahead = 2, .threads = 2};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	uint8_t *b = malloc(f->size[5]);
	cr_assert_not_null(b);
	cr_assert_eq(chain_pread(c, 4, b, f->size[4], 0), -EIO);
	cr_assert_eq(chain_pread(c, 5, b, f->size[5], 0), -EIO);
	check_read(c, f, 3, 0, f->size[3]); /* below the cycle all is well */
	free(b);
	chain_free(c);
	fixture_free(f);
}

static void corpus_chain(const char *fmt, int nver, uint32_t chunk)
{
	fixture *f = fixture_from_corpus(fmt, nver, chunk);
	if (!f)
		cr_skip_test("corpus not available: %s", fmt);
	size_t uses = 0, total = 0;
	for (int k = 2; k <= nver; k++) {
		obj_reader *r;
		cr_assert_eq(obj_reader_open(open(f->path[k], O_RDONLY), &r), 0);
		for (size_t i = 0; i < obj_reader_nchunks(r); i++, total++)
			uses += codec_uses_base(obj_reader_chunk(r, i)->codec);
		obj_reader_close(r);
	}
	cr_log_info("%s: %zu of %zu chunks read their base", fmt, uses, total);
	chain_opts o = {.cache_bytes = 2u << 20, .max_open = 4, .readahead = 2, .threads = 2};
	chain *c = chain_new(&o, open_obj, f);
	cr_assert_not_null(c);
	for (uint64_t k = (uint64_t)nver; k >= 1; k--)
		check_read(c, f, k, 0, f->size[k] + 1);
	random_reads(c, f, 3, 400);
	chain_free(c);
	fixture_free(f);
}

Test(chain, corpus_torch_zip_chain, .timeout = 240)
{
	corpus_chain(CORPUS "/gpt_full_state/ckpt_%03d.pt", 8, 64u << 10);
}

Test(chain, corpus_safetensors_bf16_chain_default_chunk, .timeout = 240)
{
	corpus_chain(CORPUS "/gpt_bf16_st/model_%03d.safetensors", 10, 0);
}

Test(chain, corpus_finetune_chain_small_chunks, .timeout = 240)
{
	corpus_chain(CORPUS "/gpt_finetune_frozen/ckpt_%03d.pt", 8, 16u << 10);
}
