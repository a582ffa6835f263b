/* s3_creds.c - the keys an S3 client signs with: from the environment (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), loaded once, or from an AWS-style credentials file
 * ([profile] sections), kept current with the file: short-lived keys (session tokens, keys an
 * operator, aws-vault or a credential_process writer rotates) go on working without a remount.
 *
 * A request looks at the file before it signs when the last look is period_us old (default 1 s):
 * a stat, and when the file is another (new inode, size, mtime or ctime) it is read again with
 * the same profile. A 401/403 looks at once and reads the file whatever its stat says; when the
 * keys changed the request is sent once more (s3.c). A file that cannot be read or holds no keys
 * for the profile (missing, half-written, garbage) keeps the keys loaded before; that is logged
 * once until a read works again. The locks are described at s3_credsrc (s3_internal.h).
 * Credentials never appear in a message or a log line; the file's bytes and every copy of the
 * keys are wiped once used.
 */
#include "s3_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CRED_FILE_MAX (1u << 20)

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = 0;
	return s;
}

static void stamp_of(const struct stat *st, s3_cred_stamp *sp)
{
	sp->valid = 1;
	sp->dev = st->st_dev;
	sp->ino = st->st_ino;
	sp->size = st->st_size;
	sp->mtime = st->st_mtim;
	sp->ctime = st->st_ctim;
}

static int stamp_same(const s3_cred_stamp *a, const s3_cred_stamp *b)
{
	return a->valid && b->valid && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* An AWS-style credentials file: [name] or [profile name] sections of key = value lines. *sp:
 * the file as opened, before its bytes are read (a change while reading shows at the next look);
 * not valid when it could not be opened. */
static int creds_from_file(s3_creds *cr, const char *path, const char *profile,
			   s3_cred_stamp *sp, char *err, size_t errlen)
{
	sp->valid = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		s3_say(err, errlen, "s3: credentials file %s: %s", path, strerror(e));
		return -EACCES;
	}
	struct stat st;
	if (fstat(fd, &st) == 0)
		stamp_of(&st, sp);
	char *buf = malloc(CRED_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, CRED_FILE_MAX - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			OPENSSL_cleanse(buf, n); /* what was read so far may hold a secret */
			free(buf);
			s3_say(err, errlen, "s3: credentials file %s: %s", path, strerror(e));
			return -EACCES;
		}
		if (r == 0 || (n += (size_t)r) == CRED_FILE_MAX)
			break;
	}
	close(fd);
	buf[n] = 0;
	int in = 0, rc = 0;
	for (char *line = buf, *next; line && !rc; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		char *l = trim(line);
		if (!*l || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			char *e = strchr(l, ']');
			if (!e)
				continue;
			*e = 0;
			char *name = trim(l + 1);
			if (!strncmp(name, "profile ", 8))
				name = trim(name + 8);
			in = !strcmp(name, profile);
			continue;
		}
		char *eq = strchr(l, '=');
		if (!in || !eq)
			continue;
		*eq = 0;
		char *k = trim(l), *v = trim(eq + 1);
		if (!strcmp(k, "aws_access_key_id"))
			rc = s3_setstr(cr->access_key, sizeof(cr->access_key), v, strlen(v));
		else if (!strcmp(k, "aws_secret_access_key"))
			rc = s3_setstr(cr->secret, sizeof(cr->secret), v, strlen(v));
		else if (!strcmp(k, "aws_session_token"))
			rc = s3_setstr(cr->token, sizeof(cr->token), v, strlen(v));
	}
	OPENSSL_cleanse(buf, n);
	free(buf);
	if (rc || !cr->access_key[0] || !cr->secret[0]) {
		s3_say(err, errlen, "s3: credentials file %s: no profile [%s] with aws_access_key_id "
				    "and aws_secret_access_key", path, profile);
		return -EACCES;
	}
	return 0;
}

void s3_creds_wipe(s3_creds *cr)
{
	OPENSSL_cleanse(cr, sizeof(*cr));
}

static int creds_from_env(s3_creds *cr, char *err, size_t errlen)
{
	const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
	const char *tk = getenv("AWS_SESSION_TOKEN");
	if (!ak || !ak[0] || !sk || !sk[0]) {
		s3_say(err, errlen, "s3: no credentials: set AWS_ACCESS_KEY_ID and "
				    "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if any), or name a "
				    "file with credentials=FILE in the URI");
		return -EACCES;
	}
	if (s3_setstr(cr->access_key, sizeof(cr->access_key), ak, strlen(ak)) ||
	    s3_setstr(cr->secret, sizeof(cr->secret), sk, strlen(sk)) ||
	    (tk && s3_setstr(cr->token, sizeof(cr->token), tk, strlen(tk)))) {
		s3_say(err, errlen, "s3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or "
				    "AWS_SESSION_TOKEN is too long");
		return -EACCES;
	}
	return 0;
}

