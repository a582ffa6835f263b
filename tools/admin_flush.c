/* admin_flush.c - `tpdefs-admin flush BACKING`: ask the daemon to encode every closed file now
 * and wait for it. Without a daemon, encode the pending staging files here (same core code). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "chain.h"
#include "chain_store.h"
#include "ingest.h"

static int talk(int fd, const char *cmd)
{
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
		fprintf(stderr, "tpdefs-admin: control socket: %s\n", strerror(errno));
		return 1;
	}
	FILE *in = fdopen(fd, "r");
	if (!in) {
		close(fd);
		return 1;
	}
	char line[4096];
	int status = 1;
	int got_end = 0;
	while (fgets(line, sizeof(line), in)) {
		if (!strncmp(line, "OK", 2)) {
			printf("done:%s", line + 2);
			status = 0;
			got_end = 1;
		} else if (!strncmp(line, "ERR", 3)) {
			fprintf(stderr, "tpdefs-admin: daemon:%s", line + 3);
			status = 1;
			got_end = 1;
		} else {
			fputs(line, stdout);
		}
	}
	fclose(in);
	if (!got_end)
		fprintf(stderr, "tpdefs-admin: the daemon closed the connection without an answer\n");
	return status;
}

typedef struct offline {
	store *s;
	chain *ch;
	unsigned encoded, failed;
} offline;

static void encode_offline(offline *o, uint64_t ino, int depth);

static void first(void *ctx, uint64_t ino)
{
	encode_offline(ctx, ino, 1);
}

static void encode_offline(offline *o, uint64_t ino, int depth)
{
	store_attr a;
	if (store_getattr(o->s, ino, &a) < 0 || !a.staged || a.nlink == 0)
		return;
	int sfd = store_staging_open(o->s, ino, 0);
	if (sfd < 0) {
		printf("encode of ino=%llu failed: %s (kept in staging)\n", (unsigned long long)ino,
		       strerror(-sfd));
		o->failed++;
		return;
	}
	/* the daemon's defaults; no reader but us, so a replaced predecessor goes at once */
	ingest_opts io = {INGEST_DEFAULT_MAX_CHAIN, INGEST_DEFAULT_NEWEST_KEYFRAME, NULL,
			  depth ? NULL : first, o};
	ingest_job j;
	int r = ingest_prepare(o->s, o->ch, ino, sfd, a.size, &io, &j);
	close(sfd);
	if (r == 0)
		r = ingest_commit(o->s, &j, NULL, NULL);
	if (r == 0 && j.retired) {
		chain_forget(o->ch, j.retired);
		for (size_t i = 0; i < j.rb.ndeps; i++)
			chain_forget(o->ch, j.rb.deps[i]);
		store_release_retired(o->s, j.retired);
	}
	ingest_job_done(&j);
	if (r < 0) {
		printf("encode of ino=%llu failed: %s (kept in staging)\n", (unsigned long long)ino,
		       strerror(-r));
		o->failed++;
		return;
	}
	char raw[STORE_NAME_MAX + 1], name[4 * STORE_NAME_MAX + 1] = "?";
	uint64_t parent;
	size_t nlen;
	if (store_parent(o->s, ino, &parent, raw, &nlen) == 0)
		store_name_escape(raw, nlen, name);
	printf("encoded ino=%llu name=%s size=%llu stored=%llu base=%llu (%s) depth=%u\n",
	       (unsigned long long)ino, name, (unsigned long long)j.obj.size,
	       (unsigned long long)j.obj.stored, (unsigned long long)j.obj.base, j.why,
	       j.obj.depth);
	o->encoded++;
}

