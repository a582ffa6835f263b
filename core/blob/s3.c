/* s3.c - the S3 client (see s3.h): URIs and credentials, a pool of curl connections, signed
 * requests with retries, single and multipart uploads, ranged reads, listings.
 *
 * Threads and locks:
 * - An s3 handle is immutable after s3_new except for: the connection pool (pool_mu guards
 *   pool[] and npool), the curl share (DNS cache and TLS sessions; curl takes share_mu[kind]
 *   through the lock callbacks) and the counters (atomics). Any thread may call any function.
 * - A call owns the curl easy handle it took from the pool until it gives it back; the handle
 *   keeps its live connection, so the pool is the connection pool. Connections themselves are
 *   not put in the share: curl does not support a shared connection cache used by concurrent
 *   threads (CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT).
 * - s3_put_file's multipart upload runs up to MPU_THREADS workers (the caller and threads it
 *   starts and joins before returning); they share one part counter and the first error under
 *   mpu.mu.
 *
 * Knobs for tests and benchmarks, read once in s3_new (the defaults are what S3 users expect):
 *   TPDEFS_S3_RETRY_S      total retry time of one call when cfg->retry_s <= 0 (default 30)
 *   TPDEFS_S3_SINGLE_MAX   largest s3_put_file sent as one PUT (default 64 MiB)
 *   TPDEFS_S3_PART_SIZE    multipart part size (default 16 MiB, at least 5 MiB: S3's minimum)
 *   TPDEFS_S3_LIST_MAX     keys / uploads per listing page (1..1000, default 1000)
 */
#include "s3.h"
#include "s3_sign.h"
#include "s3_xml.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX 16
#define DEFAULT_RETRY_S 30.0
#define SINGLE_PUT_MAX (64ull << 20)
#define PART_SIZE (16ull << 20)
#define PART_FLOOR (5ull << 20) /* S3 refuses smaller parts, but for the last */
#define MAX_PARTS 10000
#define MPU_THREADS 4
#define LIST_MAX 1000
#define CONNECT_TIMEOUT_MS 5000L
/* A transfer slower than LOW_SPEED_BYTES/s for LOW_SPEED_S seconds is stalled: abort, retry. */
#define LOW_SPEED_BYTES 1024L
#define LOW_SPEED_S 20L
#define BACKOFF_BASE_S 0.1
#define BACKOFF_CAP_S 2.0
#define ERRBODY_MAX 8192
#define HASH_CHUNK (1u << 20)
#define CRED_FILE_MAX (1u << 20)

struct s3 {
	s3_cfg cfg;
	char access_key[256];
	char secret[256];
	char token[4096];
	double retry_s;
	uint64_t single_max, part_size;
	int list_max;
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_mu;
	CURL *pool[POOL_MAX];
	int npool;
	_Atomic uint64_t gets, puts, heads, deletes, lists, retries, failures, bytes_in, bytes_out;
};

/* ---- small helpers -------------------------------------------------------------------------- */

