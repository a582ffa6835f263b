/* test_ingest.c - the ingest module on a real store (no FUSE): reverse ingest of a 5-version chain,
 * forward ingest, a predecessor nothing else needs, and crashes between the steps. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chain.h"
#include "chain_store.h"
#include "ingest.h"
#include "store.h"
#include "store_admin.h"
#include "verify.h"

#define VSIZE (256u * 1024u)
#define NV 5

static char dir[64];
static store *s;
static chain *ch;
static uint8_t *ver[NV];
static uint64_t ino[NV];

static void make_versions(void)
{
	/* version k: float-like words, a few percent changed from version k-1 */
	uint32_t x = 777;
	for (int k = 0; k < NV; k++) {
		ver[k] = malloc(VSIZE);
		cr_assert_not_null(ver[k]);
		if (k)
			memcpy(ver[k], ver[k - 1], VSIZE);
		for (size_t i = 0; i < VSIZE; i++) {
			x = x * 1103515245u + 12345u;
			if (!k)
				ver[k][i] = (uint8_t)((i % 4 == 3) ? 0x3f : (x >> 16));
			else if ((x >> 16) % 40 == 0)
				ver[k][i] ^= (uint8_t)(1 + ((x >> 8) & 7));
		}
	}
}

static void open_store(void)
{
	char err[256];
	cr_assert_eq(store_open(dir, STORE_O_NOWAIT, &s, err, sizeof(err)), 0, "%s", err);
	ch = chain_store_new(s, 16u << 20);
	cr_assert_not_null(ch);
}

static void close_store(void)
{
	chain_free(ch);
	store_close(s);
	ch = NULL;
	s = NULL;
}

