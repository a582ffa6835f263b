/* s3.c - the S3 client (see s3.h): the handle and its pool of curl connections, signed requests
 * with retries, buckets, GET / HEAD / DELETE, listings. URIs are in s3_uri.c, credentials in
 * s3_creds.c, uploads in s3_put.c; the handle, one request and the threads and locks in s3_internal.h.
 *
 * Knobs for tests and benchmarks, read once in s3_new (the defaults are what S3 users expect):
 *   TPDEFS_S3_RETRY_S      total retry time of one call when cfg->retry_s <= 0 (default 30)
 *   TPDEFS_S3_SINGLE_MAX   largest s3_put_file sent as one PUT (default 64 MiB)
 *   TPDEFS_S3_PART_SIZE    multipart part size (default 16 MiB, at least 5 MiB: S3's minimum)
 *   TPDEFS_S3_LIST_MAX     keys / uploads per listing page (1..1000, default 1000)
 *   TPDEFS_S3_CREDS_CHECK_MS  how often a request looks at a credentials file at most (default
 *                          1000; 0: before every request). A 401/403 looks at once regardless.
 */
#include "s3_internal.h"
#include "s3_xml.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
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

#define DEFAULT_RETRY_S 30.0
#define SINGLE_PUT_MAX (64ull << 20)
#define PART_SIZE (16ull << 20)
#define PART_FLOOR (5ull << 20) /* S3 refuses smaller parts, but for the last */
#define LIST_MAX 1000
#define CONNECT_TIMEOUT_MS 5000L
/* A transfer slower than LOW_SPEED_BYTES/s for LOW_SPEED_S seconds is stalled: abort, retry. */
#define LOW_SPEED_BYTES 1024L
#define LOW_SPEED_S 20L
#define BACKOFF_BASE_S 0.1
#define BACKOFF_CAP_S 2.0
#define DOWN_HOLD_S 5.0 /* how long an endpoint found down stays down for other requests */
#define CREDS_CHECK_MS 1000

/* ---- small helpers -------------------------------------------------------------------------- */

