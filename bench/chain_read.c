/* chain_read.c - read-path throughput: a chain of real checkpoint versions is encoded (each
 * against its predecessor, like the filesystem stores them) and then read back through chain_pread
 * the way a FUSE reader does (128 KiB requests), verifying every byte against the original.
 *
 * Build by hand (not part of the meson build; needs a configured build dir for the core library):
 *   cc -O2 -D_GNU_SOURCE -Icore/common -Icore/layout -Icore/codec -Icore/read \
 *      bench/chain_read.c build/core/libtpdefs_{read,store,codec,layout,common}.a \
 *      -lzstd -lxxhash -lsqlite3 -lpthread -o /tmp/chain_read
 * Usage: chain_read [-c chunk_bytes] [-m cache_MiB] [-t threads] file_v0 file_v1 ... (oldest first)
 * Prints, for the newest version (deepest in the chain) and the oldest, MB/s of wall time and of
 * CPU time (CPU time is the fairer figure on a shared machine), cold (empty chunk cache, object
 * files dropped from the page cache) and warm, with and without read-ahead; and random 4 KiB
 * read latency.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chain.h"
#include "encoder.h"
#include "io.h"
#include "objfile.h"

#define MAXV 64

typedef struct bench {
	int n;
	char obj[MAXV + 1][256]; /* object id k (1..n) -> encoded file */
	uint8_t *data[MAXV + 1];
	size_t size[MAXV + 1];
} bench;

