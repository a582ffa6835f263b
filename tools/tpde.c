/* tpde - the TPDE codec on plain files: encode a file (optionally against its predecessor) into
 * an object, decode it back, inspect an object. Outputs appear atomically (temp file in the same
 * directory, fsync, rename), so an error never leaves a half-written output behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "decoder.h"
#include "encoder.h"
#include "layout.h"
#include "io.h"
#include "objfile.h"

#ifndef TPDEFS_VERSION
#define TPDEFS_VERSION "unknown"
#endif

/* Interrupted runs remove their temp output: SIGINT/SIGTERM/SIGHUP are blocked in every thread
 * and taken by one thread with sigwait, which unlinks the registered temp file and exits. */
typedef struct sigguard {
	pthread_mutex_t mu;
	sigset_t set;
	char *tmp; /* temp output to remove on a signal, NULL when none */
} sigguard;

static void *sig_main(void *arg)
{
	sigguard *g = arg;
	int sig = SIGTERM;
	sigwait(&g->set, &sig);
	pthread_mutex_lock(&g->mu);
	if (g->tmp)
		unlink(g->tmp);
	_exit(128 + sig); /* the lock stays held: no rename can race the unlink */
}

typedef struct opts {
	sigguard *guard;
	const char *base;
	const char *out;
	unsigned threads;
	uint32_t chunk_size;
	int level;
	int verbose;
	float lossy;  /* > 0: --lossy-threshold (opt-in, named lossy; never in the filesystem) */
} opts;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tpde encode [--base OLD] NEW -o OUT   encode NEW (as a delta against OLD)\n"
		"       tpde decode [--base OLD] IN -o OUT    decode object IN (OLD: the base it was encoded against)\n"
		"       tpde inspect IN                       describe object IN\n"
		"options:\n"
		"  -b, --base OLD        predecessor file\n"
		"  -o, --output OUT      output path (written to a temp file, then renamed)\n"
		"  -t, --threads N       worker threads (default: one per CPU)\n"
		"  -c, --chunk-size SZ   chunk size in bytes, suffixes K and M (default 256K, 4K..64M)\n"
		"  -l, --level N         zstd level 1..22 (default 3)\n"
		"  -v, --verbose         print encode statistics to stderr\n"
		"      --lossy-threshold T  LOSSY, encode only: the seed method's thresholding: every\n"
		"                        fp32 element that changed by less than T from the base keeps the\n"
		"                        base's value (needs --base); the object records that it is lossy\n"
		"                        and T, and decodes to the thresholded file, not the input\n"
		"  -h, --help            this help\n"
		"      --version         print the version\n");
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("tpde: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

static int parse_u64(const char *s, uint64_t *v, int suffixes)
{
	char *end;
	errno = 0;
	if (!*s || *s == '-')
		return -1;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	uint64_t mul = 1;
	if (suffixes && *end) {
		if ((*end == 'K' || *end == 'k'))
			mul = 1024;
		else if (*end == 'M' || *end == 'm')
			mul = 1024 * 1024;
		else
			return -1;
		end++;
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
	}
	if (*end || x > UINT64_MAX / mul)
		return -1;
	*v = x * mul;
	return 0;
}

/* Open an input file for reading; regular files only (sizes must be known up front). */
static int open_input(const char *path, const char *what, int *fd, uint64_t *size)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return fail("cannot open %s %s: %s", what, path, strerror(errno));
	struct stat st;
	if (fstat(*fd, &st) < 0) {
		int e = errno;
		close(*fd);
		return fail("cannot stat %s %s: %s", what, path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(*fd);
		return fail("%s %s is not a regular file", what, path);
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

/* Temp output next to the final path, so that rename is atomic. */
typedef struct outfile {
	char *tmp;
	const char *path;
	int fd;
	sigguard *guard;
} outfile;

static void out_guard(outfile *o, char *tmp)
{
	if (!o->guard)
		return;
	pthread_mutex_lock(&o->guard->mu);
	o->guard->tmp = tmp;
	pthread_mutex_unlock(&o->guard->mu);
}

static void out_abort(outfile *o);

static int out_open(outfile *o, const char *path, sigguard *g)
{
	o->guard = g;
	o->path = path;
	o->fd = -1;
	size_t n = strlen(path) + 32;
	o->tmp = malloc(n);
	if (!o->tmp)
		return fail("out of memory");
	snprintf(o->tmp, n, "%s.tpde-tmp-XXXXXX", path);
	o->fd = mkostemp(o->tmp, O_CLOEXEC);
	if (o->fd < 0) {
		int e = errno;
		free(o->tmp);
		o->tmp = NULL;
		return fail("cannot create output %s: %s", path, strerror(e));
	}
	out_guard(o, o->tmp);
	/* mkstemp makes 0600; outputs get the usual 0666 & ~umask. */
	mode_t um = umask(0);
	umask(um);
	if (fchmod(o->fd, 0666 & ~um) < 0) {
		int e = errno;
		out_abort(o);
		return fail("cannot chmod output %s: %s", path, strerror(e));
	}
	return 0;
}

static void out_abort(outfile *o)
{
	if (o->fd >= 0)
		close(o->fd);
	if (o->tmp) {
		unlink(o->tmp);
		out_guard(o, NULL);
		free(o->tmp);
	}
	o->fd = -1;
	o->tmp = NULL;
}

static int out_commit(outfile *o)
{
	int rc = 0;
	if (fsync(o->fd) < 0)
		rc = fail("cannot write output %s: %s", o->path, strerror(errno));
	else if (close(o->fd) < 0)
		rc = fail("cannot write output %s: %s", o->path, strerror(errno));
	o->fd = -1;
	if (rc == 0 && rename(o->tmp, o->path) < 0)
		rc = fail("cannot rename output into %s: %s", o->path, strerror(errno));
	if (rc) {
		out_abort(o);
		return rc;
	}
	out_guard(o, NULL);
	int e = io_fsync_dir_of(o->path);
	free(o->tmp);
	o->tmp = NULL;
	if (e < 0)
		return fail("cannot sync the directory of %s: %s", o->path, strerror(-e));
	return 0;
}

typedef struct lossy_stats {
	uint64_t elements, changed, kept;
} lossy_stats;

/* The seed method's thresholding, into out_fd: a copy of n where every fp32 element of a tensor
 * aligned with the base that changed by less than T (|new - base| < T) takes the base's value.
 * Other bytes (headers, other dtypes, unaligned tensors) are copied exactly. */
static int lossy_copy(const io_src *n, const io_src *b, int out_fd, float T, lossy_stats *ls)
{
	memset(ls, 0, sizeof(*ls));
	layout *nl = NULL, *bl = NULL;
	seg *sg = NULL;
	size_t ns = 0;
	size_t bs = 1u << 20;
	uint8_t *x = malloc(bs), *y = malloc(bs);
	int r = x && y ? 0 : -ENOMEM;
	if (r == 0 && (r = layout_parse(n, &nl)) == 0 && (r = layout_parse(b, &bl)) == 0)
		r = layout_align(nl, n->size, bl, b->size, &sg, &ns);
	for (size_t i = 0; r == 0 && i < ns; i++) {
		const seg *g = &sg[i];
		int thr = g->tensor && g->width == 4 && g->base_off != SEG_NO_BASE;
		for (uint64_t off = 0; r == 0 && off < g->len;) {
			size_t len = g->len - off < bs ? (size_t)(g->len - off) : bs;
			len -= thr ? len % 4 : 0;
			if (len == 0)
				len = (size_t)(g->len - off); /* a tail shorter than an element */
			r = io_pread_full(n, x, len, g->off + off);
			if (r == 0 && thr && len % 4 == 0)
				r = io_pread_full(b, y, len, g->base_off + off);
			if (r == 0 && thr && len % 4 == 0) {
				for (size_t k = 0; k < len; k += 4) {
					float fn, fb;
					memcpy(&fn, x + k, 4);
					memcpy(&fb, y + k, 4);
					ls->elements++;
					if (!memcmp(x + k, y + k, 4))
						continue;
					ls->changed++;
					float d = fn - fb;
					if ((d < 0 ? -d : d) < T)
						memcpy(x + k, y + k, 4); /* dropped: the base's value */
					else
						ls->kept++;
				}
			}
			if (r == 0 && pwrite(out_fd, x, len, (off_t)(g->off + off)) != (ssize_t)len)
				r = errno ? -errno : -EIO;
			off += len;
		}
	}
	if (r == 0 && ftruncate(out_fd, (off_t)n->size) < 0)
		r = -errno;
	free(sg);
	layout_free(nl);
	layout_free(bl);
	free(x);
	free(y);
	return r;
}

static int cmd_encode(const opts *op, const char *newp)
{
	if (!op->out)
		return fail("encode needs -o OUT");
	int nfd = -1, bfd = -1, rc = 1;
	uint64_t nsize, bsize = 0;
	if (open_input(newp, "input", &nfd, &nsize))
		return 1;
	if (op->base && open_input(op->base, "base", &bfd, &bsize)) {
		close(nfd);
		return 1;
	}
	io_src n, b;
	io_src_from_fd(&n, nfd, nsize);
	uint64_t bh = 0;
	if (bfd >= 0) {
		io_src_from_fd(&b, bfd, bsize);
		int e = enc_content_hash(&b, &bh);
		if (e < 0) {
			fail("cannot read base %s: %s", op->base, strerror(-e));
			goto out;
		}
	}
	int tfd = -1;
	char tpath[4096] = "";
	if (op->lossy > 0) {
		if (bfd < 0) {
			fail("--lossy-threshold needs --base (it drops small changes against it)");
			goto out;
		}
		snprintf(tpath, sizeof(tpath), "%s.lossy-XXXXXX", op->out);
		tfd = mkstemp(tpath);
		if (tfd < 0) {
			fail("cannot create %s: %s", tpath, strerror(errno));
			goto out;
		}
		unlink(tpath); /* an anonymous scratch copy: gone with its fd */
		lossy_stats ls;
		int le = lossy_copy(&n, &b, tfd, op->lossy, &ls);
		if (le < 0) {
			fail("cannot threshold %s: %s", newp, strerror(-le));
			close(tfd);
			goto out;
		}
		io_src_from_fd(&n, tfd, nsize);
		fprintf(stderr, "tpde: LOSSY: threshold %g: %" PRIu64 " of %" PRIu64 " fp32 elements "
			"changed, %" PRIu64 " kept (%.2f%%), %" PRIu64 " dropped; other bytes exact\n",
			(double)op->lossy, ls.changed, ls.elements, ls.kept,
			ls.changed ? 100.0 * (double)ls.kept / (double)ls.changed : 0.0,
			ls.changed - ls.kept);
	}
	outfile of;
	if (out_open(&of, op->out, op->guard)) {
		if (tfd >= 0)
			close(tfd);
		goto out;
	}
	enc_opts eo = {.chunk_size = op->chunk_size, .zstd_level = op->level,
		       .threads = op->threads, .lossy_threshold = op->lossy};
	enc_stats st;
	int e = enc_encode(&eo, &n, bfd >= 0 ? &b : NULL, bh, of.fd, &st);
	if (tfd >= 0)
		close(tfd);
	if (e < 0) {
		out_abort(&of);
		if (e == -EIO)
			fail("cannot encode %s: I/O error (did the input or base change while "
			     "reading?)", newp);
		else
			fail("cannot encode %s: %s", newp, strerror(-e));
		goto out;
	}
	if (out_commit(&of))
		goto out;
	if (op->verbose) {
		fprintf(stderr, "tpde: %s: %" PRIu64 " -> %" PRIu64 " bytes (ratio %.3f)\n", newp,
			st.in_bytes, st.out_bytes,
			st.out_bytes ? (double)st.in_bytes / (double)st.out_bytes : 0.0);
		for (int i = 0; i < CODEC_MAX; i++)
			if (st.chunks[i])
				fprintf(stderr,
					"tpde:   %-7s %8" PRIu64 " chunks %12" PRIu64 " -> %12" PRIu64
					"\n",
					codec_name((uint8_t)i), st.chunks[i], st.bytes_in[i],
					st.bytes_out[i]);
	}
	rc = 0;
out:
	close(nfd);
	if (bfd >= 0)
		close(bfd);
	return rc;
}

/* Open an object with a message for every way it can be unusable. */
static int open_object(const char *path, obj_reader **r)
{
	int fd;
	uint64_t size;
	if (open_input(path, "object", &fd, &size))
		return 1;
	/* The version field (bytes 8..11, LE), read before the reader takes the fd, for the
	 * "newer format" message. */
	uint8_t vb[4] = {0};
	int have_v = io_pread_fd_full(fd, vb, 4, 8) == 0;
	int e = obj_reader_open(fd, r);
	if (e == -EPROTONOSUPPORT && have_v)
		return fail("%s uses object format version %" PRIu32
			    ", newer than this tpde reads (%d); upgrade tpde",
			    path, (uint32_t)vb[0] | (uint32_t)vb[1] << 8 | (uint32_t)vb[2] << 16 |
				  (uint32_t)vb[3] << 24, OBJ_FORMAT_VERSION);
	if (e == -EPROTONOSUPPORT)
		return fail("%s uses a newer object format than this tpde reads (%d)", path,
			    OBJ_FORMAT_VERSION);
	if (e == -EBADMSG)
		return fail("%s is not a tpde object, or its header, index or footer is damaged",
			    path);
	if (e < 0)
		return fail("cannot read object %s: %s", path, strerror(-e));
	return 0;
}

/* After a failed decode: the first chunk that does not decode, for the message. */
static void report_bad_chunk(const obj_reader *r, const io_src *base, const char *path, int err)
{
	uint32_t maxlen = 1;
	for (size_t i = 0; i < obj_reader_nchunks(r); i++)
		if (obj_reader_chunk(r, i)->len > maxlen)
			maxlen = obj_reader_chunk(r, i)->len;
	codec_ctx *c = codec_ctx_new(0);
	uint8_t *buf = malloc(maxlen);
	for (size_t i = 0; c && buf && i < obj_reader_nchunks(r); i++) {
		int e = dec_chunk(c, r, i, base, buf);
		if (e < 0) {
			const obj_chunk *ch = obj_reader_chunk(r, i);
			fail("%s is damaged: chunk %zu (bytes %" PRIu64 "..%" PRIu64 ", %s): %s",
			     path, i, ch->off, ch->off + ch->len, codec_name(ch->codec),
			     e == -EIO ? "checksum mismatch" :
			     e == -EBADMSG ? "malformed payload" : strerror(-e));
			free(buf);
			codec_ctx_free(c);
			return;
		}
	}
	free(buf);
	if (c)
		codec_ctx_free(c);
	if (err == -EIO)
		fail("%s is damaged: the decoded file does not match its content hash", path);
	else
		fail("cannot decode %s: %s", path, strerror(-err));
}

typedef struct hash_job {
	const io_src *src;
	pthread_t th;
	uint64_t hash;
	int rc;
} hash_job;

static void *hash_main(void *arg)
{
	hash_job *j = arg;
	j->rc = enc_content_hash(j->src, &j->hash);
	return NULL;
}

static int cmd_decode(const opts *op, const char *inp)
{
	if (!op->out)
		return fail("decode needs -o OUT");
	obj_reader *r;
	if (open_object(inp, &r))
		return 1;
	const obj_info *info = obj_reader_info(r);
	int bfd = -1, rc = 1;
	uint64_t bsize = 0;
	io_src b;
	if (info->has_base) {
		if (!op->base) {
			obj_reader_close(r);
			return fail("%s was encoded against a base of %" PRIu64
				    " bytes (content hash %016" PRIx64 "); give it with --base OLD",
				    inp, info->base_size, info->base_hash);
		}
		if (open_input(op->base, "base", &bfd, &bsize)) {
			obj_reader_close(r);
			return 1;
		}
		io_src_from_fd(&b, bfd, bsize);
		if (bsize != info->base_size) {
			fail("%s was encoded against a different base (content hash %016" PRIx64
			     ", %" PRIu64 " bytes; %s has %" PRIu64 " bytes)",
			     inp, info->base_hash, info->base_size, op->base, bsize);
			goto out;
		}
	} else if (op->base) {
		fprintf(stderr, "tpde: note: %s has no base; ignoring --base %s\n", inp, op->base);
	}
	outfile of;
	if (out_open(&of, op->out, op->guard))
		goto out;
	/* The base's content hash is computed alongside the decode (it is a whole extra pass over
	 * the base) and checked before the output is committed. A wrong base usually also fails
	 * chunk checksums; the hash decides which message is right. */
	hash_job hj = {.src = &b};
	int hashing = bfd >= 0 && pthread_create(&hj.th, NULL, hash_main, &hj) == 0;
	if (bfd >= 0 && !hashing)
		hash_main(&hj);
	int e = dec_file(r, bfd >= 0 ? &b : NULL, 0, op->threads, of.fd);
	if (hashing)
		pthread_join(hj.th, NULL);
	if (bfd >= 0 && hj.rc < 0) {
		out_abort(&of);
		fail("cannot read base %s: %s", op->base, strerror(-hj.rc));
		goto out;
	}
	if (bfd >= 0 && hj.hash != info->base_hash) {
		out_abort(&of);
		fail("%s was encoded against a different base (content hash %016" PRIx64
		     "; %s has %016" PRIx64 ")", inp, info->base_hash, op->base, hj.hash);
		goto out;
	}
	if (e < 0) {
		out_abort(&of);
		if (e == -EIO || e == -EBADMSG)
			report_bad_chunk(r, bfd >= 0 ? &b : NULL, inp, e);
		else
			fail("cannot decode %s: %s", inp, strerror(-e));
		goto out;
	}
	if (out_commit(&of))
		goto out;
	rc = 0;
out:
	obj_reader_close(r);
	if (bfd >= 0)
		close(bfd);
	return rc;
}

static double ratio(uint64_t in, uint64_t out)
{
	return out ? (double)in / (double)out : 0.0;
}

static int cmd_inspect(const char *inp)
{
	obj_reader *r;
	if (open_object(inp, &r))
		return 1;
	const obj_info *in = obj_reader_info(r);
	size_t n = obj_reader_nchunks(r);
	uint64_t fb = obj_reader_file_bytes(r);
	printf("object:         %s\n", inp);
	printf("format version: %d\n", OBJ_FORMAT_VERSION);
	printf("size:           %" PRIu64 " bytes\n", in->size);
	printf("stored:         %" PRIu64 " bytes (ratio %.3f)\n", fb, ratio(in->size, fb));
	printf("chunk size:     %" PRIu32 "\n", in->chunk_size);
	printf("content hash:   %016" PRIx64 "\n", in->content_hash);
	if (in->has_base)
		printf("base:           %" PRIu64 " bytes, content hash %016" PRIx64 "\n",
		       in->base_size, in->base_hash);
	else
		printf("base:           none\n");
	if (in->lossy_threshold > 0)
		printf("LOSSY:          yes, threshold %g (fp32 changes smaller than it dropped; "
		       "decodes to the thresholded file)\n", (double)in->lossy_threshold);
	else
		printf("lossy:          no (bit-exact)\n");
	printf("chunks:         %zu\n", n);

	uint64_t cc[256] = {0}, ci[256] = {0}, co[256] = {0};
	/* Kinds: element width (1 = untyped bytes or int8) x coded against the base or not. */
	uint64_t kc[9][2] = {{0}}, ki[9][2] = {{0}}, ko[9][2] = {{0}};
	for (size_t i = 0; i < n; i++) {
		const obj_chunk *c = obj_reader_chunk(r, i);
		cc[c->codec]++;
		ci[c->codec] += c->len;
		co[c->codec] += c->data_len;
		int d = c->base_off != OBJ_NO_BASE;
		kc[c->width][d]++;
		ki[c->width][d] += c->len;
		ko[c->width][d] += c->data_len;
	}
	printf("\n%-8s %8s %14s %14s %8s\n", "codec", "chunks", "bytes in", "bytes out", "ratio");
	for (int i = 0; i < 256; i++)
		if (cc[i])
			printf("%-8s %8" PRIu64 " %14" PRIu64 " %14" PRIu64 " %8.3f\n",
			       codec_name((uint8_t)i), cc[i], ci[i], co[i], ratio(ci[i], co[i]));
	printf("\n%-22s %8s %14s %14s %8s\n", "kind", "chunks", "bytes in", "bytes out", "ratio");
	for (int w = 1; w <= 8; w++)
		for (int d = 0; d < 2; d++)
			if (kc[w][d]) {
				char k[32];
				snprintf(k, sizeof k, "%s w%d %s", w == 1 ? "bytes" : "tensor", w,
					 d ? "delta" : "alone");
				printf("%-22s %8" PRIu64 " %14" PRIu64 " %14" PRIu64 " %8.3f\n", k,
				       kc[w][d], ki[w][d], ko[w][d], ratio(ki[w][d], ko[w][d]));
			}
	obj_reader_close(r);
	if (fflush(stdout) != 0 || ferror(stdout))
		return fail("cannot write to stdout: %s", strerror(errno));
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"base", required_argument, NULL, 'b'},
		{"output", required_argument, NULL, 'o'},
		{"threads", required_argument, NULL, 't'},
		{"chunk-size", required_argument, NULL, 'c'},
		{"level", required_argument, NULL, 'l'},
		{"verbose", no_argument, NULL, 'v'},
		{"lossy-threshold", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	opts op = {0};
	int ch;
	uint64_t v;
	while ((ch = getopt_long(argc, argv, "b:o:t:c:l:vh", lo, NULL)) != -1) {
		switch (ch) {
		case 'b':
			op.base = optarg;
			break;
		case 'o':
			op.out = optarg;
			break;
		case 't':
			if (parse_u64(optarg, &v, 0) || v < 1 || v > 256) {
				fail("bad --threads '%s' (1..256)", optarg);
				return 2;
			}
			op.threads = (unsigned)v;
			break;
		case 'c':
			if (parse_u64(optarg, &v, 1) || v < 4096 || v > (64u << 20)) {
				fail("bad --chunk-size '%s' (4K..64M)", optarg);
				return 2;
			}
			op.chunk_size = (uint32_t)v;
			break;
		case 'l':
			if (parse_u64(optarg, &v, 0) || v < 1 || v > 22) {
				fail("bad --level '%s' (1..22)", optarg);
				return 2;
			}
			op.level = (int)v;
			break;
		case 'v':
			op.verbose = 1;
			break;
		case 'L': {
			char *end;
			double x = strtod(optarg, &end);
			if (*end || !(x > 0) || x > 1e30) {
				fail("bad --lossy-threshold '%s' (a positive number)", optarg);
				return 2;
			}
			op.lossy = (float)x;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("tpde %s (object format %d)\n", TPDEFS_VERSION, OBJ_FORMAT_VERSION);
			return 0;
		default:
			fputs("tpde: bad option (see tpde --help)\n", stderr);
			return 2;
		}
	}
	int nargs = argc - optind;
	if (nargs < 1) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[optind];
	if (!strcmp(cmd, "encode") || !strcmp(cmd, "decode") || !strcmp(cmd, "inspect")) {
		if (nargs != 2) {
			fail("%s takes exactly one input file (see tpde --help)", cmd);
			return 2;
		}
		const char *in = argv[optind + 1];
		if (!strcmp(cmd, "inspect"))
			return cmd_inspect(in);
		if (!op.out) {
			fail("%s needs -o OUT", cmd);
			return 2;
		}
		sigguard g = {.tmp = NULL};
		pthread_t th;
		sigemptyset(&g.set);
		sigaddset(&g.set, SIGINT);
		sigaddset(&g.set, SIGTERM);
		sigaddset(&g.set, SIGHUP);
		if (pthread_mutex_init(&g.mu, NULL) == 0) {
			if (pthread_sigmask(SIG_BLOCK, &g.set, NULL) == 0 &&
			    pthread_create(&th, NULL, sig_main, &g) == 0)
				op.guard = &g;
			else
				pthread_sigmask(SIG_UNBLOCK, &g.set, NULL);
		}
		return !strcmp(cmd, "encode") ? cmd_encode(&op, in) : cmd_decode(&op, in);
	}
	fail("unknown command '%s' (encode, decode, inspect; see tpde --help)", cmd);
	return 2;
}
