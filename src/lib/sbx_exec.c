/* sbx_exec.c - STUB, replaced by the isolated-exec module. */
#include <errno.h>
