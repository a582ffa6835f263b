/* Unit tests for core/encoder.c and core/decoder.c: bit-exact round trips over random,
 * adversarial and real checkpoint data; wrong and missing bases; damaged objects. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cksum.h"
#include "codec.h"
#include "decoder.h"
#include "encoder.h"
#include "io.h"
#include "objfile.h"

static int tmpfd(void)
{
	char path[] = "/tmp/tpdefs-enc-XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	unlink(path);
	return fd;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint8_t *rand_bytes(size_t n)
{
	uint8_t *b = malloc(n ? n : 1);
	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
	return b;
}

/* Encode nb against bb (NULL: no base) into a fresh object fd. */
static int encode(const uint8_t *nb, size_t nlen, const uint8_t *bb, size_t blen, uint32_t cs,
		  unsigned threads, enc_stats *st)
{
	io_src n, b;
	io_src_from_mem(&n, nb, nlen);
	uint64_t bh = 0;
	if (bb) {
		io_src_from_mem(&b, bb, blen);
		cr_assert_eq(enc_content_hash(&b, &bh), 0);
	}
	int fd = tmpfd();
	enc_opts o = {.chunk_size = cs, .threads = threads};
	int rc = enc_encode(&o, &n, bb ? &b : NULL, bh, fd, st);
	cr_assert_eq(rc, 0, "enc_encode: %d", rc);
	return fd;
}

/* Decode object fd (consumed) against bb into a malloc'd buffer; returns dec_file's rc. */
static int decode(int fd, const uint8_t *bb, size_t blen, int verify, uint8_t **out, size_t *olen)
{
	obj_reader *r;
	int rc = obj_reader_open(fd, &r);
	if (rc < 0)
		return rc;
	io_src b;
	if (bb)
		io_src_from_mem(&b, bb, blen);
	int of = tmpfd();
	rc = dec_file(r, bb ? &b : NULL, verify, 2, of);
	if (rc == 0) {
		struct stat st;
		cr_assert_eq(fstat(of, &st), 0);
		*olen = (size_t)st.st_size;
		*out = malloc(*olen ? *olen : 1);
		cr_assert_not_null(*out);
		cr_assert_eq(io_pread_fd_full(of, *out, *olen, 0), 0);
	}
	close(of);
	obj_reader_close(r);
	return rc;
}

static void roundtrip(const uint8_t *nb, size_t nlen, const uint8_t *bb, size_t blen, uint32_t cs)
{
	enc_stats st;
	int fd = encode(nb, nlen, bb, blen, cs, 2, &st);
	cr_assert_eq(st.in_bytes, nlen);
	cr_assert_eq(st.content_hash, cksum64(nb, nlen));
	uint64_t nchunks = 0, bin = 0, bout = 0;
	for (int i = 0; i < CODEC_MAX; i++) {
		nchunks += st.chunks[i];
		bin += st.bytes_in[i];
		bout += st.bytes_out[i];
	}
	cr_assert_eq(bin, nlen);
	cr_assert_leq(bout, st.out_bytes);

	/* Chunk by chunk, as the read path does. */
	int fd2 = dup(fd);
	cr_assert(fd2 >= 0);
	obj_reader *r;
	cr_assert_eq(obj_reader_open(fd2, &r), 0);
	cr_assert_eq(obj_reader_nchunks(r), nchunks);
	cr_assert_eq(obj_reader_file_bytes(r), st.out_bytes);
	codec_ctx *c = codec_ctx_new(0);
	cr_assert_not_null(c);
	io_src b;
	if (bb)
		io_src_from_mem(&b, bb, blen);
	uint8_t *buf = malloc(cs ? cs : ENC_DEFAULT_CHUNK);
	cr_assert_not_null(buf);
	for (size_t i = 0; i < obj_reader_nchunks(r); i++) {
		const obj_chunk *ch = obj_reader_chunk(r, i);
		cr_assert_eq(dec_chunk(c, r, i, bb ? &b : NULL, buf), 0);
		cr_assert_arr_eq(buf, nb + ch->off, ch->len);
	}
	free(buf);
	codec_ctx_free(c);
	obj_reader_close(r);

	uint8_t *out;
	size_t olen;
	cr_assert_eq(decode(fd, bb, blen, 1, &out, &olen), 0);
	cr_assert_eq(olen, nlen);
	cr_assert(nlen == 0 || memcmp(out, nb, nlen) == 0, "decoded bytes differ");
	free(out);
}

