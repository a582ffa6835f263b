/* pred.c - predecessor choice: name series ranking (pure) plus the store queries around it. */
#include "pred.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int pred_name_parse(const char *name, size_t len, pred_name *out)
{
	memset(out, 0, sizeof(*out));
	if (len > STORE_NAME_MAX)
		return -EINVAL;
	size_t i = 0;
	while (i < len) {
		if (!is_digit(name[i])) {
			out->skel[out->skel_len++] = name[i++];
			continue;
		}
		if (out->nnum == PRED_MAX_NUMS)
			return -EINVAL;
		uint64_t v = 0;
		while (i < len && is_digit(name[i])) {
			unsigned d = (unsigned)(name[i] - '0');
			v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
			i++;
		}
		out->num[out->nnum++] = v;
		out->skel[out->skel_len++] = '#';
	}
	out->skel[out->skel_len] = 0;
	return out->nnum ? 0 : -EINVAL;
}

int pred_same_series(const pred_name *a, const pred_name *b)
{
	return a->nnum == b->nnum && a->skel_len == b->skel_len &&
	       memcmp(a->skel, b->skel, a->skel_len) == 0;
}

int pred_num_cmp(const pred_name *a, const pred_name *b)
{
	unsigned n = a->nnum < b->nnum ? a->nnum : b->nnum;
	for (unsigned i = 0; i < n; i++)
		if (a->num[i] != b->num[i])
			return a->num[i] < b->num[i] ? -1 : 1;
	return 0;
}

typedef struct rank_item {
	size_t idx;
	int lower;         /* 1: number below ours */
	pred_name pn;
	uint64_t recency;
} rank_item;

static int rank_cmp(const void *x, const void *y)
{
	const rank_item *a = x, *b = y;
	if (a->lower != b->lower)
		return a->lower ? -1 : 1;
	if (a->lower) {
		int c = pred_num_cmp(&a->pn, &b->pn);
		if (c)
			return -c; /* nearest lower (highest) first */
	}
	if (a->recency != b->recency)
		return a->recency > b->recency ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

size_t pred_rank(const char *name, size_t len, const pred_entry *e, size_t n, size_t *out,
		 size_t max)
{
	pred_name me;
	if (pred_name_parse(name, len, &me) < 0 || max == 0)
		return 0;
	rank_item *it = malloc((n ? n : 1) * sizeof(*it));
	if (!it)
		return 0;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (e[i].len == len && memcmp(e[i].name, name, len) == 0)
			continue;
		if (pred_name_parse(e[i].name, e[i].len, &it[k].pn) < 0)
			continue;
		if (!pred_same_series(&me, &it[k].pn))
			continue;
		int c = pred_num_cmp(&it[k].pn, &me);
		if (c == 0)
			continue; /* same numbers, different zero padding: not an ordering */
		if (c > 0 && e[i].pending)
			continue; /* a later version still being written is no predecessor */
		it[k].idx = i;
		it[k].lower = c < 0;
		it[k].recency = e[i].recency;
		k++;
	}
	qsort(it, k, sizeof(*it), rank_cmp);
	size_t m = k < max ? k : max;
	for (size_t i = 0; i < m; i++)
		out[i] = it[i].idx;
	free(it);
	return m;
}

const char *pred_kind_name(int kind)
{
	switch (kind) {
	case PRED_HINT:
		return "replaced";
	case PRED_SIBLING:
		return "sibling";
	case PRED_SIBDIR:
		return "sibling-dir";
	case PRED_CONTENT:
		return "same tensors";
	default:
		return "none";
	}
}

/* A directory listing kept for ranking. */
typedef struct listing {
	pred_entry *e;
	store_attr *a;
	char **names;
	size_t n, cap;
	int want_dirs;
	int err;
} listing;

static int collect(void *ctx, int64_t cookie, const char *name, size_t len, const store_attr *a)
{
	(void)cookie;
	listing *l = ctx;
	int isdir = S_ISDIR(a->mode);
	if (l->want_dirs ? !isdir : !(S_ISREG(a->mode) && (a->obj || a->staged)))
		return 0;
	if (l->n == l->cap) {
		size_t c = l->cap ? 2 * l->cap : 32;
		pred_entry *e = realloc(l->e, c * sizeof(*e));
		if (e)
			l->e = e;
		store_attr *at = realloc(l->a, c * sizeof(*at));
		if (at)
			l->a = at;
		char **nm = realloc(l->names, c * sizeof(*nm));
		if (nm)
			l->names = nm;
		if (!e || !at || !nm) {
			l->err = -ENOMEM;
			return 1;
		}
		l->cap = c;
	}
	char *copy = malloc(len + 1);
	if (!copy) {
		l->err = -ENOMEM;
		return 1;
	}
	memcpy(copy, name, len);
	copy[len] = 0;
	l->names[l->n] = copy;
	l->e[l->n].name = copy;
	l->e[l->n].len = len;
	/* staged files are newer than anything stored */
	l->e[l->n].recency = a->staged ? UINT64_MAX : a->obj;
	l->e[l->n].pending = a->staged;
	l->a[l->n] = *a;
	l->n++;
	return 0;
}

