/* layout_torchzip.c - PyTorch zip checkpoints (torch.save's default format since 1.6).
 *
 * A ZIP archive whose members are stored uncompressed: "<archive>/data.pkl" (the object graph),
 * "<archive>/data/<key>" (one raw storage per key), plus small bookkeeping members. <archive>
 * comes from the file name torch.save was given, so region names drop it ("data/0") and
 * versions saved under different names still line up.
 *
 * Element widths come from data.pkl: each storage is pickled as a persistent id
 * ('storage', <GLOBAL torch.XStorage>, '<key>', '<location>', numel) + BINPERSID. We do not
 * unpickle: a linear opcode scan tracks just enough of the stack (items since the innermost
 * MARK) and of the memo (strings and GLOBALs) to recognise those tuples. Unknown or malformed
 * pickles only lose dtype information.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layout_internal.h"
#include "le.h"

#define ZIP_EOCD_SIG      0x06054b50u
#define ZIP64_LOC_SIG     0x07064b50u
#define ZIP64_EOCD_SIG    0x06064b50u
#define ZIP_CEN_SIG       0x02014b50u
#define ZIP_LOC_SIG       0x04034b50u
#define ZIP_EOCD_LEN      22u
#define ZIP64_LOC_LEN     20u
#define ZIP64_EOCD_LEN    56u
#define ZIP_CEN_LEN       46u
#define ZIP_LOC_LEN       30u
#define ZIP_MAX_COMMENT   65535u
#define ZIP_MAX_CD        (256ull << 20) /* central directory read whole */
#define PKL_MAX           (64ull << 20)
#define PKL_MAX_MEMO      (1u << 22)
#define PKL_MAX_FRAMES    1024u

/* ---- pickle scan ---------------------------------------------------------------------- */

enum { IT_OTHER = 0, IT_STR, IT_GLOBAL, IT_PID };

/* A stack item as far as we care: a string (slice of the pickle), a GLOBAL (its storage element
 * width, 0 if it is not a storage class), a recognised persistent id, or anything else. */
typedef struct pitem {
	uint8_t kind;
	uint8_t width;
	uint32_t off, len; /* string slice (IT_STR) or storage key (IT_PID) */
} pitem;

/* Items pushed since a MARK. Only the first 5 matter (the storage tuple); last is the top. */
typedef struct pframe {
	pitem first[5];
	pitem last;
	uint32_t count;
	uint8_t tainted; /* something popped inside: the contents are not a plain tuple */
} pframe;

typedef struct pkey {
	const unsigned char *s;
	uint32_t len;
	uint8_t width;
} pkey;

typedef struct pscan {
	const unsigned char *buf;
	size_t size;
	pitem *memo;
	size_t memo_cap, memo_next;
	pframe *frames;
	size_t nframes;  /* frames in use (frames[0] is the bottom, never popped) */
	size_t overflow; /* MARKs beyond PKL_MAX_FRAMES, tracked only by count */
	pkey *keys;
	size_t nkeys, keys_cap;
} pscan;

static uint8_t storage_width(const unsigned char *mod, size_t mlen, const unsigned char *name,
			     size_t nlen)
{
	static const struct { const char *n; uint8_t w; } t[] = {
		{ "FloatStorage", 4 }, { "DoubleStorage", 8 }, { "HalfStorage", 2 },
		{ "BFloat16Storage", 2 }, { "LongStorage", 8 }, { "IntStorage", 4 },
		{ "ShortStorage", 2 }, { "CharStorage", 1 }, { "ByteStorage", 1 },
		{ "BoolStorage", 1 }, { "ComplexFloatStorage", 4 },
		{ "ComplexDoubleStorage", 8 }, { "QInt8Storage", 1 }, { "QUInt8Storage", 1 },
		{ "QInt32Storage", 4 }, { "QUInt4x2Storage", 1 }, { "QUInt2x4Storage", 1 },
	};
	/* "torch", "torch.cuda" (old GPU pickles), "torch._utils"... */
	if (mlen < 5 || memcmp(mod, "torch", 5) != 0 || (mlen > 5 && mod[5] != '.'))
		return 0;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strlen(t[i].n) == nlen && memcmp(t[i].n, name, nlen) == 0)
			return t[i].w;
	return 0;
}