Test(encoder, sizes_without_base)
{
	size_t sizes[] = {0, 1, 2, 3, 7, 4095, 4096, 4097, 12345, 65537};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		uint8_t *d = rand_bytes(sizes[i]);
		roundtrip(d, sizes[i], NULL, 0, 4096);
		roundtrip(d, sizes[i], NULL, 0, 0);
		free(d);
	}
}

Test(encoder, sizes_with_base)
{
	size_t sizes[] = {0, 1, 3, 4097, 20001};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		for (size_t j = 0; j < sizeof sizes / sizeof *sizes; j++) {
			uint8_t *d = rand_bytes(sizes[i]);
			uint8_t *b = rand_bytes(sizes[j]);
			/* Make the new file a light edit of the base where they overlap. */
			for (size_t k = 0; k < sizes[i] && k < sizes[j]; k++)
				if (k % 17)
					d[k] = b[k];
			roundtrip(d, sizes[i], b, sizes[j], 4096);
			free(d);
			free(b);
		}
	}
}

Test(encoder, identical_and_unrelated)
{
	size_t n = 100003;
	uint8_t *a = rand_bytes(n);
	uint8_t *b = rand_bytes(n);
	roundtrip(a, n, a, n, 4096);
	roundtrip(a, n, b, n, 4096);
	roundtrip(a, n, b, n / 3, 8192);
	roundtrip(a, n / 3, b, n, 8192);
	/* Identical files must cost far less than the data. */
	enc_stats st;
	int fd = encode(a, n, a, n, 16384, 2, &st);
	close(fd);
	cr_assert_lt(st.out_bytes, n / 10, "identical file stored in %lu bytes",
		     (unsigned long)st.out_bytes);
	free(a);
	free(b);
}

/* A minimal safetensors file: 8-byte LE header length, JSON, tensor bytes. */
static uint8_t *make_st(const char *const *names, const char *const *dtypes, const size_t *nbytes,
			size_t nt, const uint8_t *payload, size_t *outlen)
{
	char hdr[4096];
	size_t h = 0, off = 0;
	h += (size_t)snprintf(hdr + h, sizeof hdr - h, "{");
	for (size_t i = 0; i < nt; i++) {
		size_t w = dtypes[i][1] == '8' ? 1 : (strchr(dtypes[i], '6') ? 2 : 4);
		if (!strcmp(dtypes[i], "F64"))
			w = 8;
		h += (size_t)snprintf(hdr + h, sizeof hdr - h,
				      "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}",
				      i ? "," : "", names[i], dtypes[i], nbytes[i] / w, off,
				      off + nbytes[i]);
		off += nbytes[i];
	}
	h += (size_t)snprintf(hdr + h, sizeof hdr - h, "}");
	while ((8 + h) % 8)
		hdr[h++] = ' ';
	*outlen = 8 + h + off;
	uint8_t *f = malloc(*outlen);
	cr_assert_not_null(f);
	for (int i = 0; i < 8; i++)
		f[i] = (uint8_t)((uint64_t)h >> (8 * i));
	memcpy(f + 8, hdr, h);
	memcpy(f + 8 + h, payload, off);
	return f;
}

static void fill_special_floats(float *v, size_t n)
{
	const float special[] = {NAN, -NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1e-45f, -1e-45f,
				 1.17549421e-38f, 3.4028235e38f, -3.4028235e38f};
	for (size_t i = 0; i < n; i++) {
		if (rnd() % 4 == 0)
			v[i] = special[rnd() % (sizeof special / sizeof *special)];
		else
			v[i] = (float)((double)(int64_t)rnd() / 9.2e18);
	}
}

