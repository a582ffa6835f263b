/* Unit tests for core/objfile.c: placeholder until the module lands. */
#include <criterion/criterion.h>
