#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "pred.h"

static pred_name parse(const char *s)
{
	pred_name p;
	cr_assert_eq(pred_name_parse(s, strlen(s), &p), 0, "%s", s);
	return p;
}

Test(pred, parse_splits_digits)
{
	pred_name p = parse("epoch=3-step=900.ckpt");
	cr_assert_str_eq(p.skel, "epoch=#-step=#.ckpt");
	cr_assert_eq(p.nnum, 2);
	cr_assert_eq(p.num[0], 3);
	cr_assert_eq(p.num[1], 900);
	pred_name q;
	cr_assert_eq(pred_name_parse("model.pt", 8, &q), -EINVAL);
	pred_name big = parse("x99999999999999999999999.pt");
	cr_assert_eq(big.num[0], UINT64_MAX);
}

Test(pred, series_and_order)
{
	pred_name a = parse("ckpt_006.pt"), b = parse("ckpt_007.pt"), c = parse("ckpt_7.bin");
	cr_assert(pred_same_series(&a, &b));
	cr_assert(!pred_same_series(&a, &c));
	cr_assert_lt(pred_num_cmp(&a, &b), 0);
	pred_name e3 = parse("epoch=3-step=900.ckpt"), e4 = parse("epoch=4-step=100.ckpt");
	cr_assert(pred_same_series(&e3, &e4));
	cr_assert_lt(pred_num_cmp(&e3, &e4), 0); /* first number decides */
}

Test(pred, rank_prefers_nearest_lower_then_recent)
{
	pred_entry e[] = {
		{"ckpt_010.pt", 11, 5, 0}, {"ckpt_006.pt", 11, 1, 0}, {"ckpt_008.pt", 11, 3, 0},
		{"other.txt", 9, 9, 0},    {"ckpt_007.pt", 11, 2, 0}, {"ckpt_012.pt", 11, 7, 0},
		{"ckpt_009.pt", 11, 4, 0}, {"ckpt_011.pt", 11, 6, 0},
	};
	size_t out[8];
	size_t n = pred_rank("ckpt_009.pt", 11, e, 8, out, 8);
	/* ckpt_009 itself excluded; lower: 008, 007, 006; higher by recency: 012, 011, 010 */
	cr_assert_eq(n, 6);
	cr_assert_eq(out[0], 2);
	cr_assert_eq(out[1], 4);
	cr_assert_eq(out[2], 1);
	cr_assert_eq(out[3], 5);
	cr_assert_eq(out[4], 7);
	cr_assert_eq(out[5], 0);
	cr_assert_eq(pred_rank("ckpt_009.pt", 11, e, 8, out, 2), 2);
	cr_assert_eq(pred_rank("notes.txt", 9, e, 8, out, 8), 0);
	/* a higher-numbered file still waiting for encoding is never a predecessor */
	e[5].pending = 1;
	e[1].pending = 1;
	n = pred_rank("ckpt_009.pt", 11, e, 8, out, 8);
	cr_assert_eq(n, 5);
	cr_assert_eq(out[2], 1);
	cr_assert_eq(out[3], 7);
}

Test(pred, rank_dirs)
{
	pred_entry e[] = {{"checkpoint-500", 14, 1, 0}, {"checkpoint-1000", 15, 2, 0}, {"runs", 4, 3, 0},
			  {"checkpoint-1500", 15, 4, 0}};
	size_t out[4];
	size_t n = pred_rank("checkpoint-1500", 15, e, 4, out, 4);
	cr_assert_eq(n, 2);
	cr_assert_eq(out[0], 1);
	cr_assert_eq(out[1], 0);
}
