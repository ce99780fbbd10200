/* Unit tests for journal.c: a compaction killed at every write, sync,
 * rename, truncation and unlink it makes (and in the middle of every
 * write), with or without mail appended before recovery, recovers to the
 * spool after UPDATE plus the appended mail, byte for byte, whenever the
 * journal was in place (UPDATE had begun), and to the spool before it
 * otherwise. Before recovery, every kept byte is at its new place or its
 * old one, but for at most one window being moved. A journal that does
 * not match its spool is never applied.
 *
 * The kills are exact: this file defines pwrite, fdatasync, fsync,
 * rename, ftruncate and unlink, so journal.c's calls come here, are
 * counted, and the Nth one kills the process (a pwrite torn in half
 * first, when asked). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hash.h"
#include "journal.h"
#include "params.h"
#include "spool_helpers.h"

/* --- the counted system calls ----------------------------------------------
 */

struct counter {
	long ops;      /* counted calls so far */
	long crash_at; /* 0: never */
	bool torn;     /* a pwrite that crashes writes half first */
	long syncs;    /* fsync and fdatasync calls so far */
	long fail_at;  /* without crash_at: this call fails with EIO */
	bool no_sync;  /* syncs are counted, not made (their order is what
			  is tested, not the disk) */
	/* The disk after a failed sync (disk_image): the journal as its
	 * last successful sync left it is copied to <journal>.disk; the
	 * fail_jsync-th sync of the journal fails with EIO, writing
	 * nothing (Linux then keeps the pages, clean); with
	 * kill_after_spool_sync, the first sync of the spool is followed
	 * by a power cut (a kill, the spool as synced). */
	bool disk_image, kill_after_spool_sync;
	long jsyncs, fail_jsync;
	char journal_name[64];
};

static struct counter *ctr; /* shared with the forked children */

static void
maybe_crash(bool is_write, int fd, const void *buf, size_t n, off_t at)
{
	if (ctr == NULL || ctr->crash_at == 0 || ++ctr->ops != ctr->crash_at)
		return;
	if (is_write && ctr->torn && n > 1)
		syscall(SYS_pwrite64, fd, buf, n / 2, at);
	kill(getpid(), SIGKILL);
}

/* Counts the call; true if it is to fail (EIO, a failing or full disk),
 * done nothing. */
static bool
count(void)
{
	if (ctr == NULL || ctr->crash_at != 0 || ++ctr->ops != ctr->fail_at)
		return false;
	errno = EIO;
	return true;
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t at)
{
	maybe_crash(true, fd, buf, n, at);
	if (count())
		return -1;
	return syscall(SYS_pwrite64, fd, buf, n, at);
}

/* What fd is, by its name: 'j' the journal (or its .new), 's' the spool,
 * 0 anything else. */
static char
file_kind(int fd)
{
	char link[64], to[PATH_MAX];
	const char *name;
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, to, sizeof(to) - 1)) < 0)
		return 0;
	to[n] = '\0';
	name = strrchr(to, '/') != NULL ? strrchr(to, '/') + 1 : to;
	if (strncmp(name, ctr->journal_name, strlen(ctr->journal_name)) == 0)
		return 'j';
	return strcmp(name, "spool") == 0 ? 's' : 0;
}

/* The journal as the disk holds it now: a copy of its every octet. */
static void
save_image(int fd)
{
	char path[PATH_MAX + 8], buf[4096];
	off_t at = 0;
	ssize_t n;
	int out;

	snprintf(path, sizeof(path), "%s/%s.disk", base_dir, ctr->journal_name);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0)
		abort();
	while ((n = syscall(SYS_pread64, fd, buf, sizeof(buf), at)) > 0) {
		if (syscall(SYS_pwrite64, out, buf, n, at) != n)
			abort();
		at += n;
	}
	close(out);
}

/* A sync under disk_image: -1 (EIO) if it is the one to fail, else
 * 1 once made (and the image taken, or the power cut). */
static int
imaged_sync(int fd, long nr)
{
	char kind = file_kind(fd);

	if (kind == 'j' && ++ctr->jsyncs == ctr->fail_jsync) {
		errno = EIO;
		return -1;
	}
	if (syscall(nr, fd) < 0)
		return -1;
	if (kind == 'j')
		save_image(fd);
	if (kind == 's' && ctr->kill_after_spool_sync)
		kill(getpid(), SIGKILL);
	return 1;
}

static int
any_sync(int fd, long nr)
{
	maybe_crash(false, -1, NULL, 0, 0);
	if (count())
		return -1;
	if (ctr != NULL)
		ctr->syncs++;
	if (ctr != NULL && ctr->no_sync)
		return 0;
	if (ctr != NULL && ctr->disk_image)
		return imaged_sync(fd, nr) < 0 ? -1 : 0;
	return syscall(nr, fd);
}

int
fdatasync(int fd)
{
	return any_sync(fd, SYS_fdatasync);
}

int
fsync(int fd)
{
	return any_sync(fd, SYS_fsync);
}

int
rename(const char *from, const char *to)
{
	maybe_crash(false, -1, NULL, 0, 0);
	if (count())
		return -1;
	return syscall(SYS_renameat, AT_FDCWD, from, AT_FDCWD, to);
}

int
ftruncate(int fd, off_t len)
{
	maybe_crash(false, -1, NULL, 0, 0);
	if (count())
		return -1;
	return syscall(SYS_ftruncate, fd, len);
}

int
unlink(const char *path)
{
	maybe_crash(false, -1, NULL, 0, 0);
	if (count())
		return -1;
	return syscall(SYS_unlinkat, AT_FDCWD, path, 0);
}

/* --- fixtures
 * ------------------------------------------------------------------ */

#define BS 4096
#define TAIL 3000

/* Small steps, so that every kind of step happens in a small spool: a
 * shift under 16 KiB moves 16 KiB windows saved first; from 16 KiB on,
 * steps of the shift, unsaved. */
static const struct journal_tuning tuning = {16384, 16384};

struct fixture {
	char spool[PATH_MAX], jpath[PATH_MAX];
	char *before, *after; /* the spool before and after compaction */
	size_t before_len, after_len;
	struct region reg[128];
	size_t nreg;
	off_t dst;
	/* For each output byte, its source (the raw-state check). */
	off_t *src;
};

/* One fixture at a time, in buffers made once per test process and
 * kept out of its children: the suite makes thousands of fixtures and
 * forks a child to kill for each, and allocating their 2 MB anew, or
 * writing them again after a fork had made every page copy-on-write,
 * faulted every page in each time, most of the suite's run on a
 * virtual machine where a page fault is dear (perf, round 16 of issue
 * 13). The children run the compaction or the recovery, which never
 * read these. */
#define FIXTURE_MAX (48 * BS + TAIL)
struct fixture_bufs {
	char before[FIXTURE_MAX], after[FIXTURE_MAX];
	off_t src[FIXTURE_MAX];
};
static struct fixture_bufs *fixture_bufs;
static bool fixture_live;

/* Before each test: with CK_FORK=no (a debugger) a failed test does not
 * reach free_fixture, and the next one must not take that for a second
 * live fixture. */
static void
fixture_reset(void)
{
	fixture_live = false;
}