void s3_say(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int s3_setstr(char *dst, size_t size, const char *s, size_t n)
{
	if (n >= size)
		return -ENAMETOOLONG;
	memcpy(dst, s, n);
	dst[n] = 0;
	return 0;
}

void s3_logf(const s3 *c, const char *fmt, ...)
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

int64_t s3_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double now_s(void)
{
	return (double)s3_now_us() / 1e6;
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
	s3_say(err, errlen, "%s", "");
	if (!cfg || !cfg->endpoint[0] || !s3_bucket_ok(cfg->bucket) || !cfg->region[0]) {
		s3_say(err, errlen, "s3: incomplete configuration (endpoint, bucket, region)");
		return -EINVAL;
	}
	/* curl's global init is thread-safe in the curl we build with (>= 7.84) and counted */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		s3_say(err, errlen, "s3: curl_global_init failed");
		return -ENOMEM;
	}
	s3 *c = calloc(1, sizeof(*c));
	if (!c) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	c->cfg = *cfg;
	int64_t check_ms = (int64_t)env_u64("TPDEFS_S3_CREDS_CHECK_MS", CREDS_CHECK_MS, 0,
					    86400000);
	int rc = s3_creds_init(c, check_ms * 1000, err, errlen);
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
		s3_say(err, errlen, "s3: cannot set up the curl share");
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
	s3_creds_fini(c);
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

void s3_rq_init(rq *r, const char *method, int kind)
{
	memset(r, 0, sizeof(*r));
	r->method = method;
	r->kind = kind;
	r->fd = -1;
	r->out_fd = -1;
	snprintf(r->op, sizeof(r->op), "%s", method);
	strcpy(r->sha, S3SIG_EMPTY_SHA256);
}

void s3_rq_done(rq *r)
{
	free(r->grow);
	r->grow = NULL;
	r->glen = r->gcap = 0;
}

int s3_rq_key(const s3 *c, rq *r, const char *key)
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

void s3_rq_param(rq *r, const char *name, const char *value)
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
/* The request's header lines hold the signature and any session token: wiped before freed. */
static void hdr_free(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i; i = i->next)
		if (i->data)
			OPENSSL_cleanse(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

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

/* One try: sign (the date is the try's own; the keys a copy of the current ones, r->cred_gen
 * names them) and send. *cc is curl's verdict. */
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
	s3_creds cr;
	s3_creds_get(c, &cr, &r->cred_gen);
	s3sig_kv hv[6];
	size_t nh = 0;
	hv[nh++] = (s3sig_kv){"host", t.host};
	hv[nh++] = (s3sig_kv){"x-amz-content-sha256", r->sha};
	hv[nh++] = (s3sig_kv){"x-amz-date", date};
	if (r->range[0])
		hv[nh++] = (s3sig_kv){"range", r->range};
	if (cr.token[0])
		hv[nh++] = (s3sig_kv){"x-amz-security-token", cr.token};
	s3sig_req sr = {r->method, t.path, r->q, r->nq, hv, nh, r->sha};
	char auth[1024];
	rc = s3sig_authorization(cr.access_key, cr.secret, c->cfg.region, date, &sr, auth,
				 sizeof(auth));
	if (rc < 0) {
		s3_creds_wipe(&cr);
		return rc;
	}

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
	s3_creds_wipe(&cr); /* the token's header line is in hl now */
	if (rc) {
		hdr_free(hl);
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
	hdr_free(hl);
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

/* 401/403, and the 400 S3 answers to an expired or unknown session token: the keys are
 * refused. */
static int keys_refused(const rq *r)
{
	return r->status == 401 || r->status == 403 ||
	       (r->status == 400 &&
		(!strcmp(r->code, "ExpiredToken") || !strcmp(r->code, "InvalidToken") ||
		 !strcmp(r->code, "TokenRefreshRequired")));
}

static int status_errno(const rq *r)
{
	if (r->status == 404)
		return -ENOENT;
	if (keys_refused(r))
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
 * (404 -ENOENT, 401/403 or an expired session token -EACCES, anything else after the retries
 * -EIO). Refused keys are tried once more when the credentials file holds new ones by then.
 * Every failed try is logged: method, key, status or curl error, try number; never a header. */
int s3_run(s3 *c, rq *r)
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
	int rc = 0, auth_retried = 0;
	for (int attempt = 1;; attempt++) {
		r->tries = attempt;
		CURLcode cc;
		rc = try_once(c, r, &cc);
		if (rc)
			break; /* could not even form the request */
		char what[200] = "";
		int retry = 0;
		if (cc == CURLE_OK && r->status > 0 && r->status < 500)
			atomic_store(&c->down_until_us, 0); /* the endpoint answers */
		if (r->local_err && !(r->enough && cc == CURLE_WRITE_ERROR)) {
			rc = r->local_err;
			s3_logf(c, "s3: %s %s (try %d): %s", r->op, name, attempt, strerror(-rc));
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
			rc = status_errno(r);
			if (retry)
				rc = -EIO;
		}
		if (rc == -EACCES && !auth_retried && s3_creds_changed(c, r->cred_gen)) {
			/* keys refused, and the credentials file holds others by now (rotated,
			 * renewed): once more with those, at once; not a retry of the backoff kind */
			auth_retried = 1;
			s3_logf(c, "s3: %s %s (try %d): %s; the credentials file changed: trying again "
				   "with its new keys", r->op, name, attempt, what);
			continue;
		}
		if (!retry) {
			/* a missing key is an answer, not a failure worth a line */
			if (rc != -ENOENT)
				s3_logf(c, "s3: %s %s (try %d): %s", r->op, name, attempt, what);
			break;
		}
		int64_t down = atomic_load(&c->down_until_us);
		if (down && now_s() * 1e6 < (double)down) {
			/* another request just found the endpoint down after a whole budget of
			 * retries: fail at once, so an outage costs each reader one try, not the
			 * budget again (after the hold, the next request probes with a full one) */
			s3_logf(c, "s3: %s %s (try %d): %s; endpoint down, not retrying", r->op, name,
				attempt, what);
			rc = -EIO;
			break;
		}
		double left = c->retry_s - (now_s() - t0);
		double cap = BACKOFF_BASE_S * (double)(1ull << (attempt - 1 < 30 ? attempt - 1 : 30));
		if (cap > BACKOFF_CAP_S)
			cap = BACKOFF_CAP_S;
		/* full jitter: anywhere in [0, cap), so retrying clients spread out */
		double wait = cap * (double)(splitmix(&rng) >> 11) / 9007199254740992.0;
		if (left <= 0) {
			s3_logf(c, "s3: %s %s (try %d): %s; giving up after %.1f s", r->op, name,
				attempt, what, now_s() - t0);
			double hold = c->retry_s < DOWN_HOLD_S ? c->retry_s : DOWN_HOLD_S;
			atomic_store(&c->down_until_us, (int64_t)((now_s() + hold) * 1e6));
			rc = -EIO;
			break;
		}
		if (wait > left)
			wait = left;
		s3_logf(c, "s3: %s %s (try %d): %s; retrying in %.2f s", r->op, name, attempt, what,
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
	s3_rq_init(&r, "HEAD", KIND_HEAD);
	s3_say(err, errlen, "%s", "");
	int rc = s3_run(c, &r);
	if (rc && r.status)
		s3_say(err, errlen, "s3: bucket %s at %s: %s (HTTP %ld)", c->cfg.bucket,
		       c->cfg.endpoint, errname(rc), r.status);
	else if (rc)
		s3_say(err, errlen, "s3: bucket %s at %s: %s (no reply)", c->cfg.bucket,
		       c->cfg.endpoint, errname(rc));
	s3_rq_done(&r);
	return rc;
}

int s3_bucket_create(s3 *c, char *err, size_t errlen)
{
	rq r;
	s3_rq_init(&r, "PUT", KIND_PUT);
	s3_say(err, errlen, "%s", "");
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
	int rc = s3_run(c, &r);
	if (rc == -EIO && r.status == 409) {
		rc = !strcmp(r.code, "BucketAlreadyOwnedByYou") ? 0 : -EEXIST;
	}
	if (rc)
		s3_say(err, errlen, "s3: create bucket %s at %s: %s (HTTP %ld%s%s)", c->cfg.bucket,
		       c->cfg.endpoint, errname(rc), r.status, r.code[0] ? " " : "", r.code);
	s3_rq_done(&r);
	return rc;
}

/* ---- objects -------------------------------------------------------------------------------- */

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
	s3_rq_init(&r, "GET", KIND_GET);
	int rc = s3_rq_key(c, &r, key);
	if (rc)
		return rc;
	snprintf(r.range, sizeof(r.range), "bytes=%llu-%llu", (unsigned long long)off,
		 (unsigned long long)(off + len - 1));
	r.sink = SINK_BUF;
	r.buf = buf;
	r.blen = len;
	r.bskip = off;
	/* a range past the end gets 416 (-EIO from s3_run), one running over it fewer bytes: both
	 * mean the object is shorter than its reader believes */
	rc = s3_run(c, &r);
	if (!rc && r.bgot != len) {
		s3_logf(c, "s3: GET %s: %zu bytes at %llu asked, %zu came (object shorter)", r.key, len,
			(unsigned long long)off, r.bgot);
		rc = -EIO;
	}
	s3_rq_done(&r);
	return rc;
}

int s3_get_file(s3 *c, const char *key, int fd, uint64_t *size)
{
	if (!key || fd < 0)
		return -EINVAL;
	rq r;
	s3_rq_init(&r, "GET", KIND_GET);
	int rc = s3_rq_key(c, &r, key);
	if (rc)
		return rc;
	r.sink = SINK_FD;
	r.out_fd = fd;
	rc = s3_run(c, &r);
	if (!rc && r.clen >= 0 && (uint64_t)r.clen != r.out_got) {
		s3_logf(c, "s3: GET %s: %llu bytes came, Content-Length said %lld", r.key,
			(unsigned long long)r.out_got, (long long)r.clen);
		rc = -EIO;
	}
	struct stat st;
	if (!rc && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    ftruncate(fd, (off_t)r.out_got) != 0)
		rc = -errno; /* bytes of an earlier, longer try or file must not stay behind */
	if (!rc && size)
		*size = r.out_got;
	s3_rq_done(&r);
	return rc;
}

int s3_head(s3 *c, const char *key, uint64_t *size)
{
	if (!key)
		return -EINVAL;
	rq r;
	s3_rq_init(&r, "HEAD", KIND_HEAD);
	int rc = s3_rq_key(c, &r, key);
	if (rc)
		return rc;
	rc = s3_run(c, &r);
	if (!rc && r.clen < 0) {
		s3_logf(c, "s3: HEAD %s: reply without Content-Length", r.key);
		rc = -EIO;
	}
	if (!rc && size)
		*size = (uint64_t)r.clen;
	s3_rq_done(&r);
	return rc;
}

int s3_delete(s3 *c, const char *key)
{
	if (!key)
		return -EINVAL;
	rq r;
	s3_rq_init(&r, "DELETE", KIND_DELETE);
	int rc = s3_rq_key(c, &r, key);
	if (rc)
		return rc;
	rc = s3_run(c, &r);
	if (rc == -ENOENT)
		rc = 0;
	s3_rq_done(&r);
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
		s3_rq_init(&r, "GET", KIND_LIST);
		snprintf(r.op, sizeof(r.op), "GET list page %d", page + 1);
		s3_rq_param(&r, "list-type", "2");
		s3_rq_param(&r, "max-keys", maxk);
		if (pfx[0])
			s3_rq_param(&r, "prefix", pfx);
		if (token[0])
			s3_rq_param(&r, "continuation-token", token);
		r.sink = SINK_GROW;
		r.grow_max = S3XML_MAX_INPUT;
		rc = s3_run(c, &r);
		s3xml_list l;
		memset(&l, 0, sizeof(l));
		if (!rc && s3xml_parse_list(r.grow, r.glen, &l)) {
			s3_logf(c, "s3: GET list %s: malformed ListBucketResult", pfx);
			rc = -EIO;
		}
		s3_rq_done(&r);
		for (size_t i = 0; !rc && i < l.n; i++) {
			const char *k = relative(c, l.items[i].key);
			if (!k || strncmp(l.items[i].key, pfx, strlen(pfx))) {
				s3_logf(c, "s3: GET list %s: key outside the prefix in the reply", pfx);
				rc = -EIO;
				break;
			}
			rc = fn(ctx, k, l.items[i].size, l.items[i].mtime_ns);
		}
		int more = !rc && l.truncated;
		if (more) {
			/* a server that hands out the same token again would loop us forever */
			if (!strcmp(l.next_token, token)) {
				s3_logf(c, "s3: GET list %s: the same continuation token twice", pfx);
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
		s3_rq_init(&r, "GET", KIND_LIST);
		snprintf(r.op, sizeof(r.op), "GET uploads page %d", page + 1);
		s3_rq_param(&r, "uploads", "");
		s3_rq_param(&r, "max-uploads", maxk);
		if (pfx[0])
			s3_rq_param(&r, "prefix", pfx);
		if (km[0])
			s3_rq_param(&r, "key-marker", km);
		if (im[0])
			s3_rq_param(&r, "upload-id-marker", im);
		r.sink = SINK_GROW;
		r.grow_max = S3XML_MAX_INPUT;
		rc = s3_run(c, &r);
		s3xml_uploads u;
		memset(&u, 0, sizeof(u));
		if (!rc && s3xml_parse_uploads(r.grow, r.glen, &u)) {
			s3_logf(c, "s3: GET uploads %s: malformed ListMultipartUploadsResult", pfx);
			rc = -EIO;
		}
		s3_rq_done(&r);
		for (size_t i = 0; !rc && i < u.n; i++) {
			const char *k = relative(c, u.items[i].key);
			if (!k || strncmp(u.items[i].key, pfx, strlen(pfx))) {
				s3_logf(c, "s3: GET uploads %s: key outside the prefix in the reply", pfx);
				rc = -EIO;
				break;
			}
			rc = fn(ctx, k, u.items[i].upload_id, u.items[i].initiated_ns);
		}
		int more = !rc && u.truncated;
		if (more) {
			if (!strcmp(u.next_key_marker, km) &&
			    !strcmp(u.next_upload_id_marker, im)) {
				s3_logf(c, "s3: GET uploads %s: the same markers twice", pfx);
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
	s3_rq_init(&r, "DELETE", KIND_DELETE);
	int rc = s3_rq_key(c, &r, key);
	if (rc)
		return rc;
	snprintf(r.op, sizeof(r.op), "DELETE upload");
	s3_rq_param(&r, "uploadId", upload_id);
	rc = s3_run(c, &r);
	if (rc == -ENOENT)
		rc = 0; /* gone already (completed, aborted, or expired): what was asked */
	s3_rq_done(&r);
	return rc;
}
