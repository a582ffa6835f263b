/* Unit tests for core/objfile.c: round trip, every corruption and truncation detected. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cksum.h"
#include "io.h"
#include "objfile.h"

static int tmpfd(void)
{
	char path[] = "/tmp/tpdefs-obj-XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	unlink(path);
	return fd;
}

/* Writes an object of `size` bytes of data in RAW chunks of `cs` bytes (payload = bytes), every
 * other chunk claiming a base region. Returns the fd (positioned anywhere). */
static int write_obj(const uint8_t *data, uint64_t size, uint32_t cs, int has_base, uint64_t *bytes)
{
	int fd = tmpfd();
	obj_info info = {.size = size, .chunk_size = cs, .has_base = has_base,
			 .base_size = has_base ? 1000 : 0, .base_hash = has_base ? 0x1234 : 0};
	obj_writer *w;
	cr_assert_eq(obj_writer_open(fd, &info, &w), 0);
	for (uint64_t off = 0, k = 0; off < size; k++) {
		uint32_t len = size - off < cs ? (uint32_t)(size - off) : cs;
		obj_chunk c = {.off = off, .len = len, .codec = 0, .width = (k % 2) ? 4 : 1,
			       .base_off = OBJ_NO_BASE, .cksum = cksum64(data + off, len)};
		if (has_base && k % 2) {
			c.base_off = k * 10;
			c.base_len = 100;
		}
		cr_assert_eq(obj_writer_add(w, &c, data + off, len), 0);
		off += len;
	}
	cr_assert_eq(obj_writer_finish(w, cksum64(data, size)), 0);
	*bytes = obj_writer_bytes(w);
	obj_writer_free(w);
	return fd;
}

static uint8_t *rand_bytes(size_t n, unsigned seed)
{
	uint8_t *b = malloc(n ? n : 1);
	cr_assert_not_null(b);
	srand(seed);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rand();
	return b;
}

/* Every chunk's payload read back and checked like the decoder would: 0 when all good. */
static int verify_all(obj_reader *r)
{
	for (size_t i = 0; i < obj_reader_nchunks(r); i++) {
		const obj_chunk *c = obj_reader_chunk(r, i);
		uint8_t *buf = malloc(c->data_len ? c->data_len : 1);
		cr_assert_not_null(buf);
		int rc = obj_reader_payload(r, i, buf);
		if (rc == 0 && (c->data_len != c->len || cksum64(buf, c->len) != c->cksum))
			rc = -EIO;
		free(buf);
		if (rc < 0)
			return rc;
	}
	return 0;
}

Test(objfile, roundtrip)
{
	uint64_t size = 10000;
	uint8_t *d = rand_bytes(size, 1);
	uint64_t bytes;
	int fd = write_obj(d, size, 1024, 1, &bytes);
	obj_reader *r;
	cr_assert_eq(obj_reader_open(fd, &r), 0);
	const obj_info *in = obj_reader_info(r);
	cr_assert_eq(in->size, size);
	cr_assert_eq(in->chunk_size, 1024);
	cr_assert_eq(in->has_base, 1);
	cr_assert_eq(in->base_size, 1000);
	cr_assert_eq(in->base_hash, 0x1234);
	cr_assert_eq(in->content_hash, cksum64(d, size));
	cr_assert_eq(obj_reader_file_bytes(r), bytes);
	cr_assert_eq(obj_reader_nchunks(r), 10);
	for (size_t i = 0; i < 10; i++) {
		const obj_chunk *c = obj_reader_chunk(r, i);
		cr_assert_eq(c->off, i * 1024);
		cr_assert_eq(c->len, i < 9 ? 1024 : 10000 - 9 * 1024);
		cr_assert_eq(c->width, (i % 2) ? 4 : 1);
		cr_assert_eq(c->base_off, (i % 2) ? i * 10 : OBJ_NO_BASE);
		uint8_t buf[1024];
		cr_assert_eq(obj_reader_payload(r, i, buf), 0);
		cr_assert_arr_eq(buf, d + c->off, c->len);
	}
	cr_assert_null(obj_reader_chunk(r, 10));
	cr_assert_eq(obj_reader_find(r, 0), 0);
	cr_assert_eq(obj_reader_find(r, 1023), 0);
	cr_assert_eq(obj_reader_find(r, 1024), 1);
	cr_assert_eq(obj_reader_find(r, 9999), 9);
	cr_assert_eq(obj_reader_find(r, 10000), -ERANGE);
	obj_reader_close(r);
	free(d);
}