static void
fixture_buffers(void)
{
	void *p;

	if (fixture_bufs != NULL)
		return;
	p = mmap(NULL, sizeof(*fixture_bufs), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(p != MAP_FAILED);
	ck_assert_int_eq(madvise(p, sizeof(*fixture_bufs), MADV_DONTFORK), 0);
	fixture_bufs = p;
}

/* EXACT: the moved data is a whole number of shifts, so the last step
 * is a full one, and the end marker lands on its sources. */
enum pattern {
	FIRST,
	EVERY_OTHER,
	BIG_FIRST,
	LAST_NO_TAIL,
	ALL_WITH_TAIL,
	EXACT
};

static int
blocks_of(enum pattern p)
{
	return p == EXACT ? 41 : 48;
}

static bool
deleted_block(enum pattern p, int b, int blocks)
{
	switch (p) {
	case FIRST:
		return b == 1;
	case EVERY_OTHER:
		return b % 2 == 1;
	case BIG_FIRST:
	case EXACT:
		return b >= 1 && b <= 8;
	case LAST_NO_TAIL:
		return b >= blocks - 2;
	case ALL_WITH_TAIL:
		return true;
	}
	return false;
}

/* A spool of `blocks` blocks with distinct contents, and the mail
 * "delivered during the session" (TAIL octets) unless the pattern has
 * none; block 0 stays (except ALL_WITH_TAIL). */
static void
make_fixture(struct fixture *f, int blocks, enum pattern p)
{
	size_t tail = p == LAST_NO_TAIL || p == EXACT ? 0 : TAIL, out;
	int first = -1, fd;

	memset(f, 0, sizeof(*f));
	snprintf(f->spool, sizeof(f->spool), "%s/spool", base_dir);
	ck_assert_int_eq(
		journal_path(base_dir, f->spool, f->jpath, sizeof(f->jpath)),
		0);
	f->before_len = blocks * BS + tail;
	ck_assert(!fixture_live && f->before_len <= FIXTURE_MAX);
	fixture_live = true;
	fixture_buffers();
	f->before = fixture_bufs->before;
	f->after = fixture_bufs->after;
	f->src = fixture_bufs->src;
	memset(f->src, 0, f->before_len * sizeof(*f->src));
	for (size_t i = 0; i < f->before_len; i++)
		f->before[i] = (char)('A' + (i / BS) % 26 + (i * 7) % 5 +
				      (char)(i / (BS * 26)));
	out = 0;
	for (int b = 0; b < blocks; b++) {
		if (deleted_block(p, b, blocks)) {
			if (first < 0)
				first = b;
			continue;
		}
		if (first >= 0 &&
		    (f->nreg == 0 ||
		     f->reg[f->nreg - 1].start + f->reg[f->nreg - 1].len !=
			     (off_t)b * BS))
			f->reg[f->nreg++] = (struct region){(off_t)b * BS, BS};
		else if (first >= 0)
			f->reg[f->nreg - 1].len += BS;
		for (size_t i = 0; i < BS; i++)
			f->src[out + i] = (off_t)b * BS + i;
		memcpy(f->after + out, f->before + b * BS, BS);
		out += BS;
	}
	f->dst = (off_t)first * BS;
	f->reg[f->nreg++] = (struct region){(off_t)blocks * BS, -1};
	for (size_t i = 0; i < tail; i++)
		f->src[out + i] = (off_t)blocks * BS + i;
	memcpy(f->after + out, f->before + blocks * BS, tail);
	f->after_len = out + tail;
	fd = open(f->spool, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, f->before, f->before_len),
			 (ssize_t)f->before_len);
	close(fd);
}

static void
clear_journals(struct fixture *f)
{
	char p[PATH_MAX + 16];

	syscall(SYS_unlinkat, AT_FDCWD, f->jpath, 0);
	for (const char *s = ".new\0.stale\0.rejected\0"; *s;
	     s += strlen(s) + 1) {
		snprintf(p, sizeof(p), "%s%s", f->jpath, s);
		syscall(SYS_unlinkat, AT_FDCWD, p, 0);
	}
}

static void
free_fixture(struct fixture *f)
{
	clear_journals(f);
	fixture_live = false;
}

static char *
slurp(const char *path, size_t *len)
{
	struct stat st;
	char *p;
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	p = malloc(st.st_size + 1);
	ck_assert_int_eq(read(fd, p, st.st_size), st.st_size);
	close(fd);
	*len = st.st_size;
	return p;
}

/* UPDATE's buffer: small, so that there are many writes to be killed
 * at. One block is one kept region's worth at most; a test that wants
 * reads gathered across regions (journal.c, gather) makes it larger. */
static size_t compact_buf_len = BS;
/* The dotlock stamp run_compact hands on (NULL: none). */
static const struct file_stamp *compact_dotlock;

static int
run_compact(struct fixture *f)
{
	static char buf[4 * BS];
	int fd = open(f->spool, O_RDWR), r;

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_le(compact_buf_len, sizeof(buf));
	r = journal_compact(fd, f->jpath, f->dst, f->reg, f->nreg, buf,
			    compact_buf_len, compact_dotlock, &tuning);
	close(fd);
	return r;
}

static int
run_recover(struct fixture *f)
{
	static char buf[3000]; /* not a divisor of anything */
	int fd = open(f->spool, O_RDWR), r;

	ck_assert_int_ge(fd, 0);
	r = journal_recover(fd, f->jpath, buf, sizeof(buf), NULL);
	close(fd);
	return r;
}

/* 1: the spool is as before UPDATE, 2: as after, plus extra; 0: neither. */
static int
classify(struct fixture *f, const char *extra, size_t extra_len)
{
	size_t len;
	char *got = slurp(f->spool, &len);
	int r = 0;

	if (len == f->before_len + extra_len &&
	    memcmp(got, f->before, f->before_len) == 0 &&
	    memcmp(got + f->before_len, extra, extra_len) == 0)
		r = 1;
	else if (len == f->after_len + extra_len &&
		 memcmp(got, f->after, f->after_len) == 0 &&
		 memcmp(got + f->after_len, extra, extra_len) == 0)
		r = 2;
	free(got);
	return r;
}

/* What another mail reader sees before recovery: kept bytes that are
 * neither at their new place nor at their old one. */
static size_t
misplaced(struct fixture *f)
{
	size_t len, bad = 0;
	char *got = slurp(f->spool, &len);

	for (size_t x = f->dst; x < f->after_len; x++) {
		off_t s = f->src[x];
		bool at_new = x < len && got[x] == f->after[x];
		bool at_old = (size_t)s < len && got[s] == f->before[s];

		if (!at_new && !at_old)
			bad++;
	}
	free(got);
	return bad;
}

