/* The pre-auth process (preauth.c): everything a client reaches before
 * a login, unprivileged and chrooted. The monitor forks it. */
#ifndef POP3D_PREAUTH_H
#define POP3D_PREAUTH_H

#include <stdbool.h>

#include "config.h"
#include "peer.h"

/* In the child just forked by the monitor, still root: confine, then
 * serve AUTHORIZATION on in_fd/out_fd (greeting first unless the monitor
 * has: greeted), asking the monitor on sock for every verdict; after a
 * login hand the connection over (and relay it under TLS). Never
 * returns. */
void preauth_run(const struct config *cfg, const struct peer *peer, int in_fd,
		 int out_fd, int sock, bool greeted) __attribute__((noreturn));

#endif
