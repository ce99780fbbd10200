/* pop3d --recover (design.md §4.9): finish the UPDATEs that a crash
 * interrupted without waiting for their users' next login, at boot and
 * after a session that died. Root only looks at the names in
 * --journal-dir; everything inside a user's journal directory, and the
 * spool, is done by a child that has become that user for good, through
 * the same maildrop_open (locks and recovery) as a login. */
#ifndef POP3D_RECOVER_H
#define POP3D_RECOVER_H

#include "config.h"

/* Recover every pending journal under cfg->journal_dir, or only the one
 * user cfg->recover names ("" for every user). A directory that is not
 * its uid's own, or whose uid may not log in, is refused and left alone.
 * Returns main's exit status: 0 if nothing is left pending that this run
 * could finish (a spool in use by a live session is left to it), 1 if
 * anything was refused or failed (logged). */
int recover_run(const struct config *cfg);

#endif
