/* s3_sign.c - AWS Signature Version 4 for S3 (see s3_sign.h). Pure: strings in, strings out;
 * OpenSSL's libcrypto for SHA-256 and HMAC. */
#include "s3_sign.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* A bounded string builder: every append checks the room left; one overflow poisons it. */
typedef struct sb {
	char *p;
	size_t size, len;
	int over;
} sb;

static void sb_init(sb *b, char *p, size_t size)
{
	b->p = p;
	b->size = size;
	b->len = 0;
	b->over = size == 0;
	if (size)
		p[0] = 0;
}

static void sb_putn(sb *b, const char *s, size_t n)
{
	if (b->over)
		return;
	if (n >= b->size - b->len) {
		b->over = 1;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sb_puts(sb *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void sb_putc(sb *b, char c)
{
	sb_putn(b, &c, 1);
}

static int sb_done(sb *b)
{
	if (b->over) {
		if (b->size)
			b->p[0] = 0;
		return -ENAMETOOLONG;
	}
	return (int)b->len;
}

void s3sig_hex(const uint8_t *bytes, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[bytes[i] >> 4];
		out[2 * i + 1] = hx[bytes[i] & 15];
	}
	out[2 * n] = 0;
}

void s3sig_sha256_hex(const void *data, size_t len, char out[S3SIG_SHA256_HEX])
{
	uint8_t md[32];
	unsigned int mdlen = 0;
	/* EVP_Digest only fails on allocation failure inside OpenSSL; an all-zero digest then
	 * makes the server refuse the request rather than letting it through. */
	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		memset(md, 0, sizeof(md));
	s3sig_hex(md, 32, out);
}

void s3sig_hmac(const void *key, size_t keylen, const void *msg, size_t msglen, uint8_t mac[32])
{
	unsigned int maclen = 0;
	if (!HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, mac, &maclen) || maclen != 32)
		memset(mac, 0, 32);
}

void s3sig_amz_date(time_t t, char out[S3SIG_AMZ_DATE])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	if (strftime(out, S3SIG_AMZ_DATE, "%Y%m%dT%H%M%SZ", &tm) != 16)
		out[0] = 0;
}

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

static void sb_encode(sb *b, const char *in, int keep_slash)
{
	static const char hx[] = "0123456789ABCDEF";
	for (const unsigned char *s = (const unsigned char *)in; *s; s++) {
		if (unreserved(*s) || (keep_slash && *s == '/')) {
			sb_putc(b, (char)*s);
		} else {
			char e[3] = {'%', hx[*s >> 4], hx[*s & 15]};
			sb_putn(b, e, 3);
		}
	}
}

int s3sig_uri_encode(const char *in, int keep_slash, char *out, size_t size)
{
	sb b;
	sb_init(&b, out, size);
	sb_encode(&b, in, keep_slash);
	return sb_done(&b);
}

/* One query parameter, encoded, for sorting. */
typedef struct qenc {
	char *name, *value;
} qenc;

static int qenc_cmp(const void *a, const void *b)
{
	const qenc *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

static char *encode_dup(const char *s)
{
	size_t n = strlen(s);
	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	char *o = malloc(3 * n + 1);
	if (o && s3sig_uri_encode(s, 0, o, 3 * n + 1) < 0) {
		free(o);
		o = NULL;
	}
	return o;
}

int s3sig_canonical_query(const s3sig_kv *q, size_t n, char *out, size_t size)
{
	sb b;
	sb_init(&b, out, size);
	if (n == 0)
		return sb_done(&b);
	if (!q)
		return -EINVAL;
	qenc *e = calloc(n, sizeof(*e));
	if (!e)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (!q[i].name || !q[i].name[0] || !q[i].value) {
			rc = -EINVAL;
			break;
		}
		e[i].name = encode_dup(q[i].name);
		e[i].value = encode_dup(q[i].value);
		if (!e[i].name || !e[i].value)
			rc = -ENOMEM;
	}
	if (!rc) {
		/* AWS sorts by the encoded name (byte order), then by value */
		qsort(e, n, sizeof(*e), qenc_cmp);
		for (size_t i = 0; i < n; i++) {
			if (i)
				sb_putc(&b, '&');
			sb_puts(&b, e[i].name);
			sb_putc(&b, '=');
			sb_puts(&b, e[i].value);
		}
		rc = sb_done(&b);
	} else if (size) {
		out[0] = 0;
	}
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].value);
	}
	free(e);
	return rc;
}

