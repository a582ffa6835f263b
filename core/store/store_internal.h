/* store_internal.h - shared by the store modules (store.c, store_ns.c, store_data.c, store_recover.c,
 * store_admin.c, store_schema.c) only: the connection, its statement cache and lock. Nothing outside
 * core/store includes it. SQL goes through the driver of db.h, never to an engine directly. */
#ifndef TPDEFS_STORE_INTERNAL_H
#define TPDEFS_STORE_INTERNAL_H

#include <limits.h>
#include <pthread.h>

#include "blob.h"
#include "db.h"
#include "store.h"

enum {
	ST_GETATTR, ST_LOOKUP, ST_DENT_GET, ST_INS_INODE, ST_INS_DENT, ST_DEL_DENT, ST_NLINK_ADD,
	ST_TOUCH_DIR, ST_HAS_CHILD, ST_MOVE_DENT, ST_SET_DENT_INO, ST_PARENT, ST_READLINK,
	ST_READDIR, ST_XGET, ST_XSET, ST_XDEL, ST_XLIST, ST_XDEL_ALL, ST_DEL_INODE, ST_SET_PRED,
	ST_OBJ_GET, ST_OBJ_USED_INODE, ST_OBJ_HAS_DEP, ST_OBJ_NEEDED, ST_OBJ_UNREF, ST_OBJ_REREF, ST_OBJ_DEL, ST_OBJ_INS,
	ST_OBJ_RESERVE, ST_INODE_SET_OBJ, ST_BEGIN_STAGING, ST_COMMIT_SIZE, ST_LIST_STAGED,
	ST_STAGED_BYTES, ST_COUNT
};

/* Objects deleted in one transaction whose blobs are unlinked after it commits. */
#define STORE_GONE_MAX 256

struct store {
	char *path;         /* for messages: BACKING, or the URI without its password */
	int dirfd, lockfd;  /* dirfd: where staging/ and tmp/ live (BACKING, the blobs directory of a
			     * shared store, or local_dir when the blobs are in a bucket) */
	blob_store *blobs;  /* objects/ (and, in a bucket, the durable copies of staging/) */
	char *tmpcache;     /* a bucket opened without local_dir: its private cache (removed at
			     * close; its budget is STORE_BLOB_CACHE_INSPECT) */
	char *local;        /* node-local directory: LOCK, control socket (BACKING when embedded) */
	int localfd;        /* == dirfd when embedded */
	int shared;         /* metadata in PostgreSQL (store_shared.c) */
	uint64_t session;   /* shared, serving: this daemon's session id (0: none) */
	int alone;          /* shared: no other session was alive at open (full recovery is safe) */
	int recover_locked; /* shared: the recovery lock is held until store_recover is done */
	int rdonly;         /* STORE_O_RDONLY */
	int repair;         /* STORE_O_REPAIR: page checksums not checked (store_resum) */
	db *db;             /* the metadata connection (db.h: used by one thread at a time) */
	pthread_mutex_t mu; /* guards db, st[] and gone[] */
	db_stmt *st[ST_COUNT]; /* prepared on first use, kept until the connection closes */
	uint64_t gone[STORE_GONE_MAX];
	size_t ngone;
	struct store_gone_copy {
		uint64_t ino, session, seq;
	} gone_copy[STORE_GONE_MAX]; /* durable copies of staged files whose row went in this
				      * transaction: deleted from the bucket after it commits */
	size_t ngone_copy;
	uint64_t copy_seq;  /* the last copy number this session used (atomic) */
	store_obj_gone_fn gone_fn;
	void *gone_ctx;
};

/* Cached statement id, reset with every parameter NULL (lock held); NULL when it cannot be
 * prepared. */
db_stmt *store_stmt(store *s, int id);
/* Run a statement to completion, ignoring rows, then reset it: 0 or -errno. */
int store_step_done(store *s, db_stmt *st);
/* store_step_done counting the rows (an UPDATE/DELETE ... RETURNING: the rows it changed). */
int store_step_count(store *s, db_stmt *st);
/* Transactions (lock held). store_end commits when r >= 0, rolls back otherwise; returns r or
 * the commit's error. */
int store_begin(store *s);
int store_end(store *s, int r);
void store_lock(store *s);
void store_unlock(store *s);
void store_row_attr(db_stmt *st, int col, store_attr *a);
/* Remove the staging file of ino (and its durable copy in a bucket). */
void store_staging_gone(store *s, uint64_t ino);
int store_getattr_locked(store *s, uint64_t ino, store_attr *a);
int store_parent_locked(store *s, uint64_t ino, uint64_t *parent, char *name, size_t *len);
/* Object row of id (lock held); -ENOENT when none. */
int store_obj_get_locked(store *s, uint64_t id, store_obj *o);
/* store_drop_inode with the lock held (its own transaction). */
int store_drop_inode_locked(store *s, uint64_t ino);
/* Delete obj (and then its base, ...) if nothing needs it any more; lock + transaction held. */
int store_obj_release_locked(store *s, uint64_t obj);

/* Insert the row of a freshly installed object (lock held, inside a transaction). */
int store_obj_insert_locked(store *s, const store_obj *o);

/* Collect column 0 of a prepared statement into a malloc'd array (lock held; on error *ids is
 * NULL). The caller resets or finalizes the statement. */