static void listing_free(listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	free(l->e);
	free(l->a);
}

static int add_cand(pred_cand *out, size_t max, size_t *n, int kind, uint64_t obj, uint64_t ino,
		    int newer)
{
	for (size_t i = 0; i < *n; i++)
		if ((obj && out[i].obj == obj) || (ino && out[i].ino == ino))
			return 0;
	if (*n >= max)
		return 1;
	out[*n].kind = kind;
	out[*n].obj = obj;
	out[*n].ino = ino;
	out[*n].newer = newer;
	(*n)++;
	return 0;
}

int pred_candidates(store *s, uint64_t ino, pred_cand *out, size_t max, size_t *n)
{
	*n = 0;
	store_attr me;
	int r = store_getattr(s, ino, &me);
	if (r < 0)
		return r;
	if (me.pred_hint && add_cand(out, max, n, PRED_HINT, me.pred_hint, 0, 0))
		return 0;
	uint64_t parent;
	char name[STORE_NAME_MAX + 1];
	size_t len;
	if (store_parent(s, ino, &parent, name, &len) < 0)
		return 0; /* unlinked: only the hint */
	size_t idx[16];
	listing l = {0};
	r = store_readdir(s, parent, 0, collect, &l);
	if (r >= 0 && l.err)
		r = l.err;
	if (r >= 0) {
		size_t k = pred_rank(name, len, l.e, l.n, idx, 16);
		pred_name mine, other;
		int parsed = pred_name_parse(name, len, &mine) == 0, pending = 0;
		for (size_t i = 0; i < k; i++) {
			const store_attr *a = &l.a[idx[i]];
			if (a->ino == ino)
				continue;
			/* only the nearest waiting version can serve (ingested first); the others
			 * would crowd out stored candidates, later versions among them */
			if (a->staged && pending++)
				continue;
			int newer = parsed && !a->staged &&
				    pred_name_parse(l.e[idx[i]].name, l.e[idx[i]].len, &other) == 0 &&
				    pred_num_cmp(&other, &mine) > 0;
			if (add_cand(out, max, n, PRED_SIBLING, a->staged ? 0 : a->obj, a->ino, newer))
				break;
		}
	}
	listing_free(&l);
	if (r < 0 || *n >= max || parent == STORE_ROOT_INO)
		return r < 0 ? r : 0;
	/* (3) the same name in a sibling directory of the same series */
	uint64_t gp;
	char pname[STORE_NAME_MAX + 1];
	size_t plen;
	if (store_parent(s, parent, &gp, pname, &plen) < 0)
		return 0;
	listing d = {.want_dirs = 1};
	r = store_readdir(s, gp, 0, collect, &d);
	if (r >= 0 && d.err)
		r = d.err;
	if (r >= 0) {
		for (size_t i = 0; i < d.n; i++) {
			d.e[i].recency = d.a[i].ino; /* newer directories have larger inode numbers */
			d.e[i].pending = 0;
		}
		size_t k = pred_rank(pname, plen, d.e, d.n, idx, 16);
		for (size_t i = 0; i < k && *n < max; i++) {
			store_attr a;
			if (store_lookup(s, d.a[idx[i]].ino, name, len, &a) < 0)
				continue;
			if (!S_ISREG(a.mode) || !(a.obj || a.staged) || a.ino == ino)
				continue;
			pred_name pn, dn;
			int later = pred_name_parse(pname, plen, &pn) == 0 &&
				    pred_name_parse(d.e[idx[i]].name, d.e[idx[i]].len, &dn) == 0 &&
				    pred_num_cmp(&dn, &pn) > 0;
			if (a.staged && later)
				continue; /* a later directory's file still being written */
			if (add_cand(out, max, n, PRED_SIBDIR, a.staged ? 0 : a.obj, a.ino, later))
				break;
		}
	}
	listing_free(&d);
	return r < 0 ? r : 0;
}
