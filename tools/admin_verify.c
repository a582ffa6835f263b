/* admin_verify.c - `tpdefs-admin verify BACKING`: every chunk decoded and checked, metadata and
 * blobs consistent. Exit 0 when everything checks, 1 when the store is damaged (the damaged
 * files are listed), 2 when verify itself could not run. Read-only: works while mounted. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "stats.h"
#include "verify.h"

static const char verify_usage[] =
	"usage: tpdefs-admin verify BACKING [--quiet]\n"
	"\n"
	"Check the whole store: every object blob validates (header, chunk index, footer), every\n"
	"chunk decodes through its delta chain to bytes matching its checksum, every object's\n"
	"content hash matches the metadata, metadata and blobs agree (rows <-> blobs, inodes ->\n"
	"objects, bases exist, no cycles, depths), staged files have staging data, and SQLite's\n"
	"quick_check passes. Read-only; works on a mounted store.\n"
	"\n"
	"Exit status: 0 all good; 1 problems found (damaged files are listed as\n"
	"\"DAMAGED /path\"); 2 verify could not run.\n"
	"\n"
	"  -q, --quiet  print only damaged files and the summary\n"
	"  -h, --help   this text\n";

typedef struct vui {
	int tty, quiet, bar;
} vui;

static void vline(void *ctx, const char *t)
{
	vui *u = ctx;
	if (u->bar) {
		fprintf(stderr, "\r\033[K");
		u->bar = 0;
	}
	if (!u->quiet || !strstr(t, "(note)"))
		fputs(t, stdout);
	fflush(stdout);
}

static void vprog(void *ctx, uint64_t done, uint64_t total)
{
	vui *u = ctx;
	if (!u->tty || !total)
		return;
	fprintf(stderr, "\rverifying object %" PRIu64 "/%" PRIu64, done, total);
	fflush(stderr);
	u->bar = 1;
}

int admin_verify(int argc, char **argv)
{
	const char *dir = NULL;
	vui u = {isatty(2), 0, 0};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(verify_usage, stdout);
			return 0;
		} else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
			u.quiet = 1;
		} else if (argv[i][0] == '-' || dir) {
			fprintf(stderr, "tpdefs-admin verify: unexpected argument '%s'\n%s", argv[i],
				verify_usage);
			return 2;
		} else {
			dir = argv[i];
		}
	}
	if (!dir) {
		fprintf(stderr, "%s", verify_usage);
		return 2;
	}
	store *s;
	int ro = admin_open_store(dir, &s);
	if (ro < 0)
		return ro == -EIO ? 1 : 2; /* a damaged database: found, not "could not run" */
	verify_opts o;
	memset(&o, 0, sizeof(o));
	o.online = admin_daemon_running(dir) == 1;
	o.ctx = &u;
	o.line = vline;
	o.progress = vprog;
	verify_result res;
	int r = verify_run(s, &o, &res);
	if (u.bar)
		fprintf(stderr, "\r\033[K");
	if (r < 0) {
		store_close(s);
		fprintf(stderr, "tpdefs-admin: verify %s: %s\n", dir, strerror(-r));
		return 2;
	}
	for (size_t i = 0; i < res.nbad_inos; i++) {
		char path[4096], q[4096 * 4];
		if (stats_path_of(s, res.bad_inos[i], path, sizeof(path)) < 0)
			snprintf(path, sizeof(path), "(inode %" PRIu64 ", no name)", res.bad_inos[i]);
		stats_quote(path, q, sizeof(q));
		printf("DAMAGED %s\n", q);
	}
	store_close(s);
	printf("verify %s: %" PRIu64 " objects, %" PRIu64 " chunks, %" PRIu64 " bytes checked; "
	       "%" PRIu64 " damaged objects (%" PRIu64 " chunks), %zu damaged files, %" PRIu64
	       " problems%s\n", dir, res.objects, res.chunks, res.bytes, res.bad_objects,
	       res.bad_chunks, res.nbad_inos, res.problems, res.problems ? "" : ": OK");
	int status = res.problems ? 1 : 0;
	verify_result_free(&res);
	return status;
}