static void
counter_setup(void)
{
	ctr = mmap(NULL, sizeof(*ctr), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(ctr != MAP_FAILED);
	memset(ctr, 0, sizeof(*ctr));
}

/* Run fn in a child killed at its crash_at-th counted call; true if the
 * kill fired. */
static bool
killed_child(struct fixture *f, int (*fn)(struct fixture *), long crash_at,
	     bool torn)
{
	int status;
	pid_t pid;

	ctr->ops = 0;
	ctr->crash_at = crash_at;
	ctr->torn = torn;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fn(f);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ctr->crash_at = 0;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static long
ops_of_clean_run(enum pattern p)
{
	struct fixture f;
	long n;

	make_fixture(&f, blocks_of(p), p);
	ctr->ops = 0;
	ctr->crash_at = 0;
	ck_assert_int_eq(run_compact(&f), 0);
	n = ctr->ops;
	ck_assert_int_eq(classify(&f, "", 0), 2);
	ck_assert(!journal_pending(f.jpath));
	free_fixture(&f);
	return n;
}

static const char extra[] = "From new@example Thu Nov 26 09:00:00 2026\n"
			    "Subject: delivered after the crash\n\nhi\n\n";

static void
append_mail(struct fixture *f, const char *mail)
{
	int fd = open(f->spool, O_WRONLY | O_APPEND);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, mail, strlen(mail)), (ssize_t)strlen(mail));
	close(fd);
}

struct tally {
	int runs, began, not_begun;
	size_t worst_misplaced;
};

/* mail: what an MDA delivers after the crash, before recovery (NULL:
 * nothing). */
static void
kill_once(enum pattern p, long at, bool torn, const char *mail, long again,
	  struct tally *t)
{
	size_t mail_len = mail != NULL ? strlen(mail) : 0;
	struct fixture f;
	bool began;
	size_t bad;
	int r, outcome;

	make_fixture(&f, blocks_of(p), p);
	ck_assert(killed_child(&f, run_compact, at, torn));
	began = access(f.jpath, F_OK) == 0;
	bad = misplaced(&f);
	if (bad > t->worst_misplaced)
		t->worst_misplaced = bad;
	ck_assert_msg(bad <= tuning.window,
		      "pattern %d, kill at %ld%s: %zu kept bytes at neither "
		      "place before recovery",
		      p, at, torn ? " (torn)" : "", bad);
	if (mail != NULL) /* an MDA delivers before the next login */
		append_mail(&f, mail);
	if (again > 0 && began) /* the recovery is killed too */
		killed_child(&f, run_recover, again, false);
	r = run_recover(&f);
	ck_assert_int_ge(r, 0);
	ck_assert_int_ne(r, JOURNAL_REFUSED);
	ck_assert_int_ne(r, JOURNAL_STALE);
	ck_assert(!journal_pending(f.jpath));
	outcome = classify(&f, mail != NULL ? mail : "", mail_len);
	ck_assert_msg(outcome != 0,
		      "pattern %d, kill at %ld%s%s: the spool is neither "
		      "before nor after UPDATE",
		      p, at, torn ? " (torn)" : "",
		      mail != NULL ? ", mail after" : "");
	/* Roll forward: once the journal was in place, never back. */
	ck_assert_msg(!began || outcome == 2,
		      "pattern %d, kill at %ld%s: UPDATE had begun, but the "
		      "deleted data came back",
		      p, at, torn ? " (torn)" : "");
	t->runs++;
	if (began)
		t->began++;
	else if (outcome == 1)
		t->not_begun++;
	free_fixture(&f);
}

static void
kill_everywhere(enum pattern p, bool append)
{
	struct tally t = {0};
	long n;

	counter_setup();
	n = ops_of_clean_run(p);
	for (long at = 1; at <= n; at++) {
		kill_once(p, at, false, append ? extra : NULL, 0, &t);
		kill_once(p, at, true, append ? NULL : extra, at % 7 + 1, &t);
	}
	fprintf(stderr,
		"journal: pattern %d: %ld calls, %d kills: %d after UPDATE "
		"had begun (all rolled forward), %d before (nothing "
		"deleted); at most %zu kept bytes misplaced before "
		"recovery\n",
		p, n, t.runs, t.began, t.not_begun, t.worst_misplaced);
	munmap(ctr, sizeof(*ctr));
	ctr = NULL;
}

START_TEST(compact_whole)
{
	struct fixture f;

	for (enum pattern p = FIRST; p <= EXACT; p++) {
		make_fixture(&f, blocks_of(p), p);
		ck_assert_int_eq(run_compact(&f), 0);
		ck_assert_int_eq(classify(&f, "", 0), 2);
		ck_assert(!journal_pending(f.jpath));
		free_fixture(&f);
	}
	/* With the default tuning (no step small) too. */
	make_fixture(&f, 48, EVERY_OTHER);
	{
		char buf[8192];
		int fd = open(f.spool, O_RDWR);

		ck_assert_int_eq(journal_compact(fd, f.jpath, f.dst, f.reg,
						 f.nreg, buf, sizeof(buf), NULL,
						 NULL),
				 0);
		close(fd);
	}
	ck_assert_int_eq(classify(&f, "", 0), 2);
	free_fixture(&f);
}
END_TEST

static long
syncs_of_compaction(enum pattern p)
{
	struct fixture f;
	long n;

	make_fixture(&f, blocks_of(p), p);
	ctr->syncs = 0;
	ck_assert_int_eq(run_compact(&f), 0);
	n = ctr->syncs;
	ck_assert_int_eq(classify(&f, "", 0), 2);
	free_fixture(&f);
	return n;
}

/* What each sync of UPDATE is for (design.md §4.8), counted: a sync
 * too many costs a disk flush, one too few loses mail on a power cut
 * (the crash explorer's teeth test, make check-faults, proves each one
 * left needed). Outside the steps: the new journal's fsync and its
 * directory's, the marker's fdatasync, the MOVED slot's, the
 * truncation's, the directory's after the unlink (6). A saved step: its
 * window, then its slot, then the spool (3), but the last step's writes
 * are made durable by the marker's sync. A direct step: a slot unless
 * the newest one already resumes there, then the spool; the last one no
 * spool sync when the marker does not reach its sources, else one and a
 * slot "resume at end" (EXACT). */
START_TEST(syncs_per_compaction)
{
	struct fixture f;
	int fd;

	counter_setup();
	/* 191416 octets moved down 4 KiB: 12 saved windows of 16 KiB. */
	ck_assert_int_eq(syncs_of_compaction(FIRST), 6 + 12 * 2 + 11);
	/* A saved window to output 16 KiB, a direct step from there (the
	 * saved slot resumes there), one from 32 KiB (slot, spool), the last
	 * from 64 KiB (slot only). */
	ck_assert_int_eq(syncs_of_compaction(EVERY_OTHER), 6 + 3 + 1 + 2 + 1);
	/* Its last step's sources lie under the marker: synced, and a slot
	 * "resume at end" before the marker. */
	ck_assert_int_eq(syncs_of_compaction(EXACT), 14);

	/* Recovery with mail delivered after the crash: the MOVED slot is
	 * left out, the mail's own compaction replacing the journal. */
	make_fixture(&f, blocks_of(FIRST), FIRST);
	/* Killed at the directory's sync: the journal is in place, nothing
	 * moved. */
	ck_assert(killed_child(&f, run_compact, 6, false));
	ck_assert(access(f.jpath, F_OK) == 0);
	fd = open(f.spool, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, extra, sizeof(extra) - 1),
			 (ssize_t)sizeof(extra) - 1);
	close(fd);
	ctr->syncs = 0;
	ck_assert_int_eq(run_recover(&f), JOURNAL_FINISHED);
	/* The slot it resumes from, made durable again (settle); the 12
	 * windows (area, slot, spool; the last one's spool covered by the
	 * marker's sync), the marker; the mail's journal and directory, its
	 * one direct step (the marker's sync covers it), marker, MOVED,
	 * truncation, directory. */
	ck_assert_int_eq(ctr->syncs, 1 + 12 * 2 + 11 + 1 + 2 + 1 + 1 + 1 + 1);
	ck_assert_int_eq(classify(&f, extra, sizeof(extra) - 1), 2);
	free_fixture(&f);
	munmap(ctr, sizeof(*ctr));
	ctr = NULL;
}
END_TEST