static pframe *top_frame(pscan *ps)
{
	return &ps->frames[ps->nframes - 1];
}

static void push(pscan *ps, pitem it)
{
	pframe *f = top_frame(ps);
	if (f->count < 5)
		f->first[f->count] = it;
	if (f->count < UINT32_MAX)
		f->count++;
	f->last = it;
}

/* Any opcode we do not model: pops something and/or pushes something. The frame is no longer
 * a clean tuple, and the top is an opaque value. */
static void clobber(pscan *ps)
{
	pframe *f = top_frame(ps);
	f->tainted = 1;
	f->last = (pitem){ .kind = IT_OTHER };
	if (f->count == 0)
		f->count = 1;
}

static pitem top_item(pscan *ps)
{
	pframe *f = top_frame(ps);
	return f->count ? f->last : (pitem){ .kind = IT_OTHER };
}

static void mark(pscan *ps)
{
	if (ps->overflow || ps->nframes >= PKL_MAX_FRAMES) {
		ps->overflow++;
		return;
	}
	ps->frames[ps->nframes++] = (pframe){ 0 };
}

/* Pop the innermost frame (TUPLE, LIST, DICT, ...). Returns the popped frame's contents in *f
 * (0) or 1 if there was none to pop (unbalanced: caller stops scanning). */
static int pop_mark(pscan *ps, pframe *f)
{
	if (ps->overflow) {
		ps->overflow--;
		*f = (pframe){ .tainted = 1 };
		return 0;
	}
	if (ps->nframes <= 1)
		return 1;
	*f = ps->frames[--ps->nframes];
	return 0;
}

static int str_eq(const pscan *ps, const pitem *it, const char *s)
{
	return it->kind == IT_STR && it->len == strlen(s) &&
	       memcmp(ps->buf + it->off, s, it->len) == 0;
}

static int memo_put(pscan *ps, uint64_t idx, pitem it)
{
	if (idx >= PKL_MAX_MEMO)
		return 0; /* out of our range: we only lose the entry */
	if (idx >= ps->memo_cap) {
		size_t ncap = ps->memo_cap ? ps->memo_cap : 64;
		while (ncap <= idx)
			ncap *= 2;
		if (ncap > PKL_MAX_MEMO)
			ncap = PKL_MAX_MEMO;
		pitem *nm = realloc(ps->memo, ncap * sizeof(*nm));
		if (!nm)
			return -ENOMEM;
		memset(nm + ps->memo_cap, 0, (ncap - ps->memo_cap) * sizeof(*nm));
		ps->memo = nm;
		ps->memo_cap = ncap;
	}
	ps->memo[idx] = it;
	return 0;
}

static pitem memo_get(const pscan *ps, uint64_t idx)
{
	if (idx < ps->memo_cap)
		return ps->memo[idx];
	return (pitem){ .kind = IT_OTHER };
}

static int add_key(pscan *ps, const pitem *key, uint8_t width)
{
	if (ps->nkeys >= LAYOUT_MAX_REGIONS)
		return 0;
	if (ps->nkeys == ps->keys_cap) {
		size_t ncap = ps->keys_cap ? ps->keys_cap * 2 : 64;
		pkey *nk = realloc(ps->keys, ncap * sizeof(*nk));
		if (!nk)
			return -ENOMEM;
		ps->keys = nk;
		ps->keys_cap = ncap;
	}
	ps->keys[ps->nkeys++] = (pkey){ .s = ps->buf + key->off, .len = key->len, .width = width };
	return 0;
}

/* The newline ending an argument that starts at p; NULL if unterminated. */
static const unsigned char *line_end(const unsigned char *p, const unsigned char *end)
{
	const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
	return nl;
}

static const unsigned char *after(const unsigned char *p, const unsigned char *end,
				  const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0)
		return NULL;
	return p + n;
}

