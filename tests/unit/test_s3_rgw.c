/* test_s3_rgw.c - the S3 client against a real Ceph radosgw.
 *
 * Run through tests/integration/with_rgw.py, which starts a throwaway cluster and exports
 * TPDEFS_TEST_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and TPDEFS_TEST_RGW_CTL (a
 * socket to stop and start radosgw). Without them every test fails: a missing server is not a
 * pass. Tests run one at a time (--jobs 1): the fault tests take radosgw down. Each test uses
 * its own bucket.
 *
 * Knobs used (read by s3_new, see s3.c): TPDEFS_S3_SINGLE_MAX / TPDEFS_S3_PART_SIZE for a small
 * multipart upload, TPDEFS_S3_LIST_MAX to page a listing every few keys, TPDEFS_S3_CREDS_CHECK_MS
 * to keep the periodic look at a credentials file out of the way.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "s3.h"
#include "s3_sign.h"
#include "s3_xml.h"

static const char *need(const char *name)
{
	const char *v = getenv(name);
	cr_assert(v && *v, "%s is not set: run this test through tests/integration/with_rgw.py "
			   "(meson test s3_rgw)", name);
	return v;
}

static void log_stderr(void *ctx, const char *msg)
{
	fprintf(stderr, "%s\n", msg);
}

static s3_cfg cfg_for(const char *bucket, const char *prefix, const char *style)
{
	char uri[1024], err[256];
	const char *ep = need("TPDEFS_TEST_S3_ENDPOINT");
	need("AWS_ACCESS_KEY_ID");
	need("AWS_SECRET_ACCESS_KEY");
	if (style && !strcmp(style, "virtual")) {
		/* bucket.localhost: curl resolves *.localhost to the loopback itself */
		const char *port = strrchr(ep, ':');
		snprintf(uri, sizeof(uri), "s3://%s/%s?endpoint=http://localhost%s&style=virtual",
			 bucket, prefix, port);
	} else {
		snprintf(uri, sizeof(uri), "s3://%s/%s?endpoint=%s", bucket, prefix, ep);
	}
	s3_cfg c;
	memset(&c, 0, sizeof(c));
	cr_assert_eq(s3_uri_parse(uri, &c, err, sizeof(err)), 0, "%s: %s", uri, err);
	c.log = log_stderr;
	c.retry_s = 10;
	return c;
}

/* A client on bucket (created) under prefix "t". */
static s3 *client(const char *bucket, const char *style)
{
	s3_cfg c = cfg_for(bucket, "t", style);
	s3 *h = NULL;
	char err[256];
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s3_bucket_create(h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s3_bucket_check(h, err, sizeof(err)), 0, "%s", err);
	return h;
}

static void ctl(const char *cmd)
{
	const char *path = need("TPDEFS_TEST_RGW_CTL");
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect %s", path);
	char line[128];
	int n = snprintf(line, sizeof(line), "%s\n", cmd);
	cr_assert_eq(write(fd, line, (size_t)n), n);
	ssize_t r = read(fd, line, sizeof(line) - 1);
	close(fd);
	cr_assert_gt(r, 0);
	line[r] = 0;
	cr_assert(!strncmp(line, "ok", 2), "rgw control %s: %s", cmd, line);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts))
		;
}

static void fill(uint8_t *b, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
}

static int tmpfile_with(const uint8_t *b, size_t n)
{
	char path[] = "/tmp/test_s3_rgwXXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, b + done, n - done);
		cr_assert_gt(w, 0);
		done += (size_t)w;
	}
	return fd;
}

/* The whole object back through s3_get_file, compared with want. */
static void check_get_file(s3 *h, const char *key, const uint8_t *want, size_t n)
{
	int fd = tmpfile_with((const uint8_t *)"stale bytes of an older, longer file", 36);
	uint64_t size = 0;
	cr_assert_eq(s3_get_file(h, key, fd, &size), 0, "%s", key);
	cr_assert_eq(size, n);
	uint8_t *got = malloc(n + 1);
	cr_assert_not_null(got);
	cr_assert_eq(pread(fd, got, n + 1, 0), (ssize_t)n); /* truncated to the object */
	cr_assert_eq(memcmp(got, want, n), 0, "%s differs", key);
	free(got);
	close(fd);
}

