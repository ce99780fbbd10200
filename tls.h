/* TLS for STLS (RFC 2595) and implicit TLS on port 995 (RFC 8314), with
 * OpenSSL: TLS 1.2 and newer, the system's cipher policy, no
 * renegotiation, close_notify at the end. */
#ifndef POP3D_TLS_H
#define POP3D_TLS_H

#include <stdbool.h>
#include <sys/types.h>

struct tls_conn;

/* Load the certificate chain and key (as root, before any privilege
 * change: the key may be readable by root only). Returns 0, or -1 after
 * logging why. */
int tls_setup(const char *cert_file, const char *key_file);

/* Free the context, the certificate and the private key (wiped), in a
 * process that will do no TLS handshake: the monitor once it has forked
 * the pre-auth process, before it becomes the user. tls_available() is
 * false afterwards. A connection from tls_accept keeps its own
 * reference. */
void tls_forget(void);

/* True once tls_setup succeeded: STLS or implicit TLS can be offered. */
bool tls_available(void);

/* Run the server handshake reading in_fd and writing out_fd (usually one
 * socket), waiting at most timeout_ms for each step. Returns the
 * connection, or NULL after logging why (the caller closes the
 * connection: no fallback to plaintext, R2595-13). */
struct tls_conn *tls_accept(int in_fd, int out_fd, int timeout_ms);

/* Like read(2)/write(2) on a non-blocking socket: > 0 octets, 0 at the
 * end of the stream (close_notify or EOF), -1 with errno EAGAIN when
 * tls_wants_write() tells which way to wait, -1 otherwise on errors. */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t n);
ssize_t tls_write(struct tls_conn *t, const void *buf, size_t n);

/* After EAGAIN: true if the operation waits for the socket to become
 * writable rather than readable. */
bool tls_wants_write(const struct tls_conn *t);

/* Decrypted octets waiting inside OpenSSL, which poll cannot see. */
bool tls_pending(const struct tls_conn *t);

/* "TLSv1.3" and the like, for logs. */
const char *tls_version(const struct tls_conn *t);

/* Send close_notify (R8314-04), once, and free the connection. */
void tls_close(struct tls_conn *t);

#endif
