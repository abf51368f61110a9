/*
 * fuzz_path.c - session-ID and path validation.
 *
 * Invariants checked: an accepted ID never contains '/', never starts with
 * '.' or '-'; an accepted workspace path has no "..", "." or empty
 * component and no leading '/'; nox_path_from_sandbox's output is itself an
 * accepted workspace path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>

#include <nox/id.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rel(const char *p)
{
	const char *c = p;

	if (!p[0])
		return;
	if (p[0] == '/')
		abort();
	while (c) {
		const char *s = strchr(c, '/');
		size_t n = s ? (size_t)(s - c) : strlen(c);

		if (n == 0 && strcmp(p, ".") != 0)
			abort();
		if (n == 2 && c[0] == '.' && c[1] == '.')
			abort();
		c = s ? s + 1 : NULL;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char out[PATH_MAX];
	struct nox_err err;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (nox_id_validate(s, &err) == 0) {
		if (strchr(s, '/') || s[0] == '.' || s[0] == '-' ||
		    strlen(s) > NOX_ID_MAX)
			abort();
	}
	if (nox_path_validate(s, &err) == 0 && strcmp(s, ".") != 0)
		check_rel(s);
	if (nox_path_from_sandbox(s, out, sizeof(out), &err) == 0) {
		if (nox_path_validate(out, NULL) != 0)
			abort();
		check_rel(out);
	}
	free(s);
	return 0;
}