Test(s3_rgw, bucket_missing_then_created)
{
	s3_cfg c = cfg_for("t-bucket", "", NULL);
	s3 *h;
	char err[256];
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s3_bucket_check(h, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "t-bucket") && strstr(err, "no such bucket"), "%s", err);
	cr_assert_eq(s3_bucket_create(h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s3_bucket_check(h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s3_bucket_create(h, err, sizeof(err)), 0, "again: %s", err);
	s3_free(h);
}

Test(s3_rgw, put_get_head_delete_small)
{
	s3 *h = client("t-small", NULL);
	uint8_t data[1000], b[1000];
	fill(data, sizeof(data), 1);
	cr_assert_eq(s3_put_mem(h, "objects/a b+c.tpdo", data, sizeof(data)), 0);
	uint64_t sz = 0;
	cr_assert_eq(s3_head(h, "objects/a b+c.tpdo", &sz), 0);
	cr_assert_eq(sz, 1000);
	/* ranges at the edges */
	cr_assert_eq(s3_get(h, "objects/a b+c.tpdo", 0, 1, b), 0);
	cr_assert_eq(b[0], data[0]);
	cr_assert_eq(s3_get(h, "objects/a b+c.tpdo", 999, 1, b), 0);
	cr_assert_eq(b[0], data[999]);
	cr_assert_eq(s3_get(h, "objects/a b+c.tpdo", 0, 1000, b), 0);
	cr_assert_eq(memcmp(b, data, 1000), 0);
	cr_assert_eq(s3_get(h, "objects/a b+c.tpdo", 123, 500, b), 0);
	cr_assert_eq(memcmp(b, data + 123, 500), 0);
	cr_assert_eq(s3_get(h, "objects/a b+c.tpdo", 1000, 0, b), 0);
	/* past the end: a truncated object to the reader */
	cr_assert_eq(s3_get(h, "objects/a b+c.tpdo", 999, 2, b), -EIO);
	cr_assert_eq(s3_get(h, "objects/a b+c.tpdo", 1000, 1, b), -EIO);
	cr_assert_eq(s3_get(h, "objects/a b+c.tpdo", 5000, 10, b), -EIO);
	cr_assert_eq(s3_get(h, "objects/a b+c.tpdo", 1001, 0, b), -EIO);
	check_get_file(h, "objects/a b+c.tpdo", data, sizeof(data));
	/* missing keys */
	cr_assert_eq(s3_get(h, "objects/none", 0, 1, b), -ENOENT);
	cr_assert_eq(s3_head(h, "objects/none", &sz), -ENOENT);
	int fd = tmpfile_with(data, 1);
	cr_assert_eq(s3_get_file(h, "objects/none", fd, &sz), -ENOENT);
	close(fd);
	/* an empty object */
	cr_assert_eq(s3_put_mem(h, "objects/empty", NULL, 0), 0);
	cr_assert_eq(s3_head(h, "objects/empty", &sz), 0);
	cr_assert_eq(sz, 0);
	check_get_file(h, "objects/empty", data, 0);
	/* overwrite, then delete (twice: deleting nothing is fine) */
	cr_assert_eq(s3_put_mem(h, "objects/a b+c.tpdo", data, 10), 0);
	cr_assert_eq(s3_head(h, "objects/a b+c.tpdo", &sz), 0);
	cr_assert_eq(sz, 10);
	cr_assert_eq(s3_delete(h, "objects/a b+c.tpdo"), 0);
	cr_assert_eq(s3_delete(h, "objects/a b+c.tpdo"), 0);
	cr_assert_eq(s3_head(h, "objects/a b+c.tpdo", &sz), -ENOENT);
	/* a file upload below the multipart threshold */
	fd = tmpfile_with(data, sizeof(data));
	cr_assert_eq(s3_put_file(h, "objects/f", fd, sizeof(data)), 0);
	close(fd);
	check_get_file(h, "objects/f", data, sizeof(data));

	s3_stats st;
	s3_stats_get(h, &st);
	cr_assert_geq(st.puts, 4);
	cr_assert_geq(st.gets, 8);
	cr_assert_geq(st.heads, 4);
	cr_assert_eq(st.deletes, 2);
	cr_assert_geq(st.bytes_out, 2010);
	cr_assert_geq(st.bytes_in, 2500);
	cr_assert_eq(st.retries, 0);
	s3_free(h);
}

static void put_multipart_and_check(s3 *h, const char *key, size_t n, uint32_t seed,
				    uint64_t want_puts)
{
	uint8_t *data = malloc(n);
	cr_assert_not_null(data);
	fill(data, n, seed);
	int fd = tmpfile_with(data, n);
	s3_stats a, b;
	s3_stats_get(h, &a);
	cr_assert_eq(s3_put_file(h, key, fd, n), 0);
	s3_stats_get(h, &b);
	/* initiate + parts + complete */
	cr_assert_eq(b.puts - a.puts, want_puts, "%llu PUT/POST requests",
		     (unsigned long long)(b.puts - a.puts));
	close(fd);
	uint64_t sz = 0;
	cr_assert_eq(s3_head(h, key, &sz), 0);
	cr_assert_eq(sz, n);
	check_get_file(h, key, data, n);
	/* ranges across part boundaries */
	size_t part = 5u << 20;
	uint8_t *buf = malloc(2 * part);
	cr_assert_not_null(buf);
	cr_assert_eq(s3_get(h, key, part - 7, 14, buf), 0);
	cr_assert_eq(memcmp(buf, data + part - 7, 14), 0);
	cr_assert_eq(s3_get(h, key, n - 3, 3, buf), 0);
	cr_assert_eq(memcmp(buf, data + n - 3, 3), 0);
	cr_assert_eq(s3_get(h, key, n - 3, 4, buf), -EIO);
	free(buf);
	free(data);
}

Test(s3_rgw, multipart_small_parts, .timeout = 120)
{
	/* 12 MiB + 1 in 5 MiB parts: three parts, the last one short */
	setenv("TPDEFS_S3_SINGLE_MAX", "1048576", 1);
	setenv("TPDEFS_S3_PART_SIZE", "5242880", 1);
	s3 *h = client("t-mpu", NULL);
	put_multipart_and_check(h, "objects/mpu-small", (12u << 20) + 1, 7, 5);
	/* no upload left behind */
	s3_free(h);
}

Test(s3_rgw, multipart_70mib_defaults, .timeout = 200)
{
	/* default threshold (64 MiB) and part size (16 MiB): 5 parts, 4 in flight */
	s3 *h = client("t-mpu70", NULL);
	put_multipart_and_check(h, "objects/mpu-70", 70u << 20, 70, 7);
	s3_free(h);
}

typedef struct seen {
	int n;
	char keys[64][64];
	uint64_t sizes[64];
	int64_t mtime0;
} seen;

static int on_key(void *ctx, const char *key, uint64_t size, int64_t mtime_ns)
{
	seen *s = ctx;
	cr_assert_lt(s->n, 64);
	snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
	s->sizes[s->n] = size;
	if (s->n == 0)
		s->mtime0 = mtime_ns;
	s->n++;
	return 0;
}

static int stop_at_3(void *ctx, const char *key, uint64_t size, int64_t mtime_ns)
{
	int *n = ctx;
	return ++*n == 3 ? 42 : 0;
}

Test(s3_rgw, list_pages_in_key_order, .timeout = 120)
{
	setenv("TPDEFS_S3_LIST_MAX", "7", 1); /* 25 keys: pages of 7, 7, 7, 4 */
	s3 *h = client("t-list", NULL);
	uint8_t d[64];
	fill(d, sizeof(d), 3);
	char key[64];
	/* written in a scrambled order */
	for (int i = 0; i < 25; i++) {
		int k = (i * 11) % 25;
		snprintf(key, sizeof(key), "objects/%016x.tpdo", k);
		cr_assert_eq(s3_put_mem(h, key, d, (size_t)k), 0);
	}
	cr_assert_eq(s3_put_mem(h, "other/x", d, 1), 0);
	/* the same names in another client's prefix are not listed */
	s3_cfg c2 = cfg_for("t-list", "u", NULL);
	s3 *h2;
	char err[256];
	cr_assert_eq(s3_new(&c2, &h2, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s3_put_mem(h2, "objects/0000000000000000.tpdo", d, 1), 0);

	s3_stats a, b;
	s3_stats_get(h, &a);
	seen *s = calloc(1, sizeof(*s));
	cr_assert_not_null(s);
	cr_assert_eq(s3_list(h, "objects/", on_key, s), 0);
	s3_stats_get(h, &b);
	cr_assert_eq(b.lists - a.lists, 4);
	cr_assert_eq(s->n, 25);
	for (int i = 0; i < 25; i++) {
		snprintf(key, sizeof(key), "objects/%016x.tpdo", i);
		cr_assert_str_eq(s->keys[i], key);
		cr_assert_eq(s->sizes[i], (uint64_t)i);
	}
	int64_t now = (int64_t)time(NULL) * 1000000000;
	cr_assert(s->mtime0 > now - 600ll * 1000000000 && s->mtime0 < now + 600ll * 1000000000,
		  "mtime %lld", (long long)s->mtime0);
	/* everything under the client's prefix */
	memset(s, 0, sizeof(*s));
	cr_assert_eq(s3_list(h, "", on_key, s), 0);
	cr_assert_eq(s->n, 26);
	cr_assert_str_eq(s->keys[25], "other/x");
	memset(s, 0, sizeof(*s));
	cr_assert_eq(s3_list(h, "nothing/", on_key, s), 0);
	cr_assert_eq(s->n, 0);
	int n = 0;
	cr_assert_eq(s3_list(h, "objects/", stop_at_3, &n), 42);
	cr_assert_eq(n, 3);
	free(s);
	s3_free(h2);
	s3_free(h);
}

/* A raw signed request built from the signing functions alone (so this also checks them against
 * RGW): method on bucket/key (full key) with one query parameter, a body and the payload hash to
 * claim for it. The reply's status and (head of its) body come back. */
static size_t grab(char *p, size_t size, size_t n, void *ud)
{
	char *buf = ud;
	size_t len = strlen(buf), k = size * n;
	if (len + k < 4096) {
		memcpy(buf + len, p, k);
		buf[len + k] = 0;
	}
	return size * n;
}

static long raw_request(const char *method, const char *bucket, const char *key,
			const char *qname, const char *body, const char *claimed_sha,
			char reply[4096])
{
	const char *ep = need("TPDEFS_TEST_S3_ENDPOINT");
	char date[S3SIG_AMZ_DATE], auth[1024], query[64], hdr[4][1200];
	s3sig_amz_date(time(NULL), date);
	s3sig_kv q[] = {{qname, ""}};
	size_t nq = qname ? 1 : 0;
	s3sig_canonical_query(q, nq, query, sizeof(query));
	s3sig_target t;
	cr_assert_eq(s3sig_target_make(ep, bucket, 1, key, query, &t), 0);
	s3sig_kv hv[] = {{"host", t.host}, {"x-amz-content-sha256", claimed_sha},
			 {"x-amz-date", date}};
	s3sig_req r = {method, t.path, q, nq, hv, 3, claimed_sha};
	cr_assert_gt(s3sig_authorization(need("AWS_ACCESS_KEY_ID"), need("AWS_SECRET_ACCESS_KEY"),
					 "us-east-1", date, &r, auth, sizeof(auth)), 0);
	snprintf(hdr[0], sizeof(hdr[0]), "x-amz-content-sha256: %s", claimed_sha);
	snprintf(hdr[1], sizeof(hdr[1]), "x-amz-date: %s", date);
	snprintf(hdr[2], sizeof(hdr[2]), "Authorization: %s", auth);
	snprintf(hdr[3], sizeof(hdr[3]), "Content-Type: application/octet-stream");
	struct curl_slist *l = NULL;
	for (int i = 0; i < 4; i++)
		l = curl_slist_append(l, hdr[i]);
	CURL *cu = curl_easy_init();
	cr_assert(l && cu);
	reply[0] = 0;
	curl_easy_setopt(cu, CURLOPT_URL, t.url);
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, l);
	curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, grab);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, reply);
	cr_assert_eq(curl_easy_perform(cu), CURLE_OK);
	long st = 0;
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(cu);
	curl_slist_free_all(l);
	return st;
}