/* Descriptors of ours open on path, or with removed on it after it was
 * removed. */
static int
open_on(const char *path, bool removed)
{
	char link[64], to[PATH_MAX], want[PATH_MAX + 16];
	int n = 0;
	ssize_t len;

	snprintf(want, sizeof(want), "%s%s", path, removed ? " (deleted)" : "");
	for (int fd = 0; fd < 1024; fd++) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		if ((len = readlink(link, to, sizeof(to) - 1)) < 0)
			continue;
		to[len] = '\0';
		n += strcmp(to, want) == 0;
	}
	return n;
}

/* The removed journal's last close frees its blocks, 5 ms of a 100 MB
 * UPDATE for the save areas on ext4: it waits for journal_release, after
 * the client's +OK (maildrop_close). A second compaction's spent journal
 * takes the first's place; one that fails once begun keeps its journal
 * for recovery and no descriptor of it. */
START_TEST(removed_journal_released)
{
	struct fixture f;

	make_fixture(&f, blocks_of(FIRST), FIRST);
	ck_assert_int_eq(run_compact(&f), 0);
	ck_assert(!journal_pending(f.jpath));
	ck_assert_int_eq(open_on(f.jpath, true), 1);
	journal_release();
	ck_assert_int_eq(open_on(f.jpath, true), 0);
	journal_release();
	free_fixture(&f);

	make_fixture(&f, blocks_of(EVERY_OTHER), EVERY_OTHER);
	ck_assert_int_eq(run_compact(&f), 0);
	free_fixture(&f);
	make_fixture(&f, blocks_of(FIRST), FIRST);
	ck_assert_int_eq(run_compact(&f), 0);
	ck_assert_int_eq(open_on(f.jpath, true), 1);
	free_fixture(&f);

	counter_setup();
	make_fixture(&f, blocks_of(FIRST), FIRST);
	ctr->fail_at = 20; /* a write of the third window */
	ck_assert_int_eq(run_compact(&f), -1);
	ctr->fail_at = 0;
	ck_assert(journal_pending(f.jpath));
	ck_assert_int_eq(open_on(f.jpath, false), 0);
	ck_assert_int_eq(open_on(f.jpath, true), 1); /* the one before */
	free_fixture(&f);
	munmap(ctr, sizeof(*ctr));
	ctr = NULL;
}
END_TEST

/* Deleting the last messages with no mail since: nothing moves, yet the
 * truncation is journaled, since ext4 can leave its zeroing of the
 * block at dst on the disk without the new size (design.md §4.8): the
 * journal made and its directory synced, the truncation, the journal
 * removed (no marker and no MOVED slot: the old end says whether the
 * truncation is still to do). A kill at any call of it leaves either the
 * spool as it was or, once the journal is durable, the truncated one
 * after recovery. */
START_TEST(delete_last_journaled)
{
	struct fixture f;

	counter_setup();
	make_fixture(&f, 48, LAST_NO_TAIL);
	ctr->syncs = 0;
	ck_assert_int_eq(run_compact(&f), 0);
	ck_assert_int_eq(classify(&f, "", 0), 2);
	ck_assert(!journal_pending(f.jpath));
	ck_assert_int_eq(ctr->syncs, 2 + 1 + 1);
	free_fixture(&f);
	munmap(ctr, sizeof(*ctr));
	ctr = NULL;
	kill_everywhere(LAST_NO_TAIL, true);
	kill_everywhere(LAST_NO_TAIL, false);
}
END_TEST

/* The same with a message delivered after the crash that is longer than
 * what was deleted: after a truncation it reaches past the old end, so
 * the file's length alone does not tell that the truncation happened;
 * the old end's octets, the mail's now, must. */
START_TEST(delete_last_then_long_mail)
{
	static char mail[3 * BS + 64];
	struct tally t = {0};
	size_t n;
	long ops;

	n = (size_t)snprintf(mail, sizeof(mail),
			     "From long@example Thu Nov 26 09:00:00 2026\n"
			     "Subject: longer than the deleted ones\n\n");
	while (n + 2 < 3 * BS)
		n += (size_t)snprintf(mail + n, sizeof(mail) - n, "%s\n",
				      "a line of the long message body");
	mail[n++] = '\n';
	mail[n] = '\0';
	ck_assert_uint_gt(n, 2 * BS); /* LAST_NO_TAIL deletes 2 blocks */
	counter_setup();
	ops = ops_of_clean_run(LAST_NO_TAIL);
	for (long at = 1; at <= ops; at++) {
		kill_once(LAST_NO_TAIL, at, false, mail, 0, &t);
		kill_once(LAST_NO_TAIL, at, true, mail, at % 3 + 1, &t);
	}
	ck_assert_int_gt(t.began, 0);
	ck_assert_int_gt(t.not_begun, 0);
	munmap(ctr, sizeof(*ctr));
	ctr = NULL;
}
END_TEST

/* The truncation begun, its zeroing of the block after end on the disk,
 * its new size not (what ext4 can leave: design.md §4.8): zeros where the
 * marker was, all of it or its first octets, and maybe on to the old
 * end. Recovery must take that for "not truncated yet" and finish. */
static ssize_t read_path(void *ctx, void *buf, size_t n, uint64_t at);

