#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "sysutil.h"

/* The journal is one record, replaced atomically (write a new file,
 * sync it, rename it over the old one, sync the directory):
 *
 *   UNDO      the original bytes of [a, a + data): the moves may have
 *             overwritten them. Recovery writes them back.
 *   TRUNCATE  [0, a) is final; if the marker is at a, the file was not
 *             truncated yet: [a, b) is stale and [b, EOF) is mail that
 *             arrived later. Recovery truncates, or moves that mail
 *             down first (through an APPLY record).
 *   APPLY     write the data (mail that arrived after a crash) at a and
 *             the marker after it; [a + data, b) is then stale. Recovery
 *             does it again (idempotent: nothing was truncated yet) and
 *             goes on as TRUNCATE.
 */
enum kind { UNDO = 1, TRUNCATE, APPLY };

#define MARK_MAX 32

struct record {
	char magic[16];
	uint32_t kind;
	uint32_t mark_len;
	uint64_t dev, ino;
	uint64_t a, b;
	uint64_t data_len, data_hash;
	unsigned char mark[MARK_MAX];
	uint64_t header_hash; /* of everything above */
};

static const char magic[16] = "pop3d journal 1";

static uint64_t
digest(const void *p, size_t n)
{
	struct content_hash c;

	memset(&c, 0, sizeof(c));
	hash_update(&c, p, n);
	return hash_final(&c);
}

/* --- plain I/O helpers ---------------------------------------------------- */

static int
pwrite_all(int fd, const void *buf, size_t n, off_t at)
{
	const char *p = buf;
	ssize_t w;

	while (n > 0) {
		w = pwrite(fd, p, n, at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w, n -= w, at += w;
	}
	return 0;
}

/* 0: read; 1: the file ended first; -1: an I/O error (errno). */
static int
pread_all(int fd, void *buf, size_t n, off_t at)
{
	ssize_t r = sys_pread_full(fd, buf, n, at);

	if (r < 0)
		return -1;
	return (size_t)r < n ? 1 : 0;
}

/* Copy n octets from (in, from) to (out, to) through buf, hashing them.
 * Regions may overlap only with to <= from: front to back is then safe. */
static int
copy(int in, off_t from, int out, off_t to, off_t n, char *buf, size_t size,
     struct content_hash *h)
{
	size_t k;

	while (n > 0) {
		k = n < (off_t)size ? (size_t)n : size;
		switch (pread_all(in, buf, k, from)) {
		case 1:
			errno = EIO; /* shorter than it must be */
				     /* fall through */
		case -1:
			return -1;
		}
		if (pwrite_all(out, buf, k, to) < 0)
			return -1;
		if (h != NULL)
			hash_update(h, buf, k);
		from += k, to += k, n -= k;
	}
	return 0;
}

static int
sync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, r;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		return 0;
	*slash = '\0';
	fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

static off_t
file_size(int fd)
{
	struct stat st;

	return fstat(fd, &st) < 0 ? -1 : st.st_size;
}

/* 1: the marker stands at at; 0: it does not (or the file ends before
 * it); -1: an I/O error, which decides nothing. */
static int
marker_at(int fd, off_t at, const struct record *rec)
{
	unsigned char got[MARK_MAX];

	switch (pread_all(fd, got, rec->mark_len, at)) {
	case -1:
		return -1;
	case 1:
		return 0;
	}
	return memcmp(got, rec->mark, rec->mark_len) == 0;
}

/* --- records -------------------------------------------------------------- */

/* Write rec and its data (data_len octets of spool fd from data_from) as
 * the journal, replacing any old one only once the new one is durable. */
static int
put_record(const char *jpath, struct record *rec, int fd, off_t data_from,
	   char *buf, size_t size)
{
	char tmp[PATH_MAX];
	struct content_hash h;
	struct stat st;
	int jfd;

	if (fstat(fd, &st) < 0)
		return -1;
	memcpy(rec->magic, magic, sizeof(magic));
	rec->dev = st.st_dev;
	rec->ino = st.st_ino;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", jpath) >=
	    sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	jfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		   0600);
	if (jfd < 0)
		return -1;
	memset(&h, 0, sizeof(h));
	if (copy(fd, data_from, jfd, sizeof(*rec), rec->data_len, buf, size,
		 &h) < 0)
		goto fail;
	rec->data_hash = hash_final(&h);
	rec->header_hash = digest(rec, offsetof(struct record, header_hash));
	if (pwrite_all(jfd, rec, sizeof(*rec), 0) < 0 || fsync(jfd) < 0)
		goto fail;
	close(jfd);
	if (rename(tmp, jpath) < 0 || sync_dir_of(jpath) < 0)
		return -1;
	return 0;
fail:
	close(jfd);
	unlink(tmp);
	return -1;
}

