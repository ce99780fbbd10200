/* The POP3 protocol engine (RFC 1939, RFC 2449, RFC 2595, RFC 3206,
 * RFC 5034). It runs in two processes: AUTHORIZATION in the unprivileged
 * pre-auth process, which asks the monitor for a verdict on credentials
 * through a hook and never sees PAM or the mail; TRANSACTION and UPDATE
 * in the session process, which runs as the user. */
#ifndef POP3D_SESSION_H
#define POP3D_SESSION_H

#include <stdbool.h>

#include "config.h"
#include "netio.h"
#include "peer.h"
#include "privsep_msg.h"

struct session_hooks {
	/* Decide on credentials; req->password is wiped on return. On
	 * AUTH_OK the caller hands the connection to the session process,
	 * which sends the reply to the login. */
	enum auth_verdict (*login)(void *ctx, struct auth_request *req);
	void *ctx;
};

enum session_end { SESSION_ENDED, SESSION_LOGGED_IN };

/* Greet (after the TLS handshake with --tls-implicit) and serve
 * AUTHORIZATION until a login succeeds or the session ends. On
 * SESSION_LOGGED_IN, io still holds any input read ahead, and *tls_r
 * tells whether TLS is active on io. */
enum session_end session_authorize(const struct config *cfg,
				   const struct peer *peer, struct netio *io,
				   const struct session_hooks *hooks,
				   bool *tls_r);

/* After a successful login, as the user: load the maildrop, answer the
 * login, serve TRANSACTION and UPDATE, log the outcome. */
void session_transact(const struct config *cfg, const struct peer *peer,
		      struct netio *io, const struct auth_user *who,
		      const char *method, bool tls);

#endif
