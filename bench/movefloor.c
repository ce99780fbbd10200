/* bench/movefloor: the floor of a crash-safe move, the input/output of
 * UPDATE's steps (design.md §4.8) without any of its bookkeeping.
 *
 *   movefloor SPOOL SHIFT SAVEFILE
 *
 * Moves SPOOL's octets from SHIFT to its end down to offset 0, in place,
 * as pop3d moves them. When the shift is below JOURNAL_DIRECT_MIN (DELE
 * first of a message of ordinary size): window by window of
 * JOURNAL_WINDOW octets, each window first copied to one of two save
 * areas in SAVEFILE (created, its areas allocated ahead, removed at the
 * end), that copy made durable, then the window written in place and
 * made durable. As in journal.c, the next window is saved while this
 * one's in-place writes go back to the disk, and both writebacks are
 * started at once with sync_file_range. With a larger shift: direct
 * steps of at most the shift, each after a durable 4 KiB progress
 * record in SAVEFILE. Then SPOOL is truncated, as the dd floor truncates
 * it (bench/benchlib.py).
 *
 * What it leaves out is what pop3d adds on top: the journal's header,
 * region table and slots (each window's slot a 64-octet write and a sync
 * of its own after the window's, since round 14 of issue 13; until then
 * a content hash of the window instead), the marker, and the syncs of
 * the journal directory. bench/peers.py times it in turn
 * with dd and the servers; pop3d's UPDATE against it is the cost of those
 * and of pop3d's copying, against dd the cost of crash safety.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../params.h"

#define PIECE (256 * 1024) /* as UPDATE's copy buffer */

static char buf[PIECE];

static void
die(const char *what)
{
	fprintf(stderr, "movefloor: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Copy n octets of fd from offset from to offset to in out, piece by
 * piece (from is above to whenever out is fd, so no piece overwrites an
 * octet it has not read). */
static void
copy(int fd, uint64_t from, uint64_t n, int out, uint64_t to)
{
	while (n > 0) {
		size_t k = n < PIECE ? (size_t)n : PIECE;
		ssize_t r = pread(fd, buf, k, (off_t)from);

		if (r <= 0) {
			errno = r == 0 ? EIO : errno;
			die("pread");
		}
		if (pwrite(out, buf, (size_t)r, (off_t)to) != r)
			die("pwrite");
		from += (uint64_t)r, to += (uint64_t)r, n -= (uint64_t)r;
	}
}

static void
writeback(int fd, uint64_t at, uint64_t n)
{
	(void)sync_file_range(fd, (off_t)at, (off_t)n, SYNC_FILE_RANGE_WRITE);
}

static void
sync_or_die(int fd, const char *what)
{
	if (fdatasync(fd) < 0)
		die(what);
}

/* Where the window that starts at output offset d is saved: the two
 * areas take turns. */
static uint64_t
area(uint64_t d)
{
	return d / JOURNAL_WINDOW % 2 * JOURNAL_WINDOW;
}

static uint64_t
window_at(uint64_t d, uint64_t end)
{
	return end - d < JOURNAL_WINDOW ? end - d : JOURNAL_WINDOW;
}

/* Saved windows: the shift is too small for direct steps of a useful
 * length. Each window but the first is saved while the one before it
 * is written back. */
static void
move_saved(int fd, int sfd, uint64_t shift, uint64_t end)
{
	uint64_t d, c, next;

	if (end > 0)
		copy(fd, shift, window_at(0, end), sfd, area(0));
	for (d = 0; d < end; d = next) {
		c = window_at(d, end);
		next = d + c;
		sync_or_die(sfd, "fdatasync of the save file");
		copy(fd, d + shift, c, fd, d);
		writeback(fd, d, c);
		if (next < end) {
			copy(fd, next + shift, window_at(next, end), sfd,
			     area(next));
			writeback(sfd, area(next), window_at(next, end));
		}
		sync_or_die(fd, "fdatasync of the spool");
	}
}

/* Direct steps: no step overwrites a source octet it has not copied. */
static void
move_direct(int fd, int sfd, uint64_t shift, uint64_t end)
{
	static char record[4096];
	uint64_t d, c;

	for (d = 0; d < end; d += c) {
		c = end - d < shift ? end - d : shift;
		memcpy(record, &d, sizeof(d));
		if (pwrite(sfd, record, sizeof(record), 0) != sizeof(record))
			die("pwrite of the progress record");
		sync_or_die(sfd, "fdatasync of the save file");
		copy(fd, d + shift, c, fd, d);
		sync_or_die(fd, "fdatasync of the spool");
	}
}

int
main(int argc, char **argv)
{
	uint64_t shift, end;
	struct stat st;
	int fd, sfd;

	if (argc != 4) {
		fprintf(stderr, "usage: movefloor SPOOL SHIFT SAVEFILE\n");
		return 2;
	}
	shift = strtoull(argv[2], NULL, 10);
	if ((fd = open(argv[1], O_RDWR | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0)
		die(argv[1]);
	if (shift == 0 || shift > (uint64_t)st.st_size) {
		fprintf(stderr, "movefloor: SHIFT must be 1..size\n");
		return 2;
	}
	end = (uint64_t)st.st_size - shift;
	sfd = open(argv[3], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (sfd < 0 ||
	    (shift < JOURNAL_DIRECT_MIN &&
	     fallocate(sfd, 0, 0, (off_t)(2 * JOURNAL_WINDOW)) < 0) ||
	    fsync(sfd) < 0)
		die(argv[3]);
	if (shift < JOURNAL_DIRECT_MIN)
		move_saved(fd, sfd, shift, end);
	else
		move_direct(fd, sfd, shift, end);
	if (ftruncate(fd, (off_t)end) < 0)
		die("ftruncate");
	if (unlink(argv[3]) < 0)
		die("unlink");
	return 0;
}
