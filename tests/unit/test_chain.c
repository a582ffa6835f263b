/* Unit tests for core/chain.c: placeholder until the module lands. */
#include <criterion/criterion.h>
