/* Unit tests for core/eliasdelta.c: placeholder until the module lands. */
#include <criterion/criterion.h>
