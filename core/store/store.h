/* store.h - the backing directory: SQLite metadata (inodes, dentries, xattrs, objects), object
 * blobs and staging files (layout in docs/FORMAT.md (backing directory)).
 *
 * One writer connection guarded by a mutex: every function is thread-safe and each namespace
 * change is one transaction. Inode numbers are the FUSE inode numbers (root = 1), never reused.
 */
#ifndef TPDEFS_STORE_H
#define TPDEFS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "blob.h"
#include "io.h"

#define STORE_FORMAT_NAME "tpdefs-backing"
/* The newest format version this build reads. Version 2: the embedded store's database keeps a
 * checksum in every page (db_sqlite_vfs.h); older builds refuse it, since their writes would
 * leave stale checksums behind. A PostgreSQL store is still created as version 1: nothing in it
 * changed. */
#define STORE_FORMAT_VERSION 2
#define STORE_FORMAT_VERSION_SHARED 1
#define STORE_ROOT_INO 1
#define STORE_NAME_MAX 255
#define STORE_SOCK_NAME "control.sock"

typedef struct store store;

typedef struct store_attr {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t size;          /* logical size (staged files: as of the last commit) */
	int64_t atime, mtime, ctime; /* nanoseconds since the epoch */
	uint64_t rdev;
	uint64_t obj;           /* committed object holding the data, 0 if none */
	uint64_t pred_hint;     /* object this inode's data replaced (predecessor hint), 0 if none */
	int staged;             /* 1: the data is in the staging file, not (yet) in obj */
	uint64_t stored_bytes;  /* object file size of obj, 0 if none */
} store_attr;

typedef struct store_obj {
	uint64_t id, base;      /* base 0: keyframe */
	uint32_t depth;         /* 0 keyframe, base depth + 1 otherwise */
	uint64_t size, stored, hash;
	int unref;              /* 1: no inode uses it, kept only as a base of others */
} store_obj;

/* Flags for store_open. */
#define STORE_O_NOCREATE 1  /* refuse to initialise an empty/missing directory */
#define STORE_O_NOLOCK 2    /* do not take BACKING/LOCK (read-only inspection) */
#define STORE_O_NOWAIT 4    /* fail at once when LOCK is held (default: wait up to 20 s for a
                               daemon that is shutting down) */
#define STORE_O_SHARE 16    /* a daemon serving a shared store alongside other nodes' daemons
			       (without it an open that locks has the shared store to itself) */
#define STORE_O_RDONLY 8    /* a ro mount: an existing store only, database opened read-only,
                               LOCK neither created nor written, no WAL checkpoint at close */
#define STORE_O_REPAIR 32   /* store_resum: page checksums not checked, no integrity check at
                               open (the caller runs its own) */

/* Open (initialising an empty or missing directory, created 0700) and lock BACKING.
 * Errors (with a message in err): -ENOTDIR/-ENOENT bad path, -EMEDIUMTYPE not a tpdefs backing
 * directory, -EPROTONOSUPPORT newer format, -EBUSY served by a running daemon, -errno. */
int store_open(const char *dir, int flags, store **out, char *err, size_t errlen);
/* store_open for BACKING that is a directory or a PostgreSQL URI (store_uri.h). A URI names a
 * shared store: metadata in the server, blobs in the directory recorded by store_format_shared;
 * local_dir is then this node's directory for LOCK and the control socket (created 0700). */
int store_open_at(const char *backing, const char *local_dir, int flags, store **out, char *err,
		  size_t errlen);
/* What a shared store's node may set beyond BACKING (all optional). */
#define STORE_BLOB_CACHE_DEFAULT (10ULL << 30)
#define STORE_BLOB_CACHE_INSPECT (256ULL << 20) /* a command's private cache in /var/tmp */
typedef struct store_opts {
	const char *local_dir;      /* see store_open_at */
	uint64_t blob_cache;        /* blobs in a bucket: bytes of fetched blocks kept on this node
				     * (in local_dir/blobcache), when blob_cache_set */
	int blob_cache_set;         /* 0: STORE_BLOB_CACHE_DEFAULT */
	const char *s3_credentials; /* blobs in a bucket: an AWS-style credentials file (NULL: the
				     * environment's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) */
	void (*log)(void *ctx, const char *msg); /* blobs in a bucket: each failed try of a
						  * request, from any thread (NULL: silent) */
	void *log_ctx;
} store_opts;
int store_open_opts(const char *backing, const store_opts *o, int flags, store **out, char *err,
		    size_t errlen);
