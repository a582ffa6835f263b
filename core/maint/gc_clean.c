/* gc_clean.c - files nobody owns: tmp/ leftovers, blobs in objects/ without a row, staging files
 * of inodes that are gone or no longer staged. Online, young files are left alone: they may be an
 * encode in flight. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gc_internal.h"
#include "store_admin.h"

/* Files younger than this may belong to an encode in flight (online gc leaves them alone). */
#define GC_ONLINE_MIN_AGE_S 3600

static int old_enough(gcx *g, int dfd, const char *name)
{
	if (!g->o->online)
		return 1;
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return time(NULL) - st.st_mtime > GC_ONLINE_MIN_AGE_S;
}

static void removed(gcx *g, uint64_t *kind, const char *sub, const char *nm, uint64_t bytes,
		    int doit)
{
	(*kind)++;
	g->res->orphan_bytes += bytes;
	gc_say(g, "%s %s/%s (%" PRIu64 " bytes)\n", doit ? "removed" : "would remove", sub, nm,
	       bytes);
}

typedef struct blob_scan {
	gcx *g;
	int doit;
} blob_scan;

/* objects/ through the store: a directory or a bucket alike. */
static int clean_blob(void *ctx, const char *name, uint64_t id, uint64_t size, int64_t mtime_ns)
{
	blob_scan *b = ctx;
	gcx *g = b->g;
	if (!id || store_admin_obj_exists(g->s, id) != 0)
		return 0; /* not ours, or in use */
	if (g->o->online && time(NULL) - mtime_ns / 1000000000LL <= GC_ONLINE_MIN_AGE_S)
		return 0;
	if (b->doit && store_blob_delete(g->s, name) < 0)
		return 0;
	removed(g, &g->res->orphan_blobs, "objects", name, size, b->doit);
	return 0;
}

void gc_clean_dir(gcx *g, const char *sub, int doit)
{
	if (!strcmp(sub, "objects")) {
		blob_scan b = {g, doit};
		store_blob_list(g->s, clean_blob, &b);
		return;
	}
	int dfd = openat(store_dirfd(g->s), sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	int fd2 = dup(dfd);
	DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
	if (!d) {
		if (fd2 >= 0)
			close(fd2);
		close(dfd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *nm = e->d_name;
		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		int stale = 0;
		uint64_t *kind = NULL;
		if (!strcmp(sub, "tmp")) {
			stale = 1;
			kind = &g->res->tmp_files;
		} else {
			uint64_t ino;
			if (store_staging_name_parse(nm, &ino) < 0)
				continue;
			store_attr a;
			int r = store_getattr(g->s, ino, &a);
			stale = r == -ENOENT || (r == 0 && !a.staged);
			kind = &g->res->staging_files;
		}
		if (!stale || !old_enough(g, dfd, nm))
			continue;
		struct stat st;
		uint64_t bytes = fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) == 0 ? (uint64_t)st.st_size
										    : 0;
		if (doit && unlinkat(dfd, nm, 0) < 0)
			continue;
		removed(g, kind, sub, nm, bytes, doit);
	}
	closedir(d);
	close(dfd);
}

static void upload_aborted(void *ctx, const char *key)
{
	gcx *g = ctx;
	g->res->orphan_blobs++;
	gc_say(g, "aborted the unfinished upload of %s\n", key);
}

static void copy_removed(void *ctx, const char *key, uint64_t size)
{
	gcx *g = ctx;
	g->res->staging_files++;
	g->res->orphan_bytes += size;
	gc_say(g, "removed %s in the bucket (%" PRIu64 " bytes)\n", key, size);
}

void gc_clean_files(gcx *g)
{
	int doit = !g->o->dry_run;
	if (doit) {
		/* multipart uploads a dead node left in the bucket; online, young ones may be an
		 * encode in flight */
		int64_t before = store_now_ns() -
				 (g->o->online ? (int64_t)GC_ONLINE_MIN_AGE_S * 1000000000LL : 0);
		store_blob_uploads_clean(g->s, before, upload_aborted, g);
		store_staging_copies_clean(g->s, before, copy_removed, g);
	}
	gc_clean_dir(g, "tmp", doit);
	gc_clean_dir(g, "objects", doit);
	gc_clean_dir(g, "staging", doit);
}
