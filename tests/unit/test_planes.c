/* Unit tests for core/planes.c: placeholder until the module lands. */
#include <criterion/criterion.h>
