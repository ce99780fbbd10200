/* Unit tests for sdsock.c, socket activation without libsystemd: which
 * LISTEN_PID/LISTEN_FDS values mean "passed to us" (sd_listen_fds(3)),
 * that the passed descriptors become close-on-exec and the variables go,
 * what counts as a listening or connected stream socket, and that a
 * NOTIFY_SOCKET datagram arrives whole at a path or an abstract name. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdsock.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

struct listen_case {
	const char *pid; /* "self": our pid; NULL: unset */
	const char *fds;
	int want;
};

static const struct listen_case listen_cases[] = {
	{NULL, "1", 0},			   /* no LISTEN_PID: nothing passed */
	{NULL, NULL, 0},    {"1", "1", 0}, /* for another process */
	{"self", "1", 1},   {"self", "2", 2},
	{"self", "0", 0},   {"self", NULL, -1}, /* ours, but how many? */
	{"self", "x", -1},  {"self", "1x", -1},
	{"self", "-1", -1}, {"self", "99999999999", -1},
	{"12a", "1", -1},   {"", "1", -1},
};

START_TEST(listen_fds)
{
	const struct listen_case *lc = &listen_cases[_i];
	char pid[32];
	int sv[2], got;

	/* Descriptors 3 and 4 open and inheritable, as systemd passes
	 * them (the test runner may have others there: take them over). */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(dup2(sv[0], SDSOCK_FDS_START), SDSOCK_FDS_START);
	ck_assert_int_eq(dup2(sv[1], SDSOCK_FDS_START + 1),
			 SDSOCK_FDS_START + 1);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	if (lc->pid != NULL)
		setenv("LISTEN_PID", strcmp(lc->pid, "self") ? lc->pid : pid,
		       1);
	if (lc->fds != NULL)
		setenv("LISTEN_FDS", lc->fds, 1);
	setenv("LISTEN_FDNAMES", "pop3", 1);

	got = sdsock_listen_fds();
	ck_assert_int_eq(got, lc->want);
	if (lc->pid != NULL) {
		/* Never left for a process we start. */
		ck_assert_ptr_null(getenv("LISTEN_PID"));
		ck_assert_ptr_null(getenv("LISTEN_FDS"));
		ck_assert_ptr_null(getenv("LISTEN_FDNAMES"));
	}
	for (int i = 0; i < 2; i++) {
		int flags = fcntl(SDSOCK_FDS_START + i, F_GETFD);

		ck_assert_int_ge(flags, 0);
		ck_assert_int_eq((flags & FD_CLOEXEC) != 0, i < got);
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}
END_TEST

/* A count larger than what is open is refused, not trusted. */
START_TEST(listen_fds_not_open)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	close(SDSOCK_FDS_START + 40);
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "41", 1);
	ck_assert_int_eq(sdsock_listen_fds(), -1);
}
END_TEST

START_TEST(is_stream)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int lst, conn, dgram, p[2];

	lst = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(lst, 0);
	/* Autobind: an abstract address of the kernel's choosing. */
	ck_assert_int_eq(bind(lst, (struct sockaddr *)&sa, sizeof(sa_family_t)),
			 0);
	ck_assert_int_eq(listen(lst, 1), 0);
	ck_assert_int_eq(sdsock_is_stream(lst, true), 1);
	ck_assert_int_eq(sdsock_is_stream(lst, false), 0);

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
	conn = p[0];
	ck_assert_int_eq(sdsock_is_stream(conn, false), 1);
	ck_assert_int_eq(sdsock_is_stream(conn, true), 0);
	close(p[1]);

	dgram = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_ge(dgram, 0);
	ck_assert_int_eq(sdsock_is_stream(dgram, false), 0);
	ck_assert_int_eq(sdsock_is_stream(dgram, true), 0);

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(sdsock_is_stream(p[0], false), 0);
	ck_assert_int_eq(sdsock_is_stream(p[0], true), 0);
	close(p[0]);
	close(p[1]);
	ck_assert_int_eq(sdsock_is_stream(p[0], false), -1);
	close(lst);
	close(conn);
	close(dgram);
}
END_TEST

/* The service manager's end: a datagram socket at a path in a fresh
 * directory, or at an abstract name. */
static int
receiver(bool abstract, char *name, size_t cap)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	if (abstract) {
		snprintf(name, cap, "@pop3d-test-notify-%ld", (long)getpid());
		memcpy(sa.sun_path, name, strlen(name));
		sa.sun_path[0] = '\0';
		len = offsetof(struct sockaddr_un, sun_path) + strlen(name);
	} else {
		char dir[] = "/tmp/pop3d-sdsock.XXXXXX";

		ck_assert_ptr_nonnull(mkdtemp(dir));
		snprintf(name, cap, "%s/notify", dir);
		memcpy(sa.sun_path, name, strlen(name) + 1);
		len = sizeof(sa);
	}
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, len), 0);
	return fd;
}

START_TEST(notify)
{
	static const char state[] = "READY=1\nSTATUS=accepting connections";
	char name[108], got[256];
	int fd = receiver(_i == 1, name, sizeof(name));
	ssize_t n;

	setenv("NOTIFY_SOCKET", name, 1);
	ck_assert_int_eq(sdsock_notify(state), 0);
	n = recv(fd, got, sizeof(got), MSG_DONTWAIT);
	ck_assert_int_eq(n, (ssize_t)strlen(state));
	ck_assert(memcmp(got, state, n) == 0);
	close(fd);
	if (name[0] == '/') {
		unlink(name);
		*strrchr(name, '/') = '\0';
		rmdir(name);
	}
	unsetenv("NOTIFY_SOCKET");
}
END_TEST

/* Not under a service manager: nothing to do, no error. Nobody
 * listening: an error the caller may ignore. A name that is neither a
 * path nor abstract: refused. */
START_TEST(notify_without_manager)
{
	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(sdsock_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	ck_assert_int_eq(sdsock_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "/nonexistent/pop3d-notify", 1);
	ck_assert_int_eq(sdsock_notify("READY=1"), -1);
	setenv("NOTIFY_SOCKET", "relative", 1);
	ck_assert_int_eq(sdsock_notify("READY=1"), -1);
	unsetenv("NOTIFY_SOCKET");
}
END_TEST

static Suite *
sdsock_suite(void)
{
	Suite *s = suite_create("sdsock");
	TCase *tc = tcase_create("sdsock");

	tcase_add_loop_test(tc, listen_fds, 0, N(listen_cases));
	tcase_add_test(tc, listen_fds_not_open);
	tcase_add_test(tc, is_stream);
	tcase_add_loop_test(tc, notify, 0, 2);
	tcase_add_test(tc, notify_without_manager);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sdsock_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
