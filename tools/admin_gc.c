/* admin_gc.c - `tpdefs-admin gc BACKING [--dry-run] [--max-chain N]`. A mounted store is
 * collected by its daemon (GC over the control socket, progress streamed back); an unmounted
 * one here, holding BACKING/LOCK. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "ingest.h"
#include "gc.h"

#define GC_STR_(x) #x
#define GC_STR(x) GC_STR_(x) /* a default's value in the help text */

static const char gc_usage[] =
	"usage: tpdefs-admin gc BACKING [--dry-run] [--max-chain N]\n"
	"\n"
	"Free what nothing needs: objects whose files were deleted but that other objects still\n"
	"use as delta bases get their dependents re-encoded against the nearest surviving\n"
	"ancestor (or as keyframes), chains deeper than N are shortened the same way, then the\n"
	"unreferenced objects, orphan blobs and stale tmp/staging files are removed.\n"
	"Safe to interrupt at any point; run it again to finish.\n"
	"On a mounted store the daemon does the work (files stay readable throughout).\n"
	"\n"
	"  --dry-run       say what would be done, change nothing\n"
	"  --max-chain N   longest delta chain to keep (default: the daemon's max_chain, or "
	GC_STR(INGEST_DEFAULT_MAX_CHAIN) ")\n"
	"  -h, --help      this text\n";

typedef struct ui {
	int tty;
	int bar_shown;
} ui;

static void bar(ui *u, uint64_t done, uint64_t total)
{
	if (!u->tty || !total)
		return;
	int w = 40, k = (int)(done * (uint64_t)w / total);
	fprintf(stderr, "\r[%.*s%*s] %" PRIu64 "/%" PRIu64, k,
		"########################################", w - k, "", done, total);
	fflush(stderr);
	u->bar_shown = 1;
}

static void text(ui *u, const char *line)
{
	if (u->tty && u->bar_shown) {
		fprintf(stderr, "\r\033[K");
		u->bar_shown = 0;
	}
	fputs(line, stdout);
	fflush(stdout);
}

static void hook_line(void *ctx, const char *t)
{
	text(ctx, t);
}

static void hook_progress(void *ctx, uint64_t done, uint64_t total)
{
	ui *u = ctx;
	if (!u->tty) {
		/* plain progress lines for logs and pipes */
		printf("progress %" PRIu64 "/%" PRIu64 "\n", done, total);
		fflush(stdout);
		return;
	}
	bar(u, done, total);
}

static void summary(ui *u, const gc_result *r, int dry)
{
	if (u->tty && u->bar_shown)
		fprintf(stderr, "\r\033[K");
	printf("%s: re-encoded %" PRIu64 " against a surviving base, %" PRIu64
	       " as keyframes, %" PRIu64 " skipped; freed %" PRIu64 " objects (%" PRIu64
	       " bytes); removed %" PRIu64 " orphan blobs, %" PRIu64 " tmp and %" PRIu64
	       " staging files (%" PRIu64 " bytes); stored %" PRIu64 " -> %" PRIu64 " bytes\n",
	       dry ? "gc --dry-run (nothing changed)" : "gc done", r->rebased, r->keyframes,
	       r->skipped, r->freed_objects, r->freed_bytes, r->orphan_blobs, r->tmp_files,
	       r->staging_files, r->orphan_bytes, r->stored_before, r->stored_after);
}

