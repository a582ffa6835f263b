/* admin_stats.c - `tpdefs-admin stats BACKING [--json]`: logical vs stored bytes, per file and
 * per chain. Read-only (no lock): works on a mounted store too. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "codec.h"
#include "stats.h"

static const char stats_usage[] =
	"usage: tpdefs-admin stats BACKING [--json]\n"
	"\n"
	"What the store holds: logical bytes (what the files read as) vs stored bytes (object\n"
	"blobs), the ratio logical / (stored + pending), per file its object, base file, chain\n"
	"depth and codec mix, per chain its objects and size. Works mounted or not (read-only).\n"
	"\n"
	"  --json      one JSON object: logical_bytes, stored_bytes, pending_bytes, ratio, files,\n"
	"              objects, staged_files, unreferenced_objects, unreferenced_bytes, db_bytes,\n"
	"              \"files\": [{path, size, stored, object, base, base_object, depth, staged,\n"
	"              codecs: {name: bytes}}], \"chains\": [{keyframe, objects, stored, logical,\n"
	"              max_depth, unreferenced}]\n"
	"  -h, --help  this text\n";

/* JSON string: valid UTF-8 passes through, other bytes become \u00XX (Latin-1). */
static void jstr(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	putchar('"');
	while (*p) {
		unsigned c = *p;
		if (c == '"' || c == '\\') {
			printf("\\%c", c);
			p++;
		} else if (c < 0x20) {
			printf("\\u%04x", c);
			p++;
		} else if (c < 0x80) {
			putchar((int)c);
			p++;
		} else {
			int n = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
			int ok = n > 0;
			for (int k = 1; ok && k < n; k++)
				ok = (p[k] & 0xc0) == 0x80;
			if (ok) {
				fwrite(p, 1, (size_t)n, stdout);
				p += n;
			} else {
				printf("\\u%04x", c);
				p++;
			}
		}
	}
	putchar('"');
}

static double ratio(const stats_report *r)
{
	uint64_t den = r->stored_bytes + r->pending_bytes;
	return den ? (double)r->logical_bytes / (double)den : 0.0;
}

static void print_json(const stats_report *r)
{
	printf("{\"logical_bytes\": %" PRIu64 ", \"stored_bytes\": %" PRIu64
	       ", \"pending_bytes\": %" PRIu64 ", \"ratio\": %.4f, \"files\": [", r->logical_bytes,
	       r->stored_bytes, r->pending_bytes, ratio(r));
	for (size_t i = 0; i < r->nfiles; i++) {
		const stats_file *f = &r->files_v[i];
		printf("%s\n  {\"path\": ", i ? "," : "");
		jstr(f->path);
		printf(", \"size\": %" PRIu64 ", \"stored\": %" PRIu64 ", \"object\": ", f->size,
		       f->stored);
		if (f->obj)
			printf("%" PRIu64, f->obj);
		else
			printf("null");
		printf(", \"base\": ");
		if (f->base_path)
			jstr(f->base_path);
		else
			printf("null");
		if (f->base_obj)
			printf(", \"base_object\": %" PRIu64, f->base_obj);
		else
			printf(", \"base_object\": null");
		printf(", \"depth\": %u, \"staged\": %s, \"codecs\": {", f->depth,
		       f->staged ? "true" : "false");
		int first = 1;
		for (int c = 0; c < CODEC_MAX; c++) {
			if (!f->codec_bytes[c])
				continue;
			printf("%s", first ? "" : ", ");
			jstr(codec_name((uint8_t)c));
			printf(": %" PRIu64, f->codec_bytes[c]);
			first = 0;
		}
		printf("}}");
	}
	printf("\n ], \"chains\": [");
	for (size_t i = 0; i < r->nchains; i++) {
		const stats_chain *c = &r->chains[i];
		printf("%s\n  {\"keyframe\": %" PRIu64 ", \"objects\": %" PRIu64 ", \"stored\": %" PRIu64
		       ", \"logical\": %" PRIu64 ", \"max_depth\": %u, \"unreferenced\": %" PRIu64 "}",
		       i ? "," : "", c->keyframe, c->objects, c->stored, c->logical, c->max_depth,
		       c->unref);
	}
	/* "files" is the list above; the count goes under its own key */
	printf("\n ], \"file_count\": %" PRIu64 ", \"objects\": %" PRIu64 ", \"staged_files\": %" PRIu64
	       ", \"unreferenced_objects\": %" PRIu64 ", \"unreferenced_bytes\": %" PRIu64
	       ", \"db_bytes\": %" PRIu64 "}\n",
	       r->files, r->objects, r->staged_files, r->unref_objects, r->unref_bytes, r->db_bytes);
}

