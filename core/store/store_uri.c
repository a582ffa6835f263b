/* store_uri.c - PostgreSQL connection URIs: shape check, redaction, identity (see store_uri.h).
 *
 * Grammar (libpq): postgresql://[user[:password]@][host[:port][,...]][/dbname][?name=value[&...]]
 * Every part may hold %XX escapes. The authority ends at the first '/' or '?', the userinfo at the
 * last '@' before that, the password at the first ':' of the userinfo. */
#include "store_uri.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static size_t scheme_len(const char *s)
{
	static const char *const schemes[] = {"postgresql://", "postgres://"};
	for (size_t i = 0; i < 2; i++) {
		size_t n = strlen(schemes[i]);
		if (!strncasecmp(s, schemes[i], n))
			return n;
	}
	return 0;
}

int store_uri_is_pg(const char *s)
{
	return s && scheme_len(s) > 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode [p, p+n) into out (size bytes, NUL-terminated). -EINVAL on a bad escape, an escaped NUL
 * or a result that does not fit. */
static int decode(const char *p, size_t n, char *out, size_t size)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -EINVAL;
			int h = hexval(p[i + 1]), l = hexval(p[i + 2]);
			if (h < 0 || l < 0 || (h == 0 && l == 0))
				return -EINVAL;
			c = (char)(h * 16 + l);
			i += 2;
		}
		if (k + 1 >= size)
			return -EINVAL;
		out[k++] = c;
	}
	out[k] = 0;
	return 0;
}

