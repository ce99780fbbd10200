/* One line per event, to syslog (facility mail) or to stderr with an
 * sd-daemon "<N>" priority prefix for the journal and the tests. */
#ifndef POP3D_LOG_H
#define POP3D_LOG_H

#include <syslog.h>

enum log_target { LOG_TO_SYSLOG, LOG_TO_STDERR };

/* Select where lines go. Call once, before anything is logged. */
void log_init(enum log_target target);

/* Log one line at a syslog priority (LOG_ERR, LOG_INFO, ...). Control
 * characters in the formatted text are replaced, so client-supplied
 * strings cannot forge lines. */
void log_msg(int priority, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Log and exit(1): for states that must not happen. */
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#endif