/* Start a multipart upload and leave it, as a node that died mid-upload does. */
static void abandon_upload(const char *bucket, const char *key, char *upload_id, size_t idsize)
{
	char *reply = calloc(1, 4096);
	cr_assert_not_null(reply);
	long st = raw_request("POST", bucket, key, "uploads", "", S3SIG_EMPTY_SHA256, reply);
	cr_assert_eq(st, 200, "%s", reply);
	cr_assert_eq(s3xml_parse_initiate(reply, strlen(reply), upload_id, idsize), 0, "%s", reply);
	free(reply);
}

/* What x-amz-content-sha256 buys: bytes that do not match the signed hash are refused. */
Test(s3_rgw, payload_hash_is_verified)
{
	s3 *h = client("t-sha", NULL);
	char *reply = calloc(1, 4096);
	cr_assert_not_null(reply);
	char sha[S3SIG_SHA256_HEX];
	s3sig_sha256_hex("good bytes", 10, sha);
	cr_assert_eq(raw_request("PUT", "t-sha", "t/k", NULL, "good bytes", sha, reply), 200,
		     "%s", reply);
	long st = raw_request("PUT", "t-sha", "t/k2", NULL, "bad! bytes", sha, reply);
	cr_assert_eq(st, 400, "HTTP %ld: %s", st, reply);
	char code[64];
	cr_assert_eq(s3xml_parse_error(reply, strlen(reply), code, sizeof(code), NULL, 0), 0);
	cr_assert_str_eq(code, "XAmzContentSHA256Mismatch");
	uint64_t sz;
	cr_assert_eq(s3_head(h, "k", &sz), 0);
	cr_assert_eq(s3_head(h, "k2", &sz), -ENOENT);
	free(reply);
	s3_free(h);
}

