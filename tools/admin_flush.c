/* admin_flush.c - `tpdefs-admin flush BACKING`: ask the daemon to encode every closed file now
 * and wait for it. Without a daemon, report what is pending (the next mount encodes it). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"

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

int admin_flush(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: tpdefs-admin flush BACKING\n");
		return 1;
	}
	const char *dir = argv[1];
	store *s;
	if (admin_open_store(dir, &s) < 0)
		return 1;
	store_totals t;
	int r = store_totals_get(s, &t);
	store_close(s);
	if (r < 0) {
		fprintf(stderr, "tpdefs-admin: %s: cannot read metadata: %s\n", dir, strerror(-r));
		return 1;
	}
	int fd = admin_connect(dir);
	if (fd >= 0)
		return talk(fd, "FLUSH\n");
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
	fprintf(stderr, "tpdefs-admin: no daemon running on %s; %llu files wait for encoding "
		"(kept safely in staging; the next mount encodes them)\n", dir,
		(unsigned long long)t.staged_files);
	return 2;
}
