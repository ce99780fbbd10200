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
	/* The address as octets (AF_INET: 4, AF_INET6: 16; AF_UNSPEC for
	 * pipes, Unix sockets and anything unknown): for --proxy-from. */
	int family;
	unsigned char bin[16];
	/* From a --proxy-from balancer: a PROXY header comes first, and
	 * the address in it replaces this one (design.md §13). */
	bool proxied;
};

/* One network of --proxy-from. */
struct peer_net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
};

/* Describe a socket peer: "unix" or the numeric address. Local means
 * AF_UNIX, 127.0.0.0/8, ::1 or an IPv4-mapped loopback address. Returns 0,
 * or -1 for an address family we do not know (then remote). */
int peer_classify(const struct sockaddr *sa, socklen_t len, struct peer *p);

/* Describe the peer of fd: a socket's, or "pipe" (local) for anything
 * that is not a socket, as when tests or inetd-style wrappers pipe the
 * session in. */
void peer_from_fd(int fd, struct peer *p);

/* Describe a client named by address octets (family AF_INET, 4 octets,
 * or AF_INET6, 16), as peer_classify would its socket address. */
void peer_from_octets(int family, const unsigned char *addr, struct peer *p);

/* Parse a comma-separated list of networks ("192.0.2.1",
 * "10.0.0.0/8", "2001:db8::/32"; a bare address is a host) into nets,
 * at most max. Returns the count, or -1 with *why_r naming the fault:
 * a malformed address or prefix, host bits set, too many. */
int peer_parse_nets(const char *list, struct peer_net *nets, unsigned max,
		    const char **why_r);

/* Whether p's address lies in one of the n networks. An IPv4-mapped IPv6
 * peer is matched as IPv4. */
bool peer_in_nets(const struct peer *p, const struct peer_net *nets,
		  unsigned n);

#endif
