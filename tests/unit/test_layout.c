/* Unit tests for core/layout*.c: safetensors and torch zip parsing (real and synthetic files,
 * hostile inputs) and alignment of a new layout with its predecessor's. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "layout.h"

#define CORPUS TPDEFS_SAMPLE_CORPUS /* from meson: -Dsample_corpus */

/* ---- helpers ---------------------------------------------------------------------------- */

typedef struct buf {
	unsigned char *p;
	size_t n, cap;
} buf;

static void b_put(buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		size_t c = b->cap ? b->cap : 256;
		while (c < b->n + n)
			c *= 2;
		b->p = realloc(b->p, c);
		cr_assert(b->p);
		b->cap = c;
	}
	if (n)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void b_u8(buf *b, unsigned v)
{
	unsigned char c = (unsigned char)v;
	b_put(b, &c, 1);
}

static void b_u16(buf *b, unsigned v)
{
	b_u8(b, v & 0xFF);
	b_u8(b, (v >> 8) & 0xFF);
}

static void b_u32(buf *b, uint32_t v)
{
	b_u16(b, v & 0xFFFF);
	b_u16(b, v >> 16);
}

static void b_u64(buf *b, uint64_t v)
{
	b_u32(b, (uint32_t)v);
	b_u32(b, (uint32_t)(v >> 32));
}

static void b_str(buf *b, const char *s)
{
	b_put(b, s, strlen(s));
}

static layout *parse_mem(const void *p, size_t n)
{
	io_src s;
	layout *l = NULL;
	io_src_from_mem(&s, p, n);
	int rc = layout_parse(&s, &l);
	cr_assert_eq(rc, 0, "layout_parse rc=%d", rc);
	cr_assert(l);
	/* Whatever was recognised must satisfy the contract. */
	uint64_t end = 0;
	for (size_t i = 0; i < l->n; i++) {
		cr_assert(l->r[i].off >= end);
		cr_assert(l->r[i].len <= n && l->r[i].off <= n - l->r[i].len);
		cr_assert(l->r[i].width == 1 || l->r[i].width == 2 || l->r[i].width == 4 ||
			  l->r[i].width == 8);
		cr_assert(l->r[i].name);
		end = l->r[i].off + l->r[i].len;
	}
	if (l->kind == LAYOUT_UNKNOWN)
		cr_assert_eq(l->n, 0);
	return l;
}

static int parse_kind(const void *p, size_t n)
{
	layout *l = parse_mem(p, n);
	int k = l->kind;
	layout_free(l);
	return k;
}

static unsigned char *slurp(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	unsigned char *p = malloc(st.st_size ? (size_t)st.st_size : 1);
	cr_assert(p);
	cr_assert_eq(io_pread_fd_full(fd, p, (size_t)st.st_size, 0), 0);
	close(fd);
	*n = (size_t)st.st_size;
	return p;
}

static layout *parse_file(const char *path, size_t *size)
{
	size_t n;
	unsigned char *p = slurp(path, &n);
	if (!p)
		cr_skip_test("corpus file %s not available", path);
	layout *l = parse_mem(p, n);
	free(p);
	if (size)
		*size = n;
	return l;
}

static const layout_region *find_region(const layout *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->r[i].name, name) == 0)
			return &l->r[i];
	return NULL;
}

/* Checks the layout_align contract on one result. */
static void check_segments(const seg *s, size_t n, uint64_t new_size, int have_base,
			   uint64_t base_size)
{
	uint64_t pos = 0;
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(s[i].off, pos, "segment %zu starts at %llu, expected %llu", i,
			     (unsigned long long)s[i].off, (unsigned long long)pos);
		cr_assert_gt(s[i].len, 0);
		cr_assert(s[i].len <= new_size - pos);
		cr_assert(s[i].width == 1 || s[i].width == 2 || s[i].width == 4 || s[i].width == 8);
		if (!s[i].tensor)
			cr_assert_eq(s[i].width, 1);
		if (s[i].base_off != SEG_NO_BASE) {
			cr_assert(have_base);
			cr_assert(s[i].base_len > 0);
			cr_assert(s[i].base_off <= base_size &&
				  s[i].base_len <= base_size - s[i].base_off);
			if (s[i].tensor)
				cr_assert_eq(s[i].base_len, s[i].len);
		}
		pos += s[i].len;
	}
	cr_assert_eq(pos, new_size);
}

/* ---- real files ------------------------------------------------------------------------- */

static void check_pair(const char *a, const char *b, int kind, int width)
{
	size_t na, nb;
	layout *la = parse_file(a, &na), *lb = parse_file(b, &nb);
	cr_assert_eq(la->kind, kind, "%s: kind %s", a, layout_kind_name(la->kind));
	cr_assert_eq(lb->kind, kind);
	cr_assert_gt(la->n, 10);
	uint64_t tb = 0;
	for (size_t i = 0; i < la->n; i++) {
		if (width)
			cr_assert_eq(la->r[i].width, width, "%s: %s width %u", a, la->r[i].name,
				     la->r[i].width);
		tb += la->r[i].len;
		if (kind == LAYOUT_TORCHZIP)
			cr_assert(strncmp(la->r[i].name, "data/", 5) == 0, "name %s",
				  la->r[i].name);
	}
	/* Tensors are nearly all of a checkpoint. */
	cr_assert_gt(tb, na * 9 / 10);
	cr_assert_float_eq(layout_match(lb, la), 1.0, 1e-12);

	seg *s;
	size_t ns;
	cr_assert_eq(layout_align(lb, nb, la, na, &s, &ns), 0);
	check_segments(s, ns, nb, 1, na);
	size_t paired = 0;
	for (size_t i = 0; i < ns; i++)
		paired += s[i].tensor && s[i].base_off != SEG_NO_BASE;
	cr_assert_eq(paired, lb->n);
	free(s);
	layout_free(la);
	layout_free(lb);
}

Test(layout_real, bf16_safetensors)
{
	check_pair(CORPUS "/gpt_bf16_st/model_000.safetensors",
		   CORPUS "/gpt_bf16_st/model_001.safetensors", LAYOUT_SAFETENSORS, 2);
}

Test(layout_real, full_state_torchzip_fp32)
{
	check_pair(CORPUS "/gpt_full_state/ckpt_000.pt", CORPUS "/gpt_full_state/ckpt_001.pt",
		   LAYOUT_TORCHZIP, 4);
}

Test(layout_real, finetune_frozen_torchzip)
{
	check_pair(CORPUS "/gpt_finetune_frozen/ckpt_003.pt",
		   CORPUS "/gpt_finetune_frozen/ckpt_004.pt", LAYOUT_TORCHZIP, 4);
}

