/* fs.h - shared state of the mount.tpdefs daemon (one instance, owned by main). */
#ifndef TPDEFS_FS_H
#define TPDEFS_FS_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>

#include "chain.h"
#include "store.h"

/* Largest read and write request (max_write, max_readahead) and the kernel's read-ahead window
 * on the mount (bdi read_ahead_kb, set by main when it may): one request per 1 MiB. */
#define FS_IO_MAX (1u << 20)
/* Chunk cache memory populated right after mount (chain_opts.prefault_bytes), capped by
 * cache_size: a cold read of a checkpoint of up to this size decodes into memory that is already
 * backed (first touch of a page costs more than decoding into it on the VMs measured). */
#define FS_PREFAULT (64u << 20)

typedef struct fs_opts {
	const char *backing, *mountpoint;
	char local_dir[4096];     /* node-local directory of a shared store (PostgreSQL BACKING) */
	char s3_credentials[1024]; /* blobs in a bucket: a credentials file ("" : environment) */
	uint64_t blob_cache;       /* blobs in a bucket: bytes of the node-local block cache */
	int blob_cache_set;
	uint64_t cache_size;      /* decoded chunks held by the chain cache */
	unsigned workers;         /* FUSE worker threads */
	unsigned max_chain;       /* delta chain depth bound */
	uint64_t staging_limit;   /* backpressure: staged bytes waiting for encoding */
	unsigned debounce_ms;     /* delay between last close and encoding */
	unsigned newest_keyframe; /* 1: once encoding is idle, the newest version of each chain
				   * becomes its keyframe (reverse deltas, see gc.h) */
	int allow_other, ro, debug, foreground;
	char fsname[256], subtype[64];
	char kopts[512];          /* kernel mount flags passed through (nosuid, noexec, ...) */
} fs_opts;

/* In-memory state of an inode the kernel knows or the daemon is working on.
 * Lock order: dlock, then mu, then the store's internal mutex. */
typedef struct fs_node {
	uint64_t ino;
	uint64_t nlookup;          /* kernel references (guarded by fs.nmu) */
	unsigned refs;             /* internal references (guarded by fs.nmu) */
	struct fs_node *next;      /* hash chain (fs.nmu) */
	pthread_rwlock_t dlock;    /* shared: reads/writes; exclusive: staging <-> object moves */
	pthread_mutex_t mu;        /* the fields below */
	int sfd;                   /* staging file, -1 if not open */
	int staged;
	uint64_t obj;
	uint64_t size;             /* current logical size */
	int64_t mtime, ctime;
	int dirty;                 /* size/times not yet committed to the store */
	unsigned nwriters;         /* open handles with write access */
	unsigned unflushed;        /* writer handles not flushed since their last write */
	unsigned inflight;         /* writes in progress */
	uint64_t gen;              /* bumped by every data change (encoder commits only if equal) */
	uint64_t seen_gen;         /* gen at the previous open (page cache still valid if equal) */
	int loaded;
} fs_node;

typedef struct encq encq;
typedef struct ctl ctl;

typedef struct fs {
	const fs_opts *o;
	int serving;  /* set once mounted and in the background: log lines go to the daemon's log
		       * (before that, a failure is reported as the one line mount.tpdefs prints) */
	store *st;
	chain *ch;
	struct fuse_session *se;
	pthread_mutex_t nmu;
	fs_node **ht;
	size_t htsize;
	encq *q;
	ctl *c;
	/* One gc run at a time: an explicit gc (control socket) and the encoder's layout pass
	 * would each plan on the other's half-done switches and redo its work. */
	pthread_mutex_t gcmu;
	double timeout;           /* entry/attr cache time given to the kernel (seconds) */
	/* Open file handles (ops.c), for the oldest one's open time. */
	pthread_mutex_t hmu;
	struct fs_fh *handles;
} fs;

