/* Unit tests for journal.c: a compaction killed at any moment, with or
 * without mail appended before recovery, always recovers to either the
 * spool before UPDATE or the spool after it, plus the appended mail, byte
 * for byte; never to anything else. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "spool_helpers.h"

struct fixture {
	char spool[PATH_MAX], jpath[PATH_MAX];
	char *before, *after; /* the spool before and after compaction */
	size_t before_len, after_len;
	struct region reg[32];
	size_t nreg;
	off_t dst;
};

/* A spool of `blocks` 64 KiB blocks with distinct contents; regions keep
 * every other block from block 1 on (block 0 stays in place), plus the
 * "mail delivered during the session" tail of 3000 octets. */
static void
make_fixture(struct fixture *f, int blocks)
{
	size_t bs = 65536, tail = 3000;
	int fd;

	memset(f, 0, sizeof(*f));
	snprintf(f->spool, sizeof(f->spool), "%s/spool", base_dir);
	snprintf(f->jpath, sizeof(f->jpath), "%s/journal", base_dir);
	f->before_len = blocks * bs + tail;
	f->before = malloc(f->before_len);
	f->after = malloc(f->before_len);
	ck_assert(f->before != NULL && f->after != NULL);
	for (size_t i = 0; i < f->before_len; i++)
		f->before[i] = (char)('A' + (i / bs) % 26 + (i * 7) % 3);
	f->dst = bs; /* block 1 is deleted */
	memcpy(f->after, f->before, bs);
	f->after_len = bs;
	for (int b = 2; b < blocks; b += 2) {
		f->reg[f->nreg++] = (struct region){(off_t)(b * bs), (off_t)bs};
		memcpy(f->after + f->after_len, f->before + b * bs, bs);
		f->after_len += bs;
	}
	f->reg[f->nreg++] = (struct region){(off_t)(blocks * bs), -1};
	memcpy(f->after + f->after_len, f->before + blocks * bs, tail);
	f->after_len += tail;
	unlink(f->jpath);
	fd = open(f->spool, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, f->before, f->before_len),
			 (ssize_t)f->before_len);
	close(fd);
}

static void
free_fixture(struct fixture *f)
{
	free(f->before);
	free(f->after);
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

static void
run_compact(struct fixture *f)
{
	static char buf[4096]; /* small: many steps to be killed in */
	int fd = open(f->spool, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(journal_compact(fd, f->jpath, f->dst, f->reg, f->nreg,
					 buf, sizeof(buf)),
			 0);
	close(fd);
}

START_TEST(compact_whole)
{
	struct fixture f;
	size_t len;
	char *got;

	make_fixture(&f, 12);
	run_compact(&f);
	got = slurp(f.spool, &len);
	ck_assert_uint_eq(len, f.after_len);
	ck_assert(memcmp(got, f.after, len) == 0);
	ck_assert_int_eq(access(f.jpath, F_OK), -1);
	free(got);
	free_fixture(&f);
}
END_TEST

/* The outcome must be before+new or after+new. */
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

static void
kill_and_recover(int seed, bool append)
{
	static char buf[8192];
	const char extra[] = "From new@example Thu Nov 26 09:00:00 2026\n"
			     "Subject: delivered after the crash\n\nhi\n\n";
	struct fixture f;
	struct timespec ts;
	pid_t pid;
	int fd, status, outcome;

	make_fixture(&f, 24);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		run_compact(&f);
		_exit(0);
	}
	/* Somewhere from the start to a little past the end. */
	ts.tv_sec = 0;
	ts.tv_nsec = (seed * 7919L % 40) * 100000L;
	nanosleep(&ts, NULL);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (append) {
		/* An MDA delivers before the next login. */
		fd = open(f.spool, O_WRONLY | O_APPEND);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, extra, sizeof(extra) - 1),
				 (ssize_t)sizeof(extra) - 1);
		close(fd);
	}
	fd = open(f.spool, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(journal_recover(fd, f.jpath, buf, sizeof(buf)), 0);
	close(fd);
	ck_assert_int_eq(access(f.jpath, F_OK), -1);
	outcome = classify(&f, extra, append ? sizeof(extra) - 1 : 0);
	ck_assert_msg(outcome != 0,
		      "seed %d: spool is neither before nor "
		      "after UPDATE",
		      seed);
	free_fixture(&f);
}

START_TEST(killed_anywhere)
{
	for (int seed = 0; seed < 60; seed++)
		kill_and_recover(seed, false);
}
END_TEST

START_TEST(killed_then_mail_arrives)
{
	for (int seed = 0; seed < 60; seed++)
		kill_and_recover(seed, true);
}
END_TEST

START_TEST(no_journal_nothing_to_do)
{
	struct fixture f;
	char buf[512];
	int fd;

	make_fixture(&f, 4);
	fd = open(f.spool, O_RDWR);
	ck_assert_int_eq(journal_recover(fd, f.jpath, buf, sizeof(buf)), 0);
	close(fd);
	ck_assert_int_eq(classify(&f, "", 0), 1);
	free_fixture(&f);
}
END_TEST

START_TEST(torn_journal_is_ignored)
{
	struct fixture f;
	char buf[512];
	int fd;

	/* A journal cut short was never acted on: the spool stays. */
	make_fixture(&f, 4);
	fd = open(f.jpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_eq(write(fd, "pop3d journal 1\0garbage", 23), 23);
	close(fd);
	fd = open(f.spool, O_RDWR);
	ck_assert_int_eq(journal_recover(fd, f.jpath, buf, sizeof(buf)), 0);
	close(fd);
	ck_assert_int_eq(classify(&f, "", 0), 1);
	ck_assert_int_eq(access(f.jpath, F_OK), -1);
	free_fixture(&f);
}
END_TEST

static Suite *
journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("journal");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, compact_whole);
	tcase_add_test(tc, killed_anywhere);
	tcase_add_test(tc, killed_then_mail_arrives);
	tcase_add_test(tc, no_journal_nothing_to_do);
	tcase_add_test(tc, torn_journal_is_ignored);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return spool_test_main("pop3d-journal", journal_suite());
}