static int persid_text(pscan *ps, const unsigned char *p, const unsigned char *end)
{
	const unsigned char *q = after(p, end, "('storage', <class '");
	if (!q)
		return 0;
	const unsigned char *cls_end = memchr(q, '\'', (size_t)(end - q));
	if (!cls_end)
		return 0;
	const unsigned char *dot = cls_end;
	while (dot > q && dot[-1] != '.')
		dot--;
	if (dot == q)
		return 0;
	uint8_t w = storage_width(q, (size_t)(dot - 1 - q), dot, (size_t)(cls_end - dot));
	const unsigned char *k = after(cls_end, end, "'>, '");
	if (!k)
		return 0;
	const unsigned char *k_end = memchr(k, '\'', (size_t)(end - k));
	if (!k_end)
		return 0;
	pitem key = { .kind = IT_PID, .off = (uint32_t)(k - ps->buf), .len = (uint32_t)(k_end - k) };
	return add_key(ps, &key, w);
}

/* Scan the pickle; fills ps->keys. 0, or -ENOMEM. Malformed input just ends the scan. */
static int pickle_scan(pscan *ps)
{
	const unsigned char *p = ps->buf, *end = ps->buf + ps->size;
	int rc = 0;

	while (p < end && rc == 0) {
		unsigned op = *p++;
		size_t avail = (size_t)(end - p);
		uint64_t n;
		pitem it = { .kind = IT_OTHER };
		pframe f;

		switch (op) {
		/* No argument, pushes one value. */
		case 'N': case ')': case ']': case '}': case 0x88: case 0x89: case 0x8f:
			push(ps, it);
			break;
		case '(': /* MARK */
			mark(ps);
			break;
		case '.': /* STOP */
			return 0;
		/* Pop-to-mark opcodes that leave one value. */
		case 't': /* TUPLE */
			if (pop_mark(ps, &f))
				return 0;
			/* ('storage', GLOBAL storage class, key, location, numel) */
			if (!f.tainted && f.count == 5 && str_eq(ps, &f.first[0], "storage") &&
			    f.first[1].kind == IT_GLOBAL && f.first[2].kind == IT_STR) {
				it.kind = IT_PID;
				it.width = f.first[1].width;
				it.off = f.first[2].off;
				it.len = f.first[2].len;
			}
			push(ps, it);
			break;
		case 'l': case 'd': case 0x91: case 'o':
			if (pop_mark(ps, &f))
				return 0;
			push(ps, it);
			break;
		/* Pop-to-mark opcodes that modify the value below the mark. */
		case 'e': case 'u': case 0x90:
			if (pop_mark(ps, &f))
				return 0;
			clobber(ps);
			break;
		case '1': /* POP_MARK */
			if (pop_mark(ps, &f))
				return 0;
			break;
		case 'Q': /* BINPERSID: pops the pid, pushes the loaded storage */
			it = top_item(ps);
			if (it.kind == IT_PID)
				rc = add_key(ps, &it, it.width);
			clobber(ps);
			break;
		case '0': case '2': case 'R': case 'a': case 'b': case 's':
		case 0x81: case 0x85: case 0x86: case 0x87: case 0x92:
		case 0x97: case 0x98:
			clobber(ps);
			break;
		case 0x93: { /* STACK_GLOBAL: module and name strings on the stack */
			pframe *tf = top_frame(ps);
			uint8_t w = 0;
			if (!tf->tainted && tf->count >= 2 && tf->count <= 5 &&
			    tf->first[tf->count - 2].kind == IT_STR &&
			    tf->first[tf->count - 1].kind == IT_STR) {
				pitem m = tf->first[tf->count - 2], nm = tf->first[tf->count - 1];
				w = storage_width(ps->buf + m.off, m.len, ps->buf + nm.off, nm.len);
				tf->count -= 2;
				it.kind = IT_GLOBAL;
				it.width = w;
				push(ps, it);
			} else {
				clobber(ps);
			}
			break;
		}
		case 0x94: /* MEMOIZE */
			rc = memo_put(ps, ps->memo_next++, top_item(ps));
			break;
		/* Fixed-size arguments. */
		case 'K': case 0x80: case 0x82:
			if (avail < 1)
				return 0;
			if (op == 'K' || op == 0x82)
				push(ps, it);
			p += 1;
			break;
		case 'M': case 0x83:
			if (avail < 2)
				return 0;
			push(ps, it);
			p += 2;
			break;
		case 'J': case 0x84:
			if (avail < 4)
				return 0;
			push(ps, it);
			p += 4;
			break;
		case 'G':
			if (avail < 8)
				return 0;
			push(ps, it);
			p += 8;
			break;
		case 0x95: /* FRAME: its contents are ordinary opcodes */
			if (avail < 8)
				return 0;
			p += 8;
			break;
		case 'h': case 'j': /* BINGET, LONG_BINGET */
			if (avail < (op == 'h' ? 1u : 4u))
				return 0;
			n = op == 'h' ? p[0] : le_get32(p);
			p += op == 'h' ? 1 : 4;
			push(ps, memo_get(ps, n));
			break;
		case 'q': case 'r': /* BINPUT, LONG_BINPUT */
			if (avail < (op == 'q' ? 1u : 4u))
				return 0;
			n = op == 'q' ? p[0] : le_get32(p);
			p += op == 'q' ? 1 : 4;
			rc = memo_put(ps, n, top_item(ps));
			break;
		/* Length-prefixed strings and bytes. */
		case 'X': case 0x8c: case 0x8d: case 'T': case 'U': case 'B': case 'C':
		case 0x8e: case 0x96: case 0x8a: case 0x8b: {
			size_t lw = (op == 0x8c || op == 'U' || op == 'C' || op == 0x8a) ? 1 :
				    (op == 0x8d || op == 0x8e || op == 0x96) ? 8 : 4;
			if (avail < lw)
				return 0;
			n = lw == 1 ? p[0] : lw == 4 ? le_get32(p) : le_get64(p);
			if (op == 0x8b && (n & 0x80000000u))
				return 0; /* LONG4 length is signed */
			p += lw;
			if (n > (uint64_t)(end - p))
				return 0;
			if (op == 'X' || op == 0x8c || op == 0x8d || op == 'T' || op == 'U') {
				it.kind = IT_STR;
				it.off = (uint32_t)(p - ps->buf);
				it.len = (uint32_t)n;
			}
			push(ps, it);
			p += n;
			break;
		}
		/* Newline-terminated arguments (protocol 0). */
		case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': case 'g': case 'p': {
			const unsigned char *nl = line_end(p, end);
			if (!nl)
				return 0;
			if (op == 'p') {
				/* PUT n: decimal memo index */
				uint64_t v = 0;
				const unsigned char *q = p;
				while (q < nl && *q >= '0' && *q <= '9' && v < PKL_MAX_MEMO)
					v = v * 10 + (uint64_t)(*q++ - '0');
				rc = memo_put(ps, v, top_item(ps));
			} else if (op == 'g') {
				uint64_t v = 0;
				const unsigned char *q = p;
				while (q < nl && *q >= '0' && *q <= '9' && v < PKL_MAX_MEMO)
					v = v * 10 + (uint64_t)(*q++ - '0');
				push(ps, memo_get(ps, v));
			} else if (op == 'P') {
				/* Protocol 0 pickles the pid as its repr:
				 * ('storage', <class 'torch.FloatStorage'>, '0', 'cpu', 3) */
				rc = persid_text(ps, p, nl);
				push(ps, it); /* PERSID pushes the loaded object */
			} else if (op == 'V' || op == 'S') {
				/* Unquoted raw text is close enough to match 'storage' / keys when it
				 * has no escapes; quoted STRING is rarely used for them. */
				it.kind = IT_STR;
				it.off = (uint32_t)(p - ps->buf);
				it.len = (uint32_t)(nl - p);
				push(ps, it);
			} else {
				push(ps, it);
			}
			p = nl + 1;
			break;
		}
		case 'c': case 'i': { /* GLOBAL / INST: "module\nname\n" */
			const unsigned char *nl1 = line_end(p, end);
			if (!nl1)
				return 0;
			const unsigned char *nl2 = line_end(nl1 + 1, end);
			if (!nl2)
				return 0;
			if (op == 'c') {
				it.kind = IT_GLOBAL;
				it.width = storage_width(p, (size_t)(nl1 - p), nl1 + 1,
							 (size_t)(nl2 - nl1 - 1));
				push(ps, it);
			} else {
				if (pop_mark(ps, &f))
					return 0;
				push(ps, it);
			}
			p = nl2 + 1;
			break;
		}
		default:
			return 0; /* unknown opcode: stop, keep what we found */
		}
	}
	return rc;
}