static void human(uint64_t v, char *buf, size_t n)
{
	const char *u[] = {"B", "K", "M", "G", "T"};
	double d = (double)v;
	int k = 0;
	while (d >= 1024 && k < 4) {
		d /= 1024;
		k++;
	}
	snprintf(buf, n, k ? "%.1f%s" : "%.0f%s", d, u[k]);
}

static void print_table(const stats_report *r)
{
	printf("%-40s %9s %9s %6s %5s  %-24s %s\n", "FILE", "SIZE", "STORED", "RATIO", "DEPTH",
	       "BASE", "CODECS");
	for (size_t i = 0; i < r->nfiles; i++) {
		const stats_file *f = &r->files_v[i];
		char a[32], b[32], base[64], codecs[160] = "";
		human(f->size, a, sizeof(a));
		human(f->stored, b, sizeof(b));
		if (f->staged)
			snprintf(base, sizeof(base), "(staged)");
		else if (f->base_path)
			snprintf(base, sizeof(base), "%s", f->base_path);
		else if (f->base_obj)
			snprintf(base, sizeof(base), "(object %" PRIu64 ", unref.)", f->base_obj);
		else
			snprintf(base, sizeof(base), "-");
		size_t off = 0;
		for (int c = 0; c < CODEC_MAX && off < sizeof(codecs); c++) {
			if (!f->codec_bytes[c] || !f->size)
				continue;
			int k = snprintf(codecs + off, sizeof(codecs) - off, "%s%s:%.0f%%", off ? " " : "",
					 codec_name((uint8_t)c),
					 100.0 * (double)f->codec_bytes[c] / (double)f->size);
			if (k > 0)
				off += (size_t)k;
		}
		char ratio_s[16] = "-";
		if (f->stored)
			snprintf(ratio_s, sizeof(ratio_s), "%.2f", (double)f->size / (double)f->stored);
		char qp[4096], qb[256];
		stats_quote(f->path, qp, sizeof(qp));
		stats_quote(base, qb, sizeof(qb));
		printf("%-40s %9s %9s %6s %5u  %-24s %s\n", qp, a, f->staged ? "-" : b, ratio_s,
		       f->depth, qb, codecs);
	}
	char l[32], s[32], p[32], u[32];
	human(r->logical_bytes, l, sizeof(l));
	human(r->stored_bytes, s, sizeof(s));
	human(r->pending_bytes, p, sizeof(p));
	human(r->unref_bytes, u, sizeof(u));
	printf("\n%" PRIu64 " files, %s logical; %" PRIu64 " objects, %s stored; %s pending in %"
	       PRIu64 " staged files; ratio %.2f\n", r->files, l, r->objects, s, p, r->staged_files,
	       ratio(r));
	printf("%" PRIu64 " unreferenced objects (%s, kept as delta bases; `tpdefs-admin gc` "
	       "frees them); %zu chains\n", r->unref_objects, u, r->nchains);
	for (size_t i = 0; i < r->nchains; i++) {
		const stats_chain *c = &r->chains[i];
		human(c->stored, s, sizeof(s));
		human(c->logical, l, sizeof(l));
		printf("  chain from object %" PRIu64 ": %" PRIu64 " objects, max depth %u, %s "
		       "stored for %s, %" PRIu64 " unreferenced\n", c->keyframe, c->objects,
		       c->max_depth, s, l, c->unref);
	}
}

int admin_stats(int argc, char **argv)
{
	const char *dir = NULL;
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(stats_usage, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (argv[i][0] == '-' || dir) {
			fprintf(stderr, "tpdefs-admin stats: unexpected argument '%s'\n%s", argv[i],
				stats_usage);
			return 1;
		} else {
			dir = argv[i];
		}
	}
	if (!dir) {
		fprintf(stderr, "%s", stats_usage);
		return 1;
	}
	store *s;
	if (admin_open_store(dir, &s) < 0)
		return 1;
	stats_report r;
	int rc = stats_collect(s, &r);
	store_close(s);
	if (rc < 0) {
		fprintf(stderr, "tpdefs-admin: stats %s: %s\n", dir, strerror(-rc));
		return 1;
	}
	if (json)
		print_json(&r);
	else
		print_table(&r);
	stats_free(&r);
	return 0;
}
