/*
 * err.c - struct nox_err helpers.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <nox/err.h>

void nox_err_clear(struct nox_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

static void err_vset(struct nox_err *err, int code, const char *prefix,
		     const char *fmt, va_list ap)
{
	char buf[NOX_ERR_MSG_MAX];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (prefix && prefix[0])
		snprintf(err->msg, sizeof(err->msg), "%s: %s", buf, prefix);
	else
		snprintf(err->msg, sizeof(err->msg), "%s", buf);
	err->code = code;
}

int nox_err_set(struct nox_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (code < 0)
		code = -code;
	if (!err)
		return -code;
	va_start(ap, fmt);
	err_vset(err, code, NULL, fmt, ap);
	va_end(ap);
	return -code;
}

int nox_err_wrap(struct nox_err *err, int code, const char *fmt, ...)
{
	char prev[NOX_ERR_MSG_MAX];
	va_list ap;

	if (code < 0)
		code = -code;
	if (!err)
		return -code;
	snprintf(prev, sizeof(prev), "%s", err->msg);
	va_start(ap, fmt);
	err_vset(err, code, prev, fmt, ap);
	va_end(ap);
	return -code;
}

const char *nox_err_str(const struct nox_err *err, int code)
{
	if (err && err->msg[0])
		return err->msg;
	return strerror(code < 0 ? -code : code);
}
