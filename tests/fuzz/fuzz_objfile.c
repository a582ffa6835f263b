/* libFuzzer target for core/objfile.c (reader) and core/decoder.c (dec_chunk): arbitrary bytes
 * as an object file. obj_reader_open must reject or accept without crashing; an accepted index
 * must honour the contract (chunks contiguous from 0 to size, payloads inside the file); every
 * chunk must decode or fail with a negative errno, and a successful decode must match the
 * chunk checksum (dec_chunk's promise: nothing unverified comes back). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cksum.h"
#include "codec.h"
#include "decoder.h"
#include "io.h"
#include "objfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decoded chunks bigger than this are skipped (the format allows 256 MiB; the fuzzer's memory
 * limit does not). */
#define FUZZ_MAX_CHUNK (1u << 20)

static codec_ctx *ctx(void)
{
	static codec_ctx *c;
	if (!c) {
		c = codec_ctx_new(1);
		if (!c)
			abort();
	}
	return c;
}

static int memfd(void)
{
	static int fd = -1;
	if (fd < 0) {
		fd = memfd_create("fuzz_objfile", 0);
		if (fd < 0)
			abort();
	}
	return fd;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Make the header, index and footer checksums (and index position) right, so the mutations
 * reach the index checks and the decoders instead of dying at the first checksum. */
static void fixup(uint8_t *d, size_t size)
{
	if (size < 64 + 48)
		return;
	put64(d + 56, cksum64(d, 56));
	uint8_t *f = d + size - 48;
	uint64_t n = get64(f + 8);
	if (n <= (size - 112) / 48) {
		uint64_t index_off = size - 48 - n * 48;
		put64(f, index_off);
		put64(f + 24, cksum64(d + index_off, (size_t)n * 48));
	}
	put64(f + 32, cksum64(f, 32));
}

static void one(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size);
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	fixup(copy, size);
	if (memcmp(copy, data, size) != 0)
		one(copy, size);
	free(copy);
	return 0;
}

static void one(const uint8_t *data, size_t size)
{
	int mfd = memfd();
	if (ftruncate(mfd, 0) != 0 || io_pwrite_full(mfd, data, size, 0) != 0)
		abort();
	int fd = dup(mfd); /* obj_reader_open owns (and closes) its fd */
	if (fd < 0)
		abort();
	obj_reader *r = NULL;
	int rc = obj_reader_open(fd, &r);
	if (rc < 0) {
		if (rc == -ENOMEM)
			abort(); /* inputs are tiny: no excuse */
		return;
	}
	const obj_info *info = obj_reader_info(r);
	size_t n = obj_reader_nchunks(r);
	uint64_t pos = 0;
	for (size_t i = 0; i < n; i++) {
		const obj_chunk *c = obj_reader_chunk(r, i);
		if (!c || c->off != pos || c->len == 0 || c->data_off > size ||
		    c->data_len > size - c->data_off || c->codec >= CODEC_MAX)
			abort();
		if (obj_reader_find(r, c->off) != (long)i)
			abort();
		pos += c->len;
	}
	if (pos != info->size || obj_reader_find(r, info->size) != -ERANGE)
		abort();
	if (obj_reader_chunk(r, n) != NULL)
		abort();

	/* The input itself serves as the base (wrong content: checksums must catch it). */
	io_src base;
	io_src_from_mem(&base, data, size);
	for (size_t i = 0; i < n && i < 64; i++) {
		const obj_chunk *c = obj_reader_chunk(r, i);
		if (c->len > FUZZ_MAX_CHUNK)
			continue;
		uint8_t *out = malloc(c->len);
		if (!out)
			abort();
		for (int withbase = 0; withbase < 2; withbase++) {
			rc = dec_chunk(ctx(), r, i, withbase ? &base : NULL, out);
			if (rc > 0)
				abort();
			if (rc == 0 && cksum64(out, c->len) != c->cksum)
				abort();
		}
		free(out);
	}
	obj_reader_close(r);
}
