/* layout_safetensors.c - safetensors: 8-byte LE header length N, N bytes of JSON, raw tensors.
 *
 * The JSON header is parsed by a small strict recursive-descent parser (RFC 8259 grammar, UTF-8
 * checked, depth-limited). Anything that does not parse or does not add up makes the whole file
 * unknown: tensor awareness is an optimisation, never a reason to fail a write.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layout_internal.h"

#define JSON_MAX_DEPTH 64
#define ST_MAX_DIMS    64

typedef struct jp {
	unsigned char *p, *end; /* writable: strings are decoded in place */
	int depth;
	char *str; /* the last string parsed, decoded and NUL-terminated */
} jp;

static void ws(jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int lit(jp *j, const char *s)
{
	size_t n = strlen(s);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, s, n) != 0)
		return -1;
	j->p += n;
	return 0;
}

static int hex4(jp *j, unsigned *out)
{
	if (j->end - j->p < 4)
		return -1;
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned c = j->p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v * 16 + d;
	}
	j->p += 4;
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Length of a valid UTF-8 sequence at p (non-ASCII lead), 0 if invalid (overlongs, surrogates
 * and code points past U+10FFFF are invalid, as in the JSON/Unicode specs). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n;
	unsigned cp, min;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2; cp = c & 0x1F; min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3; cp = c & 0x0F; min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4; cp = c & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* Parse a string at j->p (which must be '"'). It is decoded in place (the decoded form is never
 * longer than the encoded one, so writes stay behind reads; the NUL lands at most on the
 * closing quote) and left in j->str, length in *len. Earlier strings stay intact. */
static int jstring(jp *j, size_t *len)
{
	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	char *out = (char *)j->p;
	size_t o = 0;
	for (;;) {
		if (j->p >= j->end)
			return -1;
		unsigned c = *j->p;
		if (c == '"') {
			j->p++;
			break;
		}
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			j->p++;
			if (j->p >= j->end)
				return -1;
			unsigned e = *j->p++;
			switch (e) {
			case '"': out[o++] = '"'; break;
			case '\\': out[o++] = '\\'; break;
			case '/': out[o++] = '/'; break;
			case 'b': out[o++] = '\b'; break;
			case 'f': out[o++] = '\f'; break;
			case 'n': out[o++] = '\n'; break;
			case 'r': out[o++] = '\r'; break;
			case 't': out[o++] = '\t'; break;
			case 'u': {
				unsigned cp, lo;
				if (hex4(j, &cp) < 0)
					return -1;
				if (cp >= 0xDC00 && cp <= 0xDFFF)
					return -1; /* lone low surrogate */
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					if (lit(j, "\\u") < 0 || hex4(j, &lo) < 0 ||
					    lo < 0xDC00 || lo > 0xDFFF)
						return -1;
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				}
				/* 6 encoded bytes (12 for a pair) become at most 4. */
				o += put_utf8(out + o, cp);
				break;
			}
			default:
				return -1;
			}
			continue;
		}
		if (c < 0x80) {
			out[o++] = (char)c;
			j->p++;
			continue;
		}
		size_t n = utf8_seq(j->p, j->end);
		if (n == 0)
			return -1;
		memmove(out + o, j->p, n); /* in place: may overlap */
		o += n;
		j->p += n;
	}
	out[o] = '\0';
	j->str = out;
	*len = o;
	return 0;
}

/* A JSON number. When out is non-NULL the number must be a non-negative integer that fits in
 * 64 bits (what shapes and offsets are); otherwise any valid number is accepted and skipped. */
