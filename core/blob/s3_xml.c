/* s3_xml.c - a strict, bounded extractor for S3's XML replies (see s3_xml.h).
 *
 * One walker turns the bytes into events (element open, leaf text, element close) for a small
 * handler per document type. The walker checks well-formedness as far as these replies need it;
 * the handlers check the document's shape (root name, which element holds which) and convert.
 */
#include "s3_xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEXT_MAX 4096 /* longest text the walker keeps; longer text is flagged, not an error */

typedef struct xml_ev {
	/* name of the element (not NUL-terminated), its depth (root = 1) */
	int (*open)(void *ctx, int depth, const char *name, size_t nlen);
	/* text of an element without child elements, decoded; over: longer than TEXT_MAX */
	int (*leaf)(void *ctx, int depth, const char *name, size_t nlen, const char *text,
		    size_t tlen, int over);
	int (*close)(void *ctx, int depth, const char *name, size_t nlen);
	void *ctx;
} xml_ev;

typedef struct walker {
	const char *p, *end;
	const char *name[S3XML_MAX_DEPTH + 1];
	size_t nlen[S3XML_MAX_DEPTH + 1];
	int has_child[S3XML_MAX_DEPTH + 1];
	int depth;
	char text[TEXT_MAX + 1];
	size_t tlen;
	int tover, tnonws;
} walker;

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int name_start(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' || c >= 0x80;
}

static int name_char(unsigned char c)
{
	return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static int starts(const walker *w, const char *s)
{
	size_t n = strlen(s);
	return (size_t)(w->end - w->p) >= n && !memcmp(w->p, s, n);
}

/* Skip past the first occurrence of term; -EBADMSG when it never comes. */
static int skip_past(walker *w, const char *term)
{
	size_t n = strlen(term);
	for (const char *q = w->p; (size_t)(w->end - q) >= n; q++) {
		if (!memcmp(q, term, n)) {
			w->p = q + n;
			return 0;
		}
	}
	return -EBADMSG;
}

static void text_add(walker *w, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_ws(s[i]))
			w->tnonws = 1;
	if (w->tover)
		return;
	if (n > TEXT_MAX - w->tlen) {
		w->tover = 1;
		return;
	}
	memcpy(w->text + w->tlen, s, n);
	w->tlen += n;
	w->text[w->tlen] = 0;
}

static void text_reset(walker *w)
{
	w->tlen = 0;
	w->tover = 0;
	w->tnonws = 0;
	w->text[0] = 0;
}

static size_t utf8_put(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* At '&': decode one reference into out (1..4 bytes). */
static int entity(walker *w, char out[4], size_t *n)
{
	static const struct {
		const char *name;
		char c;
	} named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
	w->p++; /* '&' */
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		if (starts(w, named[i].name)) {
			w->p += strlen(named[i].name);
			out[0] = named[i].c;
			*n = 1;
			return 0;
		}
	}
	if (w->p >= w->end || *w->p != '#')
		return -EBADMSG; /* no other named entity exists without a DTD */
	w->p++;
	int hex = 0;
	if (w->p < w->end && *w->p == 'x') {
		hex = 1;
		w->p++;
	}
	uint32_t cp = 0;
	int digits = 0;
	while (w->p < w->end && *w->p != ';') {
		char c = *w->p;
		uint32_t d;
		if (c >= '0' && c <= '9')
			d = (uint32_t)(c - '0');
		else if (hex && c >= 'a' && c <= 'f')
			d = (uint32_t)(c - 'a' + 10);
		else if (hex && c >= 'A' && c <= 'F')
			d = (uint32_t)(c - 'A' + 10);
		else
			return -EBADMSG;
		if (++digits > 8)
			return -EBADMSG;
		cp = cp * (hex ? 16u : 10u) + d;
		w->p++;
	}
	if (w->p >= w->end || !digits)
		return -EBADMSG;
	w->p++; /* ';' */
	/* XML 1.0 characters: no NUL (it would cut a C string), no surrogates, nothing past U+10FFFF */
	if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		return -EBADMSG;
	*n = utf8_put(cp, out);
	return 0;
}

/* Character data up to the next '<'. */
static int chardata(walker *w)
{
	while (w->p < w->end && *w->p != '<') {
		const char *s = w->p;
		while (w->p < w->end && *w->p != '<' && *w->p != '&' && *w->p)
			w->p++;
		if (w->depth == 0) {
			/* outside the root only whitespace is allowed */
			for (const char *q = s; q < w->p; q++)
				if (!is_ws(*q))
					return -EBADMSG;
		} else {
			text_add(w, s, (size_t)(w->p - s));
		}
		if (w->p >= w->end || *w->p == '<')
			break;
		if (!*w->p)
			return -EBADMSG; /* NUL bytes are not XML */
		char e[4];
		size_t n = 0;
		int rc = entity(w, e, &n);
		if (rc)
			return rc;
		if (w->depth == 0)
			return -EBADMSG;
		text_add(w, e, n);
	}
	return 0;
}

