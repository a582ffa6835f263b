/* objfile.c - the object file format (byte layout in docs/FORMAT.md, "Object files").
 *
 * Everything is serialised field by field in little-endian order (never struct dumps), and the
 * reader checks every length against the real file size before using it: objects come back from
 * disk and are untrusted.
 */
#include "objfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cksum.h"
#include "io.h"
#include "le.h"

#define OBJ_HDR_SIZE 64u
#define OBJ_ENTRY_SIZE 48u
#define OBJ_FTR_SIZE 48u
#define OBJ_FLAG_BASE 0x1u
#define OBJ_FLAG_LOSSY 0x2u /* made by `tpde encode --lossy-threshold` only: bytes 44..47 hold T */
#define OBJ_KNOWN_FLAGS (OBJ_FLAG_BASE | OBJ_FLAG_LOSSY)
/* Largest chunk a reader accepts: a bound on what a damaged index can make us allocate. */
#define OBJ_MAX_CHUNK (256u << 20)
#define OBJ_NCODECS 8u /* codec ids 0..7 (enum codec_id, CODEC_MAX) */

static const uint8_t hdr_magic[8] = {'T', 'P', 'D', 'E', 'O', 'B', 'J', 0};
static const uint8_t ftr_magic[8] = {'T', 'P', 'D', 'E', 'E', 'N', 'D', 0};

static void enc_header(uint8_t h[OBJ_HDR_SIZE], const obj_info *info)
{
	memset(h, 0, OBJ_HDR_SIZE);
	memcpy(h, hdr_magic, 8);
	le_put32(h + 8, OBJ_FORMAT_VERSION);
	le_put32(h + 12, (info->has_base ? OBJ_FLAG_BASE : 0) |
			      (info->lossy_threshold > 0 ? OBJ_FLAG_LOSSY : 0));
	le_put64(h + 16, info->size);
	le_put64(h + 24, info->has_base ? info->base_size : 0);
	le_put64(h + 32, info->has_base ? info->base_hash : 0);
	le_put32(h + 40, info->chunk_size);
	if (info->lossy_threshold > 0) {
		uint32_t bits;
		memcpy(&bits, &info->lossy_threshold, 4);
		le_put32(h + 44, bits);
	}
	/* 48..55 reserved, zero (44..47 too for a lossless object) */
	le_put64(h + 56, cksum64(h, 56));
}

static void enc_entry(uint8_t e[OBJ_ENTRY_SIZE], const obj_chunk *c)
{
	memset(e, 0, OBJ_ENTRY_SIZE);
	le_put64(e + 0, c->off);
	le_put32(e + 8, c->len);
	e[12] = c->codec;
	e[13] = c->width;
	/* 14..15 reserved, zero */
	le_put64(e + 16, c->base_off);
	le_put32(e + 24, c->base_len);
	le_put32(e + 28, c->data_len);
	le_put64(e + 32, c->data_off);
	le_put64(e + 40, c->cksum);
}

static void dec_entry(const uint8_t e[OBJ_ENTRY_SIZE], obj_chunk *c)
{
	c->off = le_get64(e + 0);
	c->len = le_get32(e + 8);
	c->codec = e[12];
	c->width = e[13];
	c->base_off = le_get64(e + 16);
	c->base_len = le_get32(e + 24);
	c->data_len = le_get32(e + 28);
	c->data_off = le_get64(e + 32);
	c->cksum = le_get64(e + 40);
}

static int width_ok(uint8_t w)
{
	return w == 1 || w == 2 || w == 4 || w == 8;
}

/* ---- writer ---- */

struct obj_writer {
	int fd;
	obj_info info;
	uint64_t pos;      /* bytes written */
	uint64_t next_off; /* logical offset the next chunk must start at */
	obj_chunk *chunks;
	size_t n, cap;
	int finished;
};

int obj_writer_open(int fd, const obj_info *info, obj_writer **out)
{
	*out = NULL;
	if (fd < 0 || !info || info->chunk_size == 0 || info->chunk_size > OBJ_MAX_CHUNK)
		return -EINVAL;
	obj_writer *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->info = *info;
	w->info.has_base = info->has_base ? 1 : 0;
	uint8_t h[OBJ_HDR_SIZE];
	enc_header(h, &w->info);
	int rc = io_pwrite_full(fd, h, sizeof h, 0);
	if (rc < 0) {
		free(w);
		return rc;
	}
	w->pos = OBJ_HDR_SIZE;
	*out = w;
	return 0;
}

