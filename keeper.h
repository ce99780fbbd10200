/* The dotlock keeper (design.md §4.2): a small process of the session's
 * that makes and removes the spool's dotlock when the user may not
 * create names in the spool directory (Debian's /var/mail, 2775
 * root:mail). Without it liblockfile runs its setgid helper dotlockfile
 * twice per UPDATE: two execs, 11 ms of CPU and tens of milliseconds of
 * wall while the dotlock is held. The keeper is forked by the monitor
 * just before the drop and becomes the user with group mail alone:
 * exactly what dotlockfile lets every user do, for one fixed lock name.
 * Everywhere else (a spool directory the user can write, pop3d not
 * started as root) there is no keeper and liblockfile works in-process
 * as before. */
#ifndef POP3D_KEEPER_H
#define POP3D_KEEPER_H

#include <stdbool.h>
#include <sys/stat.h>

#include "privsep_msg.h"

/* Root, after a login (or in --recover's child) and before auth_become:
 * start a keeper for the dotlock of who's spool (the --mailbox pattern
 * made a path) if who needs one. Failing to start one is logged and
 * leaves liblockfile's helper to do the work; a pattern that makes no
 * path is the session's to report. */
void keeper_start(const char *mailbox, const struct auth_user *who);

/* Would a keeper serve a spool in this directory (group-writable, by
 * KEEPER_GROUP, and not by others)? Also for the start-up check of a
 * fixed --mailbox directory (maildrop_check_dir). */
bool keeper_serves(const struct stat *dir);

/* The session's lockfile_create(dotlock, 0, flags) and
 * lockfile_remove(dotlock), liblockfile's results and errno: through the
 * keeper when it keeps this name, else liblockfile itself (also if the
 * keeper is gone). keeper_lockfile_remove gives 0 when the lock was
 * removed or was not there; anything else is a failure, on every path
 * (the keeper's answer, liblockfile in the session, liblockfile not
 * loadable): -1 with errno, or a positive exit status of liblockfile's
 * helper dotlockfile (1 when it could not unlink: under no_new_privs it
 * runs without group mail), with errno as the session's own try left
 * it. */
int keeper_lockfile_create(const char *dotlock, int flags);
int keeper_lockfile_remove(const char *dotlock);

/* The session is over: let the keeper go and reap it. */
void keeper_stop(void);

#endif
