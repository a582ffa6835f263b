/* s3_put.c - uploads (see s3.h): s3_put_mem, and s3_put_file as one PUT or as a multipart upload
 * (create, parts, complete, a HEAD to check the size; aborted when it fails). Every request carries
 * its payload's SHA-256.
 *
 * Threads:
 * - s3_put_file's multipart upload runs up to MPU_THREADS workers (the caller and threads it
 *   starts and joins before returning); they share one part counter and the first error under
 *   mpu.mu.
 */
#include "s3_internal.h"
#include "s3_xml.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PARTS 10000
#define MPU_THREADS 4
#define HASH_CHUNK (1u << 20)

/* ---- uploads -------------------------------------------------------------------------------- */

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
	s3_rq_init(&r, "PUT", KIND_PUT);
	int rc = s3_rq_key(c, &r, key);
	if (rc)
		return rc;
	r.src = SRC_MEM;
	r.mem = buf ? buf : "";
	r.len = len;
	r.ctype = "application/octet-stream";
	s3sig_sha256_hex(r.mem, len, r.sha);
	rc = s3_run(c, &r);
	s3_rq_done(&r);
	return rc;
}

static int put_single(s3 *c, const char *key, int fd, uint64_t size)
{
	rq r;
	s3_rq_init(&r, "PUT", KIND_PUT);
	int rc = s3_rq_key(c, &r, key);
	if (rc)
		return rc;
	r.src = SRC_FD;
	r.fd = fd;
	r.off = 0;
	r.len = size;
	r.ctype = "application/octet-stream";
	rc = sha256_fd(fd, 0, size, r.sha);
	if (!rc)
		rc = s3_run(c, &r);
	s3_rq_done(&r);
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
	s3_rq_init(&r, "PUT", KIND_PUT);
	int rc = s3_rq_key(c, &r, m->key);
	if (rc)
		return rc;
	snprintf(r.op, sizeof(r.op), "PUT part %d/%d", i + 1, m->nparts);
	char pn[16];
	snprintf(pn, sizeof(pn), "%d", i + 1);
	s3_rq_param(&r, "partNumber", pn);
	s3_rq_param(&r, "uploadId", m->upload_id);
	r.src = SRC_FD;
	r.fd = m->fd;
	r.off = (uint64_t)i * m->part;
	r.len = m->size - r.off < m->part ? m->size - r.off : m->part;
	r.ctype = "application/octet-stream";
	rc = sha256_fd(m->fd, r.off, r.len, r.sha);
	if (!rc)
		rc = s3_run(c, &r);
	if (!rc) {
		if (!r.etag[0]) {
			s3_logf(c, "s3: %s %s: reply without an ETag", r.op, r.key);
			rc = -EIO;
		} else {
			memcpy(m->etags[i], r.etag, sizeof(m->etags[i]));
		}
	}
	s3_rq_done(&r);
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
	s3_rq_init(&r, "POST", KIND_PUT);
	rc = s3_rq_key(c, &r, m->key);
	if (!rc) {
		snprintf(r.op, sizeof(r.op), "POST complete (%d parts)", m->nparts);
		s3_rq_param(&r, "uploadId", m->upload_id);
		r.src = SRC_MEM;
		r.mem = body;
		r.len = len;
		r.ctype = "application/xml";
		r.complete = 1;
		r.sink = SINK_GROW;
		r.grow_max = 1 << 20;
		s3sig_sha256_hex(body, len, r.sha);
		rc = s3_run(c, &r);
		/* a retried complete whose first try went through finds no upload any more:
		 * the HEAD below tells whether the object is there */
		if (rc == -ENOENT && r.tries > 1)
			rc = 0;
	}
	s3_rq_done(&r);
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
	s3_rq_init(&r, "POST", KIND_PUT);
	int rc = s3_rq_key(c, &r, key);
	if (!rc) {
		snprintf(r.op, sizeof(r.op), "POST uploads");
		s3_rq_param(&r, "uploads", "");
		r.src = SRC_MEM;
		r.mem = "";
		r.len = 0;
		r.ctype = "application/octet-stream";
		r.sink = SINK_GROW;
		r.grow_max = 1 << 20;
		rc = s3_run(c, &r);
		if (!rc && s3xml_parse_initiate(r.grow, r.glen, upload_id, sizeof(upload_id))) {
			s3_logf(c, "s3: POST uploads %s: malformed InitiateMultipartUploadResult",
				r.key);
			rc = -EIO;
		}
	}
	s3_rq_done(&r);
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
			s3_logf(c, "s3: PUT %s: object is %llu bytes after the multipart upload, "
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
			s3_logf(c, "s3: abort of the failed upload of %s: %s (left to gc)", key,
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
