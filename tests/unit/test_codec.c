/* Unit tests for core/codec.c: placeholder until the module lands. */
#include <criterion/criterion.h>
