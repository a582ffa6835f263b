/* s3_uri.c - s3:// URIs into an s3_cfg and back (s3_uri_is, s3_uri_parse, s3_cfg_describe; see
 * s3.h). The credentials a URI names are loaded in s3_creds.c.
 */
#include "s3_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- URIs ----------------------------------------------------------------------------------- */

int s3_uri_is(const char *s)
{
	return s && !strncasecmp(s, "s3://", 5);
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

/* Percent-decode n bytes into out; control characters (also escaped ones) are refused. */
static int pct_decode(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= n)
				return -EINVAL;
			h = hexval(s[i + 1]);
			l = hexval(s[i + 2]);
			if (h < 0 || l < 0)
				return -EINVAL;
			c = (unsigned char)(h * 16 + l);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f)
			return -EINVAL;
		if (o + 1 >= size)
			return -ENAMETOOLONG;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return 0;
}

int s3_bucket_ok(const char *b)
{
	size_t n = strlen(b);
	if (n < 3 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
			return 0;
	}
	/* starts and ends with a letter or digit, no empty label: what S3 and DNS accept */
	if (b[0] == '.' || b[0] == '-' || b[n - 1] == '.' || b[n - 1] == '-')
		return 0;
	return !strstr(b, "..");
}

static int region_ok(const char *r)
{
	size_t n = strlen(r);
	if (n < 1 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
			return 0;
	return 1;
}

static int profile_ok(const char *p)
{
	size_t n = strlen(p);
	if (n < 1 || n >= 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)p[i]) || p[i] == '_' || p[i] == '-' || p[i] == '.'))
			return 0;
	return 1;
}

/* endpoint "http[s]://host[:port][/]" into its normal form (lower-case scheme and host, no
 * trailing slash); *ip: the host is an IP literal; *port: a port is written. */
static int endpoint_norm(const char *in, char *out, size_t size, int *ip, int *port, int *local,
			 char *err, size_t errlen)
{
	const char *rest;
	const char *scheme;
	if (!strncasecmp(in, "http://", 7)) {
		scheme = "http://";
		rest = in + 7;
	} else if (!strncasecmp(in, "https://", 8)) {
		scheme = "https://";
		rest = in + 8;
	} else {
		s3_say(err, errlen, "s3 URI: endpoint must start with http:// or https://");
		return -EINVAL;
	}
	size_t n = strlen(rest);
	if (n && rest[n - 1] == '/')
		n--;
	char hostport[300];
	if (n == 0 || n >= sizeof(hostport)) {
		s3_say(err, errlen, "s3 URI: endpoint has no host, or a host that is too long");
		return -EINVAL;
	}
	memcpy(hostport, rest, n);
	hostport[n] = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)hostport[i];
		if (c == '@') {
			s3_say(err, errlen, "s3 URI: user info in the endpoint (credentials never go in a "
					    "URI: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
					    "credentials=FILE)");
			return -EINVAL;
		}
		if (c == '/' || c == '?' || c == '#') {
			s3_say(err, errlen, "s3 URI: endpoint must be scheme://host[:port] (no path or "
					    "query)");
			return -EINVAL;
		}
	}
	*ip = *port = *local = 0;
	char host[300];
	const char *pp = NULL;
	if (hostport[0] == '[') {
		char *close = strchr(hostport, ']');
		if (!close) {
			s3_say(err, errlen, "s3 URI: endpoint: unterminated [IPv6] host");
			return -EINVAL;
		}
		size_t hl = (size_t)(close - hostport - 1);
		memcpy(host, hostport + 1, hl);
		host[hl] = 0;
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			s3_say(err, errlen, "s3 URI: endpoint: bad IPv6 address");
			return -EINVAL;
		}
		*ip = 1;
		if (close[1] == ':')
			pp = close + 2;
		else if (close[1]) {
			s3_say(err, errlen, "s3 URI: endpoint: junk after the [IPv6] host");
			return -EINVAL;
		}
	} else {
		char *colon = strchr(hostport, ':');
		size_t hl = colon ? (size_t)(colon - hostport) : n;
		memcpy(host, hostport, hl);
		host[hl] = 0;
		if (colon)
			pp = colon + 1;
		if (!hl) {
			s3_say(err, errlen, "s3 URI: endpoint has no host");
			return -EINVAL;
		}
		for (size_t i = 0; i < hl; i++) {
			char c = host[i];
			if (!(isalnum((unsigned char)c) || c == '.' || c == '-')) {
				s3_say(err, errlen, "s3 URI: endpoint host has a character not allowed "
						    "in a host name");
				return -EINVAL;
			}
			host[i] = (char)tolower((unsigned char)c);
			hostport[i] = host[i];
		}
		struct in_addr a4;
		*ip = inet_pton(AF_INET, host, &a4) == 1;
		*local = !strcmp(host, "localhost");
	}
	if (pp) {
		size_t pl = strlen(pp);
		long v = 0;
		if (pl == 0 || pl > 5) {
			s3_say(err, errlen, "s3 URI: endpoint: bad port");
			return -EINVAL;
		}
		for (size_t i = 0; i < pl; i++) {
			if (pp[i] < '0' || pp[i] > '9') {
				s3_say(err, errlen, "s3 URI: endpoint: bad port");
				return -EINVAL;
			}
			v = v * 10 + (pp[i] - '0');
		}
		if (v < 1 || v > 65535) {
			s3_say(err, errlen, "s3 URI: endpoint: port out of range");
			return -EINVAL;
		}
		*port = 1;
	}
	if ((size_t)snprintf(out, size, "%s%s", scheme, hostport) >= size) {
		s3_say(err, errlen, "s3 URI: endpoint too long");
		return -EINVAL;
	}
	return 0;
}

