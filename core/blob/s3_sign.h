/* s3_sign.h - AWS Signature Version 4 for S3, as pure functions (no I/O, no curl): the pieces of
 * a signed request (canonical URI, canonical query, canonical request, string to sign, signing
 * key, signature, Authorization value) and where a request goes (URL, Host, path) for path-style
 * and virtual-host style addressing. Split from s3.c so the signing can be checked against AWS's
 * published examples without a server.
 *
 * Every function that writes a string returns its length, or -ENAMETOOLONG when it does not fit
 * (out is then an empty string), or -EINVAL for an argument it refuses.
 */
#ifndef TPDEFS_S3_SIGN_H
#define TPDEFS_S3_SIGN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define S3SIG_SHA256_HEX 65    /* 64 hex digits and the NUL */
#define S3SIG_AMZ_DATE 17      /* "20130524T000000Z" and the NUL */
#define S3SIG_MAX_HEADERS 16
/* sha256("") in hex: the payload hash of a request without a body. */
#define S3SIG_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct s3sig_kv {
	const char *name;
	const char *value;
} s3sig_kv;

/* A request as signed. Header names in any case and order (they are lower-cased and sorted);
 * values are trimmed and inner runs of spaces folded. host must be among the headers. */
typedef struct s3sig_req {
	const char *method;       /* "GET", "PUT", ... */
	const char *path;         /* the canonical URI: absolute, already URI-encoded (s3sig_path) */
	const s3sig_kv *query;    /* raw (not encoded) parameters, any order; value "" for "?uploads" */
	size_t nquery;
	const s3sig_kv *headers;
	size_t nheaders;
	const char *payload_sha256; /* hex; the same value goes in x-amz-content-sha256 */
} s3sig_req;

/* Hex of n bytes (2n characters and a NUL into out). */
void s3sig_hex(const uint8_t *bytes, size_t n, char *out);
/* SHA-256 of len bytes as lowercase hex. */
void s3sig_sha256_hex(const void *data, size_t len, char out[S3SIG_SHA256_HEX]);
/* HMAC-SHA256 (32 bytes into mac). */
void s3sig_hmac(const void *key, size_t keylen, const void *msg, size_t msglen, uint8_t mac[32]);

/* x-amz-date for t (UTC): "YYYYMMDDTHHMMSSZ". */
void s3sig_amz_date(time_t t, char out[S3SIG_AMZ_DATE]);

/* URI-encode per the SigV4 rules: A-Z a-z 0-9 - _ . ~ stay, every other byte becomes %XX
 * (upper-case hex); '/' stays when keep_slash (object key paths), else %2F (query values). */
int s3sig_uri_encode(const char *in, int keep_slash, char *out, size_t size);

/* The canonical query string: each name and value encoded, sorted by encoded name then value,
 * "n=v" joined with '&' ("" for none). The same string serves as the URL's query. */
int s3sig_canonical_query(const s3sig_kv *q, size_t n, char *out, size_t size);

/* The canonical request; the signed header list ("host;range;x-amz-date") into signed_headers. */
int s3sig_canonical_request(const s3sig_req *r, char *out, size_t size, char *signed_headers,
			    size_t shsize);

/* "YYYYMMDD/region/s3/aws4_request" */
int s3sig_scope(const char *amz_date, const char *region, char *out, size_t size);

/* "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256 of the canonical request>" */
int s3sig_string_to_sign(const char *amz_date, const char *scope, const char *canonical_request,
			 char *out, size_t size);

/* HMAC chain "AWS4"+secret -> date (YYYYMMDD) -> region -> "s3" -> "aws4_request". */
void s3sig_signing_key(const char *secret, const char *date8, const char *region, uint8_t key[32]);

/* The Authorization header value for r, signed at amz_date:
 * "AWS4-HMAC-SHA256 Credential=AK/scope,SignedHeaders=...,Signature=<hex>". */
int s3sig_authorization(const char *access_key, const char *secret, const char *region,
			const char *amz_date, const s3sig_req *r, char *out, size_t size);

/* Where a request for bucket/key goes. endpoint is "scheme://host[:port]"; key is the full key
 * (prefix included, not encoded) or "" for the bucket itself.
 *   path-style:    URL endpoint/bucket/key,           host = host[:port], path = /bucket/key
 *   virtual-host:  URL scheme://bucket.host[:port]/key, host = bucket.host[:port], path = /key
 * url gets the encoded path; query (canonical, may be "" or NULL) is appended after '?'. The
 * bucket-level path is "/bucket" (path-style) or "/" (virtual-host). */
typedef struct s3sig_target {
	char url[8192];
	char host[320];
	char path[3200];
} s3sig_target;
int s3sig_target_make(const char *endpoint, const char *bucket, int path_style, const char *key,
		      const char *query, s3sig_target *t);

#endif