/* Create a shared store: the schema in the (empty) database named by uri, and where its blobs
 * go: a directory every node mounts (objects/, staging/, tmp/ and a marker naming the store), or
 * an S3 URI (s3://bucket/prefix?endpoint=..., the bucket created when missing, a marker object
 * naming the store). Refuses a database that holds tables already, and a blobs directory or
 * prefix that is not empty. 0, or -errno with a one-line message. */
int store_format_shared(const char *uri, const char *blobs_dir, char *err, size_t errlen);
void store_close(store *s);
/* Bring the store's format up to this build's (offline: opened with its lock, no daemon).
 * Version 1 -> 2: the embedded store's database is rewritten (VACUUM) with a checksum in every
 * page. *from and *to: the versions before and after; *rewrote: the database was rewritten (also
 * when an upgrade cut short had already recorded the version). A PostgreSQL store is left as
 * it is. 0 or -errno with a message in err. */
int store_upgrade(store *s, int *from, int *to, int *rewrote, char *err, size_t errlen);
/* Rewrite every page's checksum of an embedded store opened with STORE_O_REPAIR, after a tool
 * outside tpdefs (an older tpdefs, the sqlite3 shell) wrote to its database without them; only
 * when SQLite's own integrity check passes, and checked again with the sums afterwards. */
int store_resum(store *s, char *err, size_t errlen);
/* Where the LOCK and the control socket live (BACKING, or local_dir of a shared store). */
const char *store_local_dir(const store *s);
int store_local_dirfd(const store *s);
/* 1 when the metadata lives in PostgreSQL. */
int store_is_shared(const store *s);
/* This node's name for a shared store's sessions: TPDEFS_HOST when set (tests standing in for
 * several nodes on one machine), else the host name. */
void store_host_name(char *buf, size_t size);
/* A shared store's staged file whose node is gone (or that has no owner) becomes this daemon's:
 * 1 when it was taken over just now (queue it), 0 when not, -errno. */
int store_stage_takeover(store *s, uint64_t ino);
/* The local_dir of every live daemon serving this shared store from this host (malloc'd
 * strings in a malloc'd array). */
int store_shared_local_dirs(store *s, char ***dirs, size_t *n);
/* 1 when this process may encode staged inode ino (a shared store: it staged it, or the node
 * that did is gone and this one takes it over), 0 when another live node owns it, -errno.
 * Always 1 for a directory store. */
int store_stage_mine(store *s, uint64_t ino);
/* Unlink the blobs of objects deleted more than grace_ns ago (-1: the default, 10 min, or
 * TPDEFS_TRASH_GRACE_S) and before the oldest file handle open on any live node: another node
 * may still read an object it opened before the delete.
 * Count unlinked, or -errno. 0 for a directory store, which unlinks at once. */
int store_shared_sweep(store *s, int64_t grace_ns);
/* A shared store's deleted object still in trash (its blob kept for the grace period): id, base
 * and stored size in *o. -ENOENT when none (always, for a directory store). */
int store_trash_get(store *s, uint64_t id, store_obj *o);
/* Publish when this daemon's oldest open file handle was opened (0: none): the trash keeps every
 * blob deleted after that. */
int store_shared_set_oldest_open(store *s, int64_t ns);
/* One gc at a time in the whole store: 0, or -EBUSY when another node runs one. Directory
 * stores: always 0 (their LOCK and the daemon's own mutex serialise). */
int store_gc_lock(store *s);
void store_gc_unlock(store *s);
/* A shared store opened for inspection: 1 when a process serves it (host and its local_dir
 * filled in), 0 when none does, -errno. */
