/* tpdefs-admin - maintenance of a tpdefs backing directory. Subcommands live in
 * tools/admin_<name>.c and are listed in cmds[] below. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "store_uri.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} cmds[] = {
	{"format", admin_format, "format URI --blobs DIR|S3URI   create a shared store: metadata in PostgreSQL, blobs in DIR or a bucket"},
	{"flush", admin_flush, "flush BACKING   wait until every closed file is encoded; print what was done"},
	{"gc", admin_gc, "gc BACKING [--dry-run] [--max-chain N]   rebase chains, free what nothing needs"},
	{"stats", admin_stats, "stats BACKING [--json]   logical vs stored bytes, per file and per chain"},
	{"verify", admin_verify, "verify BACKING   check every chunk and metadata <-> blob consistency"},
	{"upgrade", admin_upgrade, "upgrade BACKING   bring an unmounted store to this build's format"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: tpdefs-admin COMMAND BACKING [ARGS]   (BACKING: a directory or a PostgreSQL URI)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(out, "  %s\n", cmds[i].help);
	fprintf(out, "\n  --help, --version; tpdefs-admin COMMAND --help for details\n");
}

int admin_open_store(const char *dir, store **out)
{
	char err[1024] = "";
	int r = store_open(dir, STORE_O_NOCREATE | STORE_O_NOLOCK, out, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "tpdefs-admin: %s\n", err[0] ? err : strerror(-r));
	return r;
}

int admin_open_locked(const char *backing, store **out, char *err, size_t errlen)
{
	char local[128];
	const char *ld = NULL;
	store_uri u;
	if (store_uri_is_pg(backing)) {
		if (store_uri_parse(backing, &u, err, errlen) < 0)
			return -EINVAL;
		/* an offline command on a shared store: this node's lock directory for it */
		snprintf(local, sizeof(local), "/var/lib/tpdefs/admin-%016llx",
			 (unsigned long long)u.id);
		ld = local;
	}
	return store_open_at(backing, ld, STORE_O_NOCREATE | STORE_O_NOWAIT, out, err, errlen);
}

/* store_shared_mount of the shared store named by uri, opened for inspection. */
static int shared_mount(const char *uri, char *host, size_t hlen, char *local, size_t llen)
{
	store *s;
	char err[1024] = "";
	int r = store_open_at(uri, NULL, STORE_O_NOCREATE | STORE_O_NOLOCK, &s, err, sizeof(err));
	if (r < 0)
		return r;
	r = store_shared_mount(s, host, hlen, local, llen);
	store_close(s);
	return r;
}

/* The directory holding the control socket of the daemon serving backing: BACKING itself, or
 * for a shared store the local_dir the serving daemon recorded (-EREMOTE: on another host,
 * -ENOENT: nobody serves it). */
static int control_dir(const char *backing, char *out, size_t size)
{
	if (!store_uri_is_pg(backing)) {
		snprintf(out, size, "%s", backing);
		return 0;
	}
	char host[256], local[4096], me[256] = "";
	int r = shared_mount(backing, host, sizeof(host), local, sizeof(local));
	if (r <= 0)
		return r < 0 ? r : -ENOENT;
	store_host_name(me, sizeof(me));
	if (strcmp(host, me))
		return -EREMOTE; /* served from other nodes only */
	snprintf(out, size, "%s", local);
	return 0;
}

int admin_connect(const char *backing)
{
	char dir[4096];
	int cr = control_dir(backing, dir, sizeof(dir));
	if (cr < 0)
		return cr == -ENOENT ? -ECONNREFUSED : cr;
	return admin_connect_dir(dir);
}

int admin_connect_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	/* via the directory fd: backing paths longer than sun_path still work */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dfd, STORE_SOCK_NAME);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		close(dfd);
		return -e;
	}
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	close(dfd);
	if (r < 0) {
		close(fd);
		return -e;
	}
	return fd;
}

int admin_daemon_running(const char *dir)
{
	if (store_uri_is_pg(dir)) {
		char host[256], local[4096];
		return shared_mount(dir, host, sizeof(host), local, sizeof(local));
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int fd = openat(dfd, "LOCK", O_RDONLY | O_CLOEXEC);
	close(dfd);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int r = 0;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		r = errno == EWOULDBLOCK ? 1 : -errno;
	close(fd);
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("tpdefs-admin (tpdefs) %s, backing format %d\n", TPDEFS_VERSION,
		       STORE_FORMAT_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		/* a PostgreSQL URI's password never shows in ps: work on a copy, scrub argv */
		char *args[64];
		if (argc - 1 > 64) {
			fprintf(stderr, "tpdefs-admin: too many arguments\n");
			return 1;
		}
		for (int k = 1; k < argc; k++) {
			args[k - 1] = argv[k];
			if (store_uri_is_pg(argv[k])) {
				args[k - 1] = strdup(argv[k]);
				if (!args[k - 1]) {
					fprintf(stderr, "tpdefs-admin: out of memory\n");
					return 1;
				}
				store_uri_scrub(argv[k]);
			}
		}
		return cmds[i].fn(argc - 1, args);
	}
	fprintf(stderr, "tpdefs-admin: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 1;
}
