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

void gc_clean_dir(gcx *g, const char *sub, int doit)
{
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
		} else if (!strcmp(sub, "objects")) {
			uint64_t id;
			if (store_blob_name_parse(nm, &id) < 0)
				continue; /* not ours: leave it */
			stale = store_admin_obj_exists(g->s, id) == 0;
			kind = &g->res->orphan_blobs;
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
		(*kind)++;
		g->res->orphan_bytes += bytes;
		gc_say(g, "%s %s/%s (%" PRIu64 " bytes)\n", doit ? "removed" : "would remove",
		       sub, nm, bytes);
	}
	closedir(d);
	close(dfd);
}

void gc_clean_files(gcx *g)
{
	int doit = !g->o->dry_run;
	gc_clean_dir(g, "tmp", doit);
	gc_clean_dir(g, "objects", doit);
	gc_clean_dir(g, "staging", doit);
}