int store_shared_mount(store *s, char *host, size_t hlen, char *local, size_t llen);
/* Reopen the SQLite connection: after fork(), whose child does not own the parent's POSIX
 * locks (SQLite must never use a connection across fork). Keeps BACKING/LOCK. */
int store_reopen(store *s);
/* Fold the WAL into the database and truncate it (after a flush). */
int store_checkpoint(store *s);
const char *store_dir(const store *s);
int store_dirfd(const store *s);

/* Called (outside any store lock) whenever an object is deleted, so readers drop it. */
typedef void (*store_obj_gone_fn)(void *ctx, uint64_t obj);
void store_set_obj_gone(store *s, store_obj_gone_fn fn, void *ctx);

/* Mount-time recovery: remove tmp files, orphan blobs/rows, nlink==0 inodes and staging files
 * nobody owns. Returns (malloc'd) the inodes whose staged data still needs encoding. */
int store_recover(store *s, uint64_t **staged, size_t *nstaged);

/* Namespace. Names are byte strings (not NUL-terminated), 1..255 bytes. */
int store_getattr(store *s, uint64_t ino, store_attr *a);
int store_lookup(store *s, uint64_t parent, const char *name, size_t len, store_attr *a);
/* Create an inode (file, dir, symlink with target, node) and its dentry. */
int store_mknode(store *s, uint64_t parent, const char *name, size_t len, uint32_t mode,
		 uint32_t uid, uint32_t gid, uint64_t rdev, const char *target, store_attr *a);
int store_link(store *s, uint64_t ino, uint64_t parent, const char *name, size_t len,
	       store_attr *a);
/* Remove a dentry (rmdir: isdir = 1). *ino_out gets the inode, *nlink_out its new link count. */
int store_unlink(store *s, uint64_t parent, const char *name, size_t len, int isdir,
		 uint64_t *ino_out, uint32_t *nlink_out);
/* rename(2) with RENAME_NOREPLACE / RENAME_EXCHANGE. A replaced inode is reported in *victim
 * (0 if none) with its new link count. */
int store_rename(store *s, uint64_t p1, const char *n1, size_t l1, uint64_t p2, const char *n2,
		 size_t l2, unsigned flags, uint64_t *victim, uint32_t *victim_nlink);
int store_readlink(store *s, uint64_t ino, char *buf, size_t size); /* length or -errno */

#define STORE_SET_MODE 1
#define STORE_SET_UID 2
#define STORE_SET_GID 4
#define STORE_SET_SIZE 8
#define STORE_SET_ATIME 16
#define STORE_SET_MTIME 32
#define STORE_SET_CTIME 64
int store_setattr(store *s, uint64_t ino, const store_attr *a, unsigned mask);

/* One directory entry; return nonzero from the callback to stop. cookie is > 0 and increasing. */
typedef int (*store_dirent_fn)(void *ctx, int64_t cookie, const char *name, size_t len,
			       const store_attr *a);
int store_readdir(store *s, uint64_t dir, int64_t after, store_dirent_fn fn, void *ctx);
/* A parent and name of ino (any one of its links). -ENOENT when unlinked. */
int store_parent(store *s, uint64_t ino, uint64_t *parent, char *name, size_t *len);
int store_isempty_dir(store *s, uint64_t dir); /* 1 empty, 0 not, -errno */

/* Delete an inode whose link count is 0 (last forget/release): xattrs, staging, unused objects. */
int store_drop_inode(store *s, uint64_t ino);

/* Extended attributes. get/list: length, or -ERANGE when size is too small (size 0: length). */
int store_setxattr(store *s, uint64_t ino, const char *name, const void *val, size_t len,
		   int flags);
ssize_t store_getxattr(store *s, uint64_t ino, const char *name, void *buf, size_t size);
ssize_t store_listxattr(store *s, uint64_t ino, char *buf, size_t size);
int store_removexattr(store *s, uint64_t ino, const char *name);

