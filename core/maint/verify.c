/* verify.c - see verify.h. Objects are read chunk by chunk through a chain reader, so a delta
 * chunk is checked against the real bytes of its base; a damaged chunk does not stop the scan. */
#include "verify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cksum.h"
#include "objfile.h"
#include "chain_store.h"
#include "store_admin.h"

typedef struct vx {
	store *s;
	const verify_opts *o;
	verify_result *res;
	chain *ch;
	store_obj *v;
	size_t n;
	size_t cap_bad;
} vx;

static void note(vx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(vx *x, const char *fmt, ...)
{
	if (!x->o->line)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	x->o->line(x->o->ctx, buf);
}

static void bad_ino(vx *x, uint64_t ino)
{
	for (size_t i = 0; i < x->res->nbad_inos; i++)
		if (x->res->bad_inos[i] == ino)
			return;
	if (x->res->nbad_inos == x->cap_bad) {
		size_t c = x->cap_bad ? 2 * x->cap_bad : 16;
		uint64_t *p = realloc(x->res->bad_inos, c * sizeof(*p));
		if (!p)
			return; /* the problem count still says something is wrong */
		x->res->bad_inos = p;
		x->cap_bad = c;
	}
	x->res->bad_inos[x->res->nbad_inos++] = ino;
}

/* Every inode whose data is object obj is damaged. */
static void bad_obj_users(vx *x, uint64_t obj)
{
	uint64_t *ids;
	size_t n;
	if (store_admin_inodes_of_obj(x->s, obj, &ids, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		bad_ino(x, ids[i]);
	free(ids);
}

/* Online: a failure on an object that meanwhile disappeared is not damage. */
static int gone(vx *x, uint64_t obj)
{
	return x->o->online && store_admin_obj_exists(x->s, obj) == 0;
}

static long find(const vx *x, uint64_t id)
{
	size_t lo = 0, hi = x->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->v[mid].id == id)
			return (long)mid;
		if (x->v[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Drop obj and its (current) ancestors from the chain reader's tables. */
static void forget_chain(vx *x, uint64_t obj)
{
	for (size_t steps = 0; obj && steps <= x->n + 1; steps++) {
		chain_forget(x->ch, obj);
		store_obj o;
		if (store_obj_get(x->s, obj, &o) < 0)
			break;
		obj = o.base;
	}
}

/* Blob, chunks, content hash of one object. 1 when damaged. */
static int check_object(vx *x, const store_obj *o, uint8_t **buf, size_t *bufcap)
{
	io_rfile *f;
	int r = store_obj_open(x->s, o->id, &f);
	if (r < 0) {
		if (gone(x, o->id))
			return 0;
		note(x, "object %" PRIu64 ": blob missing or unreadable: %s\n", o->id,
		     strerror(-r));
		return 1;
	}
	obj_reader *rd;
	r = obj_reader_open_file(f, &rd);
	if (r < 0) {
		if (gone(x, o->id))
			return 0;
		note(x, "object %" PRIu64 ": blob is not a valid object file (header/index/footer): "
		     "%s\n", o->id, r == -EBADMSG ? "damaged" : strerror(-r));
		return 1;
	}
	const obj_info *in = obj_reader_info(rd);
	int bad = 0;
	if (in->size != o->size) {
		note(x, "object %" PRIu64 ": blob holds %" PRIu64 " bytes, metadata says %" PRIu64
		     "\n", o->id, in->size, o->size);
		bad = 1;
	}
	if (in->content_hash != o->hash) {
		note(x, "object %" PRIu64 ": blob content hash differs from the metadata\n", o->id);
		bad = 1;
	}
	if (!!in->has_base != !!o->base) {
		note(x, "object %" PRIu64 ": blob %s a base, metadata says %s\n", o->id,
		     in->has_base ? "needs" : "has no", o->base ? "it has one" : "keyframe");
		bad = 1;
	}
	if (o->base) {
		long b = find(x, o->base);
		if (b >= 0 && in->has_base && x->v[b].hash != in->base_hash) {
			note(x, "object %" PRIu64 ": coded against a base with another content hash "
			     "than object %" PRIu64 "\n", o->id, o->base);
			bad = 1;
		}
	}
	if (obj_reader_file_bytes(rd) != o->stored)
		note(x, "object %" PRIu64 ": blob is %" PRIu64 " bytes, metadata says %" PRIu64
		     " (note)\n", o->id, obj_reader_file_bytes(rd), o->stored);
	cksum_state *h = cksum_new();
	if (!h) {
		obj_reader_close(rd);
		return -ENOMEM;
	}
	size_t nch = obj_reader_nchunks(rd);
	uint64_t badch = 0;
	for (size_t i = 0; i < nch; i++) {
		const obj_chunk *c = obj_reader_chunk(rd, i);
		if (c->len > *bufcap) {
			uint8_t *p = realloc(*buf, c->len);
			if (!p) {
				cksum_free(h);
				obj_reader_close(rd);
				return -ENOMEM;
			}
			*buf = p;
			*bufcap = c->len;
		}
		size_t done = 0;
		ssize_t got = 0;
		for (int attempt = 0; attempt < 2; attempt++) {
			done = 0;
			while (done < c->len) {
				got = chain_pread(x->ch, o->id, *buf + done, c->len - done,
						  c->off + done);
				if (got <= 0)
					break;
				done += (size_t)got;
			}
			if (done == c->len || !x->o->online)
				break;
			/* gc may have rebased the chain meanwhile: read it again from scratch */
			forget_chain(x, o->id);
		}
		x->res->chunks++;
		x->res->bytes += done;
		if (done < c->len) {
			if (gone(x, o->id)) {
				cksum_free(h);
				obj_reader_close(rd);
				return 0;
			}
			if (badch < 8)
				note(x, "object %" PRIu64 ": chunk %zu (bytes %" PRIu64 "..%" PRIu64
				     ", codec %u%s) does not decode: %s\n", o->id, i, c->off,
				     c->off + c->len, c->codec, c->base_off != OBJ_NO_BASE ? ", delta" : "",
				     got < 0 ? strerror((int)-got) : "short read");
			badch++;
			/* the hash below cannot match any more: no second report for it */
			memset(*buf, 0, c->len);
		}
		cksum_update(h, *buf, c->len);
	}
	if (badch) {
		x->res->bad_chunks += badch;
		if (badch > 8)
			note(x, "object %" PRIu64 ": %" PRIu64 " damaged chunks in all\n", o->id, badch);
		bad = 1;
	} else if (cksum_digest(h) != o->hash) {
		note(x, "object %" PRIu64 ": decoded content hash does not match the metadata\n",
		     o->id);
		bad = 1;
	}
	cksum_free(h);
	obj_reader_close(rd);
	return bad;
}

static int check_blob(void *ctx, const char *name, uint64_t id, uint64_t size, int64_t mtime)
{
	vx *x = ctx;
	if (!id) {
		note(x, "objects/%s: not an object blob name (note)\n", name);
		return 0;
	}
	if (find(x, id) >= 0 || store_admin_obj_exists(x->s, id) == 1)
		return 0;
	if (x->o->online) {
		note(x, "objects/%s: no metadata row (an encode in flight, or garbage that "
		     "gc removes) (note)\n", name);
		return 0;
	}
	note(x, "objects/%s: blob without a metadata row (gc removes it)\n", name);
	x->res->problems++;
	return 0;
}

/* Rows without blobs are found per object; here: blobs without rows. */
static void check_blob_files(vx *x)
{
	int r = store_blob_list(x->s, check_blob, x);
	if (r < 0) {
		note(x, "objects/: cannot list the blobs: %s\n", strerror(-r));
		x->res->problems++;
	}
}

/* Bases exist, no cycles, depths consistent. Damaged objects get flag 1 in bad[]. */
static void check_chains(vx *x, char *bad)
{
	for (size_t i = 0; i < x->n; i++) {
		const store_obj *o = &x->v[i];
		if (!o->base) {
			if (o->depth != 0) {
				note(x, "object %" PRIu64 ": keyframe with depth %u\n", o->id, o->depth);
				x->res->problems++;
			}
			continue;
		}
		long b = find(x, o->base);
		if (b < 0) {
			note(x, "object %" PRIu64 ": base object %" PRIu64 " does not exist\n", o->id,
			     o->base);
			bad[i] = 1;
			continue;
		}
		if (o->depth != x->v[b].depth + 1) {
			note(x, "object %" PRIu64 ": depth %u but its base has depth %u\n", o->id,
			     o->depth, x->v[b].depth);
			x->res->problems++;
		}
		/* walk up: more steps than objects means a cycle */
		size_t steps = 0;
		long j = (long)i;
		while (j >= 0 && x->v[j].base && steps <= x->n) {
			j = find(x, x->v[j].base);
			steps++;
		}
		if (steps > x->n) {
			note(x, "object %" PRIu64 ": its chain of bases has a cycle\n", o->id);
			bad[i] = 1;
		}
	}
	/* unreferenced objects must still be a base of something */
	for (size_t i = 0; i < x->n; i++) {
		if (!x->v[i].unref)
			continue;
		int dep = 0;
		for (size_t k = 0; k < x->n && !dep; k++)
			dep = x->v[k].base == x->v[i].id;
		if (!dep)
			note(x, "object %" PRIu64 ": unreferenced and nothing depends on it (gc frees "
			     "it) (note)\n", x->v[i].id);
	}
}

static void check_inodes(vx *x)
{
	uint64_t *ids;
	size_t n;
	if (store_admin_dangling_obj_refs(x->s, &ids, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			note(x, "inode %" PRIu64 ": its object does not exist\n", ids[i]);
			bad_ino(x, ids[i]);
			x->res->problems++;
		}
		free(ids);
	}
	if (store_admin_dangling_pred_hints(x->s, &ids, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			note(x, "inode %" PRIu64 ": predecessor hint names a missing object\n", ids[i]);
			x->res->problems++;
		}
		free(ids);
	}
	if (store_admin_files_without_data(x->s, &ids, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			note(x, "inode %" PRIu64 ": has a size but no data\n", ids[i]);
			bad_ino(x, ids[i]);
			x->res->problems++;
		}
		free(ids);
	}
	if (store_list_staged(x->s, &ids, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			char rel[STORE_STAGING_NAME_SIZE];
			store_staging_name(ids[i], rel, sizeof(rel));
			store_attr a;
			if (store_staging_durable(x->s, ids[i]) != 0)
				continue; /* there (or the bucket cannot be asked: said elsewhere) */
			if (x->o->online && (store_getattr(x->s, ids[i], &a) < 0 || !a.staged))
				continue; /* encoded meanwhile */
			note(x, "inode %" PRIu64 ": staged, but %s is missing\n", ids[i], rel);
			bad_ino(x, ids[i]);
			x->res->problems++;
		}
		free(ids);
	}
}

int verify_run(store *s, const verify_opts *o, verify_result *res)
{
	memset(res, 0, sizeof(*res));
	vx x = {.s = s, .o = o, .res = res};
	char msg[512];
	if (store_admin_quick_check(s, msg, sizeof(msg)) < 0) {
		note(&x, "SQLite quick_check: %s\n", msg);
		res->problems++;
	}
	int ver, sums = store_admin_page_sums(s, &ver);
	if (sums == 0 && ver >= 2) {
		note(&x, "metadata database: format version %d but no page checksums (an upgrade was "
		     "cut short): run tpdefs-admin upgrade\n", ver);
		res->problems++;
	} else if (sums == 0) {
		note(&x, "metadata database: no page checksums (format version %d; tpdefs-admin "
		     "upgrade adds them) (note)\n", ver);
	}
	int r = store_admin_objects(s, &x.v, &x.n);
	if (r < 0)
		return r;
	char *bad = calloc(x.n ? x.n : 1, 1);
	x.ch = o->ch;
	int own = 0;
	if (!x.ch) {
		x.ch = chain_store_new(s, 64u << 20);
		own = 1;
	}
	if (!bad || !x.ch) {
		r = -ENOMEM;
		goto out;
	}
	check_chains(&x, bad);
	uint8_t *buf = NULL;
	size_t cap = 0;
	for (size_t i = 0; i < x.n; i++) {
		if (o->progress)
			o->progress(o->ctx, i, x.n);
		if (bad[i])
			continue; /* no valid chain: reading it cannot work */
		int b = check_object(&x, &x.v[i], &buf, &cap);
		if (b < 0) {
			r = b;
			break;
		}
		res->objects++;
		if (b)
			bad[i] = 1;
	}
	free(buf);
	if (o->progress)
		o->progress(o->ctx, x.n, x.n);
	for (size_t i = 0; i < x.n; i++) {
		if (!bad[i])
			continue;
		res->bad_objects++;
		res->problems++;
		bad_obj_users(&x, x.v[i].id);
	}
	check_blob_files(&x);
	check_inodes(&x);
out:
	if (own && x.ch)
		chain_free(x.ch);
	free(bad);
	free(x.v);
	return r;
}

void verify_result_free(verify_result *res)
{
	free(res->bad_inos);
	res->bad_inos = NULL;
	res->nbad_inos = 0;
}
