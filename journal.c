#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fsroom.h"
#include "hash.h"
#include "log.h"
#include "mbox.h"
#include "params.h"
#include "sysutil.h"

/* design.md §4.8 has the argument; in short:
 *
 * The output (the kept bytes in their new order) is written front to
 * back. Output byte x comes from source x + shift(x), and the shift only
 * grows from one region to the next. A step writes output [D, D + c):
 *
 *   direct  c <= shift(D): it writes only below every source byte not yet
 *           copied, so a crash leaves each kept byte at its new place or
 *           its old one. Redone from D after a crash, it reads intact
 *           sources. Before the next step overwrites this step's sources,
 *           the spool is synced and a slot saying "done up to D + c" is.
 *   saved   the shift is small: the step's output (one window) is saved
 *           in the journal with its slot first; recovery writes it back.
 *
 * Then a random marker is written at the new end (never the first byte
 * of mail: see new_mark), a MOVED slot, and the file is truncated.
 *
 * A truncation alone (the last messages deleted, no mail since) moves
 * nothing and writes neither: the deleted bytes themselves, still at the
 * old end until the truncation, say that it has not happened (see
 * old_end_intact). */

static const char magic[16] = "pop3d journal 2";
static const char slot_magic[8] = "pop3dslt";

/* --- encoding --------------------------------------------------------- */

