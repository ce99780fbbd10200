/* Unit tests for sysutil.c, the one place that handles EINTR, short
 * reads and the clock: a bounded wait stays bounded under a stream of
 * signals (neither cut short nor stretched), a sleep sleeps its whole
 * time, the clock is CLOCK_MONOTONIC in milliseconds, and a read returns
 * every octet asked for unless the file ends first. The signals come
 * from an interval timer whose handler is installed without SA_RESTART,
 * as a SIGCHLD or SIGTERM handler in pop3d would interrupt a call. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spool_helpers.h"
#include "sysutil.h"

/* --- a stream of signals ------------------------------------------------- */

static volatile sig_atomic_t ticks;
static sig_atomic_t tick_limit;

static void
stop_timer(void)
{
	struct itimerval off = {{0, 0}, {0, 0}};

	setitimer(ITIMER_REAL, &off, NULL);
}

/* The timer stops itself after tick_limit signals, so that a wait that
 * restarts its whole timeout on every signal ends late (and fails on the
 * upper bound) instead of never. setitimer is a plain system call on
 * Linux, safe here. */
static void
on_tick(int sig)
{
	if (++ticks >= tick_limit)
		stop_timer();
}

/* SIGALRM every interval_ms, limit times; no SA_RESTART: every signal
 * interrupts the system call it lands in with EINTR. */