Test(objfile, empty_file)
{
	uint64_t bytes;
	int fd = write_obj(NULL, 0, 4096, 0, &bytes);
	obj_reader *r;
	cr_assert_eq(obj_reader_open(fd, &r), 0);
	cr_assert_eq(obj_reader_nchunks(r), 0);
	cr_assert_eq(obj_reader_info(r)->size, 0);
	cr_assert_eq(obj_reader_info(r)->has_base, 0);
	cr_assert_eq(obj_reader_find(r, 0), -ERANGE);
	obj_reader_close(r);
}

Test(objfile, writer_rejects_bad_chunks)
{
	int fd = tmpfd();
	obj_info info = {.size = 100, .chunk_size = 64};
	obj_writer *w;
	cr_assert_eq(obj_writer_open(fd, &info, &w), 0);
	uint8_t d[100] = {0};
	obj_chunk c = {.off = 10, .len = 10, .width = 1, .base_off = OBJ_NO_BASE};
	cr_assert_eq(obj_writer_add(w, &c, d, 10), -EINVAL); /* gap */
	c.off = 0;
	c.len = 65;
	cr_assert_eq(obj_writer_add(w, &c, d, 65), -EINVAL); /* > chunk_size */
	c.len = 50;
	c.base_off = 0;
	cr_assert_eq(obj_writer_add(w, &c, d, 50), -EINVAL); /* base without has_base */
	c.base_off = OBJ_NO_BASE;
	cr_assert_eq(obj_writer_add(w, &c, d, 50), 0);
	cr_assert_eq(obj_writer_finish(w, 0), -EINVAL); /* does not cover [0,size) */
	obj_writer_free(w);
	close(fd);
}

Test(objfile, every_byte_flip_detected)
{
	uint64_t size = 700;
	uint8_t *d = rand_bytes(size, 2);
	uint64_t bytes;
	int fd = write_obj(d, size, 256, 1, &bytes);
	uint8_t *obj = malloc(bytes);
	cr_assert_not_null(obj);
	cr_assert_eq(io_pread_fd_full(fd, obj, bytes, 0), 0);
	close(fd);
	for (uint64_t i = 0; i < bytes; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			int f = tmpfd();
			obj[i] ^= (uint8_t)(1u << bit);
			cr_assert_eq(io_pwrite_full(f, obj, bytes, 0), 0);
			obj[i] ^= (uint8_t)(1u << bit);
			obj_reader *r;
			int rc = obj_reader_open(f, &r);
			if (rc == 0) {
				rc = verify_all(r);
				obj_reader_close(r);
			}
			cr_assert(rc < 0, "flip of bit %d at byte %lu went undetected", bit,
				  (unsigned long)i);
		}
	}
	free(obj);
	free(d);
}

Test(objfile, every_truncation_and_extension_detected)
{
	uint64_t size = 500;
	uint8_t *d = rand_bytes(size, 3);
	uint64_t bytes;
	int fd = write_obj(d, size, 128, 0, &bytes);
	uint8_t *obj = malloc(bytes + 1);
	cr_assert_not_null(obj);
	cr_assert_eq(io_pread_fd_full(fd, obj, bytes, 0), 0);
	close(fd);
	for (uint64_t n = 0; n < bytes; n++) {
		int f = tmpfd();
		cr_assert_eq(io_pwrite_full(f, obj, n, 0), 0);
		obj_reader *r;
		cr_assert_eq(obj_reader_open(f, &r), -EBADMSG, "truncation to %lu accepted",
			     (unsigned long)n);
	}
	obj[bytes] = 0;
	int f = tmpfd();
	cr_assert_eq(io_pwrite_full(f, obj, bytes + 1, 0), 0);
	obj_reader *r;
	cr_assert_eq(obj_reader_open(f, &r), -EBADMSG);
	free(obj);
	free(d);
}

Test(objfile, newer_version_and_not_an_object)
{
	uint8_t d[300];
	memset(d, 7, sizeof d);
	uint64_t bytes;
	int fd = write_obj(d, sizeof d, 128, 0, &bytes);
	uint8_t v = 2;
	cr_assert_eq(io_pwrite_full(fd, &v, 1, 8), 0);
	obj_reader *r;
	cr_assert_eq(obj_reader_open(fd, &r), -EPROTONOSUPPORT);

	int f = tmpfd();
	cr_assert_eq(io_pwrite_full(f, d, sizeof d, 0), 0);
	cr_assert_eq(obj_reader_open(f, &r), -EBADMSG);
}
