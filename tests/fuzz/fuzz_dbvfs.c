/* fuzz_dbvfs.c - arbitrary bytes as a store's tpdefs.db, opened read-only through the
 * page-checksum VFS (db_sqlite_vfs.c) and checked with PRAGMA integrity_check: no crash, no
 * sanitizer report, whatever the header says (reserved bytes, page size, size of the file). And
 * the shim agrees with its own sum: once every page's checksum is recomputed with
 * dbvfs_page_sum, the check never reports a checksum failure, only what SQLite finds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "db_sqlite_vfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static int check(const uint8_t *b, size_t n, char *msg, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (n && fwrite(b, 1, n, f) != n)
		abort();
	fclose(f);
	db *d = NULL;
	char err[256];
	msg[0] = 0;
	if (db_open_sqlite(path, DB_OPEN_RO, &d, err, sizeof(err)) < 0)
		return -1;
	int r = db_check(d, 10, msg, len);
	db_close(d);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return 0;
	if (!path[0])
		snprintf(path, sizeof(path), "/dev/shm/fuzz_dbvfs.%d.db", (int)getpid());
	char msg[512];
	check(data, size, msg, sizeof(msg));
	/* the same bytes with every page's sum made right */
	if (size >= 100 && data[20] == DBVFS_RESERVE) {
		size_t pg = ((size_t)data[16] << 8) | data[17];
		if (pg == 1)
			pg = 65536;
		if (pg >= 512 && !(pg & (pg - 1)) && size >= pg) {
			uint8_t *b = malloc(size);
			if (!b)
				return 0;
			memcpy(b, data, size);
			for (size_t i = 0; i + pg <= size; i += pg)
				dbvfs_page_sum(b + i, pg, (uint32_t)(i / pg) + 1, b + i + pg - DBVFS_RESERVE);
			if (check(b, size, msg, sizeof(msg)) >= 0 && strstr(msg, "fails its checksum"))
				abort(); /* the shim rejects a page its own sum accepts */
			free(b);
		}
	}
	unlink(path);
	return 0;
}
