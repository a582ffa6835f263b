/* s3.h - a small S3 client: AWS Signature Version 4 over HTTP or HTTPS (libcurl for transport,
 * OpenSSL's libcrypto for SHA-256 and HMAC), path-style or virtual-host style addressing.
 *
 * What the blob layer needs and no more: single and multipart PUT of a local file, ranged GET,
 * HEAD, DELETE, ListObjectsV2, bucket check/create, and the multipart uploads left behind by a
 * node that died mid-upload (list, abort).
 *
 * Threads: one s3 handle is shared by every thread of the process; each call takes a connection
 * (curl easy handle) from the handle's pool and gives it back, so calls run in parallel.
 *
 * Errors are negative errno: -ENOENT (404: no such key or bucket), -EACCES (401/403, or 400
 * ExpiredToken: a missing, wrong, expired or unauthorised key), -EIO (5xx / network failure after the retries ran out, or a reply that
 * does not match what was asked: short body, bad XML), -EINVAL (a bad argument). Timeouts, 5xx,
 * 429 and 503 SlowDown are retried with exponential backoff and full jitter for up to retry_s
 * seconds in all; each failed try is logged through cfg->log. Credentials never appear in a
 * message, a log line or an error string.
 */
#ifndef TPDEFS_S3_H
#define TPDEFS_S3_H

#include <stddef.h>
#include <stdint.h>

#define S3_URI_MAX 2048

typedef struct s3 s3;

/* A log line (no newline) from any thread; ctx is cfg->log_ctx. */
typedef void (*s3_log_fn)(void *ctx, const char *msg);

typedef struct s3_cfg {
	char endpoint[512];   /* scheme://host[:port], no path; default https://s3.<region>.amazonaws.com */
	char region[64];      /* default us-east-1 */
	char bucket[64];
	char prefix[512];     /* key prefix without leading or trailing '/', may be empty */
	int path_style;       /* 1: endpoint/bucket/key (default when the endpoint is an IP address
			       * or has a port), 0: bucket.host/key */
	char cred_file[1024]; /* "": AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
			       * AWS_SESSION_TOKEN) from the environment, read once; else an
			       * AWS-style credentials file (ini, [profile] sections), read again
			       * when it changes (see s3_new) */
	char profile[64];     /* section of cred_file; default "default" (or AWS_PROFILE) */
	double retry_s;       /* total time spent retrying one call; <= 0: 30 s, or TPDEFS_S3_RETRY_S */
	s3_log_fn log;        /* may be NULL */
	void *log_ctx;
} s3_cfg;

/* 1 when s starts with s3:// (any case), 0 otherwise. */
int s3_uri_is(const char *s);

/* s3://bucket[/prefix][?endpoint=URL&region=R&style=path|virtual&credentials=FILE&profile=P]
 * into cfg (log fields untouched, retry_s 0). 0, or -EINVAL with a one-line reason in err.
 * Secrets are never part of a URI: one that carries user info (s3://key:secret@...) is refused. */
int s3_uri_parse(const char *uri, s3_cfg *cfg, char *err, size_t errlen);

/* The URI's canonical form (scheme, bucket, prefix, endpoint, region, style), for records and
 * messages: two URIs naming the same place give the same string. */
void s3_cfg_describe(const s3_cfg *cfg, char *buf, size_t size);

/* A client. Loads the credentials (-EACCES with a message when there are none or the file
 * cannot be read) but does not contact the endpoint. Keys from a file are kept current: a
 * request looks at the file first (at most once a second) and reads it again when it changed;
 * a request refused with 401/403 looks at once and, when the file holds other keys by then, is
 * sent once more with them. A file that cannot be read then, or holds no keys for the profile,
 * keeps the keys loaded before (logged once). Keys from the environment never change. */
int s3_new(const s3_cfg *cfg, s3 **out, char *err, size_t errlen);
void s3_free(s3 *c);
const s3_cfg *s3_config(const s3 *c);

/* HEAD the bucket: 0, -ENOENT no such bucket, -EACCES wrong key or not allowed, -EIO endpoint
 * unreachable (after retries); one-line message in err. */
int s3_bucket_check(s3 *c, char *err, size_t errlen);
/* Create the bucket (0 also when this key owns it already). */
int s3_bucket_create(s3 *c, char *err, size_t errlen);

/* Keys are relative to cfg->prefix ("objects/00000000000000ab.tpdo"). */

/* Upload size bytes of fd (read with pread from offset 0) as key: one PUT up to 64 MiB,
 * multipart above it (parts of 16 MiB or more, uploaded in parallel up to 4 at a time,
 * completed, and the result's size checked with HEAD). Every request carries the payload's
 * SHA-256 (x-amz-content-sha256), so the server refuses bytes damaged on the way. A failed
 * multipart upload is aborted (best effort; gc removes what a dead node leaves). */
int s3_put_file(s3 *c, const char *key, int fd, uint64_t size);
/* Upload len bytes from memory as key (one PUT). */
int s3_put_mem(s3 *c, const char *key, const void *buf, size_t len);
/* Ranged GET: exactly len bytes at off into buf, or -EIO when the object is shorter (a
 * truncated object), -ENOENT when there is no such key. */
int s3_get(s3 *c, const char *key, uint64_t off, size_t len, void *buf);
/* The whole object into fd (written from offset 0); its size in *size. */
int s3_get_file(s3 *c, const char *key, int fd, uint64_t *size);
/* Size of key, -ENOENT when absent. */
int s3_head(s3 *c, const char *key, uint64_t *size);
/* Delete key (0 also when it did not exist). */
int s3_delete(s3 *c, const char *key);

/* Every key under prefix (relative to cfg->prefix, e.g. "objects/"), in key order, with its size
 * and last-modified time. fn returns nonzero to stop (that value is returned). */
typedef int (*s3_list_fn)(void *ctx, const char *key, uint64_t size, int64_t mtime_ns);
int s3_list(s3 *c, const char *prefix, s3_list_fn fn, void *ctx);

/* Multipart uploads in progress under prefix: key, upload id, when it was initiated. */
typedef int (*s3_upload_fn)(void *ctx, const char *key, const char *upload_id, int64_t initiated_ns);
int s3_uploads_list(s3 *c, const char *prefix, s3_upload_fn fn, void *ctx);
int s3_upload_abort(s3 *c, const char *key, const char *upload_id);

/* Counters since s3_new (requests sent, by kind; bytes moved), for stats and benchmarks. */
typedef struct s3_stats {
	uint64_t gets, puts, heads, deletes, lists, retries, failures;
	uint64_t bytes_in, bytes_out;
} s3_stats;
void s3_stats_get(s3 *c, s3_stats *st);

#endif
