/* test_gc.c - gc, verify and stats on a real store built through the store and encoder APIs
 * (synthetic versions of one file; no FUSE). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chain.h"
#include "encoder.h"
#include "gc.h"
#include "stats.h"
#include "store.h"
#include "chain_store.h"
#include "store_admin.h"
#include "verify.h"

#define VSIZE (300u * 1024u)
#define NV 8

static char dir[64];
static store *s;
static uint8_t *ver[NV];
static uint64_t ino[NV], obj[NV];

static void setup(void)
{
	strcpy(dir, "/tmp/tpdefs-gc-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	char err[256];
	cr_assert_eq(store_open(dir, STORE_O_NOWAIT, &s, err, sizeof(err)), 0, "%s", err);
	/* version k: float-like words, a few percent changed from version k-1 */
	uint32_t x = 12345;
	for (int k = 0; k < NV; k++) {
		ver[k] = malloc(VSIZE);
		cr_assert_not_null(ver[k]);
		if (k)
			memcpy(ver[k], ver[k - 1], VSIZE);
		for (size_t i = 0; i < VSIZE; i++) {
			x = x * 1103515245u + 12345u;
			if (!k)
				ver[k][i] = (uint8_t)((i % 4 == 3) ? 0x3f : (x >> 16));
			else if ((x >> 16) % 50 == 0)
				ver[k][i] ^= (uint8_t)(1 + ((x >> 8) & 7));
		}
	}
}

