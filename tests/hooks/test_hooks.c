/* The test hooks of test_hooks.h, linked into build/pop3d-test only. */
#include "test_hooks.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "privsep_msg.h"

/* Offsets and sizes as name=value pairs: the test builds its records
 * from these, not from a copy of privsep_msg.h. */
static void
export_layout(void)
{
	char buf[512];

	snprintf(buf, sizeof(buf),
		 "login=%zu user=%zu authzid=%zu password=%zu method=%zu "
		 "tls=%zu field=%zu verdict=%zu handoff=%zu handoff_tls=%zu "
		 "handoff_len=%zu input=%zu input_size=%zu log=%zu "
		 "priority=%zu text=%zu text_size=%zu union=%zu type_login=%u "
		 "peer=%zu peer_family=%zu peer_addr=%zu",
		 sizeof(struct msg_login), offsetof(struct msg_login, req.user),
		 offsetof(struct msg_login, req.authzid),
		 offsetof(struct msg_login, req.password),
		 offsetof(struct msg_login, req.method),
		 offsetof(struct msg_login, req.tls),
		 sizeof(((struct auth_request *)0)->user),
		 sizeof(struct msg_verdict), sizeof(struct msg_handoff),
		 offsetof(struct msg_handoff, tls),
		 offsetof(struct msg_handoff, len),
		 offsetof(struct msg_handoff, input),
		 sizeof(((struct msg_handoff *)0)->input),
		 sizeof(struct msg_log), offsetof(struct msg_log, priority),
		 offsetof(struct msg_log, text),
		 sizeof(((struct msg_log *)0)->text), sizeof(union msg),
		 (unsigned)MSG_LOGIN, sizeof(struct msg_peer),
		 offsetof(struct msg_peer, family),
		 offsetof(struct msg_peer, addr));
	if (setenv("POP3D_TEST_LAYOUT", buf, 1) < 0)
		_exit(126);
}

void
test_hook_preauth(int sock)
{
	const char *prog = getenv("POP3D_TEST_PREAUTH");

	if (prog == NULL)
		return;
	if (sock == TEST_HOOK_RECORD_FD) {
		if (fcntl(sock, F_SETFD, 0) < 0)
			_exit(126);
	} else if (dup2(sock, TEST_HOOK_RECORD_FD) < 0) {
		_exit(126);
	}
	export_layout();
	/* The test's program is not pop3d: no fake root, users or PAM. */
	unsetenv("LD_PRELOAD");
	execl(prog, prog, (char *)NULL);
	_exit(127);
}

void
test_hook_session(void)
{
	gid_t groups[64];
	char list[512] = "";
	size_t len = 0;
	int n;

	if (getenv("POP3D_TEST_REPORT_IDS") == NULL)
		return;
	n = getgroups(64, groups);
	for (int i = 0; i < n && len < sizeof(list) - 16; i++)
		len += snprintf(list + len, sizeof(list) - len, "%s%lu",
				i ? "," : "", (unsigned long)groups[i]);
	log_msg(LOG_DEBUG, "test-hook: uid=%lu gid=%lu groups=%s ngroups=%d",
		(unsigned long)getuid(), (unsigned long)getgid(), list, n);
}
