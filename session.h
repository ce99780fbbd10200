/* The POP3 protocol engine: AUTHORIZATION, TRANSACTION and UPDATE
 * (RFC 1939, RFC 2449, RFC 3206) over one buffered connection. */
#ifndef POP3D_SESSION_H
#define POP3D_SESSION_H

#include "netio.h"
#include "pop3d.h"

/* Greet, serve commands until QUIT, EOF, timeout or a limit, log the
 * outcome. Returns when the connection is done. */
void session_run(const struct config *cfg, const struct peer *peer,
		 struct netio *io);

#endif
