/* Unit tests for pamload.c, libpam loaded at the first login: nothing of
 * it is mapped before (a connection that never logs in pays nothing for
 * it), the first PAM call loads it, and calls reach libpam with their
 * arguments intact. */
#include <check.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pamload.h"
#include "spool_helpers.h"

static int
no_conv(int n, const struct pam_message **msg, struct pam_response **resp,
	void *data)
{
	return PAM_CONV_ERR;
}

START_TEST(loaded_at_first_use)
{
	struct pam_conv conv = {no_conv, NULL};
	pam_handle_t *pamh = NULL;
	const void *item = NULL;

	ck_assert(!pamload_loaded());
	ck_assert(!lib_mapped("libpam.so"));
	ck_assert_int_eq(pam_start("pop3d-unit-test", "alice", &conv, &pamh),
			 PAM_SUCCESS);
	ck_assert(pamload_loaded());
	ck_assert(lib_mapped("libpam.so"));
	/* What goes in comes back out: the arguments arrive intact. */
	ck_assert_int_eq(pam_set_item(pamh, PAM_RHOST, "192.0.2.7"),
			 PAM_SUCCESS);
	ck_assert_int_eq(pam_get_item(pamh, PAM_RHOST, &item), PAM_SUCCESS);
	ck_assert_str_eq(item, "192.0.2.7");
	ck_assert_int_eq(pam_get_item(pamh, PAM_USER, &item), PAM_SUCCESS);
	ck_assert_str_eq(item, "alice");
	ck_assert_ptr_nonnull(pam_strerror(pamh, PAM_AUTH_ERR));
	ck_assert_int_eq(pam_end(pamh, PAM_SUCCESS), PAM_SUCCESS);
}
END_TEST

static Suite *
pamload_suite(void)
{
	Suite *s = suite_create("pamload");
	TCase *tc = tcase_create("load");

	tcase_add_test(tc, loaded_at_first_use);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(pamload_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