Test(layout_real, hf_trainer_dirs)
{
	check_pair(CORPUS "/hf_trainer_dirs/checkpoint-150/model.safetensors",
		   CORPUS "/hf_trainer_dirs/checkpoint-175/model.safetensors", LAYOUT_SAFETENSORS,
		   4);
	check_pair(CORPUS "/hf_trainer_dirs/checkpoint-150/optimizer.pt",
		   CORPUS "/hf_trainer_dirs/checkpoint-175/optimizer.pt", LAYOUT_TORCHZIP, 4);
	layout *l = parse_file(CORPUS "/hf_trainer_dirs/checkpoint-150/trainer_state.json", NULL);
	cr_assert_eq(l->kind, LAYOUT_UNKNOWN);
	layout_free(l);
}

/* Through a file descriptor, as the daemon reads staging files; an I/O error is reported,
 * not turned into "unknown". */
Test(layout_real, via_fd_and_io_error)
{
	const char *path = CORPUS "/gpt_full_state/ckpt_000.pt";
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		cr_skip_test("corpus file %s not available", path);
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	io_src s;
	io_src_from_fd(&s, fd, (uint64_t)st.st_size);
	layout *l = NULL;
	cr_assert_eq(layout_parse(&s, &l), 0);
	cr_assert_eq(l->kind, LAYOUT_TORCHZIP);
	cr_assert_gt(l->n, 100);
	layout_free(l);
	/* A source that claims more bytes than the file has: reads come up short. */
	io_src_from_fd(&s, fd, (uint64_t)st.st_size + 4096);
	l = NULL;
	int rc = layout_parse(&s, &l);
	cr_assert(rc == 0 || rc == -EIO, "rc=%d", rc);
	if (rc == 0) {
		cr_assert_eq(l->kind, LAYOUT_UNKNOWN);
		layout_free(l);
	}
	close(fd);
}

/* Different archive prefixes (ckpt_000/ vs ckpt_007/) still align by name. */
Test(layout_real, archive_prefix_dropped)
{
	size_t na, nb;
	layout *la = parse_file(CORPUS "/gpt_full_state/ckpt_000.pt", &na);
	layout *lb = parse_file(CORPUS "/gpt_full_state/ckpt_009.pt", &nb);
	cr_assert_not_null(find_region(la, "data/0"));
	cr_assert_not_null(find_region(lb, "data/0"));
	cr_assert_float_eq(layout_match(lb, la), 1.0, 1e-12);
	/* A safetensors file and a zip share no tensor names. */
	layout *ls = parse_file(CORPUS "/gpt_bf16_st/model_000.safetensors", NULL);
	cr_assert_float_eq(layout_match(ls, la), 0.0, 1e-12);
	layout_free(ls);
	layout_free(la);
	layout_free(lb);
}

/* ---- synthetic safetensors -------------------------------------------------------------- */

static unsigned char *st_make(const char *json, size_t data_len, size_t *n)
{
	size_t jl = strlen(json);
	*n = 8 + jl + data_len;
	unsigned char *p = calloc(1, *n);
	cr_assert(p);
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)((uint64_t)jl >> (8 * i));
	memcpy(p + 8, json, jl);
	return p;
}

static int st_kind(const char *json, size_t data_len)
{
	size_t n;
	unsigned char *p = st_make(json, data_len, &n);
	int k = parse_kind(p, n);
	free(p);
	return k;
}

Test(layout_st, basic_and_widths)
{
	const char *j = "{\"__metadata__\":{\"format\":\"pt\"},"
			"\"b\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[16,28]},"
			"\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
			"\"c\":{\"shape\":[],\"data_offsets\":[28,29],\"dtype\":\"U8\"},"
			"\"d\":{\"dtype\":\"I32\",\"shape\":[0,5],\"data_offsets\":[29,29]}}   ";
	size_t n;
	unsigned char *p = st_make(j, 29, &n);
	layout *l = parse_mem(p, n);
	cr_assert_eq(l->kind, LAYOUT_SAFETENSORS);
	cr_assert_eq(l->n, 4);
	uint64_t ds = 8 + strlen(j);
	const layout_region *a = find_region(l, "a"), *b = find_region(l, "b");
	const layout_region *c = find_region(l, "c");
	cr_assert(a && b && c);
	cr_assert_eq(a->off, ds);
	cr_assert_eq(a->len, 16);
	cr_assert_eq(a->width, 8);
	cr_assert_eq(b->off, ds + 16);
	cr_assert_eq(b->width, 2);
	cr_assert_eq(c->width, 1);
	cr_assert_str_eq(l->r[0].name, "a"); /* sorted by offset */
	layout_free(l);
	free(p);
}

Test(layout_st, escapes_in_names)
{
	const char *j = "{\"a\\\"b\\\\c\\/\\u00e9\\ud83d\\ude00\\n\":"
			"{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
			"\"\xc3\xa9t\xe2\x82\xac\":{\"dtype\":\"BOOL\",\"shape\":[1],"
			"\"data_offsets\":[8,9]}}";
	size_t n;
	unsigned char *p = st_make(j, 9, &n);
	layout *l = parse_mem(p, n);
	cr_assert_eq(l->kind, LAYOUT_SAFETENSORS);
	cr_assert_eq(l->n, 2);
	cr_assert_str_eq(l->r[0].name, "a\"b\\c/\xc3\xa9\xf0\x9f\x98\x80\n");
	cr_assert_eq(l->r[0].width, 2);
	cr_assert_str_eq(l->r[1].name, "\xc3\xa9t\xe2\x82\xac");
	layout_free(l);
	free(p);
}

/* Escapes shift the in-place decoded text left, so multi-byte UTF-8 after an escape moves
 * over itself (found by fuzz_layout: memcpy with overlapping ranges). */