static void
put32(unsigned char *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static void
put64(unsigned char *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
get32(const unsigned char *b)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static uint64_t
get64(const unsigned char *b)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static uint64_t
digest(const void *p, size_t n)
{
	struct content_hash c;

	memset(&c, 0, sizeof(c));
	hash_update(&c, p, n);
	return hash_final(&c);
}

/* Offsets in the header. */
enum {
	H_FLAGS = 16,
	H_MARK_LEN = 20,
	H_INO = 24,
	H_BTIME_SEC = 32,
	H_BTIME_NSEC = 40,
	H_WINDOW = 44,
	H_DST = 48,
	H_END = 56,
	H_EOF = 64,
	H_NREG = 72,
	H_HEAD_FROM = 80,
	H_HEAD_DIGEST = 88,
	H_TAIL_FROM = 96,
	H_TAIL_DIGEST = 104,
	H_MARK = 112,
	H_REGIONS_HASH = 144,
	H_HASH = 152,
	/* JOURNAL_HAVE_DOTLOCK: the dotlock's stamp, and a hash of the
	 * whole header before it. */
	H_DOTLOCK_INO = 160,
	H_DOTLOCK_SEC = 168,
	H_DOTLOCK_NSEC = 176,
	H_DOTLOCK_HASH = 184,
};

/* Offsets in a slot. */
enum {
	S_SEQ = 8,
	S_PHASE = 16,
	S_AREA = 20,
	S_DONE = 24,
	S_SAVE_LEN = 32,
	S_SAVE_HASH = 40,
	S_HEADER_HASH = 48,
	S_HASH = 56,
};

/* Far from overflow in any sum of two offsets. */
#define OFFSET_MAX ((uint64_t)1 << 62)

void
journal_encode_header(struct journal_plan *p,
		      unsigned char b[JOURNAL_HEADER_SIZE])
{
	memset(b, 0, JOURNAL_HEADER_SIZE);
	memcpy(b, magic, sizeof(magic));
	put32(b + H_FLAGS, p->flags);
	put32(b + H_MARK_LEN, p->mark_len);
	put64(b + H_INO, p->ino);
	put64(b + H_BTIME_SEC, (uint64_t)p->btime_sec);
	put32(b + H_BTIME_NSEC, p->btime_nsec);
	put32(b + H_WINDOW, p->window);
	put64(b + H_DST, p->dst);
	put64(b + H_END, p->end);
	put64(b + H_EOF, p->eof);
	put64(b + H_NREG, p->nreg);
	put64(b + H_HEAD_FROM, p->head_from);
	put64(b + H_HEAD_DIGEST, p->head_digest);
	put64(b + H_TAIL_FROM, p->tail_from);
	put64(b + H_TAIL_DIGEST, p->tail_digest);
	memcpy(b + H_MARK, p->mark, JOURNAL_MARK_MAX);
	put64(b + H_REGIONS_HASH, p->regions_hash);
	p->header_hash = digest(b, H_HASH);
	put64(b + H_HASH, p->header_hash);
	if (p->flags & JOURNAL_HAVE_DOTLOCK) {
		put64(b + H_DOTLOCK_INO, p->dotlock.ino);
		put64(b + H_DOTLOCK_SEC, (uint64_t)p->dotlock.ctime_sec);
		put32(b + H_DOTLOCK_NSEC, p->dotlock.ctime_nsec);
		put64(b + H_DOTLOCK_HASH, digest(b, H_DOTLOCK_HASH));
	}
}

int
journal_decode_header(const unsigned char *b, size_t n, struct journal_plan *p)
{
	if (n < JOURNAL_HEADER_SIZE || memcmp(b, magic, sizeof(magic)) != 0 ||
	    get64(b + H_HASH) != digest(b, H_HASH))
		return -1;
	memset(p, 0, sizeof(*p));
	p->flags = get32(b + H_FLAGS);
	p->mark_len = get32(b + H_MARK_LEN);
	p->ino = get64(b + H_INO);
	p->btime_sec = (int64_t)get64(b + H_BTIME_SEC);
	p->btime_nsec = get32(b + H_BTIME_NSEC);
	p->window = get32(b + H_WINDOW);
	p->dst = get64(b + H_DST);
	p->end = get64(b + H_END);
	p->eof = get64(b + H_EOF);
	p->nreg = get64(b + H_NREG);
	p->head_from = get64(b + H_HEAD_FROM);
	p->head_digest = get64(b + H_HEAD_DIGEST);
	p->tail_from = get64(b + H_TAIL_FROM);
	p->tail_digest = get64(b + H_TAIL_DIGEST);
	memcpy(p->mark, b + H_MARK, JOURNAL_MARK_MAX);
	p->regions_hash = get64(b + H_REGIONS_HASH);
	p->header_hash = get64(b + H_HASH);
	if (p->flags & JOURNAL_HAVE_DOTLOCK) {
		if (get64(b + H_DOTLOCK_HASH) != digest(b, H_DOTLOCK_HASH))
			return -1;
		p->dotlock.ino = get64(b + H_DOTLOCK_INO);
		p->dotlock.ctime_sec = (int64_t)get64(b + H_DOTLOCK_SEC);
		p->dotlock.ctime_nsec = get32(b + H_DOTLOCK_NSEC);
		if (get32(b + H_DOTLOCK_NSEC + 4) != 0)
			return -1; /* the padding, written as zeros */
	} else {
		/* Zeros, as every journal without it was written. */
		for (size_t i = H_DOTLOCK_INO; i < JOURNAL_HEADER_SIZE; i++)
			if (b[i] != 0)
				return -1;
	}
	/* Everything bounded before it is used as an offset or a count. */
	if ((p->flags & ~(JOURNAL_HAVE_BTIME | JOURNAL_HAVE_DOTLOCK |
			  JOURNAL_AREA_SYNCED)) != 0 ||
	    p->dotlock.ctime_nsec >= 1000000000u || p->window < 1 ||
	    p->window > JOURNAL_WINDOW || p->btime_nsec >= 1000000000u ||
	    p->mark_len < 1 || p->mark_len > JOURNAL_MARK_MAX ||
	    p->eof > OFFSET_MAX || p->dst > p->end || p->end >= p->eof ||
	    p->end + p->mark_len > p->eof ||
	    (p->nreg < 1 && p->dst != p->end) ||
	    p->nreg > JOURNAL_REGIONS_MAX || p->head_from > p->dst ||
	    p->dst - p->head_from > JOURNAL_BOUNDARY ||
	    p->tail_from < p->end + p->mark_len || p->tail_from > p->eof ||
	    p->eof - p->tail_from > JOURNAL_BOUNDARY)
		return -1;
	for (uint32_t i = p->mark_len; i < JOURNAL_MARK_MAX; i++)
		if (p->mark[i] != 0)
			return -1;
	return 0;
}

void
journal_encode_regions(const struct region *r, size_t n, unsigned char *b)
{
	for (size_t i = 0; i < n; i++) {
		put64(b + i * JOURNAL_REGION_SIZE, (uint64_t)r[i].start);
		put64(b + i * JOURNAL_REGION_SIZE + 8, (uint64_t)r[i].len);
	}
}

uint64_t
journal_regions_hash(const unsigned char *b, size_t n)
{
	return digest(b, n);
}

int
journal_decode_regions(const struct journal_plan *p, const unsigned char *b,
		       size_t n, struct region *r)
{
	uint64_t out = p->dst, shift = 0, start, len;

	if (p->nreg > JOURNAL_REGIONS_MAX ||
	    n != p->nreg * JOURNAL_REGION_SIZE ||
	    journal_regions_hash(b, n) != p->regions_hash)
		return -1;
	for (uint64_t i = 0; i < p->nreg; i++) {
		start = get64(b + i * JOURNAL_REGION_SIZE);
		len = get64(b + i * JOURNAL_REGION_SIZE + 8);
		/* Each region moves down, no less far than the one before
		 * (so none overlaps the one before), and lies in the file. */
		if (len < 1 || start > p->eof || len > p->eof - start ||
		    start <= out || start - out < shift || len > p->end - out)
			return -1;
		shift = start - out;
		r[i] = (struct region){(off_t)start, (off_t)len};
		out += len;
	}
	return out == p->end ? 0 : -1;
}

void
journal_encode_slot(const struct journal_plan *p, const struct journal_slot *s,
		    unsigned char b[JOURNAL_SLOT_SIZE])
{
	memset(b, 0, JOURNAL_SLOT_SIZE);
	memcpy(b, slot_magic, sizeof(slot_magic));
	put64(b + S_SEQ, s->seq);
	put32(b + S_PHASE, s->phase);
	put32(b + S_AREA, s->area);
	put64(b + S_DONE, s->done);
	put64(b + S_SAVE_LEN, s->save_len);
	put64(b + S_SAVE_HASH, s->save_hash);
	put64(b + S_HEADER_HASH, p->header_hash);
	put64(b + S_HASH, digest(b, S_HASH));
}

int
journal_decode_slot(const struct journal_plan *p, const unsigned char *b,
		    size_t n, struct journal_slot *s)
{
	if (n < JOURNAL_SLOT_SIZE ||
	    memcmp(b, slot_magic, sizeof(slot_magic)) != 0 ||
	    get64(b + S_HASH) != digest(b, S_HASH) ||
	    get64(b + S_HEADER_HASH) != p->header_hash)
		return -1;
	s->seq = get64(b + S_SEQ);
	s->phase = get32(b + S_PHASE);
	s->area = get32(b + S_AREA);
	s->done = get64(b + S_DONE);
	s->save_len = get64(b + S_SAVE_LEN);
	s->save_hash = get64(b + S_SAVE_HASH);
	if (s->seq < 1 || s->seq > OFFSET_MAX || s->area > 1 ||
	    (s->phase != JOURNAL_MOVING && s->phase != JOURNAL_MOVED) ||
	    s->done < p->dst || s->done > p->end || s->save_len > p->window ||
	    s->save_len > p->end - s->done ||
	    ((s->save_len == 0 || (p->flags & JOURNAL_AREA_SYNCED)) &&
	     s->save_hash != 0) ||
	    (s->save_len == 0 && s->area != 0) ||
	    (s->save_len > 0 && s->area != (s->seq & 1)) ||
	    (s->phase == JOURNAL_MOVED &&
	     (s->done != p->end || s->save_len != 0)))
		return -1;
	return 0;
}

uint64_t
journal_slot_offset(const struct journal_plan *p, int k)
{
	uint64_t regions = p->nreg * JOURNAL_REGION_SIZE;

	regions = (regions + JOURNAL_BLOCK - 1) / JOURNAL_BLOCK * JOURNAL_BLOCK;
	return JOURNAL_BLOCK + regions + (uint64_t)k * JOURNAL_BLOCK;
}

uint64_t
journal_area_offset(const struct journal_plan *p, int k)
{
	return journal_slot_offset(p, 2) + (uint64_t)k * p->window;
}

/* --- loading ----------------------------------------------------------- */

/* 0: n octets read; 1: the image ends first; -1: an error (errno). */
static int
read_exact(journal_read_fn rd, void *ctx, void *buf, size_t n, uint64_t at)
{
	ssize_t r = rd(ctx, buf, n, at);

	if (r < 0)
		return -1;
	return (size_t)r < n ? 1 : 0;
}

int
journal_load(journal_read_fn rd, void *ctx, struct journal_plan *p,
	     struct region **r_r, struct journal_slot *s)
{
	unsigned char head[JOURNAL_HEADER_SIZE], slot[JOURNAL_SLOT_SIZE];
	struct journal_slot got;
	unsigned char *raw;
	size_t n;
	int r, found = 0;

	*r_r = NULL;
	if ((r = read_exact(rd, ctx, head, sizeof(head), 0)) != 0)
		return r;
	if (journal_decode_header(head, sizeof(head), p) < 0)
		return 1;
	n = p->nreg * JOURNAL_REGION_SIZE;
	raw = malloc(n + 1); /* + 1: none for a truncation alone */
	*r_r = calloc(p->nreg + 1, sizeof(**r_r));
	if (raw == NULL || *r_r == NULL) {
		r = -1;
		goto out;
	}
	if ((r = read_exact(rd, ctx, raw, n, JOURNAL_BLOCK)) != 0)
		goto out;
	if (journal_decode_regions(p, raw, n, *r_r) < 0) {
		r = 1;
		goto out;
	}
	for (int k = 0; k < 2; k++) {
		r = read_exact(rd, ctx, slot, sizeof(slot),
			       journal_slot_offset(p, k));
		if (r < 0)
			goto out;
		/* A slot sits in the block of its sequence number's parity:
		 * anything else was not written by journal.c. */
		if (r == 0 &&
		    journal_decode_slot(p, slot, sizeof(slot), &got) == 0 &&
		    (int)(got.seq & 1) == k && (!found || got.seq > s->seq)) {
			*s = got;
			found = 1;
		}
	}
	r = found ? 0 : 1;
out:
	free(raw);
	if (r != 0) {
		free(*r_r);
		*r_r = NULL;
	}
	return r;
}

/* --- plain I/O helpers -------------------------------------------------- */

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

static ssize_t
read_fd(void *ctx, void *buf, size_t n, uint64_t at)
{
	if (at > OFFSET_MAX)
		return 0;
	return sys_pread_full(*(int *)ctx, buf, n, (off_t)at);
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

/* The spool's identity: its inode and, where the file system keeps it,
 * its birth time. Not the device number: a reboot may renumber it. */
static int
identify(int fd, struct journal_plan *p)
{
	struct statx sx;
	struct stat st;

	p->flags = 0;
	p->btime_sec = 0;
	p->btime_nsec = 0;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME, &sx) == 0) {
		p->ino = sx.stx_ino;
		if (sx.stx_mask & STATX_BTIME) {
			p->flags |= JOURNAL_HAVE_BTIME;
			p->btime_sec = sx.stx_btime.tv_sec;
			p->btime_nsec = sx.stx_btime.tv_nsec;
		}
		return 0;
	}
	if (fstat(fd, &st) < 0)
		return -1;
	p->ino = st.st_ino;
	return 0;
}

/* The digest of [from, to) of the spool; -1 on an error, 1 if the file
 * ends first. */
static int
digest_range(int fd, uint64_t from, uint64_t to, uint64_t *d)
{
	unsigned char b[JOURNAL_BOUNDARY];
	int r;

	if ((r = pread_all(fd, b, to - from, (off_t)from)) != 0)
		return r;
	*d = digest(b, to - from);
	return 0;
}

enum { MARK_NONE, MARK_WHOLE, MARK_ZEROED };

/* What stands at end: MARK_WHOLE the marker; MARK_ZEROED the marker with
 * its first octets zero and the rest as written, a truncation to end
 * begun whose zeroing of the block reached the disk and whose new size
 * did not (mail appended after a truncation starts with "From " or a
 * blank line, never a zero); MARK_NONE neither, or the file ends first.
 * -1: an I/O error, which decides nothing. */
static int
marker_at(int fd, const struct journal_plan *p)
{
	unsigned char got[JOURNAL_MARK_MAX];
	uint32_t k = 0;

	switch (pread_all(fd, got, p->mark_len, (off_t)p->end)) {
	case -1:
		return -1;
	case 1:
		return MARK_NONE;
	}
	if (memcmp(got, p->mark, p->mark_len) == 0)
		return MARK_WHOLE;
	while (k < p->mark_len && got[k] == 0)
		k++;
	return k > 0 && memcmp(got + k, p->mark + k, p->mark_len - k) == 0
		       ? MARK_ZEROED
		       : MARK_NONE;
}

/* Where the run of zeros that starts at offset at ends, looking no
 * further than limit (nor past the end of the file): how far a
 * truncation's zeroing reached. -1 on an I/O error. */
static int64_t
zeros_end(int fd, uint64_t at, uint64_t limit)
{
	unsigned char b[4096];
	ssize_t r;

	while (at < limit) {
		r = sys_pread_full(fd, b,
				   limit - at < sizeof(b) ? (size_t)(limit - at)
							  : sizeof(b),
				   (off_t)at);
		if (r <= 0)
			return r < 0 ? -1 : (int64_t)at;
		for (ssize_t i = 0; i < r; i++)
			if (b[i] != 0)
				return (int64_t)at + i;
		at += (uint64_t)r;
	}
	return (int64_t)at;
}

/* Is the old end as the plan found it: the file at least eof long, and
 * its last bytes before eof the ones digested, or zeroed from end on
 * past them (a truncation begun whose zeroing of the block reached the
 * disk, its new size not)? 1 yes, 0 no, -1 on an I/O error. */
static int
old_end_intact(int fd, const struct journal_plan *p)
{
	off_t size = file_size(fd);
	int64_t z;
	uint64_t d;
	int r;

	if (size < 0)
		return -1;
	if ((uint64_t)size < p->eof)
		return 0;
	if ((z = zeros_end(fd, p->end, p->end + JOURNAL_ZEROED_MAX)) < 0)
		return -1;
	if ((uint64_t)z > p->tail_from)
		return 1;
	if ((r = digest_range(fd, p->tail_from, p->eof, &d)) != 0)
		return r < 0 ? -1 : 0;
	return d == p->tail_digest;
}

/* Has the truncation to end happened? 1 yes, 0 not yet, -1 on an I/O
 * error. Once a MOVED slot is durable, the marker at end tells: mail
 * appended after a truncation starts with "From " or a blank line, never
 * with the marker or with zeros. A truncation alone writes no marker:
 * there the old end tells, as long as it is there. Once the truncation
 * happened, mail appended since would have to end, at the old end's
 * offset, in the very octets the journal digested to pass for it.
 * (Only for those two: a journal of moves in its MOVING phase has not
 * truncated.) */
static int
truncated(int fd, const struct journal_plan *p, const struct journal_slot *s)
{
	int r;

	if (s->phase == JOURNAL_MOVED) {
		if ((r = marker_at(fd, p)) < 0)
			return -1;
		return r == MARK_NONE;
	}
	if ((r = old_end_intact(fd, p)) < 0)
		return -1;
	return !r;
}

/* --- the engine ---------------------------------------------------------- */

static const struct journal_tuning defaults = {JOURNAL_DIRECT_MIN,
					       JOURNAL_WINDOW};

struct engine {
	int fd, jfd;
	const char *jpath;
	struct journal_plan plan;
	const struct region *reg;
	struct journal_slot cur; /* the newest durable slot */
	char *buf;
	size_t size;
	const struct file_stamp *dotlock; /* held now, or NULL */
	uint64_t direct_min;
	struct journal_tuning tuning;
	size_t ri;     /* region holding the output offset last located */
	uint64_t rout; /* where region ri starts in the output */
	/* A window saved ahead (save_ahead): its area written, not yet
	 * named by a slot. len 0: none. */
	struct {
		uint64_t d, len, hash;
		uint32_t area;
	} ahead;
};

/* Make region ri the one holding output offset x (dst <= x < end). */
static void
locate(struct engine *e, uint64_t x)
{
	if (x < e->rout)
		e->ri = 0, e->rout = e->plan.dst;
	while (x >= e->rout + (uint64_t)e->reg[e->ri].len) {
		e->rout += e->reg[e->ri].len;
		e->ri++;
	}
}

static uint64_t
shift_at(struct engine *e, uint64_t x)
{
	locate(e, x);
	return (uint64_t)e->reg[e->ri].start - e->rout;
}

/* Where, in output [d, d + c), the shift first reaches direct_min (the
 * end if it does not): a saved window stops there, since direct steps
 * cost no saved bytes (DELE every other: after a few MB). */
static uint64_t
direct_from(struct engine *e, uint64_t d, uint64_t c)
{
	size_t ri;
	uint64_t rout;

	locate(e, d);
	for (ri = e->ri, rout = e->rout; rout < d + c;
	     rout += e->reg[ri].len, ri++)
		if ((uint64_t)e->reg[ri].start - rout >= e->direct_min)
			return rout > d ? rout : d + c;
	return d + c;
}

/* preadv until every piece is full. 0: read; 1: the file ended first;
 * -1: an I/O error (errno). Advances through iov. */
static int
preadv_all(int fd, struct iovec *iov, int cnt, off_t at)
{
	ssize_t r;

	while (cnt > 0) {
		r = preadv(fd, iov, cnt, at);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -1 : 1;
		at += r;
		for (; cnt > 0 && (size_t)r >= iov->iov_len; iov++, cnt--)
			r -= (ssize_t)iov->iov_len;
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

/* Read the sources of output [from, from + n) into e->buf, as far as one
 * preadv takes them (params.h, JOURNAL_GATHER_GAP): *got is the output
 * read, at least the rest of the region at from (or e->size). 0, 1 or -1
 * as preadv_all. */
static int
gather(struct engine *e, uint64_t from, uint64_t n, uint64_t *got)
{
	static char scratch[JOURNAL_GATHER_GAP]; /* deleted bytes, unread */
	struct iovec iov[JOURNAL_GATHER_IOV];
	uint64_t at, src, k, gap, done = 0;
	int cnt = 0;

	if (n > e->size)
		n = e->size;
	locate(e, from);
	at = src = e->reg[e->ri].start + (from - e->rout);
	for (;;) {
		k = e->rout + e->reg[e->ri].len - (from + done);
		if (k > n - done)
			k = n - done;
		iov[cnt++] = (struct iovec){e->buf + done, k};
		done += k, src += k;
		if (done == n || cnt + 2 > JOURNAL_GATHER_IOV)
			break;
		locate(e, from + done);
		gap = (uint64_t)e->reg[e->ri].start - src; /* starts ascend */
		if (gap > sizeof(scratch))
			break;
		if (gap > 0)
			iov[cnt++] = (struct iovec){scratch, gap};
		src += gap;
	}
	*got = done;
	return preadv_all(e->fd, iov, cnt, (off_t)at);
}

/* Write output [from, from + n) to out at to, read from its sources front
 * to back, hashing it into h if set. Safe even where sources and output
 * overlap: a source never lies below its output, and each piece is read
 * whole before any of it is written, so a write reaches no source byte
 * that a later piece still needs. */
static int
copy_output(struct engine *e, uint64_t from, uint64_t n, int out, uint64_t to,
	    struct content_hash *h)
{
	uint64_t k;

	while (n > 0) {
		switch (gather(e, from, n, &k)) {
		case 1:
			errno = EIO; /* shorter than it must be */
				     /* fall through */
		case -1:
			return -1;
		}
		if (pwrite_all(out, e->buf, k, (off_t)to) < 0)
			return -1;
		if (h != NULL)
			hash_update(h, e->buf, k);
		from += k, to += k, n -= k;
	}
	return 0;
}

/* Make s the newest slot, durably. */
static int
put_slot(struct engine *e, struct journal_slot s)
{
	unsigned char b[JOURNAL_SLOT_SIZE];

	s.seq = e->cur.seq + 1;
	journal_encode_slot(&e->plan, &s, b);
	if (pwrite_all(e->jfd, b, sizeof(b),
		       (off_t)journal_slot_offset(&e->plan, (int)(s.seq & 1))) <
		    0 ||
	    fdatasync(e->jfd) < 0)
		return -1;
	e->cur = s;
	return 0;
}

/* Does recovery from the newest slot start at output offset x? */
static bool
durable_at(const struct engine *e, uint64_t x)
{
	return e->cur.phase == JOURNAL_MOVING &&
	       e->cur.done + e->cur.save_len == x;
}

/* Ask the kernel to start writing [at, at + n) of fd back now, so that
 * the device works while we copy the next window; the fdatasync that
 * follows still decides durability. Only a hint: errors are ignored
 * (the fdatasync reports what matters). */
static void
start_writeback(int fd, uint64_t at, uint64_t n)
{
	(void)sync_file_range(fd, (off_t)at, (off_t)n, SYNC_FILE_RANGE_WRITE);
}

/* The step that starts at output offset d: its length, and whether it
 * is saved first (the shift is small) or direct. */
static uint64_t
step_at(struct engine *e, uint64_t d, bool *saved)
{
	uint64_t shift = shift_at(e, d), left = e->plan.end - d, c;

	*saved = shift < e->direct_min && shift < left;
	if (!*saved)
		return shift < left ? shift : left;
	c = e->plan.window < left ? e->plan.window : left;
	return direct_from(e, d, c) - d;
}

/* Write output [d, d + c) into the save area the next slot will name.
 * Safe before that slot: the newest durable slot names the other area
 * (or none), and the one before it is never read again. Hashed only for
 * a journal written before JOURNAL_AREA_SYNCED, which a recovery goes
 * on writing in its own format. */
static int
save_window(struct engine *e, uint64_t d, uint64_t c)
{
	struct content_hash h;
	bool hashed = !(e->plan.flags & JOURNAL_AREA_SYNCED);
	uint32_t area = (uint32_t)((e->cur.seq + 1) & 1);

	memset(&h, 0, sizeof(h));
	e->ahead.len = 0;
	if (copy_output(e, d, c, e->jfd,
			journal_area_offset(&e->plan, (int)area),
			hashed ? &h : NULL) < 0)
		return -1;
	e->ahead.d = d, e->ahead.len = c, e->ahead.area = area;
	e->ahead.hash = hashed ? hash_final(&h) : 0;
	return 0;
}

/* After step [.., d) has written its output in place and before that
 * is synced: if the next step is a saved one, save its window now, so
 * that the journal's writeback overlaps the spool's. The next step's
 * sources lie at or above d plus its shift, which no write so far has
 * touched. */
static int
save_ahead(struct engine *e, uint64_t d)
{
	bool saved;
	uint64_t c;

	if (d >= e->plan.end)
		return 0;
	c = step_at(e, d, &saved);
	if (!saved)
		return 0;
	if (save_window(e, d, c) < 0)
		return -1;
	start_writeback(e->jfd,
			journal_area_offset(&e->plan, (int)e->ahead.area), c);
	return 0;
}

/* Write output [d, d + c) in place; with sync, make it durable, saving
 * the next window meanwhile. */
static int
move_in_place(struct engine *e, uint64_t d, uint64_t c, bool sync)
{
	if (copy_output(e, d, c, e->fd, d, NULL) < 0)
		return -1;
	if (!sync)
		return 0;
	start_writeback(e->fd, d, c);
	if (save_ahead(e, d + c) < 0 || fdatasync(e->fd) < 0)
		return -1;
	return 0;
}

/* sync: whether the step's writes must be durable before the next
 * slot; not for the last step when the marker's own sync covers them
 * (run). */
static int
step_direct(struct engine *e, uint64_t d, uint64_t c, bool sync)
{
	if (!durable_at(e, d) &&
	    put_slot(e, (struct journal_slot){.phase = JOURNAL_MOVING,
					      .done = d}) < 0)
		return -1;
	return move_in_place(e, d, c, sync);
}

static int
step_saved(struct engine *e, uint64_t d, uint64_t c, bool sync)
{
	struct journal_slot s = {.phase = JOURNAL_MOVING, .done = d};

	if (!(e->ahead.len == c && e->ahead.d == d &&
	      e->ahead.area == ((e->cur.seq + 1) & 1)) &&
	    save_window(e, d, c) < 0)
		return -1;
	s.area = e->ahead.area;
	s.save_len = c;
	s.save_hash = e->ahead.hash;
	e->ahead.len = 0;
	/* The area durable before the slot that names it: a slot on the
	 * disk then always names a whole window, with no hash to check. A
	 * sync costs about 0.25 ms here, the area's writeback mostly done
	 * (save_ahead); hashing 8 MiB cost 0.7 ms (design.md §4.8). */
	if (fdatasync(e->jfd) < 0 || put_slot(e, s) < 0)
		return -1;
	return move_in_place(e, d, c, sync);
}

static int
remove_journal(const char *jpath)
{
	if (unlink(jpath) < 0 && errno != ENOENT)
		return -1;
	return sync_dir_of(jpath);
}

/* The descriptor of the journal the last compaction removed. Its last
 * close frees the file's blocks, and for the save areas (16 MiB,
 * allocated ahead) ext4 takes about 5 ms of a 100 ms UPDATE to do it:
 * work the client need not wait for, once the journal is unlinked and
 * its directory synced. journal_release does it after the reply. */
static int spent_fd = -1;

static void
spend(int jfd)
{
	journal_release();
	spent_fd = jfd;
}

void
journal_release(void)
{
	if (spent_fd >= 0)
		close(spent_fd);
	spent_fd = -1;
}

static int compact_plan(int fd, const char *jpath, uint64_t dst,
			const struct region *reg, size_t n, char *buf,
			size_t size, const struct file_stamp *dotlock,
			const struct journal_tuning *t, bool replacing);

/* Where the mail delivered after the crash starts. As in UPDATE
 * (maildrop.c, tail_start): when the octets before the old end were
 * deleted, a blank line an MDA wrote before its From_ line (the old last
 * message lacked one) belongs to that message, and goes with it; moved
 * along, it would grow the last kept message by a line. */
static off_t
later_start(const struct engine *e)
{
	const struct journal_plan *p = &e->plan;
	char buf[APPEND_PEEK_SIZE];
	ssize_t n, i;

	if (p->nreg > 0 && (uint64_t)(e->reg[p->nreg - 1].start +
				      e->reg[p->nreg - 1].len) == p->eof)
		return (off_t)p->eof; /* the last message is kept */
	if ((n = sys_pread_full(e->fd, buf, sizeof(buf), (off_t)p->eof)) < 0)
		return -1;
	i = mbox_appended_from(buf, (size_t)n);
	return (off_t)p->eof + (i > 0 ? i : 0);
}

/* Mail delivered after a crash, behind the old end: moved down to end
 * by a compaction of its own, whose journal replaces this one. */
static int
move_later(struct engine *e, off_t eof)
{
	off_t from = later_start(e);
	struct region later = {from, eof - from};

	if (from < 0)
		return -1;
	return compact_plan(e->fd, e->jpath, e->plan.end, &later, 1, e->buf,
			    e->size, e->dotlock, &e->tuning, true);
}

static int
truncate_to_end(struct engine *e)
{
	if (ftruncate(e->fd, (off_t)e->plan.end) < 0 || fdatasync(e->fd) < 0)
		return -1;
	return remove_journal(e->jpath);
}

/* Output [dst, end) is final and durable, and a MOVED slot says so (or
 * nothing moved: a truncation alone). Truncate, unless that was done;
 * mail delivered after a crash is moved down first. */
static int
finish(struct engine *e)
{
	const struct journal_plan *p = &e->plan;
	off_t eof;
	int r;

	if ((r = truncated(e->fd, p, &e->cur)) < 0)
		return -1;
	if (r)
		return remove_journal(e->jpath);
	if ((eof = file_size(e->fd)) < 0)
		return -1;
	if ((uint64_t)eof > p->eof)
		return move_later(e, eof);
	return truncate_to_end(e);
}

/* Move output [d, end) in steps, then mark the end and finish.
 *
 * The last step's writes need no sync of their own when recovery from
 * the newest slot after it reads no source byte the marker covers: the
 * marker's fdatasync then makes them durable before the MOVED slot, and
 * until then recovery redoes the step (design.md §4.8, "End"). */
static int
run(struct engine *e, uint64_t d)
{
	const struct journal_plan *p = &e->plan;
	uint64_t c, end_m = p->end + p->mark_len;
	bool saved, last_unsynced = false;
	off_t eof;

	/* A truncation alone, in UPDATE itself (its recovery goes to
	 * finish): the plan has just read the old end, and the locks keep
	 * writers out since. */
	if (p->nreg == 0)
		return truncate_to_end(e);
	while (d < p->end) {
		c = step_at(e, d, &saved);
		if (!saved) {
			/* Recovery resumes at d and reads from d + shift. */
			last_unsynced =
				c == p->end - d && end_m <= d + shift_at(e, d);
			if (step_direct(e, d, c, !last_unsynced) < 0)
				return -1;
		} else {
			/* Recovery writes the window back and reads no
			 * source: nothing follows it. */
			last_unsynced = c == p->end - d;
			if (step_saved(e, d, c, !last_unsynced) < 0)
				return -1;
		}
		d += c;
	}
	/* Mail delivered after a crash (recovery only: during UPDATE the
	 * locks keep writers out): it is moved down to end under a journal
	 * of its own, which writes the spool only once it has durably
	 * replaced this one; until then this one's newest slot redoes at
	 * most the last step, from sources nothing has overwritten. No
	 * marker: the mail goes where it would. Only an unsynced last step
	 * must be made durable first: the new journal's plan starts at its
	 * end. */
	if ((eof = file_size(e->fd)) < 0)
		return -1;
	if ((uint64_t)eof > p->eof)
		return last_unsynced && fdatasync(e->fd) < 0
			       ? -1
			       : move_later(e, eof);
	/* Otherwise the marker may overwrite sources of the last step:
	 * recovery must not redo that step from them. */
	if (!last_unsynced && !durable_at(e, p->end) &&
	    put_slot(e, (struct journal_slot){.phase = JOURNAL_MOVING,
					      .done = p->end}) < 0)
		return -1;
	if (pwrite_all(e->fd, p->mark, p->mark_len, (off_t)p->end) < 0 ||
	    fdatasync(e->fd) < 0)
		return -1;
	if (put_slot(e, (struct journal_slot){.phase = JOURNAL_MOVED,
					      .done = p->end}) < 0)
		return -1;
	return finish(e);
}

/* A random marker that cannot be the first byte of appended mail: an
 * MDA starts with "From " or a blank line. */
static void
new_mark(struct journal_plan *p, uint64_t room)
{
	p->mark_len =
		room < JOURNAL_MARK_MAX ? (uint32_t)room : JOURNAL_MARK_MAX;
	memset(p->mark, 0, sizeof(p->mark));
	if (getrandom(p->mark, p->mark_len, 0) != (ssize_t)p->mark_len)
		for (uint32_t i = 0; i < p->mark_len; i++)
			p->mark[i] = (unsigned char)(i * 131 + getpid());
	if (p->mark[0] == 'F' || p->mark[0] == '\n' || p->mark[0] == '\r')
		p->mark[0] = 0;
}

/* Where the output of the regions moved down to dst ends. */
static uint64_t
output_end(uint64_t dst, const struct region *reg, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst += (uint64_t)reg[i].len;
	return dst;
}

/* A save area need not be larger than what moves (a truncation alone
 * moves nothing, and has areas of one octet, never used). */
static uint32_t
area_size(uint64_t moved, const struct journal_tuning *t)
{
	if (moved == 0)
		return 1;
	return moved < t->window ? (uint32_t)moved : t->window;
}

static int
make_plan(int fd, uint64_t dst, const struct region *reg, size_t n,
	  uint64_t eof, const struct file_stamp *dotlock,
	  struct journal_plan *p)
{
	uint64_t end = output_end(dst, reg, n);

	memset(p, 0, sizeof(*p));
	if (identify(fd, p) < 0)
		return -1;
	p->flags |= JOURNAL_AREA_SYNCED;
	if (dotlock != NULL) {
		p->flags |= JOURNAL_HAVE_DOTLOCK;
		p->dotlock = *dotlock;
	}
	p->dst = dst;
	p->end = end;
	p->eof = eof;
	p->nreg = n;
	new_mark(p, eof - end);
	p->head_from = dst > JOURNAL_BOUNDARY ? dst - JOURNAL_BOUNDARY : 0;
	p->tail_from = eof - end - p->mark_len > JOURNAL_BOUNDARY
			       ? eof - JOURNAL_BOUNDARY
			       : end + p->mark_len;
	if (digest_range(fd, p->head_from, dst, &p->head_digest) != 0 ||
	    digest_range(fd, p->tail_from, eof, &p->tail_digest) != 0) {
		if (errno == 0)
			errno = EIO;
		return -1;
	}
	return 0;
}

/* Does a plan from dst save windows? The first shift is the smallest:
 * if it is large enough, every step is direct. */
static bool
saves_windows(uint64_t dst, const struct region *reg, size_t n,
	      uint64_t direct_min)
{
	return n > 0 && (uint64_t)reg[0].start - dst < direct_min;
}

/* Once UPDATE has begun it must be finished, also by a recovery at the
 * next login: a full disk must not stop it halfway. So the save areas a
 * small shift needs are allocated before it begins (a file system that
 * cannot allocate ahead is not asked; one that copies on write is asked
 * for more first, room_to_move). */
static int
reserve_areas(int jfd, const struct journal_plan *p, const struct region *reg,
	      uint64_t direct_min)
{
	if (!saves_windows(p->dst, reg, p->nreg, direct_min))
		return 0;
	if (fallocate(jfd, 0, (off_t)journal_area_offset(p, 0),
		      (off_t)(2 * (uint64_t)p->window)) == 0 ||
	    errno == EOPNOTSUPP)
		return 0;
	return -1;
}

/* Write the journal for plan p with its first slot; it appears under
 * jpath only whole and durable. Returns its descriptor, or -1.
 * replacing: jpath holds the journal a recovery is finishing, which this
 * one continues (move_later). */
static int
create_journal(const char *jpath, struct journal_plan *p,
	       const struct region *reg, uint64_t direct_min, bool replacing)
{
	unsigned char head[JOURNAL_BLOCK], slot[JOURNAL_SLOT_SIZE];
	size_t n = p->nreg * JOURNAL_REGION_SIZE;
	struct journal_slot s = {.seq = 1, .phase = JOURNAL_MOVING};
	char tmp[PATH_MAX];
	unsigned char *raw;
	int jfd, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", jpath) >=
	    sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* + 1: a truncation alone has no regions. */
	if ((raw = malloc(n + 1)) == NULL)
		return -1; /* errno ENOMEM, not a name too long */
	journal_encode_regions(reg, p->nreg, raw);
	p->regions_hash = journal_regions_hash(raw, n);
	memset(head, 0, sizeof(head));
	journal_encode_header(p, head);
	s.done = p->dst;
	journal_encode_slot(p, &s, slot);
	jfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		   0600);
	if (jfd < 0) {
		free(raw);
		return -1;
	}
	if (pwrite_all(jfd, head, sizeof(head), 0) < 0 ||
	    pwrite_all(jfd, raw, n, JOURNAL_BLOCK) < 0 ||
	    pwrite_all(jfd, slot, sizeof(slot),
		       (off_t)journal_slot_offset(p, 1)) < 0 ||
	    reserve_areas(jfd, p, reg, direct_min) < 0 || fsync(jfd) < 0 ||
	    rename(tmp, jpath) < 0 || sync_dir_of(jpath) < 0)
		goto fail;
	free(raw);
	return jfd;
fail:
	saved = errno;
	free(raw);
	close(jfd);
	unlink(tmp);
	/* A new UPDATE: if the rename happened but the directory sync
	 * failed, the journal may or may not survive a crash; remove it
	 * while nothing has been moved, so that UPDATE surely did not
	 * begin. A replacement must not: whichever of the two journals
	 * jpath names, the one under recovery or this one (nothing has
	 * been written under it yet), finishes the same UPDATE, and with
	 * neither the spool would stay half moved for good. */
	if (!replacing) {
		unlink(jpath);
		sync_dir_of(jpath);
	}
	errno = saved;
	return -1;
}

/* On a copy-on-write file system every write in place takes new
 * blocks, and a move that ran out of space halfway would leave the spool
 * half moved, for every other reader, until a recovery found room. So
 * UPDATE does not begin without room for what it writes: the rewrite in
 * place, and the save areas twice over (allocated, then rewritten).
 * Recovery does not ask: it must go on. (design.md §4.8, "Full disks".) */
static int
room_to_move(int fd, uint64_t dst, const struct region *reg, size_t n,
	     const struct journal_tuning *t)
{
	uint64_t end = output_end(dst, reg, n), extra = 0, need, avail;

	if (saves_windows(dst, reg, n, t->direct_min))
		extra = 4 * (uint64_t)area_size(end - dst, t);
	if (fsroom_rewrite(fd, dst, end + JOURNAL_MARK_MAX, extra, &need,
			   &avail) == 0)
		return 0;
	log_msg(LOG_WARNING,
		"UPDATE not begun: %llu MB free on a copy-on-write file "
		"system, %llu MB needed to rewrite the spool in place",
		(unsigned long long)(avail >> 20),
		(unsigned long long)((need + (1 << 20) - 1) >> 20));
	errno = ENOSPC;
	return -1;
}

static int
compact_plan(int fd, const char *jpath, uint64_t dst, const struct region *reg,
	     size_t n, char *buf, size_t size, const struct file_stamp *dotlock,
	     const struct journal_tuning *t, bool replacing)
{
	struct engine e = {.fd = fd,
			   .jpath = jpath,
			   .reg = reg,
			   .buf = buf,
			   .size = size,
			   .dotlock = dotlock,
			   .tuning = *t,
			   .direct_min = t->direct_min};
	off_t eof = file_size(fd);
	int r, saved;

	if (eof < 0)
		return -1;
	if (make_plan(fd, dst, reg, n, (uint64_t)eof, dotlock, &e.plan) < 0)
		return -1;
	e.plan.window = area_size(e.plan.end - e.plan.dst, t);
	if ((e.jfd = create_journal(jpath, &e.plan, reg, t->direct_min,
				    replacing)) < 0)
		return -1;
	/* UPDATE has begun: from here on, recovery finishes it. */
	e.cur = (struct journal_slot){
		.seq = 1, .phase = JOURNAL_MOVING, .done = dst};
	e.rout = dst;
	r = run(&e, dst);
	saved = errno;
	if (r == 0)
		spend(e.jfd);
	else
		close(e.jfd);
	errno = saved;
	return r;
}

int
journal_compact(int fd, const char *jpath, off_t dst, const struct region *reg,
		size_t n, char *buf, size_t size,
		const struct file_stamp *dotlock,
		const struct journal_tuning *t)
{
	struct region *keep;
	off_t eof = file_size(fd), at = dst;
	size_t k = 0;
	int r;

	if (eof < 0)
		return -1;
	keep = calloc(n + 1, sizeof(*keep));
	if (keep == NULL)
		return -1;
	/* Resolve "to the end of the file", drop empty regions, check the
	 * caller's promises. */
	for (size_t i = 0; i < n; i++) {
		off_t len = reg[i].len < 0 ? eof - reg[i].start : reg[i].len;

		if (reg[i].start < at || len < 0 || reg[i].start > eof ||
		    len > eof - reg[i].start) {
			free(keep);
			errno = EINVAL;
			return -1;
		}
		if (len > 0)
			keep[k++] = (struct region){reg[i].start, len};
		at = reg[i].start + len;
	}
	if (k > JOURNAL_REGIONS_MAX) {
		free(keep);
		errno = E2BIG;
		return -1;
	}
	/* Regions that do not move are no part of the plan. */
	while (k > 0 && keep[0].start == dst) {
		dst += keep[0].len;
		memmove(keep, keep + 1, --k * sizeof(*keep));
	}
	if (k == 0 && (dst == eof || dst == 0)) {
		/* Nothing to keep, or nothing to do: a truncation to zero
		 * is a change of size alone, made or not by a crash. */
		free(keep);
		if (dst == eof)
			return 0;
		if (ftruncate(fd, dst) < 0)
			return -1;
		/* Done for every reader now; only whether it lasts is in
		 * doubt, and "not deleted" would be untrue. */
		return fdatasync(fd) < 0 ? JOURNAL_UNSYNCED : 0;
	}
	/* Otherwise even a truncation alone (the last messages deleted, no
	 * mail since) is journaled: it zeroes the rest of the block that
	 * dst falls in, and a crash can leave those zeros on the disk with
	 * the old size, the last kept message run on into the remains of
	 * the first deleted one (measured on ext4: design.md §4.8). The
	 * journal lets recovery finish it; the old end itself says whether
	 * it is still to do (truncated). */
	if (t == NULL)
		t = &defaults;
	if (t->window < 1 || t->window > JOURNAL_WINDOW) {
		free(keep);
		errno = EINVAL;
		return -1;
	}
	r = room_to_move(fd, (uint64_t)dst, keep, k, t);
	if (r == 0)
		r = compact_plan(fd, jpath, (uint64_t)dst, keep, k, buf, size,
				 dotlock, t, false);
	free(keep);
	return r;
}

/* --- recovery ------------------------------------------------------------ */

static int
aside(const char *jpath, const char *suffix)
{
	char to[PATH_MAX];

	if ((size_t)snprintf(to, sizeof(to), "%s%s", jpath, suffix) >=
	    sizeof(to)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (rename(jpath, to) < 0)
		return -1;
	return sync_dir_of(jpath);
}

static int
refuse(const char *jpath, const char *why)
{
	log_msg(LOG_ERR,
		"%s: journal refused (%s): moved aside to %s.rejected; the "
		"spool is left as it is and not served until that file is "
		"removed",
		jpath, why, jpath);
	if (aside(jpath, ".rejected") < 0)
		return -1;
	return JOURNAL_REFUSED;
}

/* Is the spool the file the journal was written for? */
static int
same_identity(int fd, const struct journal_plan *p, bool *same)
{
	struct journal_plan now;

	if (identify(fd, &now) < 0)
		return -1;
	*same = now.ino == p->ino;
	if ((now.flags & p->flags & JOURNAL_HAVE_BTIME) &&
	    (now.btime_sec != p->btime_sec || now.btime_nsec != p->btime_nsec))
		*same = false;
	return 0;
}

/* Is the spool in a state the journal can lead to? Its first byte moved
 * at dst: the bytes before it never change; until truncation, the file
 * is no shorter than it was and its last bytes are as they were. Returns
 * NULL if so, else what differs; *err set on an I/O error. */
static const char *
state_mismatch(int fd, const struct journal_plan *p,
	       const struct journal_slot *s, int *err)
{
	off_t size = file_size(fd);
	int r, mark = MARK_NONE;
	uint64_t d;

	*err = 0;
	if (size < 0)
		return *err = errno, "";
	if ((r = digest_range(fd, p->head_from, p->dst, &d)) != 0 ||
	    d != p->head_digest) {
		if (r < 0)
			*err = errno;
		return "the bytes before the first moved one differ";
	}
	if (s->phase == JOURNAL_MOVED) {
		if ((mark = marker_at(fd, p)) < 0)
			return *err = errno, "";
		if (mark == MARK_NONE)
			return (uint64_t)size < p->end
				       ? "shorter than after the UPDATE"
				       : NULL;
	} else if (p->nreg == 0) {
		/* A truncation alone: its old end, or the truncation done. */
		if ((r = old_end_intact(fd, p)) < 0)
			return *err = errno, "";
		return r == 0 && (uint64_t)size < p->end
			       ? "shorter than after the UPDATE"
			       : NULL;
	}
	if ((uint64_t)size < p->eof)
		return "shorter than before the UPDATE";
	/* A truncation begun may have zeroed the old end's bytes too: only
	 * then are they not checked (the marker's zeros, the spool's
	 * identity and the bytes before dst still are). */
	if (mark == MARK_ZEROED) {
		int64_t z = zeros_end(fd, p->end, p->end + JOURNAL_ZEROED_MAX);

		if (z < 0)
			return *err = errno, "";
		if ((uint64_t)z > p->tail_from)
			return NULL;
	}
	if ((r = digest_range(fd, p->tail_from, p->eof, &d)) != 0 ||
	    d != p->tail_digest) {
		if (r < 0)
			*err = errno;
		return "the bytes at the old end differ";
	}
	return NULL;
}

/* 0: the save area holds what the slot says; 1: it does not. With
 * JOURNAL_AREA_SYNCED the area was durable before the slot: only that it
 * is there whole is checked. */
static int
check_area(struct engine *e)
{
	struct content_hash h;
	bool hashed = !(e->plan.flags & JOURNAL_AREA_SYNCED);
	uint64_t at = journal_area_offset(&e->plan, (int)e->cur.area);
	uint64_t left = e->cur.save_len, k;

	memset(&h, 0, sizeof(h));
	for (; left > 0; left -= k, at += k) {
		k = left < e->size ? left : e->size;
		switch (pread_all(e->jfd, e->buf, k, (off_t)at)) {
		case -1:
			return -1;
		case 1:
			return 1;
		}
		if (hashed)
			hash_update(&h, e->buf, k);
	}
	return !hashed || hash_final(&h) == e->cur.save_hash ? 0 : 1;
}

/* Write the saved window back in place: the step it belongs to may have
 * overwritten its sources. */
static int
apply_area(struct engine *e)
{
	uint64_t from = journal_area_offset(&e->plan, (int)e->cur.area);
	uint64_t to = e->cur.done, left = e->cur.save_len, k;

	for (; left > 0; left -= k, from += k, to += k) {
		k = left < e->size ? left : e->size;
		if (pread_all(e->jfd, e->buf, k, (off_t)from) != 0) {
			errno = EIO;
			return -1;
		}
		if (pwrite_all(e->fd, e->buf, k, (off_t)to) < 0)
			return -1;
	}
	return fdatasync(e->fd);
}

/* The slot before the newest, if it is intact: 0, or 1 if not. */
static int
older_slot(struct engine *e, struct journal_slot *s)
{
	unsigned char b[JOURNAL_SLOT_SIZE];
	uint64_t seq = e->cur.seq - 1;
	int r;

	if (seq == 0)
		return 1;
	r = pread_all(e->jfd, b, sizeof(b),
		      (off_t)journal_slot_offset(&e->plan, (int)(seq & 1)));
	if (r != 0)
		return r;
	if (journal_decode_slot(&e->plan, b, sizeof(b), s) < 0 || s->seq != seq)
		return 1;
	return 0;
}

/* The slot to resume from: the newest, unless its saved window does not
 * hold what it says. In a journal without JOURNAL_AREA_SYNCED a saved
 * window and its slot were made durable by one fdatasync, and the step
 * wrote the spool only after it returned: such a window means that sync
 * never completed, so the spool still holds every source byte of the
 * step and the slot before it is where to resume. 0, 1 if nothing sound
 * is left, or -1 on an I/O error. */
static int
sound_slot(struct engine *e)
{
	struct journal_slot older;
	int r;

	if (e->cur.save_len == 0)
		return 0;
	if ((r = check_area(e)) < 0)
		return -1;
	if (r > 0) {
		if ((r = older_slot(e, &older)) != 0)
			return r;
		e->cur = older;
		if (e->cur.save_len == 0)
			return 0;
		if ((r = check_area(e)) != 0)
			return r;
	}
	return 0;
}

/* Recovery acts only on a state that is on the disk. What it read of the
 * slot and its saved window may be only in the page cache: when an
 * fdatasync of the journal failed (and the session tried to finish at
 * once, or was killed), Linux keeps the pages but marks them clean, and
 * a later sync returns 0 without writing them. Acting on them, then
 * losing power, would leave the spool past a state the disk does not
 * record, and the older slot would be redone from overwritten sources.
 * So they are written again, the same octets, and synced before the
 * spool is touched. */
static int
settle(struct engine *e)
{
	unsigned char b[JOURNAL_SLOT_SIZE];
	off_t slot =
		(off_t)journal_slot_offset(&e->plan, (int)(e->cur.seq & 1));
	uint64_t at = journal_area_offset(&e->plan, (int)e->cur.area);
	uint64_t left = e->cur.save_len, k;
	int r = 0;

	if ((r = pread_all(e->jfd, b, sizeof(b), slot)) != 0 ||
	    pwrite_all(e->jfd, b, sizeof(b), slot) < 0)
		goto fail;
	for (; left > 0; left -= k, at += k) {
		k = left < e->size ? left : e->size;
		if ((r = pread_all(e->jfd, e->buf, k, (off_t)at)) != 0 ||
		    pwrite_all(e->jfd, e->buf, k, (off_t)at) < 0)
			goto fail;
	}
	return fdatasync(e->jfd);
fail:
	if (r > 0) /* read short: it was whole when checked */
		errno = EIO;
	return -1;
}

static int
roll_forward(struct engine *e)
{
	const char *why;
	bool same;
	int err, r;

	if (same_identity(e->fd, &e->plan, &same) < 0)
		return -1;
	if (!same) {
		log_msg(LOG_WARNING,
			"%s: journal of a spool that was since replaced by "
			"another file; moved aside to %s.stale, the new spool "
			"left alone",
			e->jpath, e->jpath);
		return aside(e->jpath, JOURNAL_STALE_SUFFIX) < 0
			       ? -1
			       : JOURNAL_STALE;
	}
	why = state_mismatch(e->fd, &e->plan, &e->cur, &err);
	if (err != 0) {
		errno = err;
		return -1;
	}
	if (why != NULL)
		return refuse(e->jpath, why);
	if ((r = sound_slot(e)) != 0)
		return r < 0 ? -1
			     : refuse(e->jpath, "a saved window is damaged");
	if (settle(e) < 0 || (e->cur.save_len > 0 && apply_area(e) < 0))
		return -1;
	log_msg(LOG_NOTICE, "%s: finishing an interrupted UPDATE", e->jpath);
	e->rout = e->plan.dst;
	r = e->cur.phase == JOURNAL_MOVED || e->plan.nreg == 0
		    ? finish(e)
		    : run(e, e->cur.done + e->cur.save_len);
	return r < 0 ? -1 : JOURNAL_FINISHED;
}

bool
journal_pending(const char *jpath)
{
	char tmp[PATH_MAX];

	if (access(jpath, F_OK) == 0)
		return true;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", jpath) < sizeof(tmp) &&
	    access(tmp, F_OK) == 0)
		return true;
	return (size_t)snprintf(tmp, sizeof(tmp), "%s.rejected", jpath) <
		       sizeof(tmp) &&
	       access(tmp, F_OK) == 0;
}

static int
dotlock_in(const char *path, struct file_stamp *s)
{
	unsigned char head[JOURNAL_HEADER_SIZE];
	struct journal_plan p;
	int fd, r;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	r = read_exact(read_fd, &fd, head, sizeof(head), 0) == 0 &&
	    journal_decode_header(head, sizeof(head), &p) == 0 &&
	    (p.flags & JOURNAL_HAVE_DOTLOCK);
	close(fd);
	if (r)
		*s = p.dotlock;
	return r;
}

/* The journal, or else the one not yet renamed into place: the same
 * UPDATE wrote it under the same dotlock, and on ext4 the fsync that
 * makes its header durable is what makes the dotlock's name durable. */
int
journal_dotlock(const char *jpath, struct file_stamp *s)
{
	char tmp[PATH_MAX];

	if (dotlock_in(jpath, s))
		return 1;
	return (size_t)snprintf(tmp, sizeof(tmp), "%s.new", jpath) <
		       sizeof(tmp) &&
	       dotlock_in(tmp, s);
}

int
journal_recover(int fd, const char *jpath, char *buf, size_t size,
		const struct file_stamp *dotlock)
{
	struct engine e = {.fd = fd,
			   .jpath = jpath,
			   .buf = buf,
			   .size = size,
			   .dotlock = dotlock,
			   .tuning = defaults,
			   .direct_min = JOURNAL_DIRECT_MIN};
	struct region *reg;
	char tmp[PATH_MAX];
	struct stat st;
	int r, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.rejected", jpath) >=
	    sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (access(tmp, F_OK) == 0) {
		log_msg(LOG_ERR,
			"%s: a refused journal is kept there: the spool is "
			"not served until the admin removes it",
			tmp);
		return JOURNAL_REFUSED;
	}
	/* A journal that never got renamed into place was never acted on. */
	snprintf(tmp, sizeof(tmp), "%s.new", jpath);
	if (unlink(tmp) < 0 && errno != ENOENT)
		return -1;
	e.jfd = open(jpath, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (e.jfd < 0)
		return errno == ENOENT ? JOURNAL_NONE : -1;
	if (fstat(e.jfd, &st) < 0) {
		r = -1;
		goto out;
	}
	r = S_ISREG(st.st_mode)
		    ? journal_load(read_fd, &e.jfd, &e.plan, &reg, &e.cur)
		    : 1;
	if (r < 0)
		goto out;
	if (r > 0) {
		r = refuse(jpath, "not a whole, consistent journal");
		goto out;
	}
	e.reg = reg;
	r = roll_forward(&e);
	free(reg);
out:
	saved = errno;
	close(e.jfd);
	errno = saved;
	return r;
}

int
journal_path(const char *dir, const char *spool_path, char *out, size_t size)
{
	int n = snprintf(
		out, size, "%s/spool-%016llx", dir,
		(unsigned long long)digest(spool_path, strlen(spool_path)));

	return n < 0 || (size_t)n >= size ? -1 : 0;
}
