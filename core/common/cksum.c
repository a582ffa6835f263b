/* cksum.c - XXH3-64 wrappers (see cksum.h for why xxhash). */
#include "cksum.h"

#include <xxhash.h>

uint64_t cksum64(const void *buf, size_t len)
{
	return (uint64_t)XXH3_64bits(buf, len);
}

/* cksum_state is an XXH3_state_t behind an opaque name. */
cksum_state *cksum_new(void)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return NULL;
	XXH3_64bits_reset(st);
	return (cksum_state *)st;
}

void cksum_update(cksum_state *s, const void *buf, size_t len)
{
	XXH3_64bits_update((XXH3_state_t *)s, buf, len);
}

uint64_t cksum_digest(const cksum_state *s)
{
	return (uint64_t)XXH3_64bits_digest((const XXH3_state_t *)s);
}

void cksum_free(cksum_state *s)
{
	XXH3_freeState((XXH3_state_t *)s);
}