static int pkey_cmp(const void *a, const void *b)
{
	const pkey *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);
	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* Width recorded for storage key (0 if unknown). Keys must be sorted. */
static uint8_t key_width(const pscan *ps, const char *key, size_t len)
{
	pkey k = { .s = (const unsigned char *)key, .len = (uint32_t)len };
	if (len > UINT32_MAX || ps->nkeys == 0)
		return 0;
	const pkey *hit = bsearch(&k, ps->keys, ps->nkeys, sizeof(*ps->keys), pkey_cmp);
	return hit ? hit->width : 0;
}

/* ---- zip ------------------------------------------------------------------------------ */

typedef struct zmember {
	const unsigned char *name; /* into the central directory buffer */
	uint16_t namelen;
	uint16_t method;
	uint64_t csize, usize, loc_off;
} zmember;

/* Zip64 extended information extra field: replaces the 0xFFFFFFFF fields, in order. */
static int zip64_extra(const unsigned char *ex, size_t exlen, zmember *m, int need_u, int need_c,
		       int need_o)
{
	while (exlen >= 4) {
		uint16_t id = le_get16(ex), sz = le_get16(ex + 2);
		if ((size_t)sz > exlen - 4)
			return -1;
		if (id == 0x0001) {
			const unsigned char *q = ex + 4;
			size_t left = sz;
			if (need_u) {
				if (left < 8)
					return -1;
				m->usize = le_get64(q);
				q += 8;
				left -= 8;
			}
			if (need_c) {
				if (left < 8)
					return -1;
				m->csize = le_get64(q);
				q += 8;
				left -= 8;
			}
			if (need_o) {
				if (left < 8)
					return -1;
				m->loc_off = le_get64(q);
			}
			return 0;
		}
		ex += 4 + sz;
		exlen -= 4 + (size_t)sz;
	}
	return (need_u || need_c || need_o) ? -1 : 0;
}

