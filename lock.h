/* The locking protocol the spool shares with MTAs, MUAs and other pop3d
 * sessions (design.md §4). Three locks, each for one purpose:
 *
 *   session   held from login to logout: one POP3 session per maildrop.
 *             An fcntl lock on a file beside the journal
 *             (lock_session_file), never on the spool, so it holds up no
 *             delivery, whatever lock the MDA takes (design.md §4.2). Only
 *             where no journal directory can hold that file, flock(2) on
 *             the spool (lock_session): then a writer that takes flock
 *             alone waits for the whole session.
 *   read      for one step (the parse at login, one check, one chunk of
 *             a RETR): an fcntl read lock, and a shared flock where flock
 *             is the file system's own: no delivery is half-written while
 *             we look, and none waits on us for long.
 *   update    the dotlock (liblockfile), then the fcntl write lock, in
 *             the order procmail and Postfix take them, then an exclusive
 *             flock where flock is the file system's own; for recovery
 *             and UPDATE.
 *
 * Every wait is bounded (FCNTL_LOCK_WAIT_MS, DOTLOCK_WAIT_MS); then
 * LOCK_BUSY. A dotlock owned by anyone but the spool's owner or root is
 * not waited for at all: LOCK_FOREIGN (lock.c, dotlock_foreign). Errors, waits
 * that ran out and a session lock held by another session are logged here,
 * naming the path: after a good login, the log must say why the session went no
 * further. */
#ifndef POP3D_LOCK_H
#define POP3D_LOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "sysutil.h"

enum lock_status {
	LOCK_OK,
	LOCK_BUSY,    /* held by someone else past the wait */
	LOCK_ERROR,   /* a system error */
	LOCK_REFUSED, /* the dotlock's name does not fit */
	LOCK_FOREIGN, /* the dotlock belongs to another user: for the admin */
	LOCK_NOROOM,  /* no room on the disk to make the session lock file */
};

/* The session lock as flock(2) on the spool open on fd, without waiting:
 * LOCK_BUSY if another session has it. Closing fd releases it. Only for a
 * local spool without a usable journal directory (lock_session_file). */
enum lock_status lock_session(int fd, const char *path);

/* Does a file system of this statfs f_type share its files with other
 * hosts, whose flock is an fcntl lock in disguise (NFS, SMB)? */
bool lock_fs_shared(unsigned long f_type);

/* Is the spool open on fd shared with other hosts: forced (the
 * --shared-spool option), or on such a file system. Then its session
 * lock must be lock_session_file and its dotlock is judged by age alone. */
bool lock_spool_shared(int fd, const char *path, bool forced);

/* Is flock(2) on fd a lock of its own, which a writer may take alone
 * (any local or cluster file system), rather than an fcntl lock in
 * disguise (NFS, SMB: lock_fs_shared)? Then the read and update locks
 * take it too. False if fstatfs fails. */
bool lock_flock_own(int fd);

/* The session lock of the spool at path (for the log): an fcntl write
 * lock on the file name, made if missing, without waiting; LOCK_BUSY if
 * another session, on any host that shares name's directory, has it
 * (logged naming the file if shared: lock_spool_shared). LOCK_NOROOM if
 * the file is missing and the disk or quota has no room for it (logged).
 * On LOCK_OK *fd_r holds it until closed. */
enum lock_status lock_session_file(const char *name, const char *path,
				   bool shared, int *fd_r);

/* The read lock on the whole of fd: an fcntl read lock, then, if
 * flocks (lock_flock_own, and the session holds no flock of its own), a
 * shared flock. On failure none is held; lock_read_end ends it. */
enum lock_status lock_read(int fd, const char *path, bool flocks);

/* Release what lock_read took (flocks as given to it). */
void lock_read_end(int fd, const char *path, bool flocks);

/* Drop the fcntl lock (read or write) on fd. */
void lock_release(int fd, const char *path);

/* path's dotlock, "<path>.lock", into out: false if it does not fit.
 * The one place that name is made (keeper.c asks for it too). */
bool lock_dotlock_name(const char *path, char *out, size_t size);

/* The update locks: path's dotlock, named into dotlock (size octets),
 * then the write lock, then, if flocks (as for lock_read), an exclusive
 * flock. shared (lock_spool_shared): the dotlock holds no PID and
 * another's is stale by age alone. On failure none is held.
 * LOCK_FOREIGN, logged with the owner, if the dotlock is another user's (before
 * or after the wait). */
enum lock_status lock_update(int fd, const char *path, bool shared, bool flocks,
			     char *dotlock, size_t size);

/* How long lock_update sleeps after its tries-th failed try (from 0) at
 * a held dotlock: DOTLOCK_POLL_MIN_MS, doubling every
 * DOTLOCK_POLL_DOUBLE_EVERY tries, at most DOTLOCK_POLL_MAX_MS. */
long lock_dotlock_poll_ms(int tries);

/* Remove path's dotlock if it is the very file left (a stamp an UPDATE's
 * journal recorded, journal_dotlock): a power cut can leave it with its
 * PID never written, or naming a PID that is in use again after the
 * reboot, and liblockfile then takes it as held for five minutes, which
 * would stall recovery at boot and every delivery meanwhile. Only for a
 * local spool (a shared one's attributes may be cached), and only with
 * the session lock held and the journal pending, which show that the
 * UPDATE that made it is dead; with flocks (as for lock_read), also only
 * if no one holds flock on the spool open on fd, as a session of an older
 * pop3d would. Returns whether it was removed (logged).
 * Like any stale-lock removal (liblockfile's own), it races with a
 * program that removes it too and makes its own in between. */
bool lock_clear_left(int fd, const char *path, bool flocks,
		     const struct file_stamp *left);

/* Release what lock_update took (flocks as given to it). */
void lock_update_end(int fd, const char *path, bool flocks,
		     const char *dotlock);

#endif
