/* Who is on the other end of the connection: the address for logs and
 * PAM_RHOST, and whether the link is local (DEC-24). */
#ifndef POP3D_PEER_H
#define POP3D_PEER_H

#include <stdbool.h>
#include <sys/socket.h>

struct peer {
	/* "pipe", "unix", or the numeric address; also PAM_RHOST. */
	char addr[64];
	/* A pipe, a Unix socket or a loopback address: cleartext passwords
	 * cannot be sniffed there (DEC-24). */
	bool local;
};

/* Describe a socket peer: "unix" or the numeric address. Local means
 * AF_UNIX, 127.0.0.0/8, ::1 or an IPv4-mapped loopback address. Returns 0,
 * or -1 for an address family we do not know (then remote). */
int peer_classify(const struct sockaddr *sa, socklen_t len, struct peer *p);

/* Describe the peer of fd: a socket's, or "pipe" (local) for anything
 * that is not a socket, as when tests or inetd-style wrappers pipe the
 * session in. */
void peer_from_fd(int fd, struct peer *p);

#endif
