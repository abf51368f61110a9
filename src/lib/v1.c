/* v1.c - STUB, replaced by the v1 JSON module. */
#include <errno.h>
#include <nox/v1.h>