static int parse_name(walker *w, const char **name, size_t *nlen)
{
	if (w->p >= w->end || !name_start((unsigned char)*w->p))
		return -EBADMSG;
	*name = w->p;
	while (w->p < w->end && name_char((unsigned char)*w->p))
		w->p++;
	*nlen = (size_t)(w->p - *name);
	return 0;
}

static void skip_ws(walker *w)
{
	while (w->p < w->end && is_ws(*w->p))
		w->p++;
}

static int start_tag(walker *w, const xml_ev *ev, int *roots)
{
	const char *name;
	size_t nlen;
	w->p++; /* '<' */
	int rc = parse_name(w, &name, &nlen);
	if (rc)
		return rc;
	/* attributes (xmlns="..."): checked for shape, values ignored */
	for (;;) {
		int had_ws = w->p < w->end && is_ws(*w->p);
		skip_ws(w);
		if (w->p >= w->end)
			return -EBADMSG;
		if (*w->p == '>' || *w->p == '/')
			break;
		if (!had_ws)
			return -EBADMSG;
		const char *an;
		size_t alen;
		if ((rc = parse_name(w, &an, &alen)))
			return rc;
		skip_ws(w);
		if (w->p >= w->end || *w->p != '=')
			return -EBADMSG;
		w->p++;
		skip_ws(w);
		if (w->p >= w->end || (*w->p != '"' && *w->p != '\''))
			return -EBADMSG;
		char q = *w->p++;
		while (w->p < w->end && *w->p != q) {
			if (*w->p == '<' || !*w->p)
				return -EBADMSG;
			w->p++;
		}
		if (w->p >= w->end)
			return -EBADMSG;
		w->p++;
	}
	int empty = *w->p == '/';
	if (empty) {
		w->p++;
		if (w->p >= w->end || *w->p != '>')
			return -EBADMSG;
	}
	w->p++; /* '>' */

	if (w->depth == 0) {
		if (++*roots > 1)
			return -EBADMSG; /* one document element */
	} else {
		if (w->tnonws)
			return -EBADMSG; /* text mixed with elements: not an S3 reply */
		w->has_child[w->depth] = 1;
	}
	if (w->depth >= S3XML_MAX_DEPTH)
		return -EBADMSG;
	w->depth++;
	w->name[w->depth] = name;
	w->nlen[w->depth] = nlen;
	w->has_child[w->depth] = 0;
	text_reset(w);
	if (ev->open && (rc = ev->open(ev->ctx, w->depth, name, nlen)))
		return rc;
	if (empty) {
		if (ev->leaf && (rc = ev->leaf(ev->ctx, w->depth, name, nlen, "", 0, 0)))
			return rc;
		if (ev->close && (rc = ev->close(ev->ctx, w->depth, name, nlen)))
			return rc;
		w->depth--;
		text_reset(w);
	}
	return 0;
}

static int end_tag(walker *w, const xml_ev *ev)
{
	const char *name;
	size_t nlen;
	w->p += 2; /* "</" */
	int rc = parse_name(w, &name, &nlen);
	if (rc)
		return rc;
	skip_ws(w);
	if (w->p >= w->end || *w->p != '>')
		return -EBADMSG;
	w->p++;
	int d = w->depth;
	if (d == 0 || nlen != w->nlen[d] || memcmp(name, w->name[d], nlen))
		return -EBADMSG;
	if (w->has_child[d]) {
		if (w->tnonws)
			return -EBADMSG;
	} else if (ev->leaf &&
		   (rc = ev->leaf(ev->ctx, d, name, nlen, w->text, w->tlen, w->tover))) {
		return rc;
	}
	if (ev->close && (rc = ev->close(ev->ctx, d, name, nlen)))
		return rc;
	w->depth--;
	text_reset(w);
	return 0;
}