/* A header for the canonical form: lower-case name, trimmed value with inner space runs folded. */
typedef struct hdr {
	char name[64];
	const char *value;
} hdr;

static int hdr_cmp(const void *a, const void *b)
{
	return strcmp(((const hdr *)a)->name, ((const hdr *)b)->name);
}

static void sb_trimmed(sb *b, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	int space = 0;
	for (size_t i = 0; i < n; i++) {
		char c = v[i] == '\t' ? ' ' : v[i];
		if (c == ' ') {
			if (space)
				continue;
			space = 1;
		} else {
			space = 0;
		}
		sb_putc(b, c);
	}
}

int s3sig_canonical_request(const s3sig_req *r, char *out, size_t size, char *signed_headers,
			    size_t shsize)
{
	if (!r || !r->method || !r->path || r->path[0] != '/' || !r->payload_sha256 ||
	    r->nheaders > S3SIG_MAX_HEADERS || (r->nheaders && !r->headers))
		return -EINVAL;
	hdr h[S3SIG_MAX_HEADERS];
	int have_host = 0;
	for (size_t i = 0; i < r->nheaders; i++) {
		const char *n = r->headers[i].name;
		size_t len = n ? strlen(n) : 0;
		if (!len || len >= sizeof(h[i].name) || !r->headers[i].value)
			return -EINVAL;
		for (size_t k = 0; k <= len; k++) {
			char c = n[k];
			h[i].name[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		h[i].value = r->headers[i].value;
		if (!strcmp(h[i].name, "host"))
			have_host = 1;
	}
	if (!have_host)
		return -EINVAL;
	qsort(h, r->nheaders, sizeof(h[0]), hdr_cmp);
	for (size_t i = 1; i < r->nheaders; i++)
		if (!strcmp(h[i - 1].name, h[i].name))
			return -EINVAL; /* one value per name: the caller joins repeats itself */

	sb b, s;
	sb_init(&b, out, size);
	sb_init(&s, signed_headers, shsize);
	sb_puts(&b, r->method);
	sb_putc(&b, '\n');
	sb_puts(&b, r->path);
	sb_putc(&b, '\n');
	if (r->nquery) {
		size_t qsz = b.over ? 0 : b.size - b.len;
		int q = s3sig_canonical_query(r->query, r->nquery, b.p + b.len, qsz);
		if (q == -EINVAL || q == -ENOMEM)
			return q;
		if (q < 0)
			b.over = 1;
		else
			b.len += (size_t)q;
	}
	sb_putc(&b, '\n');
	for (size_t i = 0; i < r->nheaders; i++) {
		sb_puts(&b, h[i].name);
		sb_putc(&b, ':');
		sb_trimmed(&b, h[i].value);
		sb_putc(&b, '\n');
		if (i)
			sb_putc(&s, ';');
		sb_puts(&s, h[i].name);
	}
	sb_putc(&b, '\n');
	sb_puts(&b, s.over ? "" : signed_headers);
	sb_putc(&b, '\n');
	sb_puts(&b, r->payload_sha256);
	if (sb_done(&s) < 0) {
		b.over = 1;
		return sb_done(&b);
	}
	return sb_done(&b);
}

static int valid_amz_date(const char *d)
{
	if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
		return 0;
	for (int i = 0; i < 15; i++)
		if (i != 8 && (d[i] < '0' || d[i] > '9'))
			return 0;
	return 1;
}

int s3sig_scope(const char *amz_date, const char *region, char *out, size_t size)
{
	if (!valid_amz_date(amz_date) || !region || !region[0])
		return -EINVAL;
	sb b;
	sb_init(&b, out, size);
	sb_putn(&b, amz_date, 8);
	sb_putc(&b, '/');
	sb_puts(&b, region);
	sb_puts(&b, "/s3/aws4_request");
	return sb_done(&b);
}

int s3sig_string_to_sign(const char *amz_date, const char *scope, const char *canonical_request,
			 char *out, size_t size)
{
	if (!valid_amz_date(amz_date) || !scope || !canonical_request)
		return -EINVAL;
	char h[S3SIG_SHA256_HEX];
	s3sig_sha256_hex(canonical_request, strlen(canonical_request), h);
	sb b;
	sb_init(&b, out, size);
	sb_puts(&b, "AWS4-HMAC-SHA256\n");
	sb_puts(&b, amz_date);
	sb_putc(&b, '\n');
	sb_puts(&b, scope);
	sb_putc(&b, '\n');
	sb_puts(&b, h);
	return sb_done(&b);
}

void s3sig_signing_key(const char *secret, const char *date8, const char *region, uint8_t key[32])
{
	/* "AWS4" + secret: secrets are 40 characters; a longer one is still used whole */
	size_t sl = strlen(secret);
	char *k0 = malloc(sl + 5);
	uint8_t a[32], b[32];
	if (!k0) {
		memset(key, 0, 32); /* an unusable key: the server refuses, nothing leaks */
		return;
	}
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, sl + 1);
	s3sig_hmac(k0, sl + 4, date8, strlen(date8), a);
	OPENSSL_cleanse(k0, sl + 4);
	free(k0);
	s3sig_hmac(a, 32, region, strlen(region), b);
	s3sig_hmac(b, 32, "s3", 2, a);
	s3sig_hmac(a, 32, "aws4_request", 12, key);
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
}

int s3sig_authorization(const char *access_key, const char *secret, const char *region,
			const char *amz_date, const s3sig_req *r, char *out, size_t size)
{
	if (!access_key || !access_key[0] || !secret || !region)
		return -EINVAL;
	char scope[128], sh[1024], date8[9];
	int rc = s3sig_scope(amz_date, region, scope, sizeof(scope));
	if (rc < 0)
		return rc;
	size_t crsz = 16384;
	char *cr = malloc(crsz), *sts = malloc(1024);
	if (!cr || !sts) {
		free(cr);
		free(sts);
		return -ENOMEM;
	}
	rc = s3sig_canonical_request(r, cr, crsz, sh, sizeof(sh));
	if (rc >= 0)
		rc = s3sig_string_to_sign(amz_date, scope, cr, sts, 1024);
	if (rc >= 0) {
		uint8_t key[32], sig[32];
		char hex[S3SIG_SHA256_HEX];
		memcpy(date8, amz_date, 8);
		date8[8] = 0;
		s3sig_signing_key(secret, date8, region, key);
		s3sig_hmac(key, 32, sts, strlen(sts), sig);
		OPENSSL_cleanse(key, sizeof(key));
		s3sig_hex(sig, 32, hex);
		sb b;
		sb_init(&b, out, size);
		sb_puts(&b, "AWS4-HMAC-SHA256 Credential=");
		sb_puts(&b, access_key);
		sb_putc(&b, '/');
		sb_puts(&b, scope);
		sb_puts(&b, ",SignedHeaders=");
		sb_puts(&b, sh);
		sb_puts(&b, ",Signature=");
		sb_puts(&b, hex);
		rc = sb_done(&b);
	}
	free(cr);
	free(sts);
	return rc;
}

int s3sig_target_make(const char *endpoint, const char *bucket, int path_style, const char *key,
		      const char *query, s3sig_target *t)
{
	t->url[0] = t->host[0] = t->path[0] = 0;
	if (!endpoint || !bucket || !bucket[0] || !key)
		return -EINVAL;
	const char *hp = strstr(endpoint, "://");
	if (!hp || !hp[3])
		return -EINVAL;
	size_t schemelen = (size_t)(hp - endpoint) + 3; /* "http://" */
	hp += 3;
	if (strchr(hp, '/') || strchr(hp, '?') || strchr(hp, '@'))
		return -EINVAL; /* the endpoint is scheme://host[:port] and nothing else */

	sb host, path, url;
	sb_init(&host, t->host, sizeof(t->host));
	sb_init(&path, t->path, sizeof(t->path));
	sb_init(&url, t->url, sizeof(t->url));
	if (!path_style) {
		sb_puts(&host, bucket);
		sb_putc(&host, '.');
	}
	sb_puts(&host, hp);
	sb_putc(&path, '/');
	if (path_style) {
		sb_encode(&path, bucket, 0);
		if (key[0])
			sb_putc(&path, '/');
	}
	sb_encode(&path, key, 1);
	sb_putn(&url, endpoint, schemelen);
	sb_puts(&url, t->host);
	sb_puts(&url, t->path);
	if (query && query[0]) {
		sb_putc(&url, '?');
		sb_puts(&url, query);
	}
	if (sb_done(&host) < 0 || sb_done(&path) < 0 || sb_done(&url) < 0) {
		t->url[0] = t->host[0] = t->path[0] = 0;
		return -ENAMETOOLONG;
	}
	return 0;
}