Test(layout_st, escape_then_utf8)
{
	const char *j = "{\"x\\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\":"
			"{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
	size_t n;
	unsigned char *p = st_make(j, 1, &n);
	layout *l = parse_mem(p, n);
	cr_assert_eq(l->kind, LAYOUT_SAFETENSORS);
	cr_assert_str_eq(l->r[0].name, "x\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	layout_free(l);
	free(p);
}

Test(layout_st, odd_but_valid)
{
	/* Metadata of any JSON shape, whitespace everywhere, numbers in exponent form in
	 * metadata, extra keys in a tensor entry, unknown dtype (no size check, width 1). */
	cr_assert_eq(st_kind(" {}", 0), LAYOUT_UNKNOWN); /* must start with '{' */
	cr_assert_eq(st_kind("{}", 0), LAYOUT_SAFETENSORS);
	cr_assert_eq(st_kind("{ \"__metadata__\" : { \"x\" : [1, 2.5e-3, -0, true, false, null,"
			     " {\"y\": \"\\t\"}] } }", 0), LAYOUT_SAFETENSORS);
	cr_assert_eq(st_kind("{\"t\" :\n{ \"dtype\" : \"F32\" , \"extra\" : {\"q\":[]},"
			     " \"shape\" : [ 1 ] , \"data_offsets\" : [ 0 , 4 ] } }\n", 4),
		     LAYOUT_SAFETENSORS);
	size_t n;
	unsigned char *p = st_make("{\"t\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}",
				   2, &n);
	layout *l = parse_mem(p, n);
	cr_assert_eq(l->kind, LAYOUT_SAFETENSORS);
	cr_assert_eq(l->r[0].width, 1);
	layout_free(l);
	free(p);
}

Test(layout_st, hostile)
{
	static const char *const bad[] = {
		/* overlapping tensors */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		"\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
		/* past the end of the data */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
		/* begin > end */
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,0]}}",
		/* shape disagrees with length */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
		/* shape product overflows */
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
		"\"data_offsets\":[0,0]}}",
		"{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],"
		"\"data_offsets\":[0,0]}}",
		/* negative, fractional, overflowing numbers */
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,8]}}",
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[-0,8.0]}}",
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,1e1]}}",
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],"
		"\"data_offsets\":[18446744073709551616,8]}}",
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,08]}}",
		/* missing / repeated fields, wrong types */
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[8]}}",
		"{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}",
		"{\"a\":{\"dtype\":8,\"shape\":[8],\"data_offsets\":[0,8]}}",
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,4,8]}}",
		"{\"a\":[]}",
		"{\"a\":{}}",
		/* duplicate tensor names */
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
		"\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
		"{\"a\\u0000x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
		"\"a\\u0000y\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
		/* broken JSON */
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},}",
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}} x",
		"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}",
		"{\"__metadata__\":{\"x\":\"\\q\"}}",
		"{\"__metadata__\":{\"x\":\"\\ud800\"}}",
		"{\"__metadata__\":{\"x\":\"\\udc00\"}}",
		"{\"__metadata__\":{\"x\":\"\\u12G4\"}}",
		"{\"__metadata__\":{\"x\":\"\xc0\xaf\"}}",
		"{\"__metadata__\":{\"x\":\"\xed\xa0\x80\"}}",
		"{\"__metadata__\":{\"x\":\"\xff\"}}",
		"{\"__metadata__\":{\"x\":\"a\tb\"}}",
		"{\"__metadata__\":{\"x\":tru}}",
		"{\"__metadata__\":{\"x\":01}}",
		"{\"__metadata__\":{\"x\":1.}}",
		"{\"__metadata__\":{\"x\":-}}",
		"{\"__metadata__\":{}, \"__metadata__\":{}}",
		"{\"__metadata__\":{\"x\":\"unterminated}}",
		"{'a':1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(st_kind(bad[i], 8), LAYOUT_UNKNOWN, "case %zu parsed: %s", i, bad[i]);
}

Test(layout_st, deep_nesting)
{
	buf b = { 0 };
	b_str(&b, "{\"__metadata__\":");
	for (int i = 0; i < 100000; i++)
		b_str(&b, "[");
	for (int i = 0; i < 100000; i++)
		b_str(&b, "]");
	b_str(&b, "}");
	b_u8(&b, 0);
	cr_assert_eq(st_kind((const char *)b.p, 0), LAYOUT_UNKNOWN);
	/* Moderate nesting is fine. */
	b.n = 0;
	b_str(&b, "{\"__metadata__\":");
	for (int i = 0; i < 30; i++)
		b_str(&b, "{\"k\":[");
	for (int i = 0; i < 30; i++)
		b_str(&b, "]}");
	b_str(&b, "}");
	b_u8(&b, 0);
	cr_assert_eq(st_kind((const char *)b.p, 0), LAYOUT_SAFETENSORS);
	free(b.p);
}

Test(layout_st, header_length_lies)
{
	size_t n;
	unsigned char *p = st_make("{}", 0, &n);
	p[0] = 200; /* past EOF */
	cr_assert_eq(parse_kind(p, n), LAYOUT_UNKNOWN);
	memset(p, 0xFF, 8); /* absurd */
	cr_assert_eq(parse_kind(p, n), LAYOUT_UNKNOWN);
	memset(p, 0, 8); /* zero */
	cr_assert_eq(parse_kind(p, n), LAYOUT_UNKNOWN);
	free(p);
	/* Tiny and empty inputs. */
	cr_assert_eq(parse_kind("", 0), LAYOUT_UNKNOWN);
	cr_assert_eq(parse_kind("\x02\0\0\0\0\0\0\0{", 9), LAYOUT_UNKNOWN);
}

/* Every truncation and every single-byte corruption of a valid file parses without crashing,
 * and the result (whatever it is) satisfies the layout contract (checked in parse_mem). */
Test(layout_st, mutations)
{
	const char *j = "{\"__metadata__\":{\"f\":\"pt\"},"
			"\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
			"\"v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
	size_t n;
	unsigned char *p = st_make(j, 12, &n);
	for (size_t cut = 0; cut < n; cut++)
		layout_free(parse_mem(p, cut));
	unsigned char *q = malloc(n);
	cr_assert(q);
	for (size_t i = 0; i < n; i++) {
		static const unsigned char vals[] = { 0, 1, '"', '\\', '{', '[', ']', '}', ',',
						      '-', '9', 0x80, 0xFF };
		for (size_t v = 0; v < sizeof(vals); v++) {
			memcpy(q, p, n);
			q[i] = vals[v];
			layout_free(parse_mem(q, n));
		}
	}
	free(q);
	free(p);
}

/* ---- synthetic torch zips --------------------------------------------------------------- */

typedef struct zent {
	const char *name;
	const unsigned char *data;
	size_t len;
	uint16_t method;
} zent;

/* A minimal pickle: a list of storages, the storage class GLOBAL memoised and fetched again
 * with BINGET for repeated dtypes, as torch does. */
static void pickle_make(buf *b, const char *const *keys, const char *const *classes, size_t n)
{
	b_u8(b, 0x80);
	b_u8(b, 2);
	b_u8(b, ']');
	b_u8(b, '(');
	for (size_t i = 0; i < n; i++) {
		b_u8(b, '(');
		b_u8(b, 'X');
		b_u32(b, 7);
		b_str(b, "storage");
		size_t first = i;
		for (size_t k = 0; k < i; k++)
			if (strcmp(classes[k], classes[i]) == 0) {
				first = k;
				break;
			}
		if (first == i) {
			b_str(b, "ctorch\n");
			b_str(b, classes[i]);
			b_str(b, "\n");
			b_u8(b, 'r'); /* LONG_BINPUT */
			b_u32(b, (uint32_t)(100 + i));
		} else {
			b_u8(b, 'j'); /* LONG_BINGET */
			b_u32(b, (uint32_t)(100 + first));
		}
		b_u8(b, 'X');
		b_u32(b, (uint32_t)strlen(keys[i]));
		b_str(b, keys[i]);
		b_u8(b, 0x8c);
		b_u8(b, 3);
		b_str(b, "cpu");
		b_u8(b, 'K');
		b_u8(b, 1);
		b_u8(b, 't');
		b_u8(b, 'Q');
	}
	b_u8(b, 'e');
	b_u8(b, '.');
}