static int via_daemon(ui *u, int fd, unsigned max_chain, int dry)
{
	char cmd[128];
	int n = snprintf(cmd, sizeof(cmd), "GC dry_run=%d", dry);
	if (max_chain)
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " max_chain=%u", max_chain);
	snprintf(cmd + n, sizeof(cmd) - (size_t)n, "\n");
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
		fprintf(stderr, "tpdefs-admin: control socket: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	FILE *in = fdopen(fd, "r");
	if (!in) {
		close(fd);
		return 1;
	}
	char line[4096];
	int status = 1, got_end = 0;
	while (fgets(line, sizeof(line), in)) {
		unsigned long long d, t;
		if (sscanf(line, "PROGRESS %llu %llu", &d, &t) == 2) {
			hook_progress(u, d, t);
		} else if (!strncmp(line, "OK", 2)) {
			gc_result r;
			memset(&r, 0, sizeof(r));
			sscanf(line, "OK rebased=%" SCNu64 " keyframes=%" SCNu64 " skipped=%" SCNu64
			       " freed_objects=%" SCNu64 " freed_bytes=%" SCNu64 " orphan_blobs=%"
			       SCNu64 " tmp_files=%" SCNu64 " staging_files=%" SCNu64
			       " stored_before=%" SCNu64 " stored_after=%" SCNu64,
			       &r.rebased, &r.keyframes, &r.skipped, &r.freed_objects, &r.freed_bytes,
			       &r.orphan_blobs, &r.tmp_files, &r.staging_files, &r.stored_before,
			       &r.stored_after);
			summary(u, &r, dry);
			status = 0;
			got_end = 1;
		} else if (!strncmp(line, "ERR", 3)) {
			fprintf(stderr, "tpdefs-admin: daemon:%s", line + 3);
			got_end = 1;
		} else {
			text(u, line);
		}
	}
	fclose(in);
	if (!got_end)
		fprintf(stderr, "tpdefs-admin: the daemon closed the connection without an answer\n");
	return status;
}

int admin_gc(int argc, char **argv)
{
	const char *dir = NULL;
	int dry = 0;
	unsigned max_chain = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(gc_usage, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--dry-run") || !strcmp(argv[i], "-n")) {
			dry = 1;
		} else if (!strcmp(argv[i], "--max-chain") || !strncmp(argv[i], "--max-chain=", 12)) {
			const char *v = argv[i][11] == '=' ? argv[i] + 12 : (i + 1 < argc ? argv[++i] : NULL);
			char *end;
			unsigned long x = v ? strtoul(v, &end, 10) : 0;
			if (!v || !*v || *end || *v == '-' || x < 1 || x > 1000) {
				fprintf(stderr, "tpdefs-admin gc: --max-chain needs a number 1..1000\n");
				return 1;
			}
			max_chain = (unsigned)x;
		} else if (argv[i][0] == '-' || dir) {
			fprintf(stderr, "tpdefs-admin gc: unexpected argument '%s'\n%s", argv[i], gc_usage);
			return 1;
		} else {
			dir = argv[i];
		}
	}
	if (!dir) {
		fprintf(stderr, "%s", gc_usage);
		return 1;
	}
	store *s;
	if (admin_open_store(dir, &s) < 0)
		return 1;
	store_close(s);
	ui u = {isatty(2) && isatty(1), 0};
	int fd = admin_connect(dir);
	/* a daemon that just mounted opens its control socket a moment later */
	for (int i = 0; fd < 0 && fd != -EREMOTE && i < 50 && admin_daemon_running(dir) == 1; i++) {
		usleep(100000);
		fd = admin_connect(dir);
	}
	if (fd >= 0)
		return via_daemon(&u, fd, max_chain, dry);
	char err[1024] = "";
	int online = fd == -EREMOTE;
	/* a shared store served by other nodes only: gc runs here, alongside them (the store's gc
	 * lock keeps it the only one; their readers keep old objects through the trash) */
	int r = online ? store_open_at(dir, NULL, STORE_O_NOCREATE | STORE_O_NOLOCK, &s, err,
				       sizeof(err))
		       : admin_open_locked(dir, &s, err, sizeof(err));
	if (r == -EBUSY) {
		fprintf(stderr, "tpdefs-admin: %s is served by a daemon but its control socket is "
			"unreachable; unmount it or retry\n", dir);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "tpdefs-admin: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	gc_opts o;
	memset(&o, 0, sizeof(o));
	o.max_chain = max_chain;
	o.dry_run = dry;
	o.online = online;
	o.hooks.ctx = &u;
	o.hooks.line = hook_line;
	o.hooks.progress = hook_progress;
	gc_result res;
	r = gc_run(s, &o, &res);
	store_close(s);
	if (r < 0) {
		fprintf(stderr, "tpdefs-admin: gc %s: %s (stopped; nothing lost, run it again)\n", dir,
			strerror(-r));
		return 1;
	}
	summary(&u, &res, dry);
	return res.skipped ? 3 : 0;
}
