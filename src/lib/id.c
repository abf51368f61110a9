/*
 * id.c - session ID and workspace path rules (see nox/id.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <nox/id.h>

static int id_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

int nox_id_validate(const char *id, struct nox_err *err)
{
	size_t i, n;

	if (!id || !id[0])
		return nox_err_set(err, EINVAL, "empty session id");
	n = strnlen(id, NOX_ID_MAX + 1);
	if (n > NOX_ID_MAX)
		return nox_err_set(err, EINVAL,
				   "session id longer than %d bytes",
				   NOX_ID_MAX);
	if (id[0] == '.' || id[0] == '-')
		return nox_err_set(err, EINVAL,
				   "session id '%s' starts with '%c'", id,
				   id[0]);
	for (i = 0; i < n; i++) {
		if (!id_char_ok((unsigned char)id[i]))
			return nox_err_set(err, EINVAL,
					   "session id has a byte 0x%02x outside [A-Za-z0-9._-]",
					   (unsigned char)id[i]);
	}
	return 0;
}

int nox_path_validate(const char *rel, struct nox_err *err)
{
	const char *p, *slash;
	size_t len, clen;

	if (!rel)
		return nox_err_set(err, EINVAL, "no path");
	if (rel[0] == '\0' || strcmp(rel, ".") == 0)
		return 0;
	len = strnlen(rel, PATH_MAX);
	if (len >= PATH_MAX)
		return nox_err_set(err, ENAMETOOLONG, "path longer than %d bytes",
				   PATH_MAX - 1);
	if (rel[0] == '/')
		return nox_err_set(err, EINVAL, "absolute path '%s'", rel);
	if (rel[len - 1] == '/')
		return nox_err_set(err, EINVAL, "trailing '/' in '%s'", rel);
	for (p = rel; *p; p = slash + 1) {
		slash = strchr(p, '/');
		clen = slash ? (size_t)(slash - p) : strlen(p);
		if (clen == 0)
			return nox_err_set(err, EINVAL,
					   "empty component in '%s'", rel);
		if (clen > NAME_MAX)
			return nox_err_set(err, ENAMETOOLONG,
					   "component longer than %d bytes",
					   NAME_MAX);
		if ((clen == 1 && p[0] == '.') ||
		    (clen == 2 && p[0] == '.' && p[1] == '.'))
			return nox_err_set(err, EINVAL,
					   "'%.*s' component in '%s'",
					   (int)clen, p, rel);
		if (!slash)
			break;
	}
	return 0;
}

int nox_path_from_sandbox(const char *sp, char *out, size_t outsz,
			  struct nox_err *err)
{
	const char *rel = sp;
	size_t wl = strlen(NOX_WORKSPACE), n;
	int r;

	if (!sp || !sp[0])
		sp = rel = NOX_WORKSPACE;
	if (sp[0] == '/') {
		if (strncmp(sp, NOX_WORKSPACE, wl) != 0 ||
		    (sp[wl] != '\0' && sp[wl] != '/'))
			return nox_err_set(err, EINVAL,
					   "path '%s' is outside %s", sp,
					   NOX_WORKSPACE);
		rel = sp + wl;
	}
	while (*rel == '/')
		rel++;
	n = strlen(rel);
	while (n > 0 && rel[n - 1] == '/')
		n--;
	if (n >= outsz)
		return nox_err_set(err, ENAMETOOLONG, "path too long");
	memcpy(out, rel, n);
	out[n] = '\0';
	r = nox_path_validate(out, err);
	if (r < 0)
		return r;
	if (strcmp(out, ".") == 0)
		out[0] = '\0';
	return 0;
}
