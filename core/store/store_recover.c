/* store_recover.c - mount-time recovery: what a crash can leave behind is removed or cut back to
 * its last committed state (docs/RELIABILITY.md): tmp files, inodes with no link left, object
 * rows nobody points at, blobs without a row, staging files nobody owns or longer than their
 * committed size. */
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Call fn(name) for each entry of BACKING/sub. */
static int scan_dir(store *s, const char *sub, void (*fn)(store *s, const char *name))
{
	int fd = openat(s->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			fn(s, e->d_name);
	closedir(d);
	return 0;
}

static void clean_tmp(store *s, const char *name)
{
	char rel[300];
	snprintf(rel, sizeof(rel), "tmp/%s", name);
	unlinkat(s->dirfd, rel, 0);
}

static int clean_blob(void *ctx, const char *name, uint64_t id, uint64_t size, int64_t mtime)
{
	store *s = ctx;
	store_obj o;
	if (id && store_obj_get_locked(s, id, &o) == 0)
		return 0;
	if (id || !blob_is_remote(s->blobs))
		store_blob_delete(s, name); /* (foreign names are left alone in a bucket) */
	return 0;
}

static void clean_staging(store *s, const char *name)
{
	uint64_t ino;
	store_attr a;
	char rel[300];
	snprintf(rel, sizeof(rel), STORE_STAGING_DIR "/%s", name);
	if (store_staging_name_parse(name, &ino) == 0 && store_getattr_locked(s, ino, &a) == 0 &&
	    a.staged) {
		/* the committed size is what a closed file had; later bytes were never closed */
		int fd = openat(s->dirfd, rel, O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			struct stat st;
			if (fstat(fd, &st) == 0 && (uint64_t)st.st_size != a.size) {
				if (ftruncate(fd, (off_t)a.size) == 0)
					fsync(fd);
			}
			close(fd);
		}
		return;
	}
	unlinkat(s->dirfd, rel, 0);
}

int store_recover(store *s, uint64_t **staged, size_t *nstaged)
{
	*staged = NULL;
	*nstaged = 0;
	if (s->shared && !s->alone) {
		/* other nodes serve the store: their tmp files, blobs in flight, open unlinked
		 * inodes and staging files are theirs. Only the staged list is handed back; each
		 * file is encoded here if its node is gone (store_stage_mine). */
		int r = store_list_staged(s, staged, nstaged);
		store_shared_recovered(s);
		return r;
	}
	store_lock(s);
	int r = scan_dir(s, "tmp", clean_tmp);
	/* unlinked inodes whose last user went away while we were down */
	db_stmt *st;
	uint64_t *dead = NULL;
	size_t ndead = 0;
	if (r >= 0 && db_prepare(s->db, "SELECT ino FROM inodes WHERE nlink=0", 0, &st) == 0) {
		r = store_collect_ids(s, st, &dead, &ndead);
		db_finalize(st);
	}
	for (size_t i = 0; r >= 0 && i < ndead; i++) {
		r = store_drop_inode_locked(s, dead[i]);
		if (s->ngone > STORE_GONE_MAX / 2) {
			store_unlock(s);
			store_lock(s);
		}
	}
	free(dead);
	/* objects nobody points at (a crash between commits) */
	if (r >= 0 && db_prepare(s->db, "SELECT id FROM objects WHERE id NOT IN "
				 "(SELECT obj FROM inodes WHERE obj IS NOT NULL UNION "
				 "SELECT pred_hint FROM inodes WHERE pred_hint IS NOT NULL)", 0, &st) == 0) {
		uint64_t *ids = NULL;
		size_t n = 0;
		r = store_collect_ids(s, st, &ids, &n);
		db_finalize(st);
		for (size_t i = 0; r >= 0 && i < n; i++) {
			r = store_begin(s);
			if (r >= 0)
				r = store_end(s, store_obj_release_locked(s, ids[i]));
			if (s->ngone > STORE_GONE_MAX / 2) {
				store_unlock(s);
				store_lock(s);
			}
		}
		free(ids);
	}
	store_unlock(s);
	store_lock(s);
	if (r >= 0)
		r = store_blob_list(s, clean_blob, s);
	if (r >= 0)
		r = scan_dir(s, STORE_STAGING_DIR, clean_staging);
	store_unlock(s);
	if (r >= 0)
		r = store_list_staged(s, staged, nstaged);
	store_shared_recovered(s);
	return r;
}