/* node.c */
int fs_nodes_init(fs *f);
void fs_nodes_free(fs *f);
/* Get (loading from the store if needed) with an internal reference. -errno. */
int fs_node_get(fs *f, uint64_t ino, fs_node **out);
void fs_node_put(fs *f, fs_node *n);
/* Kernel reference bookkeeping. */
void fs_node_lookup_inc(fs *f, fs_node *n);
void fs_node_forget(fs *f, uint64_t ino, uint64_t nlookup);
/* Find without loading (internal reference) or NULL. */
fs_node *fs_node_find(fs *f, uint64_t ino);
/* Move the inode's data into a staging file (materialising its object unless trunc). Takes
 * dlock exclusively. */
int fs_node_stage(fs *f, fs_node *n, int trunc);
/* Make the staged size/times durable (fsync staging, commit). Caller holds dlock shared. */
int fs_node_commit(fs *f, fs_node *n);
/* A shared store: reread the inode's data state from the store when no writer of this node holds
 * it; a change (another node wrote or stored it) drops the staging fd and bumps gen, so the
 * kernel's cached pages go (close-to-open). */
void fs_node_refresh(fs *f, fs_node *n);
/* Named transitions of the node state: the only places that change staged, obj, gen, dirty,
 * nwriters, unflushed, inflight and seen_gen besides loading. All but fs_node_stage/commit are
 * called with n->mu held. */
/* truncate(2) of staged data to size. */
void fs_node_truncated(fs_node *n, uint64_t size, int64_t mtime, int64_t ctime);
/* A handle was opened (writer: with write access). Returns 1 when the kernel may keep its
 * cached pages (nothing changed since the previous open). */
int fs_node_opened(fs_node *n, int writer);
/* A write through a handle starts / ended (ok: the bytes up to end are staged). handle_flushed
 * is the handle's own "flushed since its last write" flag. */
void fs_node_write_begin(fs_node *n, int *handle_flushed);
void fs_node_write_end(fs_node *n, int ok, uint64_t end, int64_t now);
/* close(2) of a writer handle made the data durable. */
void fs_node_handle_flushed(fs_node *n, int *handle_flushed);
/* The last close of a writer handle; returns 1 when no writer is left and the data waits in
 * staging (time to queue it for encoding). */
int fs_node_writer_closed(fs_node *n, int handle_flushed);
/* The encoder committed the staged data as object obj (caller holds dlock exclusively, and mu):
 * reads now go to the object, the staging file is gone. */
void fs_node_encoded(fs_node *n, uint64_t obj);
/* gc replaced object old by nw for inos: repoint their nodes (waits out reads of old). */
void fs_nodes_repoint(fs *f, uint64_t old, uint64_t nw, const uint64_t *inos, size_t n);
/* A barrier on every node: reads that started before the call are over when it returns. */
void fs_nodes_barrier(fs *f);

/* ops.c */
extern const struct fuse_lowlevel_ops fs_ops;
/* When the oldest open file handle was opened (ns since the epoch), 0 when none. */
int64_t fs_oldest_open(fs *f);

/* encq.c: the encode queue */
int encq_new(fs *f, encq **out);
void encq_stop(encq *q);  /* finish the running job, leave the rest staged */
void encq_free(encq *q);
/* Queue ino for encoding after the debounce delay (now = 1: no delay). */
void encq_push(encq *q, uint64_t ino, int now);
/* Backpressure: wait while too many staged bytes wait for encoding. */
void encq_throttle(encq *q);
/* Encode everything closed now; the report goes to *rep (malloc'd), the number of encodes that
 * failed meanwhile to *failed. 0 or -errno. */
int encq_flush(encq *q, char **rep, unsigned *failed);
void encq_status(encq *q, uint64_t *queued, uint64_t *queued_bytes, uint64_t *done);

/* control.c */
int ctl_start(fs *f, ctl **out);
void ctl_quiesce(ctl *c); /* unlink the socket: new clients fail */
void ctl_stop(ctl *c);

#endif
