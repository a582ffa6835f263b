#include <criterion/criterion.h>
#include <sqlite3.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pred.h"
#include "db_sqlite_vfs.h"
#include "store.h"
#include "store_admin.h"

static char dir[64];
static store *s;

static void setup(void)
{
	strcpy(dir, "/tmp/tpdefs-store-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	char err[256];
	cr_assert_eq(store_open(dir, STORE_O_NOWAIT, &s, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
	store_close(s);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown);

static uint64_t mk(uint64_t parent, const char *name, uint32_t mode)
{
	store_attr a;
	cr_assert_eq(store_mknode(s, parent, name, strlen(name), mode, 0, 0, 0, NULL, &a), 0, "%s",
		     name);
	return a.ino;
}

Test(store, init_root_and_refusals)
{
	store_attr a;
	cr_assert_eq(store_getattr(s, STORE_ROOT_INO, &a), 0);
	cr_assert(S_ISDIR(a.mode));
	cr_assert_eq(a.nlink, 2);
	char err[256];
	store *t;
	cr_assert_eq(store_open(dir, STORE_O_NOWAIT, &t, err, sizeof(err)), -EBUSY);
	cr_assert_eq(store_open(dir, STORE_O_NOLOCK, &t, err, sizeof(err)), 0, "%s", err);
	store_close(t);
	cr_assert_eq(store_open("/etc", STORE_O_NOWAIT, &t, err, sizeof(err)), -EMEDIUMTYPE);
	cr_assert(strstr(err, "not a tpdefs backing directory"));
}

Test(store, namespace_errors)
{
	uint64_t d = mk(1, "d", S_IFDIR | 0755);
	uint64_t f = mk(d, "f", S_IFREG | 0644);
	store_attr a;
	cr_assert_eq(store_mknode(s, d, "f", 1, S_IFREG | 0644, 0, 0, 0, NULL, &a), -EEXIST);
	char longname[300];
	memset(longname, 'x', 256);
	cr_assert_eq(store_mknode(s, 1, longname, 256, S_IFREG, 0, 0, 0, NULL, &a), -ENAMETOOLONG);
	cr_assert_eq(store_mknode(s, f, "x", 1, S_IFREG, 0, 0, 0, NULL, &a), -ENOTDIR);
	uint64_t ino;
	uint32_t nl;
	cr_assert_eq(store_unlink(s, 1, "d", 1, 1, &ino, &nl), -ENOTEMPTY);
	cr_assert_eq(store_unlink(s, 1, "d", 1, 0, &ino, &nl), -EISDIR);
	cr_assert_eq(store_unlink(s, d, "f", 1, 1, &ino, &nl), -ENOTDIR);
	cr_assert_eq(store_getattr(s, 1, &a), 0);
	cr_assert_eq(a.nlink, 3);
	cr_assert_eq(store_unlink(s, d, "f", 1, 0, &ino, &nl), 0);
	cr_assert_eq(ino, f);
	cr_assert_eq(nl, 0);
	cr_assert_eq(store_unlink(s, 1, "d", 1, 1, &ino, &nl), 0);
	cr_assert_eq(store_getattr(s, 1, &a), 0);
	cr_assert_eq(a.nlink, 2);
	cr_assert_eq(store_drop_inode(s, f), 0);
	cr_assert_eq(store_getattr(s, f, &a), -ENOENT);
}

Test(store, rename_flags_and_pred_hint)
{
	uint64_t a1 = mk(1, "a", S_IFREG | 0644), b1 = mk(1, "b", S_IFREG | 0644);
	uint64_t d = mk(1, "d", S_IFDIR | 0755);
	uint64_t v;
	uint32_t vn;
	cr_assert_eq(store_rename(s, 1, "a", 1, 1, "b", 1, RENAME_NOREPLACE, &v, &vn), -EEXIST);
	cr_assert_eq(store_rename(s, 1, "a", 1, 1, "d", 1, RENAME_EXCHANGE, &v, &vn), 0);
	store_attr at;
	cr_assert_eq(store_lookup(s, 1, "a", 1, &at), 0);
	cr_assert_eq(at.ino, d);
	cr_assert_eq(store_rename(s, 1, "a", 1, 1, "d", 1, RENAME_EXCHANGE, &v, &vn), 0);
	cr_assert_eq(store_rename(s, 1, "d", 1, 1, "a", 1, 0, &v, &vn), -ENOTDIR);
	cr_assert_eq(store_rename(s, 1, "a", 1, 1, "d", 1, 0, &v, &vn), -EISDIR);
	cr_assert_eq(store_rename(s, 1, "d", 1, d, "x", 1, 0, &v, &vn), -EINVAL);
	/* give b a stored object, then rename a over it: a inherits the hint */
	uint64_t id;
	cr_assert_eq(store_obj_reserve(s, &id), 0);
	char tmp[64];
	int fd = store_tmp_create(s, tmp, sizeof(tmp));
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "x", 1), 1);
	cr_assert_eq(store_obj_install(s, fd, tmp, id), 0);
	close(fd);
	int sfd = store_staging_open(s, b1, 1);
	cr_assert(sfd >= 0);
	close(sfd);
	cr_assert_eq(store_begin_staging(s, b1, 1, 1, 1), 0);
	store_obj o = {.id = id, .size = 1, .stored = 1, .hash = 42};
	cr_assert_eq(store_commit_object(s, b1, &o, NULL, NULL), 0);
	cr_assert_eq(store_getattr(s, b1, &at), 0);
	cr_assert_eq(at.obj, id);
	cr_assert_eq(at.staged, 0);
	cr_assert_eq(store_rename(s, 1, "a", 1, 1, "b", 1, 0, &v, &vn), 0);
	cr_assert_eq(v, b1);
	cr_assert_eq(vn, 0);
	cr_assert_eq(store_getattr(s, a1, &at), 0);
	cr_assert_eq(at.pred_hint, id);
	/* the dead inode goes, its object stays (hint of a) */
	cr_assert_eq(store_drop_inode(s, b1), 0);
	store_obj g;
	cr_assert_eq(store_obj_get(s, id, &g), 0);
	pred_cand c[4];
	size_t n;
	cr_assert_eq(pred_candidates(s, a1, c, 4, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(c[0].kind, PRED_HINT);
	cr_assert_eq(c[0].obj, id);
}

Test(store, xattrs)
{
	uint64_t f = mk(1, "f", S_IFREG | 0644);
	char buf[16];
	cr_assert_eq(store_setxattr(s, f, "user.a", "12345", 5, 0), 0);
	cr_assert_eq(store_setxattr(s, f, "user.a", "1", 1, 1 /* CREATE */), -EEXIST);
	cr_assert_eq(store_setxattr(s, f, "user.b", "1", 1, 2 /* REPLACE */), -ENODATA);
	cr_assert_eq(store_getxattr(s, f, "user.a", buf, 0), 5);
	cr_assert_eq(store_getxattr(s, f, "user.a", buf, 4), -ERANGE);
	cr_assert_eq(store_getxattr(s, f, "user.a", buf, 16), 5);
	cr_assert_eq(store_setxattr(s, f, "user.b", "", 0, 0), 0);
	cr_assert_eq(store_listxattr(s, f, buf, 0), 14);
	cr_assert_eq(store_listxattr(s, f, buf, 10), -ERANGE);
	cr_assert_eq(store_listxattr(s, f, buf, 16), 14);
	cr_assert_eq(memcmp(buf, "user.a\0user.b\0", 14), 0);
	cr_assert_eq(store_removexattr(s, f, "user.a"), 0);
	cr_assert_eq(store_removexattr(s, f, "user.a"), -ENODATA);
}

Test(store, sibling_candidates_and_recover)
{
	uint64_t d = mk(1, "run", S_IFDIR | 0755);
	uint64_t f6 = mk(d, "ckpt_006.pt", S_IFREG | 0644);
	uint64_t f7 = mk(d, "ckpt_007.pt", S_IFREG | 0644);
	for (uint64_t i = f6; i <= f7; i++) {
		int fd = store_staging_open(s, i, 1);
		cr_assert(fd >= 0);
		cr_assert_eq(write(fd, "abc", 3), 3);
		close(fd);
		cr_assert_eq(store_begin_staging(s, i, 3, 1, 1), 0);
	}
	pred_cand c[4];
	size_t n;
	cr_assert_eq(pred_candidates(s, f7, c, 4, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(c[0].kind, PRED_SIBLING);
	cr_assert_eq(c[0].ino, f6);
	cr_assert_eq(c[0].obj, 0); /* still staged */
	uint64_t *st;
	size_t ns;
	cr_assert_eq(store_recover(s, &st, &ns), 0);
	cr_assert_eq(ns, 2);
	free(st);
	uint64_t bytes;
	cr_assert_eq(store_staged_bytes(s, &bytes), 0);
	cr_assert_eq(bytes, 6);
}

/* STORE_O_RDONLY: what the store holds reads back, every write is refused with an error, and the
 * directory gains no file (no -wal/-shm, no LOCK) and keeps every byte. */
/* Every subset of the setattr mask changes exactly its columns; a missing inode is -ENOENT. */
Test(store, setattr_masks)
{
	uint64_t f = mk(1, "f", S_IFREG | 0644);
	static const unsigned bit[] = {STORE_SET_MODE,  STORE_SET_UID,   STORE_SET_GID,
				       STORE_SET_SIZE,  STORE_SET_ATIME, STORE_SET_MTIME,
				       STORE_SET_CTIME};
	const unsigned all = (1u << 7) - 1;
	store_attr b0, a, g;
	cr_assert_eq(store_getattr(s, f, &b0), 0);
	memset(&a, 0, sizeof(a));
	a.mode = S_IFREG | 0600;
	a.uid = 11;
	a.gid = 12;
	a.size = 13;
	a.atime = 14;
	a.mtime = 15;
	a.ctime = 16;
	for (unsigned m = 0; m <= all; m++) {
		cr_assert_eq(store_setattr(s, f, &b0, all), 0);
		cr_assert_eq(store_setattr(s, f, &a, m), 0, "mask %#x", m);
		cr_assert_eq(store_getattr(s, f, &g), 0);
		const uint64_t want[7][2] = {{b0.mode, a.mode},   {b0.uid, a.uid},
					     {b0.gid, a.gid},     {b0.size, a.size},
					     {(uint64_t)b0.atime, (uint64_t)a.atime},
					     {(uint64_t)b0.mtime, (uint64_t)a.mtime},
					     {(uint64_t)b0.ctime, (uint64_t)a.ctime}};
		const uint64_t got[7] = {g.mode, g.uid, g.gid, g.size, (uint64_t)g.atime,
					 (uint64_t)g.mtime, (uint64_t)g.ctime};
		for (int i = 0; i < 7; i++)
			cr_assert_eq(got[i], want[i][(m & bit[i]) != 0], "mask %#x field %d", m, i);
	}
	cr_assert_eq(store_setattr(s, 999999, &a, STORE_SET_MODE), -ENOENT);
	cr_assert_eq(store_setattr(s, 999999, &a, 0), -ENOENT);
	/* a symlink's size is its target's length */
	store_attr l;
	cr_assert_eq(store_mknode(s, 1, "l", 1, S_IFLNK | 0777, 0, 0, 0, "abc/def", &l), 0);
	cr_assert_eq(l.size, 7);
	cr_assert_gt(l.ino, f);
	char buf[16];
	cr_assert_eq(store_readlink(s, l.ino, buf, sizeof(buf)), 7);
	cr_assert_eq(memcmp(buf, "abc/def", 7), 0);
	cr_assert_eq(store_readlink(s, f, buf, sizeof(buf)), -EINVAL);
	/* an empty xattr value stays empty, not absent */
	cr_assert_eq(store_setxattr(s, f, "user.e", "", 0, 0), 0);
	cr_assert_eq(store_getxattr(s, f, "user.e", buf, sizeof(buf)), 0);
	cr_assert_eq(store_setxattr(s, f, "user.e", "x", 1, 2 /* REPLACE */), 0);
	cr_assert_eq(store_getxattr(s, f, "user.e", buf, sizeof(buf)), 1);
}

Test(store, rdonly_changes_nothing)
{
	uint64_t f = mk(1, "f", S_IFREG | 0644);
	store_close(s);
	s = NULL;
	char err[256], cmd[256];
	unlink(strcat(strcpy(cmd, dir), "/LOCK"));
	snprintf(cmd, sizeof(cmd), "cd %s && find . -type f | sort | xargs sha256sum > ../%s.sum",
		 dir, dir + 5);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(store_open(dir, STORE_O_RDONLY, &s, err, sizeof(err)), 0, "%s", err);
	store_attr a;
	cr_assert_eq(store_getattr(s, f, &a), 0);
	cr_assert(S_ISREG(a.mode));
	uint64_t ino;
	cr_assert_eq(store_lookup(s, 1, "f", 1, &a), 0);
	cr_assert_eq(a.ino, f);
	cr_assert_lt(store_mknode(s, 1, "g", 1, S_IFREG | 0644, 0, 0, 0, NULL, &a), 0);
	uint32_t nl;
	cr_assert_lt(store_unlink(s, 1, "f", 1, 0, &ino, &nl), 0);
	store_close(s);
	s = NULL;
	snprintf(cmd, sizeof(cmd), "cd %s && find . -type f | sort | xargs sha256sum | cmp - ../%s.sum",
		 dir, dir + 5);
	cr_assert_eq(system(cmd), 0, "the directory changed under STORE_O_RDONLY");
	snprintf(cmd, sizeof(cmd), "rm -f /tmp/%s.sum", dir + 5);
	cr_assert_eq(system(cmd), 0);
	/* an empty directory is not initialised read-only */
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir %s", dir, dir);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(store_open(dir, STORE_O_RDONLY, &s, err, sizeof(err)), -EMEDIUMTYPE);
	cr_assert_eq(store_open(dir, STORE_O_NOWAIT, &s, err, sizeof(err)), 0, "%s", err);
}

/* ---- blob and staging names ---- */

Test(store, blob_name_round_trip)
{
	char buf[STORE_BLOB_NAME_SIZE];
	store_blob_name(0xab, buf, sizeof(buf));
	cr_assert_str_eq(buf, "objects/00000000000000ab.tpdo");
	const uint64_t ids[] = {0, 1, 0xab, 0x0123456789abcdefULL, UINT64_MAX};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		store_blob_name(ids[i], buf, sizeof(buf));
		cr_assert_eq(strlen(buf), STORE_BLOB_NAME_SIZE - 1);
		cr_assert_eq(strncmp(buf, STORE_BLOB_DIR "/", sizeof(STORE_BLOB_DIR)), 0);
		uint64_t got = 7;
		cr_assert_eq(store_blob_name_parse(buf + sizeof(STORE_BLOB_DIR), &got), 0, "%s", buf);
		cr_assert_eq(got, ids[i]);
	}
	/* what the store opens is what it names */
	uint64_t id;
	cr_assert_eq(store_obj_reserve(s, &id), 0);
	char tmp[64];
	int fd = store_tmp_create(s, tmp, sizeof(tmp));
	cr_assert(fd >= 0);
	cr_assert_eq(store_obj_install(s, fd, tmp, id), 0);
	close(fd);
	store_blob_name(id, buf, sizeof(buf));
	cr_assert_eq(faccessat(store_dirfd(s), buf, F_OK, 0), 0);
	char abs[512], want[512];
	store_obj_path(s, id, abs, sizeof(abs));
	snprintf(want, sizeof(want), "%s/%s", store_dir(s), buf);
	cr_assert_str_eq(abs, want);
	store_obj_discard(s, id);
	cr_assert_eq(faccessat(store_dirfd(s), buf, F_OK, 0), -1);
}

Test(store, blob_name_rejects)
{
	static const char *const bad[] = {
		"",
		"00000000000000ab",                /* no suffix */
		"0000000000000ab.tpdo",            /* 15 digits */
		"000000000000000ab.tpdo",          /* 17 digits */
		"00000000000000AB.tpdo",           /* upper case: never written */
		"0x000000000000ab.tpdo",           /* strtoull would take the prefix */
		" 0000000000000ab.tpdo",           /* ... and leading blanks */
		"-000000000000001.tpdo",           /* ... and a sign */
		"00000000000000ag.tpdo",           /* not hex */
		"00000000000000ab.tpd",            /* wrong suffix */
		"00000000000000ab.TPDO",
		"00000000000000ab.tpdx",
		"00000000000000ab.tpdo.tmp",       /* trailing bytes */
		"00000000000000ab.tpdo~",
		"objects/00000000000000ab.tpdo",   /* a path, not a name */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t id = 7;
		cr_assert_eq(store_blob_name_parse(bad[i], &id), -EINVAL, "'%s'", bad[i]);
		cr_assert_eq(id, 7, "'%s' wrote the id", bad[i]);
	}
	uint64_t id;
	cr_assert_eq(store_blob_name_parse(NULL, &id), -EINVAL);
	/* a name with a NUL inside the digits ends there */
	const char cut[] = "00000000\0" "0000000ab.tpdo";
	cr_assert_eq(store_blob_name_parse(cut, &id), -EINVAL);
}

Test(store, staging_name_round_trip_and_rejects)
{
	char buf[STORE_STAGING_NAME_SIZE];
	store_staging_name(0xab, buf, sizeof(buf));
	cr_assert_str_eq(buf, "staging/00000000000000ab");
	uint64_t ino = 0;
	cr_assert_eq(store_staging_name_parse(buf + sizeof(STORE_STAGING_DIR), &ino), 0);
	cr_assert_eq(ino, 0xab);
	store_staging_name(UINT64_MAX, buf, sizeof(buf));
	cr_assert_eq(store_staging_name_parse(buf + sizeof(STORE_STAGING_DIR), &ino), 0);
	cr_assert_eq(ino, UINT64_MAX);
	static const char *const bad[] = {
		"", "0000000000000ab", "000000000000000ab", "00000000000000AB", "0x000000000000ab",
		"00000000000000ag", "00000000000000ab.tpdo", "00000000000000ab~",
		"staging/00000000000000ab",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ino = 7;
		cr_assert_eq(store_staging_name_parse(bad[i], &ino), -EINVAL, "'%s'", bad[i]);
		cr_assert_eq(ino, 7);
	}
	/* the file store_staging_open creates is the one named */
	uint64_t f = mk(1, "f", S_IFREG | 0644);
	int fd = store_staging_open(s, f, 1);
	cr_assert(fd >= 0);
	close(fd);
	store_staging_name(f, buf, sizeof(buf));
	cr_assert_eq(faccessat(store_dirfd(s), buf, F_OK, 0), 0);
	char abs[512], want[512];
	store_staging_path(s, f, abs, sizeof(abs));
	snprintf(want, sizeof(want), "%s/%s", store_dir(s), buf);
	cr_assert_str_eq(abs, want);
}

/* ---- named maintenance queries (store_admin.h) ---- */

/* Give ino a committed one-byte object; its id. */
static uint64_t put_obj(uint64_t ino)
{
	uint64_t id;
	cr_assert_eq(store_obj_reserve(s, &id), 0);
	char tmp[64];
	int fd = store_tmp_create(s, tmp, sizeof(tmp));
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "x", 1), 1);
	cr_assert_eq(store_obj_install(s, fd, tmp, id), 0);
	close(fd);
	fd = store_staging_open(s, ino, 1);
	cr_assert(fd >= 0);
	close(fd);
	cr_assert_eq(store_begin_staging(s, ino, 1, 1, 1), 0);
	store_obj o = {.id = id, .size = 1, .stored = 1, .hash = 42};
	cr_assert_eq(store_commit_object(s, ino, &o, NULL, NULL), 0);
	return id;
}

/* States the store API never makes (damage, or a gc dedup): written around it. */
static void damage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void damage(const char *fmt, ...)
{
	char q[512], p[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	snprintf(p, sizeof(p), "%s/tpdefs.db", dir);
	sqlite3 *db;
	/* through the store's page-checksum VFS, so that the pages written keep their checksums */
	cr_assert_eq(sqlite3_open_v2(p, &db, SQLITE_OPEN_READWRITE, dbvfs_name()), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	cr_assert_eq(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK, "%s: %s", q, sqlite3_errmsg(db));
	sqlite3_close(db);
}

static void assert_ids(uint64_t *got, size_t n, const uint64_t *want, size_t nw, const char *what)
{
	cr_assert_eq(n, nw, "%s: %zu ids, want %zu", what, n, nw);
	for (size_t i = 0; i < nw; i++)
		cr_assert_eq(got[i], want[i], "%s[%zu]", what, i);
	if (!n)
		cr_assert_null(got, "%s: empty list not NULL", what);
	free(got);
}

Test(store, admin_obj_queries)
{
	uint64_t f1 = mk(1, "f1", S_IFREG | 0644), f2 = mk(1, "f2", S_IFREG | 0644);
	uint64_t f3 = mk(1, "f3", S_IFREG | 0644);
	uint64_t a = put_obj(f1), b = put_obj(f2);
	uint64_t next;
	cr_assert_eq(store_admin_next_obj(s, &next), 0);
	cr_assert_eq(next, b + 1);
	uint64_t *v, ino;
	size_t n;
	cr_assert_eq(store_admin_inodes_of_obj(s, a, &v, &n), 0);
	assert_ids(v, n, (uint64_t[]){f1}, 1, "inodes_of_obj(a)");
	cr_assert_eq(store_admin_inode_objs(s, &v, &n), 0);
	assert_ids(v, n, (uint64_t[]){a, b}, 2, "inode_objs");
	/* two files on one object (what a gc dedup would leave) */
	damage("UPDATE inodes SET obj=%llu WHERE ino=%llu", (unsigned long long)a,
	       (unsigned long long)f3);
	cr_assert_eq(store_admin_inodes_of_obj(s, a, &v, &n), 0);
	assert_ids(v, n, (uint64_t[]){f1, f3}, 2, "inodes_of_obj(a) shared");
	cr_assert_eq(store_admin_inodes_of_obj(s, b, &v, &n), 0);
	assert_ids(v, n, (uint64_t[]){f2}, 1, "inodes_of_obj(b)");
	cr_assert_eq(store_admin_inodes_of_obj(s, 999, &v, &n), 0);
	assert_ids(v, n, NULL, 0, "inodes_of_obj(999)");
	cr_assert_eq(store_admin_first_inode_of_obj(s, a, &ino), 0);
	cr_assert_eq(ino, f1);
	cr_assert_eq(store_admin_first_inode_of_obj(s, b, &ino), 0);
	cr_assert_eq(ino, f2);
	ino = 5;
	cr_assert_eq(store_admin_first_inode_of_obj(s, 999, &ino), 0);
	cr_assert_eq(ino, 0);
	/* ascending inodes, one entry per file */
	cr_assert_eq(store_admin_inode_objs(s, &v, &n), 0);
	assert_ids(v, n, (uint64_t[]){a, b, a}, 3, "inode_objs shared");
}

Test(store, admin_dangling_refs)
{
	uint64_t f1 = mk(1, "f1", S_IFREG | 0644), f2 = mk(1, "f2", S_IFREG | 0644);
	uint64_t f3 = mk(1, "f3", S_IFREG | 0644), f4 = mk(1, "f4", S_IFREG | 0644);
	uint64_t a = put_obj(f1);
	put_obj(f2);
	uint64_t *v;
	size_t n;
	/* a healthy store has none */
	cr_assert_eq(store_admin_dangling_obj_refs(s, &v, &n), 0);
	assert_ids(v, n, NULL, 0, "dangling objs (healthy)");
	cr_assert_eq(store_admin_dangling_pred_hints(s, &v, &n), 0);
	assert_ids(v, n, NULL, 0, "dangling hints (healthy)");
	/* f4 and f2 point at rows that do not exist (ordered by object, then inode); f1's hint
	 * names a missing object, f3's an existing one */
	damage("UPDATE inodes SET obj=777 WHERE ino=%llu; UPDATE inodes SET obj=778 WHERE ino=%llu;"
	       "UPDATE inodes SET pred_hint=888 WHERE ino=%llu;"
	       "UPDATE inodes SET pred_hint=%llu WHERE ino=%llu", (unsigned long long)f4,
	       (unsigned long long)f2, (unsigned long long)f1, (unsigned long long)a,
	       (unsigned long long)f3);
	cr_assert_eq(store_admin_dangling_obj_refs(s, &v, &n), 0);
	assert_ids(v, n, (uint64_t[]){f4, f2}, 2, "dangling objs");
	cr_assert_eq(store_admin_dangling_pred_hints(s, &v, &n), 0);
	assert_ids(v, n, (uint64_t[]){f1}, 1, "dangling hints");
}

Test(store, admin_files_without_data)
{
	uint64_t *v;
	size_t n;
	store_attr a = {.size = 10};
	uint64_t empty = mk(1, "empty", S_IFREG | 0644);
	uint64_t lost = mk(1, "lost", S_IFREG | 0644);
	cr_assert_eq(store_setattr(s, lost, &a, STORE_SET_SIZE), 0);
	uint64_t stored = mk(1, "stored", S_IFREG | 0644);
	put_obj(stored);
	uint64_t staged = mk(1, "staged", S_IFREG | 0644);
	int fd = store_staging_open(s, staged, 1);
	cr_assert(fd >= 0);
	close(fd);
	cr_assert_eq(store_begin_staging(s, staged, 10, 1, 1), 0);
	/* sizes without data that are fine: a directory, a symlink (its target), an unlinked file */
	uint64_t d = mk(1, "d", S_IFDIR | 0755);
	cr_assert_eq(store_setattr(s, d, &a, STORE_SET_SIZE), 0);
	store_attr la;
	cr_assert_eq(store_mknode(s, 1, "l", 1, S_IFLNK | 0777, 0, 0, 0, "target", &la), 0);
	cr_assert_eq(la.size, 6);
	uint64_t gone = mk(1, "gone", S_IFREG | 0644);
	cr_assert_eq(store_setattr(s, gone, &a, STORE_SET_SIZE), 0);
	uint64_t ino;
	uint32_t nl;
	cr_assert_eq(store_unlink(s, 1, "gone", 4, 0, &ino, &nl), 0);
	cr_assert_eq(nl, 0);
	uint64_t lost2 = mk(1, "lost2", S_IFREG | 0644);
	cr_assert_eq(store_setattr(s, lost2, &a, STORE_SET_SIZE), 0);
	cr_assert_eq(store_admin_files_without_data(s, &v, &n), 0);
	assert_ids(v, n, (uint64_t[]){lost, lost2}, 2, "files without data");
	(void)empty;
}
