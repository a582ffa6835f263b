/* Unit tests for core/layout.c: placeholder until the module lands. */
#include <criterion/criterion.h>
