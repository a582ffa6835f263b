/* s3_xml.h - the few S3 XML replies the client reads, extracted by a small strict parser.
 *
 * The reply is untrusted input (a server, a proxy, anything on the way): the parser is bounded
 * (input size, nesting depth, text length, record count), refuses what S3 never sends (DOCTYPE,
 * entity definitions, CDATA, processing instructions other than the XML declaration), checks
 * that every end tag matches its start tag, and decodes the five predefined entities and numeric
 * character references. It keeps only the elements asked for and ignores the others.
 *
 * Errors: -EBADMSG malformed or not the expected document (wrong root element, a number that is
 * not one, a text longer than its bound), -ENOMEM, -E2BIG input over S3XML_MAX_INPUT.
 */
#ifndef TPDEFS_S3_XML_H
#define TPDEFS_S3_XML_H

#include <stddef.h>
#include <stdint.h>

#define S3XML_MAX_INPUT (16u << 20) /* a 1000-key listing is ~300 KiB */
#define S3XML_MAX_DEPTH 16
#define S3XML_KEY_MAX 1024          /* S3 keys are at most 1024 bytes of UTF-8 */
#define S3XML_TOKEN_MAX 2048        /* continuation tokens, upload ids, markers, messages */
#define S3XML_MAX_ITEMS 100000      /* records kept from one reply (S3 pages are <= 1000) */

typedef struct s3xml_object {
	char key[S3XML_KEY_MAX + 1];
	uint64_t size;
	int64_t mtime_ns; /* LastModified; 0 when absent */
} s3xml_object;

/* ListBucketResult (ListObjectsV2). */
typedef struct s3xml_list {
	s3xml_object *items;
	size_t n, cap;
	int truncated;                        /* IsTruncated */
	char next_token[S3XML_TOKEN_MAX + 1]; /* NextContinuationToken, "" when absent */
} s3xml_list;

typedef struct s3xml_upload {
	char key[S3XML_KEY_MAX + 1];
	char upload_id[S3XML_TOKEN_MAX + 1];
	int64_t initiated_ns;
} s3xml_upload;

/* ListMultipartUploadsResult. */
typedef struct s3xml_uploads {
	s3xml_upload *items;
	size_t n, cap;
	int truncated;
	char next_key_marker[S3XML_KEY_MAX + 1];
	char next_upload_id_marker[S3XML_TOKEN_MAX + 1];
} s3xml_uploads;

/* out is zeroed first; free it with s3xml_list_free / s3xml_uploads_free (also on error). */
int s3xml_parse_list(const char *xml, size_t len, s3xml_list *out);
void s3xml_list_free(s3xml_list *l);
int s3xml_parse_uploads(const char *xml, size_t len, s3xml_uploads *out);
void s3xml_uploads_free(s3xml_uploads *u);
/* InitiateMultipartUploadResult: its UploadId (non-empty). */
int s3xml_parse_initiate(const char *xml, size_t len, char *upload_id, size_t size);
/* Error: Code and Message ("" when absent; either buffer may be NULL). -EBADMSG when the
 * document is not an <Error>. */
int s3xml_parse_error(const char *xml, size_t len, char *code, size_t csize, char *msg,
		      size_t msize);
/* 1 when the document's root element is <Error> (CompleteMultipartUpload can answer 200 with an
 * error in its body), 0 otherwise (also for malformed input). */
int s3xml_is_error(const char *xml, size_t len);
/* ISO 8601 as S3 writes it ("2009-10-12T17:50:30.000Z", fraction optional) -> ns since the
 * epoch. */
int s3xml_parse_time(const char *s, int64_t *ns);

#endif