static off_t
file_length(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

static int
torn_truncations(enum pattern p, size_t zero_len)
{
	struct journal_slot s;
	struct journal_plan plan;
	struct region *reg;
	struct fixture f;
	long n = ops_of_clean_run(p);
	int found = 0, fd, jfd;
	static char zeros[64 * 1024];
	bool loaded;

	for (long at = 1; at <= n; at++) {
		make_fixture(&f, blocks_of(p), p);
		ck_assert(killed_child(&f, run_compact, at, false));
		jfd = open(f.jpath, O_RDONLY);
		loaded = jfd >= 0 &&
			 journal_load(read_path, &jfd, &plan, &reg, &s) == 0;
		if (loaded)
			free(reg);
		if (jfd >= 0)
			close(jfd);
		/* Truncation to come: the MOVED phase, or any phase of a
		 * truncation alone (no marker, no MOVED slot). */
		if (!loaded || !(s.phase == JOURNAL_MOVED || plan.nreg == 0) ||
		    file_length(f.spool) != (off_t)f.before_len) {
			free_fixture(&f);
			continue;
		}
		found++;
		fd = open(f.spool, O_WRONLY);
		ck_assert_int_ge(fd, 0);
		if (zero_len > f.before_len - plan.end)
			zero_len = f.before_len - plan.end;
		ck_assert_int_eq(pwrite(fd, zeros, zero_len, (off_t)plan.end),
				 (ssize_t)zero_len);
		close(fd);
		ck_assert_int_eq(run_recover(&f), JOURNAL_FINISHED);
		ck_assert_int_eq(classify(&f, "", 0), 2);
		ck_assert(!journal_pending(f.jpath));
		free_fixture(&f);
	}
	return found;
}

START_TEST(torn_truncation_finished)
{
	counter_setup();
	for (enum pattern p = EVERY_OTHER; p <= LAST_NO_TAIL; p += 2) {
		ck_assert_int_gt(torn_truncations(p, 10), 0);
		ck_assert_int_gt(torn_truncations(p, 64 * 1024), 0);
	}
	munmap(ctr, sizeof(*ctr));
	ctr = NULL;
}
END_TEST

START_TEST(killed_first_deleted)
{
	kill_everywhere(FIRST, false);
}
END_TEST

START_TEST(killed_every_other)
{
	kill_everywhere(EVERY_OTHER, true);
}
END_TEST

/* The same with a buffer of two and a half blocks: each read gathers
 * the sources of up to three kept regions and the deleted blocks
 * between them, and each write ends inside a region. */
START_TEST(killed_every_other_gathered)
{
	compact_buf_len = 2 * BS + BS / 2;
	kill_everywhere(EVERY_OTHER, true);
	kill_everywhere(FIRST, false);
	compact_buf_len = BS;
}
END_TEST

START_TEST(killed_big_first)
{
	kill_everywhere(BIG_FIRST, false);
}
END_TEST

START_TEST(killed_exact)
{
	kill_everywhere(EXACT, false);
}
END_TEST

START_TEST(killed_all_with_tail)
{
	kill_everywhere(ALL_WITH_TAIL, true);
}
END_TEST

/* A recovery that fails (a full or failing disk) keeps what it needs to
 * finish: killed at every call of a compaction, mail delivered, then a
 * recovery whose k-th call fails with EIO, for every k, then one that
 * succeeds (every FAIL_STRIDE-th k, from a start that moves with the
 * kill point, so that every k is tried across them and the test stays
 * short). The failing one must leave the journal, or the spool already
 * finished; with mail delivered, recovery ends by moving it down under a
 * journal of its own that replaces this one (move_later), and until
 * round 13 a failure before that rename removed both. */
#define FAIL_STRIDE 13

enum fail_outcome { NOT_BEGUN, NOTHING_FAILED, FAILED };

static enum fail_outcome
fail_once(enum pattern p, long at, long k)
{
	enum fail_outcome o = FAILED;
	struct fixture f;
	bool kept;
	int r;

	make_fixture(&f, blocks_of(p), p);
	ck_assert(killed_child(&f, run_compact, at, false));
	if (access(f.jpath, F_OK) != 0) {
		free_fixture(&f);
		return NOT_BEGUN;
	}
	append_mail(&f, extra);
	ctr->ops = 0;
	ctr->fail_at = k;
	r = run_recover(&f);
	ctr->fail_at = 0;
	if (ctr->ops < k) {
		ck_assert_int_eq(r, JOURNAL_FINISHED);
		o = NOTHING_FAILED;
	} else {
		kept = access(f.jpath, F_OK) == 0 ||
		       classify(&f, extra, strlen(extra)) == 2;
		ck_assert_msg(kept,
			      "pattern %d, kill at %ld, call %ld of the "
			      "recovery failing: the journal is gone, the "
			      "spool unfinished",
			      p, at, k);
		ck_assert_int_ge(run_recover(&f), 0);
	}
	ck_assert(!journal_pending(f.jpath));
	ck_assert_int_eq(classify(&f, extra, strlen(extra)), 2);
	free_fixture(&f);
	return o;
}

static int
fail_recoveries(enum pattern p)
{
	enum fail_outcome o;
	int failed = 0;
	long n;

	counter_setup();
	ctr->no_sync = true;
	n = ops_of_clean_run(p);
	for (long at = 1; at <= n; at++)
		for (long k = at % FAIL_STRIDE + 1;; k += FAIL_STRIDE) {
			if ((o = fail_once(p, at, k)) != FAILED)
				break;
			failed++;
		}
	munmap(ctr, sizeof(*ctr));
	ctr = NULL;
	return failed;
}

START_TEST(failed_recovery_keeps_journal)
{
	ck_assert_int_gt(fail_recoveries(EVERY_OTHER), 0);
	ck_assert_int_gt(fail_recoveries(FIRST), 0);
	ck_assert_int_gt(fail_recoveries(LAST_NO_TAIL), 0);
}
END_TEST

/* A failed sync of the journal, then a power cut. When a slot's
 * fdatasync fails (EIO), UPDATE finishes from the journal at once
 * (maildrop.c, expunge), and a session killed instead leaves it to the
 * next login: either way recovery reads the slot from the page cache,
 * where Linux keeps it although the disk may not have it. Acting on it
 * without making it durable first, then losing power, left the disk's
 * older slot to be redone from sources already overwritten (found by
 * review: 7,096 to 12,288 kept octets wrong). For the n-th sync of the
 * journal failing, for every n: the compaction, then the recovery cut
 * by a power loss right after its first sync of the spool, the journal
 * put back as the disk held it, and a recovery from there. */
static int
failed_sync_then_power_cut(enum pattern p)
{
	char disk[PATH_MAX + 16];
	struct fixture f;
	int cut = 0, status;
	pid_t pid;

	for (long n = 1; n <= 40; n++) {
		make_fixture(&f, blocks_of(p), p);
		snprintf(disk, sizeof(disk), "%s.disk", f.jpath);
		snprintf(ctr->journal_name, sizeof(ctr->journal_name), "%s",
			 strrchr(f.jpath, '/') + 1);
		ctr->jsyncs = 0;
		ctr->fail_jsync = n;
		ctr->kill_after_spool_sync = false;
		ctr->disk_image = true;
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			if (run_compact(&f) == 0)
				_exit(3); /* no sync failed: done */
			ctr->kill_after_spool_sync = true;
			run_recover(&f);
			_exit(0);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ctr->disk_image = false;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
			free_fixture(&f);
			syscall(SYS_unlinkat, AT_FDCWD, disk, 0);
			break;
		}
		if (WIFSIGNALED(status) && access(f.jpath, F_OK) == 0 &&
		    access(disk, F_OK) == 0) {
			ck_assert_int_eq(syscall(SYS_renameat, AT_FDCWD, disk,
						 AT_FDCWD, f.jpath),
					 0);
			ck_assert_int_eq(run_recover(&f), JOURNAL_FINISHED);
			ck_assert_msg(classify(&f, "", 0) == 2,
				      "pattern %d, journal sync %ld failed, "
				      "then a power cut in the recovery: the "
				      "spool is neither before nor after",
				      p, n);
			cut++;
		}
		syscall(SYS_unlinkat, AT_FDCWD, disk, 0);
		free_fixture(&f);
	}
	return cut;
}

START_TEST(failed_journal_sync_then_power_cut)
{
	counter_setup();
	ck_assert_int_gt(failed_sync_then_power_cut(FIRST), 0);
	ck_assert_int_gt(failed_sync_then_power_cut(EVERY_OTHER), 0);
	munmap(ctr, sizeof(*ctr));
	ctr = NULL;
}
END_TEST

