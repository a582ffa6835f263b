/* fuzz_uri.c - store_uri_parse / store_uri_scrub on arbitrary bytes: no crash, and what is printed
 * never depends on the password: scrubbing the URI (what `ps` shows) changes neither its shape nor
 * its redacted form, and the redacted form parses to the same user, hosts and database. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2 * STORE_URI_MAX)
		return 0;
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	store_uri u, v, w;
	char err[256];
	int r = store_uri_parse(s, &u, err, sizeof(err));
	store_uri_scrub(s);
	int r2 = store_uri_parse(s, &v, err, sizeof(err));
	if (r == 0) {
		if (r2 != 0 || v.has_password != u.has_password || strcmp(v.redacted, u.redacted) ||
		    v.id != u.id)
			abort(); /* the printed form depends on the password */
		if (store_uri_parse(u.redacted, &w, err, sizeof(err)) != 0 ||
		    strcmp(w.user, u.user) || strcmp(w.hosts, u.hosts) || strcmp(w.dbname, u.dbname))
			abort();
	}
	free(s);
	return 0;
}
