/* main.c - mount.tpdefs: options, backing directory, mount, daemonize, serve, clean exit. */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "objfile.h"
#include "chain_store.h"
#include "ingest.h"
#include "store_uri.h"

#define MAIN_STR_(x) #x
#define MAIN_STR(x) MAIN_STR_(x) /* a default's value in the help text */

static const char usage[] =
	"usage: mount.tpdefs BACKING MOUNTPOINT [-o OPT[,OPT...]] [-f] [-d]\n"
	"\n"
	"Mount a tpdefs filesystem: files written to MOUNTPOINT are stored in BACKING as TPDE\n"
	"deltas against their predecessor versions (indexed by SQLite); reads return the\n"
	"original bytes. An empty or missing BACKING is initialised (mode 0700).\n"
	"\n"
	"  -f              stay in the foreground\n"
	"  -d              debug: foreground, log FUSE requests and encodes to stderr\n"
	"  -o OPTS         comma-separated options (below)\n"
	"  -n -s -v        accepted for mount(8) compatibility (ignored)\n"
	"  -t TYPE         accepted for mount(8) compatibility (ignored)\n"
	"  -h, --help      this text\n"
	"  -V, --version   print the version\n"
	"\n"
	"tpdefs options:\n"
	"  cache_size=BYTES     decoded chunks held in memory (K/M/G suffixes; default 256M)\n"
	"  workers=N            FUSE worker threads (default 8)\n"
	"  max_chain=N          delta chain depth bound; at the limit a file is coded against an ancestor at depth <= N/2 (default " MAIN_STR(INGEST_DEFAULT_MAX_CHAIN) ")\n"
	"  staging_limit=BYTES  writers wait while this many closed bytes await encoding\n"
	"                       (K/M/G suffixes; default 4G)\n"
	"  debounce_ms=N        delay between the last close and encoding (default 700)\n"
	"  newest_keyframe=0|1  1: store each new version as its chain's keyframe and re-code its\n"
	"                       predecessor as a delta against it, so the checkpoint a job resumes\n"
	"                       from reads fastest; 0: new versions are deltas (default 1)\n"
	"  debug                as -d\n"
	"FUSE / kernel options:\n"
	"  allow_other          let other users access the mount (their permissions are checked)\n"
	"  default_permissions  always on, whatever the options: the kernel checks every access\n"
	"                       against the file modes, owners and groups as on a local\n"
	"                       filesystem (accepted for old fstab lines; cannot be turned off)\n"
	"  ro, rw               read-only / read-write mount (ro: BACKING is left as it is; no\n"
	"                       recovery, encoding or gc)\n"
	"  local_dir=DIR        BACKING a PostgreSQL URI (a shared store): this node's directory for\n"
	"                       the lock and the control socket (default /var/lib/tpdefs/ID, ID from\n"
	"                       the URI without its password and the mount point)\n"
	"  blob_cache=BYTES     blobs in an S3 bucket: fetched blocks kept in local_dir/blobcache\n"
	"                       (K/M/G suffixes; default 10G; kept across mounts)\n"
	"  s3_credentials=FILE  blobs in an S3 bucket: an AWS-style credentials file, read again\n"
	"                       when it changes (default: the environment's AWS_ACCESS_KEY_ID and\n"
	"                       AWS_SECRET_ACCESS_KEY, read once)\n"
	"  fsname=NAME          source name shown in /proc/mounts (default BACKING, a URI without\n"
	"                       its password)\n"
	"  subtype=NAME         type suffix shown in /proc/mounts (default tpdefs)\n"
	"  suid, nosuid, dev, nodev, exec, noexec   passed to the kernel\n"
	"Accepted from mount(8) / fstab and ignored:\n"
	"  defaults auto noauto user nouser users owner group nofail _netdev async sync\n"
	"  atime noatime relatime strictatime lazytime diratime nodiratime x-* (x-systemd.*)\n"
	"  comment=* user=NAME helper=*\n"
	"\n"
	"Unmount with: umount MOUNTPOINT  or  fusermount3 -u MOUNTPOINT\n"
	"Log: in the background the daemon writes its log lines to stderr when that is a regular\n"
	"file (mount.tpdefs BACKING MNT 2>>/var/log/tpdefs.log); otherwise run it with -f.\n"
	"fstab:  /data/ckpt.tpdefs  /mnt/ckpt  tpdefs  defaults,cache_size=1G  0 0\n";

