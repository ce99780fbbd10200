#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "params.h"

static enum log_target log_target = LOG_TO_SYSLOG;
/* Set in the pre-auth process: where its lines go instead. */
static void (*log_sink)(void *ctx, int priority, const char *text);
static void *log_sink_ctx;

void
log_init(enum log_target target)
{
	log_target = target;
	if (target == LOG_TO_SYSLOG)
		openlog("pop3d", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_close(void)
{
	if (log_target == LOG_TO_SYSLOG)
		closelog();
}

/* A log line must stay one line whatever a client put in it. */
static bool
is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static void
sanitize(char *s)
{
	for (; *s; s++)
		if (is_control((unsigned char)*s))
			*s = '?';
}

/* One word: no space either, so that a typed name cannot pass for the
 * next field of the line (fail2ban reads "peer="). */
const char *
log_word(char *dst, size_t size, const char *src)
{
	size_t len = strlen(src), keep = size - 4;

	if (len <= size - 1)
		keep = len;
	for (size_t i = 0; i < keep; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = c > ' ' && c <= '~' ? (char)c : '?';
	}
	if (keep < len) {
		memcpy(dst + keep, "...", 3);
		keep += 3;
	}
	dst[keep] = '\0';
	return dst;
}

int
log_detach(void (*sink)(void *ctx, int priority, const char *text), void *ctx)
{
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (null < 0)
		return -1;
#ifndef __SANITIZE_ADDRESS__
	/* Under systemd, stderr is a stream to journald: a line written
	 * there is logged as ours. */
	if (dup2(null, STDERR_FILENO) < 0) {
		close(null);
		return -1;
	}
#endif
	close(null);
	closelog();
	log_sink = sink;
	log_sink_ctx = ctx;
	return 0;
}

static void __attribute__((format(printf, 2, 0)))
log_vmsg(int priority, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int n;

	n = snprintf(line, sizeof(line), "<%d>", priority);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	sanitize(line + n);
	if (log_sink != NULL) {
		log_sink(log_sink_ctx, priority, line + n);
		return;
	}
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