static void say(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void logf_(const s3 *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const s3 *c, const char *fmt, ...)
{
	if (!c->cfg.log)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->cfg.log(c->cfg.log_ctx, line);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Copy s into a field; -ENAMETOOLONG when it does not fit. */
static int setstr(char *dst, size_t size, const char *s, size_t n)
{
	if (n >= size)
		return -ENAMETOOLONG;
	memcpy(dst, s, n);
	dst[n] = 0;
	return 0;
}

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

static int bucket_ok(const char *b)
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
		say(err, errlen, "s3 URI: endpoint must start with http:// or https://");
		return -EINVAL;
	}
	size_t n = strlen(rest);
	if (n && rest[n - 1] == '/')
		n--;
	char hostport[300];
	if (n == 0 || n >= sizeof(hostport)) {
		say(err, errlen, "s3 URI: endpoint has no host, or a host that is too long");
		return -EINVAL;
	}
	memcpy(hostport, rest, n);
	hostport[n] = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)hostport[i];
		if (c == '@') {
			say(err, errlen, "s3 URI: user info in the endpoint (credentials never go in a "
					 "URI: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
					 "credentials=FILE)");
			return -EINVAL;
		}
		if (c == '/' || c == '?' || c == '#') {
			say(err, errlen, "s3 URI: endpoint must be scheme://host[:port] (no path or "
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
			say(err, errlen, "s3 URI: endpoint: unterminated [IPv6] host");
			return -EINVAL;
		}
		size_t hl = (size_t)(close - hostport - 1);
		memcpy(host, hostport + 1, hl);
		host[hl] = 0;
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			say(err, errlen, "s3 URI: endpoint: bad IPv6 address");
			return -EINVAL;
		}
		*ip = 1;
		if (close[1] == ':')
			pp = close + 2;
		else if (close[1]) {
			say(err, errlen, "s3 URI: endpoint: junk after the [IPv6] host");
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
			say(err, errlen, "s3 URI: endpoint has no host");
			return -EINVAL;
		}
		for (size_t i = 0; i < hl; i++) {
			char c = host[i];
			if (!(isalnum((unsigned char)c) || c == '.' || c == '-')) {
				say(err, errlen, "s3 URI: endpoint host has a character not allowed "
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
			say(err, errlen, "s3 URI: endpoint: bad port");
			return -EINVAL;
		}
		for (size_t i = 0; i < pl; i++) {
			if (pp[i] < '0' || pp[i] > '9') {
				say(err, errlen, "s3 URI: endpoint: bad port");
				return -EINVAL;
			}
			v = v * 10 + (pp[i] - '0');
		}
		if (v < 1 || v > 65535) {
			say(err, errlen, "s3 URI: endpoint: port out of range");
			return -EINVAL;
		}
		*port = 1;
	}
	if ((size_t)snprintf(out, size, "%s%s", scheme, hostport) >= size) {
		say(err, errlen, "s3 URI: endpoint too long");
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
		say(err, errlen, "s3 URI: bad %%-escape or control character in the prefix");
		return -EINVAL;
	}
	char *p = tmp;
	while (*p == '/')
		p++;
	size_t l = strlen(p);
	while (l && p[l - 1] == '/')
		p[--l] = 0;
	if (l >= size) {
		say(err, errlen, "s3 URI: prefix longer than %zu bytes", size - 1);
		return -EINVAL;
	}
	for (char *seg = p; l;) {
		char *sl = strchr(seg, '/');
		size_t sn = sl ? (size_t)(sl - seg) : strlen(seg);
		if (sn == 0 || (sn == 1 && seg[0] == '.') || (sn == 2 && seg[0] == '.' && seg[1] == '.')) {
			say(err, errlen, "s3 URI: empty, '.' or '..' segment in the prefix");
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
	say(err, errlen, "%s", "");
	if (!s3_uri_is(uri)) {
		say(err, errlen, "not an s3:// URI");
		return -EINVAL;
	}
	if (strlen(uri) >= S3_URI_MAX) {
		say(err, errlen, "s3 URI longer than %d bytes", S3_URI_MAX - 1);
		return -EINVAL;
	}
	if (strchr(uri, '#')) {
		say(err, errlen, "s3 URI: a fragment (#) is not allowed");
		return -EINVAL;
	}
	const char *a = uri + 5;
	size_t alen = strcspn(a, "/?");
	if (memchr(a, '@', alen)) {
		say(err, errlen, "s3 URI: user info (key:secret@) is refused: credentials never go in "
				 "a URI; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
				 "credentials=FILE");
		return -EINVAL;
	}
	if (alen >= sizeof(cfg->bucket) || setstr(cfg->bucket, sizeof(cfg->bucket), a, alen) ||
	    !bucket_ok(cfg->bucket)) {
		say(err, errlen, "s3 URI: bad bucket name (3..63 characters: lower-case letters, "
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
			say(err, errlen, "s3 URI: parameter without a value (name=value)");
			return -EINVAL;
		}
		char name[32], val[1100];
		if (pct_decode(q, (size_t)(eq - q), name, sizeof(name))) {
			say(err, errlen, "s3 URI: unknown parameter (known: endpoint, region, style, "
					 "credentials, profile)");
			return -EINVAL;
		}
		if (pct_decode(eq + 1, n - (size_t)(eq - q) - 1, val, sizeof(val))) {
			say(err, errlen, "s3 URI: parameter %s: bad %%-escape, control character or "
					 "too long", name);
			return -EINVAL;
		}
		int k = -1;
		for (int i = 0; i < 5; i++)
			if (!strcmp(name, names[i]))
				k = i;
		if (k < 0) {
			say(err, errlen, "s3 URI: unknown parameter (known: endpoint, region, style, "
					 "credentials, profile)");
			return -EINVAL;
		}
		if (seen[k]++) {
			say(err, errlen, "s3 URI: parameter %s given twice", names[k]);
			return -EINVAL;
		}
		int bad = 0;
		switch (k) {
		case 0:
			bad = setstr(endpoint, sizeof(endpoint), val, strlen(val));
			break;
		case 1:
			bad = setstr(cfg->region, sizeof(cfg->region), val, strlen(val)) ||
			      !region_ok(cfg->region);
			break;
		case 2:
			bad = setstr(style, sizeof(style), val, strlen(val)) ||
			      (strcmp(style, "path") && strcmp(style, "virtual"));
			break;
		case 3:
			bad = setstr(cfg->cred_file, sizeof(cfg->cred_file), val, strlen(val)) ||
			      !val[0];
			break;
		default:
			bad = setstr(cfg->profile, sizeof(cfg->profile), val, strlen(val)) ||
			      !profile_ok(cfg->profile);
			break;
		}
		if (bad) {
			say(err, errlen, "s3 URI: bad value for %s%s", names[k],
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
		say(err, errlen, "s3 URI: style=virtual needs a host name, not an IP address");
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

/* ---- credentials ---------------------------------------------------------------------------- */

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = 0;
	return s;
}

/* An AWS-style credentials file: [name] or [profile name] sections of key = value lines. */
static int creds_from_file(s3 *c, const char *path, const char *profile, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		say(err, errlen, "s3: credentials file %s: %s", path, strerror(e));
		return -EACCES;
	}
	char *buf = malloc(CRED_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, CRED_FILE_MAX - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			free(buf);
			say(err, errlen, "s3: credentials file %s: %s", path, strerror(e));
			return -EACCES;
		}
		if (r == 0 || (n += (size_t)r) == CRED_FILE_MAX)
			break;
	}
	close(fd);
	buf[n] = 0;
	int in = 0, rc = 0;
	for (char *line = buf, *next; line && !rc; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		char *l = trim(line);
		if (!*l || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			char *e = strchr(l, ']');
			if (!e)
				continue;
			*e = 0;
			char *name = trim(l + 1);
			if (!strncmp(name, "profile ", 8))
				name = trim(name + 8);
			in = !strcmp(name, profile);
			continue;
		}
		char *eq = strchr(l, '=');
		if (!in || !eq)
			continue;
		*eq = 0;
		char *k = trim(l), *v = trim(eq + 1);
		if (!strcmp(k, "aws_access_key_id"))
			rc = setstr(c->access_key, sizeof(c->access_key), v, strlen(v));
		else if (!strcmp(k, "aws_secret_access_key"))
			rc = setstr(c->secret, sizeof(c->secret), v, strlen(v));
		else if (!strcmp(k, "aws_session_token"))
			rc = setstr(c->token, sizeof(c->token), v, strlen(v));
	}
	OPENSSL_cleanse(buf, n);
	free(buf);
	if (rc || !c->access_key[0] || !c->secret[0]) {
		say(err, errlen, "s3: credentials file %s: no profile [%s] with aws_access_key_id "
				 "and aws_secret_access_key", path, profile);
		return -EACCES;
	}
	return 0;
}

static int creds_load(s3 *c, char *err, size_t errlen)
{
	const char *profile = c->cfg.profile[0] ? c->cfg.profile : getenv("AWS_PROFILE");
	if (!profile || !profile[0])
		profile = "default";
	if (c->cfg.cred_file[0])
		return creds_from_file(c, c->cfg.cred_file, profile, err, errlen);
	const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
	const char *tk = getenv("AWS_SESSION_TOKEN");
	if (!ak || !ak[0] || !sk || !sk[0]) {
		say(err, errlen, "s3: no credentials: set AWS_ACCESS_KEY_ID and "
				 "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if any), or name a "
				 "file with credentials=FILE in the URI");
		return -EACCES;
	}
	if (setstr(c->access_key, sizeof(c->access_key), ak, strlen(ak)) ||
	    setstr(c->secret, sizeof(c->secret), sk, strlen(sk)) ||
	    (tk && setstr(c->token, sizeof(c->token), tk, strlen(tk)))) {
		say(err, errlen, "s3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or "
				 "AWS_SESSION_TOKEN is too long");
		return -EACCES;
	}
	return 0;
}

/* ---- the handle and its connections --------------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	s3 *c = ud;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	s3 *c = ud;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_mu[data]);
}

static uint64_t env_u64(const char *name, uint64_t def, uint64_t lo, uint64_t hi)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return def;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return def;
	return v;
}

int s3_new(const s3_cfg *cfg, s3 **out, char *err, size_t errlen)
{
	*out = NULL;
	say(err, errlen, "%s", "");
	if (!cfg || !cfg->endpoint[0] || !bucket_ok(cfg->bucket) || !cfg->region[0]) {
		say(err, errlen, "s3: incomplete configuration (endpoint, bucket, region)");
		return -EINVAL;
	}
	/* curl's global init is thread-safe in the curl we build with (>= 7.84) and counted */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		say(err, errlen, "s3: curl_global_init failed");
		return -ENOMEM;
	}
	s3 *c = calloc(1, sizeof(*c));
	if (!c) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	c->cfg = *cfg;
	int rc = creds_load(c, err, errlen);
	if (rc) {
		OPENSSL_cleanse(c, sizeof(*c));
		free(c);
		curl_global_cleanup();
		return rc;
	}
	c->retry_s = cfg->retry_s;
	if (c->retry_s <= 0) {
		const char *e = getenv("TPDEFS_S3_RETRY_S");
		char *end = NULL;
		double v = e ? strtod(e, &end) : 0;
		c->retry_s = (e && *e && end && !*end && v > 0 && v < 86400) ? v : DEFAULT_RETRY_S;
	}
	c->single_max = env_u64("TPDEFS_S3_SINGLE_MAX", SINGLE_PUT_MAX, 1, 5ull << 30);
	c->part_size = env_u64("TPDEFS_S3_PART_SIZE", PART_SIZE, PART_FLOOR, 5ull << 30);
	c->list_max = (int)env_u64("TPDEFS_S3_LIST_MAX", LIST_MAX, 1, LIST_MAX);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_mu[i], NULL);
	pthread_mutex_init(&c->pool_mu, NULL);
	c->share = curl_share_init();
	if (!c->share || curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)) {
		say(err, errlen, "s3: cannot set up the curl share");
		s3_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void s3_free(s3 *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	if (c->share)
		curl_share_cleanup(c->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_mu[i]);
	pthread_mutex_destroy(&c->pool_mu);
	OPENSSL_cleanse(c->secret, sizeof(c->secret));
	OPENSSL_cleanse(c->token, sizeof(c->token));
	free(c);
	curl_global_cleanup();
}

const s3_cfg *s3_config(const s3 *c)
{
	return &c->cfg;
}

void s3_stats_get(s3 *c, s3_stats *st)
{
	st->gets = atomic_load(&c->gets);
	st->puts = atomic_load(&c->puts);
	st->heads = atomic_load(&c->heads);
	st->deletes = atomic_load(&c->deletes);
	st->lists = atomic_load(&c->lists);
	st->retries = atomic_load(&c->retries);
	st->failures = atomic_load(&c->failures);
	st->bytes_in = atomic_load(&c->bytes_in);
	st->bytes_out = atomic_load(&c->bytes_out);
}

static CURL *conn_get(s3 *c)
{
	CURL *h = NULL;
	pthread_mutex_lock(&c->pool_mu);
	if (c->npool > 0)
		h = c->pool[--c->npool];
	pthread_mutex_unlock(&c->pool_mu);
	return h ? h : curl_easy_init();
}

static void conn_put(s3 *c, CURL *h)
{
	pthread_mutex_lock(&c->pool_mu);
	if (c->npool < POOL_MAX) {
		c->pool[c->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_mu);
	if (h)
		curl_easy_cleanup(h);
}

/* ---- one request ---------------------------------------------------------------------------- */

enum { SRC_NONE, SRC_MEM, SRC_FD };
enum { SINK_NONE, SINK_GROW, SINK_BUF, SINK_FD };
enum { KIND_GET, KIND_PUT, KIND_HEAD, KIND_DELETE, KIND_LIST };

typedef struct rq {
	/* the request */
	char op[48];         /* for the log: "GET", "PUT part 3/5", ... */
	const char *method;  /* "GET", "PUT", "POST", "DELETE", "HEAD" */
	int kind;
	char key[1100];      /* full key (prefix applied), "" for the bucket */
	s3sig_kv q[6];
	size_t nq;
	char range[64];
	const char *ctype;   /* Content-Type for a body, or NULL */
	int complete;        /* CompleteMultipartUpload: a 200 can carry an <Error> */
	int src;
	const char *mem;
	int fd;
	uint64_t off, len;   /* body: len bytes from mem or at off in fd */
	char sha[S3SIG_SHA256_HEX];
	int sink;
	size_t grow_max;     /* SINK_GROW: largest reply kept */
	char *buf;           /* SINK_BUF: exactly blen bytes wanted */
	size_t blen;
	uint64_t bskip;      /* SINK_BUF: the range's start, dropped when a 200 ignores Range */
	int out_fd;          /* SINK_FD */

	/* the current try */
	CURL *h;
	uint64_t sent;
	char *grow;
	size_t glen, gcap;
	size_t bgot;
	uint64_t skipped;
	uint64_t out_got;
	int enough;          /* SINK_BUF with a 200: everything wanted is in, the rest dropped */
	int local_err;       /* our callbacks failed (-errno): final */
	char errbody[ERRBODY_MAX + 1];
	size_t elen;

	/* the outcome */
	long status;
	curl_off_t clen;     /* Content-Length of the reply, -1 when unknown */
	char etag[256];
	char code[128];      /* S3 <Code> of an error reply */
	int tries;
} rq;

static void rq_init(rq *r, const char *method, int kind)
{
	memset(r, 0, sizeof(*r));
	r->method = method;
	r->kind = kind;
	r->fd = -1;
	r->out_fd = -1;
	snprintf(r->op, sizeof(r->op), "%s", method);
	strcpy(r->sha, S3SIG_EMPTY_SHA256);
}

static void rq_done(rq *r)
{
	free(r->grow);
	r->grow = NULL;
	r->glen = r->gcap = 0;
}

static int rq_key(const s3 *c, rq *r, const char *key)
{
	int n;
	if (!key)
		n = snprintf(r->key, sizeof(r->key), "%s", "");
	else if (c->cfg.prefix[0])
		n = snprintf(r->key, sizeof(r->key), "%s/%s", c->cfg.prefix, key);
	else
		n = snprintf(r->key, sizeof(r->key), "%s", key);
	/* a key is 1..1024 bytes; an empty relative key would name the prefix itself */
	if (n < 0 || (size_t)n > S3XML_KEY_MAX || (key && !key[0]))
		return -EINVAL;
	return 0;
}

static void rq_param(rq *r, const char *name, const char *value)
{
	if (r->nq < sizeof(r->q) / sizeof(r->q[0])) {
		r->q[r->nq].name = name;
		r->q[r->nq].value = value;
		r->nq++;
	}
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *ud)
{
	rq *r = ud;
	size_t want = size * nmemb;
	uint64_t left = r->len - r->sent;
	if (want > left)
		want = (size_t)left;
	if (!want)
		return 0;
	if (r->src == SRC_MEM) {
		memcpy(dst, r->mem + r->sent, want);
	} else {
		size_t got = 0;
		while (got < want) {
			ssize_t n = pread(r->fd, dst + got, want - got,
					  (off_t)(r->off + r->sent + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* the file shrank or cannot be read: not the server's fault */
				r->local_err = n < 0 ? -errno : -EIO;
				return CURL_READFUNC_ABORT;
			}
			got += (size_t)n;
		}
	}
	r->sent += want;
	return want;
}

static int reply_ok(rq *r)
{
	long code = 0;
	curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &code);
	return code >= 200 && code < 300;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
	rq *r = ud;
	size_t n = size * nmemb;
	if (!reply_ok(r)) {
		/* an error reply: keep its head for the <Code> */
		size_t room = ERRBODY_MAX - r->elen, k = n < room ? n : room;
		memcpy(r->errbody + r->elen, p, k);
		r->elen += k;
		r->errbody[r->elen] = 0;
		return n;
	}
	switch (r->sink) {
	case SINK_GROW:
		if (n > r->grow_max - r->glen) {
			r->local_err = -EIO; /* a reply larger than any this request can have */
			return 0;
		}
		if (r->glen + n + 1 > r->gcap) {
			size_t nc = r->gcap ? r->gcap : 16384;
			while (nc < r->glen + n + 1)
				nc *= 2;
			char *g = realloc(r->grow, nc);
			if (!g) {
				r->local_err = -ENOMEM;
				return 0;
			}
			r->grow = g;
			r->gcap = nc;
		}
		memcpy(r->grow + r->glen, p, n);
		r->glen += n;
		r->grow[r->glen] = 0;
		break;
	case SINK_BUF: {
		size_t i = 0;
		/* 200 to a ranged GET: the server ignored Range and sends the object from 0 */
		int whole = r->status == 200;
		if (whole && r->skipped < r->bskip) {
			uint64_t s = r->bskip - r->skipped;
			i = s < n ? (size_t)s : n;
			r->skipped += i;
		}
		size_t k = n - i;
		if (k > r->blen - r->bgot) {
			if (whole) {
				/* whole object sent: take what was asked, drop the rest */
				k = r->blen - r->bgot;
				memcpy(r->buf + r->bgot, p + i, k);
				r->bgot += k;
				r->enough = 1;
				return 0;
			}
			r->local_err = -EIO; /* more bytes than the range asked for */
			return 0;
		}
		memcpy(r->buf + r->bgot, p + i, k);
		r->bgot += k;
		break;
	}
	case SINK_FD: {
		size_t done = 0;
		while (done < n) {
			ssize_t w = pwrite(r->out_fd, p + done, n - done,
					   (off_t)(r->out_got + done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				r->local_err = w < 0 ? -errno : -EIO;
				return 0;
			}
			done += (size_t)w;
		}
		r->out_got += n;
		break;
	}
	default:
		break;
	}
	return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	rq *r = ud;
	size_t n = size * nmemb;
	if (n >= 5 && !strncmp(p, "HTTP/", 5)) {
		r->etag[0] = 0; /* a new status line (after 100 Continue): forget the old headers */
		long st = 0;
		const char *sp = memchr(p, ' ', n);
		if (sp)
			st = strtol(sp + 1, NULL, 10);
		r->status = st;
	} else if (n > 5 && !strncasecmp(p, "etag:", 5)) {
		const char *v = p + 5;
		size_t vl = n - 5;
		while (vl && (*v == ' ' || *v == '\t')) {
			v++;
			vl--;
		}
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl < sizeof(r->etag)) {
			memcpy(r->etag, v, vl);
			r->etag[vl] = 0;
		}
	}
	return n;
}

/* A header line "name: value" into the curl list; -ENOMEM when curl cannot add it. */
static int hdr_add(struct curl_slist **l, const char *name, const char *value)
{
	char line[4400];
	if ((size_t)snprintf(line, sizeof(line), "%s: %s", name, value) >= sizeof(line))
		return -ENAMETOOLONG;
	struct curl_slist *n = curl_slist_append(*l, line);
	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

/* One try: sign (the date is the try's own) and send. *cc is curl's verdict. */
static int try_once(s3 *c, rq *r, CURLcode *cc)
{
	r->sent = 0;
	r->glen = 0;
	if (r->grow)
		r->grow[0] = 0;
	r->bgot = 0;
	r->skipped = 0;
	r->out_got = 0;
	r->enough = 0;
	r->local_err = 0;
	r->elen = 0;
	r->errbody[0] = 0;
	r->status = 0;
	r->clen = -1;
	r->etag[0] = 0;
	r->code[0] = 0;
	*cc = CURLE_OK;

	char query[4096];
	int rc = s3sig_canonical_query(r->q, r->nq, query, sizeof(query));
	if (rc < 0)
		return rc;
	s3sig_target t;
	rc = s3sig_target_make(c->cfg.endpoint, c->cfg.bucket, c->cfg.path_style, r->key, query,
			       &t);
	if (rc)
		return rc;
	char date[S3SIG_AMZ_DATE];
	s3sig_amz_date(time(NULL), date);
	s3sig_kv hv[6];
	size_t nh = 0;
	hv[nh++] = (s3sig_kv){"host", t.host};
	hv[nh++] = (s3sig_kv){"x-amz-content-sha256", r->sha};
	hv[nh++] = (s3sig_kv){"x-amz-date", date};
	if (r->range[0])
		hv[nh++] = (s3sig_kv){"range", r->range};
	if (c->token[0])
		hv[nh++] = (s3sig_kv){"x-amz-security-token", c->token};
	s3sig_req sr = {r->method, t.path, r->q, r->nq, hv, nh, r->sha};
	char auth[1024];
	rc = s3sig_authorization(c->access_key, c->secret, c->cfg.region, date, &sr, auth,
				 sizeof(auth));
	if (rc < 0)
		return rc;

	struct curl_slist *hl = NULL;
	rc = 0;
	for (size_t i = 0; i < nh && !rc; i++)
		rc = hdr_add(&hl, i == 0 ? "Host" : hv[i].name, hv[i].value);
	if (!rc)
		rc = hdr_add(&hl, "Authorization", auth);
	if (!rc && r->ctype)
		rc = hdr_add(&hl, "Content-Type", r->ctype);
	if (!rc) {
		/* no 100-continue round trip; no Accept header games */
		struct curl_slist *n = curl_slist_append(hl, "Expect:");
		if (n)
			hl = n;
		else
			rc = -ENOMEM;
	}
	OPENSSL_cleanse(auth, sizeof(auth));
	if (rc) {
		curl_slist_free_all(hl);
		return rc;
	}

	CURL *h = r->h;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, t.url);
	curl_easy_setopt(h, CURLOPT_SHARE, c->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_S);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	if (!strcmp(r->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(r->method, "PUT")) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->len);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
	} else if (!strcmp(r->method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
	} else if (strcmp(r->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	}
	*cc = curl_easy_perform(h);
	long st = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	r->status = st;
	curl_off_t cl = -1;
	if (curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) != CURLE_OK)
		cl = -1;
	r->clen = cl;
	curl_off_t up = 0, down = 0;
	curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
	curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
	atomic_fetch_add(&c->bytes_out, (uint64_t)(up > 0 ? up : 0));
	atomic_fetch_add(&c->bytes_in, (uint64_t)(down > 0 ? down : 0));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	return 0;
}

static int retryable_curl(CURLcode cc)
{
	switch (cc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_ABORTED_BY_CALLBACK:
		return 0;
	default:
		return 1;
	}
}

static int status_errno(long st)
{
	if (st == 404)
		return -ENOENT;
	if (st == 403 || st == 401)
		return -EACCES;
	return -EIO;
}

static void count_request(s3 *c, int kind)
{
	switch (kind) {
	case KIND_GET:
		atomic_fetch_add(&c->gets, 1);
		break;
	case KIND_PUT:
		atomic_fetch_add(&c->puts, 1);
		break;
	case KIND_HEAD:
		atomic_fetch_add(&c->heads, 1);
		break;
	case KIND_DELETE:
		atomic_fetch_add(&c->deletes, 1);
		break;
	default:
		atomic_fetch_add(&c->lists, 1);
		break;
	}
}

/* Send r until it succeeds, fails for good, or retry_s runs out. 0 on a 2xx reply; else -errno
 * (404 -ENOENT, 401/403 -EACCES, anything else after the retries -EIO). Every failed try is
 * logged: method, key, status or curl error, try number; never a header. */
static int run(s3 *c, rq *r)
{
	/* what the log names: the key, or the bucket for bucket-level requests */
	char name[S3XML_KEY_MAX + 80];
	if (r->key[0])
		snprintf(name, sizeof(name), "%s", r->key);
	else
		snprintf(name, sizeof(name), "bucket %s", c->cfg.bucket);
	r->h = conn_get(c);
	if (!r->h)
		return -ENOMEM;
	count_request(c, r->kind);
	double t0 = now_s();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)r;
	int rc = 0;
	for (int attempt = 1;; attempt++) {
		r->tries = attempt;
		CURLcode cc;
		rc = try_once(c, r, &cc);
		if (rc)
			break; /* could not even form the request */
		char what[200] = "";
		int retry = 0;
		if (r->local_err && !(r->enough && cc == CURLE_WRITE_ERROR)) {
			rc = r->local_err;
			logf_(c, "s3: %s %s (try %d): %s", r->op, name, attempt, strerror(-rc));
			break;
		}
		if (cc != CURLE_OK && !(r->enough && cc == CURLE_WRITE_ERROR)) {
			snprintf(what, sizeof(what), "curl error %d (%s)", (int)cc,
				 curl_easy_strerror(cc));
			retry = retryable_curl(cc);
			rc = -EIO;
		} else if (r->status >= 200 && r->status < 300) {
			if (!(r->complete && s3xml_is_error(r->grow, r->glen))) {
				rc = 0;
				break;
			}
			/* CompleteMultipartUpload: 200 with an <Error> body is a failure */
			s3xml_parse_error(r->grow, r->glen, r->code, sizeof(r->code), NULL, 0);
			snprintf(what, sizeof(what), "HTTP %ld with error %s", r->status,
				 r->code[0] ? r->code : "?");
			retry = 1;
			rc = -EIO;
		} else {
			if (r->elen)
				s3xml_parse_error(r->errbody, r->elen, r->code, sizeof(r->code), NULL,
						  0);
			snprintf(what, sizeof(what), "HTTP %ld%s%s", r->status, r->code[0] ? " " : "",
				 r->code);
			retry = r->status >= 500 || r->status == 429 || r->status == 408 ||
				!strcmp(r->code, "RequestTimeout") || !strcmp(r->code, "SlowDown");
			rc = status_errno(r->status);
			if (retry)
				rc = -EIO;
		}
		if (!retry) {
			/* a missing key is an answer, not a failure worth a line */
			if (rc != -ENOENT)
				logf_(c, "s3: %s %s (try %d): %s", r->op, name, attempt, what);
			break;
		}
		double left = c->retry_s - (now_s() - t0);
		double cap = BACKOFF_BASE_S * (double)(1ull << (attempt - 1 < 30 ? attempt - 1 : 30));
		if (cap > BACKOFF_CAP_S)
			cap = BACKOFF_CAP_S;
		/* full jitter: anywhere in [0, cap), so retrying clients spread out */
		double wait = cap * (double)(splitmix(&rng) >> 11) / 9007199254740992.0;
		if (left <= 0) {
			logf_(c, "s3: %s %s (try %d): %s; giving up after %.1f s", r->op, name,
			      attempt, what, now_s() - t0);
			rc = -EIO;
			break;
		}
		if (wait > left)
			wait = left;
		logf_(c, "s3: %s %s (try %d): %s; retrying in %.2f s", r->op, name, attempt, what,
		      wait);
		atomic_fetch_add(&c->retries, 1);
		sleep_s(wait);
	}
	if (rc && rc != -ENOENT)
		atomic_fetch_add(&c->failures, 1);
	conn_put(c, r->h);
	r->h = NULL;
	return rc;
}

/* ---- buckets -------------------------------------------------------------------------------- */

static const char *errname(int rc)
{
	switch (rc) {
	case -ENOENT:
		return "no such bucket";
	case -EACCES:
		return "access denied (wrong key, or not allowed)";
	case -EEXIST:
		return "the name is taken by another owner";
	default:
		return "endpoint unreachable or failing";
	}
}

int s3_bucket_check(s3 *c, char *err, size_t errlen)
{
	rq r;
	rq_init(&r, "HEAD", KIND_HEAD);
	say(err, errlen, "%s", "");
	int rc = run(c, &r);
	if (rc && r.status)
		say(err, errlen, "s3: bucket %s at %s: %s (HTTP %ld)", c->cfg.bucket,
		    c->cfg.endpoint, errname(rc), r.status);
	else if (rc)
		say(err, errlen, "s3: bucket %s at %s: %s (no reply)", c->cfg.bucket,
		    c->cfg.endpoint, errname(rc));
	rq_done(&r);
	return rc;
}

int s3_bucket_create(s3 *c, char *err, size_t errlen)
{
	rq r;
	rq_init(&r, "PUT", KIND_PUT);
	say(err, errlen, "%s", "");
	char body[256];
	body[0] = 0;
	/* us-east-1 is the one region named by sending no location at all */
	if (strcmp(c->cfg.region, "us-east-1"))
		snprintf(body, sizeof(body),
			 "<CreateBucketConfiguration><LocationConstraint>%s</LocationConstraint>"
			 "</CreateBucketConfiguration>",
			 c->cfg.region);
	r.src = SRC_MEM;
	r.mem = body;
	r.len = strlen(body);
	r.ctype = r.len ? "application/xml" : NULL;
	s3sig_sha256_hex(body, r.len, r.sha);
	r.sink = SINK_NONE;
	int rc = run(c, &r);
	if (rc == -EIO && r.status == 409) {
		rc = !strcmp(r.code, "BucketAlreadyOwnedByYou") ? 0 : -EEXIST;
	}
	if (rc)
		say(err, errlen, "s3: create bucket %s at %s: %s (HTTP %ld%s%s)", c->cfg.bucket,
		    c->cfg.endpoint, errname(rc), r.status, r.code[0] ? " " : "", r.code);
	rq_done(&r);
	return rc;
}

/* ---- objects -------------------------------------------------------------------------------- */

/* SHA-256 of len bytes at off in fd (hex). */
static int sha256_fd(int fd, uint64_t off, uint64_t len, char out[S3SIG_SHA256_HEX])
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	char *buf = malloc(HASH_CHUNK);
	int rc = 0;
	if (!m || !buf || !EVP_DigestInit_ex(m, EVP_sha256(), NULL))
		rc = -ENOMEM;
	uint64_t done = 0;
	while (!rc && done < len) {
		size_t want = len - done < HASH_CHUNK ? (size_t)(len - done) : HASH_CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		else if (n == 0)
			rc = -EIO; /* shorter than the size we were given */
		else if (!EVP_DigestUpdate(m, buf, (size_t)n))
			rc = -ENOMEM;
		else
			done += (uint64_t)n;
	}
	uint8_t md[32];
	unsigned int mdlen = 0;
	if (!rc && (!EVP_DigestFinal_ex(m, md, &mdlen) || mdlen != 32))
		rc = -ENOMEM;
	if (!rc)
		s3sig_hex(md, 32, out);
	EVP_MD_CTX_free(m);
	free(buf);
	return rc;
}

