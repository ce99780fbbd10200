#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "params.h"

static enum log_target log_target = LOG_TO_SYSLOG;

void
log_init(enum log_target target)
{
	log_target = target;
	if (target == LOG_TO_SYSLOG)
		openlog("pop3d", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/* A log line must stay one line whatever a client put in it. */
static void
sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			*s = '?';
}

static void __attribute__((format(printf, 2, 0)))
log_vmsg(int priority, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int n;

	n = snprintf(line, sizeof(line), "<%d>", priority);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	sanitize(line + n);
	if (log_target == LOG_TO_SYSLOG) {
		syslog(priority, "%s", line + n);
		return;
	}
	/* One write per line, so lines from several processes sharing
	 * one stderr never interleave. A lost log line is not worth a
	 * retry loop. */
	n = strlen(line);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

void
log_msg(int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(priority, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}
