/* tar.c - STUB, replaced by the tar module. */
#include <errno.h>
#include <nox/tar.h>