static int xml_walk(const char *xml, size_t len, const xml_ev *ev)
{
	if (!xml)
		return -EBADMSG;
	if (len > S3XML_MAX_INPUT)
		return -E2BIG;
	walker *w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->p = xml;
	w->end = xml + len;
	w->depth = 0;
	text_reset(w);
	int roots = 0, rc = 0, first = 1;
	if (starts(w, "\xEF\xBB\xBF"))
		w->p += 3;
	while (w->p < w->end && !rc) {
		if (*w->p != '<') {
			rc = chardata(w);
		} else if (starts(w, "<?xml") && first) {
			/* the declaration, only as the very first thing */
			rc = skip_past(w, "?>");
		} else if (starts(w, "<!--")) {
			w->p += 4;
			rc = skip_past(w, "-->");
		} else if (starts(w, "<?") || starts(w, "<!")) {
			rc = -EBADMSG; /* DOCTYPE, entity definitions, CDATA, processing instructions */
		} else if (starts(w, "</")) {
			rc = end_tag(w, ev);
		} else {
			rc = start_tag(w, ev, &roots);
		}
		first = 0;
	}
	if (!rc && (w->depth != 0 || roots != 1))
		rc = -EBADMSG; /* unclosed elements, or no document element at all */
	free(w);
	return rc;
}

static int name_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && !memcmp(name, want, nlen);
}

/* Copy a leaf's text into a field of size bytes; text that does not fit is malformed. A second
 * value for the same field is malformed too (*seen). */
static int take(char *dst, size_t size, const char *text, size_t tlen, int over, int *seen)
{
	if (over || tlen >= size || (seen && *seen))
		return -EBADMSG;
	memcpy(dst, text, tlen);
	dst[tlen] = 0;
	if (seen)
		*seen = 1;
	return 0;
}

static int parse_u64(const char *s, size_t n, uint64_t *v)
{
	if (n == 0 || n > 20)
		return -EBADMSG;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EBADMSG;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

static int parse_bool(const char *s, size_t n, int *v)
{
	if (name_is(s, n, "true"))
		*v = 1;
	else if (name_is(s, n, "false"))
		*v = 0;
	else
		return -EBADMSG;
	return 0;
}

static int two(const char *s, int lo, int hi, int *v)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -EBADMSG;
	*v = (s[0] - '0') * 10 + (s[1] - '0');
	return *v < lo || *v > hi ? -EBADMSG : 0;
}

int s3xml_parse_time(const char *s, int64_t *ns)
{
	/* YYYY-MM-DDTHH:MM:SS[.f+]Z */
	size_t n = strlen(s);
	if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
		return -EBADMSG;
	int y = 0, mo, d, h, mi, se;
	for (int i = 0; i < 4; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EBADMSG;
		y = y * 10 + (s[i] - '0');
	}
	if (two(s + 5, 1, 12, &mo) || two(s + 8, 1, 31, &d) || two(s + 11, 0, 23, &h) ||
	    two(s + 14, 0, 59, &mi) || two(s + 17, 0, 60, &se) || y < 1970 || y > 2261)
		return -EBADMSG; /* ns since 1970 in an int64 end in 2262 */
	const char *p = s + 19;
	int64_t frac = 0, scale = 1000000000;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EBADMSG;
		while (*p >= '0' && *p <= '9') {
			if (scale > 1) {
				scale /= 10;
				frac += (*p - '0') * scale;
			}
			p++;
		}
	}
	if (p[0] != 'Z' || p[1])
		return -EBADMSG;
	struct tm tm = {0};
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	time_t t = timegm(&tm);
	if (t == (time_t)-1 || t < 0)
		return -EBADMSG;
	*ns = (int64_t)t * 1000000000 + frac;
	return 0;
}

/* Grow an array of records by one (bounded by S3XML_MAX_ITEMS). */
static void *grow(void *items, size_t *n, size_t *cap, size_t elsize)
{
	if (*n >= S3XML_MAX_ITEMS)
		return NULL;
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		void *ni = realloc(items, nc * elsize);
		if (!ni)
			return NULL;
		items = ni;
		*cap = nc;
	}
	memset((char *)items + *n * elsize, 0, elsize);
	(*n)++;
	return items;
}

/* ---- ListBucketResult ----------------------------------------------------------------------- */

typedef struct list_ctx {
	s3xml_list *l;
	int in_item, seen_key, seen_size, seen_trunc, seen_token;
	char tbuf[64];
} list_ctx;

static int list_open(void *ctx, int depth, const char *name, size_t nlen)
{
	list_ctx *c = ctx;
	if (depth == 1)
		return name_is(name, nlen, "ListBucketResult") ? 0 : -EBADMSG;
	if (depth == 2 && name_is(name, nlen, "Contents")) {
		s3xml_list *l = c->l;
		void *ni = grow(l->items, &l->n, &l->cap, sizeof(*l->items));
		if (!ni)
			return l->n >= S3XML_MAX_ITEMS ? -EBADMSG : -ENOMEM;
		l->items = ni;
		c->in_item = 1;
		c->seen_key = c->seen_size = 0;
	}
	return 0;
}