/* Reads that gather many sources (journal.c, gather): 1,500 kept pieces
 * of 1 to 300 octets, far more per buffer than one preadv takes
 * (JOURNAL_GATHER_IOV), with deleted runs between them from one octet
 * to one past JOURNAL_GATHER_GAP (read along up to it, a new read
 * after); buffers that end inside pieces, and both tunings (saved
 * windows, then direct steps). UPDATE leaves the kept bytes in order,
 * byte for byte, and no journal. */
START_TEST(compact_gathers)
{
	enum { NREG = 1500, HEAD = 10 };
	static const size_t buf_lens[] = {97, 1000, 1009, BS, 256 * 1024};
	struct region *reg = calloc(NREG + 1, sizeof(*reg));
	size_t cap = HEAD + NREG * (300 + 200) +
		     (NREG / 50 + 1) * (JOURNAL_GATHER_GAP + 1);
	char *before = malloc(cap), *after = malloc(cap), *buf, *got;
	char spool[PATH_MAX], jpath[PATH_MAX];
	size_t len = HEAD, out = HEAD, got_len;
	uint32_t x = 12345;
	int fd;

	ck_assert(reg != NULL && before != NULL && after != NULL);
	for (size_t i = 0; i < cap; i++) {
		x = x * 1103515245 + 12345;
		before[i] = (char)(x >> 16);
	}
	memcpy(after, before, HEAD);
	for (size_t i = 0; i < NREG; i++) {
		size_t gap = i % 100 == 7  ? JOURNAL_GATHER_GAP + 1
			     : i % 50 == 7 ? JOURNAL_GATHER_GAP
					   : 1 + (i * 37) % 200;
		size_t n = 1 + (i * 53) % 300;

		len += gap;
		reg[i] = (struct region){(off_t)len, (off_t)n};
		memcpy(after + out, before + len, n);
		len += n, out += n;
	}
	reg[NREG] = (struct region){(off_t)len, -1}; /* no mail since */
	snprintf(spool, sizeof(spool), "%s/spool", base_dir);
	ck_assert_int_eq(journal_path(base_dir, spool, jpath, sizeof(jpath)),
			 0);
	for (size_t b = 0; b < sizeof(buf_lens) / sizeof(buf_lens[0]); b++)
		for (int t = 0; t < 2; t++) {
			fd = open(spool, O_RDWR | O_CREAT | O_TRUNC, 0600);
			ck_assert_int_ge(fd, 0);
			ck_assert_int_eq(write(fd, before, len), (ssize_t)len);
			buf = malloc(buf_lens[b]);
			ck_assert_int_eq(journal_compact(fd, jpath, HEAD, reg,
							 NREG + 1, buf,
							 buf_lens[b], NULL,
							 t ? &tuning : NULL),
					 0);
			close(fd);
			free(buf);
			got = slurp(spool, &got_len);
			ck_assert_msg(got_len == out &&
					      memcmp(got, after, out) == 0,
				      "buffer %zu, %s tuning: the spool is "
				      "not the kept bytes in order",
				      buf_lens[b], t ? "small" : "default");
			ck_assert(!journal_pending(jpath));
			free(got);
		}
	free(reg);
	free(before);
	free(after);
}
END_TEST

START_TEST(no_journal_nothing_to_do)
{
	struct fixture f;

	make_fixture(&f, 4, FIRST);
	ck_assert_int_eq(run_recover(&f), JOURNAL_NONE);
	ck_assert_int_eq(classify(&f, "", 0), 1);
	free_fixture(&f);
}
END_TEST

/* A journal that is not whole and consistent is never applied: it may
 * be damage or a forgery, and the spool may be half moved, so it is
 * moved aside and the spool is refused until the admin removes it. */
