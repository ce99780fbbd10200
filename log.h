/* One line per event, to syslog (facility mail) or to stderr with an
 * sd-daemon "<N>" priority prefix for the journal and the tests. */
#ifndef POP3D_LOG_H
#define POP3D_LOG_H

#include <stddef.h>
#include <syslog.h>

enum log_target { LOG_TO_SYSLOG, LOG_TO_STDERR };

/* Select where lines go: once before anything is logged, and again
 * after log_close. */
void log_init(enum log_target target);
/* Close the syslog socket (log_init opens it again): before a process
 * closes descriptors it does not know. */
void log_close(void);

/* Log one line at a syslog priority (LOG_ERR, LOG_INFO, ...). Control
 * characters in the formatted text are replaced, so client-supplied
 * strings cannot forge lines. */
void log_msg(int priority, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Give up this process's own log channel (design.md §7), for the
 * pre-auth process: close the syslog socket, point stderr at /dev/null
 * (not in the ASan test build, whose reports go there), and from then on
 * hand every line, formatted and sanitised, to sink(ctx, priority,
 * text). Returns 0, or -1 if /dev/null cannot be opened. */
int log_detach(void (*sink)(void *ctx, int priority, const char *text),
	       void *ctx);

/* A string someone else chose (a typed user name), made one word of a
 * log line: copied into dst (size >= 4 octets), every octet outside
 * '!'..'~' replaced by '?', cut to size - 4 octets with "..." after it.
 * Returns dst. */
const char *log_word(char *dst, size_t size, const char *src);

/* Log and exit(1): for states that must not happen. */
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#endif