/* Stored zip with torch's 64-byte data alignment (padding in the local extra field only).
 * zip64: use ZIP64 records and 0xFFFFFFFF placeholders everywhere. */
static void zip_make(buf *z, const zent *e, size_t n, int zip64)
{
	uint64_t *loc = calloc(n ? n : 1, sizeof(*loc));
	cr_assert(loc);
	z->n = 0;
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(e[i].name);
		loc[i] = z->n;
		size_t hdr = 30 + nl;
		size_t pad = (64 - (z->n + hdr + 4) % 64) % 64 + 4;
		b_u32(z, 0x04034b50);
		b_u16(z, 20);
		b_u16(z, 0);
		b_u16(z, e[i].method);
		b_u32(z, 0);
		b_u32(z, 0); /* crc: not checked by the parser */
		b_u32(z, (uint32_t)e[i].len);
		b_u32(z, (uint32_t)e[i].len);
		b_u16(z, (unsigned)nl);
		b_u16(z, (unsigned)pad);
		b_str(z, e[i].name);
		b_u16(z, 0x4b46); /* "FB" padding, as torch writes */
		b_u16(z, (unsigned)pad - 4);
		for (size_t k = 0; k < pad - 4; k++)
			b_u8(z, 'Z');
		cr_assert_eq(z->n % 64, 0);
		b_put(z, e[i].data, e[i].len);
	}
	uint64_t cd = z->n;
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(e[i].name);
		b_u32(z, 0x02014b50);
		b_u16(z, 45);
		b_u16(z, 45);
		b_u16(z, 0);
		b_u16(z, e[i].method);
		b_u32(z, 0);
		b_u32(z, 0);
		b_u32(z, zip64 ? 0xFFFFFFFFu : (uint32_t)e[i].len);
		b_u32(z, zip64 ? 0xFFFFFFFFu : (uint32_t)e[i].len);
		b_u16(z, (unsigned)nl);
		b_u16(z, zip64 ? 28 : 0);
		b_u16(z, 0);
		b_u16(z, 0);
		b_u16(z, 0);
		b_u32(z, 0);
		b_u32(z, zip64 ? 0xFFFFFFFFu : (uint32_t)loc[i]);
		b_str(z, e[i].name);
		if (zip64) {
			b_u16(z, 0x0001);
			b_u16(z, 24);
			b_u64(z, e[i].len);
			b_u64(z, e[i].len);
			b_u64(z, loc[i]);
		}
	}
	uint64_t cd_size = z->n - cd;
	if (zip64) {
		uint64_t z64 = z->n;
		b_u32(z, 0x06064b50);
		b_u64(z, 44);
		b_u16(z, 45);
		b_u16(z, 45);
		b_u32(z, 0);
		b_u32(z, 0);
		b_u64(z, n);
		b_u64(z, n);
		b_u64(z, cd_size);
		b_u64(z, cd);
		b_u32(z, 0x07064b50);
		b_u32(z, 0);
		b_u64(z, z64);
		b_u32(z, 1);
	}
	b_u32(z, 0x06054b50);
	b_u16(z, 0);
	b_u16(z, 0);
	b_u16(z, zip64 ? 0xFFFF : (unsigned)n);
	b_u16(z, zip64 ? 0xFFFF : (unsigned)n);
	b_u32(z, zip64 ? 0xFFFFFFFFu : (uint32_t)cd_size);
	b_u32(z, zip64 ? 0xFFFFFFFFu : (uint32_t)cd);
	b_u16(z, 0);
	free(loc);
}

/* A small torch-like archive: prefix/data.pkl, data/0 (bf16, 6 bytes), data/1 (f32, 16),
 * data/2 (bf16 again: memo reuse, 4), data/3 (int64, 16), prefix/version. */
static void torch_make(buf *z, const char *prefix, int zip64)
{
	static const char *const keys[] = { "0", "1", "2", "3" };
	static const char *const cls[] = { "BFloat16Storage", "FloatStorage", "BFloat16Storage",
					   "LongStorage" };
	static const unsigned char payload[64] = { 1, 2, 3 };
	buf pk = { 0 };
	pickle_make(&pk, keys, cls, 4);
	char names[6][64];
	snprintf(names[0], sizeof(names[0]), "%s/data.pkl", prefix);
	for (int i = 0; i < 4; i++)
		snprintf(names[1 + i], sizeof(names[1 + i]), "%s/data/%d", prefix, i);
	snprintf(names[5], sizeof(names[5]), "%s/version", prefix);
	zent e[] = {
		{ names[0], pk.p, pk.n, 0 },      { names[1], payload, 6, 0 },
		{ names[2], payload, 16, 0 },     { names[3], payload, 4, 0 },
		{ names[4], payload, 16, 0 },     { names[5], (const unsigned char *)"3\n", 2, 0 },
	};
	zip_make(z, e, 6, zip64);
	free(pk.p);
}

static void check_torch_small(const buf *z)
{
	layout *l = parse_mem(z->p, z->n);
	cr_assert_eq(l->kind, LAYOUT_TORCHZIP);
	cr_assert_eq(l->n, 4);
	static const struct { const char *name; uint64_t len; uint8_t w; } want[] = {
		{ "data/0", 6, 2 }, { "data/1", 16, 4 }, { "data/2", 4, 2 }, { "data/3", 16, 8 },
	};
	for (int i = 0; i < 4; i++) {
		cr_assert_str_eq(l->r[i].name, want[i].name);
		cr_assert_eq(l->r[i].len, want[i].len);
		cr_assert_eq(l->r[i].width, want[i].w, "%s width %u", want[i].name, l->r[i].width);
		cr_assert_eq(l->r[i].off % 64, 0);
		cr_assert_eq(z->p[l->r[i].off], 1);
	}
	layout_free(l);
}

Test(layout_zip, small_and_memo)
{
	buf z = { 0 };
	torch_make(&z, "ckpt_000", 0);
	check_torch_small(&z);
	free(z.p);
}

Test(layout_zip, zip64)
{
	buf z = { 0 };
	torch_make(&z, "archive", 1);
	check_torch_small(&z);
	free(z.p);
}