static int jnumber(jp *j, uint64_t *out)
{
	int neg = 0, frac = 0;
	uint64_t v = 0;
	int ovf = 0;
	if (j->p < j->end && *j->p == '-') {
		neg = 1;
		j->p++;
	}
	if (j->p >= j->end)
		return -1;
	if (*j->p == '0') {
		j->p++;
	} else if (*j->p >= '1' && *j->p <= '9') {
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
			unsigned d = *j->p - '0';
			if (v > (UINT64_MAX - d) / 10)
				ovf = 1;
			else
				v = v * 10 + d;
			j->p++;
		}
	} else {
		return -1;
	}
	if (j->p < j->end && *j->p == '.') {
		frac = 1;
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return -1;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		frac = 1;
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return -1;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (out) {
		if (frac || ovf || (neg && v != 0))
			return -1;
		*out = v;
	}
	return 0;
}

static int jvalue_skip(jp *j);

static int jobject_skip(jp *j)
{
	size_t len;
	j->p++; /* '{' */
	ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		ws(j);
		if (jstring(j, &len) < 0)
			return -1;
		ws(j);
		if (lit(j, ":") < 0 || jvalue_skip(j) < 0)
			return -1;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		return lit(j, "}");
	}
}

static int jarray_skip(jp *j)
{
	j->p++; /* '[' */
	ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		if (jvalue_skip(j) < 0)
			return -1;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		return lit(j, "]");
	}
}

/* Validate and skip any value (leading whitespace allowed). */
static int jvalue_skip(jp *j)
{
	size_t len;
	int rc;
	ws(j);
	if (j->p >= j->end)
		return -1;
	switch (*j->p) {
	case '{':
	case '[':
		if (++j->depth > JSON_MAX_DEPTH)
			return -1;
		rc = *j->p == '{' ? jobject_skip(j) : jarray_skip(j);
		j->depth--;
		return rc;
	case '"':
		return jstring(j, &len);
	case 't':
		return lit(j, "true");
	case 'f':
		return lit(j, "false");
	case 'n':
		return lit(j, "null");
	default:
		return jnumber(j, NULL);
	}
}

/* Array of non-negative integers into v[0..max); count in *n. */
static int juint_array(jp *j, uint64_t *v, size_t max, size_t *n)
{
	*n = 0;
	ws(j);
	if (lit(j, "[") < 0)
		return -1;
	ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		ws(j);
		if (*n >= max)
			return -1;
		if (jnumber(j, &v[*n]) < 0)
			return -1;
		(*n)++;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		return lit(j, "]");
	}
}

/* Bytes per element for the size check, and the width to code with (complex types code as
 * their real parts). 0 = dtype not known (sub-byte types, future ones). */
