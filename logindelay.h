/* --login-delay (RFC 2449 §6.5, design.md §4.10): when the user last
 * logged in, kept across connections, processes and socket modes as the
 * modification time of an empty file in the user's own journal directory,
 * <journal-dir>/<uid>/last-login. Only the user's session, after the
 * privilege drop, reads or writes it. There is nothing in it to parse. */
#ifndef POP3D_LOGINDELAY_H
#define POP3D_LOGINDELAY_H

#include <stdbool.h>
#include <time.h>

/* Its name in the per-uid directory; recover.c knows it is no journal. */
#define LOGINDELAY_FILE "last-login"

/* Whether a login at now comes less than delay seconds after the last
 * one recorded in dir (R2449-21). True, with the whole seconds still to
 * wait in *left_r (at least 1), only for a record that is a regular file
 * whose time is not after now: a missing record, one that cannot be read,
 * one that is not a regular file and one in the future (the clock was
 * set back) allow the login, logged but the first. The delay spares the
 * server's load; a state that cannot be trusted must not lock a user out
 * for longer than it says. */
bool logindelay_too_soon(const char *dir, unsigned delay,
			 const struct timespec *now, unsigned *left_r);

/* Record now as the time of the user's last login in dir: made mode
 * 0600 if missing, never through a symlink, never durable (a record lost
 * at a power cut only lets the next login in early). Returns 0, or -1
 * (logged). */
int logindelay_record(const char *dir, const struct timespec *now);

#endif
