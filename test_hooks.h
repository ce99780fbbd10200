/* Test hooks: what the tests need to reach inside a connection, compiled
 * into build/pop3d-test alone (make defines POP3D_TEST_HOOKS for
 * monitor.c there and links tests/hooks/test_hooks.c). In pop3d itself
 * they are empty and vanish: the installed binary has no hidden switch
 * (tests/integration/test_hostile_preauth.py checks its strings). */
#ifndef POP3D_TEST_HOOKS_H
#define POP3D_TEST_HOOKS_H

/* The descriptor on which a program run in place of the pre-auth process
 * finds the record socket. */
#define TEST_HOOK_RECORD_FD 3

#ifdef POP3D_TEST_HOOKS
/* In the pre-auth child, before preauth_run: if POP3D_TEST_PREAUTH names
 * a program, exec it with the client on 0/1 and the record socket sock on
 * TEST_HOOK_RECORD_FD, the records' layout in POP3D_TEST_LAYOUT: a test
 * plays a compromised pre-auth process against the real monitor. */
void test_hook_preauth(int sock);

/* Right after the privilege drop: if POP3D_TEST_REPORT_IDS is set, log
 * the ids the session has (getgroups included, which uid_wrapper
 * emulates where /proc cannot show it). */
void test_hook_session(void);
#else
static inline void
test_hook_preauth(int sock)
{
	(void)sock;
}

static inline void
test_hook_session(void)
{
}
#endif

#endif
