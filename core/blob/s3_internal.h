/* s3_internal.h - shared by the S3 client's files only (s3.c, s3_uri.c, s3_creds.c, s3_put.c):
 * the handle, its credentials, one request and the helpers they use. Nothing but core/blob/s3*.c
 * includes it.
 */
#ifndef TPDEFS_S3_INTERNAL_H
#define TPDEFS_S3_INTERNAL_H

#include "s3.h"
#include "s3_sign.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define POOL_MAX 16
#define ERRBODY_MAX 8192

/* The keys a handle signs with (s3_creds.c loads them). Never in a message or a log line; secret
 * and token are wiped by s3_free, the whole handle when s3_new fails. */
typedef struct s3_creds {
	char access_key[256];
	char secret[256];
	char token[4096];
} s3_creds;

/* Threads and locks:
 * - An s3 handle is immutable after s3_new except for: the connection pool (pool_mu guards
 *   pool[] and npool), the curl share (DNS cache and TLS sessions; curl takes share_mu[kind]
 *   through the lock callbacks) and the counters (atomics). Any thread may call any function.
 * - A call owns the curl easy handle it took from the pool until it gives it back; the handle
 *   keeps its live connection, so the pool is the connection pool. Connections themselves are
 *   not put in the share: curl does not support a shared connection cache used by concurrent
 *   threads (CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT).
 */
struct s3 {
	s3_cfg cfg;
	s3_creds creds;
	double retry_s;
	uint64_t single_max, part_size;
	int list_max;
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_mu;
	CURL *pool[POOL_MAX];
	int npool;
	_Atomic uint64_t gets, puts, heads, deletes, lists, retries, failures, bytes_in, bytes_out;
	/* until when (CLOCK_MONOTONIC, microseconds) the endpoint counts as down: a request that
	 * spent its whole retry budget sets it; a request then gives up after its first failed
	 * try instead of waiting out a budget of its own; any success clears it */
	_Atomic int64_t down_until_us;
};

/* ---- s3.c: small helpers ---- */

/* A one-line message into err (nothing when err is NULL or errlen is 0). */
void s3_say(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Copy n bytes of s into a field of size bytes; -ENAMETOOLONG when it does not fit. */
int s3_setstr(char *dst, size_t size, const char *s, size_t n);
/* A line through cfg.log, when there is one. */
void s3_logf(const s3 *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- s3_uri.c: what s3_new checks ---- */

/* 1 when b is a bucket name S3 and DNS accept. */
int s3_bucket_ok(const char *b);

/* ---- s3_creds.c: the keys ---- */

/* The credentials cfg names (environment, or cfg->cred_file) into cr; -EACCES with a message
 * when there are none or the file cannot be read. */
int s3_creds_load(s3_creds *cr, const s3_cfg *cfg, char *err, size_t errlen);

/* ---- s3.c: one request ---- */

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

void s3_rq_init(rq *r, const char *method, int kind);
/* Frees what the reply left in r (the SINK_GROW buffer). */
void s3_rq_done(rq *r);
/* r->key = cfg->prefix + "/" + key (key NULL: the bucket); -EINVAL when that is no valid key. */
int s3_rq_key(const s3 *c, rq *r, const char *key);
/* A query parameter (up to 6; name and value are kept as pointers, so they must outlive r). */
void s3_rq_param(rq *r, const char *name, const char *value);
/* Send r with retries: 0 on a 2xx reply, else -errno (see its definition). */
int s3_run(s3 *c, rq *r);

#endif
