/*
 * blklog: a block device whose every write and cache flush is logged, for
 * tests/faults/blkcrash.py (make check-blkcrash). dm-log-writes does this
 * in the kernel; these machines have no device-mapper, so a FUSE file
 * system with one file, "disk", stands in: a loop device on that file
 * turns the file system's block writes into writes of the file and every
 * cache flush (REQ_PREFLUSH, and FUA, which loop does not offer) into its
 * fsync. A test only; never installed.
 *
 *   blklog MOUNTPOINT SIZE_MIB LOGFILE
 *
 * Runs in the foreground, single-threaded, so that the log is in the
 * order the kernel completed the requests: a write is logged before its
 * reply, so anything the file system waited for before a flush is in the
 * log before that flush. The disk lives in memory and starts zeroed.
 * LOGFILE (created, truncated) is a sequence of records: a header of
 * four little-endian fields, u32 kind (1 write, 2 flush), u32 length,
 * u64 offset, u64 sequence number, then for a write its octets. Stop it
 * with fusermount3 -u MOUNTPOINT.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { REC_WRITE = 1, REC_FLUSH = 2 };

static const char disk_path[] = "/disk";

static struct {
	char *img;
	size_t size;
	int log;
	uint64_t seq;
} g;

/* The log is the test's evidence: if it cannot be written, stop rather
 * than let a test pass on a partial record. */
static void
log_all(const void *p, size_t n)
{
	const char *b = p;

	while (n > 0) {
		ssize_t r = write(g.log, b, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			perror("blklog: log");
			abort();
		}
		b += r, n -= (size_t)r;
	}
}

static void
log_record(uint32_t kind, const void *data, uint32_t len, uint64_t off)
{
	unsigned char h[24];
	uint64_t seq = g.seq++;

	for (int i = 0; i < 4; i++) {
		h[i] = (unsigned char)(kind >> (8 * i));
		h[4 + i] = (unsigned char)(len >> (8 * i));
	}
	for (int i = 0; i < 8; i++) {
		h[8 + i] = (unsigned char)(off >> (8 * i));
		h[16 + i] = (unsigned char)(seq >> (8 * i));
	}
	log_all(h, sizeof(h));
	if (len > 0)
		log_all(data, len);
}

static int
bl_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0700;
		st->st_nlink = 2;
	} else if (strcmp(path, disk_path) == 0) {
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = (off_t)g.size;
	} else {
		return -ENOENT;
	}
	return 0;
}

static int
bl_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
	   struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off, (void)fi, (void)flags;
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, disk_path + 1, NULL, 0, 0);
	return 0;
}

static int
bl_open(const char *path, struct fuse_file_info *fi)
{
	(void)fi;
	return strcmp(path, disk_path) == 0 ? 0 : -ENOENT;
}

/* Clamp [off, off + *n) to the disk. */
static int
in_disk(off_t off, size_t *n)
{
	if (off < 0 || (size_t)off > g.size)
		return -EINVAL;
	if (*n > g.size - (size_t)off)
		*n = g.size - (size_t)off;
	return 0;
}

static int
bl_read(const char *path, char *buf, size_t n, off_t off,
	struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	if (in_disk(off, &n) < 0)
		return -EINVAL;
	memcpy(buf, g.img + off, n);
	return (int)n;
}

static int
bl_write(const char *path, const char *buf, size_t n, off_t off,
	 struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	if (in_disk(off, &n) < 0 || n == 0)
		return -ENOSPC;
	memcpy(g.img + off, buf, n);
	log_record(REC_WRITE, buf, (uint32_t)n, (uint64_t)off);
	return (int)n;
}

static int
bl_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path, (void)datasync, (void)fi;
	log_record(REC_FLUSH, NULL, 0, 0);
	return 0;
}

static int
bl_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	return (size_t)size == g.size ? 0 : -EPERM;
}

static const struct fuse_operations ops = {
	.getattr = bl_getattr,
	.readdir = bl_readdir,
	.open = bl_open,
	.read = bl_read,
	.write = bl_write,
	.fsync = bl_fsync,
	.truncate = bl_truncate,
};

int
main(int argc, char **argv)
{
	char *fargv[] = {argv[0], "-f", "-s", NULL, NULL};
	unsigned long mib;

	if (argc != 4 || (mib = strtoul(argv[2], NULL, 10)) == 0 ||
	    mib > 4096) {
		fprintf(stderr, "usage: blklog MOUNTPOINT SIZE_MIB LOGFILE\n");
		return 2;
	}
	g.size = (size_t)mib << 20;
	if ((g.img = calloc(1, g.size)) == NULL) {
		perror("blklog");
		return 1;
	}
	g.log = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (g.log < 0) {
		perror(argv[3]);
		return 1;
	}
	fargv[3] = argv[1];
	return fuse_main(4, fargv, &ops, NULL);
}