/* The prefix: decoded, without leading or trailing '/', no empty, "." or ".." segment (servers
 * and proxies normalise those away, so the keys would not be where they were written). */
static int prefix_norm(const char *s, size_t n, char *out, size_t size, char *err, size_t errlen)
{
	char tmp[S3_URI_MAX];
	if (pct_decode(s, n, tmp, sizeof(tmp))) {
		s3_say(err, errlen, "s3 URI: bad %%-escape or control character in the prefix");
		return -EINVAL;
	}
	char *p = tmp;
	while (*p == '/')
		p++;
	size_t l = strlen(p);
	while (l && p[l - 1] == '/')
		p[--l] = 0;
	if (l >= size) {
		s3_say(err, errlen, "s3 URI: prefix longer than %zu bytes", size - 1);
		return -EINVAL;
	}
	for (char *seg = p; l;) {
		char *sl = strchr(seg, '/');
		size_t sn = sl ? (size_t)(sl - seg) : strlen(seg);
		if (sn == 0 || (sn == 1 && seg[0] == '.') || (sn == 2 && seg[0] == '.' && seg[1] == '.')) {
			s3_say(err, errlen, "s3 URI: empty, '.' or '..' segment in the prefix");
			return -EINVAL;
		}
		if (!sl)
			break;
		seg = sl + 1;
	}
	memcpy(out, p, l + 1);
	return 0;
}

