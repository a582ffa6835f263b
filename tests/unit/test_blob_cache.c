/* The node-local block cache of blobs in a bucket (core/blob/blob_cache.c): what it serves is
 * exactly what was filled, a damaged or foreign block file is never served, the files survive a
 * reopen, the budget holds, a probe claims without reading. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <inttypes.h>

#include "blob_cache.h"
#include "cksum.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/tpdefs-bcache-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' && (!e->d_name[1] || e->d_name[1] == '.'))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

TestSuite(blob_cache, .init = setup, .fini = teardown);

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *b = malloc(n);
	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 131 + seed * 7 + (i >> 11));
	return b;
}

static int nfiles(void)
{
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* Claim (expecting a miss) and fill block blk of key with data. */
static void put_block(bcache *c, const char *key, uint64_t blk, const uint8_t *data, size_t len,
		      uint64_t blob_size)
{
	size_t got;
	uint64_t bs;
	cr_assert_eq(bcache_claim(c, key, blk, 0, 0, NULL, &got, &bs, 0), BCACHE_CLAIMED);
	bcache_fill(c, key, blk, data, len, blob_size);
}

Test(blob_cache, serves_what_was_filled_in_any_range_and_after_a_reopen)
{
	bcache *c;
	cr_assert_eq(bcache_open(dir, 64ull << 20, &c), 0);
	const char *key = "objects/00000000000000ab.tpdo";
	uint64_t size = BCACHE_BLOCK + 300000;
	uint8_t *blob = pattern(size, 1);
	put_block(c, key, 0, blob, BCACHE_BLOCK, size);
	put_block(c, key, 1, blob + BCACHE_BLOCK, size - BCACHE_BLOCK, size);
	uint8_t *out = calloc(1, BCACHE_BLOCK);
	size_t len;
	uint64_t bs;
	/* a few ranges: inside one segment, across segments, the whole block, the short tail */
	size_t ranges[][2] = {{0, 10}, {65530, 65545}, {0, BCACHE_BLOCK}, {500000, 700001}};
	for (size_t i = 0; i < 4; i++) {
		memset(out, 0, BCACHE_BLOCK);
		cr_assert_eq(bcache_claim(c, key, 0, ranges[i][0], ranges[i][1], out, &len, &bs, 1),
			     BCACHE_HIT);
		cr_assert_eq(len, BCACHE_BLOCK);
		cr_assert_eq(bs, size);
		cr_assert_arr_eq(out, blob + ranges[i][0], ranges[i][1] - ranges[i][0]);
	}
	cr_assert_eq(bcache_claim(c, key, 1, 100, size - BCACHE_BLOCK, out, &len, &bs, 1),
		     BCACHE_HIT);
	cr_assert_eq(len, size - BCACHE_BLOCK);
	cr_assert_arr_eq(out, blob + BCACHE_BLOCK + 100, size - BCACHE_BLOCK - 100);
	uint64_t known;
	cr_assert_eq(bcache_blob_size(c, key, &known), 0);
	cr_assert_eq(known, size);
	bcache_close(c);

	/* a new mount finds the blocks again */
	cr_assert_eq(bcache_open(dir, 64ull << 20, &c), 0);
	cr_assert_eq(bcache_claim(c, key, 1, 0, 1000, out, &len, &bs, 1), BCACHE_HIT);
	cr_assert_arr_eq(out, blob + BCACHE_BLOCK, 1000);
	blob_cache_stats st;
	bcache_stats(c, &st);
	cr_assert_eq(st.hits, 1);
	cr_assert_gt(st.bytes_cached, size);
	/* a range past the block's length is not served from it: the block is fetched again */
	cr_assert_eq(bcache_claim(c, key, 1, 0, size - BCACHE_BLOCK + 1, out, &len, &bs, 1),
		     BCACHE_CLAIMED);
	bcache_release(c, key, 1);
	bcache_close(c);
	free(out);
	free(blob);
}

/* Flip one byte of the only block file at offset off from its end. */
static void damage(long back)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512] = "";
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
	closedir(d);
	int fd = open(p, O_RDWR);
	cr_assert(fd >= 0);
	struct stat st;
	fstat(fd, &st);
	uint8_t b;
	cr_assert_eq(pread(fd, &b, 1, st.st_size - back), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, st.st_size - back), 1);
	close(fd);
}

