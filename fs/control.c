/* control.c - the control socket BACKING/control.sock (protocol in docs/BACKING.md).
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
#include <sys/un.h>
#include <unistd.h>

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
	int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", store_dir(f->st),
			 STORE_SOCK_NAME);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s",
			     store_dirfd(f->st), STORE_SOCK_NAME);
	return n > 0 && (size_t)n < sizeof(sa->sun_path) ? 0 : -ENAMETOOLONG;
}

static void say(int fd, const char *s)
{
	io_write_full(fd, s, strlen(s));
}

static void serve(ctl *c, int fd)
{
	char line[256];
	size_t n = 0;
	/* a client that never sends a full line does not block the daemon for long */
	while (n < sizeof(line) - 1) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 5000) <= 0)
			return;
		ssize_t k = read(fd, line + n, sizeof(line) - 1 - n);
		if (k <= 0)
			return;
		n += (size_t)k;
		if (memchr(line, '\n', n))
			break;
	}
	line[n] = 0;
	char *nl = strpbrk(line, "\r\n");
	if (nl)
		*nl = 0;
	fs *f = c->f;
	char buf[512];
	if (!strcmp(line, "PING")) {
		say(fd, "OK tpdefs " TPDEFS_VERSION "\n");
	} else if (!strcmp(line, "STATUS") || !strcmp(line, "FLUSH")) {
		if (!strcmp(line, "FLUSH")) {
			char *rep = NULL;
			int r = encq_flush(f->q, &rep);
			if (rep)
				say(fd, rep);
			free(rep);
			if (r < 0) {
				snprintf(buf, sizeof(buf), "ERR flush: %s\n", strerror(-r));
				say(fd, buf);
				return;
			}
		}
		uint64_t q, qb, done;
		encq_status(f->q, &q, &qb, &done);
		store_totals t;
		store_totals_get(f->st, &t);
		snprintf(buf, sizeof(buf),
			 "OK files=%" PRIu64 " logical_bytes=%" PRIu64 " objects=%" PRIu64
			 " stored_bytes=%" PRIu64 " staged_files=%" PRIu64 " queued=%" PRIu64
			 " queued_bytes=%" PRIu64 " encoded=%" PRIu64 " unref_objects=%" PRIu64 "\n",
			 t.files, t.logical_bytes, t.objects, t.stored_bytes, t.staged_files, q, qb,
			 done, t.unref_objects);
		say(fd, buf);
	} else {
		say(fd, "ERR unknown command (PING, STATUS, FLUSH)\n");
	}
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
		serve(c, fd);
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
	unlinkat(store_dirfd(f->st), STORE_SOCK_NAME, 0);
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(c->lfd, 8) < 0 || pipe2(c->wake, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	fchmodat(store_dirfd(f->st), STORE_SOCK_NAME, 0600, 0);
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
		unlinkat(store_dirfd(c->f->st), STORE_SOCK_NAME, 0);
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
	unlinkat(store_dirfd(c->f->st), STORE_SOCK_NAME, 0);
	free(c);
}
