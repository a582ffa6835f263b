/* codec_stash.c - idle codec contexts shared by a set of workers (see codec.h). */
#include "codec.h"

#include <pthread.h>
#include <stdlib.h>

struct codec_stash {
	pthread_mutex_t mu;
	int level;
	unsigned keep, n;
	codec_ctx *idle[]; /* keep slots, n in use */
};

codec_stash *codec_stash_new(unsigned keep, int zstd_level)
{
	codec_stash *s = calloc(1, sizeof(*s) + (size_t)keep * sizeof(s->idle[0]));
	if (!s)
		return NULL;
	if (pthread_mutex_init(&s->mu, NULL) != 0) {
		free(s);
		return NULL;
	}
	s->level = zstd_level;
	s->keep = keep;
	return s;
}

codec_ctx *codec_stash_take(codec_stash *s)
{
	pthread_mutex_lock(&s->mu);
	codec_ctx *c = s->n ? s->idle[--s->n] : NULL;
	pthread_mutex_unlock(&s->mu);
	return c ? c : codec_ctx_new(s->level);
}

void codec_stash_give(codec_stash *s, codec_ctx *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->n < s->keep) {
		s->idle[s->n++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	codec_ctx_free(c);
}

void codec_stash_free(codec_stash *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->n; i++)
		codec_ctx_free(s->idle[i]);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
