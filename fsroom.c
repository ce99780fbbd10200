#include "fsroom.h"

#include <errno.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>

#include "params.h"

/* statfs(2) f_type of the file systems that copy on write; not all of
 * them are in every linux/magic.h. */
#define MAGIC_BTRFS 0x9123683EU
#define MAGIC_ZFS 0x2FC12FC1U
#define MAGIC_BCACHEFS 0xCA451A4EU
#define MAGIC_XFS 0x58465342U

enum cow {
	COW_NEVER,	 /* ext4 and the rest: in place */
	COW_WHEN_SHARED, /* XFS: only extents shared by a reflinked copy */
	COW_ALWAYS,
};

/* How a write in place to fd takes its blocks. A btrfs file marked
 * NOCOW (chattr +C) is written in place unless it shares extents. */
static enum cow
cow_kind(int fd)
{
	struct statfs sf;
	int flags = 0;

	if (fstatfs(fd, &sf) < 0)
		return COW_NEVER;
	switch ((uint32_t)sf.f_type) {
	case MAGIC_BTRFS:
		return ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
				       (flags & FS_NOCOW_FL)
			       ? COW_WHEN_SHARED
			       : COW_ALWAYS;
	case MAGIC_ZFS:
	case MAGIC_BCACHEFS:
		return COW_ALWAYS;
	case MAGIC_XFS:
		return COW_WHEN_SHARED;
	default:
		return COW_NEVER;
	}
}

/* Does any extent of [from, to) belong to another file too (a snapshot,
 * a reflinked copy)? Then no block the rewrite replaces comes free.
 * Where FIEMAP cannot say, assume so. */
static bool
shares_extents(int fd, uint64_t from, uint64_t to)
{
	enum { BATCH = 64 };
	union {
		struct fiemap map;
		char room[sizeof(struct fiemap) +
			  BATCH * sizeof(struct fiemap_extent)];
	} u;
	struct fiemap_extent *x;

	while (from < to) {
		memset(&u.map, 0, sizeof(u.map));
		u.map.fm_start = from;
		u.map.fm_length = to - from;
		u.map.fm_extent_count = BATCH;
		if (ioctl(fd, FS_IOC_FIEMAP, &u.map) < 0)
			return true;
		if (u.map.fm_mapped_extents == 0)
			return false; /* a hole to the end */
		for (uint32_t i = 0; i < u.map.fm_mapped_extents; i++) {
			x = &u.map.fm_extents[i];
			if (x->fe_flags & FIEMAP_EXTENT_SHARED)
				return true;
			if (x->fe_flags & FIEMAP_EXTENT_LAST)
				return false;
		}
		x = &u.map.fm_extents[u.map.fm_mapped_extents - 1];
		if (x->fe_logical + x->fe_length <= from)
			return true; /* no progress: do not loop */
		from = x->fe_logical + x->fe_length;
	}
	return false;
}

int
fsroom_rewrite(int fd, uint64_t from, uint64_t to, uint64_t extra,
	       uint64_t *need, uint64_t *avail)
{
	enum cow kind = cow_kind(fd);
	uint64_t n = to > from ? to - from : 0;
	struct statvfs sv;

	if (kind == COW_NEVER || fstatvfs(fd, &sv) < 0)
		return 0;
	/* An extent comes free only once all of it has been rewritten
	 * (btrfs), so a rewrite front to back holds at most one extent's
	 * worth beyond what it has written; unless extents are shared,
	 * when nothing comes free. FIEMAP only where it changes the
	 * answer: it walks every extent of the range. */
	if (kind == COW_WHEN_SHARED) {
		if (!shares_extents(fd, from, to))
			return 0;
	} else if (n > FSROOM_EXTENT_MAX && !shares_extents(fd, from, to)) {
		n = FSROOM_EXTENT_MAX;
	}
	*need = n + extra + FSROOM_SLACK;
	*avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	if (*avail >= *need)
		return 0;
	errno = ENOSPC;
	return -1;
}
