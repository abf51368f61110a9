/*
 * testutil.h - small helpers shared by the CUnit unit tests.
 */
#ifndef NOX_TESTUTIL_H
#define NOX_TESTUTIL_H

#include <stddef.h>
#include <CUnit/CUnit.h>

struct tu_test {
	const char *name;
	void (*fn)(void);
};

/* Runs the NULL-terminated tests as one CUnit suite in basic mode;
 * returns the process exit code (0 only when every assertion passed). */
int tu_main(const char *suite, const struct tu_test *tests);

/* A fresh directory under $TMPDIR (or /tmp), malloc'd path. */
char *tu_mkdtemp(const char *tag);
/* rm -rf without following symlinks; ignores errors. */
void tu_rm_rf(const char *path);
/* Write len bytes to path (created 0644, truncated); 0 or -errno. */
int tu_write_file(const char *path, const void *data, size_t len);
/* Whole file, NUL-terminated, malloc'd; *len set when len != NULL. */
char *tu_read_file(const char *path, size_t *len);
/* printf into a malloc'd string. */
char *tu_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
