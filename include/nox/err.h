/*
 * nox/err.h - error reporting for libnox.
 *
 * Every libnox function returns 0 (or a count) on success and a negative
 * errno on failure.  The human detail (server text, path, what was
 * expected) goes into an optional struct nox_err the caller owns.  The
 * library never prints, never exits and never aborts on bad input.
 */
#ifndef NOX_ERR_H
#define NOX_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NOX_ERR_MSG_MAX 1024

struct nox_err {
	int code;			/* positive errno, 0 when clear */
	char msg[NOX_ERR_MSG_MAX];	/* NUL-terminated, "" when clear */
};

/* Clears err (a NULL err is allowed and ignored). */
void nox_err_clear(struct nox_err *err);

/*
 * Records code (a positive errno) and a printf-style message in err, which
 * may be NULL.  Returns -code so callers can write
 *	return nox_err_set(err, EINVAL, "bad id '%s'", id);
 * A message set earlier is replaced.
 */
int nox_err_set(struct nox_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Like nox_err_set, but prefixes the message already in err (if any):
 * "fmt: previous message".  Used to add context while an error travels up.
 */
int nox_err_wrap(struct nox_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The message in err, or strerror(code) when err is NULL or has none. */
const char *nox_err_str(const struct nox_err *err, int code);

#ifdef __cplusplus
}
#endif
#endif