typedef struct ups {
	int n;
	char key[128], id[512];
	int64_t initiated;
} ups;

static int on_upload(void *ctx, const char *key, const char *upload_id, int64_t initiated_ns)
{
	ups *u = ctx;
	u->n++;
	snprintf(u->key, sizeof(u->key), "%s", key);
	snprintf(u->id, sizeof(u->id), "%s", upload_id);
	u->initiated = initiated_ns;
	return 0;
}

Test(s3_rgw, abandoned_upload_listed_and_aborted, .timeout = 60)
{
	s3 *h = client("t-uploads", NULL);
	char id[S3XML_TOKEN_MAX + 1];
	abandon_upload("t-uploads", "t/objects/dead.tpdo", id, sizeof(id));
	ups u = {0};
	cr_assert_eq(s3_uploads_list(h, "objects/", on_upload, &u), 0);
	cr_assert_eq(u.n, 1);
	cr_assert_str_eq(u.key, "objects/dead.tpdo");
	cr_assert_str_eq(u.id, id);
	int64_t now = (int64_t)time(NULL) * 1000000000;
	cr_assert(u.initiated > now - 600ll * 1000000000 && u.initiated < now + 600ll * 1000000000);
	/* paging through several */
	char id2[S3XML_TOKEN_MAX + 1], id3[S3XML_TOKEN_MAX + 1];
	abandon_upload("t-uploads", "t/objects/dead2.tpdo", id2, sizeof(id2));
	abandon_upload("t-uploads", "t/objects/dead2.tpdo", id3, sizeof(id3));
	setenv("TPDEFS_S3_LIST_MAX", "1", 1);
	s3_cfg c = cfg_for("t-uploads", "t", NULL);
	s3 *h1;
	char err[256];
	cr_assert_eq(s3_new(&c, &h1, err, sizeof(err)), 0, "%s", err);
	memset(&u, 0, sizeof(u));
	cr_assert_eq(s3_uploads_list(h1, "objects/", on_upload, &u), 0);
	cr_assert_eq(u.n, 3);
	s3_free(h1);
	cr_assert_eq(s3_upload_abort(h, "objects/dead.tpdo", id), 0);
	cr_assert_eq(s3_upload_abort(h, "objects/dead2.tpdo", id2), 0);
	cr_assert_eq(s3_upload_abort(h, "objects/dead2.tpdo", id3), 0);
	cr_assert_eq(s3_upload_abort(h, "objects/dead.tpdo", id), 0); /* gone already */
	memset(&u, 0, sizeof(u));
	cr_assert_eq(s3_uploads_list(h, "objects/", on_upload, &u), 0);
	cr_assert_eq(u.n, 0);
	uint64_t sz;
	cr_assert_eq(s3_head(h, "objects/dead.tpdo", &sz), -ENOENT);
	s3_free(h);
}