/* Log lines of the blob client (failed tries of a request) once the daemon serves. */
static void blob_log(void *ctx, const char *msg)
{
	const fs *f = ctx;
	if (__atomic_load_n(&f->serving, __ATOMIC_RELAXED))
		fprintf(stderr, "tpdefs: %s\n", msg);
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	uint64_t mul = 1;
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case 't': case 'T': mul = 1ull << 40; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' ? (end[1] == 'B' ? 2 : 1) : 1;
	if (*end || (v && mul > UINT64_MAX / v))
		return -1;
	*out = v * mul;
	return 0;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static void add_kopt(fs_opts *o, const char *opt)
{
	size_t l = strlen(o->kopts);
	snprintf(o->kopts + l, sizeof(o->kopts) - l, "%s%s", l ? "," : "", opt);
}

static int one_opt(fs_opts *o, char *opt)
{
	static const char *const ignored[] = {
		"defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group",
		"nofail", "_netdev", "async", "sync", "atime", "noatime", "relatime",
		"norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime",
		"diratime", "nodiratime", "dirsync", "loud", "silent", "rw", NULL};
	static const char *const kernel[] = {"suid", "nosuid", "dev", "nodev", "exec", "noexec",
					    NULL};
	if (!*opt)
		return 0;
	char *eq = strchr(opt, '=');
	const char *val = eq ? eq + 1 : NULL;
	size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
#define KEY(k) (klen == strlen(k) && !strncmp(opt, k, klen))
	if (KEY("cache_size") && val)
		return parse_size(val, &o->cache_size);
	if (KEY("staging_limit") && val)
		return parse_size(val, &o->staging_limit);
	if (KEY("workers") && val)
		return parse_uint(val, 1, 1024, &o->workers);
	if (KEY("max_chain") && val)
		return parse_uint(val, 0, 1000, &o->max_chain);
	if (KEY("debounce_ms") && val)
		return parse_uint(val, 0, 600000, &o->debounce_ms);
	if (KEY("newest_keyframe") && val)
		return parse_uint(val, 0, 1, &o->newest_keyframe);
	if (KEY("local_dir") && val) {
		if (strlen(val) >= sizeof(o->local_dir) || val[0] != '/')
			return -1;
		strcpy(o->local_dir, val);
		return 0;
	}
	if (KEY("blob_cache") && val) {
		o->blob_cache_set = 1;
		return parse_size(val, &o->blob_cache);
	}
	if (KEY("s3_credentials") && val) {
		if (strlen(val) >= sizeof(o->s3_credentials) || val[0] != '/')
			return -1;
		strcpy(o->s3_credentials, val);
		return 0;
	}
	if (KEY("fsname") && val) {
		if (strlen(val) >= sizeof(o->fsname) || strchr(val, ','))
			return -1;
		strcpy(o->fsname, val);
		return 0;
	}
	if (KEY("subtype") && val) {
		if (strlen(val) >= sizeof(o->subtype) || strchr(val, ','))
			return -1;
		strcpy(o->subtype, val);
		return 0;
	}
	if (val) {
		if (!strncmp(opt, "x-", 2) || KEY("comment") || KEY("user") || KEY("helper"))
			return 0; /* mount(8) passes user=NAME for user mounts */
		return -1;
	}
	if (!strcmp(opt, "allow_other"))
		o->allow_other = 1;
	else if (!strcmp(opt, "default_permissions"))
		return 0; /* always on (see main) */
	else if (!strcmp(opt, "nodefault_permissions") || !strcmp(opt, "no_default_permissions")) {
		fprintf(stderr, "mount.tpdefs: permission checks cannot be turned off "
			"(default_permissions is always on)\n");
		return -1;
	} else if (!strcmp(opt, "ro"))
		o->ro = 1;
	else if (!strcmp(opt, "debug"))
		o->debug = o->foreground = 1;
	else if (!strncmp(opt, "x-", 2))
		return 0;
	else {
		for (size_t i = 0; kernel[i]; i++)
			if (!strcmp(opt, kernel[i])) {
				add_kopt(o, opt);
				return 0;
			}
		for (size_t i = 0; ignored[i]; i++)
			if (!strcmp(opt, ignored[i]))
				return 0;
		return -1;
	}
	return 0;
#undef KEY
}

static int parse_opts(fs_opts *o, const char *list)
{
	char *copy = strdup(list);
	if (!copy) {
		fprintf(stderr, "mount.tpdefs: out of memory\n");
		return -1;
	}
	char *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (one_opt(o, t) < 0) {
			fprintf(stderr, "mount.tpdefs: invalid or unknown option '%s' (see --help)\n", t);
			free(copy);
			return -1;
		}
	}
	free(copy);
	return 0;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo: unescape in place. */
static void unescape_octal(char *s)
{
	char *w = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*w++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*w++ = *p;
		}
	}
	*w = 0;
}