int s3_uri_parse(const char *uri, s3_cfg *cfg, char *err, size_t errlen)
{
	s3_log_fn log = cfg->log;
	void *log_ctx = cfg->log_ctx;
	memset(cfg, 0, sizeof(*cfg));
	cfg->log = log;
	cfg->log_ctx = log_ctx;
	s3_say(err, errlen, "%s", "");
	if (!s3_uri_is(uri)) {
		s3_say(err, errlen, "not an s3:// URI");
		return -EINVAL;
	}
	if (strlen(uri) >= S3_URI_MAX) {
		s3_say(err, errlen, "s3 URI longer than %d bytes", S3_URI_MAX - 1);
		return -EINVAL;
	}
	if (strchr(uri, '#')) {
		s3_say(err, errlen, "s3 URI: a fragment (#) is not allowed");
		return -EINVAL;
	}
	const char *a = uri + 5;
	size_t alen = strcspn(a, "/?");
	if (memchr(a, '@', alen)) {
		s3_say(err, errlen, "s3 URI: user info (key:secret@) is refused: credentials never go in "
				    "a URI; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
				    "credentials=FILE");
		return -EINVAL;
	}
	if (alen >= sizeof(cfg->bucket) || s3_setstr(cfg->bucket, sizeof(cfg->bucket), a, alen) ||
	    !s3_bucket_ok(cfg->bucket)) {
		s3_say(err, errlen, "s3 URI: bad bucket name (3..63 characters: lower-case letters, "
				    "digits, dots, hyphens; starts and ends with a letter or digit)");
		return -EINVAL;
	}
	const char *p = a + alen;
	const char *q = strchr(p, '?');
	size_t plen = q ? (size_t)(q - p) : strlen(p);
	int rc = prefix_norm(p, plen, cfg->prefix, sizeof(cfg->prefix), err, errlen);
	if (rc)
		return rc;

	char endpoint[600] = "", style[16] = "";
	int seen[5] = {0};
	static const char *const names[5] = {"endpoint", "region", "style", "credentials",
					     "profile"};
	while (q && *q) {
		q++; /* '?' or '&' */
		size_t n = strcspn(q, "&");
		const char *eq = memchr(q, '=', n);
		if (n == 0) {
			q += n;
			continue; /* "a&&b", a trailing '&' */
		}
		if (!eq) {
			s3_say(err, errlen, "s3 URI: parameter without a value (name=value)");
			return -EINVAL;
		}
		char name[32], val[1100];
		if (pct_decode(q, (size_t)(eq - q), name, sizeof(name))) {
			s3_say(err, errlen, "s3 URI: unknown parameter (known: endpoint, region, style, "
					    "credentials, profile)");
			return -EINVAL;
		}
		if (pct_decode(eq + 1, n - (size_t)(eq - q) - 1, val, sizeof(val))) {
			s3_say(err, errlen, "s3 URI: parameter %s: bad %%-escape, control character or "
					    "too long", name);
			return -EINVAL;
		}
		int k = -1;
		for (int i = 0; i < 5; i++)
			if (!strcmp(name, names[i]))
				k = i;
		if (k < 0) {
			s3_say(err, errlen, "s3 URI: unknown parameter (known: endpoint, region, style, "
					    "credentials, profile)");
			return -EINVAL;
		}
		if (seen[k]++) {
			s3_say(err, errlen, "s3 URI: parameter %s given twice", names[k]);
			return -EINVAL;
		}
		int bad = 0;
		switch (k) {
		case 0:
			bad = s3_setstr(endpoint, sizeof(endpoint), val, strlen(val));
			break;
		case 1:
			bad = s3_setstr(cfg->region, sizeof(cfg->region), val, strlen(val)) ||
			      !region_ok(cfg->region);
			break;
		case 2:
			bad = s3_setstr(style, sizeof(style), val, strlen(val)) ||
			      (strcmp(style, "path") && strcmp(style, "virtual"));
			break;
		case 3:
			bad = s3_setstr(cfg->cred_file, sizeof(cfg->cred_file), val, strlen(val)) ||
			      !val[0];
			break;
		default:
			bad = s3_setstr(cfg->profile, sizeof(cfg->profile), val, strlen(val)) ||
			      !profile_ok(cfg->profile);
			break;
		}
		if (bad) {
			s3_say(err, errlen, "s3 URI: bad value for %s%s", names[k],
			       k == 2 ? " (path or virtual)" : "");
			return -EINVAL;
		}
		q += n;
	}
	if (!cfg->region[0])
		strcpy(cfg->region, "us-east-1");
	int ip = 0, port = 0, local = 0;
	if (!endpoint[0])
		snprintf(endpoint, sizeof(endpoint), "https://s3.%s.amazonaws.com", cfg->region);
	rc = endpoint_norm(endpoint, cfg->endpoint, sizeof(cfg->endpoint), &ip, &port, &local, err,
			   errlen);
	if (rc)
		return rc;
	if (!style[0])
		cfg->path_style = ip || port || local;
	else
		cfg->path_style = !strcmp(style, "path");
	if (!cfg->path_style && ip) {
		s3_say(err, errlen, "s3 URI: style=virtual needs a host name, not an IP address");
		return -EINVAL;
	}
	cfg->retry_s = 0;
	return 0;
}

void s3_cfg_describe(const s3_cfg *cfg, char *buf, size_t size)
{
	if (!size)
		return;
	/* the prefix %-encoded as in a key's path: the description parses back to the same place */
	char pfx[3 * sizeof(cfg->prefix)];
	if (s3sig_uri_encode(cfg->prefix, 1, pfx, sizeof(pfx)) < 0)
		pfx[0] = 0;
	snprintf(buf, size, "s3://%s%s%s?endpoint=%s&region=%s&style=%s", cfg->bucket,
		 pfx[0] ? "/" : "", pfx, cfg->endpoint, cfg->region,
		 cfg->path_style ? "path" : "virtual");
}