static int
remove_record(const char *jpath)
{
	if (unlink(jpath) < 0 && errno != ENOENT)
		return -1;
	return sync_dir_of(jpath);
}

/* Read and check the journal. 1: a valid record for fd's file; 0: none
 * (or a torn one, written before any change to the spool: removed);
 * -1: an error. */
static int
get_record(const char *jpath, int fd, struct record *rec, int *jfd_r, char *buf,
	   size_t size)
{
	struct content_hash h;
	struct stat st;
	off_t at, left;
	size_t k;
	int jfd;

	jfd = open(jpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (jfd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	switch (pread_all(jfd, rec, sizeof(*rec), 0)) {
	case -1:
		goto fail; /* an I/O error is no proof of a torn record */
	case 1:
		goto torn;
	}
	if (memcmp(rec->magic, magic, sizeof(magic)) != 0 ||
	    rec->header_hash !=
		    digest(rec, offsetof(struct record, header_hash)) ||
	    rec->kind < UNDO || rec->kind > APPLY || rec->mark_len > MARK_MAX)
		goto torn;
	if (rec->dev != (uint64_t)st.st_dev ||
	    rec->ino != (uint64_t)st.st_ino) {
		log_msg(LOG_ERR, "%s: journal of another file; left alone",
			jpath);
		errno = EINVAL;
		goto fail;
	}
	memset(&h, 0, sizeof(h));
	for (at = sizeof(*rec), left = rec->data_len; left > 0;
	     at += k, left -= k) {
		k = left < (off_t)size ? (size_t)left : size;
		switch (pread_all(jfd, buf, k, at)) {
		case -1:
			goto fail;
		case 1:
			goto torn;
		}
		hash_update(&h, buf, k);
	}
	if (hash_final(&h) != rec->data_hash)
		goto torn;
	*jfd_r = jfd;
	return 1;
torn:
	/* Records are renamed into place only when whole: this is a
	 * leftover .new, or damage. Either way nothing was changed on its
	 * strength (rename comes before the spool is touched). */
	close(jfd);
	log_msg(LOG_WARNING, "%s: unreadable journal removed", jpath);
	return remove_record(jpath) < 0 ? -1 : 0;
fail:
	close(jfd);
	return -1;
}

/* --- the steps ---------------------------------------------------------------
 */

static void
new_mark(struct record *rec, off_t room)
{
	rec->mark_len = room < MARK_MAX ? (uint32_t)room : MARK_MAX;
	if (getrandom(rec->mark, rec->mark_len, 0) != (ssize_t)rec->mark_len)
		for (uint32_t i = 0; i < rec->mark_len; i++)
			rec->mark[i] = (unsigned char)(i * 131 + getpid());
}

/* [0, end) is final and the marker stands at end: truncate. Mail that
 * arrived meanwhile at [later, EOF) is moved down first. */
static int
finish(int fd, const char *jpath, struct record *rec, char *buf, size_t size)
{
	off_t end = rec->a, later = rec->b, eof = file_size(fd);
	struct record apply;

	if (eof < 0)
		return -1;
	if (eof > later) {
		/* Journal that mail (it may overlap its new place), then
		 * write it and a fresh marker after it. */
		memset(&apply, 0, sizeof(apply));
		apply.kind = APPLY;
		apply.a = end;
		apply.b = eof;
		apply.data_len = eof - later;
		new_mark(&apply, eof - (end + (off_t)apply.data_len));
		if (put_record(jpath, &apply, fd, later, buf, size) < 0)
			return -1;
		return -2; /* go on as APPLY */
	}
	if (ftruncate(fd, end) < 0 || fdatasync(fd) < 0)
		return -1;
	return remove_record(jpath);
}

static int
recover_record(int fd, int jfd, const char *jpath, struct record *rec,
	       char *buf, size_t size)
{
	off_t end;
	int r;

	for (;;) {
		switch (rec->kind) {
		case UNDO:
			if (copy(jfd, sizeof(*rec), fd, rec->a, rec->data_len,
				 buf, size, NULL) < 0 ||
			    fdatasync(fd) < 0)
				return -1;
			log_msg(LOG_NOTICE,
				"spool restored from the journal of "
				"an interrupted UPDATE");
			return remove_record(jpath);
		case APPLY:
			end = rec->a + rec->data_len;
			if (copy(jfd, sizeof(*rec), fd, rec->a, rec->data_len,
				 buf, size, NULL) < 0 ||
			    pwrite_all(fd, rec->mark, rec->mark_len, end) < 0 ||
			    fdatasync(fd) < 0)
				return -1;
			rec->kind = TRUNCATE;
			rec->a = end;
			rec->data_len = 0;
			if (put_record(jpath, rec, fd, 0, buf, size) < 0)
				return -1;
			close(jfd);
			if ((jfd = open(jpath, O_RDONLY | O_CLOEXEC)) < 0)
				return -1;
			continue;
		case TRUNCATE:
			r = marker_at(fd, rec->a, rec);
			if (r < 0)
				return -1;
			if (r == 0)
				return remove_record(jpath); /* truncated */
			r = finish(fd, jpath, rec, buf, size);
			if (r != -2)
				return r;
			close(jfd);
			r = get_record(jpath, fd, rec, &jfd, buf, size);
			if (r <= 0)
				return -1;
			continue;
		}
		errno = EINVAL;
		return -1;
	}
}

static void
temp_name(const char *jpath, char tmp[PATH_MAX])
{
	if ((size_t)snprintf(tmp, PATH_MAX, "%s.new", jpath) >= PATH_MAX)
		tmp[0] = '\0';
}

bool
journal_pending(const char *jpath)
{
	char tmp[PATH_MAX];

	temp_name(jpath, tmp);
	return access(jpath, F_OK) == 0 || (tmp[0] && access(tmp, F_OK) == 0);
}

int
journal_recover(int fd, const char *jpath, char *buf, size_t size)
{
	char tmp[PATH_MAX];
	struct record rec;
	int jfd = -1, r;

	/* A record that never got renamed into place was never acted on. */
	temp_name(jpath, tmp);
	if (tmp[0] && unlink(tmp) < 0 && errno != ENOENT)
		return -1;

	r = get_record(jpath, fd, &rec, &jfd, buf, size);
	if (r <= 0)
		return r;
	log_msg(LOG_NOTICE, "%s: finishing an interrupted UPDATE", jpath);
	r = recover_record(fd, jfd, jpath, &rec, buf, size);
	if (jfd >= 0)
		close(jfd);
	return r;
}

int
journal_compact(int fd, const char *jpath, off_t dst, const struct region *reg,
		size_t n, char *buf, size_t size)
{
	off_t eof = file_size(fd), end = dst, len;
	struct record rec;

	if (eof < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		end += reg[i].len < 0 ? eof - reg[i].start : reg[i].len;
	/* Phase 1: save what the moves and the marker may overwrite. */
	memset(&rec, 0, sizeof(rec));
	rec.kind = UNDO;
	new_mark(&rec, eof - end);
	rec.a = dst;
	rec.data_len = end + rec.mark_len - dst;
	if (put_record(jpath, &rec, fd, dst, buf, size) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		len = reg[i].len < 0 ? eof - reg[i].start : reg[i].len;
		if (reg[i].start != dst &&
		    copy(fd, reg[i].start, fd, dst, len, buf, size, NULL) < 0)
			return -1;
		dst += len;
	}
	if (pwrite_all(fd, rec.mark, rec.mark_len, end) < 0 ||
	    fdatasync(fd) < 0)
		return -1;
	/* Phase 2: the new content is durable; truncate after it. */
	rec.kind = TRUNCATE;
	rec.a = end;
	rec.b = eof;
	rec.data_len = 0;
	if (put_record(jpath, &rec, fd, 0, buf, size) < 0)
		return -1;
	if (ftruncate(fd, end) < 0 || fdatasync(fd) < 0)
		return -1;
	return remove_record(jpath);
}
