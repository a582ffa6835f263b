/* Unit tests for core/pool.c: placeholder until the module lands. */
#include <criterion/criterion.h>