static double wall(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
	       (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

static int open_obj(void *ctx, uint64_t id, obj_reader **r, uint64_t *base)
{
	bench *b = ctx;
	if (id < 1 || id > (uint64_t)b->n)
		return -ENOENT;
	int fd = open(b->obj[id], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*base = id - 1;
	return obj_reader_open(fd, r);
}

static void drop_page_cache(const bench *b)
{
	for (int k = 1; k <= b->n; k++) {
		int fd = open(b->obj[k], O_RDONLY);
		if (fd >= 0) {
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "chain_read: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	exit(1);
}

/* Sequential read of version k in `step` requests; returns MB/s wall and CPU. */
static void seq_read(chain *c, const bench *b, int k, size_t step, double *mbw, double *mbc)
{
	uint8_t *buf = malloc(step);
	if (!buf)
		die("malloc", -ENOMEM);
	double w = wall(), u = cpu();
	for (uint64_t off = 0; off < b->size[k]; off += step) {
		ssize_t n = chain_pread(c, (uint64_t)k, buf, step, off);
		if (n < 0)
			die("chain_pread", (int)n);
		if (memcmp(buf, b->data[k] + off, (size_t)n) != 0)
			die("data mismatch", -EIO);
	}
	w = wall() - w;
	u = cpu() - u;
	*mbw = (double)b->size[k] / 1e6 / w;
	*mbc = (double)b->size[k] / 1e6 / u;
	free(buf);
}

static uint64_t rng(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static double random_reads(chain *c, const bench *b, int k, int count, uint64_t seed)
{
	uint8_t buf[4096];
	double w = wall();
	for (int i = 0; i < count; i++) {
		uint64_t off = rng(&seed) % (b->size[k] - sizeof buf);
		ssize_t n = chain_pread(c, (uint64_t)k, buf, sizeof buf, off);
		if (n != (ssize_t)sizeof buf || memcmp(buf, b->data[k] + off, sizeof buf) != 0)
			die("random read", n < 0 ? (int)n : -EIO);
	}
	return (wall() - w) * 1e3 / count;
}

int main(int argc, char **argv)
{
	uint32_t chunk = 0;
	size_t cache_mib = 256;
	unsigned threads = 2;
	int opt;
	while ((opt = getopt(argc, argv, "c:m:t:")) != -1) {
		if (opt == 'c')
			chunk = (uint32_t)strtoul(optarg, NULL, 0);
		else if (opt == 'm')
			cache_mib = strtoul(optarg, NULL, 0);
		else if (opt == 't')
			threads = (unsigned)strtoul(optarg, NULL, 0);
		else
			return 2;
	}
	bench *b = calloc(1, sizeof *b);
	if (!b || argc - optind < 1 || argc - optind > MAXV) {
		fprintf(stderr, "usage: chain_read [-c chunk] [-m cache_MiB] [-t threads] v0 v1 ...\n");
		return 2;
	}
	b->n = argc - optind;
	char dir[] = "/var/tmp/chain_read-XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp", -errno);
	uint64_t logical = 0, stored = 0;
	double enc_w = wall();
	for (int k = 1; k <= b->n; k++) {
		int fd = open(argv[optind + k - 1], O_RDONLY);
		if (fd < 0)
			die(argv[optind + k - 1], -errno);
		struct stat st;
		fstat(fd, &st);
		b->size[k] = (size_t)st.st_size;
		b->data[k] = malloc(b->size[k] ? b->size[k] : 1);
		if (!b->data[k])
			die("malloc", -ENOMEM);
		int rc = io_pread_fd_full(fd, b->data[k], b->size[k], 0);
		close(fd);
		if (rc < 0)
			die("read", rc);
		snprintf(b->obj[k], sizeof b->obj[k], "%s/obj%d", dir, k);
		int ofd = open(b->obj[k], O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (ofd < 0)
			die("create", -errno);
		io_src nw, base;
		io_src_from_mem(&nw, b->data[k], b->size[k]);
		uint64_t bh = 0;
		if (k > 1) {
			io_src_from_mem(&base, b->data[k - 1], b->size[k - 1]);
			enc_content_hash(&base, &bh);
		}
		enc_opts eo = {.chunk_size = chunk, .threads = threads};
		enc_stats es;
		if ((rc = enc_encode(&eo, &nw, k > 1 ? &base : NULL, bh, ofd, &es)) < 0)
			die("enc_encode", rc);
		close(ofd);
		logical += es.in_bytes;
		stored += es.out_bytes;
	}
	enc_w = wall() - enc_w;
	double la[3] = {0};
	getloadavg(la, 3);
	printf("chain of %d versions, %.1f MB logical, %.1f MB stored (ratio %.3f), encoded in %.1f s; "
	       "cache %zu MiB, %u threads, load average %.1f\n",
	       b->n, (double)logical / 1e6, (double)stored / 1e6, (double)logical / (double)stored,
	       enc_w, cache_mib, threads, la[0]);
	printf("%-40s %12s %12s\n", "read (128 KiB requests)", "MB/s wall", "MB/s CPU");

	const int ks[2] = {b->n, 1};
	/* read-ahead windows: none, 8 chunks, 4 chunks and 8 MiB (the daemon's) */
	const unsigned ras[3] = {0, 8, 4};
	const size_t rab[3] = {0, 0, 8u << 20};
	for (int ki = 0; ki < (b->n > 1 ? 2 : 1); ki++) {
		int k = ks[ki];
		for (int ri = 0; ri < 3; ri++) {
			chain_opts o = {.cache_bytes = cache_mib << 20, .threads = threads,
					.readahead = ras[ri], .max_open = 64,
					.readahead_bytes = rab[ri]};
			chain *c = chain_new(&o, open_obj, b);
			if (!c)
				die("chain_new", -ENOMEM);
			drop_page_cache(b);
			double w, u;
			char label[64];
			seq_read(c, b, k, 128u << 10, &w, &u);
			snprintf(label, sizeof label, "v%d (depth %d) cold, read-ahead %u/%zuM", k - 1, k,
				 ras[ri], rab[ri] >> 20);
			printf("%-40s %12.0f %12.0f\n", label, w, u);
			seq_read(c, b, k, 128u << 10, &w, &u);
			snprintf(label, sizeof label, "v%d (depth %d) warm, read-ahead %u/%zuM", k - 1, k,
				 ras[ri], rab[ri] >> 20);
			printf("%-40s %12.0f %12.0f\n", label, w, u);
			chain_free(c);
		}
	}
	chain_opts o = {.cache_bytes = cache_mib << 20, .threads = threads, .max_open = 64};
	chain *c = chain_new(&o, open_obj, b);
	if (!c)
		die("chain_new", -ENOMEM);
	drop_page_cache(b);
	double cold = random_reads(c, b, b->n, 100, 1);
	double warm = random_reads(c, b, b->n, 100, 1); /* same offsets again */
	printf("random 4 KiB reads of v%d: %.2f ms cold, %.3f ms warm (same offsets)\n", b->n - 1,
	       cold, warm);
	chain_free(c);
	for (int k = 1; k <= b->n; k++) {
		unlink(b->obj[k]);
		free(b->data[k]);
	}
	rmdir(dir);
	free(b);
	return 0;
}