Test(encoder, safetensors_adversarial_floats)
{
	const char *names[] = {"w.f32", "w.odd16", "w.bf16", "w.f64", "w.u8"};
	const char *dtypes[] = {"F32", "F16", "BF16", "F64", "U8"};
	size_t nbytes[] = {4 * 5003, 2 * 3, 2 * 4001, 8 * 777, 13};
	size_t tot = 0;
	for (int i = 0; i < 5; i++)
		tot += nbytes[i];
	uint8_t *p1 = rand_bytes(tot);
	fill_special_floats((float *)p1, nbytes[0] / 4);
	uint8_t *p2 = malloc(tot);
	cr_assert_not_null(p2);
	memcpy(p2, p1, tot);
	/* Small changes in some elements, flips of specials in others. */
	float *f2 = (float *)p2;
	for (size_t i = 0; i < nbytes[0] / 4; i += 3)
		f2[i] = (rnd() % 2) ? f2[i] * 1.0001f : -f2[i];
	for (size_t i = nbytes[0]; i < tot; i += 5)
		p2[i] ^= (uint8_t)(1u << (rnd() % 8));
	size_t l1, l2;
	uint8_t *s1 = make_st(names, dtypes, nbytes, 5, p1, &l1);
	uint8_t *s2 = make_st(names, dtypes, nbytes, 5, p2, &l2);
	roundtrip(s2, l2, s1, l1, 4096);
	roundtrip(s2, l2, s1, l1, 4099); /* chunk size not a multiple of any width */
	roundtrip(s2, l2, s1, l1, 0);
	roundtrip(s2, l2, NULL, 0, 4096);
	/* Base shorter / longer than the new file. */
	roundtrip(s2, l2, s1, l1 / 2, 4096);
	roundtrip(s2, l2 / 2, s1, l1, 4096);
	free(s1);
	free(s2);
	free(p1);
	free(p2);
}

Test(encoder, wrong_and_missing_base)
{
	size_t n = 50000;
	uint8_t *a = rand_bytes(n);
	uint8_t *b = malloc(n);
	cr_assert_not_null(b);
	memcpy(b, a, n);
	for (size_t i = 0; i < n; i += 100)
		b[i] ^= 1;
	int fd = encode(b, n, a, n, 4096, 2, NULL);
	uint8_t *out;
	size_t olen;
	/* Same size, different content. */
	uint8_t *c = rand_bytes(n);
	int fd2 = dup(fd);
	cr_assert_eq(decode(fd2, c, n, 1, &out, &olen), -ESTALE);
	/* Different size. */
	fd2 = dup(fd);
	cr_assert_eq(decode(fd2, a, n - 1, 0, &out, &olen), -ESTALE);
	/* Missing. */
	fd2 = dup(fd);
	cr_assert_eq(decode(fd2, NULL, 0, 1, &out, &olen), -EINVAL);
	/* Wrong content, not verified up front: chunk checksums still catch it. */
	fd2 = dup(fd);
	int rc = decode(fd2, c, n, 0, &out, &olen);
	cr_assert(rc == -EIO || rc == -EBADMSG, "rc %d", rc);
	cr_assert_eq(decode(fd, a, n, 1, &out, &olen), 0);
	cr_assert_arr_eq(out, b, n);
	free(out);
	free(a);
	free(b);
	free(c);
}

Test(encoder, every_byte_flip_of_an_encoded_object)
{
	size_t n = 3000;
	uint8_t *a = rand_bytes(n);
	uint8_t *b = malloc(n);
	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (i % 7) ? a[i] : (uint8_t)(i * 3);
	int fd = encode(b, n, a, n, 1024, 1, NULL);
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	size_t ol = (size_t)st.st_size;
	uint8_t *obj = malloc(ol);
	cr_assert_not_null(obj);
	cr_assert_eq(io_pread_fd_full(fd, obj, ol, 0), 0);
	close(fd);
	for (size_t i = 0; i < ol; i++) {
		int f = tmpfd();
		obj[i] ^= 0x10;
		cr_assert_eq(io_pwrite_full(f, obj, ol, 0), 0);
		obj[i] ^= 0x10;
		uint8_t *out = NULL;
		size_t olen = 0;
		int rc = decode(f, a, n, 1, &out, &olen);
		if (rc == 0) {
			/* Only acceptable if the flip did not change the decoded bytes. */
			cr_assert_eq(olen, n);
			cr_assert_arr_eq(out, b, n, "flip at %zu returned wrong bytes", i);
			free(out);
		}
	}
	free(obj);
	free(a);
	free(b);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long l = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(l > 0 ? (size_t)l : 1);
	cr_assert_not_null(b);
	cr_assert_eq(fread(b, 1, (size_t)l, f), (size_t)l);
	fclose(f);
	*len = (size_t)l;
	return b;
}