/* Locate the central directory. 1 found, 0 not a (supported) zip, <0 errno. */
static int zip_find_cd(const io_src *src, uint64_t *cd_off, uint64_t *cd_size, uint64_t *count)
{
	uint64_t size = src->size;
	if (size < ZIP_EOCD_LEN)
		return 0;
	uint64_t tail = size < ZIP_EOCD_LEN + ZIP_MAX_COMMENT ? size : ZIP_EOCD_LEN + ZIP_MAX_COMMENT;
	unsigned char *t = malloc((size_t)tail);
	if (!t)
		return -ENOMEM;
	uint64_t base = size - tail;
	int rc = io_pread_full(src, t, (size_t)tail, base);
	if (rc < 0) {
		free(t);
		return rc;
	}
	/* Last EOCD signature whose comment length reaches exactly to the end of the file. */
	int64_t at = -1;
	for (uint64_t i = tail - ZIP_EOCD_LEN + 1; i-- > 0;) {
		if (le_get32(t + i) == ZIP_EOCD_SIG && i + ZIP_EOCD_LEN + le_get16(t + i + 20) == tail) {
			at = (int64_t)i;
			break;
		}
	}
	if (at < 0) {
		free(t);
		return 0;
	}
	const unsigned char *e = t + at;
	uint64_t eocd = base + (uint64_t)at;
	uint16_t disk = le_get16(e + 4), cd_disk = le_get16(e + 6);
	uint64_t n_disk = le_get16(e + 8), n = le_get16(e + 10);
	uint64_t csz = le_get32(e + 12), coff = le_get32(e + 16);
	uint64_t cd_limit = eocd;
	int z64 = n == 0xFFFF || n_disk == 0xFFFF || csz == 0xFFFFFFFFu || coff == 0xFFFFFFFFu;
	unsigned char loc[ZIP64_LOC_LEN], z[ZIP64_EOCD_LEN];
	rc = 0;
	if (eocd >= ZIP64_LOC_LEN) {
		rc = io_pread_full(src, loc, sizeof(loc), eocd - ZIP64_LOC_LEN);
		if (rc < 0)
			goto out;
		if (le_get32(loc) == ZIP64_LOC_SIG)
			z64 = 1;
		else if (z64)
			goto out; /* fields say zip64 but there is no locator */
	} else if (z64) {
		goto out;
	}
	if (z64) {
		uint64_t zoff = le_get64(loc + 8);
		if (le_get32(loc + 4) != 0 || le_get32(loc + 16) > 1)
			goto out; /* multi-disk */
		if (zoff > eocd - ZIP64_LOC_LEN || eocd - ZIP64_LOC_LEN - zoff < ZIP64_EOCD_LEN)
			goto out;
		rc = io_pread_full(src, z, sizeof(z), zoff);
		if (rc < 0)
			goto out;
		if (le_get32(z) != ZIP64_EOCD_SIG || le_get32(z + 16) != 0 || le_get32(z + 20) != 0)
			goto out;
		n_disk = le_get64(z + 24);
		n = le_get64(z + 32);
		csz = le_get64(z + 40);
		coff = le_get64(z + 48);
		cd_limit = zoff;
	} else if (disk != 0 || cd_disk != 0) {
		goto out;
	}
	if (n_disk != n || coff > cd_limit || csz > cd_limit - coff || csz > ZIP_MAX_CD ||
	    n > csz / ZIP_CEN_LEN || n > LAYOUT_MAX_REGIONS)
		goto out;
	*cd_off = coff;
	*cd_size = csz;
	*count = n;
	rc = 1;
out:
	free(t);
	return rc;
}