/* No daemon: take the lock ourselves and encode what is staged. */
static int flush_offline(const char *dir)
{
	offline o = {0};
	char err[1024] = "";
	int r = admin_open_locked(dir, &o.s, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "tpdefs-admin: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	uint64_t *inos = NULL;
	size_t n = 0;
	r = store_recover(o.s, &inos, &n);
	chain_opts co = {.cache_bytes = 64u << 20, .max_open = 64};
	if (r == 0) {
		o.ch = chain_new(&co, chain_store_open, o.s);
		if (!o.ch)
			r = -ENOMEM;
	}
	if (r < 0) {
		fprintf(stderr, "tpdefs-admin: %s: %s\n", dir, strerror(-r));
		free(inos);
		if (o.ch)
			chain_free(o.ch);
		store_close(o.s);
		return 1;
	}
	printf("no daemon running on %s; encoding %zu pending files here\n", dir, n);
	for (size_t i = 0; i < n; i++)
		encode_offline(&o, inos[i], 0);
	free(inos);
	store_totals t;
	store_totals_get(o.s, &t);
	chain_free(o.ch);
	store_close(o.s);
	printf("done: files=%llu logical_bytes=%llu objects=%llu stored_bytes=%llu staged_files=%llu "
	       "encoded=%u failed=%u\n", (unsigned long long)t.files,
	       (unsigned long long)t.logical_bytes, (unsigned long long)t.objects,
	       (unsigned long long)t.stored_bytes, (unsigned long long)t.staged_files, o.encoded,
	       o.failed);
	return o.failed ? 1 : 0;
}

/* A shared store served by other nodes only: their daemons encode what they staged (and take
 * over what dead nodes left); wait until nothing is staged, reporting what is left. */
static int wait_remote(const char *dir)
{
	store *s;
	if (admin_open_store(dir, &s) < 0)
		return 1;
	store_totals t;
	int r = 0;
	for (int i = 0; i < 6000; i++) { /* 10 minutes */
		if ((r = store_totals_get(s, &t)) < 0 || t.staged_files == 0)
			break;
		if (i % 50 == 0)
			printf("waiting for the nodes serving %s: %llu files staged\n", dir,
			       (unsigned long long)t.staged_files);
		fflush(stdout);
		usleep(100000);
	}
	store_close(s);
	if (r < 0 || t.staged_files) {
		fprintf(stderr, "tpdefs-admin: %s: %s\n", dir, r < 0 ? strerror(-r) :
			"files still staged after 10 minutes (the nodes serving the store encode them)");
		return 1;
	}
	printf("done: files=%llu logical_bytes=%llu objects=%llu stored_bytes=%llu staged_files=0 "
	       "(encoded by the nodes serving the store)\n", (unsigned long long)t.files,
	       (unsigned long long)t.logical_bytes, (unsigned long long)t.objects,
	       (unsigned long long)t.stored_bytes);
	return 0;
}

int admin_flush(int argc, char **argv)
{
	static const char use[] =
		"usage: tpdefs-admin flush BACKING\n"
		"Wait until every closed file is encoded (no debounce) and print what was done.\n"
		"Without a running daemon, encode the pending staging files here.\n";
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(use, stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fputs(use, stderr);
		return 1;
	}
	const char *dir = argv[1];
	store *s;
	if (admin_open_store(dir, &s) < 0)
		return 1;
	store_totals t;
	int r = store_totals_get(s, &t);
	/* a shared store: every daemon of this host serving it encodes what it staged */
	char **dirs = NULL;
	size_t nd = 0;
	if (r == 0 && store_is_shared(s))
		store_shared_local_dirs(s, &dirs, &nd);
	store_close(s);
	if (r < 0) {
		fprintf(stderr, "tpdefs-admin: %s: cannot read metadata: %s\n", dir, strerror(-r));
		return 1;
	}
	if (nd) {
		int status = 0;
		for (size_t i = 0; i < nd; i++) {
			int cfd = admin_connect_dir(dirs[i]);
			status |= cfd < 0 ? 1 : talk(cfd, "FLUSH\n");
			free(dirs[i]);
		}
		free(dirs);
		return status;
	}
	int fd = admin_connect(dir);
	if (fd >= 0)
		return talk(fd, "FLUSH\n");
	if (fd == -EREMOTE)
		return wait_remote(dir);
	int running = admin_daemon_running(dir);
	if (running == 1) {
		fprintf(stderr, "tpdefs-admin: %s is served by a daemon but its control socket is "
			"unreachable (%s)\n", dir, strerror(-fd));
		return 1;
	}
	if (t.staged_files == 0) {
		printf("no daemon running on %s; nothing pending (%llu files, %llu logical bytes "
		       "stored in %llu bytes)\n", dir, (unsigned long long)t.files,
		       (unsigned long long)t.logical_bytes, (unsigned long long)t.stored_bytes);
		return 0;
	}
	return flush_offline(dir);
}
