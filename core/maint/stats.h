/* stats.h - what a backing store holds: logical vs stored bytes, per file (path, object, base
 * file, chain depth, codec mix) and per chain. Read-only; works while the daemon serves it. */
#ifndef TPDEFS_STATS_H
#define TPDEFS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "store.h"

typedef struct stats_file {
	char *path;              /* one path of the inode ("/run1/ckpt.pt") */
	uint64_t ino, size;      /* logical size */
	uint64_t stored;         /* blob bytes of its object (0 when staged) */
	uint64_t obj, base_obj;  /* 0: none */
	uint32_t depth;
	int staged;              /* waiting for encoding */
	const char *base_path;   /* the file whose object is base_obj, NULL if none (points into
				  * the files array; not owned) */
	uint64_t codec_bytes[CODEC_MAX]; /* decoded bytes coded with each codec */
	int blob_ok;             /* 0: the blob index could not be read */
} stats_file;

typedef struct stats_chain {
	uint64_t keyframe;       /* root object */
	uint64_t objects, stored, logical;
	uint32_t max_depth;
	uint64_t unref;          /* unreferenced objects in it */
} stats_chain;

typedef struct stats_report {
	uint64_t logical_bytes;  /* regular files */
	uint64_t stored_bytes;   /* all object blobs (metadata sizes) */
	uint64_t pending_bytes;  /* staged, not yet encoded */
	uint64_t files, objects, staged_files;
	uint64_t unref_objects, unref_bytes;
	uint64_t db_bytes;       /* tpdefs.db + WAL */
	stats_file *files_v;
	size_t nfiles;
	stats_chain *chains;
	size_t nchains;
} stats_report;

int stats_collect(store *s, stats_report *rep);
void stats_free(stats_report *rep);

/* Printable form of a name/path for one-line output: valid UTF-8 passes, control bytes, '\\'
 * and invalid UTF-8 become \xNN. Always NUL-terminated (truncated to size). */
void stats_quote(const char *in, char *out, size_t size);

/* One path of ino ("/a/b"), -ENOENT when it has no name, -ENAMETOOLONG. */
int stats_path_of(store *s, uint64_t ino, char *buf, size_t size);

#endif