int s3_put_mem(s3 *c, const char *key, const void *buf, size_t len)
{
	if (!key || (!buf && len))
		return -EINVAL;
	rq r;
	rq_init(&r, "PUT", KIND_PUT);
	int rc = rq_key(c, &r, key);
	if (rc)
		return rc;
	r.src = SRC_MEM;
	r.mem = buf ? buf : "";
	r.len = len;
	r.ctype = "application/octet-stream";
	s3sig_sha256_hex(r.mem, len, r.sha);
	rc = run(c, &r);
	rq_done(&r);
	return rc;
}

static int put_single(s3 *c, const char *key, int fd, uint64_t size)
{
	rq r;
	rq_init(&r, "PUT", KIND_PUT);
	int rc = rq_key(c, &r, key);
	if (rc)
		return rc;
	r.src = SRC_FD;
	r.fd = fd;
	r.off = 0;
	r.len = size;
	r.ctype = "application/octet-stream";
	rc = sha256_fd(fd, 0, size, r.sha);
	if (!rc)
		rc = run(c, &r);
	rq_done(&r);
	return rc;
}

typedef struct mpu {
	s3 *c;
	const char *key; /* relative */
	const char *upload_id;
	int fd;
	uint64_t size, part;
	int nparts;
	pthread_mutex_t mu; /* guards next and err */
	int next, err;
	char (*etags)[256];
} mpu;

