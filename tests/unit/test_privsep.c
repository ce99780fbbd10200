/* Unit tests for the monitor's judgement of records from the pre-auth
 * process (privsep_check_record): the pre-auth process may be
 * compromised, so every malformed, oversized, truncated or unexpected
 * record must be refused. What the monitor then does with such a process
 * is tested against the real monitor in
 * tests/integration/test_hostile_preauth.py. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>

#include "privsep_msg.h"

static union msg m;

static void
good_login(void)
{
	memset(&m, 0, sizeof(m));
	m.login.type = MSG_LOGIN;
	strcpy(m.login.req.user, "alice");
	strcpy(m.login.req.password, "secret");
	strcpy(m.login.req.method, "USER");
}

static void
good_handoff(void)
{
	memset(&m, 0, sizeof(m));
	m.handoff.type = MSG_HANDOFF;
	m.handoff.len = 12;
}

START_TEST(login_accepted)
{
	good_login();
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 0, false),
			 MSG_LOGIN);
	strcpy(m.login.req.method, "PLAIN");
	m.login.req.tls = 1;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 0, false),
			 MSG_LOGIN);
}
END_TEST

START_TEST(login_refused)
{
	/* Truncated, oversized, with descriptors, or after the verdict. */
	good_login();
	ck_assert_int_eq(
		privsep_check_record(&m, sizeof(m.login) - 1, 0, false), 0);
	ck_assert_int_eq(
		privsep_check_record(&m, sizeof(m.login) + 1, 0, false), 0);
	ck_assert_int_eq(privsep_check_record(&m, 2, 0, false), 0);
	ck_assert_int_eq(privsep_check_record(&m, 0, 0, false), 0);
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 1, false),
			 0);
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 0, true), 0);
	/* Fields without their NUL. */
	good_login();
	memset(m.login.req.user, 'a', sizeof(m.login.req.user));
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 0, false),
			 0);
	good_login();
	memset(m.login.req.password, 'a', sizeof(m.login.req.password));
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 0, false),
			 0);
	good_login();
	memset(m.login.req.authzid, 'a', sizeof(m.login.req.authzid));
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 0, false),
			 0);
	good_login();
	memset(m.login.req.method, 'A', sizeof(m.login.req.method));
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 0, false),
			 0);
	/* Values out of range. */
	good_login();
	m.login.req.user[0] = '\0';
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 0, false),
			 0);
	good_login();
	strcpy(m.login.req.method, "APOP");
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 0, false),
			 0);
	good_login();
	m.login.req.tls = 2;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 0, false),
			 0);
	good_login();
	m.login.type = MSG_VERDICT;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.login), 0, false),
			 0);
}
END_TEST

START_TEST(handoff_accepted)
{
	good_handoff();
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.handoff), 2, true),
			 MSG_HANDOFF);
	m.handoff.len = sizeof(m.handoff.input);
	m.handoff.tls = 1;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.handoff), 2, true),
			 MSG_HANDOFF);
}
END_TEST

START_TEST(handoff_refused)
{
	good_handoff();
	/* Before a successful login: never. */
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.handoff), 2, false),
			 0);
	ck_assert_int_eq(
		privsep_check_record(&m, sizeof(m.handoff) - 1, 2, true), 0);
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.handoff), 0, true),
			 0);
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.handoff), 1, true),
			 0);
	m.handoff.len = sizeof(m.handoff.input) + 1;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.handoff), 2, true),
			 0);
	good_handoff();
	m.handoff.tls = 7;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.handoff), 2, true),
			 0);
}
END_TEST

/* design.md §13: the client a PROXY header named, before the verdict. */
START_TEST(peer_judged)
{
	static const int ok[] = {AF_INET, AF_INET6, AF_UNSPEC};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		memset(&m, 0, sizeof(m));
		m.peer.type = MSG_PEER;
		m.peer.family = ok[i];
		ck_assert_int_eq(
			privsep_check_record(&m, sizeof(m.peer), 0, false),
			MSG_PEER);
		/* Not after a login, not with descriptors, not cut. */
		ck_assert_int_eq(
			privsep_check_record(&m, sizeof(m.peer), 0, true), 0);
		ck_assert_int_eq(
			privsep_check_record(&m, sizeof(m.peer), 1, false), 0);
		ck_assert_int_eq(
			privsep_check_record(&m, sizeof(m.peer) - 1, 0, false),
			0);
		ck_assert_int_eq(
			privsep_check_record(&m, sizeof(m.peer) + 1, 0, false),
			0);
	}
	m.peer.family = AF_UNIX;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.peer), 0, false), 0);
	m.peer.family = -1;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.peer), 0, false), 0);
}
END_TEST

static void
good_log(void)
{
	memset(&m, 0, sizeof(m));
	m.log.type = MSG_LOG;
	m.log.priority = LOG_INFO;
	strcpy(m.log.text, "logout: user=- peer=pipe reason=QUIT");
}

START_TEST(log_accepted)
{
	/* Before and after the verdict, at LOG_CRIT (fatal) to LOG_DEBUG. */
	good_log();
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.log), 0, false),
			 MSG_LOG);
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.log), 0, true),
			 MSG_LOG);
	m.log.priority = LOG_CRIT;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.log), 0, false),
			 MSG_LOG);
	m.log.priority = LOG_DEBUG;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.log), 0, false),
			 MSG_LOG);
}
END_TEST

START_TEST(log_refused)
{
	good_log();
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.log) - 1, 0, false),
			 0);
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.log) + 1, 0, false),
			 0);
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.log), 1, false), 0);
	/* The alerts above LOG_CRIT are not the pre-auth process's to
	 * raise; nor is a priority syslog does not know. */
	m.log.priority = LOG_ALERT;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.log), 0, false), 0);
	m.log.priority = LOG_DEBUG + 1;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.log), 0, false), 0);
	m.log.priority = -1;
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.log), 0, false), 0);
	/* A text without its NUL. */
	good_log();
	memset(m.log.text, 'x', sizeof(m.log.text));
	ck_assert_int_eq(privsep_check_record(&m, sizeof(m.log), 0, false), 0);
}
END_TEST

static Suite *
privsep_suite(void)
{
	Suite *s = suite_create("privsep");
	TCase *tc = tcase_create("records");

	tcase_add_test(tc, login_accepted);
	tcase_add_test(tc, login_refused);
	tcase_add_test(tc, handoff_accepted);
	tcase_add_test(tc, handoff_refused);
	tcase_add_test(tc, log_accepted);
	tcase_add_test(tc, log_refused);
	tcase_add_test(tc, peer_judged);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(privsep_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
