/* store_admin.h - store queries and transactions used only by maintenance (gc, verify, stats).
 * Kept apart from store.h: the daemon's hot paths never need them. */
#ifndef TPDEFS_STORE_ADMIN_H
#define TPDEFS_STORE_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Every object row, malloc'd (ordered by id). */
int store_admin_objects(store *s, store_obj **objs, size_t *n);

/* Id lists below are malloc'd (NULL when empty), in the order stated, -errno on failure. */

/* Inodes whose data is object obj, ascending (verify: the files a damaged object hurts). */
int store_admin_inodes_of_obj(store *s, uint64_t obj, uint64_t **inos, size_t *n);

/* The lowest-numbered inode whose data is object obj, *ino = 0 when none (gc: a file name for
 * messages, a file to find predecessor candidates for). */
int store_admin_first_inode_of_obj(store *s, uint64_t obj, uint64_t *ino);

/* The obj of every inode that has one, in ascending inode order; an object held by several files
 * appears once per file (gc: which file holding an object is the newest). */
int store_admin_inode_objs(store *s, uint64_t **objs, size_t *n);

/* Inodes whose obj names an object that has no row: their data is lost. By obj, then ino. */
int store_admin_dangling_obj_refs(store *s, uint64_t **inos, size_t *n);

/* Inodes whose predecessor hint names an object that has no row. By pred_hint, then ino. */
int store_admin_dangling_pred_hints(store *s, uint64_t **inos, size_t *n);

/* Linked regular files with a size but neither an object nor staged data. Ascending. */
int store_admin_files_without_data(store *s, uint64_t **inos, size_t *n);

/* 1 when an object row `id` exists (or, on a shared store, its blob waits in trash), 0 when not. */
int store_admin_obj_exists(store *s, uint64_t id);

/* Replace object `old` by the already installed blob of object nw (same content, new base):
 * in one transaction, only when old still has base/hash as in *expect and nw->base (if any)
 * still exists with hash base_hash: insert nw, repoint inodes (obj, pred_hint) and dependent
 * objects from old to nw, fix the depths of nw's descendants, and mark old unreferenced (its
 * row and blob stay until store_release_retired). -EAGAIN when something changed meanwhile.
 * On success *inos / *deps (malloc'd) list the inodes now using nw and the objects now based
 * on it. */
int store_admin_switch(store *s, const store_obj *expect, const store_obj *nw, uint64_t base_hash,
		       uint64_t **inos, size_t *ninos, uint64_t **deps, size_t *ndeps);

/* PRAGMA integrity_check (despite the name: quick_check misses index <-> table mismatches):
 * 0 when "ok", -EIO with the first message otherwise. */
int store_admin_quick_check(store *s, char *msg, size_t len);
/* Whether the metadata database keeps a checksum in every page (1/0; -EOPNOTSUPP for a
 * PostgreSQL store), and the store's format version. */
int store_admin_page_sums(store *s, int *version);

/* Fold the SQLite WAL back into the database file (space comes back at once, also while the
 * daemon runs). Best effort: readers in progress may keep part of it. */
int store_admin_checkpoint(store *s);

/* The 'next_obj' counter (ids below it may have been handed out). */
int store_admin_next_obj(store *s, uint64_t *next);

#endif