static int upload_part(mpu *m, int i)
{
	s3 *c = m->c;
	rq r;
	rq_init(&r, "PUT", KIND_PUT);
	int rc = rq_key(c, &r, m->key);
	if (rc)
		return rc;
	snprintf(r.op, sizeof(r.op), "PUT part %d/%d", i + 1, m->nparts);
	char pn[16];
	snprintf(pn, sizeof(pn), "%d", i + 1);
	rq_param(&r, "partNumber", pn);
	rq_param(&r, "uploadId", m->upload_id);
	r.src = SRC_FD;
	r.fd = m->fd;
	r.off = (uint64_t)i * m->part;
	r.len = m->size - r.off < m->part ? m->size - r.off : m->part;
	r.ctype = "application/octet-stream";
	rc = sha256_fd(m->fd, r.off, r.len, r.sha);
	if (!rc)
		rc = run(c, &r);
	if (!rc) {
		if (!r.etag[0]) {
			logf_(c, "s3: %s %s: reply without an ETag", r.op, r.key);
			rc = -EIO;
		} else {
			memcpy(m->etags[i], r.etag, sizeof(m->etags[i]));
		}
	}
	rq_done(&r);
	return rc;
}

static void *mpu_worker(void *arg)
{
	mpu *m = arg;
	for (;;) {
		pthread_mutex_lock(&m->mu);
		int i = m->err ? m->nparts : m->next++;
		pthread_mutex_unlock(&m->mu);
		if (i >= m->nparts)
			break;
		int rc = upload_part(m, i);
		if (rc) {
			pthread_mutex_lock(&m->mu);
			if (!m->err)
				m->err = rc;
			pthread_mutex_unlock(&m->mu);
			break;
		}
	}
	return NULL;
}

