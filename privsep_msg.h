/* What crosses the privilege boundary (design.md §2): the login request,
 * the verdict and the user it names, and the records that carry them
 * between the pre-auth process and the monitor. Nothing here runs PAM or
 * changes privileges (auth.h does, for the monitor alone), so this is
 * the one header both sides share. Each record travels as one
 * SOCK_SEQPACKET datagram of exactly its size; anything else is refused. */
#ifndef POP3D_PRIVSEP_MSG_H
#define POP3D_PRIVSEP_MSG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "params.h"

enum auth_verdict {
	AUTH_OK,
	AUTH_FAILED,	   /* wrong password: [AUTH] */
	AUTH_UNKNOWN_USER, /* PAM does not know the name: [AUTH] */
	AUTH_REFUSED,	   /* account locked, expired, or uid not allowed */
	AUTH_TEMPFAIL,	   /* PAM or system fault: [SYS/TEMP] */
	AUTH_PERMFAIL,	   /* configuration fault: [SYS/PERM] */
};

/* Whom a login made the session: filled by the monitor, never sent by
 * the pre-auth process. */
struct auth_user {
	char name[USER_NAME_MAX + 1]; /* the final PAM_USER */
	uid_t uid;
	gid_t gid;
	char home[PATH_MAX];
};

/* One login attempt, as the pre-auth process sends it to the monitor:
 * a fixed-size record with NUL-terminated fields, nothing to parse. */
struct auth_request {
	char user[AUTH_FIELD_MAX + 1]; /* USER name, or SASL authcid */
	char authzid[AUTH_FIELD_MAX + 1];
	char password[AUTH_FIELD_MAX + 1];
	char method[AUTH_METHOD_SIZE]; /* "USER", "PLAIN" or "LOGIN" */
	unsigned char tls;
};

enum msg_type {
	MSG_LOGIN = 0x706f7031,
	MSG_VERDICT,
	MSG_HANDOFF,
	MSG_LOG,
	MSG_PEER,
};

struct msg_login {
	uint32_t type;
	struct auth_request req;
};

struct msg_verdict {
	uint32_t type;
	int32_t verdict;
};

struct msg_handoff {
	uint32_t type;
	uint32_t tls;
	uint32_t len; /* octets of input read ahead */
	char input[INPUT_BUFFER_SIZE];
};

/* A log line of the pre-auth process (design.md §7): the monitor logs it
 * bounded, sanitised and prefixed, at a priority from LOG_CRIT to
 * LOG_DEBUG. */
struct msg_log {
	uint32_t type;
	int32_t priority;
	char text[PREAUTH_LOG_TEXT_MAX]; /* NUL-terminated */
};

/* The client a PROXY header named (design.md §13): sent once, before
 * anything else, by the pre-auth process of a --proxy-from connection.
 * family AF_INET (4 octets of addr used) or AF_INET6, or AF_UNSPEC for
 * the balancer's own connection (a health check: LOCAL, UNKNOWN). The
 * monitor answers with MSG_VERDICT: AUTH_OK to go on, anything else to
 * close (--max-per-source). */
struct msg_peer {
	uint32_t type;
	int32_t family;
	unsigned char addr[16];
};

union msg {
	uint32_t type;
	struct msg_login login;
	struct msg_verdict verdict;
	struct msg_handoff handoff;
	struct msg_log log;
	struct msg_peer peer;
};

/* Send one record of len octets, with nfds (0 to 2) descriptors
 * attached. Returns 0, or -1 if it did not go out whole. */
int privsep_send(int sock, const void *rec, size_t len, const int *fds,
		 int nfds);

/* Receive one record into m; returns its length, 0 at EOF, -1 on error
 * or a truncated record. Passed descriptors go to fds (at most 2), the
 * count to *nfds_r; any beyond that are closed. */
ssize_t privsep_recv(int sock, union msg *m, int *fds, int *nfds_r);

/* Judge a record the monitor received (len octets, nfds descriptors
 * attached): MSG_LOGIN, MSG_HANDOFF, MSG_LOG or MSG_PEER if it is
 * well-formed and expected now (a login or a peer before the verdict,
 * the handoff after it, a log line at any time), else 0. Whether a peer
 * record may come at all (a --proxy-from connection, once, first) is the
 * monitor's own state, judged in await_login. Lives
 * in monitor.c, where it runs as root; declared here, beside the records,
 * so that the tests and fuzzers of either side can hold the pre-auth
 * process to it. */
int privsep_check_record(const union msg *m, ssize_t len, int nfds,
			 bool logged_in);

#endif