int s3_creds_init(s3 *c, int64_t period_us, char *err, size_t errlen)
{
	s3_credsrc *k = &c->cred;
	memset(k, 0, sizeof(*k));
	int rc;
	if (c->cfg.cred_file[0]) {
		/* the profile is fixed here: every reload reads the same one */
		const char *profile = c->cfg.profile[0] ? c->cfg.profile : getenv("AWS_PROFILE");
		if (!profile || !profile[0])
			profile = "default";
		if (s3_setstr(k->profile, sizeof(k->profile), profile, strlen(profile))) {
			s3_say(err, errlen, "s3: AWS_PROFILE is too long");
			return -EACCES;
		}
		rc = creds_from_file(&k->keys, c->cfg.cred_file, k->profile, &k->stamp, err,
				     errlen);
	} else {
		rc = creds_from_env(&k->keys, err, errlen);
	}
	if (rc) {
		s3_creds_wipe(&k->keys);
		return rc;
	}
	k->period_us = period_us;
	atomic_init(&k->next_us, s3_now_us() + period_us);
	pthread_mutex_init(&k->mu, NULL);
	pthread_mutex_init(&k->file_mu, NULL);
	return 0;
}

void s3_creds_fini(s3 *c)
{
	s3_credsrc *k = &c->cred;
	pthread_mutex_destroy(&k->mu);
	pthread_mutex_destroy(&k->file_mu);
	s3_creds_wipe(&k->keys);
}

/* Look at the file (force: read it whatever its stat says) and take the keys it holds when they
 * differ from the current ones. A look that fails keeps the current keys. */
static void look(s3 *c, int force)
{
	s3_credsrc *k = &c->cred;
	const char *path = c->cfg.cred_file;
	char msg[1400] = "";
	pthread_mutex_lock(&k->file_mu);
	struct stat st;
	s3_cred_stamp now = {0};
	int rc = 0;
	if (stat(path, &st) != 0) {
		int e = errno;
		s3_say(msg, sizeof(msg), "s3: credentials file %s: %s", path, strerror(e));
		rc = -EACCES;
	} else {
		stamp_of(&st, &now);
	}
	if (!rc && !force && stamp_same(&now, &k->stamp)) {
		pthread_mutex_unlock(&k->file_mu);
		return;
	}
	s3_creds *fresh = NULL;
	if (!rc) {
		/* on the heap: 4.6 KB of keys, and a look can run deep in a caller's stack */
		fresh = calloc(1, sizeof(*fresh));
		rc = fresh ? creds_from_file(fresh, path, k->profile, &now, msg, sizeof(msg))
			   : -ENOMEM;
		if (rc == -ENOMEM)
			s3_say(msg, sizeof(msg), "s3: credentials file %s: out of memory", path);
		else
			k->stamp = now; /* a bad file is not read again until it changes */
	}
	int changed = 0;
	if (!rc) {
		pthread_mutex_lock(&k->mu);
		changed = strcmp(fresh->access_key, k->keys.access_key) ||
			  strcmp(fresh->secret, k->keys.secret) ||
			  strcmp(fresh->token, k->keys.token);
		if (changed) {
			memcpy(&k->keys, fresh, sizeof(k->keys));
			k->gen++;
		}
		pthread_mutex_unlock(&k->mu);
	}
	if (fresh) {
		s3_creds_wipe(fresh);
		free(fresh);
	}
	int was_failing = k->failing;
	k->failing = rc != 0;
	pthread_mutex_unlock(&k->file_mu);
	/* said with no lock held: the log callback is the caller's */
	if (rc && !was_failing)
		s3_logf(c, "%s; keeping the keys loaded before (said once until the file can be read "
			   "again)", msg);
	else if (!rc && changed)
		s3_logf(c, "s3: credentials file %s changed: new keys loaded (profile [%s])", path,
			k->profile);
	else if (!rc && was_failing)
		s3_logf(c, "s3: credentials file %s can be read again: the same keys (profile [%s])",
			path, k->profile);
}

void s3_creds_get(s3 *c, s3_creds *out, uint64_t *gen)
{
	s3_credsrc *k = &c->cred;
	if (c->cfg.cred_file[0]) {
		int64_t t = s3_now_us(), due = atomic_load(&k->next_us);
		/* one thread moves the time of the next look on, and that thread looks */
		if (t >= due && atomic_compare_exchange_strong(&k->next_us, &due, t + k->period_us))
			look(c, 0);
	}
	pthread_mutex_lock(&k->mu);
	memcpy(out, &k->keys, sizeof(*out));
	*gen = k->gen;
	pthread_mutex_unlock(&k->mu);
}

int s3_creds_changed(s3 *c, uint64_t gen)
{
	s3_credsrc *k = &c->cred;
	if (!c->cfg.cred_file[0])
		return 0; /* the environment does not change under a running process */
	atomic_store(&k->next_us, s3_now_us() + k->period_us); /* this look is the periodic one too */
	look(c, 1);
	pthread_mutex_lock(&k->mu);
	int changed = k->gen != gen;
	pthread_mutex_unlock(&k->mu);
	return changed;
}