Test(s3_rgw, wrong_secret_is_eacces)
{
	s3 *ok = client("t-auth", NULL);
	cr_assert_eq(s3_put_mem(ok, "k", "x", 1), 0);
	s3_free(ok);
	setenv("AWS_SECRET_ACCESS_KEY", "0123456789012345678901234567890123456789", 1);
	s3_cfg c = cfg_for("t-auth", "t", NULL);
	s3 *h;
	char err[256];
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s3_bucket_check(h, err, sizeof(err)), -EACCES);
	cr_assert(strstr(err, "access denied"), "%s", err);
	uint8_t b[1];
	cr_assert_eq(s3_get(h, "k", 0, 1, b), -EACCES);
	cr_assert_eq(s3_put_mem(h, "k2", "x", 1), -EACCES);
	s3_stats st;
	s3_stats_get(h, &st);
	cr_assert_eq(st.retries, 0); /* refused, not retried */
	s3_free(h);
	setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY0000000000", 1);
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s3_get(h, "k", 0, 1, b), -EACCES);
	s3_free(h);
}

Test(s3_rgw, virtual_host_style, .timeout = 60)
{
	s3 *h = client("t-virtual", "virtual");
	cr_assert_eq(s3_config(h)->path_style, 0);
	uint8_t d[300], b[300];
	fill(d, sizeof(d), 9);
	cr_assert_eq(s3_put_mem(h, "objects/v", d, sizeof(d)), 0);
	cr_assert_eq(s3_get(h, "objects/v", 100, 200, b), 0);
	cr_assert_eq(memcmp(b, d + 100, 200), 0);
	seen *s = calloc(1, sizeof(*s));
	cr_assert_not_null(s);
	cr_assert_eq(s3_list(h, "objects/", on_key, s), 0);
	cr_assert_eq(s->n, 1);
	free(s);
	/* the path-style client sees the same object */
	s3 *p = client("t-virtual", NULL);
	uint64_t sz;
	cr_assert_eq(s3_head(p, "objects/v", &sz), 0);
	cr_assert_eq(sz, 300);
	s3_free(p);
	s3_free(h);
}

typedef struct par {
	s3 *h;
	int id, rc;
} par;

static void *par_worker(void *arg)
{
	par *p = arg;
	uint8_t d[4096], b[4096];
	fill(d, sizeof(d), (uint32_t)p->id);
	char key[64];
	for (int i = 0; i < 10 && !p->rc; i++) {
		snprintf(key, sizeof(key), "par/%d/%d", p->id, i);
		p->rc = s3_put_mem(p->h, key, d, sizeof(d) - (size_t)i);
		if (!p->rc)
			p->rc = s3_get(p->h, key, 0, sizeof(d) - (size_t)i, b);
		if (!p->rc && memcmp(b, d, sizeof(d) - (size_t)i))
			p->rc = -EBADMSG;
	}
	return NULL;
}

Test(s3_rgw, one_handle_many_threads, .timeout = 120)
{
	s3 *h = client("t-threads", NULL);
	enum { N = 8 };
	pthread_t t[N];
	par p[N];
	for (int i = 0; i < N; i++) {
		p[i] = (par){h, i, 0};
		cr_assert_eq(pthread_create(&t[i], NULL, par_worker, &p[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(p[i].rc, 0, "thread %d: %d", i, p[i].rc);
	}
	s3_free(h);
}

Test(s3_rgw, endpoint_down_gives_eio_after_retry_s, .timeout = 120)
{
	s3_cfg c = cfg_for("t-down", "t", NULL);
	s3 *h;
	char err[256];
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s3_bucket_create(h, err, sizeof(err)), 0, "%s", err);
	s3_free(h);
	c.retry_s = 1.5;
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), 0, "%s", err);
	ctl("stop");
	double t0 = now_s();
	uint8_t b[4];
	int rc = s3_get(h, "k", 0, 4, b);
	double dt = now_s() - t0;
	int brc = s3_bucket_check(h, err, sizeof(err));
	ctl("start");
	cr_assert_eq(rc, -EIO);
	cr_assert(dt >= 1.4 && dt < 5, "gave up after %.2f s", dt);
	cr_assert_eq(brc, -EIO);
	cr_assert(strstr(err, "unreachable"), "%s", err);
	s3_stats st;
	s3_stats_get(h, &st);
	cr_assert_geq(st.retries, 2);
	cr_assert_eq(st.failures, 2);
	/* back up: the same handle works again */
	cr_assert_eq(s3_put_mem(h, "k", "abcd", 4), 0);
	cr_assert_eq(s3_get(h, "k", 0, 4, b), 0);
	s3_free(h);
}