/* Names under BACKING (docs/FORMAT.md): objects/<id>.tpdo and staging/<ino>, each number as 16
 * lowercase hex digits. Made and parsed only here so a scan never disagrees with a writer. */
#define STORE_BLOB_DIR "objects"
#define STORE_STAGING_DIR "staging"
#define STORE_BLOB_NAME_SIZE 30    /* "objects/" + 16 hex + ".tpdo" + NUL */
#define STORE_STAGING_NAME_SIZE 25 /* "staging/" + 16 hex + NUL */
/* The blob of object id, relative to BACKING ("objects/00000000000000ab.tpdo"). */
void store_blob_name(uint64_t id, char *buf, size_t size);
/* A file name as found in objects/ ("00000000000000ab.tpdo"): 0 and *id, or -EINVAL when the
 * name is not one store_blob_name makes (*id untouched). */
int store_blob_name_parse(const char *name, uint64_t *id);
/* The staging file of ino, relative to BACKING ("staging/00000000000000ab"). */
void store_staging_name(uint64_t ino, char *buf, size_t size);
/* A file name as found in staging/: 0 and *ino, or -EINVAL (*ino untouched). */
int store_staging_name_parse(const char *name, uint64_t *ino);

/* Staging. */
void store_staging_path(const store *s, uint64_t ino, char *buf, size_t size);
/* Open the staging file of ino (O_RDWR, created empty when create). fd or -errno. */
int store_staging_open(store *s, uint64_t ino, int create);
/* The inode's data moves to staging: staged=1, pred_hint = pred_hint or obj, obj = 0, size.
 * The staging file must already be durable. */
int store_begin_staging(store *s, uint64_t ino, uint64_t size, int64_t mtime, int64_t ctime);
/* Record a staged file's durable size and times (after fsync of the staging file). */
int store_commit_size(store *s, uint64_t ino, uint64_t size, int64_t mtime, int64_t ctime);
/* 1 when ino's staged bytes are where the store keeps them durably (the staging file; in a
 * bucket, its uploaded copy), 0 when missing, -errno. */
int store_staging_durable(store *s, uint64_t ino);
/* Inodes with staged data (for flush / requeue), malloc'd. */
int store_list_staged(store *s, uint64_t **inos, size_t *n);
/* Bytes held in staging files of staged inodes. */
int store_staged_bytes(store *s, uint64_t *bytes);

/* Objects. */
void store_obj_path(const store *s, uint64_t id, char *buf, size_t size);
/* Open the blob of object id for reading (a file, or an object in a bucket). 0 or -errno. */
int store_obj_open(store *s, uint64_t id, io_rfile **out);
/* Every blob in objects/: its name there, its id (0 when the name is not one the store makes,
 * which nothing of the store's removes), size and time. fn returns nonzero to stop. */
typedef int (*store_blob_fn)(void *ctx, const char *name, uint64_t id, uint64_t size,
			     int64_t mtime_ns);
int store_blob_list(store *s, store_blob_fn fn, void *ctx);
/* Remove objects/<name> (an orphan found by store_blob_list). */
int store_blob_delete(store *s, const char *name);
/* Abort uploads into the bucket begun before before_ns and never completed (a node died
 * mid-upload); fn hears each key. Count, or -errno; 0 for a directory. */
int store_blob_uploads_clean(store *s, int64_t before_ns, blob_upload_fn fn, void *ctx);
/* Blobs in a bucket: remove durable copies of staged files (staging/<ino>) whose inode is gone or
 * stored, uploaded before before_ns (a crash between an upload and its commit leaves them); fn
 * hears each key and size. Count, or -errno; 0 for a directory. */
typedef void (*store_copy_fn)(void *ctx, const char *key, uint64_t size);
int store_staging_copies_clean(store *s, int64_t before_ns, store_copy_fn fn, void *ctx);
/* 1 when the blobs are in a bucket (node-local staging, a cache of fetched blocks). */
int store_blobs_remote(const store *s);
/* One line on what the blobs' cache and the bucket's client did since open (for the log at
 * unmount and for benchmarks): "blob cache: hits=... misses=... ...; s3: gets=... ...". */
