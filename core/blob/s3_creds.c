/* s3_creds.c - the keys an S3 client signs with: from the environment (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or an AWS-style credentials file ([profile] sections).
 * Credentials never appear in a message or a log line; the file's bytes are wiped once read.
 */
#include "s3_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CRED_FILE_MAX (1u << 20)

/* ---- credentials ---------------------------------------------------------------------------- */

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = 0;
	return s;
}

/* An AWS-style credentials file: [name] or [profile name] sections of key = value lines. */
static int creds_from_file(s3_creds *cr, const char *path, const char *profile, char *err,
			   size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		s3_say(err, errlen, "s3: credentials file %s: %s", path, strerror(e));
		return -EACCES;
	}
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

int s3_creds_load(s3_creds *cr, const s3_cfg *cfg, char *err, size_t errlen)
{
	const char *profile = cfg->profile[0] ? cfg->profile : getenv("AWS_PROFILE");
	if (!profile || !profile[0])
		profile = "default";
	if (cfg->cred_file[0])
		return creds_from_file(cr, cfg->cred_file, profile, err, errlen);
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