Test(s3_rgw, radosgw_restarted_mid_retry_call_succeeds, .timeout = 120)
{
	s3 *h = client("t-restart", NULL);
	uint8_t d[2000], b[2000];
	fill(d, sizeof(d), 5);
	cr_assert_eq(s3_put_mem(h, "before", d, sizeof(d)), 0);
	ctl("stop");
	ctl("start_in 1.5");
	double t0 = now_s();
	/* retry_s is 10: the PUT keeps trying while radosgw is down and lands once it is back */
	cr_assert_eq(s3_put_mem(h, "during", d, sizeof(d)), 0);
	double dt = now_s() - t0;
	cr_assert(dt >= 1.0, "the PUT went through while radosgw was down? (%.2f s)", dt);
	cr_assert_eq(s3_get(h, "during", 0, sizeof(d), b), 0);
	cr_assert_eq(memcmp(b, d, sizeof(d)), 0);
	cr_assert_eq(s3_get(h, "before", 0, sizeof(d), b), 0);
	cr_assert_eq(memcmp(b, d, sizeof(d)), 0);
	s3_stats st;
	s3_stats_get(h, &st);
	cr_assert_geq(st.retries, 1);
	cr_assert_eq(st.failures, 0);
	s3_free(h);
}

/* ---- credentials from a file that changes under a running client ---------------------------
 * The client keeps the keys of its credentials file current: a request first looks at the file
 * (at most once every TPDEFS_S3_CREDS_CHECK_MS, default 1 s) and a 401/403 looks at it at once
 * and retries once with new keys. Each test gives the radosgw user keys of its own (key_add /
 * key_rm through the control socket: radosgw-admin) and takes them away again; the run's own key
 * stays, and the environment's keys are unset so only the file can be used. */

typedef struct cred {
	char ak[32], sk[48];
} cred;

static cred new_key(void)
{
	static const char up[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	static const char any[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
	uint8_t r[60];
	FILE *f = fopen("/dev/urandom", "rb");
	cr_assert_not_null(f);
	cr_assert_eq(fread(r, 1, sizeof(r), f), sizeof(r));
	fclose(f);
	cred k;
	memcpy(k.ak, "TPDC", 4);
	for (int i = 0; i < 16; i++)
		k.ak[4 + i] = up[r[i] % 36];
	k.ak[20] = 0;
	for (int i = 0; i < 40; i++)
		k.sk[i] = any[r[20 + i] % 64];
	k.sk[40] = 0;
	return k;
}

static void key_add(const cred *k)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "key_add %s %s", k->ak, k->sk);
	ctl(cmd);
}

static void key_rm(const cred *k)
{
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "key_rm %s", k->ak);
	ctl(cmd);
}

static void put_text(const char *path, const char *text, int replace)
{
	char tmp[300];
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	/* replace: a new file renamed over the old one (aws-vault, credential_process writers);
	 * else rewritten in place (an editor, `>` in a shell) */
	const char *p = replace ? tmp : path;
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f, "%s", p);
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
	if (replace)
		cr_assert_eq(rename(tmp, path), 0);
}

static void put_creds(const char *path, const cred *k, int replace)
{
	char ini[512];
	snprintf(ini, sizeof(ini), "[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = "
				   "x\n\n[default]\naws_access_key_id = %s\naws_secret_access_key = "
				   "%s\n", k->ak, k->sk);
	put_text(path, ini, replace);
}

/* The client's log lines, from any thread. */
typedef struct logbuf {
	pthread_mutex_t mu;
	char text[65536];
} logbuf;

static void log_collect(void *ctx, const char *msg)
{
	logbuf *l = ctx;
	fprintf(stderr, "%s\n", msg);
	pthread_mutex_lock(&l->mu);
	size_t n = strlen(l->text);
	snprintf(l->text + n, sizeof(l->text) - n, "%s\n", msg);
	pthread_mutex_unlock(&l->mu);
}

static int count_in(logbuf *l, const char *what)
{
	int n = 0;
	pthread_mutex_lock(&l->mu);
	for (const char *p = l->text; (p = strstr(p, what)); p++)
		n++;
	pthread_mutex_unlock(&l->mu);
	return n;
}

static logbuf *logbuf_new(void)
{
	logbuf *l = calloc(1, sizeof(*l));
	cr_assert_not_null(l);
	pthread_mutex_init(&l->mu, NULL);
	return l;
}

