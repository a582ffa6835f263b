/* stats.c - see stats.h. The namespace is walked breadth-first from the root; directory
 * entries are collected before descending (store_readdir holds the store lock in callbacks). */
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "objfile.h"
#include "store_admin.h"

typedef struct dent {
	char name[STORE_NAME_MAX + 1];
	store_attr a;
} dent;

typedef struct dvec {
	dent *v;
	size_t n, cap;
	int err;
} dvec;

static int collect_dent(void *ctx, int64_t cookie, const char *name, size_t len,
			const store_attr *a)
{
	(void)cookie;
	dvec *d = ctx;
	if (d->n == d->cap) {
		size_t c = d->cap ? d->cap * 2 : 32;
		dent *p = realloc(d->v, c * sizeof(*p));
		if (!p) {
			d->err = -ENOMEM;
			return 1;
		}
		d->v = p;
		d->cap = c;
	}
	dent *e = &d->v[d->n++];
	if (len > STORE_NAME_MAX)
		len = STORE_NAME_MAX;
	memcpy(e->name, name, len);
	e->name[len] = 0;
	e->a = *a;
	return 0;
}

typedef struct qitem {
	uint64_t ino;
	char *path;
} qitem;

static int cmp_obj(const void *a, const void *b)
{
	const store_obj *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int add_file(stats_report *rep, size_t *cap, const char *path, const store_attr *a)
{
	for (size_t i = 0; i < rep->nfiles; i++)
		if (rep->files_v[i].ino == a->ino)
			return 0; /* another link of a file already listed */
	if (rep->nfiles == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		stats_file *p = realloc(rep->files_v, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		rep->files_v = p;
		*cap = c;
	}
	stats_file *f = &rep->files_v[rep->nfiles];
	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	if (!f->path)
		return -ENOMEM;
	f->ino = a->ino;
	f->size = a->size;
	f->obj = a->staged ? 0 : a->obj;
	f->staged = a->staged;
	rep->nfiles++;
	return 0;
}

static int walk(store *s, stats_report *rep)
{
	qitem *q = malloc(sizeof(*q));
	size_t qn = 1, qcap = 1, fcap = 0;
	if (!q)
		return -ENOMEM;
	q[0].ino = STORE_ROOT_INO;
	q[0].path = strdup("");
	int r = q[0].path ? 0 : -ENOMEM;
	for (size_t qi = 0; r == 0 && qi < qn; qi++) {
		dvec d = {0};
		r = store_readdir(s, q[qi].ino, 0, collect_dent, &d);
		if (r == 0)
			r = d.err;
		for (size_t i = 0; r == 0 && i < d.n; i++) {
			size_t pl = strlen(q[qi].path) + strlen(d.v[i].name) + 2;
			char *p = malloc(pl);
			if (!p) {
				r = -ENOMEM;
				break;
			}
			snprintf(p, pl, "%s/%s", q[qi].path, d.v[i].name);
			if (S_ISDIR(d.v[i].a.mode)) {
				if (qn == qcap) {
					size_t c = qcap * 2;
					qitem *np = realloc(q, c * sizeof(*np));
					if (!np) {
						free(p);
						r = -ENOMEM;
						break;
					}
					q = np;
					qcap = c;
				}
				q[qn].ino = d.v[i].a.ino;
				q[qn++].path = p;
				continue;
			}
			if (S_ISREG(d.v[i].a.mode))
				r = add_file(rep, &fcap, p, &d.v[i].a);
			free(p);
		}
		free(d.v);
	}
	for (size_t i = 0; i < qn; i++)
		free(q[i].path);
	free(q);
	return r;
}

static void codec_mix(store *s, stats_file *f)
{
	io_rfile *file;
	if (store_obj_open(s, f->obj, &file) < 0)
		return;
	obj_reader *rd;
	if (obj_reader_open_file(file, &rd) < 0)
		return;
	for (size_t i = 0; i < obj_reader_nchunks(rd); i++) {
		const obj_chunk *c = obj_reader_chunk(rd, i);
		if (c->codec < CODEC_MAX)
			f->codec_bytes[c->codec] += c->len;
	}
	f->blob_ok = 1;
	obj_reader_close(rd);
}

static int chains(stats_report *rep, store_obj *v, size_t n)
{
	/* root of each object, bounded walk (a cycle gets no chain) */
	rep->chains = calloc(n ? n : 1, sizeof(*rep->chains));
	if (!rep->chains)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		store_obj key = {.id = v[i].id};
		const store_obj *o = &v[i];
		size_t steps = 0;
		while (o && o->base && steps++ <= n) {
			key.id = o->base;
			o = bsearch(&key, v, n, sizeof(*v), cmp_obj);
		}
		if (!o || o->base)
			continue;
		size_t c = 0;
		while (c < rep->nchains && rep->chains[c].keyframe != o->id)
			c++;
		if (c == rep->nchains)
			rep->chains[rep->nchains++].keyframe = o->id;
		stats_chain *ch = &rep->chains[c];
		ch->objects++;
		ch->stored += v[i].stored;
		ch->logical += v[i].size;
		if (v[i].depth > ch->max_depth)
			ch->max_depth = v[i].depth;
		ch->unref += v[i].unref != 0;
	}
	return 0;
}

int stats_collect(store *s, stats_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	int r = walk(s, rep);
	store_obj *v = NULL;
	size_t n = 0;
	if (r == 0)
		r = store_admin_objects(s, &v, &n);
	if (r < 0) {
		stats_free(rep);
		return r;
	}
	rep->objects = n;
	for (size_t i = 0; i < n; i++) {
		rep->stored_bytes += v[i].stored;
		if (v[i].unref) {
			rep->unref_objects++;
			rep->unref_bytes += v[i].stored;
		}
	}
	for (size_t i = 0; i < rep->nfiles; i++) {
		stats_file *f = &rep->files_v[i];
		rep->files++;
		rep->logical_bytes += f->size;
		if (f->staged) {
			rep->staged_files++;
			rep->pending_bytes += f->size;
			continue;
		}
		if (!f->obj)
			continue;
		store_obj key = {.id = f->obj};
		const store_obj *o = bsearch(&key, v, n, sizeof(*v), cmp_obj);
		if (!o)
			continue;
		f->stored = o->stored;
		f->depth = o->depth;
		f->base_obj = o->base;
		codec_mix(s, f);
	}
	for (size_t i = 0; i < rep->nfiles; i++) {
		stats_file *f = &rep->files_v[i];
		if (!f->base_obj)
			continue;
		for (size_t k = 0; k < rep->nfiles; k++)
			if (rep->files_v[k].obj == f->base_obj) {
				f->base_path = rep->files_v[k].path;
				break;
			}
	}
	r = chains(rep, v, n);
	free(v);
	struct stat st;
	if (fstatat(store_dirfd(s), "tpdefs.db", &st, 0) == 0)
		rep->db_bytes += (uint64_t)st.st_size;
	if (fstatat(store_dirfd(s), "tpdefs.db-wal", &st, 0) == 0)
		rep->db_bytes += (uint64_t)st.st_size;
	if (r < 0)
		stats_free(rep);
	return r;
}

void stats_free(stats_report *rep)
{
	for (size_t i = 0; i < rep->nfiles; i++)
		free(rep->files_v[i].path);
	free(rep->files_v);
	free(rep->chains);
	memset(rep, 0, sizeof(*rep));
}

int stats_path_of(store *s, uint64_t ino, char *buf, size_t size)
{
	/* build from the leaf upwards into a scratch buffer, then reverse the components */
	char comp[64][STORE_NAME_MAX + 1];
	size_t nc = 0;
	uint64_t cur = ino;
	while (cur != STORE_ROOT_INO) {
		if (nc == 64)
			return -ENAMETOOLONG;
		uint64_t parent;
		size_t len;
		int r = store_parent(s, cur, &parent, comp[nc], &len);
		if (r < 0)
			return r;
		nc++;
		cur = parent;
	}
	size_t off = 0;
	if (size)
		buf[0] = 0;
	if (!nc)
		return snprintf(buf, size, "/") < (int)size ? 0 : -ENAMETOOLONG;
	while (nc--) {
		int k = snprintf(buf + off, size - off, "/%s", comp[nc]);
		if (k < 0 || (size_t)k >= size - off)
			return -ENAMETOOLONG;
		off += (size_t)k;
	}
	return 0;
}

void stats_quote(const char *in, char *out, size_t size)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;
	if (!size)
		return;
	while (*p && o + 5 < size) {
		unsigned c = *p;
		int n = c < 0x80 ? 1 : c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
		int ok = n > 0 && c >= 0x20 && c != 0x7f && c != '\\';
		for (int k = 1; ok && k < n; k++)
			ok = (p[k] & 0xc0) == 0x80;
		if (ok && o + (size_t)n < size) {
			memcpy(out + o, p, (size_t)n);
			o += (size_t)n;
			p += n;
		} else {
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
			p++;
		}
	}
	out[o] = 0;
}
