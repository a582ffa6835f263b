/* store_uri.h - what BACKING names: a directory (the embedded store) or a PostgreSQL connection URI
 * (a shared store: metadata in the server, blobs in a directory every node mounts).
 *
 * The URI is checked here for shape only (scheme, user[:password]@, host list, /dbname, ?params,
 * percent escapes); libpq parses it again to connect and accepts every libpq parameter. What this
 * module adds is what libpq does not give: a form safe to print (the password, in the userinfo or
 * as a password= parameter, never appears in it) and a stable identity for node-local paths.
 */
#ifndef TPDEFS_STORE_URI_H
#define TPDEFS_STORE_URI_H

#include <stddef.h>
#include <stdint.h>

#define STORE_URI_MAX 4096

typedef struct store_uri {
	int has_password;            /* a password is written in the URI itself */
	char user[256];              /* decoded; empty when not given */
	char dbname[256];            /* decoded; empty when not given */
	char hosts[1024];            /* as written (may hold several host[:port], comma separated) */
	char redacted[STORE_URI_MAX]; /* the URI with every password replaced by "****" */
	uint64_t id;                 /* hash of the redacted URI: the store as seen by this node */
} store_uri;

/* 1 when s starts with postgresql:// or postgres:// (any case), 0 otherwise. */
int store_uri_is_pg(const char *s);

/* Check and describe a PostgreSQL URI. 0, or -EINVAL with a one-line reason in err (which never
 * contains the password). */
int store_uri_parse(const char *s, store_uri *out, char *err, size_t errlen);

/* Overwrite the password characters of URI s in place with 'x' (what `ps` shows of argv).
 * Leaves s alone when it holds none. */
void store_uri_scrub(char *s);

#endif
