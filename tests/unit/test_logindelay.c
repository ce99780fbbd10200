/* Unit tests for logindelay.c, --login-delay's state (R2449-21,
 * design.md §4.10): the time of the last login is the modification time
 * of <dir>/last-login, so there is no content to parse; these cover
 * every way the file can be: missing, in the past on either side of the
 * delay (to the nanosecond), in the future, not a regular file, reached
 * through a symlink, and the directory itself missing. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "logindelay.h"
#include "spool_helpers.h"

#define NOW_S 1700000000LL
#define NOW_NS 500000000L
#define DELAY 60

static const struct timespec now = {NOW_S, NOW_NS};

/* A fresh directory; path gets <dir>/last-login. */
static void
fresh(char dir[PATH_MAX], char path[PATH_MAX])
{
	char spool[PATH_MAX];

	new_spool_path(dir, spool);
	ck_assert_int_lt(snprintf(path, PATH_MAX, "%.*s/%s", PATH_MAX / 2, dir,
				  LOGINDELAY_FILE),
			 PATH_MAX);
}

static void
plant(const char *path, long long s, long ns)
{
	struct timespec t[2] = {{s, ns}, {s, ns}};
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(futimens(fd, t), 0);
	close(fd);
}

/* The last login at now + offset (seconds, nanoseconds); the verdict and
 * the whole seconds still to wait. */
static const struct {
	const char *what;
	long long ds;
	long dns;
	unsigned delay;
	bool too_soon;
	unsigned left;
} cases[] = {
	{"at this very moment", 0, 0, DELAY, true, DELAY},
	{"1 ns ago: a whole delay, rounded up", 0, -1, DELAY, true, DELAY},
	{"1 s ago", -1, 0, DELAY, true, DELAY - 1},
	{"59.5 s ago: half a second, rounded up", -59, -500000000L, DELAY, true,
	 1},
	{"1 ns short of the delay", -DELAY, 1, DELAY, true, 1},
	{"exactly the delay ago", -DELAY, 0, DELAY, false, 0},
	{"1 ns past the delay", -DELAY, -1, DELAY, false, 0},
	{"a day ago", -86400, 0, DELAY, false, 0},
	{"at the epoch", -NOW_S, -NOW_NS, DELAY, false, 0},
	{"before the epoch", -NOW_S - 86400, 0, DELAY, false, 0},
	/* The clock was set back, or the user set the time: ignored. */
	{"1 ns in the future", 0, 1, DELAY, false, 0},
	{"an hour in the future", 3600, 0, DELAY, false, 0},
	{"far in the future", 1LL << 40, 0, DELAY, false, 0},
	{"a day's delay, an hour ago", -3600, 0, 86400, true, 82800},
	{"no delay at all", 0, -1, 0, false, 0},
};

START_TEST(verdicts)
{
	char dir[PATH_MAX], path[PATH_MAX];
	long long s = NOW_S + cases[_i].ds;
	long ns = NOW_NS + cases[_i].dns;
	unsigned left = 0;
	bool r;

	fresh(dir, path);
	while (ns < 0)
		ns += 1000000000L, s--;
	while (ns >= 1000000000L)
		ns -= 1000000000L, s++;
	plant(path, s, ns);
	r = logindelay_too_soon(dir, cases[_i].delay, &now, &left);
	ck_assert_msg(r == cases[_i].too_soon, "%s: too_soon %d",
		      cases[_i].what, r);
	if (r)
		ck_assert_msg(left == cases[_i].left, "%s: left %u, not %u",
			      cases[_i].what, left, cases[_i].left);
}
END_TEST

START_TEST(missing_file_allows)
{
	char dir[PATH_MAX], path[PATH_MAX];
	unsigned left = 0;

	fresh(dir, path);
	ck_assert(!logindelay_too_soon(dir, DELAY, &now, &left));
}
END_TEST

START_TEST(missing_dir_allows)
{
	unsigned left = 0;

	ck_assert(!logindelay_too_soon("/nonexistent/pop3d-test", DELAY, &now,
				       &left));
	ck_assert_int_eq(logindelay_record("/nonexistent/pop3d-test", &now),
			 -1);
}
END_TEST

/* A name that is not a regular file: a directory, a FIFO (which must
 * not hang the open), a symlink (never followed, even to a file whose
 * time would refuse). None refuses; none can be recorded into. */
START_TEST(not_a_regular_file)
{
	char dir[PATH_MAX], path[PATH_MAX], target[PATH_MAX + 8];

	unsigned left = 0;
	struct stat st;

	fresh(dir, path);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert(!logindelay_too_soon(dir, DELAY, &now, &left));
	ck_assert_int_eq(logindelay_record(dir, &now), -1);

	fresh(dir, path);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert(!logindelay_too_soon(dir, DELAY, &now, &left));
	ck_assert_int_eq(logindelay_record(dir, &now), -1);

	fresh(dir, path);
	snprintf(target, sizeof(target), "%s.target", path);
	plant(target, NOW_S, 0);
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert(!logindelay_too_soon(dir, DELAY, &now, &left));
	ck_assert_int_eq(logindelay_record(dir, &now), -1);
	ck_assert_int_eq(stat(target, &st), 0);
	ck_assert_int_eq(st.st_mtim.tv_sec, NOW_S); /* not touched */
	ck_assert_int_eq(st.st_mtim.tv_nsec, 0);
}
END_TEST

/* A record makes a 0600 file holding now, to the nanosecond, and the
 * next check at now refuses; a later record moves it on. */
START_TEST(record_then_check)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct timespec later = {NOW_S + DELAY, NOW_NS};
	unsigned left = 0;
	struct stat st;

	fresh(dir, path);
	ck_assert_int_eq(logindelay_record(dir, &now), 0);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(st.st_size, 0);
	ck_assert_int_eq(st.st_mtim.tv_sec, NOW_S);
	ck_assert_int_eq(st.st_mtim.tv_nsec, NOW_NS);
	ck_assert(logindelay_too_soon(dir, DELAY, &now, &left));
	ck_assert_uint_eq(left, DELAY);
	ck_assert(!logindelay_too_soon(dir, DELAY, &later, &left));
	ck_assert_int_eq(logindelay_record(dir, &later), 0);
	ck_assert(logindelay_too_soon(dir, DELAY, &later, &left));
	/* A record in the future is replaced by the present. */
	ck_assert_int_eq(logindelay_record(dir, &now), 0);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_int_eq(st.st_mtim.tv_sec, NOW_S);
}
END_TEST

static Suite *
logindelay_suite(void)
{
	Suite *s = suite_create("logindelay");
	TCase *tc = tcase_create("state");

	tcase_add_loop_test(tc, verdicts, 0, N(cases));
	tcase_add_test(tc, missing_file_allows);
	tcase_add_test(tc, missing_dir_allows);
	tcase_add_test(tc, not_a_regular_file);
	tcase_add_test(tc, record_then_check);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return spool_test_main("pop3d-logindelay", logindelay_suite());
}