/* Defence in depth for the mount just made: the daemon does not check permissions itself, so
 * it must not serve a mount whose kernel superblock lacks default_permissions (whatever built
 * the options). The topmost FUSE mount on mnt in /proc/self/mountinfo decides. 1: present,
 * 0: absent, -errno: cannot tell (refused too). *dev gets that mount's "MAJ:MIN" ("" if none). */
static int mount_checks_permissions(const char *mnt, char dev[32])
{
	dev[0] = 0;
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	if (!mi)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	int found = -ENOENT;
	while (getline(&line, &cap, mi) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS */
		char *save = NULL, *f[5], *t;
		int n = 0;
		for (t = strtok_r(line, " \n", &save); t && n < 5; t = strtok_r(NULL, " \n", &save))
			f[n++] = t;
		if (n < 5) /* t: the field after MOUNTPOINT */
			continue;
		unescape_octal(f[4]);
		if (strcmp(f[4], mnt))
			continue;
		while (t && strcmp(t, "-"))
			t = strtok_r(NULL, " \n", &save);
		char *fstype = t ? strtok_r(NULL, " \n", &save) : NULL;
		char *source = fstype ? strtok_r(NULL, " \n", &save) : NULL;
		char *super = source ? strtok_r(NULL, " \n", &save) : NULL;
		if (!super || strncmp(fstype, "fuse", 4))
			continue;
		found = 0; /* a later line is a mount on top: it decides */
		snprintf(dev, 32, "%s", f[2]);
		char *s2 = NULL;
		for (char *o = strtok_r(super, ",", &s2); o; o = strtok_r(NULL, ",", &s2))
			if (!strcmp(o, "default_permissions"))
				found = 1;
	}
	free(line);
	fclose(mi);
	return found;
}

/* The kernel reads ahead of a FUSE file by the mount's bdi read_ahead_kb, 128 KiB by default,
 * and never asks for more than that window at once: a cold mmap walk then waits one daemon round
 * trip per 128 KiB fault-around. Raise it to the request size the daemon accepts (max_readahead;
 * the kernel caps the window at it). Needs root (sysfs); best effort otherwise. */
