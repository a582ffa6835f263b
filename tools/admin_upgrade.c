/* admin_upgrade.c - `tpdefs-admin upgrade BACKING`: bring an unmounted store's format up to this
 * build's (version 1 -> 2: a checksum in every page of the metadata database). Offline only. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "store_uri.h"

static const char upgrade_usage[] =
	"usage: tpdefs-admin upgrade BACKING\n"
	"       tpdefs-admin upgrade --resum BACKING\n"
	"\n"
	"Bring an unmounted store to this build's format. From version 1 (stores made before page\n"
	"checksums) to 2: the metadata database is rewritten with a checksum in every page, so\n"
	"that a damaged page is an error (EIO, and reported by verify) instead of metadata. Takes\n"
	"about as long as copying tpdefs.db; a crash half-way leaves a store that reads as before\n"
	"and that a second run finishes. Builds of tpdefs from before version 2 refuse the store\n"
	"afterwards. A PostgreSQL store has nothing to upgrade (its pages are the server's).\n"
	"\n"
	"  --resum     repair, not upgrade: a tool outside tpdefs (an older tpdefs, the sqlite3\n"
	"              shell, Python's sqlite3) opened tpdefs.db for writing and left pages with\n"
	"              stale checksums, so the store is refused as damaged. Rewrites every page's\n"
	"              checksum, only if SQLite's own integrity check passes, and checks them all\n"
	"              again afterwards. Bit rot in a page is indistinguishable from such a write:\n"
	"              run it only when you know an outside tool wrote to the database.\n"
	"  -h, --help  this text\n";

int admin_upgrade(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(upgrade_usage, stdout);
		return 0;
	}
	int resum = argc == 3 && !strcmp(argv[1], "--resum");
	if ((argc != 2 && !resum) || argv[argc - 1][0] == '-') {
		fputs(upgrade_usage, stderr);
		return 2;
	}
	const char *dir = argv[argc - 1];
	if (admin_daemon_running(dir) == 1) {
		fprintf(stderr, "tpdefs-admin: %s is mounted; unmount it, then upgrade\n", dir);
		return 1;
	}
	store *s;
	char err[1024] = "";
	if (resum && store_uri_is_pg(dir)) {
		fprintf(stderr, "tpdefs-admin: upgrade --resum: a PostgreSQL store has no pages of "
			"tpdefs's own\n");
		return 1;
	}
	int r = resum ? store_open(dir, STORE_O_NOCREATE | STORE_O_NOWAIT | STORE_O_REPAIR, &s, err,
				   sizeof(err))
		      : admin_open_locked(dir, &s, err, sizeof(err));
	if (r == -EBUSY) {
		fprintf(stderr, "tpdefs-admin: %s is in use by a daemon; unmount it, then upgrade\n",
			dir);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "tpdefs-admin: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	if (resum) {
		r = store_resum(s, err, sizeof(err));
		store_close(s);
		if (r < 0) {
			fprintf(stderr, "tpdefs-admin: upgrade --resum: %s\n", err[0] ? err : strerror(-r));
			return 1;
		}
		printf("upgrade --resum %s: every page's checksum rewritten; the database checks "
		       "clean\n", dir);
		return 0;
	}
	int from, to, rewrote;
	r = store_upgrade(s, &from, &to, &rewrote, err, sizeof(err));
	store_close(s);
	if (r < 0) {
		fprintf(stderr, "tpdefs-admin: upgrade: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	if (from == to && !rewrote)
		printf("upgrade %s: format version %d, nothing to do\n", dir, to);
	else if (from == to)
		printf("upgrade %s: format version %d, page checksums added (an earlier upgrade was "
		       "cut short)\n", dir, to);
	else
		printf("upgrade %s: format version %d -> %d (page checksums in the metadata database)\n",
		       dir, from, to);
	return 0;
}
