/* codec_micro.c - codec ratio/speed on (predecessor, checkpoint) file pairs, without the layout
 * parser: files of a family have equal sizes and tensors at equal offsets, so offset-aligned
 * chunks with a fixed element width approximate tensor-aligned chunking.
 *
 * Build by hand (not part of the meson build):
 *   cc -O2 -D_GNU_SOURCE -Icore/codec -Icore/common bench/codec_micro.c core/codec/codec.c \
 *      core/codec/codec_zstd.c core/codec/codec_planes.c core/codec/codec_sparse.c \
 *      core/codec/planes.c core/codec/eliasdelta.c -lzstd -o /tmp/codec_micro
 * Usage: codec_micro [-l level] [-c chunk] [-o] W:base:new[:segs] ...  (W = width, 0 = untyped)
 *   segs: optional file of "off len width" lines (tensor regions of new, equal offsets in base);
 *   then tensors are chunked per tensor and the bytes between them coded as untyped with ZREF
 *   against the same offsets of base, like the real layout-aligned pipeline.
 *   -o also computes the oracle: smallest of all forced codecs per chunk (codec_encode_as, which
 *      never uses the grouped DSUB layout, so selection can beat this "oracle").
 * Prints ratio = new bytes / payload bytes, single-thread encode and decode MB/s, codec counts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: the machine is shared */
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(n ? (size_t)n : 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

int main(int argc, char **argv)
{
	int level = 3, oracle = 0;
	size_t chunk = 1 << 20;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-l"))
			level = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-c"))
			chunk = (size_t)atol(argv[++i]);
		else if (!strcmp(argv[i], "-o"))
			oracle = 1;
	}
	codec_ctx *c = codec_ctx_new(level);
	uint8_t *p = malloc(codec_bound(chunk)), *q = malloc(codec_bound(chunk)), *o = malloc(chunk);
	double tin = 0, tout = 0, torc = 0, tenc = 0, tdec = 0;
	unsigned long counts[CODEC_MAX] = {0};
	for (; i < argc; i++) {
		char *spec = strdup(argv[i]);
		unsigned w = (unsigned)atoi(strtok(spec, ":"));
		char *bp = strtok(NULL, ":"), *np = strtok(NULL, ":");
		size_t bl, nl;
		uint8_t *b = slurp(bp, &bl), *d = slurp(np, &nl);
		if (!b || !d) {
			fprintf(stderr, "cannot read %s\n", argv[i]);
			return 1;
		}
		/* regions: (off, len, width, tensor) */
		size_t nreg = 0, capreg = 1024;
		size_t(*reg)[4] = malloc(capreg * sizeof(*reg));
		char *sp = strtok(NULL, ":");
		if (sp) {
			FILE *sf = fopen(sp, "r");
			size_t so, sl, sw, pos = 0;
			while (sf && fscanf(sf, "%zu %zu %zu", &so, &sl, &sw) == 3) {
				if (nreg + 2 >= capreg)
					reg = realloc(reg, (capreg *= 2) * sizeof(*reg));
				if (so > pos) {
					reg[nreg][0] = pos, reg[nreg][1] = so - pos, reg[nreg][2] = 1;
					reg[nreg++][3] = 0;
				}
				reg[nreg][0] = so, reg[nreg][1] = sl, reg[nreg][2] = sw, reg[nreg++][3] = 1;
				pos = so + sl;
			}
			if (sf)
				fclose(sf);
			if (pos < nl) {
				reg[nreg][0] = pos, reg[nreg][1] = nl - pos, reg[nreg][2] = 1;
				reg[nreg++][3] = 0;
			}
		} else {
			reg[0][0] = 0, reg[0][1] = nl, reg[0][2] = w ? w : 1, reg[0][3] = w != 0;
			nreg = 1;
		}
		for (size_t ri = 0; ri < nreg; ri++)
		for (size_t off = reg[ri][0]; off < reg[ri][0] + reg[ri][1]; off += chunk) {
			size_t rend = reg[ri][0] + reg[ri][1];
			size_t len = rend - off < chunk ? rend - off : chunk;
			size_t blen = off < bl ? (bl - off < len ? bl - off : len) : 0;
			const uint8_t *bb = blen ? b + off : NULL;
			unsigned cw = (unsigned)reg[ri][2];
			unsigned flags = reg[ri][3] ? CODEC_F_TENSOR : 0;
			size_t plen;
			uint8_t id;
			double t0 = now();
			if (codec_encode(c, d + off, len, bb, blen, cw, flags, p, &plen, &id)) {
				fprintf(stderr, "encode failed\n");
				return 1;
			}
			double t1 = now();
			int r = codec_decode(c, id, p, plen, codec_uses_base(id) ? bb : NULL,
					     codec_uses_base(id) ? blen : 0, cw, o, len);
			double t2 = now();
			if (r || memcmp(o, d + off, len)) {
				fprintf(stderr, "ROUNDTRIP FAILURE %s off %zu codec %s\n", np, off,
					codec_name(id));
				return 1;
			}
			tenc += t1 - t0;
			tdec += t2 - t1;
			tin += (double)len;
			tout += (double)plen;
			counts[id]++;
			if (oracle) {
				size_t best = len;
				for (uint8_t k = 1; k < CODEC_MAX; k++) {
					size_t ql;
					if (!codec_encode_as(c, k, d + off, len, bb, blen, cw, q, &ql) &&
					    ql < best)
						best = ql;
				}
				torc += (double)best;
			}
		}
		free(reg);
		free(b);
		free(d);
		free(spec);
	}
	printf("ratio %.4f", tin / tout);
	if (oracle)
		printf(" oracle %.4f", tin / torc);
	printf("  enc %.0f MB/s  dec %.0f MB/s  (%.1f MB)  codecs:", tin / tenc / 1e6,
	       tin / tdec / 1e6, tin / 1e6);
	for (int k = 0; k < CODEC_MAX; k++)
		if (counts[k])
			printf(" %s=%lu", codec_name((uint8_t)k), counts[k]);
	printf("\n");
	codec_ctx_free(c);
	free(p);
	free(q);
	free(o);
	return 0;
}