void store_blob_report(store *s, char *buf, size_t size);
int store_obj_get(store *s, uint64_t id, store_obj *o);
/* Reserve a fresh object id (never reused). */
int store_obj_reserve(store *s, uint64_t *id);
/* Open a temporary file under BACKING/tmp (O_RDWR); its path goes to path. fd or -errno. */
int store_tmp_create(store *s, char *path, size_t size);
/* fsync fd, rename tmp_path to the blob path of id, fsync the directory. */
int store_obj_install(store *s, int fd, const char *tmp_path, uint64_t id);
/* In one transaction: insert object o, point ino at it (staged = 0, pred_hint cleared, size),
 * then free objects nobody needs any more. Only when check(ctx) returns 1 (called inside the
 * transaction); otherwise -EAGAIN and the caller deletes the blob. */
int store_commit_object(store *s, uint64_t ino, const store_obj *o, int (*check)(void *ctx),
			void *ctx);
/* A new version's predecessor re-coded against it (reverse delta): committed together with it. */
typedef struct store_rebase {
	store_obj expect;      /* the predecessor's row as it was read for re-coding */
	store_obj nw;          /* its installed re-coded blob, based on the new version */
	int switched;          /* out: 1 when nw replaced expect (expect is then retired: unref,
				* row and blob kept until store_release_retired) */
	uint64_t *inos, *deps; /* out (malloc'd): inodes now using nw, objects now based on it */
	size_t ninos, ndeps;
} store_rebase;

/* store_commit_object, and with rb in the same transaction: switch rb->expect to rb->nw (whose
 * base is o). When rb->expect changed meanwhile the switch is skipped (rb->switched = 0, the
 * caller discards rb->nw's blob) and o is committed alone. */
int store_commit_version(store *s, uint64_t ino, const store_obj *o, store_rebase *rb,
			 int (*check)(void *ctx), void *ctx);

/* Tensor signatures, for finding a base by content when names do not lead to one: a few keys per
 * object (its whole tensor layout, and its largest tensors' names, sizes and widths). Record
 * obj's (at most STORE_SIG_MAX), and find the newest objects files hold that share the most of
 * sigs (at most max; one indexed query). */
#define STORE_SIG_MAX 9
int store_sig_put(store *s, uint64_t obj, const uint64_t *sigs, size_t n);
int store_sig_find(store *s, const uint64_t *sigs, size_t nsigs, uint64_t *objs, size_t max,
		   size_t *n);
/* Objects with this logical size and content hash, newest first (at most max; whole-file dedup
 * compares their bytes before sharing one). */
int store_obj_find_content(store *s, uint64_t size, uint64_t hash, uint64_t *ids, size_t max,
			   size_t *n);
/* Point staged inode ino at the existing object o (the same bytes: whole-file dedup), in one
 * transaction, only when check(ctx) returns 1 and o is still as compared (-EAGAIN otherwise). */
int store_commit_existing(store *s, uint64_t ino, const store_obj *o, int (*check)(void *ctx),
			  void *ctx);
/* 1 when anything but inode ino's predecessor hint needs object id (an inode's data or hint, or
 * an object based on it), 0 when not, -errno. */
int store_obj_needed(store *s, uint64_t id, uint64_t ino);

/* Free a retired object (and then its bases) if nothing needs it: blobs unlinked after the
 * commit, the obj_gone hook told. Call once no reader can still hold its id. */
int store_release_retired(store *s, uint64_t id);

/* Delete a blob that was never committed. */
void store_obj_discard(store *s, uint64_t id);

typedef struct store_totals {
	uint64_t inodes, files, objects, logical_bytes, stored_bytes, staged_files, unref_objects;
} store_totals;
int store_totals_get(store *s, store_totals *t);

int64_t store_now_ns(void);

/* A file name made safe for logs and line protocols: bytes outside printable ASCII, spaces and
 * backslashes become \xNN. out needs 4 * len + 1 bytes. */
void store_name_escape(const char *name, size_t len, char *out);

#endif
