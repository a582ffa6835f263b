/* fuzz_s3xml.c - the S3 XML extractor (core/blob/s3_xml.c) on arbitrary bytes: every parser runs
 * on every input. None may crash or read past the input (it is copied into a buffer of exactly
 * its size, no NUL after it), and what a successful parse returns must be within its bounds:
 * NUL-terminated fields shorter than their arrays, non-empty keys and upload ids, a token for
 * every truncated page, no more records than S3XML_MAX_ITEMS, an <Error> parsed only when it is
 * one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void bounded(const char *s, size_t size, int nonempty)
{
	size_t n = strnlen(s, size);
	if (n >= size || (nonempty && n == 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *x = malloc(size ? size : 1);
	if (!x)
		return 0;
	memcpy(x, data, size);

	s3xml_list l;
	if (s3xml_parse_list(x, size, &l) == 0) {
		if (l.n > S3XML_MAX_ITEMS || l.n > l.cap || (l.truncated && !l.next_token[0]))
			abort();
		bounded(l.next_token, sizeof(l.next_token), 0);
		for (size_t i = 0; i < l.n; i++)
			bounded(l.items[i].key, sizeof(l.items[i].key), 1);
	}
	s3xml_list_free(&l);

	s3xml_uploads u;
	if (s3xml_parse_uploads(x, size, &u) == 0) {
		if (u.n > S3XML_MAX_ITEMS || u.n > u.cap || (u.truncated && !u.next_key_marker[0]))
			abort();
		bounded(u.next_key_marker, sizeof(u.next_key_marker), 0);
		bounded(u.next_upload_id_marker, sizeof(u.next_upload_id_marker), 0);
		for (size_t i = 0; i < u.n; i++) {
			bounded(u.items[i].key, sizeof(u.items[i].key), 1);
			bounded(u.items[i].upload_id, sizeof(u.items[i].upload_id), 1);
		}
	}
	s3xml_uploads_free(&u);

	char id[64];
	if (s3xml_parse_initiate(x, size, id, sizeof(id)) == 0)
		bounded(id, sizeof(id), 1);

	char code[32], msg[48];
	int e = s3xml_parse_error(x, size, code, sizeof(code), msg, sizeof(msg));
	if (e == 0) {
		bounded(code, sizeof(code), 0);
		bounded(msg, sizeof(msg), 0);
	}
	/* an <Error> whose Code does not fit is refused by the parser but still an <Error> */
	if (e == 0 && !s3xml_is_error(x, size))
		abort();

	/* the time parser takes a C string */
	if (size < 64) {
		char t[64];
		memcpy(t, data, size);
		t[size] = 0;
		int64_t ns;
		s3xml_parse_time(t, &ns);
	}
	free(x);
	return 0;
}