static void st_dtype(const char *s, unsigned *size, uint8_t *width)
{
	static const struct { const char *name; unsigned size; uint8_t width; } t[] = {
		{ "F64", 8, 8 }, { "F32", 4, 4 }, { "F16", 2, 2 }, { "BF16", 2, 2 },
		{ "I64", 8, 8 }, { "I32", 4, 4 }, { "I16", 2, 2 }, { "I8", 1, 1 },
		{ "U64", 8, 8 }, { "U32", 4, 4 }, { "U16", 2, 2 }, { "U8", 1, 1 },
		{ "BOOL", 1, 1 }, { "F8_E4M3", 1, 1 }, { "F8_E5M2", 1, 1 },
		{ "F8_E8M0", 1, 1 }, { "F8_E4M3FNUZ", 1, 1 }, { "F8_E5M2FNUZ", 1, 1 },
		{ "C64", 8, 4 }, { "C128", 16, 8 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (strcmp(s, t[i].name) == 0) {
			*size = t[i].size;
			*width = t[i].width;
			return;
		}
	}
	*size = 0;
	*width = 1;
}

/* One tensor entry: {"dtype": .., "shape": [..], "data_offsets": [b, e]} (any key order; other
 * keys are skipped). Adds the region. 0 ok, 1 inconsistent, <0 errno. */
static int st_tensor(jp *j, layout_build *b, const char *name, size_t namelen, uint64_t data_start,
		     uint64_t data_len)
{
	uint64_t shape[ST_MAX_DIMS], offs[2];
	size_t ndim = 0, noff = 0, len;
	int have_dtype = 0, have_shape = 0, have_offs = 0;
	unsigned esize = 0;
	uint8_t width = 1;

	ws(j);
	if (lit(j, "{") < 0)
		return 1;
	if (++j->depth > JSON_MAX_DEPTH)
		return 1;
	ws(j);
	if (j->p < j->end && *j->p == '}')
		return 1; /* no fields at all */
	for (;;) {
		ws(j);
		if (jstring(j, &len) < 0)
			return 1;
		ws(j);
		if (lit(j, ":") < 0)
			return 1;
		ws(j);
		if (strcmp(j->str, "dtype") == 0 && len == 5) {
			if (have_dtype || jstring(j, &len) < 0 || len != strlen(j->str))
				return 1;
			st_dtype(j->str, &esize, &width);
			have_dtype = 1;
		} else if (strcmp(j->str, "shape") == 0 && len == 5) {
			if (have_shape || juint_array(j, shape, ST_MAX_DIMS, &ndim) < 0)
				return 1;
			have_shape = 1;
		} else if (strcmp(j->str, "data_offsets") == 0 && len == 12) {
			if (have_offs || juint_array(j, offs, 2, &noff) < 0 || noff != 2)
				return 1;
			have_offs = 1;
		} else if (jvalue_skip(j) < 0) {
			return 1;
		}
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (lit(j, "}") < 0)
			return 1;
		break;
	}
	j->depth--;
	if (!have_dtype || !have_shape || !have_offs)
		return 1;
	if (offs[0] > offs[1] || offs[1] > data_len)
		return 1;
	uint64_t tlen = offs[1] - offs[0];
	if (esize) {
		uint64_t numel = 1;
		for (size_t i = 0; i < ndim; i++) {
			if (shape[i] != 0 && numel > UINT64_MAX / shape[i])
				return 1;
			numel *= shape[i];
		}
		if (numel > UINT64_MAX / esize || numel * esize != tlen)
			return 1;
	}
	return layout_build_add(b, name, namelen, data_start + offs[0], tlen, width);
}

int layout_parse_safetensors(const io_src *src, layout_build *b)
{
	unsigned char hdr[9];
	if (src->size < 8 + 2)
		return 0;
	int rc = io_pread_full(src, hdr, sizeof(hdr), 0);
	if (rc < 0)
		return rc;
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | hdr[i];
	if (n < 2 || n > LAYOUT_MAX_HEADER || n > src->size - 8 || hdr[8] != '{')
		return 0;

	unsigned char *buf = malloc((size_t)n);
	if (!buf)
		return -ENOMEM;
	rc = io_pread_full(src, buf, (size_t)n, 8);
	if (rc < 0)
		goto out;

	jp j = { .p = buf, .end = buf + n, .depth = 1, .str = NULL };
	uint64_t data_start = 8 + n, data_len = src->size - data_start;
	int have_meta = 0;
	size_t len;
	rc = 0;
	j.p++; /* '{' */
	ws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
	} else {
		for (;;) {
			ws(&j);
			if (jstring(&j, &len) < 0)
				goto out;
			ws(&j);
			if (lit(&j, ":") < 0)
				goto out;
			if (len == 12 && memcmp(j.str, "__metadata__", 12) == 0) {
				/* {str: str} by the spec; anything valid is tolerated, it is not ours
				 * to police, but it may appear only once. */
				if (have_meta || jvalue_skip(&j) < 0)
					goto out;
				have_meta = 1;
			} else {
				/* The key stays valid: later strings decode further on. */
				rc = st_tensor(&j, b, j.str, len, data_start, data_len);
				if (rc != 0) {
					rc = rc < 0 ? rc : 0;
					goto out;
				}
			}
			ws(&j);
			if (j.p < j.end && *j.p == ',') {
				j.p++;
				continue;
			}
			if (lit(&j, "}") < 0)
				goto out;
			break;
		}
	}
	/* Writers pad the header with spaces to align the data. */
	ws(&j);
	if (j.p != j.end)
		goto out;
	rc = layout_build_finish(b, src->size);
out:
	free(buf);
	return rc;
}
