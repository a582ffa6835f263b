/* admin_format.c - `tpdefs-admin format URI --blobs DIR|S3URI`: create a shared store (metadata
 * in the PostgreSQL database named by URI, blobs in DIR, a directory every node mounts, or in an
 * S3 bucket). */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "store_uri.h"

int admin_format(int argc, char **argv)
{
	static const char use[] =
		"usage: tpdefs-admin format URI --blobs DIR|s3://BUCKET[/PREFIX][?OPTIONS]\n"
		"Create a shared store: the schema in the empty PostgreSQL database named by URI\n"
		"(postgresql://user@host/db; passwords via ~/.pgpass or PGPASSWORD), blobs in DIR, an\n"
		"absolute path on a filesystem every node mounts, or in an S3 bucket:\n"
		"  s3://BUCKET/PREFIX?endpoint=https://host:port&region=R&style=path|virtual\n"
		"  &credentials=FILE&profile=P\n"
		"(keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the credentials file; they are\n"
		"never recorded; the bucket is created when missing). Refuses a database that holds\n"
		"tables, and a DIR or prefix that is not empty. Then: mount.tpdefs URI MOUNTPOINT.\n";
	const char *uri = NULL, *blobs = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(use, stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--blobs") && i + 1 < argc)
			blobs = argv[++i];
		else if (!uri && argv[i][0] != '-')
			uri = argv[i];
		else {
			fputs(use, stderr);
			return 1;
		}
	}
	if (!uri || !blobs) {
		fputs(use, stderr);
		return 1;
	}
	if (!store_uri_is_pg(uri)) {
		fprintf(stderr, "tpdefs-admin: format is for a shared store (a PostgreSQL URI); a "
			"directory BACKING is created by its first mount\n");
		return 1;
	}
	char err[1024] = "";
	if (store_format_shared(uri, blobs, err, sizeof(err)) < 0) {
		fprintf(stderr, "tpdefs-admin: %s\n", err);
		return 1;
	}
	store_uri u;
	store_uri_parse(uri, &u, err, sizeof(err));
	printf("formatted %s: blobs in %s\n", u.redacted, blobs);
	return 0;
}
