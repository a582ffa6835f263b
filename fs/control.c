/* control.c - the control socket BACKING/control.sock (protocol in docs/FORMAT.md, backing directory).
 * One connection at a time: commands are rare and flush is meant to block. */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "gc.h"
#include "io.h"

struct ctl {
	fs *f;
	int lfd;
	int wake[2];
	pthread_t th;
};

/* sun_path is ~108 bytes: long backing paths go through the directory fd instead. */
static int sock_addr(fs *f, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", store_local_dir(f->st),
			 STORE_SOCK_NAME);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s",
			     store_local_dirfd(f->st), STORE_SOCK_NAME);
	return n > 0 && (size_t)n < sizeof(sa->sun_path) ? 0 : -ENAMETOOLONG;
}

static void say(int fd, const char *s)
{
	io_write_full(fd, s, strlen(s));
}

/* ---- GC [max_chain=N] [dry_run=1]: the core gc in-process (tpdefs-admin gc, docs/ADMIN.md) ---- */

typedef struct ctl_gc {
	ctl *c;
	int fd;
} ctl_gc;

static void gc_say(ctl_gc *g, const char *s)
{
	/* MSG_NOSIGNAL: a client that went away must not kill the daemon */
	size_t len = strlen(s), off = 0;
	while (off < len) {
		ssize_t k = send(g->fd, s + off, len - off, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		off += (size_t)k;
	}
}

static void gc_line(void *ctx, const char *text)
{
	gc_say(ctx, text);
}

static void gc_progress(void *ctx, uint64_t done, uint64_t total)
{
	char b[96];
	snprintf(b, sizeof(b), "PROGRESS %" PRIu64 " %" PRIu64 "\n", done, total);
	gc_say(ctx, b);
}

static void gc_switched(void *ctx, uint64_t old, uint64_t nw, const uint64_t *inos, size_t n)
{
	ctl_gc *g = ctx;
	fs_nodes_repoint(g->c->f, old, nw, inos, n);
}

static void gc_quiesce(void *ctx)
{
	ctl_gc *g = ctx;
	fs *f = g->c->f;
	/* an encode in flight may read a replaced object as its base: let it finish (bounded) */
	for (int i = 0; i < 300; i++) {
		uint64_t q, qb, done;
		encq_status(f->q, &q, &qb, &done);
		if (!q)
			break;
		usleep(100000);
	}
	fs_nodes_barrier(f);
}

/* Stop when unmounting or when the client went away (nothing is lost either way). */
static int gc_cancelled(void *ctx)
{
	ctl_gc *g = ctx;
	struct pollfd p[2] = {{g->c->wake[0], POLLIN, 0}, {g->fd, POLLRDHUP, 0}};
	if (poll(p, 2, 0) <= 0)
		return 0;
	return p[0].revents || (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void serve_gc(ctl *c, int fd, const char *args)
{
	gc_opts o;
	memset(&o, 0, sizeof(o));
	o.online = 1;
	o.ch = c->f->ch;
	o.max_chain = c->f->o->max_chain;
	const char *p;
	if ((p = strstr(args, "max_chain=")))
		o.max_chain = (unsigned)strtoul(p + 10, NULL, 10);
	if (strstr(args, "dry_run=1"))
		o.dry_run = 1;
	ctl_gc g = {c, fd};
	o.hooks = (gc_hooks){&g, gc_line, gc_progress, gc_switched, gc_quiesce, gc_cancelled};
	gc_result res;
	pthread_mutex_lock(&c->f->gcmu); /* waits for a layout pass in progress */
	int r = gc_run(c->f->st, &o, &res);
	pthread_mutex_unlock(&c->f->gcmu);
	char buf[512];
	if (r < 0)
		snprintf(buf, sizeof(buf), "ERR gc: %s\n", strerror(-r));
	else
		snprintf(buf, sizeof(buf),
			 "OK rebased=%" PRIu64 " keyframes=%" PRIu64 " skipped=%" PRIu64
			 " freed_objects=%" PRIu64 " freed_bytes=%" PRIu64 " orphan_blobs=%" PRIu64
			 " tmp_files=%" PRIu64 " staging_files=%" PRIu64 " stored_before=%" PRIu64
			 " stored_after=%" PRIu64 " dry_run=%d\n",
			 res.rebased, res.keyframes, res.skipped, res.freed_objects, res.freed_bytes,
			 res.orphan_blobs, res.tmp_files, res.staging_files, res.stored_before,
			 res.stored_after, o.dry_run);
	gc_say(&g, buf);
}

/* The command line into line (without its newline); -1 if none came. A client that never
 * sends a full line does not block the daemon for long. */
static int read_cmd(int fd, char *line, size_t size)
{
	size_t n = 0;
	while (n < size - 1) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 5000) <= 0)
			return -1;
		ssize_t k = read(fd, line + n, size - 1 - n);
		if (k <= 0)
			return -1;
		n += (size_t)k;
		if (memchr(line, '\n', n))
			break;
	}
	line[n] = 0;
	char *nl = strpbrk(line, "\r\n");
	if (nl)
		*nl = 0;
	return 0;
}

