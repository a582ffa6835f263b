/* pred.h - choosing the predecessor a new file version is delta-encoded against.
 *
 * Order: (1) the object the inode replaced (rename over / O_TRUNC of a stored file: pred_hint);
 * (2) a sibling whose name differs only in digits (ckpt_006.pt -> ckpt_007.pt): nearest lower
 * number first, then the most recently stored; (3) the same name in a sibling directory whose
 * name differs only in digits (checkpoint-500/x -> checkpoint-1000/x), nearest lower first.
 * The caller checks layouts and chain depth and tries candidates in order.
 */
#ifndef TPDEFS_PRED_H
#define TPDEFS_PRED_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define PRED_MAX_NUMS 16

/* A name split into its non-digit skeleton (digit runs replaced by one '#') and its numbers. */
typedef struct pred_name {
	char skel[STORE_NAME_MAX + 1];
	size_t skel_len;
	unsigned nnum;
	uint64_t num[PRED_MAX_NUMS]; /* saturating at UINT64_MAX */
} pred_name;

/* 0, or -EINVAL when the name has no digits or too many digit runs. */
int pred_name_parse(const char *name, size_t len, pred_name *out);
/* 1 when a and b differ only in their digits (same skeleton, same count of numbers). */
int pred_same_series(const pred_name *a, const pred_name *b);
/* Compare numbers lexicographically (first differing number decides): <0, 0, >0. */
int pred_num_cmp(const pred_name *a, const pred_name *b);

/* One entry of a directory listing, as the ranking sees it. */
typedef struct pred_entry {
	const char *name;
	size_t len;
	uint64_t recency; /* larger = stored more recently (object id) */
	int pending;      /* not stored yet (waiting for encoding): only a lower number qualifies */
} pred_entry;

/* Indices of entries in the same series as name, best first: lower numbers nearest first, then
 * higher numbers that are stored (not pending) by recency. Returns how many were written to out (at most max). */
size_t pred_rank(const char *name, size_t len, const pred_entry *e, size_t n, size_t *out,
		 size_t max);

/* PRED_CONTENT: not by name: a stored file with the same tensors (ingest's signature lookup). */
enum pred_kind { PRED_HINT = 1, PRED_SIBLING = 2, PRED_SIBDIR = 3, PRED_CONTENT = 4 };

typedef struct pred_cand {
	int kind;
	uint64_t obj;   /* object to use; 0 when the candidate's data is still staged */
	uint64_t ino;   /* inode holding it (0 for a pred_hint object) */
	int newer;      /* a later version of the series (higher number), already stored */
} pred_cand;

/* Candidates for inode ino, best first. *n gets the count (<= max). */
int pred_candidates(store *s, uint64_t ino, pred_cand *out, size_t max, size_t *n);

const char *pred_kind_name(int kind);

#endif