Test(layout_zip, prefixes_align)
{
	buf a = { 0 }, b = { 0 };
	torch_make(&a, "ckpt_001", 0);
	torch_make(&b, "a_much_longer_checkpoint_name_0002", 1);
	layout *la = parse_mem(a.p, a.n), *lb = parse_mem(b.p, b.n);
	cr_assert_float_eq(layout_match(lb, la), 1.0, 1e-12);
	seg *s;
	size_t ns;
	cr_assert_eq(layout_align(lb, b.n, la, a.n, &s, &ns), 0);
	check_segments(s, ns, b.n, 1, a.n);
	size_t paired = 0;
	for (size_t i = 0; i < ns; i++)
		if (s[i].tensor && s[i].base_off != SEG_NO_BASE)
			paired++;
	cr_assert_eq(paired, 4);
	/* the header gap of the new file pairs with the header gap of the base */
	cr_assert_eq(s[0].tensor, 0);
	cr_assert_eq(s[0].base_off, 0);
	cr_assert_eq(s[0].base_len, la->r[0].off);
	free(s);
	layout_free(la);
	layout_free(lb);
	free(a.p);
	free(b.p);
}

/* A real torch.save of a 4.4 GB tensor (torch 1.13: ZIP64 sizes in the central extra for
 * data/1, ZIP64 offsets for the members after it, ZIP64 EOCD + locator, data descriptors).
 * Made with
 *   torch.save({'small': torch.ones(3, dtype=torch.bfloat16),
 *               'big': torch.zeros(1_100_000_000), 'after': torch.arange(5)},
 *              'lay_big_zip64.pt')
 * Everything but the zero payload of data/1 is kept: the first 640 bytes and the bytes from
 * 4400000640 to the end; a sparse source serves zeros in between. */