int obj_writer_add(obj_writer *w, const obj_chunk *c, const void *payload, size_t plen)
{
	if (w->finished || c->off != w->next_off || c->len == 0 || c->len > w->info.chunk_size ||
	    c->len > w->info.size - c->off || plen > UINT32_MAX || c->codec >= OBJ_NCODECS ||
	    !width_ok(c->width))
		return -EINVAL;
	if (c->base_off == OBJ_NO_BASE ? c->base_len != 0 : !w->info.has_base)
		return -EINVAL;
	if (w->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 64;
		obj_chunk *nc = realloc(w->chunks, ncap * sizeof *nc);
		if (!nc)
			return -ENOMEM;
		w->chunks = nc;
		w->cap = ncap;
	}
	int rc = io_pwrite_full(w->fd, payload, plen, w->pos);
	if (rc < 0)
		return rc;
	obj_chunk *d = &w->chunks[w->n++];
	*d = *c;
	d->data_off = w->pos;
	d->data_len = (uint32_t)plen;
	w->pos += plen;
	w->next_off += c->len;
	return 0;
}

int obj_writer_finish(obj_writer *w, uint64_t content_hash)
{
	if (w->finished || w->next_off != w->info.size)
		return -EINVAL;
	/* The index is written in bounded pieces so that a huge file does not need a huge buffer. */
	uint8_t buf[OBJ_ENTRY_SIZE * 256];
	cksum_state *cs = cksum_new();
	if (!cs)
		return -ENOMEM;
	uint64_t index_off = w->pos;
	int rc = 0;
	for (size_t i = 0; i < w->n && rc == 0;) {
		size_t k = 0;
		for (; k < 256 && i < w->n; k++, i++)
			enc_entry(buf + k * OBJ_ENTRY_SIZE, &w->chunks[i]);
		cksum_update(cs, buf, k * OBJ_ENTRY_SIZE);
		rc = io_pwrite_full(w->fd, buf, k * OBJ_ENTRY_SIZE, w->pos);
		if (rc == 0)
			w->pos += k * OBJ_ENTRY_SIZE;
	}
	uint64_t index_ck = cksum_digest(cs);
	cksum_free(cs);
	if (rc < 0)
		return rc;
	uint8_t f[OBJ_FTR_SIZE];
	le_put64(f + 0, index_off);
	le_put64(f + 8, (uint64_t)w->n);
	le_put64(f + 16, content_hash);
	le_put64(f + 24, index_ck);
	le_put64(f + 32, cksum64(f, 32));
	memcpy(f + 40, ftr_magic, 8);
	rc = io_pwrite_full(w->fd, f, sizeof f, w->pos);
	if (rc < 0)
		return rc;
	w->pos += OBJ_FTR_SIZE;
	w->finished = 1;
	return 0;
}

uint64_t obj_writer_bytes(const obj_writer *w)
{
	return w->pos;
}

void obj_writer_free(obj_writer *w)
{
	if (!w)
		return;
	free(w->chunks);
	free(w);
}

/* ---- reader ---- */

struct obj_reader {
	io_rfile *f;
	obj_info info;
	uint64_t file_bytes;
	size_t n;
	obj_chunk *chunks;
};

