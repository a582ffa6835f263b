/* test_s3_sign.c - the S3 client's pure parts: SigV4 against AWS's published examples, key
 * encoding, request targets (path-style and virtual-host), the XML extractor on real and hostile
 * replies, s3:// URIs and credentials files. No server. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s3.h"
#include "s3_sign.h"
#include "s3_xml.h"

/* The examples in AWS's S3 API reference, "Signature Calculations for the Authorization Header:
 * Transferring Payload in a Single Chunk (AWS Signature Version 4)". */
#define EX_AK "AKIAIOSFODNN7EXAMPLE"
#define EX_SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EX_DATE "20130524T000000Z"
#define EX_HOST "examplebucket.s3.amazonaws.com"

static const char *sig_of(const char *auth)
{
	const char *s = strstr(auth, "Signature=");
	cr_assert_not_null(s, "%s", auth);
	return s + 10;
}

Test(s3_sign, aws_example_get_object_range)
{
	s3sig_kv h[] = {{"Host", EX_HOST},
			{"Range", "bytes=0-9"},
			{"x-amz-content-sha256", S3SIG_EMPTY_SHA256},
			{"x-amz-date", EX_DATE}};
	s3sig_req r = {"GET", "/test.txt", NULL, 0, h, 4, S3SIG_EMPTY_SHA256};
	char cr[4096], sh[256];
	cr_assert_gt(s3sig_canonical_request(&r, cr, sizeof(cr), sh, sizeof(sh)), 0);
	cr_assert_str_eq(cr, "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
			     "range:bytes=0-9\n"
			     "x-amz-content-sha256:" S3SIG_EMPTY_SHA256 "\n"
			     "x-amz-date:20130524T000000Z\n\n"
			     "host;range;x-amz-content-sha256;x-amz-date\n" S3SIG_EMPTY_SHA256);
	char scope[128], sts[512];
	cr_assert_gt(s3sig_scope(EX_DATE, "us-east-1", scope, sizeof(scope)), 0);
	cr_assert_str_eq(scope, "20130524/us-east-1/s3/aws4_request");
	cr_assert_gt(s3sig_string_to_sign(EX_DATE, scope, cr, sts, sizeof(sts)), 0);
	cr_assert_str_eq(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n"
			      "20130524/us-east-1/s3/aws4_request\n"
			      "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	char auth[1024];
	cr_assert_gt(s3sig_authorization(EX_AK, EX_SK, "us-east-1", EX_DATE, &r, auth,
					 sizeof(auth)), 0);
	cr_assert_str_eq(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
			       "us-east-1/s3/aws4_request,SignedHeaders=host;range;"
			       "x-amz-content-sha256;x-amz-date,Signature="
			       "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

Test(s3_sign, aws_example_put_object)
{
	const char *body = "Welcome to Amazon S3.";
	char sha[S3SIG_SHA256_HEX];
	s3sig_sha256_hex(body, strlen(body), sha);
	cr_assert_str_eq(sha, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	char path[64];
	cr_assert_gt(s3sig_uri_encode("/test$file.text", 1, path, sizeof(path)), 0);
	cr_assert_str_eq(path, "/test%24file.text");
	/* headers deliberately out of order and in mixed case: the canonical form sorts them */
	s3sig_kv h[] = {{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
			{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
			{"x-amz-date", EX_DATE},
			{"Host", EX_HOST},
			{"x-amz-content-sha256", sha}};
	s3sig_req r = {"PUT", path, NULL, 0, h, 5, sha};
	char auth[1024];
	cr_assert_gt(s3sig_authorization(EX_AK, EX_SK, "us-east-1", EX_DATE, &r, auth,
					 sizeof(auth)), 0);
	cr_assert(strstr(auth, "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;"
			       "x-amz-storage-class,"), "%s", auth);
	cr_assert_str_eq(sig_of(auth),
			 "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

Test(s3_sign, aws_example_get_lifecycle_and_list)
{
	s3sig_kv h[] = {{"host", EX_HOST},
			{"x-amz-content-sha256", S3SIG_EMPTY_SHA256},
			{"x-amz-date", EX_DATE}};
	s3sig_kv lifecycle[] = {{"lifecycle", ""}};
	s3sig_req r = {"GET", "/", lifecycle, 1, h, 3, S3SIG_EMPTY_SHA256};
	char auth[1024];
	cr_assert_gt(s3sig_authorization(EX_AK, EX_SK, "us-east-1", EX_DATE, &r, auth,
					 sizeof(auth)), 0);
	cr_assert_str_eq(sig_of(auth),
			 "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
	/* "?max-keys=2&prefix=J", given unsorted */
	s3sig_kv list[] = {{"prefix", "J"}, {"max-keys", "2"}};
	r.query = list;
	r.nquery = 2;
	cr_assert_gt(s3sig_authorization(EX_AK, EX_SK, "us-east-1", EX_DATE, &r, auth,
					 sizeof(auth)), 0);
	cr_assert_str_eq(sig_of(auth),
			 "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

Test(s3_sign, header_values_are_trimmed_and_folded)
{
	s3sig_kv h[] = {{"host", "h"}, {"X-Amz-Meta-A", "  a   b \t c  "}};
	s3sig_req r = {"GET", "/", NULL, 0, h, 2, S3SIG_EMPTY_SHA256};
	char cr[512], sh[64];
	cr_assert_gt(s3sig_canonical_request(&r, cr, sizeof(cr), sh, sizeof(sh)), 0);
	cr_assert(strstr(cr, "\nx-amz-meta-a:a b c\n"), "%s", cr);
	cr_assert_str_eq(sh, "host;x-amz-meta-a");
}

Test(s3_sign, refusals_and_bounds)
{
	char cr[64], sh[64];
	s3sig_kv nohost[] = {{"x-amz-date", EX_DATE}};
	s3sig_req r = {"GET", "/", NULL, 0, nohost, 1, S3SIG_EMPTY_SHA256};
	cr_assert_eq(s3sig_canonical_request(&r, cr, sizeof(cr), sh, sizeof(sh)), -EINVAL);
	s3sig_kv dup[] = {{"host", "a"}, {"Host", "b"}};
	r.headers = dup;
	r.nheaders = 2;
	cr_assert_eq(s3sig_canonical_request(&r, cr, sizeof(cr), sh, sizeof(sh)), -EINVAL);
	s3sig_kv ok[] = {{"host", EX_HOST}};
	r.headers = ok;
	r.nheaders = 1;
	cr_assert_eq(s3sig_canonical_request(&r, cr, 16, sh, sizeof(sh)), -ENAMETOOLONG);
	cr_assert_str_eq(cr, "");
	r.path = "relative";
	cr_assert_eq(s3sig_canonical_request(&r, cr, sizeof(cr), sh, sizeof(sh)), -EINVAL);
	cr_assert_eq(s3sig_scope("2013-05-24", "us-east-1", cr, sizeof(cr)), -EINVAL);
	char small[4];
	cr_assert_eq(s3sig_uri_encode("abcd", 0, small, sizeof(small)), -ENAMETOOLONG);
	cr_assert_str_eq(small, "");
}

Test(s3_sign, signing_key_and_date)
{
	/* AWS's documented example key derivation (IAM, 20120215, us-east-1) uses service "iam";
	 * for S3 check the chain against the published GET signature instead, and the date. */
	char d[S3SIG_AMZ_DATE];
	s3sig_amz_date(1369353600, d); /* 2013-05-24 00:00:00 UTC */
	cr_assert_str_eq(d, EX_DATE);
	uint8_t k1[32], k2[32];
	s3sig_signing_key(EX_SK, "20130524", "us-east-1", k1);
	s3sig_signing_key(EX_SK, "20130525", "us-east-1", k2);
	cr_assert_neq(memcmp(k1, k2, 32), 0);
}

Test(s3_sign, key_encoding)
{
	char o[256];
	cr_assert_gt(s3sig_uri_encode("objects/00000000000000ab.tpdo", 1, o, sizeof(o)), 0);
	cr_assert_str_eq(o, "objects/00000000000000ab.tpdo");
	s3sig_uri_encode("a b+c=d&e/f~g_h-i.j*k", 1, o, sizeof(o));
	cr_assert_str_eq(o, "a%20b%2Bc%3Dd%26e/f~g_h-i.j%2Ak");
	s3sig_uri_encode("a/b", 0, o, sizeof(o));
	cr_assert_str_eq(o, "a%2Fb");
	s3sig_uri_encode("\xc3\xa9t\xc3\xa9", 1, o, sizeof(o)); /* UTF-8 bytes, upper-case hex */
	cr_assert_str_eq(o, "%C3%A9t%C3%A9");
	s3sig_uri_encode("%41", 1, o, sizeof(o)); /* a '%' in a key is data, not an escape */
	cr_assert_str_eq(o, "%2541");
	s3sig_kv q[] = {{"uploadId", "2~a/b+c"}, {"partNumber", "10"}, {"uploads", ""}};
	cr_assert_gt(s3sig_canonical_query(q, 3, o, sizeof(o)), 0);
	cr_assert_str_eq(o, "partNumber=10&uploadId=2~a%2Fb%2Bc&uploads=");
	/* upper-case names sort before lower-case ones (byte order) */
	s3sig_kv q2[] = {{"b", "1"}, {"B", "2"}, {"a", "2"}, {"a", "1"}};
	s3sig_canonical_query(q2, 4, o, sizeof(o));
	cr_assert_str_eq(o, "B=2&a=1&a=2&b=1");
}

Test(s3_sign, targets_path_and_virtual)
{
	s3sig_target t;
	cr_assert_eq(s3sig_target_make("http://127.0.0.1:8000", "ckpt", 1, "pre/x y.tpdo",
				       "partNumber=1", &t), 0);
	cr_assert_str_eq(t.url, "http://127.0.0.1:8000/ckpt/pre/x%20y.tpdo?partNumber=1");
	cr_assert_str_eq(t.host, "127.0.0.1:8000");
	cr_assert_str_eq(t.path, "/ckpt/pre/x%20y.tpdo");
	cr_assert_eq(s3sig_target_make("https://s3.eu-west-1.amazonaws.com", "ckpt", 0, "a/b",
				       NULL, &t), 0);
	cr_assert_str_eq(t.url, "https://ckpt.s3.eu-west-1.amazonaws.com/a/b");
	cr_assert_str_eq(t.host, "ckpt.s3.eu-west-1.amazonaws.com");
	cr_assert_str_eq(t.path, "/a/b");
	/* the bucket itself */
	s3sig_target_make("http://h:1", "ckpt", 1, "", "list-type=2", &t);
	cr_assert_str_eq(t.path, "/ckpt");
	cr_assert_str_eq(t.url, "http://h:1/ckpt?list-type=2");
	s3sig_target_make("https://h", "ckpt", 0, "", "", &t);
	cr_assert_str_eq(t.path, "/");
	cr_assert_str_eq(t.url, "https://ckpt.h/");
	cr_assert_eq(s3sig_target_make("http://h/path", "b", 1, "k", NULL, &t), -EINVAL);
	cr_assert_eq(s3sig_target_make("h:80", "b", 1, "k", NULL, &t), -EINVAL);
}

/* ---- XML ------------------------------------------------------------------------------------ */

static const char LIST_REPLY[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<Name>ckpt</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
	"<IsTruncated>true</IsTruncated>"
	"<Contents><Key>p/a&amp;b &lt;1&gt; &quot;q&quot; &apos;s&apos; &#233;&#x41;</Key>"
	"<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
	"<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
	"<StorageClass>STANDARD</StorageClass><Owner><ID>x</ID></Owner></Contents>\n"
	"  <Contents><Key>p/b</Key><LastModified>2024-01-02T03:04:05Z</LastModified>"
	"<Size>0</Size></Contents>"
	"<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
	"</NextContinuationToken></ListBucketResult>\n";

Test(s3_xml, list_reply)
{
	s3xml_list l;
	cr_assert_eq(s3xml_parse_list(LIST_REPLY, strlen(LIST_REPLY), &l), 0);
	cr_assert_eq(l.n, 2);
	cr_assert_str_eq(l.items[0].key, "p/a&b <1> \"q\" 's' \xc3\xa9" "A");
	cr_assert_eq(l.items[0].size, 434234);
	cr_assert_eq(l.items[0].mtime_ns, 1255369830LL * 1000000000LL);
	cr_assert_str_eq(l.items[1].key, "p/b");
	cr_assert_eq(l.items[1].size, 0);
	cr_assert_eq(l.truncated, 1);
	cr_assert_str_eq(l.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	s3xml_list_free(&l);

	const char *empty = "<ListBucketResult><IsTruncated>false</IsTruncated>"
			    "<KeyCount>0</KeyCount></ListBucketResult>";
	cr_assert_eq(s3xml_parse_list(empty, strlen(empty), &l), 0);
	cr_assert_eq(l.n, 0);
	cr_assert_eq(l.truncated, 0);
	s3xml_list_free(&l);
}

Test(s3_xml, uploads_initiate_error)
{
	const char *u = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListMultipartUploadsResult "
			"xmlns='http://s3.amazonaws.com/doc/2006-03-01/'><Bucket>b</Bucket>"
			"<KeyMarker></KeyMarker><UploadIdMarker/>"
			"<NextKeyMarker>k2</NextKeyMarker>"
			"<NextUploadIdMarker>2~id2</NextUploadIdMarker>"
			"<MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>"
			"<Upload><Key>k1</Key><UploadId>2~id1</UploadId><Initiator><ID>i</ID>"
			"</Initiator><Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>"
			"<Upload><Key>k2</Key><UploadId>2~id2</UploadId>"
			"<Initiated>2010-11-10T20:49:33.123Z</Initiated></Upload>"
			"</ListMultipartUploadsResult>";
	s3xml_uploads up;
	cr_assert_eq(s3xml_parse_uploads(u, strlen(u), &up), 0);
	cr_assert_eq(up.n, 2);
	cr_assert_str_eq(up.items[1].key, "k2");
	cr_assert_str_eq(up.items[1].upload_id, "2~id2");
	cr_assert_eq(up.items[1].initiated_ns, 1289422173123000000LL);
	cr_assert_eq(up.truncated, 1);
	cr_assert_str_eq(up.next_key_marker, "k2");
	cr_assert_str_eq(up.next_upload_id_marker, "2~id2");
	s3xml_uploads_free(&up);

	const char *i = "<?xml version=\"1.0\"?>\n<InitiateMultipartUploadResult><Bucket>b</Bucket>"
			"<Key>k</Key><UploadId>2~AbC_d-e</UploadId></InitiateMultipartUploadResult>";
	char id[64];
	cr_assert_eq(s3xml_parse_initiate(i, strlen(i), id, sizeof(id)), 0);
	cr_assert_str_eq(id, "2~AbC_d-e");
	cr_assert_eq(s3xml_parse_initiate(i, strlen(i), id, 4), -EBADMSG);

	const char *e = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code>"
			"<Message>The resource you requested does not exist</Message>"
			"<Resource>/b/k</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>";
	char code[64], msg[16];
	cr_assert_eq(s3xml_parse_error(e, strlen(e), code, sizeof(code), msg, sizeof(msg)), 0);
	cr_assert_str_eq(code, "NoSuchKey");
	cr_assert_str_eq(msg, "The resource yo"); /* cut to the room given */
	cr_assert(s3xml_is_error(e, strlen(e)));
	cr_assert(!s3xml_is_error(i, strlen(i)));
	/* CompleteMultipartUpload's 200 may open with whitespace before the error */
	const char *ws = "\n  \n<Error><Code>InternalError</Code></Error>";
	cr_assert(s3xml_is_error(ws, strlen(ws)));
	cr_assert_eq(s3xml_parse_error(i, strlen(i), code, sizeof(code), NULL, 0), -EBADMSG);
	/* a Code longer than the room for it: refused (a code is an identifier, not prose), while
	 * the document is still an <Error> (found by fuzz_s3xml: the harness assumed otherwise) */
	const char *lc = "<Error><Code>ThisCodeIsFarLongerThanSixteenBytes</Code></Error>";
	cr_assert_eq(s3xml_parse_error(lc, strlen(lc), code, 16, NULL, 0), -EBADMSG);
	cr_assert_str_eq(code, "");
	cr_assert(s3xml_is_error(lc, strlen(lc)));
}

static int bad_list(const char *x)
{
	s3xml_list l;
	int rc = s3xml_parse_list(x, strlen(x), &l);
	s3xml_list_free(&l);
	return rc;
}

Test(s3_xml, malformed_is_refused)
{
	static const char *bad[] = {
		"",
		"   ",
		"<ListBucketResult>",                                       /* unclosed */
		"<ListBucketResult></ListBucketResul>",                     /* mismatched end */
		"<ListBucketResult></ListBucketResult><x/>",                /* two roots */
		"<ListBucketResult></ListBucketResult>junk",                /* text after root */
		"<ListAllMyBucketsResult></ListAllMyBucketsResult>",        /* wrong document */
		"<Error><Code>x</Code></Error>",
		"<!DOCTYPE x [<!ENTITY a 'b'>]><ListBucketResult/>",        /* DTDs */
		"<ListBucketResult><![CDATA[x]]></ListBucketResult>",
		"<ListBucketResult><?pi x?></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a&foo;</Key><Size>1</Size></Contents>"
		"</ListBucketResult>",                                      /* unknown entity */
		"<ListBucketResult><Contents><Key>a&#0;</Key><Size>1</Size></Contents>"
		"</ListBucketResult>",                                      /* NUL reference */
		"<ListBucketResult><Contents><Key>a&#xD800;</Key><Size>1</Size></Contents>"
		"</ListBucketResult>",                                      /* surrogate */
		"<ListBucketResult><Contents><Key>a&#1114112;</Key><Size>1</Size></Contents>"
		"</ListBucketResult>",                                      /* > U+10FFFF */
		"<ListBucketResult><Contents><Key>a&amp</Key><Size>1</Size></Contents>"
		"</ListBucketResult>",                                      /* unterminated */
		"<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents>"
		"</ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Size>18446744073709551616</Size>"
		"</Contents></ListBucketResult>",                           /* 2^64 */
		"<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>", /* no size */
		"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Key>b</Key><Size>1</Size></Contents>"
		"</ListBucketResult>",                                      /* two keys */
		"<ListBucketResult><Contents><Key>a</Key><Size>1</Size><LastModified>yesterday"
		"</LastModified></Contents></ListBucketResult>",
		"<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
		"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", /* no token */
		"<ListBucketResult>text<Contents/></ListBucketResult>",     /* mixed content */
		"<ListBucketResult a=b></ListBucketResult>",                /* unquoted attribute */
		"<ListBucketResult a=\"b></ListBucketResult>",
		"<ListBucketResult\"></ListBucketResult>",
		"<1a></1a>",
		"<a><b></a></b>",
		"<ListBucketResult><!-- unterminated </ListBucketResult>",
		"x<ListBucketResult/>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(bad_list(bad[i]), -EBADMSG, "accepted: %s", bad[i]);
	/* NUL inside the text */
	const char nul[] = "<ListBucketResult><Contents><Key>a\0b</Key><Size>1</Size></Contents>"
			   "</ListBucketResult>";
	s3xml_list l;
	cr_assert_eq(s3xml_parse_list(nul, sizeof(nul) - 1, &l), -EBADMSG);
	s3xml_list_free(&l);
}

Test(s3_xml, bounds)
{
	/* nesting deeper than S3XML_MAX_DEPTH */
	char deep[1024] = "<ListBucketResult>";
	for (int i = 0; i < S3XML_MAX_DEPTH + 2; i++)
		strcat(deep, "<a>");
	for (int i = 0; i < S3XML_MAX_DEPTH + 2; i++)
		strcat(deep, "</a>");
	strcat(deep, "</ListBucketResult>");
	cr_assert_eq(bad_list(deep), -EBADMSG);
	/* a key longer than S3 allows */
	size_t n = S3XML_KEY_MAX + 200;
	char *big = malloc(n + 200);
	cr_assert_not_null(big);
	strcpy(big, "<ListBucketResult><Contents><Key>");
	size_t at = strlen(big);
	memset(big + at, 'k', S3XML_KEY_MAX + 1);
	big[at + S3XML_KEY_MAX + 1] = 0;
	strcat(big, "</Key><Size>1</Size></Contents></ListBucketResult>");
	cr_assert_eq(bad_list(big), -EBADMSG);
	/* exactly the longest key is fine */
	strcpy(big, "<ListBucketResult><Contents><Key>");
	memset(big + at, 'k', S3XML_KEY_MAX);
	big[at + S3XML_KEY_MAX] = 0;
	strcat(big, "</Key><Size>1</Size></Contents></ListBucketResult>");
	cr_assert_eq(bad_list(big), 0);
	free(big);
	/* a long text in an element nobody reads does not matter */
	char *junk = malloc(20000);
	cr_assert_not_null(junk);
	strcpy(junk, "<ListBucketResult><Owner>");
	memset(junk + strlen(junk), 'x', 10000);
	junk[25 + 10000] = 0;
	strcat(junk, "</Owner></ListBucketResult>");
	cr_assert_eq(bad_list(junk), 0);
	free(junk);
	s3xml_list l;
	cr_assert_eq(s3xml_parse_list("<a/>", S3XML_MAX_INPUT + 1, &l), -E2BIG);
	s3xml_list_free(&l);
}

Test(s3_xml, times)
{
	int64_t ns;
	cr_assert_eq(s3xml_parse_time("1970-01-01T00:00:00Z", &ns), 0);
	cr_assert_eq(ns, 0);
	cr_assert_eq(s3xml_parse_time("2013-05-24T00:00:00.5Z", &ns), 0);
	cr_assert_eq(ns, 1369353600500000000LL);
	cr_assert_eq(s3xml_parse_time("2013-05-24T00:00:00.123456789123Z", &ns), 0);
	cr_assert_eq(ns, 1369353600123456789LL);
	cr_assert_eq(s3xml_parse_time("2013-05-24 00:00:00Z", &ns), -EBADMSG);
	cr_assert_eq(s3xml_parse_time("2013-13-24T00:00:00Z", &ns), -EBADMSG);
	cr_assert_eq(s3xml_parse_time("2013-05-24T00:00:00", &ns), -EBADMSG);
	cr_assert_eq(s3xml_parse_time("2013-05-24T00:00:00.Z", &ns), -EBADMSG);
	cr_assert_eq(s3xml_parse_time("2013-05-24T00:00:00+01:00", &ns), -EBADMSG);
	cr_assert_eq(s3xml_parse_time("9999-05-24T00:00:00Z", &ns), -EBADMSG);
}

/* ---- URIs and credentials ------------------------------------------------------------------- */

static s3_cfg uri_ok(const char *u)
{
	s3_cfg c;
	memset(&c, 0, sizeof(c));
	char err[256] = "";
	cr_assert_eq(s3_uri_parse(u, &c, err, sizeof(err)), 0, "%s: %s", u, err);
	return c;
}

Test(s3_uri, good)
{
	cr_assert(s3_uri_is("s3://b"));
	cr_assert(s3_uri_is("S3://b"));
	cr_assert(!s3_uri_is("s3:/b"));
	cr_assert(!s3_uri_is("/data"));
	cr_assert(!s3_uri_is(NULL));

	s3_cfg c = uri_ok("s3://ckpt");
	cr_assert_str_eq(c.bucket, "ckpt");
	cr_assert_str_eq(c.prefix, "");
	cr_assert_str_eq(c.region, "us-east-1");
	cr_assert_str_eq(c.endpoint, "https://s3.us-east-1.amazonaws.com");
	cr_assert_eq(c.path_style, 0);

	c = uri_ok("s3://my.ckpt-1/runs/a%20b/?endpoint=http://127.0.0.1:7480/&region=eu-2");
	cr_assert_str_eq(c.prefix, "runs/a b");
	cr_assert_str_eq(c.endpoint, "http://127.0.0.1:7480");
	cr_assert_str_eq(c.region, "eu-2");
	cr_assert_eq(c.path_style, 1);
	char d[S3_URI_MAX];
	s3_cfg_describe(&c, d, sizeof(d));
	cr_assert_str_eq(d, "s3://my.ckpt-1/runs/a%20b?endpoint=http://127.0.0.1:7480&region=eu-2"
			    "&style=path");
	s3_cfg back = uri_ok(d);
	cr_assert_str_eq(back.prefix, "runs/a b");
	/* the same place written differently describes the same */
	s3_cfg c2 = uri_ok("S3://my.ckpt-1//runs/a%20b?region=eu-2&endpoint=HTTP://127.0.0.1:7480");
	char d2[S3_URI_MAX];
	s3_cfg_describe(&c2, d2, sizeof(d2));
	cr_assert_str_eq(d, d2);

	/* path style by default: IP literal, localhost, explicit port; else virtual */
	cr_assert_eq(uri_ok("s3://bkt?endpoint=http://localhost").path_style, 1);
	cr_assert_eq(uri_ok("s3://bkt?endpoint=https://rgw.example:8443").path_style, 1);
	cr_assert_eq(uri_ok("s3://bkt?endpoint=http://[::1]").path_style, 1);
	cr_assert_eq(uri_ok("s3://bkt?endpoint=https://rgw.example").path_style, 0);
	cr_assert_eq(uri_ok("s3://bkt?endpoint=https://rgw.example&style=path").path_style, 1);
	cr_assert_eq(uri_ok("s3://bkt?endpoint=http://localhost:7480&style=virtual").path_style,
		     0);
	c = uri_ok("s3://bkt?credentials=/etc/tpdefs/s3.ini&profile=ci-1");
	cr_assert_str_eq(c.cred_file, "/etc/tpdefs/s3.ini");
	cr_assert_str_eq(c.profile, "ci-1");
	cr_assert_eq(c.retry_s, 0);
}

Test(s3_uri, refusals)
{
	static const char *bad[] = {
		"http://bkt",
		"s3://",
		"s3://ab",                                        /* too short */
		"s3://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 64 */
		"s3://Bucket",                                    /* upper case */
		"s3://bu_cket",
		"s3://-bucket",
		"s3://bucket-",
		"s3://buc..ket",
		"s3://AKIAX:hunter2@bucket",                      /* user info */
		"s3://key@bucket/p",
		"s3://bkt?endpoint=http://u:hunter2@h",           /* user info in the endpoint */
		"s3://bkt?endpoint=ftp://h",
		"s3://bkt?endpoint=h:80",
		"s3://bkt?endpoint=http://h/path",
		"s3://bkt?endpoint=http://h:0",
		"s3://bkt?endpoint=http://h:65536",
		"s3://bkt?endpoint=http://h:8x",
		"s3://bkt?endpoint=http://",
		"s3://bkt?endpoint=http://[::1",
		"s3://bkt?endpoint=http://h_h",
		"s3://bkt?endpoint=http://127.0.0.1&style=virtual", /* no bucket.IP host */
		"s3://bkt?style=sideways",
		"s3://bkt?region=EU",
		"s3://bkt?region=",
		"s3://bkt?profile=a%20b",
		"s3://bkt?credentials=",
		"s3://bkt?secret=x",                              /* unknown parameter */
		"s3://bkt?region=us-east-1&region=us-east-2",     /* twice */
		"s3://bkt?region",                                /* no value */
		"s3://bkt/a/../b",
		"s3://bkt/a/./b",
		"s3://bkt/a//b",
		"s3://bkt/a%0ab",                                 /* control character */
		"s3://bkt/a%zz",
		"s3://bkt/a%4",
		"s3://bkt/a#frag",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s3_cfg c;
		char err[256] = "";
		cr_assert_eq(s3_uri_parse(bad[i], &c, err, sizeof(err)), -EINVAL, "accepted: %s",
			     bad[i]);
		cr_assert_neq(err[0], 0, "no reason for %s", bad[i]);
		/* a refused URI's secret does not come back in the message */
		cr_assert_null(strstr(err, "hunter2"), "%s", err);
	}
	char *longuri = malloc(S3_URI_MAX + 16);
	cr_assert_not_null(longuri);
	strcpy(longuri, "s3://bkt/");
	memset(longuri + 9, 'a', S3_URI_MAX);
	longuri[S3_URI_MAX + 9] = 0;
	s3_cfg c;
	cr_assert_eq(s3_uri_parse(longuri, &c, NULL, 0), -EINVAL);
	free(longuri);
}

static void noenv(void)
{
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_PROFILE");
}

Test(s3_creds, env_and_file)
{
	noenv();
	s3_cfg c = uri_ok("s3://bkt?endpoint=http://127.0.0.1:9");
	s3 *h = NULL;
	char err[512];
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), -EACCES);
	cr_assert_null(h);
	cr_assert(strstr(err, "AWS_ACCESS_KEY_ID") && strstr(err, "AWS_SECRET_ACCESS_KEY"), "%s",
		  err);
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), -EACCES); /* secret missing */
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret123", 1);
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(s3_config(h)->bucket, "bkt");
	s3_free(h);

	char path[] = "/tmp/test_s3_credsXXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	const char *ini = "# comment\n[default]\naws_access_key_id = AKIDDEF\n"
			  "aws_secret_access_key=defsecret\n\n[profile ci]\n"
			  "aws_access_key_id=AKIDCI\r\naws_secret_access_key = cisecret \n"
			  "aws_session_token = tok\n[other]\naws_access_key_id=AKIDO\n";
	cr_assert_eq(write(fd, ini, strlen(ini)), (ssize_t)strlen(ini));
	close(fd);
	char u[256];
	snprintf(u, sizeof(u), "s3://bkt?endpoint=http://127.0.0.1:9&credentials=%s", path);
	c = uri_ok(u);
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), 0, "%s", err);
	s3_free(h);
	snprintf(u, sizeof(u), "s3://bkt?endpoint=http://127.0.0.1:9&credentials=%s&profile=ci",
		 path);
	c = uri_ok(u);
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), 0, "%s", err);
	s3_free(h);
	/* a profile without a secret, a profile that is not there: refused, no key printed */
	snprintf(u, sizeof(u), "s3://bkt?endpoint=http://127.0.0.1:9&credentials=%s&profile=other",
		 path);
	c = uri_ok(u);
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), -EACCES);
	cr_assert(strstr(err, path) && strstr(err, "[other]"), "%s", err);
	cr_assert_null(strstr(err, "AKIDO"));
	setenv("AWS_PROFILE", "nope", 1);
	snprintf(u, sizeof(u), "s3://bkt?endpoint=http://127.0.0.1:9&credentials=%s", path);
	c = uri_ok(u);
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), -EACCES);
	cr_assert(strstr(err, "[nope]"), "%s", err);
	unlink(path);
	c = uri_ok(u);
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), -EACCES);
	cr_assert(strstr(err, path), "%s", err);
	noenv();
}

