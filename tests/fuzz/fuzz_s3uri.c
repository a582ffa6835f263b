/* fuzz_s3uri.c - s3_uri_parse on arbitrary strings: no crash, and an accepted URI is a place with
 * one name: its description (s3_cfg_describe) parses back to the same bucket, prefix, endpoint,
 * region and style, and describes itself identically. A URI with user info never parses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2 * S3_URI_MAX)
		return 0;
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	s3_cfg a, b;
	char err[256], d1[S3_URI_MAX + 512], d2[S3_URI_MAX + 512];
	if (s3_uri_parse(s, &a, err, sizeof(err)) == 0) {
		const char *q = strpbrk(s + 5, "/?");
		size_t alen = q ? (size_t)(q - s - 5) : strlen(s + 5);
		if (memchr(s + 5, '@', alen))
			abort(); /* user info accepted */
		s3_cfg_describe(&a, d1, sizeof(d1));
		if (s3_uri_parse(d1, &b, err, sizeof(err)) != 0)
			abort();
		if (strcmp(a.bucket, b.bucket) || strcmp(a.prefix, b.prefix) ||
		    strcmp(a.endpoint, b.endpoint) || strcmp(a.region, b.region) ||
		    a.path_style != b.path_style)
			abort();
		s3_cfg_describe(&b, d2, sizeof(d2));
		if (strcmp(d1, d2))
			abort();
	}
	free(s);
	return 0;
}