static int parse_header(const uint8_t h[OBJ_HDR_SIZE], obj_info *info)
{
	if (memcmp(h, hdr_magic, 8) != 0)
		return -EBADMSG;
	uint32_t version = le_get32(h + 8);
	/* Version before checksum: a newer format may lay its header out differently. */
	if (version > OBJ_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	if (version == 0 || le_get64(h + 56) != cksum64(h, 56))
		return -EBADMSG;
	uint32_t flags = le_get32(h + 12);
	if (flags & ~OBJ_KNOWN_FLAGS)
		return -EBADMSG;
	for (unsigned i = (flags & OBJ_FLAG_LOSSY) ? 48 : 44; i < 56; i++)
		if (h[i] != 0)
			return -EBADMSG;
	memset(info, 0, sizeof *info);
	if (flags & OBJ_FLAG_LOSSY) {
		uint32_t bits = le_get32(h + 44);
		memcpy(&info->lossy_threshold, &bits, 4);
		if (!(info->lossy_threshold > 0) || info->lossy_threshold > 1e30f)
			return -EBADMSG; /* a lossy object names a finite, positive threshold */
	}
	info->size = le_get64(h + 16);
	info->has_base = (flags & OBJ_FLAG_BASE) ? 1 : 0;
	info->base_size = le_get64(h + 24);
	info->base_hash = le_get64(h + 32);
	info->chunk_size = le_get32(h + 40);
	if (info->chunk_size == 0 || info->chunk_size > OBJ_MAX_CHUNK)
		return -EBADMSG;
	if (!info->has_base && (info->base_size != 0 || info->base_hash != 0))
		return -EBADMSG;
	return 0;
}

/* Every chunk is checked against its neighbours and the file: logical ranges contiguous from 0
 * to size, payloads packed back to back from the header to the index. */
static int check_chunks(const obj_reader *r, uint64_t index_off)
{
	uint64_t off = 0, data = OBJ_HDR_SIZE;
	for (size_t i = 0; i < r->n; i++) {
		const obj_chunk *c = &r->chunks[i];
		if (c->off != off || c->len == 0 || c->len > r->info.chunk_size ||
		    c->len > r->info.size - off)
			return -EBADMSG;
		if (c->codec >= OBJ_NCODECS || !width_ok(c->width))
			return -EBADMSG;
		if (c->data_off != data || c->data_len > index_off - data)
			return -EBADMSG;
		if (c->base_off == OBJ_NO_BASE) {
			if (c->base_len != 0)
				return -EBADMSG;
		} else if (!r->info.has_base || c->base_off > r->info.base_size ||
			   c->base_len > r->info.base_size - c->base_off) {
			return -EBADMSG;
		}
		off += c->len;
		data += c->data_len;
	}
	if (off != r->info.size || data != index_off)
		return -EBADMSG;
	return 0;
}

int obj_reader_open(int fd, obj_reader **out)
{
	*out = NULL;
	if (fd < 0)
		return -EBADF;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		close(fd);
		return -EBADMSG;
	}
	io_rfile *f;
	int rc = io_rfile_from_fd(fd, &f);
	return rc < 0 ? rc : obj_reader_open_file(f, out);
}

