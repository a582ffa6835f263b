/* layout_torchzip.c - PyTorch zip parsing (work in progress). */
#include "layout_internal.h"

int layout_parse_torchzip(const io_src *src, layout_build *b)
{
	(void)src;
	(void)b;
	return 0;
}
