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
#include <sys/types.h>
#include <time.h>

#define POOL_MAX 16
#define ERRBODY_MAX 8192

/* The keys a request signs with (s3_creds.c loads them). Never in a message or a log line; every
 * copy is wiped after use (s3_creds_wipe), the handle's own by s3_free. */
typedef struct s3_creds {
	char access_key[256];
	char secret[256];
	char token[4096];
} s3_creds;

/* What tells that a credentials file was changed: a rename over it (new inode), a rewrite in
 * place (mtime, ctime, size). */
typedef struct s3_cred_stamp {
	int valid;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
} s3_cred_stamp;

/* Where the handle's keys come from and their current value (s3_creds.c). Keys from the
 * environment are loaded once (a process's environment does not change); keys from a file are
 * kept current with it: a request looks at the file first when period_us has passed since the
 * last look, a 401/403 looks at once (s3_creds_changed).
 * Locks (neither is held across a request, and never both but in the order file_mu, mu):
 * - mu guards keys and gen, and is held only to copy them out or in: each request signs with a
 *   copy of its own, so a reload never changes keys under a request being signed.
 * - file_mu makes one thread at a time read the file (stat, open, parse) and guards stamp and
 *   failing; readers of keys never wait for the file, only a second looker does.
 * - next_us (atomic): when the next periodic look is due; the thread that moves it on looks.
 * profile and period_us are set once in s3_new. */
typedef struct s3_credsrc {
	pthread_mutex_t mu;
	s3_creds keys;
	uint64_t gen;            /* +1 each time a look finds keys other than the current ones */
	pthread_mutex_t file_mu;
	s3_cred_stamp stamp;     /* the file as last read (valid = 0: not read) */
	int failing;             /* the last look failed and said so in the log: say it once */
	char profile[256];
	int64_t period_us;
	_Atomic int64_t next_us; /* CLOCK_MONOTONIC microseconds */
} s3_credsrc;

/* Threads and locks:
 * - An s3 handle is immutable after s3_new except for: the connection pool (pool_mu guards
 *   pool[] and npool), the curl share (DNS cache and TLS sessions; curl takes share_mu[kind]
 *   through the lock callbacks), the keys (cred: its own locks, see s3_credsrc) and the counters
 *   (atomics). Any thread may call any function.
 * - A call owns the curl easy handle it took from the pool until it gives it back; the handle
 *   keeps its live connection, so the pool is the connection pool. Connections themselves are
 *   not put in the share: curl does not support a shared connection cache used by concurrent
 *   threads (CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT).
 */
struct s3 {
	s3_cfg cfg;
	s3_credsrc cred;
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
/* Monotonic clock, microseconds (retry budgets, the endpoint-down hold, credential looks). */
int64_t s3_now_us(void);

/* ---- s3_uri.c: what s3_new checks ---- */

/* 1 when b is a bucket name S3 and DNS accept. */
int s3_bucket_ok(const char *b);

/* ---- s3_creds.c: the keys ---- */

/* The keys c->cfg names (environment, or cfg.cred_file and its profile) into c->cred, its locks
 * set up; -EACCES with a message when there are none or the file cannot be read (then nothing
 * is left to undo). period_us: how often a request looks at the file at most. */
int s3_creds_init(s3 *c, int64_t period_us, char *err, size_t errlen);
/* Wipes the keys and destroys the locks (after s3_creds_init succeeded). */
void s3_creds_fini(s3 *c);
/* A copy of the keys to sign one request with, the file looked at first when a look is due;
 * *gen names these keys for s3_creds_changed. The caller wipes the copy with s3_creds_wipe. */
void s3_creds_get(s3 *c, s3_creds *out, uint64_t *gen);
/* After the server refused keys gen (401/403): looks at the file now. 1 when the keys are no
 * longer gen (changed by this look or another since): worth one more try. 0 for keys from the
 * environment, or when the file holds the same keys (or none readable). */
int s3_creds_changed(s3 *c, uint64_t gen);
void s3_creds_wipe(s3_creds *cr);

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
	uint64_t cred_gen;   /* the keys the current try was signed with */
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