static const unsigned char big_head[640] = {
	0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x16, 0x00, 0x0c, 0x00, 0x6c, 0x61,
	0x79, 0x5f, 0x62, 0x69, 0x67, 0x5f, 0x7a, 0x69, 0x70, 0x36, 0x34, 0x2f, 0x64, 0x61, 0x74, 0x61,
	0x2e, 0x70, 0x6b, 0x6c, 0x46, 0x42, 0x08, 0x00, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x80, 0x02, 0x7d, 0x71, 0x00, 0x28, 0x58, 0x05, 0x00, 0x00, 0x00, 0x73, 0x6d, 0x61, 0x6c, 0x6c,
	0x71, 0x01, 0x63, 0x74, 0x6f, 0x72, 0x63, 0x68, 0x2e, 0x5f, 0x75, 0x74, 0x69, 0x6c, 0x73, 0x0a,
	0x5f, 0x72, 0x65, 0x62, 0x75, 0x69, 0x6c, 0x64, 0x5f, 0x74, 0x65, 0x6e, 0x73, 0x6f, 0x72, 0x5f,
	0x76, 0x32, 0x0a, 0x71, 0x02, 0x28, 0x28, 0x58, 0x07, 0x00, 0x00, 0x00, 0x73, 0x74, 0x6f, 0x72,
	0x61, 0x67, 0x65, 0x71, 0x03, 0x63, 0x74, 0x6f, 0x72, 0x63, 0x68, 0x0a, 0x42, 0x46, 0x6c, 0x6f,
	0x61, 0x74, 0x31, 0x36, 0x53, 0x74, 0x6f, 0x72, 0x61, 0x67, 0x65, 0x0a, 0x71, 0x04, 0x58, 0x01,
	0x00, 0x00, 0x00, 0x30, 0x71, 0x05, 0x58, 0x03, 0x00, 0x00, 0x00, 0x63, 0x70, 0x75, 0x71, 0x06,
	0x4b, 0x03, 0x74, 0x71, 0x07, 0x51, 0x4b, 0x00, 0x4b, 0x03, 0x85, 0x71, 0x08, 0x4b, 0x01, 0x85,
	0x71, 0x09, 0x89, 0x63, 0x63, 0x6f, 0x6c, 0x6c, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x73, 0x0a,
	0x4f, 0x72, 0x64, 0x65, 0x72, 0x65, 0x64, 0x44, 0x69, 0x63, 0x74, 0x0a, 0x71, 0x0a, 0x29, 0x52,
	0x71, 0x0b, 0x74, 0x71, 0x0c, 0x52, 0x71, 0x0d, 0x58, 0x03, 0x00, 0x00, 0x00, 0x62, 0x69, 0x67,
	0x71, 0x0e, 0x68, 0x02, 0x28, 0x28, 0x68, 0x03, 0x63, 0x74, 0x6f, 0x72, 0x63, 0x68, 0x0a, 0x46,
	0x6c, 0x6f, 0x61, 0x74, 0x53, 0x74, 0x6f, 0x72, 0x61, 0x67, 0x65, 0x0a, 0x71, 0x0f, 0x58, 0x01,
	0x00, 0x00, 0x00, 0x31, 0x71, 0x10, 0x68, 0x06, 0x4a, 0x00, 0xab, 0x90, 0x41, 0x74, 0x71, 0x11,
	0x51, 0x4b, 0x00, 0x4a, 0x00, 0xab, 0x90, 0x41, 0x85, 0x71, 0x12, 0x4b, 0x01, 0x85, 0x71, 0x13,
	0x89, 0x68, 0x0a, 0x29, 0x52, 0x71, 0x14, 0x74, 0x71, 0x15, 0x52, 0x71, 0x16, 0x58, 0x05, 0x00,
	0x00, 0x00, 0x61, 0x66, 0x74, 0x65, 0x72, 0x71, 0x17, 0x68, 0x02, 0x28, 0x28, 0x68, 0x03, 0x63,
	0x74, 0x6f, 0x72, 0x63, 0x68, 0x0a, 0x4c, 0x6f, 0x6e, 0x67, 0x53, 0x74, 0x6f, 0x72, 0x61, 0x67,
	0x65, 0x0a, 0x71, 0x18, 0x58, 0x01, 0x00, 0x00, 0x00, 0x32, 0x71, 0x19, 0x68, 0x06, 0x4b, 0x05,
	0x74, 0x71, 0x1a, 0x51, 0x4b, 0x00, 0x4b, 0x05, 0x85, 0x71, 0x1b, 0x4b, 0x01, 0x85, 0x71, 0x1c,
	0x89, 0x68, 0x0a, 0x29, 0x52, 0x71, 0x1d, 0x74, 0x71, 0x1e, 0x52, 0x71, 0x1f, 0x75, 0x2e, 0x50,
	0x4b, 0x07, 0x08, 0x5d, 0x37, 0xca, 0x72, 0x4f, 0x01, 0x00, 0x00, 0x4f, 0x01, 0x00, 0x00, 0x50,
	0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x2f, 0x00, 0x6c, 0x61, 0x79,
	0x5f, 0x62, 0x69, 0x67, 0x5f, 0x7a, 0x69, 0x70, 0x36, 0x34, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2f,
	0x30, 0x46, 0x42, 0x2b, 0x00, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x80, 0x3f, 0x80, 0x3f, 0x80, 0x3f, 0x50, 0x4b, 0x07, 0x08, 0xcc, 0x3b, 0x88, 0xc3, 0x06, 0x00,
	0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x14, 0x00, 0x38, 0x00, 0x6c, 0x61, 0x79, 0x5f, 0x62, 0x69, 0x67, 0x5f, 0x7a, 0x69, 0x70, 0x36,
	0x34, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2f, 0x31, 0x01, 0x00, 0x10, 0x00, 0x00, 0xac, 0x42, 0x06,
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46, 0x42, 0x20, 0x00,
	0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
};
static const unsigned char big_tail[821] = {
	0x50, 0x4b, 0x07, 0x08, 0xe2, 0x8a, 0x7e, 0x1e, 0x00, 0xac, 0x42, 0x06, 0x01, 0x00, 0x00, 0x00,
	0x00, 0xac, 0x42, 0x06, 0x01, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x08,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x14, 0x00, 0x36, 0x00, 0x6c, 0x61, 0x79, 0x5f, 0x62, 0x69, 0x67, 0x5f, 0x7a, 0x69,
	0x70, 0x36, 0x34, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2f, 0x32, 0x01, 0x00, 0x08, 0x00, 0x98, 0xae,
	0x42, 0x06, 0x01, 0x00, 0x00, 0x00, 0x46, 0x42, 0x26, 0x00, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x07, 0x08, 0x1c, 0x4e, 0x8f, 0x6c,
	0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x15, 0x00, 0x4d, 0x00, 0x6c, 0x61,
	0x79, 0x5f, 0x62, 0x69, 0x67, 0x5f, 0x7a, 0x69, 0x70, 0x36, 0x34, 0x2f, 0x76, 0x65, 0x72, 0x73,
	0x69, 0x6f, 0x6e, 0x01, 0x00, 0x08, 0x00, 0x40, 0xaf, 0x42, 0x06, 0x01, 0x00, 0x00, 0x00, 0x46,
	0x42, 0x3d, 0x00, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
	0x33, 0x0a, 0x50, 0x4b, 0x07, 0x08, 0xd1, 0x9e, 0x67, 0x55, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x01, 0x02, 0x00, 0x00,
	0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5d, 0x37, 0xca, 0x72, 0x4f, 0x01,
	0x00, 0x00, 0x4f, 0x01, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x6c, 0x61, 0x79, 0x5f, 0x62, 0x69, 0x67, 0x5f,
	0x7a, 0x69, 0x70, 0x36, 0x34, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2e, 0x70, 0x6b, 0x6c, 0x50, 0x4b,
	0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xcc, 0x3b,
	0x88, 0xc3, 0x06, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9f, 0x01, 0x00, 0x00, 0x6c, 0x61, 0x79, 0x5f,
	0x62, 0x69, 0x67, 0x5f, 0x7a, 0x69, 0x70, 0x36, 0x34, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2f, 0x30,
	0x50, 0x4b, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0xe2, 0x8a, 0x7e, 0x1e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x14, 0x00, 0x14, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x16, 0x02, 0x00, 0x00, 0x6c, 0x61,
	0x79, 0x5f, 0x62, 0x69, 0x67, 0x5f, 0x7a, 0x69, 0x70, 0x36, 0x34, 0x2f, 0x64, 0x61, 0x74, 0x61,
	0x2f, 0x31, 0x01, 0x00, 0x10, 0x00, 0x00, 0xac, 0x42, 0x06, 0x01, 0x00, 0x00, 0x00, 0x00, 0xac,
	0x42, 0x06, 0x01, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x08, 0x08,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1c, 0x4e, 0x8f, 0x6c, 0x28, 0x00, 0x00, 0x00, 0x28, 0x00,
	0x00, 0x00, 0x14, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0xff, 0x6c, 0x61, 0x79, 0x5f, 0x62, 0x69, 0x67, 0x5f, 0x7a, 0x69, 0x70, 0x36,
	0x34, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2f, 0x32, 0x01, 0x00, 0x08, 0x00, 0x98, 0xae, 0x42, 0x06,
	0x01, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x08, 0x08, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0xd1, 0x9e, 0x67, 0x55, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
	0x15, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
	0xff, 0xff, 0x6c, 0x61, 0x79, 0x5f, 0x62, 0x69, 0x67, 0x5f, 0x7a, 0x69, 0x70, 0x36, 0x34, 0x2f,
	0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x01, 0x00, 0x08, 0x00, 0x40, 0xaf, 0x42, 0x06, 0x01,
	0x00, 0x00, 0x00, 0x50, 0x4b, 0x06, 0x06, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1e,
	0x03, 0x2d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xda, 0xaf, 0x42, 0x06, 0x01, 0x00, 0x00, 0x00, 0x50, 0x4b, 0x06, 0x07, 0x00,
	0x00, 0x00, 0x00, 0x53, 0xb1, 0x42, 0x06, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x50,
	0x4b, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x05, 0x00, 0x79, 0x01, 0x00, 0x00, 0xff,
	0xff, 0xff, 0xff, 0x00, 0x00,
};

#define BIG_SIZE 4400001461ull
#define BIG_TAIL_OFF 4400000640ull

static ssize_t sparse_pread(const io_src *s, void *out, size_t len, uint64_t off)
{
	(void)s;
	if (off >= BIG_SIZE)
		return 0;
	if (len > BIG_SIZE - off)
		len = (size_t)(BIG_SIZE - off);
	unsigned char *o = out;
	memset(o, 0, len);
	for (size_t i = 0; i < len; i++) {
		uint64_t x = off + i;
		if (x < sizeof(big_head))
			o[i] = big_head[x];
		else if (x >= BIG_TAIL_OFF)
			o[i] = big_tail[x - BIG_TAIL_OFF];
	}
	return (ssize_t)len;
}

Test(layout_zip, zip64_real_torch)
{
	io_src s = { .pread = sparse_pread, .ctx = NULL, .size = BIG_SIZE };
	layout *l = NULL;
	cr_assert_eq(layout_parse(&s, &l), 0);
	cr_assert_eq(l->kind, LAYOUT_TORCHZIP);
	cr_assert_eq(l->n, 3);
	cr_assert_str_eq(l->r[0].name, "data/0");
	cr_assert_eq(l->r[0].off, 512);
	cr_assert_eq(l->r[0].len, 6);
	cr_assert_eq(l->r[0].width, 2);
	cr_assert_str_eq(l->r[1].name, "data/1");
	cr_assert_eq(l->r[1].off, 640);
	cr_assert_eq(l->r[1].len, 4400000000ull);
	cr_assert_eq(l->r[1].width, 4);
	cr_assert_str_eq(l->r[2].name, "data/2");
	cr_assert_eq(l->r[2].off, 4400000768ull);
	cr_assert_eq(l->r[2].len, 40);
	cr_assert_eq(l->r[2].width, 8);
	seg *sg;
	size_t n;
	cr_assert_eq(layout_align(l, BIG_SIZE, l, BIG_SIZE, &sg, &n), 0);
	check_segments(sg, n, BIG_SIZE, 1, BIG_SIZE);
	free(sg);
	layout_free(l);
}