static void
ticks_start(long interval_ms, int limit)
{
	struct sigaction sa;
	struct itimerval it = {
		{interval_ms / 1000, (interval_ms % 1000) * 1000},
		{interval_ms / 1000, (interval_ms % 1000) * 1000},
	};

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_tick;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	ticks = 0;
	tick_limit = limit;
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void
ticks_end(void)
{
	stop_timer();
	signal(SIGALRM, SIG_DFL);
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- sys_now_ms ---------------------------------------------------------- */

/* Deadlines must not jump when the wall clock is set: the value is
 * CLOCK_MONOTONIC's, in milliseconds (not CLOCK_REALTIME's, nor seconds
 * or microseconds). */
START_TEST(now_is_monotonic_ms)
{
	int64_t before = mono_ms(), now = sys_now_ms(), after = mono_ms();

	ck_assert_int_ge(now, before);
	ck_assert_int_le(now, after);
}
END_TEST

/* It advances by the time that passed, and never goes back. */
START_TEST(now_advances)
{
	struct timespec ts = {0, 300 * 1000000L};
	int64_t start = sys_now_ms(), prev = start, t;

	ck_assert_int_eq(nanosleep(&ts, NULL), 0);
	t = sys_now_ms();
	ck_assert_int_ge(t - start, 300);
	ck_assert_int_lt(t - start, 300 + 3000);
	for (int i = 0; i < 100000; i++) {
		t = sys_now_ms();
		ck_assert_int_ge(t, prev);
		prev = t;
	}
}
END_TEST

/* --- sys_sleep_ms -------------------------------------------------------- */

/* A signal every 10 ms does not cut the sleep short; over a second, so
 * the seconds part of the request counts too. */
static const long sleep_cases[] = {150, 1200};

START_TEST(sleep_full_time_despite_signals)
{
	long ms = sleep_cases[_i];
	int64_t start, took;

	ticks_start(10, 1000);
	start = mono_ms();
	sys_sleep_ms(ms);
	took = mono_ms() - start;
	ticks_end();
	ck_assert_int_ge(took, ms);
	ck_assert_int_lt(took, ms + 3000);
	ck_assert_msg(ticks >= 5, "only %d signals arrived", (int)ticks);
}
END_TEST

START_TEST(sleep_zero)
{
	int64_t start = mono_ms();

	sys_sleep_ms(0);
	ck_assert_int_lt(mono_ms() - start, 1000);
}
END_TEST

/* --- sys_poll ------------------------------------------------------------ */

/* A signal every 10 ms for 3 s: the poll still times out (0, not -1
 * EINTR) after the time asked for, neither early nor restarted with the
 * whole timeout at each signal (that would end after the 3 s). */
START_TEST(poll_timeout_despite_signals)
{
	struct pollfd pfd;
	int p[2], r;
	int64_t start, took;

	ck_assert_int_eq(pipe(p), 0);
	pfd = (struct pollfd){.fd = p[0], .events = POLLIN};
	ticks_start(10, 300);
	start = mono_ms();
	r = sys_poll(&pfd, 1, 400);
	took = mono_ms() - start;
	ticks_end();
	ck_assert_msg(r == 0, "sys_poll = %d (%s)", r, strerror(errno));
	ck_assert_msg(ticks >= 5, "only %d signals arrived", (int)ticks);
	ck_assert_int_ge(took, 400);
	ck_assert_int_lt(took, 2500);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* Without signals the timeout is the one asked for, and 0 is a check
 * that does not wait. */
START_TEST(poll_timeout_plain)
{
	struct pollfd pfd;
	int p[2];
	int64_t start;

	ck_assert_int_eq(pipe(p), 0);
	pfd = (struct pollfd){.fd = p[0], .events = POLLIN};
	start = mono_ms();
	ck_assert_int_eq(sys_poll(&pfd, 1, 0), 0);
	ck_assert_int_lt(mono_ms() - start, 1000);
	start = mono_ms();
	ck_assert_int_eq(sys_poll(&pfd, 1, 200), 0);
	ck_assert_int_ge(mono_ms() - start, 200);
	ck_assert_int_lt(mono_ms() - start, 2200);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* A negative timeout waits for ever, across signals, until the fd is
 * ready: here a child writes after 300 ms. */
START_TEST(poll_forever_until_ready)
{
	struct pollfd pfd;
	int p[2], r, status;
	int64_t start, took;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		usleep(300000);
		_exit(write(p[1], "x", 1) == 1 ? 0 : 1);
	}
	pfd = (struct pollfd){.fd = p[0], .events = POLLIN};
	ticks_start(10, 1000);
	start = mono_ms();
	r = sys_poll(&pfd, 1, -1);
	took = mono_ms() - start;
	ticks_end();
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(r == 1, "sys_poll = %d (%s)", r, strerror(errno));
	ck_assert(pfd.revents & POLLIN);
	ck_assert_msg(ticks >= 5, "only %d signals arrived", (int)ticks);
	ck_assert_int_ge(took, 250);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* Ready fds are reported; a closed one as POLLNVAL; an error is returned,
 * not retried: more fds than RLIMIT_NOFILE allows is EINVAL. */
START_TEST(poll_ready_and_error)
{
	struct pollfd pfd, many[17];
	struct rlimit old, low;
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	pfd = (struct pollfd){.fd = p[0], .events = POLLIN};
	ck_assert_int_eq(sys_poll(&pfd, 1, 1000), 1);
	ck_assert(pfd.revents & POLLIN);
	close(p[0]);
	close(p[1]);
	ck_assert_int_eq(sys_poll(&pfd, 1, -1), 1);
	ck_assert(pfd.revents & POLLNVAL);

	for (int i = 0; i < N(many); i++)
		many[i] = (struct pollfd){.fd = -1};
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = N(many) - 1;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	errno = 0;
	ck_assert_int_eq(sys_poll(many, N(many), -1), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}
END_TEST

/* --- sys_pread_full ------------------------------------------------------ */

/* pread(2) on a regular file never returns short before the end nor
 * fails with EINTR, so this file's pread stands in for libc's (the one
 * sysutil.o calls): with pread_chunk set, each call reads at most that
 * many octets and every third call fails with EINTR, as on NFS, FUSE or
 * a signal during a slow read. */
static size_t pread_chunk;
static int pread_calls;

ssize_t
pread(int fd, void *buf, size_t n, off_t at)
{
	pread_calls++;
	if (pread_chunk > 0) {
		if (pread_calls % 3 == 0) {
			errno = EINTR;
			return -1;
		}
		if (n > pread_chunk)
			n = pread_chunk;
	}
	return syscall(SYS_pread64, fd, buf, n, at);
}

#define FILE_LEN 10000

static char file_data[FILE_LEN];

/* A file of FILE_LEN distinct-ish octets, open for reading. */
static int
open_data_file(void)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int fd;

	for (size_t i = 0; i < sizeof(file_data); i++)
		file_data[i] = (char)(i * 31 + i / 256);
	new_spool_path(dir, path);
	write_file(path, file_data, sizeof(file_data));
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* Where the reads start and end, how much each pread call returns (0:
 * all of it), and what comes back. */
struct pread_case {
	off_t at;
	size_t n;
	size_t chunk;
	ssize_t want;
};

static const struct pread_case pread_cases[] = {
	{0, FILE_LEN, 0, FILE_LEN},
	{1234, 4000, 0, 4000},
	{8000, 4000, 0, FILE_LEN - 8000}, /* the end: fewer */
	{FILE_LEN, 100, 0, 0},
	{FILE_LEN + 5, 100, 0, 0},
	{0, 0, 0, 0},
	/* Short reads and EINTR: still all of it, and from the right
	 * offsets. */
	{0, FILE_LEN, 7, FILE_LEN},
	{1234, 4000, 1000, 4000},
	{3, 5000, 4999, 5000},
	{8000, 4000, 7, FILE_LEN - 8000},
	{FILE_LEN - 1, 50, 1, 1},
};

START_TEST(pread_full)
{
	const struct pread_case *pc = &pread_cases[_i];
	char *buf = malloc(pc->n + 1);
	int fd = open_data_file();
	ssize_t r;

	ck_assert_ptr_nonnull(buf);
	memset(buf, 0x5a, pc->n + 1);
	pread_chunk = pc->chunk;
	pread_calls = 0;
	r = sys_pread_full(fd, buf, pc->n, pc->at);
	pread_chunk = 0;
	ck_assert_int_eq(r, pc->want);
	if (r > 0)
		ck_assert(memcmp(buf, file_data + pc->at, r) == 0);
	/* Not one octet past what was read. */
	ck_assert_int_eq(buf[r], 0x5a);
	/* The reads were cut short where they were meant to be. */
	if (pc->chunk > 0 && pc->want > (ssize_t)pc->chunk)
		ck_assert_int_ge(pread_calls, 2);
	/* pread leaves the file offset alone (the spool fd is shared by
	 * every step of the session). */
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 0);
	close(fd);
	free(buf);
}
END_TEST

/* Errors are -1 with errno as pread set it, also after an EINTR. */
START_TEST(pread_errors)
{
	char buf[16];
	int p[2], fd;

	ck_assert_int_eq(pipe(p), 0);
	errno = 0;
	ck_assert_int_eq(sys_pread_full(p[0], buf, sizeof(buf), 0), -1);
	ck_assert_int_eq(errno, ESPIPE);
	close(p[0]);
	close(p[1]);

	fd = open_data_file();
	close(fd);
	errno = 0;
	ck_assert_int_eq(sys_pread_full(fd, buf, sizeof(buf), 0), -1);
	ck_assert_int_eq(errno, EBADF);

	/* The next call fails with EINTR, the one after with EBADF. */
	pread_chunk = 1;
	pread_calls = 2;
	errno = 0;
	ck_assert_int_eq(sys_pread_full(fd, buf, sizeof(buf), 0), -1);
	pread_chunk = 0;
	ck_assert_int_eq(errno, EBADF);
	ck_assert_int_eq(pread_calls, 4);
}
END_TEST

/* --- names ---------------------------------------------------------------- */

/* What pop3d --recover counts as nothing pending in a journal directory
 * (a session lock file, a stale journal): the suffix after a name, not
 * the suffix alone, and not a name that merely contains it. */
START_TEST(ends_with)
{
	ck_assert(sys_ends_with("spool-0123.session", ".session"));
	ck_assert(sys_ends_with("x.stale", ".stale"));
	ck_assert(!sys_ends_with(".session", ".session"));
	ck_assert(!sys_ends_with("spool-0123.session.new", ".session"));
	ck_assert(!sys_ends_with("spool-0123", ".session"));
	ck_assert(!sys_ends_with("", ".stale"));
}
END_TEST

/* --- runner -------------------------------------------------------------- */

static Suite *
sysutil_suite(void)
{
	Suite *s = suite_create("sysutil");
	TCase *tc;

	tc = tcase_create("clock");
	tcase_add_test(tc, now_is_monotonic_ms);
	tcase_add_test(tc, now_advances);
	tcase_add_loop_test(tc, sleep_full_time_despite_signals, 0,
			    N(sleep_cases));
	tcase_add_test(tc, sleep_zero);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);

	tc = tcase_create("poll");
	tcase_add_test(tc, poll_timeout_despite_signals);
	tcase_add_test(tc, poll_timeout_plain);
	tcase_add_test(tc, poll_forever_until_ready);
	tcase_add_test(tc, poll_ready_and_error);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);

	tc = tcase_create("pread");
	tcase_add_loop_test(tc, pread_full, 0, N(pread_cases));
	tcase_add_test(tc, pread_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("names");
	tcase_add_test(tc, ends_with);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return spool_test_main("pop3d-sysutil", sysutil_suite());
}