START_TEST(torn_journal_is_refused)
{
	struct fixture f;
	char rejected[PATH_MAX + 16];
	int fd;

	make_fixture(&f, 4, FIRST);
	fd = open(f.jpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_eq(write(fd, "pop3d journal 2\0garbage", 23), 23);
	close(fd);
	ck_assert_int_eq(run_recover(&f), JOURNAL_REFUSED);
	ck_assert_int_eq(classify(&f, "", 0), 1);
	snprintf(rejected, sizeof(rejected), "%s.rejected", f.jpath);
	ck_assert_int_eq(access(f.jpath, F_OK), -1);
	ck_assert_int_eq(access(rejected, F_OK), 0);
	/* Still refused, until the admin removes it. */
	ck_assert(journal_pending(f.jpath));
	ck_assert_int_eq(run_recover(&f), JOURNAL_REFUSED);
	syscall(SYS_unlinkat, AT_FDCWD, rejected, 0);
	ck_assert_int_eq(run_recover(&f), JOURNAL_NONE);
	free_fixture(&f);
}
END_TEST

/* A leftover .new was never acted on: removed, the spool untouched. */
START_TEST(leftover_new_is_removed)
{
	struct fixture f;
	char tmp[PATH_MAX + 8];
	int fd;

	make_fixture(&f, 4, FIRST);
	snprintf(tmp, sizeof(tmp), "%s.new", f.jpath);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_eq(write(fd, "half", 4), 4);
	close(fd);
	ck_assert(journal_pending(f.jpath));
	ck_assert_int_eq(run_recover(&f), JOURNAL_NONE);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	ck_assert_int_eq(classify(&f, "", 0), 1);
	free_fixture(&f);
}
END_TEST

/* Kill a compaction in its moves; leaves f with a pending journal. */
static void
interrupted(struct fixture *f)
{
	counter_setup();
	make_fixture(f, 48, EVERY_OTHER);
	ck_assert(killed_child(f, run_compact, 12, false));
	ck_assert(access(f->jpath, F_OK) == 0);
	munmap(ctr, sizeof(*ctr));
	ctr = NULL;
}

static void
replace_spool(struct fixture *f, const char *text)
{
	int fd;

	syscall(SYS_unlinkat, AT_FDCWD, f->spool, 0);
	fd = open(f->spool, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static ssize_t
read_path(void *ctx, void *buf, size_t n, uint64_t at)
{
	return pread(*(int *)ctx, buf, n, (off_t)at);
}

/* Rewrite the journal's header as if it had been written for the file
 * now at f->spool's inode (what ext4 does when it gives a new file the
 * number of a removed one); without its birth time if !btime. */
static void
retarget_journal(struct fixture *f, bool btime)
{
	unsigned char head[JOURNAL_HEADER_SIZE], slot[JOURNAL_SLOT_SIZE];
	struct journal_plan p;
	struct journal_slot s;
	struct region *reg;
	struct stat st;
	int jfd;

	ck_assert_int_eq(stat(f->spool, &st), 0);
	jfd = open(f->jpath, O_RDWR);
	ck_assert_int_ge(jfd, 0);
	ck_assert_int_eq(journal_load(read_path, &jfd, &p, &reg, &s), 0);
	free(reg);
	p.ino = st.st_ino;
	if (!btime) { /* as identify() leaves it without one */
		p.flags &= ~JOURNAL_HAVE_BTIME;
		p.btime_sec = 0;
		p.btime_nsec = 0;
	}
	journal_encode_header(&p, head);
	journal_encode_slot(&p, &s, slot);
	ck_assert_int_eq(syscall(SYS_pwrite64, jfd, head, sizeof(head), 0),
			 (long)sizeof(head));
	ck_assert_int_eq(syscall(SYS_pwrite64, jfd, slot, sizeof(slot),
				 journal_slot_offset(&p, (int)(s.seq & 1))),
			 (long)sizeof(slot));
	close(jfd);
}

/* Make the journal at f->jpath one written before JOURNAL_AREA_SYNCED:
 * the flag cleared and each slot's saved window hashed, as pop3d wrote
 * them until round 14 of issue 13. With tear, one octet of the newest
 * slot's saved window changes afterwards: its area torn, as a power cut
 * could leave it then. False if there is no journal. */
static bool
make_old_format(struct fixture *f, bool tear)
{
	unsigned char head[JOURNAL_HEADER_SIZE], b[JOURNAL_SLOT_SIZE];
	struct journal_slot s[2], newest;
	struct journal_plan p, old;
	struct content_hash h;
	struct region *reg;
	bool ok[2];
	char *area;
	int jfd = open(f->jpath, O_RDWR);

	if (jfd < 0)
		return false;
	ck_assert_int_eq(journal_load(read_path, &jfd, &p, &reg, &newest), 0);
	free(reg);
	ck_assert(p.flags & JOURNAL_AREA_SYNCED);
	old = p;
	old.flags &= ~JOURNAL_AREA_SYNCED;
	journal_encode_header(&old, head);
	ck_assert_int_eq(syscall(SYS_pwrite64, jfd, head, sizeof(head), 0),
			 (long)sizeof(head));
	for (int k = 0; k < 2; k++) {
		off_t at = (off_t)journal_slot_offset(&p, k);

		ck_assert_int_eq(syscall(SYS_pread64, jfd, b, sizeof(b), at),
				 (long)sizeof(b));
		ok[k] = journal_decode_slot(&p, b, sizeof(b), &s[k]) == 0;
		if (!ok[k])
			continue;
		ck_assert_uint_eq(s[k].save_hash, 0);
		if (s[k].save_len > 0) {
			area = malloc(s[k].save_len);
			ck_assert_ptr_nonnull(area);
			ck_assert_int_eq(
				syscall(SYS_pread64, jfd, area, s[k].save_len,
					journal_area_offset(&p,
							    (int)s[k].area)),
				(long)s[k].save_len);
			memset(&h, 0, sizeof(h));
			hash_update(&h, area, s[k].save_len);
			s[k].save_hash = hash_final(&h);
			free(area);
		}
		journal_encode_slot(&old, &s[k], b);
		ck_assert_int_eq(syscall(SYS_pwrite64, jfd, b, sizeof(b), at),
				 (long)sizeof(b));
	}
	if (tear && newest.save_len > 0) {
		off_t at = (off_t)journal_area_offset(&p, (int)newest.area) +
			   (off_t)newest.save_len / 2;
		char c;

		ck_assert_int_eq(syscall(SYS_pread64, jfd, &c, 1, at), 1);
		c ^= 0x20;
		ck_assert_int_eq(syscall(SYS_pwrite64, jfd, &c, 1, at), 1);
	}
	close(jfd);
	return true;
}

/* Has the step of the newest slot begun writing the spool? A state the
 * old format could leave with a torn area only before it had. */
static bool
step_begun(struct fixture *f)
{
	struct journal_plan p;
	struct journal_slot s;
	struct region *reg;
	size_t len;
	char *got = slurp(f->spool, &len);
	bool begun;
	int jfd = open(f->jpath, O_RDONLY);

	ck_assert_int_ge(jfd, 0);
	ck_assert_int_eq(journal_load(read_path, &jfd, &p, &reg, &s), 0);
	free(reg);
	close(jfd);
	begun = s.save_len == 0 || len < s.done + s.save_len ||
		memcmp(got + s.done, f->before + s.done, s.save_len) != 0;
	free(got);
	return begun;
}

/* A journal pending across an upgrade, written by pop3d before round 14
 * (one fdatasync for a saved window and its slot, the window hashed), is
 * still recovered by its hashes: at every kill point of DELE 1 (12 saved
 * windows) it is rolled forward; with the newest slot's window torn
 * before its step wrote the spool, recovery takes the slot before it,
 * where the old format's argument puts it, and still gets the spool
 * right. */
START_TEST(old_format_journal_recovers)
{
	long ops, torn = 0;
	struct fixture f;

	counter_setup();
	ops = ops_of_clean_run(FIRST);
	for (long at = 1; at <= ops; at++) {
		for (int tear = 0; tear < 2; tear++) {
			make_fixture(&f, blocks_of(FIRST), FIRST);
			ck_assert(killed_child(&f, run_compact, at, false));
			if (tear &&
			    (access(f.jpath, F_OK) != 0 || step_begun(&f))) {
				free_fixture(&f);
				continue;
			}
			if (make_old_format(&f, tear)) {
				torn += tear;
				ck_assert_int_eq(run_recover(&f),
						 JOURNAL_FINISHED);
			} else { /* before the rename: a .new at most */
				ck_assert_int_ge(run_recover(&f), 0);
			}
			ck_assert_msg(classify(&f, "", 0) != 0,
				      "kill at %ld%s: the spool damaged", at,
				      tear ? ", area torn" : "");
			ck_assert(!journal_pending(f.jpath));
			free_fixture(&f);
		}
	}
	ck_assert_int_gt(torn, 0);
	munmap(ctr, sizeof(*ctr));
	ctr = NULL;
}
END_TEST

static const char new_mail[] = "From admin@example Thu Nov 26 10:00:00 2026\n"
			       "Subject: the new spool's only message\n\n"
			       "must not be overwritten\n";

/* Issue 13: the journal records the stamp of the dotlock its UPDATE
 * held, so that recovery can remove that lock, left by a power cut, and
 * no other (test_lock.c, clear_left_removes_only_that_dotlock). A
 * journal written without one (by pop3d before this) has zeros there and
 * records none; damage to the stamp or to those zeros refuses the whole
 * journal. */
START_TEST(journal_records_dotlock_stamp)
{
	const struct file_stamp held = {123456789, 1764800000, 999999999};
	unsigned char head[JOURNAL_HEADER_SIZE];
	struct journal_plan p;
	struct file_stamp got;
	struct fixture f;
	int jfd;

	compact_dotlock = &held;
	interrupted(&f);
	compact_dotlock = NULL;
	ck_assert_int_eq(journal_dotlock(f.jpath, &got), 1);
	ck_assert(sys_same_stamp(&got, &held));

	jfd = open(f.jpath, O_RDWR);
	ck_assert_int_ge(jfd, 0);
	ck_assert_int_eq(pread(jfd, head, sizeof(head), 0),
			 (ssize_t)sizeof(head));
	ck_assert_int_eq(journal_decode_header(head, sizeof(head), &p), 0);
	ck_assert_uint_eq(p.flags & JOURNAL_HAVE_DOTLOCK, JOURNAL_HAVE_DOTLOCK);
	head[170] ^= 1; /* the stamp's change time, under its own hash */
	ck_assert_int_eq(journal_decode_header(head, sizeof(head), &p), -1);
	head[170] ^= 1;

	head[181] = 1; /* padding after the stamp, under its hash too */
	ck_assert_int_eq(journal_decode_header(head, sizeof(head), &p), -1);
	close(jfd);
	ck_assert_int_eq(run_recover(&f), JOURNAL_FINISHED);
	ck_assert_int_eq(classify(&f, "", 0), 2);
	free_fixture(&f);

	/* Without a stamp: zeros after the header proper, as in every
	 * journal before the stamp, and none to find. Any other octet
	 * there refuses the header. */
	interrupted(&f);
	jfd = open(f.jpath, O_RDONLY);
	ck_assert_int_ge(jfd, 0);
	ck_assert_int_eq(pread(jfd, head, sizeof(head), 0),
			 (ssize_t)sizeof(head));
	close(jfd);
	for (size_t i = 160; i < JOURNAL_HEADER_SIZE; i++)
		ck_assert_uint_eq(head[i], 0);
	ck_assert_int_eq(journal_dotlock(f.jpath, &got), 0);
	ck_assert_int_eq(journal_decode_header(head, sizeof(head), &p), 0);
	head[175] = 1;
	ck_assert_int_eq(journal_decode_header(head, sizeof(head), &p), -1);
	ck_assert_int_eq(run_recover(&f), JOURNAL_FINISHED);
	ck_assert_int_eq(classify(&f, "", 0), 2);
	ck_assert(!journal_pending(f.jpath));
	free_fixture(&f);
}
END_TEST

/* Issue 13, point 6: the spool removed and made again after a kill
 * inside UPDATE, the new file with the old inode number. Its birth time
 * differs: the journal is set aside as stale, the new spool untouched. */
START_TEST(recreated_same_inode_is_stale)
{
	struct fixture f;
	char stale[PATH_MAX + 16];
	size_t len;
	char *got;

	interrupted(&f);
	replace_spool(&f, new_mail);
	retarget_journal(&f, true);
	ck_assert_int_eq(run_recover(&f), JOURNAL_STALE);
	got = slurp(f.spool, &len);
	ck_assert_uint_eq(len, sizeof(new_mail) - 1);
	ck_assert(memcmp(got, new_mail, len) == 0);
	free(got);
	snprintf(stale, sizeof(stale), "%s.stale", f.jpath);
	ck_assert_int_eq(access(stale, F_OK), 0);
	ck_assert(!journal_pending(f.jpath));
	free_fixture(&f);
}
END_TEST

/* The same where the file system keeps no birth time: the identity
 * matches, the state does not (size, boundary digests): refused, the
 * new spool untouched, and not served until the admin looks. */
START_TEST(recreated_same_inode_no_btime_is_refused)
{
	struct fixture f;
	size_t len;
	char *got;

	interrupted(&f);
	replace_spool(&f, new_mail);
	retarget_journal(&f, false);
	ck_assert_int_eq(run_recover(&f), JOURNAL_REFUSED);
	got = slurp(f.spool, &len);
	ck_assert_uint_eq(len, sizeof(new_mail) - 1);
	ck_assert(memcmp(got, new_mail, len) == 0);
	free(got);
	ck_assert(journal_pending(f.jpath));
	free_fixture(&f);
}
END_TEST

/* Issue 15, point 2: the journal written on a host whose file system
 * gives no birth time (NFSv3), the recovery on one that has it (the
 * file server, NFSv4): the same spool, so the journal applies and
 * UPDATE is finished. A birth time counts only where both hosts have
 * one. */
START_TEST(journal_without_btime_recovers)
{
	struct fixture f;

	interrupted(&f);
	retarget_journal(&f, false);
	ck_assert_int_eq(run_recover(&f), JOURNAL_FINISHED);
	ck_assert_int_eq(classify(&f, "", 0), 2);
	ck_assert(!journal_pending(f.jpath));
	free_fixture(&f);
}
END_TEST

/* The same file, changed in place by another program after the crash
 * (shortened): refused, untouched. */
START_TEST(changed_spool_is_refused)
{
	struct fixture f;
	struct stat before, after;

	interrupted(&f);
	ck_assert_int_eq(stat(f.spool, &before), 0);
	ck_assert_int_eq(truncate(f.spool, f.before_len - 10), 0);
	ck_assert_int_eq(run_recover(&f), JOURNAL_REFUSED);
	ck_assert_int_eq(stat(f.spool, &after), 0);
	ck_assert_int_eq(after.st_size, (off_t)f.before_len - 10);
	free_fixture(&f);
}
END_TEST

/* Issue 13, point 6: the journal is found by the spool's path, never by
 * its device number (which a reboot may change), and holds no device
 * number to compare: the name is a function of the path alone. */
START_TEST(name_ignores_device)
{
	char a[PATH_MAX], b[PATH_MAX];
	struct fixture f;
	struct journal_plan p;
	struct journal_slot s;
	struct region *reg;
	int jfd;

	ck_assert_int_eq(journal_path("/j", "/var/mail/alice", a, sizeof(a)),
			 0);
	ck_assert_int_eq(journal_path("/j", "/var/mail/alice", b, sizeof(b)),
			 0);
	ck_assert_str_eq(a, b);
	ck_assert_int_eq(strncmp(a, "/j/spool-", 9), 0);
	ck_assert_int_eq(journal_path("/j", "/var/mail/bob", b, sizeof(b)), 0);
	ck_assert_str_ne(a, b);
	/* The record holds the inode and birth time, nothing else. */
	interrupted(&f);
	jfd = open(f.jpath, O_RDONLY);
	ck_assert_int_eq(journal_load(read_path, &jfd, &p, &reg, &s), 0);
	close(jfd);
	free(reg);
	{
		struct stat st;

		ck_assert_int_eq(stat(f.spool, &st), 0);
		ck_assert_uint_eq(p.ino, st.st_ino);
	}
	ck_assert_int_eq(run_recover(&f), JOURNAL_FINISHED);
	ck_assert_int_eq(classify(&f, "", 0), 2);
	free_fixture(&f);
}
END_TEST

static Suite *
journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("journal");

	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, fixture_reset, NULL);
	tcase_add_test(tc, compact_whole);
	tcase_add_test(tc, compact_gathers);
	tcase_add_test(tc, delete_last_journaled);
	tcase_add_test(tc, torn_truncation_finished);
	tcase_add_test(tc, delete_last_then_long_mail);
	tcase_add_test(tc, syncs_per_compaction);
	tcase_add_test(tc, removed_journal_released);
	tcase_add_test(tc, killed_first_deleted);
	tcase_add_test(tc, killed_every_other);
	tcase_add_test(tc, killed_every_other_gathered);
	tcase_add_test(tc, killed_big_first);
	tcase_add_test(tc, killed_all_with_tail);
	tcase_add_test(tc, killed_exact);
	tcase_add_test(tc, failed_recovery_keeps_journal);
	tcase_add_test(tc, failed_journal_sync_then_power_cut);
	tcase_add_test(tc, no_journal_nothing_to_do);
	tcase_add_test(tc, torn_journal_is_refused);
	tcase_add_test(tc, leftover_new_is_removed);
	tcase_add_test(tc, recreated_same_inode_is_stale);
	tcase_add_test(tc, journal_records_dotlock_stamp);
	tcase_add_test(tc, recreated_same_inode_no_btime_is_refused);
	tcase_add_test(tc, journal_without_btime_recovers);
	tcase_add_test(tc, old_format_journal_recovers);
	tcase_add_test(tc, changed_spool_is_refused);
	tcase_add_test(tc, name_ignores_device);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return spool_test_main("pop3d-journal", journal_suite());
}