static int list_leaf(void *ctx, int depth, const char *name, size_t nlen, const char *text,
		     size_t tlen, int over)
{
	list_ctx *c = ctx;
	s3xml_list *l = c->l;
	if (depth == 2) {
		if (name_is(name, nlen, "IsTruncated")) {
			if (c->seen_trunc++)
				return -EBADMSG;
			return parse_bool(text, tlen, &l->truncated);
		}
		if (name_is(name, nlen, "NextContinuationToken"))
			return take(l->next_token, sizeof(l->next_token), text, tlen, over,
				    &c->seen_token);
		return 0;
	}
	if (depth != 3 || !c->in_item)
		return 0;
	s3xml_object *o = &l->items[l->n - 1];
	if (name_is(name, nlen, "Key"))
		return take(o->key, sizeof(o->key), text, tlen, over, &c->seen_key);
	if (name_is(name, nlen, "Size")) {
		if (c->seen_size++)
			return -EBADMSG;
		return over ? -EBADMSG : parse_u64(text, tlen, &o->size);
	}
	if (name_is(name, nlen, "LastModified")) {
		if (take(c->tbuf, sizeof(c->tbuf), text, tlen, over, NULL))
			return -EBADMSG;
		return s3xml_parse_time(c->tbuf, &o->mtime_ns);
	}
	return 0;
}

static int list_close(void *ctx, int depth, const char *name, size_t nlen)
{
	list_ctx *c = ctx;
	if (depth == 2 && c->in_item && name_is(name, nlen, "Contents")) {
		c->in_item = 0;
		/* a record without its key or size is of no use and not what S3 sends */
		if (!c->seen_key || !c->seen_size || !c->l->items[c->l->n - 1].key[0])
			return -EBADMSG;
	}
	return 0;
}

int s3xml_parse_list(const char *xml, size_t len, s3xml_list *out)
{
	memset(out, 0, sizeof(*out));
	list_ctx c = {.l = out};
	xml_ev ev = {list_open, list_leaf, list_close, &c};
	int rc = xml_walk(xml, len, &ev);
	if (!rc && out->truncated && !out->next_token[0])
		rc = -EBADMSG; /* a truncated page must say where to go on */
	return rc;
}

void s3xml_list_free(s3xml_list *l)
{
	free(l->items);
	l->items = NULL;
	l->n = l->cap = 0;
}

/* ---- ListMultipartUploadsResult ------------------------------------------------------------- */

typedef struct up_ctx {
	s3xml_uploads *u;
	int in_item, seen_key, seen_id, seen_trunc, seen_km, seen_im;
	char tbuf[64];
} up_ctx;

static int up_open(void *ctx, int depth, const char *name, size_t nlen)
{
	up_ctx *c = ctx;
	if (depth == 1)
		return name_is(name, nlen, "ListMultipartUploadsResult") ? 0 : -EBADMSG;
	if (depth == 2 && name_is(name, nlen, "Upload")) {
		s3xml_uploads *u = c->u;
		void *ni = grow(u->items, &u->n, &u->cap, sizeof(*u->items));
		if (!ni)
			return u->n >= S3XML_MAX_ITEMS ? -EBADMSG : -ENOMEM;
		u->items = ni;
		c->in_item = 1;
		c->seen_key = c->seen_id = 0;
	}
	return 0;
}

static int up_leaf(void *ctx, int depth, const char *name, size_t nlen, const char *text,
		   size_t tlen, int over)
{
	up_ctx *c = ctx;
	s3xml_uploads *u = c->u;
	if (depth == 2) {
		if (name_is(name, nlen, "IsTruncated")) {
			if (c->seen_trunc++)
				return -EBADMSG;
			return parse_bool(text, tlen, &u->truncated);
		}
		if (name_is(name, nlen, "NextKeyMarker"))
			return take(u->next_key_marker, sizeof(u->next_key_marker), text, tlen,
				    over, &c->seen_km);
		if (name_is(name, nlen, "NextUploadIdMarker"))
			return take(u->next_upload_id_marker, sizeof(u->next_upload_id_marker),
				    text, tlen, over, &c->seen_im);
		return 0;
	}
	if (depth != 3 || !c->in_item)
		return 0;
	s3xml_upload *x = &u->items[u->n - 1];
	if (name_is(name, nlen, "Key"))
		return take(x->key, sizeof(x->key), text, tlen, over, &c->seen_key);
	if (name_is(name, nlen, "UploadId"))
		return take(x->upload_id, sizeof(x->upload_id), text, tlen, over, &c->seen_id);
	if (name_is(name, nlen, "Initiated")) {
		if (take(c->tbuf, sizeof(c->tbuf), text, tlen, over, NULL))
			return -EBADMSG;
		return s3xml_parse_time(c->tbuf, &x->initiated_ns);
	}
	return 0;
}

