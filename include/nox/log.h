/*
 * nox/log.h - one logging function for the programs (never used by libnox
 * itself, which reports through struct nox_err).
 *
 * Messages go to stderr in the foreground and to syslog once the program
 * has called nox_log_use_syslog() (after daemonising).
 */
#ifndef NOX_LOG_H
#define NOX_LOG_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

enum nox_log_level {
	NOX_LOG_ERR = 3,
	NOX_LOG_WARN = 4,
	NOX_LOG_INFO = 6,
	NOX_LOG_DEBUG = 7,
};

/* ident is copied; messages above max_level are dropped. */
void nox_log_init(const char *ident, enum nox_log_level max_level);
void nox_log_use_syslog(bool on);
void nox_log(enum nox_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* As nox_log, with ": strerror(errnum)" appended. */
void nox_log_errno(enum nox_log_level level, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