#define CORPUS TPDEFS_SAMPLE_CORPUS /* from meson: -Dsample_corpus */

static void corpus_pair(const char *pred, const char *cur, uint32_t cs)
{
	size_t la, lb;
	uint8_t *a = slurp(pred, &la);
	uint8_t *b = slurp(cur, &lb);
	if (!a || !b) {
		free(a);
		free(b);
		cr_skip_test("corpus not available: %s", pred);
	}
	roundtrip(b, lb, a, la, cs);
	free(a);
	free(b);
}

Test(encoder, corpus_pairs_bit_exact, .timeout = 240)
{
	const char *pairs[][2] = {
		{CORPUS "/gpt_full_state/ckpt_000.pt", CORPUS "/gpt_full_state/ckpt_001.pt"},
		{CORPUS "/gpt_full_state/ckpt_008.pt", CORPUS "/gpt_full_state/ckpt_009.pt"},
		{CORPUS "/gpt_bf16_st/model_000.safetensors", CORPUS "/gpt_bf16_st/model_001.safetensors"},
		{CORPUS "/gpt_bf16_st/model_008.safetensors", CORPUS "/gpt_bf16_st/model_009.safetensors"},
		{CORPUS "/gpt_finetune_frozen/ckpt_003.pt", CORPUS "/gpt_finetune_frozen/ckpt_004.pt"},
		{CORPUS "/hf_trainer_dirs/checkpoint-150/model.safetensors",
		 CORPUS "/hf_trainer_dirs/checkpoint-175/model.safetensors"},
		{CORPUS "/hf_trainer_dirs/checkpoint-175/optimizer.pt",
		 CORPUS "/hf_trainer_dirs/checkpoint-200/optimizer.pt"},
		/* Unrelated formats against each other. */
		{CORPUS "/gpt_bf16_st/model_000.safetensors", CORPUS "/gpt_full_state/ckpt_001.pt"},
	};
	for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
		corpus_pair(pairs[i][0], pairs[i][1], 4096);
		corpus_pair(pairs[i][0], pairs[i][1], 0);
	}
}

Test(encoder, any_thread_count_gives_the_same_object)
{
	size_t n = 300001;
	uint8_t *a = rand_bytes(n);
	uint8_t *b = malloc(n);
	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (i % 13) ? a[i] : (uint8_t)(a[i] + 1);
	enc_stats s1, s5;
	int f1 = encode(b, n, a, n, 8192, 1, &s1);
	int f5 = encode(b, n, a, n, 8192, 5, &s5);
	cr_assert_eq(s1.out_bytes, s5.out_bytes);
	uint8_t *o1 = malloc(s1.out_bytes), *o5 = malloc(s5.out_bytes);
	cr_assert(o1 && o5);
	cr_assert_eq(io_pread_fd_full(f1, o1, s1.out_bytes, 0), 0);
	cr_assert_eq(io_pread_fd_full(f5, o5, s5.out_bytes, 0), 0);
	cr_assert_arr_eq(o1, o5, s1.out_bytes, "encoding depends on the thread count");
	close(f1);
	close(f5);
	free(o1);
	free(o5);
	free(a);
	free(b);
}

Test(encoder, rejects_bad_options)
{
	uint8_t d[10] = {0};
	io_src n;
	io_src_from_mem(&n, d, sizeof d);
	int fd = tmpfd();
	enc_opts o = {.chunk_size = 4};
	cr_assert_eq(enc_encode(&o, &n, NULL, 0, fd, NULL), -EINVAL);
	o.chunk_size = 1u << 30;
	cr_assert_eq(enc_encode(&o, &n, NULL, 0, fd, NULL), -EINVAL);
	close(fd);
}