static int up_close(void *ctx, int depth, const char *name, size_t nlen)
{
	up_ctx *c = ctx;
	if (depth == 2 && c->in_item && name_is(name, nlen, "Upload")) {
		c->in_item = 0;
		s3xml_upload *x = &c->u->items[c->u->n - 1];
		if (!c->seen_key || !c->seen_id || !x->key[0] || !x->upload_id[0])
			return -EBADMSG;
	}
	return 0;
}

int s3xml_parse_uploads(const char *xml, size_t len, s3xml_uploads *out)
{
	memset(out, 0, sizeof(*out));
	up_ctx c = {.u = out};
	xml_ev ev = {up_open, up_leaf, up_close, &c};
	int rc = xml_walk(xml, len, &ev);
	if (!rc && out->truncated && !out->next_key_marker[0])
		rc = -EBADMSG;
	return rc;
}

void s3xml_uploads_free(s3xml_uploads *u)
{
	free(u->items);
	u->items = NULL;
	u->n = u->cap = 0;
}

/* ---- InitiateMultipartUploadResult, Error --------------------------------------------------- */

typedef struct one_ctx {
	const char *root;
	const char *f1, *f2; /* depth-2 elements wanted */
	char *d1, *d2;
	size_t s1, s2;
	int seen1, seen2;
	char rootname[64];
} one_ctx;

static int one_open(void *ctx, int depth, const char *name, size_t nlen)
{
	one_ctx *c = ctx;
	if (depth == 1) {
		size_t n = nlen < sizeof(c->rootname) - 1 ? nlen : sizeof(c->rootname) - 1;
		memcpy(c->rootname, name, n);
		c->rootname[n] = 0;
		if (c->root && !name_is(name, nlen, c->root))
			return -EBADMSG;
	}
	return 0;
}

static int one_leaf(void *ctx, int depth, const char *name, size_t nlen, const char *text,
		    size_t tlen, int over)
{
	one_ctx *c = ctx;
	if (depth != 2)
		return 0;
	if (c->f1 && name_is(name, nlen, c->f1)) {
		if (!c->d1)
			return c->seen1++ ? -EBADMSG : 0;
		return take(c->d1, c->s1, text, tlen, over, &c->seen1);
	}
	if (c->f2 && name_is(name, nlen, c->f2)) {
		if (!c->d2)
			return c->seen2++ ? -EBADMSG : 0;
		/* a message is for people: cut it to the room given rather than refuse it */
		if (over || tlen >= c->s2)
			tlen = c->s2 ? c->s2 - 1 : 0;
		if (c->seen2++)
			return -EBADMSG;
		if (c->s2) {
			memcpy(c->d2, text, tlen);
			c->d2[tlen] = 0;
		}
		return 0;
	}
	return 0;
}

int s3xml_parse_initiate(const char *xml, size_t len, char *upload_id, size_t size)
{
	if (!upload_id || !size)
		return -EINVAL;
	upload_id[0] = 0;
	one_ctx c = {.root = "InitiateMultipartUploadResult", .f1 = "UploadId", .d1 = upload_id,
		     .s1 = size};
	xml_ev ev = {one_open, one_leaf, NULL, &c};
	int rc = xml_walk(xml, len, &ev);
	if (!rc && !upload_id[0])
		rc = -EBADMSG;
	if (rc)
		upload_id[0] = 0;
	return rc;
}

int s3xml_parse_error(const char *xml, size_t len, char *code, size_t csize, char *msg,
		      size_t msize)
{
	if (code && csize)
		code[0] = 0;
	if (msg && msize)
		msg[0] = 0;
	one_ctx c = {.root = "Error", .f1 = "Code", .d1 = csize ? code : NULL, .s1 = csize,
		     .f2 = "Message", .d2 = msize ? msg : NULL, .s2 = msize};
	xml_ev ev = {one_open, one_leaf, NULL, &c};
	int rc = xml_walk(xml, len, &ev);
	if (rc) {
		if (code && csize)
			code[0] = 0;
		if (msg && msize)
			msg[0] = 0;
	}
	return rc;
}

int s3xml_is_error(const char *xml, size_t len)
{
	one_ctx c = {0};
	xml_ev ev = {one_open, NULL, NULL, &c};
	return xml_walk(xml, len, &ev) == 0 && !strcmp(c.rootname, "Error");
}