static void teardown(void)
{
	store_close(s);
	for (int k = 0; k < NV; k++)
		free(ver[k]);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(gc, .init = setup, .fini = teardown);

/* Store version k as file "v<k>", delta against version base (-1: keyframe). */
static void put(int k, int base)
{
	char name[16];
	snprintf(name, sizeof(name), "v%d", k);
	store_attr a;
	cr_assert_eq(store_mknode(s, STORE_ROOT_INO, name, strlen(name), S_IFREG | 0644, 0, 0, 0,
				  NULL, &a), 0);
	ino[k] = a.ino;
	io_src n, b;
	io_src_from_mem(&n, ver[k], VSIZE);
	store_obj bo;
	memset(&bo, 0, sizeof(bo));
	if (base >= 0) {
		io_src_from_mem(&b, ver[base], VSIZE);
		cr_assert_eq(store_obj_get(s, obj[base], &bo), 0);
	}
	uint64_t id;
	cr_assert_eq(store_obj_reserve(s, &id), 0);
	char tmp[64];
	int fd = store_tmp_create(s, tmp, sizeof(tmp));
	cr_assert(fd >= 0);
	enc_opts eo = {.threads = 1};
	enc_stats es;
	cr_assert_eq(enc_encode(&eo, &n, base >= 0 ? &b : NULL, bo.hash, fd, &es), 0);
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(store_obj_install(s, fd, tmp, id), 0);
	close(fd);
	store_obj o = {.id = id, .base = base >= 0 ? bo.id : 0,
		       .depth = base >= 0 ? bo.depth + 1 : 0, .size = VSIZE,
		       .stored = (uint64_t)st.st_size, .hash = es.content_hash};
	cr_assert_eq(store_commit_object(s, ino[k], &o, NULL, NULL), 0);
	obj[k] = id;
}

static void del(int k)
{
	char name[16];
	snprintf(name, sizeof(name), "v%d", k);
	uint64_t i;
	uint32_t nl;
	cr_assert_eq(store_unlink(s, STORE_ROOT_INO, name, strlen(name), 0, &i, &nl), 0);
	cr_assert_eq(store_drop_inode(s, i), 0);
}

/* The file reads back exactly (through a fresh chain reader). */
static void check_file(int k)
{
	store_attr a;
	cr_assert_eq(store_getattr(s, ino[k], &a), 0);
	chain *c = chain_store_new(s, 16u << 20);
	cr_assert_not_null(c);
	uint8_t *buf = malloc(VSIZE);
	cr_assert_not_null(buf);
	size_t done = 0;
	while (done < VSIZE) {
		ssize_t n = chain_pread(c, a.obj, buf + done, VSIZE - done, done);
		cr_assert(n > 0, "read v%d: %zd", k, n);
		done += (size_t)n;
	}
	cr_assert(!memcmp(buf, ver[k], VSIZE), "v%d differs", k);
	free(buf);
	chain_free(c);
}

static uint64_t verify_problems(uint64_t *bad_ino)
{
	verify_opts o;
	memset(&o, 0, sizeof(o));
	verify_result r;
	cr_assert_eq(verify_run(s, &o, &r), 0);
	if (bad_ino)
		*bad_ino = r.nbad_inos ? r.bad_inos[0] : 0;
	uint64_t p = r.problems;
	verify_result_free(&r);
	return p;
}

static size_t count_objects(size_t *unref, uint32_t *maxdepth)
{
	store_obj *v;
	size_t n;
	cr_assert_eq(store_admin_objects(s, &v, &n), 0);
	*unref = 0;
	*maxdepth = 0;
	for (size_t i = 0; i < n; i++) {
		*unref += v[i].unref != 0;
		if (v[i].depth > *maxdepth)
			*maxdepth = v[i].depth;
	}
	free(v);
	return n;
}

Test(gc, frees_unreferenced_bases_and_keeps_bytes)
{
	for (int k = 0; k < 5; k++)
		put(k, k - 1);
	for (int k = 0; k < 3; k++)
		del(k);
	size_t unref;
	uint32_t md;
	cr_assert_eq(count_objects(&unref, &md), 5);
	cr_assert_eq(unref, 3);
	cr_assert_eq(verify_problems(NULL), 0);

	gc_opts o;
	memset(&o, 0, sizeof(o));
	o.dry_run = 1;
	gc_result r;
	cr_assert_eq(gc_run(s, &o, &r), 0);
	cr_assert_eq(r.keyframes, 1);
	cr_assert_eq(count_objects(&unref, &md), 5, "dry run changed nothing");

	o.dry_run = 0;
	cr_assert_eq(gc_run(s, &o, &r), 0);
	cr_assert_eq(r.skipped, 0);
	cr_assert_eq(count_objects(&unref, &md), 2);
	cr_assert_eq(unref, 0);
	cr_assert_eq(md, 1);
	check_file(3);
	check_file(4);
	cr_assert_eq(verify_problems(NULL), 0);
	/* a second run finds nothing to do */
	cr_assert_eq(gc_run(s, &o, &r), 0);
	cr_assert_eq(r.rebased + r.keyframes + r.freed_objects, 0);
}

Test(gc, shortens_long_chains)
{
	for (int k = 0; k < NV; k++)
		put(k, k - 1);
	gc_opts o;
	memset(&o, 0, sizeof(o));
	o.max_chain = 2;
	gc_result r;
	cr_assert_eq(gc_run(s, &o, &r), 0);
	size_t unref;
	uint32_t md;
	cr_assert_eq(count_objects(&unref, &md), NV);
	cr_assert(md <= 2, "max depth %u", md);
	for (int k = 0; k < NV; k++)
		check_file(k);
	cr_assert_eq(verify_problems(NULL), 0);
}

Test(gc, orphans_and_tmp_removed)
{
	put(0, -1);
	char blob[STORE_BLOB_NAME_SIZE];
	store_blob_name(0xff, blob, sizeof(blob));
	int fd = openat(store_dirfd(s), blob, O_CREAT | O_WRONLY, 0600);
	cr_assert(fd >= 0);
	close(fd);
	fd = openat(store_dirfd(s), "tmp/leftover", O_CREAT | O_WRONLY, 0600);
	cr_assert(fd >= 0);
	close(fd);
	cr_assert_neq(verify_problems(NULL), 0, "orphan blob is reported");
	gc_opts o;
	memset(&o, 0, sizeof(o));
	gc_result r;
	cr_assert_eq(gc_run(s, &o, &r), 0);
	cr_assert_eq(r.orphan_blobs, 1);
	cr_assert_eq(r.tmp_files, 1);
	cr_assert_eq(faccessat(store_dirfd(s), blob, F_OK, 0), -1);
	cr_assert_eq(verify_problems(NULL), 0);
	check_file(0);
}

Test(gc, verify_finds_damage_and_names_inode)
{
	put(0, -1);
	put(1, 0);
	put(2, -1);
	char p[512];
	store_obj_path(s, obj[1], p, sizeof(p));
	int fd = open(p, O_RDWR);
	cr_assert(fd >= 0);
	struct stat st;
	fstat(fd, &st);
	uint8_t b[32];
	cr_assert_eq(pread(fd, b, sizeof(b), st.st_size / 3), (ssize_t)sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] ^= 0x5a;
	cr_assert_eq(pwrite(fd, b, sizeof(b), st.st_size / 3), (ssize_t)sizeof(b));
	close(fd);
	uint64_t bad;
	cr_assert_neq(verify_problems(&bad), 0);
	cr_assert_eq(bad, ino[1]);
	char path[256];
	cr_assert_eq(stats_path_of(s, bad, path, sizeof(path)), 0);
	cr_assert_str_eq(path, "/v1");
}

Test(gc, switch_refuses_changed_chain)
{
	put(0, -1);
	put(1, 0);
	store_obj cur, nw;
	cr_assert_eq(store_obj_get(s, obj[1], &cur), 0);
	cur.hash ^= 1; /* not what is stored any more */
	nw = cur;
	nw.id = 999;
	nw.base = 0;
	nw.depth = 0;
	uint64_t *inos, *deps;
	size_t ni, nd;
	cr_assert_eq(store_admin_switch(s, &cur, &nw, 0, &inos, &ni, &deps, &nd), -EAGAIN);
	cr_assert_eq(store_admin_obj_exists(s, 999), 0);
}

/* Switch object d to a metadata-only replacement with base a (0: keyframe); the result. */
static int switch_to(uint64_t d, uint64_t a, uint64_t nid)
{
	store_obj cur, nw, ao;
	cr_assert_eq(store_obj_get(s, d, &cur), 0);
	memset(&ao, 0, sizeof(ao));
	if (a)
		cr_assert_eq(store_obj_get(s, a, &ao), 0);
	nw = cur;
	nw.id = nid;
	nw.base = a;
	nw.depth = a ? ao.depth + 1 : 0;
	uint64_t *inos, *deps;
	size_t ni, nd;
	int r = store_admin_switch(s, &cur, &nw, ao.hash, &inos, &ni, &deps, &nd);
	if (r == 0) {
		free(inos);
		free(deps);
	}
	return r;
}

/* Two gc runs at once (an explicit gc and the daemon's layout pass) each plan on a snapshot:
 * one may pick as base an object the other has just retired, or one that now descends from the
 * object it replaces. Either switch would close a cycle of bases; both are refused. */
Test(gc, switch_refuses_a_base_that_would_close_a_cycle)
{
	put(0, -1);
	put(1, 0);
	put(2, 1);
	/* v1 and v2 descend from v0: v0 against either would be a cycle */
	cr_assert_eq(switch_to(obj[0], obj[1], 900), -EAGAIN);
	cr_assert_eq(switch_to(obj[0], obj[2], 901), -EAGAIN);
	/* retire v1 (re-encoded elsewhere); its old row now hangs below the replacement */
	cr_assert_eq(switch_to(obj[1], 0, 902), 0);
	cr_assert_eq(switch_to(obj[0], obj[1], 903), -EAGAIN);
	cr_assert_eq(store_admin_obj_exists(s, 900), 0);
	cr_assert_eq(store_admin_obj_exists(s, 903), 0);
	/* a base outside the chain is fine */
	cr_assert_eq(switch_to(obj[0], 902, 904), 0);
	store_obj o;
	cr_assert_eq(store_obj_get(s, 904, &o), 0);
	cr_assert_eq(o.base, 902);
}

/* One of two gc runs racing on the store: it pauses after each step so that the two runs'
 * switches interleave, and tells when its first switch is done. */
typedef struct racer {
	gc_opts o;
	unsigned seed;
	const char *who;
	int first_done;
	int wait_first; /* start only after the other racer's first switch */
	struct racer *other;
	int r;
} racer;

static void racer_step(void *ctx, const char *line)
{
	racer *x = ctx;
	if (getenv("TPDEFS_TEST_DEBUG"))
		fprintf(stderr, "%s: %s", x->who, line);
	if (!strncmp(line, "re-encoded", 10))
		__atomic_store_n(&x->first_done, 1, __ATOMIC_RELEASE);
	usleep((useconds_t)(rand_r(&x->seed) % 2000));
}

static void *racer_run(void *arg)
{
	racer *x = arg;
	for (int i = 0; x->wait_first && i < 5000; i++) {
		if (__atomic_load_n(&x->other->first_done, __ATOMIC_ACQUIRE))
			break;
		usleep(200);
	}
	gc_result r;
	x->r = gc_run(s, &x->o, &r);
	return NULL;
}

/* The same race with real runs, on a chain v5 <- v6 <- v7. The layout pass reverses it (v7
 * first); the explicit gc (depth limit 2), started after that first switch, sees v7 as a
 * keyframe and tries it as a delta against v6, which the pass retires meanwhile. Whatever each
 * one skips, every chain stays acyclic and every file reads back exactly. */
Test(gc, concurrent_runs_keep_every_chain_readable, .timeout = 120)
{
	racer lay, exp;
	memset(&lay, 0, sizeof(lay));
	memset(&exp, 0, sizeof(exp));
	lay.o.online = lay.o.newest_keyframe = lay.o.layout_only = 1;
	exp.o.online = 1;
	exp.o.max_chain = 2;
	lay.who = "layout";
	exp.who = "gc";
	lay.o.hooks.ctx = &lay;
	exp.o.hooks.ctx = &exp;
	lay.o.hooks.line = exp.o.hooks.line = racer_step;
	exp.wait_first = 1;
	exp.other = &lay;
	for (int round = 0; round < 24; round++) {
		lay.seed = 2u * (unsigned)round + 1;
		exp.seed = 2u * (unsigned)round + 2;
		lay.first_done = exp.first_done = 0;
		for (int k = NV - 3; k < NV; k++) {
			if (round)
				del(k);
			put(k, k == NV - 3 ? -1 : k - 1);
		}
		pthread_t a, b;
		cr_assert_eq(pthread_create(&a, NULL, racer_run, &lay), 0);
		cr_assert_eq(pthread_create(&b, NULL, racer_run, &exp), 0);
		pthread_join(a, NULL);
		pthread_join(b, NULL);
		cr_assert_eq(lay.r, 0, "layout pass: %s", strerror(-lay.r));
		cr_assert_eq(exp.r, 0, "explicit gc: %s", strerror(-exp.r));
		cr_assert_eq(verify_problems(NULL), 0, "round %d", round);
		for (int k = NV - 3; k < NV; k++)
			check_file(k);
	}
}

Test(gc, stats_bases)
{
	put(0, -1);
	put(1, 0);
	put(2, 1);
	stats_report r;
	cr_assert_eq(stats_collect(s, &r), 0);
	cr_assert_eq(r.nfiles, 3);
	cr_assert_eq(r.objects, 3);
	cr_assert_eq(r.logical_bytes, 3ull * VSIZE);
	for (size_t i = 0; i < r.nfiles; i++) {
		const stats_file *f = &r.files_v[i];
		if (!strcmp(f->path, "/v0"))
			cr_assert_null(f->base_path);
		if (!strcmp(f->path, "/v2")) {
			cr_assert_str_eq(f->base_path, "/v1");
			cr_assert_eq(f->depth, 2);
		}
		uint64_t sum = 0;
		for (int c = 0; c < CODEC_MAX; c++)
			sum += f->codec_bytes[c];
		cr_assert_eq(sum, VSIZE);
	}
	cr_assert_eq(r.nchains, 1);
	stats_free(&r);
}

Test(gc, quote_keeps_output_on_one_line)
{
	char out[64];
	stats_quote("a\nb\\c\x80" "d\xc3\xa9", out, sizeof(out));
	cr_assert_str_eq(out, "a\\x0ab\\x5cc\\x80d\xc3\xa9");
	stats_quote("0123456789", out, 8);
	cr_assert(strlen(out) < 8);
}

/* The object row behind file k as the store has it now. */
static store_obj file_obj(int k)
{
	store_attr a;
	cr_assert_eq(store_getattr(s, ino[k], &a), 0);
	store_obj o;
	cr_assert_eq(store_obj_get(s, a.obj, &o), 0);
	return o;
}

static uint64_t stored_total(void)
{
	store_obj *v;
	size_t n;
	cr_assert_eq(store_admin_objects(s, &v, &n), 0);
	uint64_t t = 0;
	for (size_t i = 0; i < n; i++)
		t += v[i].stored;
	free(v);
	return t;
}

/* Reverse deltas: the newest version becomes the keyframe, every older one a delta against its
 * successor; every file reads back exactly, nothing is left unreferenced, and the store costs
 * about what the forward chain did. */
Test(gc, newest_keyframe_reverses_the_chain)
{
	for (int k = 0; k < 5; k++)
		put(k, k - 1);
	uint64_t fwd = stored_total();
	cr_assert_eq(file_obj(4).depth, 4);
	gc_opts o;
	memset(&o, 0, sizeof(o));
	o.newest_keyframe = 1;
	gc_result r;
	cr_assert_eq(gc_run(s, &o, &r), 0);
	cr_assert_eq(r.reversed, 1);
	cr_assert_eq(r.keyframes, 1);
	cr_assert_eq(r.rebased, 4);
	cr_assert_eq(r.skipped, 0);
	cr_assert_eq(file_obj(4).base, 0, "the newest is the keyframe");
	for (int k = 0; k < 4; k++) {
		store_obj x = file_obj(k);
		cr_assert_eq(x.base, file_obj(k + 1).id, "v%d is a delta against v%d", k, k + 1);
		cr_assert_eq(x.depth, (uint32_t)(4 - k));
	}
	for (int k = 0; k < 5; k++)
		check_file(k);
	size_t unref;
	uint32_t md;
	cr_assert_eq(count_objects(&unref, &md), 5);
	cr_assert_eq(unref, 0);
	cr_assert_eq(verify_problems(NULL), 0);
	uint64_t rev = stored_total();
	cr_assert(rev < fwd + fwd / 10, "reversed %llu bytes vs forward %llu",
		  (unsigned long long)rev, (unsigned long long)fwd);

	/* the next version: stored forward, then one step reversed (two re-encodes) */
	obj[4] = file_obj(4).id;
	put(5, 4);
	cr_assert_eq(gc_run(s, &o, &r), 0);
	cr_assert_eq(r.keyframes + r.rebased, 2);
	cr_assert_eq(file_obj(5).base, 0);
	cr_assert_eq(file_obj(4).base, file_obj(5).id);
	cr_assert_eq(file_obj(0).depth, 5);
	for (int k = 0; k < 6; k++)
		check_file(k);
	/* nothing left to do */
	cr_assert_eq(gc_run(s, &o, &r), 0);
	cr_assert_eq(r.keyframes + r.rebased + r.reversed, 0);
	cr_assert_eq(verify_problems(NULL), 0);
}

/* Versions pushed past max_chain by the reversal are rebased half way up, not made keyframes;
 * layout_only leaves deleted files' objects for an explicit gc. */
Test(gc, newest_keyframe_keeps_the_depth_limit)
{
	for (int k = 0; k < NV; k++)
		put(k, k - 1);
	gc_opts o;
	memset(&o, 0, sizeof(o));
	o.newest_keyframe = 1;
	o.layout_only = 1;
	o.max_chain = 4;
	gc_result r;
	cr_assert_eq(gc_run(s, &o, &r), 0);
	size_t unref;
	uint32_t md;
	cr_assert_eq(count_objects(&unref, &md), NV);
	cr_assert(md <= 4, "max depth %u", md);
	cr_assert_eq(file_obj(NV - 1).base, 0);
	size_t kf = 0;
	for (int k = 0; k < NV; k++) {
		kf += file_obj(k).base == 0;
		check_file(k);
	}
	cr_assert_eq(kf, 1, "one keyframe: the too-deep versions became skip deltas");
	/* a deleted version that is a base (v4 is a delta against v5): layout_only keeps it */
	cr_assert_eq(file_obj(4).base, file_obj(5).id);
	del(5);
	cr_assert_eq(count_objects(&unref, &md), NV);
	cr_assert_eq(unref, 1);
	cr_assert_eq(gc_run(s, &o, &r), 0);
	cr_assert_eq(count_objects(&unref, &md), NV);
	cr_assert_eq(unref, 1);
	cr_assert_eq(r.freed_objects, 0);
	cr_assert_eq(verify_problems(NULL), 0);
}
