/*
 * log.c - nox_log: stderr in the foreground, syslog when daemonised.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <nox/log.h>

static char log_ident[64] = "nox";
static enum nox_log_level log_max = NOX_LOG_INFO;
static bool log_syslog;

void nox_log_init(const char *ident, enum nox_log_level max_level)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident ? ident : "nox");
	log_max = max_level;
}

void nox_log_use_syslog(bool on)
{
	if (on && !log_syslog)
		openlog(log_ident, LOG_PID, LOG_DAEMON);
	else if (!on && log_syslog)
		closelog();
	log_syslog = on;
}

static void log_emit(enum nox_log_level level, const char *msg)
{
	static const char *names[8] = { "emerg", "alert", "crit", "error",
					"warning", "notice", "info", "debug" };

	if (level > log_max)
		return;
	if (log_syslog) {
		syslog((int)level, "%s", msg);
		return;
	}
	fprintf(stderr, "%s: %s: %s\n", log_ident,
		names[(unsigned)level & 7u], msg);
}

void nox_log(enum nox_log_level level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_emit(level, buf);
}

void nox_log_errno(enum nox_log_level level, int errnum, const char *fmt, ...)
{
	char buf[2048];
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n = strlen(buf);
	snprintf(buf + n, sizeof(buf) - n, ": %s",
		 strerror(errnum < 0 ? -errnum : errnum));
	log_emit(level, buf);
}