static void collect_log(void *ctx, const char *msg)
{
	char *buf = ctx;
	size_t n = strlen(buf);
	snprintf(buf + n, 8192 - n, "%s\n", msg);
}

/* Nothing listens on port 9 of 127.0.0.1 (discard; not run on test machines): every try is a
 * refused connection. The call ends with -EIO after retry_s, each try logged, no secret. */
Test(s3_creds, unreachable_endpoint_logs_without_secrets, .timeout = 30)
{
	noenv();
	setenv("AWS_ACCESS_KEY_ID", "AKIDLOGTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SECRETNOTINLOGS", 1);
	s3_cfg c = uri_ok("s3://bkt/pre?endpoint=http://127.0.0.1:9");
	char *logbuf = calloc(1, 8192);
	cr_assert_not_null(logbuf);
	c.log = collect_log;
	c.log_ctx = logbuf;
	c.retry_s = 0.8;
	s3 *h;
	char err[256];
	cr_assert_eq(s3_new(&c, &h, err, sizeof(err)), 0, "%s", err);
	uint8_t b[4];
	cr_assert_eq(s3_get(h, "objects/x", 0, 4, b), -EIO);
	cr_assert(strstr(logbuf, "GET pre/objects/x (try 1)"), "%s", logbuf);
	cr_assert(strstr(logbuf, "(try 2)"), "%s", logbuf);
	cr_assert(strstr(logbuf, "giving up"), "%s", logbuf);
	cr_assert_null(strstr(logbuf, "SECRETNOTINLOGS"));
	cr_assert_null(strstr(logbuf, "Authorization"));
	cr_assert_null(strstr(logbuf, "Signature="));
	s3_stats st;
	s3_stats_get(h, &st);
	cr_assert_eq(st.gets, 1);
	cr_assert_geq(st.retries, 1);
	cr_assert_eq(st.failures, 1);
	s3_free(h);
	free(logbuf);
	noenv();
}