/* Offset of a stored member's data, from its local header (whose extra field, used by torch
 * for alignment padding, differs from the central one). 1 ok, 0 inconsistent, <0 errno. */
static int zip_data_off(const io_src *src, const zmember *m, uint64_t limit, uint64_t *data_off)
{
	if (m->loc_off > limit || limit - m->loc_off < ZIP_LOC_LEN + (uint64_t)m->namelen)
		return 0;
	unsigned char *h = malloc(ZIP_LOC_LEN + (size_t)m->namelen);
	if (!h)
		return -ENOMEM;
	int rc = io_pread_full(src, h, ZIP_LOC_LEN + (size_t)m->namelen, m->loc_off);
	if (rc == 0) {
		rc = le_get32(h) == ZIP_LOC_SIG && le_get16(h + 26) == m->namelen &&
		     memcmp(h + ZIP_LOC_LEN, m->name, m->namelen) == 0;
		if (rc)
			*data_off = m->loc_off + ZIP_LOC_LEN + m->namelen + le_get16(h + 28);
	}
	free(h);
	return rc;
}

/* "<archive>/rest" -> "rest"; NULL when there is no '/'. */
static const unsigned char *strip_first(const unsigned char *name, size_t len, size_t *rlen)
{
	const unsigned char *s = memchr(name, '/', len);
	if (!s)
		return NULL;
	*rlen = len - (size_t)(s + 1 - name);
	return s + 1;
}

/* Read and scan data.pkl. 0 (also when it cannot be scanned: widths fall back), 1 when its
 * headers lie (the archive is inconsistent), <0 errno. */
static int load_pickle(const io_src *src, const zmember *m, uint64_t limit, pscan *ps)
{
	uint64_t doff;
	if (m->method != 0 || m->usize != m->csize || m->usize == 0 || m->usize > PKL_MAX)
		return 0;
	int rc = zip_data_off(src, m, limit, &doff);
	if (rc <= 0)
		return rc < 0 ? rc : 1;
	if (doff > limit || m->usize > limit - doff)
		return 1;
	unsigned char *buf = malloc((size_t)m->usize);
	if (!buf)
		return -ENOMEM;
	rc = io_pread_full(src, buf, (size_t)m->usize, doff);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	ps->buf = buf;
	ps->size = (size_t)m->usize;
	ps->frames = calloc(PKL_MAX_FRAMES, sizeof(*ps->frames));
	if (!ps->frames)
		return -ENOMEM;
	ps->nframes = 1;
	rc = pickle_scan(ps);
	if (rc == 0 && ps->nkeys > 1)
		qsort(ps->keys, ps->nkeys, sizeof(*ps->keys), pkey_cmp);
	return rc;
}