static void setup(void)
{
	strcpy(dir, "/tmp/tpdefs-ingest-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	open_store();
	make_versions();
}

static void teardown(void)
{
	if (s)
		close_store();
	for (int k = 0; k < NV; k++)
		free(ver[k]);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(ingest, .init = setup, .fini = teardown);

/* Write data into inode i's staging file, durably, as the daemon does at close. */
static void stage(uint64_t i, const uint8_t *data)
{
	int fd = store_staging_open(s, i, 1);
	cr_assert(fd >= 0, "%d", fd);
	cr_assert_eq(ftruncate(fd, 0), 0);
	cr_assert_eq(pwrite(fd, data, VSIZE, 0), (ssize_t)VSIZE);
	cr_assert_eq(fsync(fd), 0);
	close(fd);
	cr_assert_eq(store_begin_staging(s, i, VSIZE, store_now_ns(), store_now_ns()), 0);
}

/* Create file ckpt_<k> holding version k, staged (not yet ingested). */
static void create(int k)
{
	char name[16];
	snprintf(name, sizeof(name), "ckpt_%03d", k);
	store_attr a;
	cr_assert_eq(store_mknode(s, STORE_ROOT_INO, name, strlen(name), S_IFREG | 0644, 0, 0, 0,
				  NULL, &a), 0);
	ino[k] = a.ino;
	stage(ino[k], ver[k]);
}

/* Prepare the ingest of inode i with the given mode (nothing committed yet). */
static void prepare(uint64_t i, int reverse, ingest_job *j)
{
	int fd = store_staging_open(s, i, 0);
	cr_assert(fd >= 0);
	ingest_opts o = {.max_chain = 8, .reverse = reverse};
	cr_assert_eq(ingest_prepare(s, ch, i, fd, VSIZE, &o, j), 0);
	close(fd);
}

/* Ingest inode i and release what it retired (no readers here). */
static void ingest(uint64_t i, int reverse, ingest_job *j)
{
	prepare(i, reverse, j);
	cr_assert_eq(ingest_commit(s, j, NULL, NULL), 0);
	if (j->retired) {
		chain_forget(ch, j->retired);
		for (size_t d = 0; d < j->rb.ndeps; d++)
			chain_forget(ch, j->rb.deps[d]);
		cr_assert_eq(store_release_retired(s, j->retired), 0);
	}
	ingest_job_done(j);
}

/* File k reads back exactly through a fresh chain reader. */
static void check_file(int k)
{
	store_attr a;
	cr_assert_eq(store_getattr(s, ino[k], &a), 0);
	cr_assert_eq(a.staged, 0, "ckpt_%d still staged", k);
	chain *c = chain_store_new(s, 16u << 20);
	cr_assert_not_null(c);
	uint8_t *buf = malloc(VSIZE);
	cr_assert_not_null(buf);
	size_t done = 0;
	while (done < VSIZE) {
		ssize_t n = chain_pread(c, a.obj, buf + done, VSIZE - done, done);
		cr_assert(n > 0, "read ckpt_%d: %zd", k, n);
		done += (size_t)n;
	}
	cr_assert(!memcmp(buf, ver[k], VSIZE), "ckpt_%d differs", k);
	free(buf);
	chain_free(c);
}

static store_obj obj_of(int k)
{
	store_attr a;
	cr_assert_eq(store_getattr(s, ino[k], &a), 0);
	store_obj o;
	cr_assert_eq(store_obj_get(s, a.obj, &o), 0);
	return o;
}

static uint64_t verify_problems(void)
{
	verify_opts o;
	memset(&o, 0, sizeof(o));
	verify_result r;
	cr_assert_eq(verify_run(s, &o, &r), 0);
	uint64_t p = r.problems;
	verify_result_free(&r);
	return p;
}

static size_t count_objects(size_t *unref)
{
	store_obj *v;
	size_t n;
	cr_assert_eq(store_admin_objects(s, &v, &n), 0);
	*unref = 0;
	for (size_t i = 0; i < n; i++)
		*unref += v[i].unref != 0;
	free(v);
	return n;
}

static int blob_exists(uint64_t id)
{
	char p[512];
	store_obj_path(s, id, p, sizeof(p));
	return access(p, F_OK) == 0;
}

Test(ingest, reverse_chain_of_five)
{
	for (int k = 0; k < NV; k++) {
		uint64_t next0;
		cr_assert_eq(store_admin_next_obj(s, &next0), 0);
		create(k);
		ingest_job j;
		ingest(ino[k], 1, &j);
		/* the new version is its chain's keyframe ... */
		store_obj o = obj_of(k);
		cr_assert_eq(o.base, 0, "ckpt_%d base %llu", k, (unsigned long long)o.base);
		cr_assert_eq(o.depth, 0);
		if (k == 0) {
			cr_assert_eq(j.pred, 0);
		} else {
			/* ... coded once; its predecessor coded once, against it: two objects */
			uint64_t next1;
			cr_assert_eq(store_admin_next_obj(s, &next1), 0);
			cr_assert_eq(next1 - next0, 2, "%llu objects made",
				     (unsigned long long)(next1 - next0));
			cr_assert_eq(j.kind != 0, 1);
			store_obj p = obj_of(k - 1);
			cr_assert_eq(p.base, o.id);
			cr_assert_eq(p.depth, 1);
			cr_assert(p.stored < o.stored / 2, "delta %llu vs keyframe %llu",
				  (unsigned long long)p.stored, (unsigned long long)o.stored);
			cr_assert(!blob_exists(j.retired), "retired blob still there");
		}
		/* older versions sit one level deeper each time */
		for (int i = 0; i < k; i++)
			cr_assert_eq(obj_of(i).depth, (uint32_t)(k - i), "ckpt_%d depth %u", i,
				     obj_of(i).depth);
	}
	size_t unref;
	cr_assert_eq(count_objects(&unref), NV);
	cr_assert_eq(unref, 0);
	for (int k = 0; k < NV; k++)
		check_file(k);
	cr_assert_eq(verify_problems(), 0);
}

Test(ingest, forward_codes_each_version_once_against_its_predecessor)
{
	for (int k = 0; k < 3; k++) {
		create(k);
		ingest_job j;
		ingest(ino[k], 0, &j);
		store_obj o = obj_of(k);
		cr_assert_eq(j.retired, 0);
		cr_assert_eq(o.base, k ? obj_of(k - 1).id : 0);
		cr_assert_eq(o.depth, (uint32_t)k);
	}
	for (int k = 0; k < 3; k++)
		check_file(k);
	cr_assert_eq(verify_problems(), 0);
}

Test(ingest, a_replaced_version_nothing_needs_is_not_recoded)
{
	/* the same file written again (O_TRUNC): its old object is only this file's hint */
	create(0);
	ingest_job j;
	ingest(ino[0], 1, &j);
	uint64_t old = obj_of(0).id;
	stage(ino[0], ver[1]);
	uint64_t next0, next1;
	cr_assert_eq(store_admin_next_obj(s, &next0), 0);
	prepare(ino[0], 1, &j);
	cr_assert_eq(j.pred, old);
	cr_assert_eq(j.has_rebase, 0);
	cr_assert_eq(ingest_commit(s, &j, NULL, NULL), 0);
	ingest_job_done(&j);
	cr_assert_eq(store_admin_next_obj(s, &next1), 0);
	cr_assert_eq(next1 - next0, 1);
	store_obj gone;
	cr_assert_eq(store_obj_get(s, old, &gone), -ENOENT);
	cr_assert(!blob_exists(old));
	ino[1] = ino[0];
	check_file(1);
}

/* Crash after the commit, before the retired predecessor was released: the reopened store
 * (mount-time recovery) frees it, and every file reads back exactly. */
Test(ingest, crash_between_the_switch_and_the_release)
{
	for (int k = 0; k < 2; k++)
		create(k);
	ingest_job j;
	ingest(ino[0], 1, &j);
	prepare(ino[1], 1, &j);
	cr_assert_eq(ingest_commit(s, &j, NULL, NULL), 0);
	uint64_t retired = j.retired;
	cr_assert_neq(retired, 0);
	ingest_job_done(&j);
	store_obj r;
	cr_assert_eq(store_obj_get(s, retired, &r), 0);
	cr_assert_eq(r.unref, 1);
	/* "crash": the process goes away without releasing (the commit was durable) */
	close_store();
	open_store();
	uint64_t *staged;
	size_t nst;
	cr_assert_eq(store_recover(s, &staged, &nst), 0);
	free(staged);
	cr_assert_eq(nst, 0);
	cr_assert_eq(store_obj_get(s, retired, &r), -ENOENT);
	cr_assert(!blob_exists(retired));
	size_t unref;
	cr_assert_eq(count_objects(&unref), 2);
	cr_assert_eq(unref, 0);
	check_file(0);
	check_file(1);
	cr_assert_eq(verify_problems(), 0);
}

/* Crash after both blobs were installed, before the commit: nothing names them, recovery removes
 * them, the file is still staged and is ingested again. */
Test(ingest, crash_between_the_blobs_and_the_commit)
{
	for (int k = 0; k < 2; k++)
		create(k);
	ingest_job j;
	ingest(ino[0], 1, &j);
	prepare(ino[1], 1, &j);
	uint64_t a = j.obj.id, b = j.rb.nw.id;
	cr_assert(blob_exists(a) && blob_exists(b));
	close_store();
	open_store();
	uint64_t *staged;
	size_t nst;
	cr_assert_eq(store_recover(s, &staged, &nst), 0);
	cr_assert_eq(nst, 1);
	cr_assert_eq(staged[0], ino[1]);
	free(staged);
	cr_assert(!blob_exists(a) && !blob_exists(b), "orphan blobs left");
	check_file(0);
	ingest(ino[1], 1, &j);
	check_file(0);
	check_file(1);
	cr_assert_eq(obj_of(0).base, obj_of(1).id);
	cr_assert_eq(verify_problems(), 0);
}

/* The predecessor changed between prepare and commit (gc replaced it): the new version is
 * committed alone, as a keyframe, and the re-coded blob is discarded. */
Test(ingest, a_predecessor_changed_meanwhile_is_left_alone)
{
	for (int k = 0; k < 2; k++)
		create(k);
	ingest_job j;
	ingest(ino[0], 1, &j);
	prepare(ino[1], 1, &j);
	cr_assert_eq(j.has_rebase, 1);
	uint64_t recoded = j.rb.nw.id;
	j.rb.expect.hash ^= 1; /* as if the row had been replaced meanwhile */
	cr_assert_eq(ingest_commit(s, &j, NULL, NULL), 0);
	cr_assert_eq(j.retired, 0);
	cr_assert_eq(j.rb.switched, 0);
	ingest_job_done(&j);
	cr_assert(!blob_exists(recoded));
	cr_assert_eq(obj_of(0).base, 0);
	cr_assert_eq(obj_of(1).base, 0);
	check_file(0);
	check_file(1);
	cr_assert_eq(verify_problems(), 0);
}

/* Whole-file dedup: a second file with the same bytes shares the first one's object (nothing is
 * encoded); deleting either leaves the other readable. */
Test(ingest, identical_files_share_one_object)
{
	create(0);
	ingest_job j;
	ingest(ino[0], 1, &j);
	uint64_t first = obj_of(0).id;
	/* file "copy" with version 0's bytes */
	store_attr a;
	cr_assert_eq(store_mknode(s, STORE_ROOT_INO, "copy", 4, S_IFREG | 0644, 0, 0, 0, NULL, &a), 0);
	ino[1] = a.ino;
	stage(ino[1], ver[0]);
	uint64_t next0, next1;
	cr_assert_eq(store_admin_next_obj(s, &next0), 0);
	prepare(ino[1], 1, &j);
	cr_assert_eq(j.dedup, 1);
	cr_assert_eq(ingest_commit(s, &j, NULL, NULL), 0);
	ingest_job_done(&j);
	cr_assert_eq(store_admin_next_obj(s, &next1), 0);
	cr_assert_eq(next1, next0, "an object was made for a copy");
	cr_assert_eq(obj_of(1).id, first);
	/* the original goes: the copy keeps the object */
	uint64_t i;
	uint32_t nl;
	cr_assert_eq(store_unlink(s, STORE_ROOT_INO, "ckpt_000", 8, 0, &i, &nl), 0);
	cr_assert_eq(store_drop_inode(s, i), 0);
	memcpy(ver[1], ver[0], VSIZE); /* check_file(1) compares with ver[1]: the copy's bytes */
	check_file(1);
	size_t unref;
	cr_assert_eq(count_objects(&unref), 1);
	cr_assert_eq(unref, 0);
	cr_assert_eq(verify_problems(), 0);
}

/* The bytes are compared, not only the hash: the same size and hash with other bytes is no
 * match (what a crafted collision would give). */
Test(ingest, equal_hash_is_not_enough)
{
	io_src x, y, z;
	io_src_from_mem(&x, ver[0], VSIZE);
	io_src_from_mem(&y, ver[1], VSIZE);
	io_src_from_mem(&z, ver[0], VSIZE - 1);
	cr_assert_eq(ingest_same_bytes(&x, &x), 1);
	cr_assert_eq(ingest_same_bytes(&x, &y), 0);
	cr_assert_eq(ingest_same_bytes(&x, &z), 0);
	/* a one-byte difference at the very end */
	uint8_t *c = malloc(VSIZE);
	cr_assert_not_null(c);
	memcpy(c, ver[0], VSIZE);
	c[VSIZE - 1] ^= 1;
	io_src w;
	io_src_from_mem(&w, c, VSIZE);
	cr_assert_eq(ingest_same_bytes(&x, &w), 0);
	free(c);
}
