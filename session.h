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

/* What AUTHORIZATION hands on to TRANSACTION with the connection; it
 * crosses from the pre-auth process to the session in MSG_HANDOFF. */
struct session_mode {
	bool tls;      /* TLS is active on the connection */
	bool utf8;     /* the client sent UTF8 (R6856-02) */
	unsigned lang; /* the language LANG chose (lang.h), LANG_DEFAULT */
};

/* The greeting line, CRLF included, into buf; returns its length (0 if
 * cap is too small). A constant: the monitor writes it itself, before
 * the pre-auth fork, where nothing has to come first (design.md §2). */
size_t session_greeting(char *buf, size_t cap);

/* Greet, unless greeted is true (the monitor has: never twice), after
 * the TLS handshake with --tls-implicit, and serve AUTHORIZATION until a
 * login succeeds or the session ends. On SESSION_LOGGED_IN, io still
 * holds any input read ahead, and *mode_r what the session must carry
 * on with. */
enum session_end session_authorize(const struct config *cfg,
				   const struct peer *peer, struct netio *io,
				   const struct session_hooks *hooks,
				   bool greeted, struct session_mode *mode_r);

/* After a successful login, as the user: load the maildrop, answer the
 * login, serve TRANSACTION and UPDATE, log the outcome. */
void session_transact(const struct config *cfg, const struct peer *peer,
		      struct netio *io, const struct auth_user *who,
		      const char *method, const struct session_mode *mode);

#endif
