/* Unit tests for peer.c: which clients count as local, where cleartext
 * passwords cannot be sniffed (DEC-24, R5034-20): a pipe, a Unix socket,
 * 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "peer.h"

struct addr_case {
	int family;
	const char *addr;
	bool local;
	/* What p->addr must read, if not addr itself: a client reaching a
	 * dual-stack socket (systemd's ListenStream=110) over IPv4 is shown
	 * in its IPv4 form, the form the admin, PAM_RHOST and fail2ban's
	 * IPv4 firewall rules know it by. */
	const char *shown;
};

static const struct addr_case addr_cases[] = {
	{AF_INET, "127.0.0.1", true, NULL},
	{AF_INET, "127.9.9.9", true, NULL},
	{AF_INET, "127.255.255.255", true, NULL},
	{AF_INET, "127.0.0.0", true, NULL},
	{AF_INET, "10.0.0.1", false, NULL},
	{AF_INET, "126.255.255.255", false, NULL},
	{AF_INET, "128.0.0.1", false, NULL},
	{AF_INET, "192.0.2.127", false, NULL},
	{AF_INET, "0.0.0.0", false, NULL},
	{AF_INET, "255.255.255.255", false, NULL},
	{AF_INET6, "::1", true, NULL},
	{AF_INET6, "::ffff:127.0.0.1", true, "127.0.0.1"},
	{AF_INET6, "::ffff:127.1.2.3", true, "127.1.2.3"},
	{AF_INET6, "::ffff:10.0.0.1", false, "10.0.0.1"},
	{AF_INET6, "::ffff:128.0.0.1", false, "128.0.0.1"},
	{AF_INET6, "2001:db8::1", false, NULL},
	{AF_INET6, "::", false, NULL},
	{AF_INET6, "::2", false, NULL},
	{AF_INET6, "fe80::1", false, NULL},
	{AF_INET6, "1::1", false, NULL},
	{AF_INET6, "::1:0:0:1", false, NULL},
	{AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, NULL},
};

START_TEST(classify_table)
{
	const struct addr_case *ac = &addr_cases[_i];
	struct sockaddr_storage ss;
	socklen_t len;
	struct peer p;

	memset(&ss, 0, sizeof(ss));
	if (ac->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(40000);
		ck_assert_int_eq(inet_pton(AF_INET, ac->addr, &sin->sin_addr),
				 1);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(40000);
		ck_assert_int_eq(
			inet_pton(AF_INET6, ac->addr, &sin6->sin6_addr), 1);
		len = sizeof(*sin6);
	}
	memset(&p, 'X', sizeof(p));
	ck_assert_int_eq(peer_classify((struct sockaddr *)&ss, len, &p), 0);
	ck_assert_msg(memchr(p.addr, '\0', sizeof(p.addr)) != NULL,
		      "%s: addr not terminated", ac->addr);
	ck_assert_msg(strcmp(p.addr, ac->shown ? ac->shown : ac->addr) == 0,
		      "%s: addr \"%s\"", ac->addr, p.addr);
	ck_assert_msg(p.local == ac->local, "%s: local %d, want %d", ac->addr,
		      p.local, ac->local);
}
END_TEST

START_TEST(classify_unix)
{
	struct sockaddr_un su;
	struct peer p;

	/* The peer of an accepted Unix connection is usually unnamed:
	 * only the family is filled in. */
	memset(&su, 0, sizeof(su));
	su.sun_family = AF_UNIX;
	memset(&p, 'X', sizeof(p));
	ck_assert_int_eq(
		peer_classify((struct sockaddr *)&su, sizeof(sa_family_t), &p),
		0);
	ck_assert_str_eq(p.addr, "unix");
	ck_assert(p.local);

	strcpy(su.sun_path, "/run/client.sock");
	memset(&p, 'X', sizeof(p));
	ck_assert_int_eq(peer_classify((struct sockaddr *)&su, sizeof(su), &p),
			 0);
	ck_assert_str_eq(p.addr, "unix");
	ck_assert(p.local);
}
END_TEST

START_TEST(classify_unknown_family)
{
	struct sockaddr_storage ss;
	struct peer p;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_APPLETALK;
	ck_assert_int_eq(peer_classify((struct sockaddr *)&ss, sizeof(ss), &p),
			 -1);
	ss.ss_family = AF_UNSPEC;
	ck_assert_int_eq(peer_classify((struct sockaddr *)&ss, sizeof(ss), &p),
			 -1);
}
END_TEST

START_TEST(from_fd_pipe)
{
	int fds[2];
	struct peer p;

	ck_assert_int_eq(pipe(fds), 0);
	memset(&p, 'X', sizeof(p));
	peer_from_fd(fds[0], &p);
	ck_assert_str_eq(p.addr, "pipe");
	ck_assert(p.local);
	memset(&p, 'X', sizeof(p));
	peer_from_fd(fds[1], &p);
	ck_assert_str_eq(p.addr, "pipe");
	ck_assert(p.local);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

/* Anything that is not a socket (a file, /dev/null) is treated as the
 * pipe of a test harness or a local program. */
START_TEST(from_fd_not_a_socket)
{
	int fd = open("/dev/null", O_RDWR);
	struct peer p;

	ck_assert_int_ge(fd, 0);
	memset(&p, 'X', sizeof(p));
	peer_from_fd(fd, &p);
	ck_assert_str_eq(p.addr, "pipe");
	ck_assert(p.local);
	close(fd);
}
END_TEST

START_TEST(from_fd_socketpair)
{
	int sv[2];
	struct peer p;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(&p, 'X', sizeof(p));
	peer_from_fd(sv[0], &p);
	ck_assert_str_eq(p.addr, "unix");
	ck_assert(p.local);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* A real loopback TCP connection, as systemd or inetd would hand over. */
static void
tcp_loopback(int family, const char *want_addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int lfd, cfd, afd;
	struct peer p;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	lfd = socket(family, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&ss, len) < 0) {
		/* No IPv6 in this sandbox: nothing to test. */
		ck_assert_int_eq(family, AF_INET6);
		if (lfd >= 0)
			close(lfd);
		return;
	}
	ck_assert_int_eq(listen(lfd, 1), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&ss, &len), 0);
	cfd = socket(family, SOCK_STREAM, 0);
	ck_assert_int_ge(cfd, 0);
	ck_assert_int_eq(connect(cfd, (struct sockaddr *)&ss, len), 0);
	afd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(afd, 0);
	memset(&p, 'X', sizeof(p));
	peer_from_fd(afd, &p);
	ck_assert_str_eq(p.addr, want_addr);
	ck_assert(p.local);
	close(afd);
	close(cfd);
	close(lfd);
}

START_TEST(from_fd_tcp_loopback)
{
	tcp_loopback(AF_INET, "127.0.0.1");
	tcp_loopback(AF_INET6, "::1");
}
END_TEST

static Suite *
peer_suite(void)
{
	Suite *s = suite_create("peer");
	TCase *tc = tcase_create("classify");

	tcase_add_loop_test(tc, classify_table, 0,
			    sizeof(addr_cases) / sizeof(addr_cases[0]));
	tcase_add_test(tc, classify_unix);
	tcase_add_test(tc, classify_unknown_family);
	suite_add_tcase(s, tc);

	tc = tcase_create("from_fd");
	tcase_add_test(tc, from_fd_pipe);
	tcase_add_test(tc, from_fd_not_a_socket);
	tcase_add_test(tc, from_fd_socketpair);
	tcase_add_test(tc, from_fd_tcp_loopback);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(peer_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