int obj_reader_open_file(io_rfile *f, obj_reader **out)
{
	*out = NULL;
	obj_reader *r = calloc(1, sizeof *r);
	if (!r) {
		io_rfile_close(f);
		return -ENOMEM;
	}
	r->f = f;
	int rc;
	r->file_bytes = f->size;
	uint8_t h[OBJ_HDR_SIZE];
	if (r->file_bytes < OBJ_HDR_SIZE + OBJ_FTR_SIZE) {
		/* Still tell "newer format" apart from "damaged" when the header is readable. */
		rc = -EBADMSG;
		if (r->file_bytes >= 12 && io_rfile_pread(f, h, 12, 0) == 0 &&
		    memcmp(h, hdr_magic, 8) == 0 && le_get32(h + 8) > OBJ_FORMAT_VERSION)
			rc = -EPROTONOSUPPORT;
		goto fail;
	}
	if ((rc = io_rfile_pread(f, h, sizeof h, 0)) < 0)
		goto fail;
	if ((rc = parse_header(h, &r->info)) < 0)
		goto fail;

	uint8_t ftr[OBJ_FTR_SIZE];
	if ((rc = io_rfile_pread(f, ftr, sizeof ftr, r->file_bytes - OBJ_FTR_SIZE)) < 0)
		goto fail;
	rc = -EBADMSG;
	if (memcmp(ftr + 40, ftr_magic, 8) != 0 || le_get64(ftr + 32) != cksum64(ftr, 32))
		goto fail;
	uint64_t index_off = le_get64(ftr + 0);
	uint64_t nchunks = le_get64(ftr + 8);
	r->info.content_hash = le_get64(ftr + 16);
	uint64_t index_ck = le_get64(ftr + 24);
	/* The index must exactly fill the space between the payloads and the footer. */
	uint64_t room = r->file_bytes - OBJ_HDR_SIZE - OBJ_FTR_SIZE;
	if (nchunks > room / OBJ_ENTRY_SIZE || nchunks > SIZE_MAX / sizeof(obj_chunk))
		goto fail;
	if (index_off < OBJ_HDR_SIZE ||
	    index_off != r->file_bytes - OBJ_FTR_SIZE - nchunks * OBJ_ENTRY_SIZE)
		goto fail;
	/* A chunk is at least one byte: more chunks than bytes is a lie. */
	if (nchunks > r->info.size || (r->info.size > 0 && nchunks == 0))
		goto fail;
	r->n = (size_t)nchunks;
	r->chunks = calloc(r->n ? r->n : 1, sizeof *r->chunks);
	if (!r->chunks) {
		rc = -ENOMEM;
		goto fail;
	}
	cksum_state *cs = cksum_new();
	if (!cs) {
		rc = -ENOMEM;
		goto fail;
	}
	uint8_t buf[OBJ_ENTRY_SIZE * 256];
	rc = 0;
	for (size_t i = 0; i < r->n && rc == 0;) {
		size_t k = r->n - i < 256 ? r->n - i : 256;
		rc = io_rfile_pread(f, buf, k * OBJ_ENTRY_SIZE, index_off + i * OBJ_ENTRY_SIZE);
		if (rc < 0)
			break;
		cksum_update(cs, buf, k * OBJ_ENTRY_SIZE);
		for (size_t j = 0; j < k; j++, i++) {
			const uint8_t *e = buf + j * OBJ_ENTRY_SIZE;
			if (e[14] != 0 || e[15] != 0)
				rc = -EBADMSG;
			dec_entry(e, &r->chunks[i]);
		}
	}
	uint64_t got_ck = cksum_digest(cs);
	cksum_free(cs);
	if (rc < 0)
		goto fail;
	if (got_ck != index_ck) {
		rc = -EBADMSG;
		goto fail;
	}
	if ((rc = check_chunks(r, index_off)) < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	obj_reader_close(r);
	return rc;
}

const obj_info *obj_reader_info(const obj_reader *r)
{
	return &r->info;
}

size_t obj_reader_nchunks(const obj_reader *r)
{
	return r->n;
}

const obj_chunk *obj_reader_chunk(const obj_reader *r, size_t i)
{
	return i < r->n ? &r->chunks[i] : NULL;
}

long obj_reader_find(const obj_reader *r, uint64_t off)
{
	if (off >= r->info.size)
		return -ERANGE;
	size_t lo = 0, hi = r->n; /* invariant: chunks[lo].off <= off < end of chunks[hi-1] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->chunks[mid].off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return (long)lo;
}

int obj_reader_payload(const obj_reader *r, size_t i, void *buf)
{
	if (i >= r->n)
		return -EINVAL;
	const obj_chunk *c = &r->chunks[i];
	return io_rfile_pread(r->f, buf, c->data_len, c->data_off);
}

void obj_reader_prefetch(const obj_reader *r, size_t first, size_t last)
{
	if (first > last || last >= r->n)
		return;
	const obj_chunk *a = &r->chunks[first], *b = &r->chunks[last];
	io_rfile_advise(r->f, a->data_off, b->data_off + b->data_len - a->data_off, IO_WILLNEED);
}

#define OBJ_DROP_OVERLAP (2u << 20)

void obj_reader_drop(const obj_reader *r, size_t first, size_t last)
{
	if (first > last || last >= r->n)
		return;
	const obj_chunk *a = &r->chunks[first], *b = &r->chunks[last];
	/* The kernel drops whole folios only, and a large folio (up to 2 MiB) across the start
	 * stays: start that much earlier, so that the pages a previous call left at its end go
	 * with this one (callers drop consecutive ranges). */
	uint64_t lo = a->data_off > OBJ_DROP_OVERLAP ? a->data_off - OBJ_DROP_OVERLAP : 0;
	io_rfile_advise(r->f, lo, b->data_off + b->data_len - lo, IO_DONTNEED);
}

uint64_t obj_reader_file_bytes(const obj_reader *r)
{
	return r->file_bytes;
}

void obj_reader_close(obj_reader *r)
{
	if (!r)
		return;
	io_rfile_close(r->f);
	free(r->chunks);
	free(r);
}