static void serve(ctl *c, int fd, char *line)
{
	fs *f = c->f;
	char buf[512];
	if (!strcmp(line, "PING")) {
		say(fd, "OK tpdefs " TPDEFS_VERSION "\n");
	} else if (!strcmp(line, "STATUS") || !strcmp(line, "FLUSH")) {
		int flush = !strcmp(line, "FLUSH");
		if (flush && !f->o->ro) {
			char *rep = NULL;
			unsigned failed = 0;
			int r = encq_flush(f->q, &rep, &failed);
			if (rep)
				say(fd, rep);
			free(rep);
			if (r < 0) {
				snprintf(buf, sizeof(buf), "ERR flush: %s\n", strerror(-r));
				say(fd, buf);
				return;
			}
			if (failed) {
				snprintf(buf, sizeof(buf), "ERR %u encodes failed; those files stay in "
					 "staging (readable) and are retried at the next flush or mount\n",
					 failed);
				say(fd, buf);
				return;
			}
		}
		uint64_t q, qb, done;
		encq_status(f->q, &q, &qb, &done);
		store_totals t;
		store_totals_get(f->st, &t);
		if (flush && f->o->ro && t.staged_files) {
			/* a ro mount encodes nothing: files a crashed daemon left staged are durable
			 * in staging and stay there until a read-write mount */
			snprintf(buf, sizeof(buf), "ERR read-only mount: %" PRIu64 " files left staged "
				 "by an earlier daemon stay in staging (readable) until a read-write "
				 "mount encodes them\n", t.staged_files);
			say(fd, buf);
			return;
		}
		snprintf(buf, sizeof(buf),
			 "OK files=%" PRIu64 " logical_bytes=%" PRIu64 " objects=%" PRIu64
			 " stored_bytes=%" PRIu64 " staged_files=%" PRIu64 " queued=%" PRIu64
			 " queued_bytes=%" PRIu64 " encoded=%" PRIu64 " unref_objects=%" PRIu64 "\n",
			 t.files, t.logical_bytes, t.objects, t.stored_bytes, t.staged_files, q, qb,
			 done, t.unref_objects);
		say(fd, buf);
	} else if (!strncmp(line, "GC", 2) && (!line[2] || line[2] == ' ')) {
		if (f->o->ro)
			say(fd, "ERR gc: read-only mount; remount read-write or unmount, then run gc\n");
		else
			serve_gc(c, fd, line + 2);
	} else {
		say(fd, "ERR unknown command (PING, STATUS, FLUSH, GC)\n");
	}
}

/* Only root and the user the daemon runs as (who mounted the store) may flush, gc or read the
 * store's totals. BACKING (0700) and the socket's mode (0600) keep others out already; this
 * still holds when an administrator opened those up. */
static int peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || len != sizeof(cr))
		return 0;
	return cr.uid == 0 || cr.uid == geteuid();
}

static void *loop(void *arg)
{
	ctl *c = arg;
	for (;;) {
		struct pollfd p[2] = {{c->lfd, POLLIN, 0}, {c->wake[0], POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		/* the command is read either way: closing with it unread would reset the
		 * connection before the client reads the answer */
		char line[256];
		if (read_cmd(fd, line, sizeof(line)) == 0) {
			if (peer_allowed(fd))
				serve(c, fd, line);
			else
				say(fd, "ERR permission denied: only root and the user that mounted "
					"this store may use its control socket\n");
		}
		close(fd);
	}
	return NULL;
}

int ctl_start(fs *f, ctl **out)
{
	ctl *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->f = f;
	c->wake[0] = c->wake[1] = -1;
	struct sockaddr_un sa;
	int r = sock_addr(f, &sa);
	if (r < 0)
		goto fail;
	unlinkat(store_local_dirfd(f->st), STORE_SOCK_NAME, 0);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* bind creates the socket file with the socket inode's mode (less the umask): 0600 from
	 * the start, not only after the fchmodat below */
	if (c->lfd < 0 || fchmod(c->lfd, 0600) < 0 ||
	    bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(c->lfd, 8) < 0 || pipe2(c->wake, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	fchmodat(store_local_dirfd(f->st), STORE_SOCK_NAME, 0600, 0);
	r = -pthread_create(&c->th, NULL, loop, c);
	if (r < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->wake[0] >= 0) {
		close(c->wake[0]);
		close(c->wake[1]);
	}
	free(c);
	return r;
}

void ctl_quiesce(ctl *c)
{
	if (c)
		unlinkat(store_local_dirfd(c->f->st), STORE_SOCK_NAME, 0);
}

void ctl_stop(ctl *c)
{
	if (!c)
		return;
	char b = 1;
	if (write(c->wake[1], &b, 1) < 0) {
		/* the thread still exits when the listening socket closes below */
	}
	pthread_join(c->th, NULL);
	close(c->lfd);
	close(c->wake[0]);
	close(c->wake[1]);
	unlinkat(store_local_dirfd(c->f->st), STORE_SOCK_NAME, 0);
	free(c);
}
