/* layout_safetensors.c - safetensors header parsing (work in progress). */
#include "layout_internal.h"

int layout_parse_safetensors(const io_src *src, layout_build *b)
{
	(void)src;
	(void)b;
	return 0;
}
