/* Unit tests for core/encoder.c: placeholder until the module lands. */
#include <criterion/criterion.h>