/* Append [p, p+n) to out at *k (size bytes). -EINVAL when it does not fit. */
static int put(char *out, size_t size, size_t *k, const char *p, size_t n)
{
	if (*k + n + 1 > size)
		return -EINVAL;
	memcpy(out + *k, p, n);
	*k += n;
	out[*k] = 0;
	return 0;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

int store_uri_parse(const char *s, store_uri *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	size_t sl = s ? scheme_len(s) : 0;
	if (!sl) {
		say(err, errlen, "not a PostgreSQL URI (postgresql://... or postgres://...)");
		return -EINVAL;
	}
	size_t len = strlen(s);
	if (len >= STORE_URI_MAX) {
		say(err, errlen, "PostgreSQL URI longer than %d bytes", STORE_URI_MAX - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c == 0x7f) {
			say(err, errlen, "PostgreSQL URI holds a space or control character at byte %zu",
			    i);
			return -EINVAL;
		}
	}
	const char *a = s + sl;                       /* authority */
	size_t alen = strcspn(a, "/?");
	const char *at = NULL;
	for (size_t i = 0; i < alen; i++)
		if (a[i] == '@')
			at = a + i;
	size_t k = 0;
	int r = put(out->redacted, sizeof(out->redacted), &k, s, sl);
	const char *hosts = a;
	if (at) {
		size_t ulen = (size_t)(at - a);
		const char *colon = memchr(a, ':', ulen);
		size_t nlen = colon ? (size_t)(colon - a) : ulen;
		if (decode(a, nlen, out->user, sizeof(out->user)) < 0) {
			say(err, errlen, "PostgreSQL URI: bad user name (percent escapes, length)");
			return -EINVAL;
		}
		if (colon) {
			char pw[STORE_URI_MAX];
			if (decode(colon + 1, ulen - nlen - 1, pw, sizeof(pw)) < 0) {
				say(err, errlen, "PostgreSQL URI: bad password (percent escapes, length)");
				return -EINVAL;
			}
			out->has_password = 1;
			memset(pw, 0, sizeof(pw));
		}
		if (r == 0)
			r = put(out->redacted, sizeof(out->redacted), &k, a, nlen);
		if (r == 0 && colon)
			r = put(out->redacted, sizeof(out->redacted), &k, ":****", 5);
		if (r == 0)
			r = put(out->redacted, sizeof(out->redacted), &k, "@", 1);
		hosts = at + 1;
	}
	size_t hlen = (size_t)(a + alen - hosts);
	char tmp[1024];
	if (hlen >= sizeof(out->hosts) || decode(hosts, hlen, tmp, sizeof(tmp)) < 0) {
		say(err, errlen, "PostgreSQL URI: bad host list (percent escapes, length)");
		return -EINVAL;
	}
	memcpy(out->hosts, hosts, hlen);
	out->hosts[hlen] = 0;
	if (r == 0)
		r = put(out->redacted, sizeof(out->redacted), &k, hosts, hlen);
	const char *p = a + alen;
	if (*p == '/') {
		size_t dlen = strcspn(p + 1, "?");
		if (decode(p + 1, dlen, out->dbname, sizeof(out->dbname)) < 0) {
			say(err, errlen, "PostgreSQL URI: bad database name (percent escapes, length)");
			return -EINVAL;
		}
		if (r == 0)
			r = put(out->redacted, sizeof(out->redacted), &k, p, dlen + 1);
		p += dlen + 1;
	}
	if (*p == '?') {
		if (r == 0)
			r = put(out->redacted, sizeof(out->redacted), &k, "?", 1);
		p++;
		int first = 1;
		unsigned idx = 0;
		while (*p) {
			idx++;
			size_t plen = strcspn(p, "&");
			const char *eq = memchr(p, '=', plen);
			if (!eq || eq == p) {
				say(err, errlen, "PostgreSQL URI: parameter %u is not name=value", idx);
				return -EINVAL;
			}
			char name[64], val[STORE_URI_MAX];
			size_t nl = (size_t)(eq - p);
			if (decode(p, nl, name, sizeof(name)) < 0 ||
			    decode(eq + 1, plen - nl - 1, val, sizeof(val)) < 0) {
				say(err, errlen, "PostgreSQL URI: bad parameter (percent escapes, length)");
				return -EINVAL;
			}
			int secret = !strcmp(name, "password");
			out->has_password |= secret;
			if (r == 0 && !first)
				r = put(out->redacted, sizeof(out->redacted), &k, "&", 1);
			if (r == 0)
				r = put(out->redacted, sizeof(out->redacted), &k, p, nl + 1);
			if (r == 0)
				r = secret ? put(out->redacted, sizeof(out->redacted), &k, "****", 4)
					   : put(out->redacted, sizeof(out->redacted), &k, eq + 1,
						 plen - nl - 1);
			memset(val, 0, sizeof(val));
			first = 0;
			p += plen;
			if (*p == '&') {
				p++;
				if (!*p) {
					say(err, errlen, "PostgreSQL URI: empty parameter at the end");
					return -EINVAL;
				}
			}
		}
	} else if (*p) {
		say(err, errlen, "PostgreSQL URI: unexpected text after the database name");
		return -EINVAL;
	}
	if (r < 0) {
		say(err, errlen, "PostgreSQL URI too long");
		return -EINVAL;
	}
	out->id = fnv1a(out->redacted);
	return 0;
}

void store_uri_scrub(char *s)
{
	size_t sl = s ? scheme_len(s) : 0;
	if (!sl)
		return;
	char *a = s + sl;
	size_t alen = strcspn(a, "/?");
	char *at = NULL;
	for (size_t i = 0; i < alen; i++)
		if (a[i] == '@')
			at = a + i;
	if (at) {
		char *colon = memchr(a, ':', (size_t)(at - a));
		if (colon)
			for (char *q = colon + 1; q < at; q++)
				*q = 'x';
	}
	char *q = strchr(a, '?');
	while (q && *q) {
		q++;
		size_t plen = strcspn(q, "&");
		char *eq = memchr(q, '=', plen);
		char name[64];
		if (eq && decode(q, (size_t)(eq - q), name, sizeof(name)) == 0 &&
		    !strcmp(name, "password"))
			memset(eq + 1, 'x', plen - (size_t)(eq - q) - 1);
		q += plen;
	}
}