/* Deeply nested MARKs (past the scanner's frame stack), then a storage tuple, then the
 * closing opcodes: scanning stays bounded; the width falls back or is found, never wrong. */
Test(layout_zip, deep_pickle)
{
	static const unsigned char payload[64];
	buf pk = { 0 };
	static const char *const keys[] = { "0" };
	static const char *const cls[] = { "DoubleStorage" };
	b_u8(&pk, 0x80);
	b_u8(&pk, 2);
	for (int i = 0; i < 5000; i++)
		b_u8(&pk, '(');
	buf inner = { 0 };
	pickle_make(&inner, keys, cls, 1);
	b_put(&pk, inner.p + 2, inner.n - 3); /* without PROTO and STOP */
	for (int i = 0; i < 5000; i++)
		b_u8(&pk, 'l');
	for (int i = 0; i < 10; i++)
		b_u8(&pk, 't'); /* unbalanced: scanning just stops */
	b_u8(&pk, '.');
	zent e[] = { { "p/data.pkl", pk.p, pk.n, 0 }, { "p/data/0", payload, 16, 0 } };
	buf z = { 0 };
	zip_make(&z, e, 2, 0);
	layout *l = parse_mem(z.p, z.n);
	cr_assert_eq(l->kind, LAYOUT_TORCHZIP);
	cr_assert_eq(l->n, 1);
	cr_assert(l->r[0].width == 8 || l->r[0].width == 4);
	layout_free(l);
	free(z.p);
	free(pk.p);
	free(inner.p);
}

Test(layout_zip, not_torch)
{
	/* A zip without data.pkl is just a zip. */
	static const unsigned char d[16];
	zent e[] = { { "x/data/0", d, 16, 0 } };
	buf z = { 0 };
	zip_make(&z, e, 1, 0);
	cr_assert_eq(parse_kind(z.p, z.n), LAYOUT_UNKNOWN);
	free(z.p);
}

Test(layout_zip, hostile)
{
	buf z = { 0 };
	torch_make(&z, "h", 0);
	unsigned char *q = malloc(z.n);
	cr_assert(q);
	size_t eocd = z.n - 22;
	uint32_t cd = (uint32_t)(z.p[eocd + 16] | (z.p[eocd + 17] << 8) |
				 (z.p[eocd + 18] << 16) | ((uint32_t)z.p[eocd + 19] << 24));

	/* Member offset past EOF (first data member's central entry). */
	memcpy(q, z.p, z.n);
	size_t ce = cd;
	ce += 46 + strlen("h/data.pkl"); /* second central entry: h/data/0 */
	q[ce + 42] = 0xF0;
	q[ce + 45] = 0x7F;
	cr_assert_eq(parse_kind(q, z.n), LAYOUT_UNKNOWN);

	/* Member size running into the next member (overlap) and past the directory. */
	memcpy(q, z.p, z.n);
	q[ce + 20] = q[ce + 24] = 200;
	cr_assert_eq(parse_kind(q, z.n), LAYOUT_UNKNOWN);

	/* Huge entry counts. */
	memcpy(q, z.p, z.n);
	q[eocd + 8] = q[eocd + 9] = q[eocd + 10] = q[eocd + 11] = 0xFF;
	cr_assert_eq(parse_kind(q, z.n), LAYOUT_UNKNOWN);

	/* Central directory offset past EOF. */
	memcpy(q, z.p, z.n);
	q[eocd + 19] = 0x7F;
	cr_assert_eq(parse_kind(q, z.n), LAYOUT_UNKNOWN);

	/* Local header name differs from the central one. */
	memcpy(q, z.p, z.n);
	q[30] = 'X';
	cr_assert_eq(parse_kind(q, z.n), LAYOUT_UNKNOWN);

	/* Every truncation: nothing found (the EOCD is at the end) and no crash. */
	for (size_t cut = 0; cut < z.n; cut++)
		cr_assert_eq(parse_kind(z.p, cut), LAYOUT_UNKNOWN);

	/* Every single-byte corruption: no crash, contract holds (checked in parse_mem). */
	for (size_t i = 0; i < z.n; i++) {
		for (unsigned v = 0; v < 256; v += 51) {
			memcpy(q, z.p, z.n);
			q[i] ^= (unsigned char)(v | 1);
			layout_free(parse_mem(q, z.n));
		}
	}
	free(q);
	free(z.p);
}

Test(layout_zip, hostile_zip64)
{
	buf z = { 0 };
	torch_make(&z, "h", 1);
	unsigned char *q = malloc(z.n);
	cr_assert(q);
	for (size_t cut = 0; cut < z.n; cut++)
		cr_assert_eq(parse_kind(z.p, cut), LAYOUT_UNKNOWN);
	/* Locator pointing at itself, past EOF, and a ZIP64 EOCD with absurd values. */
	size_t locp = z.n - 22 - 20;
	for (int k = 0; k < 8; k++) {
		memcpy(q, z.p, z.n);
		q[locp + 8 + k] ^= 0xFF;
		layout_free(parse_mem(q, z.n));
	}
	for (size_t i = 0; i < z.n; i++) {
		memcpy(q, z.p, z.n);
		q[i] ^= 0x80;
		layout_free(parse_mem(q, z.n));
	}
	free(q);
	free(z.p);
}

/* Pickle scanning survives garbage: random pickles in a valid zip never crash and never make
 * the layout inconsistent (widths only fall back). */
Test(layout_zip, garbage_pickles)
{
	unsigned seed = 12345;
	static const unsigned char payload[64];
	unsigned char pk[512];
	for (int it = 0; it < 3000; it++) {
		size_t n = 1 + (seed = seed * 1103515245u + 12345u) % sizeof(pk);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			/* bias towards interesting opcodes */
			static const unsigned char ops[] = { '(', 't', 'Q', 'q', 'h', 'j', 'r', 'c',
							     'X', 0x8c, 0x93, 0x94, 'e', 'u', '.',
							     0x95, '\n', 0 };
			pk[i] = (seed >> 16) % 3 ? ops[(seed >> 8) % sizeof(ops)]
						 : (unsigned char)(seed >> 8);
		}
		zent e[] = { { "p/data.pkl", pk, n, 0 }, { "p/data/0", payload, 12, 0 } };
		buf z = { 0 };
		zip_make(&z, e, 2, it & 1);
		layout *l = parse_mem(z.p, z.n);
		cr_assert_eq(l->kind, LAYOUT_TORCHZIP);
		cr_assert_eq(l->n, 1);
		layout_free(l);
		free(z.p);
	}
}

