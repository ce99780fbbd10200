/* The free space a rewrite in place needs where the file system copies
 * on write (btrfs, ZFS, bcachefs; XFS for a reflinked file), where it is
 * not zero: UPDATE asks before it begins (journal.c, design.md §4.8,
 * "Full disks"). */
#ifndef POP3D_FSROOM_H
#define POP3D_FSROOM_H

#include <stdint.h>

/* Is there room to rewrite octets [from, to) of fd in place and write
 * extra octets elsewhere on the same file system (the journal's save
 * areas)? 0: yes, or the file system rewrites in place and needs none,
 * or it cannot tell; -1 with errno ENOSPC: no, with *need and *avail
 * the octets needed and free. */
int fsroom_rewrite(int fd, uint64_t from, uint64_t to, uint64_t extra,
		   uint64_t *need, uint64_t *avail);

#endif