/* XML text of s into the builder (ETags carry quotes; escape what XML needs). */
static int xml_append(char **b, size_t *len, size_t *cap, const char *s)
{
	for (; *s; s++) {
		const char *e = NULL;
		char one[2] = {*s, 0};
		switch (*s) {
		case '&':
			e = "&amp;";
			break;
		case '<':
			e = "&lt;";
			break;
		case '>':
			e = "&gt;";
			break;
		case '"':
			e = "&quot;";
			break;
		default:
			e = one;
		}
		size_t n = strlen(e);
		if (*len + n + 1 > *cap) {
			size_t nc = *cap * 2 + n + 1;
			char *nb = realloc(*b, nc);
			if (!nb)
				return -ENOMEM;
			*b = nb;
			*cap = nc;
		}
		memcpy(*b + *len, e, n + 1);
		*len += n;
	}
	return 0;
}

static int raw_append(char **b, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	if (*len + n + 1 > *cap) {
		size_t nc = *cap * 2 + n + 1;
		char *nb = realloc(*b, nc);
		if (!nb)
			return -ENOMEM;
		*b = nb;
		*cap = nc;
	}
	memcpy(*b + *len, s, n + 1);
	*len += n;
	return 0;
}

static int mpu_complete(s3 *c, mpu *m)
{
	char *body = NULL;
	size_t len = 0, cap = 0;
	int rc = raw_append(&body, &len, &cap, "<CompleteMultipartUpload>");
	for (int i = 0; i < m->nparts && !rc; i++) {
		char pn[64];
		snprintf(pn, sizeof(pn), "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
		rc = raw_append(&body, &len, &cap, pn);
		if (!rc)
			rc = xml_append(&body, &len, &cap, m->etags[i]);
		if (!rc)
			rc = raw_append(&body, &len, &cap, "</ETag></Part>");
	}
	if (!rc)
		rc = raw_append(&body, &len, &cap, "</CompleteMultipartUpload>");
	if (rc) {
		free(body);
		return rc;
	}
	rq r;
	rq_init(&r, "POST", KIND_PUT);
	rc = rq_key(c, &r, m->key);
	if (!rc) {
		snprintf(r.op, sizeof(r.op), "POST complete (%d parts)", m->nparts);
		rq_param(&r, "uploadId", m->upload_id);
		r.src = SRC_MEM;
		r.mem = body;
		r.len = len;
		r.ctype = "application/xml";
		r.complete = 1;
		r.sink = SINK_GROW;
		r.grow_max = 1 << 20;
		s3sig_sha256_hex(body, len, r.sha);
		rc = run(c, &r);
		/* a retried complete whose first try went through finds no upload any more:
		 * the HEAD below tells whether the object is there */
		if (rc == -ENOENT && r.tries > 1)
			rc = 0;
	}
	rq_done(&r);
	free(body);
	return rc;
}

static int put_multipart(s3 *c, const char *key, int fd, uint64_t size)
{
	uint64_t part = c->part_size;
	if ((size + part - 1) / part > MAX_PARTS) {
		/* S3 takes at most 10000 parts: grow the part size, in whole MiB */
		part = (size + MAX_PARTS - 1) / MAX_PARTS;
		part = (part + (1u << 20) - 1) & ~((uint64_t)(1u << 20) - 1);
	}
	mpu m = {.c = c, .key = key, .fd = fd, .size = size, .part = part};
	m.nparts = (int)((size + part - 1) / part);
	m.etags = calloc((size_t)m.nparts, sizeof(*m.etags));
	if (!m.etags)
		return -ENOMEM;

	/* CreateMultipartUpload */
	char upload_id[S3XML_TOKEN_MAX + 1] = "";
	rq r;
	rq_init(&r, "POST", KIND_PUT);
	int rc = rq_key(c, &r, key);
	if (!rc) {
		snprintf(r.op, sizeof(r.op), "POST uploads");
		rq_param(&r, "uploads", "");
		r.src = SRC_MEM;
		r.mem = "";
		r.len = 0;
		r.ctype = "application/octet-stream";
		r.sink = SINK_GROW;
		r.grow_max = 1 << 20;
		rc = run(c, &r);
		if (!rc && s3xml_parse_initiate(r.grow, r.glen, upload_id, sizeof(upload_id))) {
			logf_(c, "s3: POST uploads %s: malformed InitiateMultipartUploadResult",
			      r.key);
			rc = -EIO;
		}
	}
	rq_done(&r);
	if (rc) {
		free(m.etags);
		return rc;
	}
	m.upload_id = upload_id;
	pthread_mutex_init(&m.mu, NULL);
	pthread_t th[MPU_THREADS - 1];
	int nth = 0;
	int want = m.nparts < MPU_THREADS ? m.nparts : MPU_THREADS;
	for (int i = 0; i < want - 1; i++)
		if (!pthread_create(&th[nth], NULL, mpu_worker, &m))
			nth++; /* fewer threads only make it slower */
	mpu_worker(&m);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	rc = m.err;
	pthread_mutex_destroy(&m.mu);
	if (!rc)
		rc = mpu_complete(c, &m);
	if (!rc) {
		uint64_t got = 0;
		rc = s3_head(c, key, &got);
		if (!rc && got != size) {
			logf_(c, "s3: PUT %s: object is %llu bytes after the multipart upload, "
				 "expected %llu", key, (unsigned long long)got,
			      (unsigned long long)size);
			rc = -EIO;
		} else if (rc == -ENOENT) {
			rc = -EIO;
		}
	}
	if (rc) {
		int arc = s3_upload_abort(c, key, upload_id);
		if (arc)
			logf_(c, "s3: abort of the failed upload of %s: %s (left to gc)", key,
			      strerror(-arc));
	}
	free(m.etags);
	return rc;
}

int s3_put_file(s3 *c, const char *key, int fd, uint64_t size)
{
	if (!key || fd < 0)
		return -EINVAL;
	if (size <= c->single_max)
		return put_single(c, key, fd, size);
	return put_multipart(c, key, fd, size);
}

int s3_get(s3 *c, const char *key, uint64_t off, size_t len, void *buf)
{
	if (!key || (!buf && len))
		return -EINVAL;
	if (len == 0) {
		/* nothing to read: still say whether the key and the offset exist */
		uint64_t sz;
		int rc = s3_head(c, key, &sz);
		return rc ? rc : (off > sz ? -EIO : 0);
	}
	if (off > UINT64_MAX - len)
		return -EINVAL;
	rq r;
	rq_init(&r, "GET", KIND_GET);
	int rc = rq_key(c, &r, key);
	if (rc)
		return rc;
	snprintf(r.range, sizeof(r.range), "bytes=%llu-%llu", (unsigned long long)off,
		 (unsigned long long)(off + len - 1));
	r.sink = SINK_BUF;
	r.buf = buf;
	r.blen = len;
	r.bskip = off;
	/* a range past the end gets 416 (-EIO from run), one running over it fewer bytes: both
	 * mean the object is shorter than its reader believes */
	rc = run(c, &r);
	if (!rc && r.bgot != len) {
		logf_(c, "s3: GET %s: %zu bytes at %llu asked, %zu came (object shorter)", r.key, len,
		      (unsigned long long)off, r.bgot);
		rc = -EIO;
	}
	rq_done(&r);
	return rc;
}

int s3_get_file(s3 *c, const char *key, int fd, uint64_t *size)
{
	if (!key || fd < 0)
		return -EINVAL;
	rq r;
	rq_init(&r, "GET", KIND_GET);
	int rc = rq_key(c, &r, key);
	if (rc)
		return rc;
	r.sink = SINK_FD;
	r.out_fd = fd;
	rc = run(c, &r);
	if (!rc && r.clen >= 0 && (uint64_t)r.clen != r.out_got) {
		logf_(c, "s3: GET %s: %llu bytes came, Content-Length said %lld", r.key,
		      (unsigned long long)r.out_got, (long long)r.clen);
		rc = -EIO;
	}
	struct stat st;
	if (!rc && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    ftruncate(fd, (off_t)r.out_got) != 0)
		rc = -errno; /* bytes of an earlier, longer try or file must not stay behind */
	if (!rc && size)
		*size = r.out_got;
	rq_done(&r);
	return rc;
}

int s3_head(s3 *c, const char *key, uint64_t *size)
{
	if (!key)
		return -EINVAL;
	rq r;
	rq_init(&r, "HEAD", KIND_HEAD);
	int rc = rq_key(c, &r, key);
	if (rc)
		return rc;
	rc = run(c, &r);
	if (!rc && r.clen < 0) {
		logf_(c, "s3: HEAD %s: reply without Content-Length", r.key);
		rc = -EIO;
	}
	if (!rc && size)
		*size = (uint64_t)r.clen;
	rq_done(&r);
	return rc;
}

int s3_delete(s3 *c, const char *key)
{
	if (!key)
		return -EINVAL;
	rq r;
	rq_init(&r, "DELETE", KIND_DELETE);
	int rc = rq_key(c, &r, key);
	if (rc)
		return rc;
	rc = run(c, &r);
	if (rc == -ENOENT)
		rc = 0;
	rq_done(&r);
	return rc;
}

/* ---- listings ------------------------------------------------------------------------------- */

/* cfg->prefix + "/" + rel (rel may be "" or NULL): the prefix as the server sees it. */
static int full_prefix(const s3 *c, const char *rel, char *out, size_t size)
{
	int n = c->cfg.prefix[0] ? snprintf(out, size, "%s/%s", c->cfg.prefix, rel ? rel : "")
				 : snprintf(out, size, "%s", rel ? rel : "");
	return n < 0 || (size_t)n >= size ? -EINVAL : 0;
}

/* The key relative to cfg->prefix; NULL when the server sent one outside it. */
static const char *relative(const s3 *c, const char *key)
{
	size_t pl = strlen(c->cfg.prefix);
	if (!pl)
		return key;
	if (strncmp(key, c->cfg.prefix, pl) || key[pl] != '/' || !key[pl + 1])
		return NULL;
	return key + pl + 1;
}

int s3_list(s3 *c, const char *prefix, s3_list_fn fn, void *ctx)
{
	if (!fn)
		return -EINVAL;
	char pfx[S3XML_KEY_MAX + 1], maxk[16];
	if (full_prefix(c, prefix, pfx, sizeof(pfx)))
		return -EINVAL;
	snprintf(maxk, sizeof(maxk), "%d", c->list_max);
	char *token = calloc(1, S3XML_TOKEN_MAX + 1);
	if (!token)
		return -ENOMEM;
	int rc = 0;
	for (int page = 0; !rc; page++) {
		rq r;
		rq_init(&r, "GET", KIND_LIST);
		snprintf(r.op, sizeof(r.op), "GET list page %d", page + 1);
		rq_param(&r, "list-type", "2");
		rq_param(&r, "max-keys", maxk);
		if (pfx[0])
			rq_param(&r, "prefix", pfx);
		if (token[0])
			rq_param(&r, "continuation-token", token);
		r.sink = SINK_GROW;
		r.grow_max = S3XML_MAX_INPUT;
		rc = run(c, &r);
		s3xml_list l;
		memset(&l, 0, sizeof(l));
		if (!rc && s3xml_parse_list(r.grow, r.glen, &l)) {
			logf_(c, "s3: GET list %s: malformed ListBucketResult", pfx);
			rc = -EIO;
		}
		rq_done(&r);
		for (size_t i = 0; !rc && i < l.n; i++) {
			const char *k = relative(c, l.items[i].key);
			if (!k || strncmp(l.items[i].key, pfx, strlen(pfx))) {
				logf_(c, "s3: GET list %s: key outside the prefix in the reply", pfx);
				rc = -EIO;
				break;
			}
			rc = fn(ctx, k, l.items[i].size, l.items[i].mtime_ns);
		}
		int more = !rc && l.truncated;
		if (more) {
			/* a server that hands out the same token again would loop us forever */
			if (!strcmp(l.next_token, token)) {
				logf_(c, "s3: GET list %s: the same continuation token twice", pfx);
				rc = -EIO;
			} else {
				memcpy(token, l.next_token, S3XML_TOKEN_MAX + 1);
			}
		}
		s3xml_list_free(&l);
		if (!more)
			break;
	}
	free(token);
	return rc;
}

int s3_uploads_list(s3 *c, const char *prefix, s3_upload_fn fn, void *ctx)
{
	if (!fn)
		return -EINVAL;
	char pfx[S3XML_KEY_MAX + 1], maxk[16];
	if (full_prefix(c, prefix, pfx, sizeof(pfx)))
		return -EINVAL;
	snprintf(maxk, sizeof(maxk), "%d", c->list_max);
	char *km = calloc(1, S3XML_KEY_MAX + 1), *im = calloc(1, S3XML_TOKEN_MAX + 1);
	if (!km || !im) {
		free(km);
		free(im);
		return -ENOMEM;
	}
	int rc = 0;
	for (int page = 0; !rc; page++) {
		rq r;
		rq_init(&r, "GET", KIND_LIST);
		snprintf(r.op, sizeof(r.op), "GET uploads page %d", page + 1);
		rq_param(&r, "uploads", "");
		rq_param(&r, "max-uploads", maxk);
		if (pfx[0])
			rq_param(&r, "prefix", pfx);
		if (km[0])
			rq_param(&r, "key-marker", km);
		if (im[0])
			rq_param(&r, "upload-id-marker", im);
		r.sink = SINK_GROW;
		r.grow_max = S3XML_MAX_INPUT;
		rc = run(c, &r);
		s3xml_uploads u;
		memset(&u, 0, sizeof(u));
		if (!rc && s3xml_parse_uploads(r.grow, r.glen, &u)) {
			logf_(c, "s3: GET uploads %s: malformed ListMultipartUploadsResult", pfx);
			rc = -EIO;
		}
		rq_done(&r);
		for (size_t i = 0; !rc && i < u.n; i++) {
			const char *k = relative(c, u.items[i].key);
			if (!k || strncmp(u.items[i].key, pfx, strlen(pfx))) {
				logf_(c, "s3: GET uploads %s: key outside the prefix in the reply", pfx);
				rc = -EIO;
				break;
			}
			rc = fn(ctx, k, u.items[i].upload_id, u.items[i].initiated_ns);
		}
		int more = !rc && u.truncated;
		if (more) {
			if (!strcmp(u.next_key_marker, km) &&
			    !strcmp(u.next_upload_id_marker, im)) {
				logf_(c, "s3: GET uploads %s: the same markers twice", pfx);
				rc = -EIO;
			} else {
				memcpy(km, u.next_key_marker, S3XML_KEY_MAX + 1);
				memcpy(im, u.next_upload_id_marker, S3XML_TOKEN_MAX + 1);
			}
		}
		s3xml_uploads_free(&u);
		if (!more)
			break;
	}
	free(km);
	free(im);
	return rc;
}

int s3_upload_abort(s3 *c, const char *key, const char *upload_id)
{
	if (!key || !upload_id || !upload_id[0])
		return -EINVAL;
	rq r;
	rq_init(&r, "DELETE", KIND_DELETE);
	int rc = rq_key(c, &r, key);
	if (rc)
		return rc;
	snprintf(r.op, sizeof(r.op), "DELETE upload");
	rq_param(&r, "uploadId", upload_id);
	rc = run(c, &r);
	if (rc == -ENOENT)
		rc = 0; /* gone already (completed, aborted, or expired): what was asked */
	rq_done(&r);
	return rc;
}