static void mount_set_readahead(const char *dev, int debug)
{
	char path[96];
	snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
	FILE *fp = dev[0] ? fopen(path, "we") : NULL;
	int ok = fp && fprintf(fp, "%u\n", FS_IO_MAX >> 10) > 0;
	if (fp && fclose(fp) != 0)
		ok = 0;
	if (!ok && debug)
		fprintf(stderr, "mount.tpdefs: cannot set %s: kernel read-ahead stays at its default\n",
			dev[0] ? path : "read_ahead_kb (no bdi found)");
}

static void obj_gone(void *ctx, uint64_t obj)
{
	fs *f = ctx;
	if (f->ch)
		chain_forget(f->ch, obj);
}

int main(int argc, char **argv)
{
	fs_opts o;
	memset(&o, 0, sizeof(o));
	o.cache_size = 256ull << 20;
	o.workers = 8;
	o.max_chain = INGEST_DEFAULT_MAX_CHAIN;
	o.staging_limit = 4ull << 30;
	o.debounce_ms = 700;
	o.newest_keyframe = INGEST_DEFAULT_NEWEST_KEYFRAME;

	static const struct option lopts[] = {{"help", no_argument, NULL, 'h'},
					      {"version", no_argument, NULL, 'V'},
					      {NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "+o:fdnsvt:hV", lopts, NULL)) != -1 ||
	       optind < argc) {
		if (c == -1) {
			/* positional argument: options may follow it (mount(8) order) */
			if (!o.backing)
				o.backing = argv[optind];
			else if (!o.mountpoint)
				o.mountpoint = argv[optind];
			else {
				fprintf(stderr, "mount.tpdefs: unexpected argument '%s'\n", argv[optind]);
				return 1;
			}
			optind++;
			continue;
		}
		switch (c) {
		case 'o':
			if (parse_opts(&o, optarg) < 0)
				return 1;
			break;
		case 'f':
			o.foreground = 1;
			break;
		case 'd':
			o.debug = o.foreground = 1;
			break;
		case 'n': case 's': case 'v': case 't':
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("mount.tpdefs (tpdefs) %s\nbacking format %d, object format %d, libfuse %s\n",
			       TPDEFS_VERSION, STORE_FORMAT_VERSION, OBJ_FORMAT_VERSION,
			       fuse_pkgversion());
			return 0;
		default:
			fprintf(stderr, "%s", usage);
			return 1;
		}
	}
	if (!o.backing || !o.mountpoint) {
		fprintf(stderr, "mount.tpdefs: need BACKING and MOUNTPOINT\n%s", usage);
		return 1;
	}
	struct stat mst;
	if (stat(o.mountpoint, &mst) < 0) {
		fprintf(stderr, "mount.tpdefs: mountpoint %s: %s\n", o.mountpoint, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(mst.st_mode)) {
		fprintf(stderr, "mount.tpdefs: mountpoint %s: not a directory\n", o.mountpoint);
		return 1;
	}
	/* resolved now: once mounted, resolving the path would wait for this daemon */
	char mnt_real[PATH_MAX];
	if (!realpath(o.mountpoint, mnt_real)) {
		fprintf(stderr, "mount.tpdefs: mountpoint %s: %s\n", o.mountpoint, strerror(errno));
		return 1;
	}
	/* A PostgreSQL URI: its password never shows in ps (argv scrubbed in place, the daemon
	 * keeps its own copy), in /proc/mounts or in a message. */
	char *backing_copy = NULL;
	store_uri uri;
	int shared = store_uri_is_pg(o.backing);
	if (shared) {
		char uerr[256];
		if (store_uri_parse(o.backing, &uri, uerr, sizeof(uerr)) < 0) {
			fprintf(stderr, "mount.tpdefs: %s\n", uerr);
			return 1;
		}
		if (!(backing_copy = strdup(o.backing))) {
			fprintf(stderr, "mount.tpdefs: out of memory\n");
			return 1;
		}
		for (int i = 1; i < argc; i++)
			store_uri_scrub(argv[i]);
		o.backing = backing_copy;
		if (!o.local_dir[0]) {
			uint64_t h = uri.id;
			for (const char *p = mnt_real; *p; p++)
				h = (h ^ (unsigned char)*p) * 1099511628211ull;
			snprintf(o.local_dir, sizeof(o.local_dir), "/var/lib/tpdefs/%016llx",
				 (unsigned long long)h);
		}
	} else if (o.local_dir[0]) {
		fprintf(stderr, "mount.tpdefs: local_dir is for a BACKING that is a PostgreSQL URI; "
			"%s is a directory\n", o.backing);
		return 1;
	}
	const char *src = shared ? uri.redacted : o.backing;
	if (!o.fsname[0] && strlen(src) < sizeof(o.fsname))
		memcpy(o.fsname, src, strlen(src) + 1);
	else if (!o.fsname[0])
		strcpy(o.fsname, "tpdefs");
	if (strchr(o.fsname, ','))
		snprintf(o.fsname, sizeof(o.fsname), "tpdefs");
	if (!o.subtype[0])
		strcpy(o.subtype, "tpdefs");

	/* Everything this process creates is in BACKING (metadata, staging, objects, the control
	 * socket): private to the mounting user whatever umask it inherited. */
	umask(077);
	/* one staging fd per file being written, plus object readers: lift the soft limit */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	fs f;
	memset(&f, 0, sizeof(f));
	f.o = &o;
	char err[1024] = "";
	/* ro: the backing directory is left exactly as it is (no recovery, no encoding, no gc);
	 * files a crashed daemon left staged are served from staging as they are. */
	store_opts so = {.local_dir = shared ? o.local_dir : NULL,
			 .blob_cache = o.blob_cache,
			 .blob_cache_set = o.blob_cache_set,
			 .s3_credentials = o.s3_credentials[0] ? o.s3_credentials : NULL,
			 .log = blob_log,
			 .log_ctx = &f};
	int r = store_open_opts(o.backing, &so, (o.ro ? STORE_O_RDONLY : 0) | STORE_O_SHARE, &f.st,
				err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "mount.tpdefs: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	uint64_t *staged = NULL;
	size_t nstaged = 0;
	r = o.ro ? 0 : store_recover(f.st, &staged, &nstaged);
	if (r < 0) {
		fprintf(stderr, "mount.tpdefs: %s: recovery failed: %s\n", o.backing, strerror(-r));
		store_close(f.st);
		return 1;
	}
	if (fs_nodes_init(&f) < 0) {
		fprintf(stderr, "mount.tpdefs: out of memory\n");
		store_close(f.st);
		return 1;
	}
	pthread_mutex_init(&f.gcmu, NULL);
	pthread_mutex_init(&f.hmu, NULL);
	f.timeout = shared ? 0.5 : 10.0; /* other nodes see a change within a second */

	/* default_permissions unconditionally: the daemon serves every request the kernel sends
	 * (it checks no modes itself), so the kernel's checks are what keeps users out of files
	 * the modes deny, with allow_other or, for processes without CAP_DAC_OVERRIDE, without. */
	char fopts[1024];
	snprintf(fopts, sizeof(fopts), "fsname=%s,subtype=%s,default_permissions%s%s%s%s", o.fsname,
		 o.subtype, o.allow_other ? ",allow_other" : "", o.ro ? ",ro" : "",
		 o.kopts[0] ? "," : "", o.kopts);
	char *fargv[] = {argv[0], "-o", fopts, o.debug ? "-d" : NULL, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(o.debug ? 4 : 3, fargv);
	int ret = 1;
	f.se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &f);
	if (!f.se) {
		fprintf(stderr, "mount.tpdefs: cannot create the FUSE session (options: %s)\n", fopts);
		goto out_nodes;
	}
	if (fuse_set_signal_handlers(f.se) != 0) {
		fprintf(stderr, "mount.tpdefs: cannot set signal handlers\n");
		goto out_session;
	}
	if (fuse_session_mount(f.se, o.mountpoint) != 0) {
		fprintf(stderr, "mount.tpdefs: cannot mount %s on %s\n", o.backing, o.mountpoint);
		goto out_signals;
	}
	char bdi[32];
	r = mount_checks_permissions(mnt_real, bdi);
	if (r != 1) {
		fprintf(stderr, "mount.tpdefs: %s: %s; not serving it\n", o.mountpoint,
			r == 0 ? "the kernel mount lacks default_permissions"
			       : "cannot confirm in /proc/self/mountinfo that the kernel checks "
				 "permissions");
		goto out_unmount;
	}
	mount_set_readahead(bdi, o.debug);
	/* Fork only now: every error so far was reported with exit status 1. The daemon keeps
	 * logging to stderr when it is a regular file (mount.tpdefs ... 2>>LOG), which
	 * fuse_daemonize would point at /dev/null; a terminal or a pipe is let go, so that no
	 * caller waits on the daemon's end of it. */
	struct stat est;
	int keep_log = !o.foreground && fstat(2, &est) == 0 && S_ISREG(est.st_mode)
			       ? fcntl(2, F_DUPFD_CLOEXEC, 3) : -1;
	if (fuse_daemonize(o.foreground) != 0) {
		fprintf(stderr, "mount.tpdefs: cannot daemonize\n");
		if (keep_log >= 0)
			close(keep_log);
		goto out_unmount;
	}
	if (keep_log >= 0) {
		dup2(keep_log, 2);
		close(keep_log);
	}
	__atomic_store_n(&f.serving, 1, __ATOMIC_RELAXED);
	if (!o.foreground && store_reopen(f.st) < 0)
		goto out_unmount;
	chain_opts co = {.cache_bytes = (size_t)o.cache_size, .readahead = 4, .max_open = 256,
			.readahead_bytes = 8u << 20, .prefault_bytes = FS_PREFAULT};
	f.ch = chain_new(&co, chain_store_open, f.st);
	if (!f.ch || encq_new(&f, &f.q) < 0) {
		fprintf(stderr, "mount.tpdefs: out of memory\n");
		goto out_threads;
	}
	store_set_obj_gone(f.st, obj_gone, &f);
	for (size_t i = 0; i < nstaged; i++)
		encq_push(f.q, staged[i], 0);
	if (ctl_start(&f, &f.c) < 0 && o.debug)
		fprintf(stderr, "mount.tpdefs: control socket unavailable\n");
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc)
		goto out_threads;
	fuse_loop_cfg_set_max_threads(lc, o.workers);
	fuse_loop_cfg_set_idle_threads(lc, o.workers / 2 ? o.workers / 2 : 1);
	ret = fuse_session_loop_mt(f.se, lc) == 0 ? 0 : 1;
	fuse_loop_cfg_destroy(lc);
out_threads:
	/* queued encodes stay staged; the next mount resumes them */
	ctl_quiesce(f.c); /* no new clients: a new mount need not wait for us */
	encq_stop(f.q);   /* also wakes a running flush */
	ctl_stop(f.c);
	encq_free(f.q);
out_unmount:
	fuse_session_unmount(f.se);
out_signals:
	fuse_remove_signal_handlers(f.se);
out_session:
	fuse_session_destroy(f.se);
out_nodes:
	store_set_obj_gone(f.st, NULL, NULL);
	fs_nodes_free(&f);
	pthread_mutex_destroy(&f.gcmu);
	if (f.ch)
		chain_free(f.ch);
	free(staged);
	if (store_blobs_remote(f.st)) {
		char rep[512];
		store_blob_report(f.st, rep, sizeof(rep));
		fprintf(stderr, "tpdefs: %s\n", rep);
	}
	store_close(f.st);
	fuse_opt_free_args(&args);
	free(backing_copy);
	return ret;
}
