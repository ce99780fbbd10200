/* Crash-consistent compaction of the spool (UPDATE), with a recovery
 * journal.
 *
 * Compaction moves kept data down over deleted data in place (the
 * spool's inode, owner and mode must not change: MTAs may hold it open).
 * A crash in the middle would leave a message half moved, glued to stale
 * bytes, or even overwrite the front of a message before its copy is
 * whole. So before anything is written, the journal saves every byte the
 * moves can overwrite; and before the file is truncated, a random marker
 * is written just past the new end, so that recovery can tell "not yet
 * truncated" from "truncated, then new mail appended" without guessing:
 *
 *   phase 1 (moving):   recovery writes the saved bytes back; the spool
 *                       is as it was before UPDATE (deleted messages
 *                       come back; nothing kept is lost or damaged).
 *   phase 2 (moved):    recovery finishes: where the marker still stands,
 *                       the stale bytes between the new end and any mail
 *                       delivered since are removed by a compaction of
 *                       its own, journaled the same way; where it does
 *                       not, the truncation was done.
 *
 * Recovery runs at the next login, under the same locks. */
#ifndef POP3D_JOURNAL_H
#define POP3D_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A span of the spool to keep; len < 0: from start to the end of the
 * file (mail delivered during the session). */
struct region {
	off_t start, len;
};

/* Move the regions, in order, down to start at dst (every region starts
 * at or after dst and after the one before), truncate the spool after
 * them and sync it, journaling in jpath as described above. buf is
 * scratch space of size octets. Returns 0, or -1 with errno set: the
 * spool is then unchanged, or the journal (left in place) restores it. */
int journal_compact(int fd, const char *jpath, off_t dst,
		    const struct region *r, size_t n, char *buf, size_t size);

/* Is there anything at jpath for journal_recover to look at (a journal,
 * or a half-written one to clear away)? */
bool journal_pending(const char *jpath);

/* If jpath holds a journal for this spool, finish or undo what it
 * describes. Returns 0 (also when there was nothing to do), or -1 with
 * errno set if recovery could not be completed (the journal stays). */
int journal_recover(int fd, const char *jpath, char *buf, size_t size);

#endif