/* ---- alignment -------------------------------------------------------------------------- */

static layout *mk_layout(int kind, size_t n)
{
	layout *l = calloc(1, sizeof(*l));
	cr_assert(l);
	l->kind = kind;
	l->n = n;
	l->r = calloc(n ? n : 1, sizeof(*l->r));
	cr_assert(l->r);
	return l;
}

static void set_region(layout *l, size_t i, const char *name, uint64_t off, uint64_t len,
		       uint8_t w)
{
	l->r[i].name = strdup(name);
	cr_assert(l->r[i].name);
	l->r[i].off = off;
	l->r[i].len = len;
	l->r[i].width = w;
}

Test(layout_align, unknown_is_offset_aligned)
{
	layout *u = mk_layout(LAYOUT_UNKNOWN, 0);
	seg *s;
	size_t n;
	cr_assert_eq(layout_align(u, 100, u, 60, &s, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(s[0].off, 0);
	cr_assert_eq(s[0].len, 60);
	cr_assert_eq(s[0].base_off, 0);
	cr_assert_eq(s[0].base_len, 60);
	cr_assert_eq(s[1].base_off, SEG_NO_BASE);
	free(s);
	cr_assert_eq(layout_align(u, 50, u, 60, &s, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(s[0].base_len, 50);
	free(s);
	cr_assert_eq(layout_align(u, 50, NULL, 0, &s, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(s[0].base_off, SEG_NO_BASE);
	free(s);
	cr_assert_eq(layout_align(u, 0, u, 60, &s, &n), 0);
	cr_assert_eq(n, 0);
	free(s);
	cr_assert_float_eq(layout_match(u, u), 0.0, 1e-12);
	layout_free(u);
}

Test(layout_align, by_name)
{
	/* new: [hdr 0..10) A[10..30) gap[30..34) B[34..50) C[50..60) tail[60..64)
	 * base: [hdr 0..20) B[20..36) A[36..56) C[56..60 short) tail[60..70) */
	layout *nl = mk_layout(LAYOUT_SAFETENSORS, 3), *bl = mk_layout(LAYOUT_SAFETENSORS, 3);
	set_region(nl, 0, "A", 10, 20, 4);
	set_region(nl, 1, "B", 34, 16, 2);
	set_region(nl, 2, "C", 50, 10, 2);
	set_region(bl, 0, "B", 20, 16, 2);
	set_region(bl, 1, "A", 36, 20, 4);
	set_region(bl, 2, "C", 56, 4, 2);
	seg *s;
	size_t n;
	cr_assert_eq(layout_align(nl, 64, bl, 70, &s, &n), 0);
	check_segments(s, n, 64, 1, 70);
	cr_assert_eq(n, 6);
	/* header gap pairs with the gap before A in the base: [36,36) is empty -> no base */
	cr_assert_eq(s[0].len, 10);
	cr_assert_eq(s[0].base_off, SEG_NO_BASE);
	cr_assert_eq(s[1].tensor, 1);
	cr_assert_eq(s[1].base_off, 36);
	cr_assert_eq(s[1].width, 4);
	/* gap before B pairs with the base's header [0,20) */
	cr_assert_eq(s[2].off, 30);
	cr_assert_eq(s[2].base_off, 0);
	cr_assert_eq(s[2].base_len, 20);
	cr_assert_eq(s[3].base_off, 20);
	/* C changed length: tensor without base */
	cr_assert_eq(s[4].tensor, 1);
	cr_assert_eq(s[4].base_off, SEG_NO_BASE);
	cr_assert_eq(s[4].width, 2);
	/* trailing gap with trailing gap */
	cr_assert_eq(s[5].base_off, 60);
	cr_assert_eq(s[5].base_len, 10);
	free(s);
	cr_assert_float_eq(layout_match(nl, bl), 36.0 / 46.0, 1e-12);

	/* No base at all: tensors keep their widths. */
	cr_assert_eq(layout_align(nl, 64, NULL, 0, &s, &n), 0);
	check_segments(s, n, 64, 0, 0);
	cr_assert_eq(s[1].width, 4);
	cr_assert_eq(s[1].tensor, 1);
	free(s);
	layout_free(nl);
	layout_free(bl);
}

static uint64_t rnd(uint64_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	return *st;
}

static layout *random_layout(uint64_t *st, uint64_t size, int garbage)
{
	size_t n = rnd(st) % 12;
	layout *l = mk_layout(rnd(st) % 5 ? LAYOUT_SAFETENSORS : LAYOUT_UNKNOWN, n);
	uint64_t pos = 0;
	static const uint8_t ws[] = { 1, 2, 4, 8 };
	for (size_t i = 0; i < n; i++) {
		char name[16];
		snprintf(name, sizeof(name), "t%u", (unsigned)(rnd(st) % 8));
		uint64_t off, len;
		if (garbage) {
			off = rnd(st) % (size + 20);
			len = rnd(st) % 4 ? rnd(st) % (size + 1) : UINT64_MAX - rnd(st) % 10;
		} else {
			uint64_t room = size - pos;
			off = pos + (room ? rnd(st) % (room / 2 + 1) : 0);
			len = size - off ? rnd(st) % ((size - off) / 2 + 1) : 0;
			pos = off + len;
		}
		set_region(l, i, name, off, len, garbage ? (uint8_t)rnd(st) : ws[rnd(st) % 4]);
	}
	return l;
}

Test(layout_align, coverage_random)
{
	uint64_t st = 0x9E3779B97F4A7C15ull;
	for (int it = 0; it < 20000; it++) {
		int garbage = it % 3 == 0;
		uint64_t ns = rnd(&st) % 200, bs = rnd(&st) % 200;
		if (it % 50 == 0)
			ns = UINT64_MAX - rnd(&st) % 1000; /* near the top of the range */
		layout *nl = random_layout(&st, ns, garbage);
		layout *bl = random_layout(&st, bs, garbage && (it & 1));
		seg *s;
		size_t n;
		int with_base = it % 7 != 0;
		cr_assert_eq(layout_align(nl, ns, with_base ? bl : NULL, bs, &s, &n), 0);
		check_segments(s, n, ns, with_base, bs);
		double m = layout_match(nl, bl);
		cr_assert(m >= 0.0 && m <= 1.0);
		free(s);
		layout_free(nl);
		layout_free(bl);
	}
}