/* A client on bucket (created) whose keys come from the credentials file path alone. */
static s3 *file_client(const char *bucket, const char *path, logbuf *l)
{
	s3_cfg c = cfg_for(bucket, "t", NULL);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	snprintf(c.cred_file, sizeof(c.cred_file), "%s", path);
	c.log = log_collect;
	c.log_ctx = l;
	s3 *h = NULL;
	char err[256];
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s3_bucket_create(h, err, sizeof(err)), 0, "%s", err);
	return h;
}

static void cred_path(char *path, size_t size)
{
	snprintf(path, size, "/tmp/test_s3_credsXXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
}

static void get_ok(s3 *h, const char *name, const char *want)
{
	char b[64] = "";
	size_t n = strlen(want);
	int rc = s3_get(h, name, 0, n, b);
	cr_assert_eq(rc, 0, "GET %s: %d", name, rc);
	cr_assert_eq(memcmp(b, want, n), 0);
}

static void no_secret_in(logbuf *l, const cred *k)
{
	cr_assert_eq(count_in(l, k->sk), 0, "a secret key in the log:\n%s", l->text);
}

/* The file is rewritten with key B and key A is taken away: the next check of the file (1 s)
 * picks B up, so requests are signed with B and none is refused. */
Test(s3_rgw, creds_file_rotated_key_picked_up, .timeout = 120)
{
	char path[64];
	cred_path(path, sizeof(path));
	cred a = new_key(), b = new_key();
	key_add(&a);
	put_creds(path, &a, 1);
	logbuf *l = logbuf_new();
	s3 *h = file_client("t-cred-rot", path, l);
	cr_assert_eq(s3_put_mem(h, "k", "before", 6), 0);
	key_add(&b);
	put_creds(path, &b, 1);
	key_rm(&a);
	sleep_ms(1100); /* the file is looked at again */
	get_ok(h, "k", "before");
	cr_assert_eq(s3_put_mem(h, "k2", "after", 5), 0);
	get_ok(h, "k2", "after");
	cr_assert_eq(count_in(l, "HTTP 403"), 0, "a request was signed with the removed key:\n%s",
		     l->text);
	cr_assert_eq(count_in(l, "new keys loaded"), 1, "%s", l->text);
	s3_stats st;
	s3_stats_get(h, &st);
	cr_assert_eq(st.failures, 0);
	no_secret_in(l, &a);
	no_secret_in(l, &b);
	s3_free(h);
	key_rm(&b);
	unlink(path);
	free(l);
}

/* The same with the periodic check out of the way (an hour): the request signed with the removed
 * key gets 403, the client looks at the file at once, finds key B and retries once: the call
 * succeeds. */
Test(s3_rgw, creds_file_rotated_key_on_403, .timeout = 120)
{
	setenv("TPDEFS_S3_CREDS_CHECK_MS", "3600000", 1);
	char path[64];
	cred_path(path, sizeof(path));
	cred a = new_key(), b = new_key();
	key_add(&a);
	put_creds(path, &a, 1);
	logbuf *l = logbuf_new();
	s3 *h = file_client("t-cred-403", path, l);
	cr_assert_eq(s3_put_mem(h, "k", "before", 6), 0);
	key_add(&b);
	put_creds(path, &b, 0);
	key_rm(&a);
	get_ok(h, "k", "before");
	cr_assert_eq(count_in(l, "HTTP 403"), 1, "%s", l->text);
	cr_assert_eq(count_in(l, "trying again with its new keys"), 1, "%s", l->text);
	/* and from then on signed with B */
	cr_assert_eq(s3_put_mem(h, "k2", "after", 5), 0);
	get_ok(h, "k2", "after");
	cr_assert_eq(count_in(l, "HTTP 403"), 1, "%s", l->text);
	s3_stats st;
	s3_stats_get(h, &st);
	cr_assert_eq(st.failures, 0);
	no_secret_in(l, &a);
	no_secret_in(l, &b);
	s3_free(h);
	key_rm(&b);
	unlink(path);
	free(l);
}

/* A wrong secret written into the file is used (-EACCES: a 403 finds the same keys in the file,
 * nothing to retry with), and writing the right one back recovers the same client at once. */
Test(s3_rgw, creds_file_wrong_secret_then_fixed, .timeout = 120)
{
	char path[64];
	cred_path(path, sizeof(path));
	cred a = new_key();
	key_add(&a);
	put_creds(path, &a, 1);
	logbuf *l = logbuf_new();
	s3 *h = file_client("t-cred-wrong", path, l);
	cr_assert_eq(s3_put_mem(h, "k", "before", 6), 0);
	cred bad = a;
	bad.sk[0] = bad.sk[0] == 'x' ? 'y' : 'x'; /* same length: the file keeps its size */
	put_creds(path, &bad, 0);
	sleep_ms(1100);
	char b[8];
	char err[256];
	cr_assert_eq(s3_get(h, "k", 0, 6, b), -EACCES);
	cr_assert_eq(s3_put_mem(h, "k2", "x", 1), -EACCES);
	cr_assert_eq(s3_bucket_check(h, err, sizeof(err)), -EACCES);
	cr_assert(strstr(err, "access denied"), "%s", err);
	/* the right secret back, within the second: the 403 path finds it */
	put_creds(path, &a, 1);
	get_ok(h, "k", "before");
	cr_assert_eq(s3_put_mem(h, "k2", "after", 5), 0);
	get_ok(h, "k2", "after");
	cr_assert_eq(count_in(l, "trying again with its new keys"), 1, "%s", l->text);
	s3_stats st;
	s3_stats_get(h, &st);
	cr_assert_eq(st.retries, 0); /* a refusal is not retried with backoff */
	no_secret_in(l, &a);
	no_secret_in(l, &bad);
	s3_free(h);
	key_rm(&a);
	unlink(path);
	free(l);
}

/* A half-written file, a missing one, one without the profile: the keys loaded before stay in
 * use, and the failure is logged once (no secret in it). A good file after them is taken. */
Test(s3_rgw, creds_file_garbage_keeps_old_keys, .timeout = 120)
{
	char path[64];
	cred_path(path, sizeof(path));
	cred a = new_key(), b = new_key();
	key_add(&a);
	put_creds(path, &a, 1);
	logbuf *l = logbuf_new();
	s3 *h = file_client("t-cred-junk", path, l);
	cr_assert_eq(s3_put_mem(h, "k", "before", 6), 0);
	char half[256];
	snprintf(half, sizeof(half), "[default]\naws_access_key_id = %s\naws_secret_acc", b.ak);
	put_text(path, half, 0);
	sleep_ms(1100);
	get_ok(h, "k", "before");
	cr_assert_eq(count_in(l, "keeping the keys loaded before"), 1, "%s", l->text);
	sleep_ms(1100);
	get_ok(h, "k", "before");
	unlink(path);
	sleep_ms(1100);
	get_ok(h, "k", "before");
	put_text(path, "\x01\x02garbage\n[default\n=\n[default]\naws_access_key_id\n", 1);
	sleep_ms(1100);
	get_ok(h, "k", "before");
	put_text(path, "[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = x\n", 1);
	sleep_ms(1100);
	get_ok(h, "k", "before");
	cr_assert_eq(count_in(l, "keeping the keys loaded before"), 1, "logged more than once:\n%s",
		     l->text);
	cr_assert_eq(count_in(l, "new keys loaded"), 0, "%s", l->text);
	/* a good file again, with another key */
	key_add(&b);
	put_creds(path, &b, 1);
	key_rm(&a);
	get_ok(h, "k", "before");
	cr_assert_eq(s3_put_mem(h, "k2", "after", 5), 0);
	get_ok(h, "k2", "after");
	s3_stats st;
	s3_stats_get(h, &st);
	cr_assert_eq(st.failures, 0);
	no_secret_in(l, &a);
	no_secret_in(l, &b);
	s3_free(h);
	key_rm(&b);
	unlink(path);
	free(l);
}

typedef struct cred_load {
	s3 *h;
	atomic_int *stop;
	int rc, n;
} cred_load;

static void *cred_reader(void *arg)
{
	cred_load *p = arg;
	char b[6];
	while (!atomic_load(p->stop) && !p->rc) {
		p->rc = s3_get(p->h, "k", 0, 6, b);
		if (!p->rc && memcmp(b, "before", 6))
			p->rc = -EBADMSG;
		p->n++;
	}
	return NULL;
}

/* Threads reading without a pause while the keys rotate twice under them: every request
 * succeeds (the ones signed with a key just removed through the 403 path). */
Test(s3_rgw, creds_file_rotated_under_load, .timeout = 180)
{
	char path[64];
	cred_path(path, sizeof(path));
	cred a = new_key(), b = new_key(), c = new_key();
	key_add(&a);
	put_creds(path, &a, 1);
	logbuf *l = logbuf_new();
	s3 *h = file_client("t-cred-load", path, l);
	cr_assert_eq(s3_put_mem(h, "k", "before", 6), 0);
	enum { N = 4 };
	atomic_int stop = 0;
	pthread_t t[N];
	cred_load p[N];
	for (int i = 0; i < N; i++) {
		p[i] = (cred_load){h, &stop, 0, 0};
		cr_assert_eq(pthread_create(&t[i], NULL, cred_reader, &p[i]), 0);
	}
	key_add(&b);
	put_creds(path, &b, 1);
	key_rm(&a);
	key_add(&c);
	put_creds(path, &c, 0);
	key_rm(&b);
	sleep_ms(300);
	atomic_store(&stop, 1);
	int total = 0;
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(p[i].rc, 0, "thread %d: %d after %d reads", i, p[i].rc, p[i].n);
		total += p[i].n;
	}
	cr_assert_gt(total, 20);
	s3_stats st;
	s3_stats_get(h, &st);
	cr_assert_eq(st.failures, 0);
	no_secret_in(l, &a);
	no_secret_in(l, &b);
	no_secret_in(l, &c);
	s3_free(h);
	key_rm(&c);
	unlink(path);
	free(l);
}