int store_collect_ids(store *s, db_stmt *st, uint64_t **ids, size_t *n);

/* The metadata half of replacing object expect by nw (same content, new base; its blob already
 * installed), lock and transaction held: see store_admin_switch. -EAGAIN (nothing written) when
 * expect or nw's base changed meanwhile. */
int store_switch_locked(store *s, const store_obj *expect, const store_obj *nw,
			uint64_t base_hash, uint64_t **inos, size_t *ninos, uint64_t **deps,
			size_t *ndeps);

/* Fill o from an objects row selected as (id, base, depth, size, stored, hash, unref). */
void store_obj_from_row(db_stmt *st, store_obj *o);

/* store_shared.c: open a store whose BACKING is a PostgreSQL URI (s->path, s->mu set up by the
 * caller): connect, check the format, open the blobs directory and its marker, the local
 * directory and its LOCK; with a lock, the store's mount lock. */
int store_open_shared(store *s, const char *uri, const store_opts *o, int flags, char *err,
		      size_t errlen);
/* store_bucket.c: blobs in an S3 bucket. Check or create the bucket for a new store (the
 * canonical URI to record goes to canon); open it for store s with its cache in cache_dir. */
int store_bucket_format(const char *uri, const char *id, char *canon, size_t clen, char *err,
			size_t errlen);
int store_bucket_open(store *s, const char *canon, const char *id, const char *cache_dir,
		      const store_opts *o, char *err, size_t errlen);
/* Durable copies of staged files in a bucket (store_bucket.c; no lock held: network). The key of
 * ino's copy number seq by session; delete one (0: none); upload the first size bytes of the
 * local staging file as a new copy (*seq its number, 0 for size 0). */
void store_copy_key(uint64_t ino, uint64_t session, uint64_t seq, char *buf, size_t size);
void store_copy_delete(store *s, uint64_t ino, uint64_t session, uint64_t seq);
int store_copy_upload(store *s, uint64_t ino, uint64_t size, uint64_t *seq);
/* Open ino's staged bytes for reading on a node that does not own them: the copy the row names,
 * fetched into the local staging file (the fd); *ours = 1 (and 0 returned) when this session
 * owns the file, whose local file is then the one to open; -ESTALE when it is stored meanwhile. */
int store_bucket_staging_open(store *s, uint64_t ino, int *ours);
/* Take a staged file over from a dead (or no) owner: its copy fetched, a copy of this session's
 * uploaded, the row switched only if it still names the copy fetched. 1 when this session owns
 * it (*taken: just now), 0 when a live node does or another took it first, -errno. */
int store_bucket_take(store *s, uint64_t ino, int *taken);
/* Blobs in a bucket, the stage_owner row's copy number (lock held): who owns ino's staged data
 * and which of its copies is the durable one (0, 0: no row); record this session's new copy seq
 * (*prev: the one it replaces) only while it owns ino (-EBUSY otherwise; transaction held); take
 * ino from owner `from` whose copy is from_seq with copy seq, only if the row still says so
 * (-EBUSY otherwise; transaction held); 1 when a session is alive. */
int store_shared_copy_locked(store *s, uint64_t ino, uint64_t *owner, uint64_t *seq);
int store_shared_set_copy_locked(store *s, uint64_t ino, uint64_t seq, uint64_t *prev);
int store_shared_take_locked(store *s, uint64_t ino, uint64_t from, uint64_t from_seq,
			     uint64_t seq);
int store_shared_alive_locked(store *s, uint64_t session);
/* Ownership of staged files on a shared store (lock and transaction held; no-ops otherwise):
 * claim for this session (-EBUSY when another live session owns it, unless take_live), whether
 * this session owns it, and forget the owner (stored or deleted). */
int store_shared_claim_locked(store *s, uint64_t ino, int take_live);
int store_shared_owned_locked(store *s, uint64_t ino);
int store_shared_disown_locked(store *s, uint64_t ino);
/* A deleted object's blob waits in trash for a grace period (lock + transaction held). */
int store_shared_trash_locked(store *s, const store_obj *o);
/* The mount's recovery is over: other nodes may mount. */
void store_shared_recovered(store *s);
/* store_data.c: create the tensor signature index when a read-write open finds it missing. */
int store_sigs_ensure(store *s);
/* Shared helpers of store.c for both kinds of store. */
/* A one-line message into err (NULL or 0 bytes: none). */
void store_seterr(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* 1 when every entry of the directory is one ours(name) accepts, 0 when not, -errno. */
int store_dir_empty(int dirfd, int (*ours)(const char *name));
int store_meta_get(db *d, const char *key, char *buf, size_t n);
/* meta.version as a number (0 when missing); 0 or store_meta_get's -errno (-EIO: damaged). */
int store_meta_version(db *d, long *ver);
int store_check_format(store *s, char *err, size_t errlen);
int store_take_lock(store *s, int flags, char *err, size_t errlen);

/* store_schema.c: the schema DDL of a dialect (NULL: none yet), and creating it with the rows of
 * a new store (format, version, next_obj, the root directory) inside the caller's
 * transaction. */
const char *store_schema_ddl(int dialect);
int store_schema_create(db *d, int64_t now, uint32_t root_mode, uint32_t uid, uint32_t gid);

#endif