int layout_parse_torchzip(const io_src *src, layout_build *b)
{
	uint64_t cd_off = 0, cd_size = 0, count = 0;
	int rc = zip_find_cd(src, &cd_off, &cd_size, &count);
	if (rc <= 0)
		return rc;
	unsigned char *cd = malloc(cd_size ? (size_t)cd_size : 1);
	zmember *mem = malloc((count ? (size_t)count : 1) * sizeof(*mem));
	pscan ps = { 0 };
	if (!cd || !mem) {
		rc = -ENOMEM;
		goto out;
	}
	rc = io_pread_full(src, cd, (size_t)cd_size, cd_off);
	if (rc < 0)
		goto out;

	/* Central directory: every entry must be well-formed. */
	const unsigned char *p = cd, *end = cd + cd_size;
	const zmember *pkl = NULL;
	for (uint64_t i = 0; i < count; i++) {
		if ((size_t)(end - p) < ZIP_CEN_LEN || le_get32(p) != ZIP_CEN_SIG)
			goto bad;
		zmember *m = &mem[i];
		uint16_t nl = le_get16(p + 28), xl = le_get16(p + 30), cl = le_get16(p + 32);
		if ((size_t)(end - p) - ZIP_CEN_LEN < (size_t)nl + xl + cl)
			goto bad;
		m->name = p + ZIP_CEN_LEN;
		m->namelen = nl;
		m->method = le_get16(p + 10);
		m->csize = le_get32(p + 20);
		m->usize = le_get32(p + 24);
		m->loc_off = le_get32(p + 42);
		int nu = m->usize == 0xFFFFFFFFu, nc = m->csize == 0xFFFFFFFFu;
		int no = m->loc_off == 0xFFFFFFFFu;
		if (le_get16(p + 34) != 0 && le_get16(p + 34) != 0xFFFF)
			goto bad; /* multi-disk */
		if (zip64_extra(p + ZIP_CEN_LEN + nl, xl, m, nu, nc, no) < 0)
			goto bad;
		size_t rl;
		const unsigned char *rest = strip_first(m->name, nl, &rl);
		if (rest && rl == 8 && memcmp(rest, "data.pkl", 8) == 0) {
			if (pkl)
				goto bad; /* two object graphs: not something torch writes */
			pkl = m;
		}
		p += ZIP_CEN_LEN + (size_t)nl + xl + cl;
	}
	if (!pkl)
		goto bad; /* a zip, but not a torch checkpoint */

	rc = load_pickle(src, pkl, cd_off, &ps);
	if (rc < 0)
		goto out;
	if (rc > 0)
		goto bad;

	for (uint64_t i = 0; i < count; i++) {
		const zmember *m = &mem[i];
		size_t rl;
		const unsigned char *rest = strip_first(m->name, m->namelen, &rl);
		if (!rest || rl <= 5 || memcmp(rest, "data/", 5) != 0)
			continue;
		if (m->method != 0 || m->usize == 0)
			continue; /* compressed (not torch) or empty: not a region */
		if (m->csize != m->usize)
			goto bad; /* stored members are their own size */
		uint64_t doff;
		rc = zip_data_off(src, m, cd_off, &doff);
		if (rc < 0)
			goto out;
		if (rc == 0 || doff > cd_off || m->usize > cd_off - doff)
			goto bad;
		uint8_t w = key_width(&ps, (const char *)rest + 5, rl - 5);
		if (w == 0)
			w = m->usize % 4 == 0 ? 4 : m->usize % 2 == 0 ? 2 : 1;
		else if (m->usize % w != 0)
			goto bad; /* pickle and storage size disagree */
		rc = layout_build_add(b, (const char *)rest, rl, doff, m->usize, w);
		if (rc < 0)
			goto out;
		if (rc > 0)
			goto bad;
	}
	rc = layout_build_finish(b, src->size);
	goto out;
bad:
	rc = 0;
out:
	free(cd);
	free(mem);
	free((void *)ps.buf);
	free(ps.memo);
	free(ps.frames);
	free(ps.keys);
	return rc;
}
