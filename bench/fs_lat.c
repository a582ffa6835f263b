/* fs_lat.c - read latency percentiles for bench_fs.sh, and a synthetic checkpoint generator.
 *
 *   fs_lat pread FILE N SEED     N random 4 KiB pread()s at any (unaligned) offset
 *   fs_lat mmap  FILE N SEED     N random 4 KiB memcpy()s out of a read-only mmap of FILE
 *                                (what safetensors loaders do); every touched page faults once
 *   fs_lat walk  FILE            mmap FILE read-only and copy it out front to back, 1 MiB at a
 *                                a time (what safetensors and numpy.memmap loaders do when they
 *                                materialize every tensor); prints seconds and a checksum
 *   fs_lat gen   FILE MB VER     write MB MiB of float32 "weights", version VER: ~5% of the
 *                                elements of each version get a new small perturbation, the rest
 *                                keep the value of the previous version (computed, not stored,
 *                                so no earlier version needs to exist)
 *
 * pread/mmap print one line: "p50 p90 p99 max mean" in microseconds. The same SEED gives the
 * same offsets, so a second run measures the warm case. Built by bench_fs.sh with cc -O2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int lat(const char *mode, const char *path, long n, uint64_t seed)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size < 4096) {
		fprintf(stderr, "fs_lat: %s: too small\n", path);
		return 1;
	}
	const uint8_t *map = NULL;
	if (!strcmp(mode, "mmap")) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
	}
	double *t = malloc((size_t)n * sizeof *t);
	if (!t)
		return 1;
	char buf[4096];
	volatile unsigned sink = 0;
	double sum = 0;
	for (long i = 0; i < n; i++) {
		uint64_t off = mix(seed * 1000003u + (uint64_t)i) % (uint64_t)(st.st_size - 4096);
		double t0 = now_us();
		if (map) {
			memcpy(buf, map + off, sizeof buf);
		} else if (pread(fd, buf, sizeof buf, (off_t)off) != (ssize_t)sizeof buf) {
			fprintf(stderr, "fs_lat: short read at %llu: %s\n", (unsigned long long)off,
				strerror(errno));
			return 1;
		}
		t[i] = now_us() - t0;
		sum += t[i];
		sink += buf[0];
	}
	(void)sink;
	qsort(t, (size_t)n, sizeof *t, cmp_d);
	printf("%.0f %.0f %.0f %.0f %.0f\n", t[n / 2], t[n * 9 / 10], t[n * 99 / 100], t[n - 1],
	       sum / (double)n);
	return 0;
}

static int walk(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size == 0) {
		fprintf(stderr, "fs_lat: %s: empty\n", path);
		return 1;
	}
	size_t size = (size_t)st.st_size, step = 1u << 20;
	double t0 = now_us();
	const uint8_t *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	uint64_t *buf = malloc(step);
	if (!buf)
		return 1;
	uint64_t h = 0;
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		memcpy(buf, map + off, n);
		/* one word per page into the checksum: the copy cannot be optimized away */
		for (size_t k = 0; k + 8 <= n; k += 4096)
			h = mix(h ^ buf[k / 8]);
	}
	double t1 = now_us();
	munmap((void *)map, size);
	close(fd);
	free(buf);
	printf("%.6f %016llx\n", (t1 - t0) / 1e6, (unsigned long long)h);
	return 0;
}

static int gen(const char *path, long mb, long ver)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	const size_t per = 1u << 18; /* floats per 1 MiB block */
	float *b = malloc(per * sizeof *b);
	if (!b)
		return 1;
	for (long blk = 0; blk < mb; blk++) {
		for (size_t k = 0; k < per; k++) {
			uint64_t i = (uint64_t)blk * per + k;
			uint64_t h = mix(i + 0x9e3779b97f4a7c15ull);
			float w = (float)((double)(h >> 40) / (double)(1ull << 24) - 0.5) * 0.08f;
			/* the last version <= ver that touched element i (5% per version) */
			long v = ver;
			while (v > 0 && mix(i * 131u + (uint64_t)v) % 20 != 0)
				v--;
			if (v > 0)
				w += (float)((double)(mix(i ^ ((uint64_t)v << 40)) >> 44) / 1048576.0 - 0.5) *
				     1e-3f;
			b[k] = w;
		}
		if (write(fd, b, per * sizeof *b) != (ssize_t)(per * sizeof *b)) {
			perror("write");
			return 1;
		}
	}
	free(b);
	return close(fd) < 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "walk"))
		return walk(argv[2]);
	if (argc != 5) {
		fprintf(stderr, "usage: fs_lat pread|mmap FILE N SEED | fs_lat walk FILE | "
				"fs_lat gen FILE MB VER\n");
		return 2;
	}
	if (!strcmp(argv[1], "gen"))
		return gen(argv[2], atol(argv[3]), atol(argv[4]));
	return lat(argv[1], argv[2], atol(argv[3]), strtoull(argv[4], NULL, 10));
}