Test(blob_cache, a_damaged_segment_is_never_served_and_is_dropped)
{
	bcache *c;
	cr_assert_eq(bcache_open(dir, 64ull << 20, &c), 0);
	const char *key = "objects/0000000000000001.tpdo";
	uint8_t *blob = pattern(BCACHE_BLOCK, 2);
	put_block(c, key, 0, blob, BCACHE_BLOCK, BCACHE_BLOCK);
	damage(10); /* in the last 64 KiB segment */
	uint8_t *out = malloc(BCACHE_BLOCK);
	size_t len;
	uint64_t bs;
	/* a range away from the damage is still served (its segments check) */
	cr_assert_eq(bcache_claim(c, key, 0, 0, 4096, out, &len, &bs, 1), BCACHE_HIT);
	cr_assert_arr_eq(out, blob, 4096);
	/* one that touches it is not: the block is dropped and claimed for a fetch */
	cr_assert_eq(bcache_claim(c, key, 0, BCACHE_BLOCK - 100, BCACHE_BLOCK, out, &len, &bs, 1),
		     BCACHE_CLAIMED);
	blob_cache_stats st;
	bcache_stats(c, &st);
	cr_assert_eq(st.damaged, 1);
	cr_assert_eq(nfiles(), 0);
	bcache_fill(c, key, 0, blob, BCACHE_BLOCK, BCACHE_BLOCK);
	cr_assert_eq(bcache_claim(c, key, 0, 0, BCACHE_BLOCK, out, &len, &bs, 1), BCACHE_HIT);
	cr_assert_arr_eq(out, blob, BCACHE_BLOCK);
	/* a damaged header too */
	damage(BCACHE_BLOCK + 100);
	cr_assert_eq(bcache_claim(c, key, 0, 0, 10, out, &len, &bs, 1), BCACHE_CLAIMED);
	bcache_release(c, key, 0);
	bcache_close(c);
	free(out);
	free(blob);
}

Test(blob_cache, another_key_never_reads_a_block)
{
	bcache *c;
	cr_assert_eq(bcache_open(dir, 64ull << 20, &c), 0);
	uint8_t *blob = pattern(5000, 3);
	put_block(c, "objects/a", 0, blob, 5000, 5000);
	/* move the block file to the name another key's block would have */
	bcache_close(c);
	char from[512], to[512];
	snprintf(from, sizeof(from), "%s/%016" PRIx64 "-%08x", dir, cksum64("objects/a", 9), 0);
	snprintf(to, sizeof(to), "%s/%016" PRIx64 "-%08x", dir, cksum64("objects/b", 9), 0);
	cr_assert_eq(rename(from, to), 0);
	cr_assert_eq(bcache_open(dir, 64ull << 20, &c), 0);
	uint8_t out[16];
	size_t len;
	uint64_t bs;
	/* b finds a file under its name holding a's key: not served, dropped */
	cr_assert_eq(bcache_claim(c, "objects/b", 0, 0, 16, out, &len, &bs, 1), BCACHE_CLAIMED);
	cr_assert_eq(nfiles(), 0);
	bcache_fill(c, "objects/b", 0, blob + 100, 4000, 4000);
	cr_assert_eq(bcache_claim(c, "objects/b", 0, 0, 16, out, &len, &bs, 1), BCACHE_HIT);
	cr_assert_arr_eq(out, blob + 100, 16);
	bcache_forget(c, "objects/b");
	cr_assert_eq(nfiles(), 0);
	bcache_close(c);
	free(blob);
}

Test(blob_cache, the_budget_holds_least_recently_used_first)
{
	bcache *c;
	/* room for three 1 MiB blocks and their headers, not four */
	cr_assert_eq(bcache_open(dir, 3 * (BCACHE_BLOCK + 4096), &c), 0);
	uint8_t *blob = pattern(BCACHE_BLOCK, 4);
	const char *key = "objects/0000000000000002.tpdo";
	uint64_t size = 4ull * BCACHE_BLOCK;
	for (uint64_t b = 0; b < 3; b++)
		put_block(c, key, b, blob, BCACHE_BLOCK, size);
	size_t len;
	uint64_t bs;
	uint8_t out[8];
	cr_assert_eq(bcache_claim(c, key, 0, 0, 8, out, &len, &bs, 1), BCACHE_HIT); /* 0 recent */
	put_block(c, key, 3, blob, BCACHE_BLOCK, size); /* evicts block 1, the oldest use */
	blob_cache_stats st;
	bcache_stats(c, &st);
	cr_assert_eq(st.evictions, 1);
	cr_assert_leq(st.bytes_cached, st.capacity);
	cr_assert_eq(nfiles(), 3);
	cr_assert_eq(bcache_claim(c, key, 1, 0, 8, out, &len, &bs, 0), BCACHE_CLAIMED);
	bcache_release(c, key, 1);
	cr_assert_eq(bcache_claim(c, key, 0, 0, 8, out, &len, &bs, 0), BCACHE_HIT);
	cr_assert_eq(bcache_claim(c, key, 3, 0, 8, out, &len, &bs, 0), BCACHE_HIT);
	/* a smaller budget at the next open drops the oldest */
	bcache_close(c);
	cr_assert_eq(bcache_open(dir, BCACHE_BLOCK + 4096, &c), 0);
	cr_assert_eq(nfiles(), 1);
	bcache_close(c);
	free(blob);
}

Test(blob_cache, a_pending_block_is_not_claimed_twice)
{
	bcache *c;
	cr_assert_eq(bcache_open(dir, 64ull << 20, &c), 0);
	size_t len;
	uint64_t bs;
	cr_assert_eq(bcache_claim(c, "k", 7, 0, 0, NULL, &len, &bs, 0), BCACHE_CLAIMED);
	/* a read-ahead does not wait for it, nor fetch it again */
	cr_assert_eq(bcache_claim(c, "k", 7, 0, 0, NULL, &len, &bs, 0), -EAGAIN);
	bcache_release(c, "k", 7);
	cr_assert_eq(bcache_claim(c, "k", 7, 0, 0, NULL, &len, &bs, 0), BCACHE_CLAIMED);
	bcache_release(c, "k", 7);
	bcache_close(c);
}
