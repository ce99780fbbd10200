/* The records between the pre-auth process and the monitor, apart so
 * that tests can forge them. Each travels as one SOCK_SEQPACKET datagram
 * of exactly its size; anything else is refused. */
#ifndef POP3D_PRIVSEP_MSG_H
#define POP3D_PRIVSEP_MSG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth.h"
#include "params.h"

enum msg_type {
	MSG_LOGIN = 0x706f7031,
	MSG_VERDICT,
	MSG_HANDOFF,
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

union msg {
	uint32_t type;
	struct msg_login login;
	struct msg_verdict verdict;
	struct msg_handoff handoff;
};

/* Judge a record the monitor received (len octets, nfds descriptors
 * attached): MSG_LOGIN or MSG_HANDOFF if it is well-formed and expected
 * now (a login before the verdict, the handoff after it), else 0. */
int privsep_check_record(const union msg *m, ssize_t len, int nfds,
			 bool logged_in);

#endif
