/* After a login under TLS, the pre-auth process stays on as a relay:
 * TLS with the client on one side, plaintext with the session process
 * (which never links to OpenSSL state) on a socketpair on the other. */
#ifndef POP3D_RELAY_H
#define POP3D_RELAY_H

struct tls_conn;

/* Relay until the session closes its end and everything it sent has
 * reached the client, until the client is gone, or, once the session
 * has closed its end, until nothing moves for timeout_ms. The caller
 * then sends close_notify. */
void relay_run(struct tls_conn *tls, int in_fd, int out_fd, int sess_fd,
	       int timeout_ms);

#endif
