/* Unit tests for core/cache.c: placeholder until the module lands. */
#include <criterion/criterion.h>
