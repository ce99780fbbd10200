/* The PROXY protocol header (HAProxy's doc/proxy-protocol.txt, versions 1
 * and 2) that a load balancer listed in --proxy-from sends before any
 * POP3 byte, naming the client it relays. Parsed in the pre-auth process
 * (design.md §2, §13): the header is untrusted input until it has passed
 * proxy_parse, and even then it only names an address. */
#ifndef POP3D_PROXYPROTO_H
#define POP3D_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>

enum proxy_status {
	PROXY_BAD = -1, /* not a valid header: h->why says why */
	PROXY_MORE = 0, /* a valid start: read up to *need_r octets */
	PROXY_DONE = 1, /* a whole valid header, exactly len octets */
};

enum proxy_command {
	/* The balancer's own connection (a health check): v2 LOCAL, v1
	 * UNKNOWN. The real endpoints stand (PROXY-04, PROXY-09). */
	PROXY_CMD_LOCAL,
	/* A relayed client: src is its address (family AF_INET or
	 * AF_INET6, the octets in network order). */
	PROXY_CMD_PROXY,
};

struct proxy_header {
	int version; /* 1 or 2 */
	enum proxy_command command;
	int family;	       /* AF_INET, AF_INET6; AF_UNSPEC for LOCAL */
	unsigned char src[16]; /* 4 octets used for AF_INET */
	unsigned char dst[16];
	uint16_t src_port, dst_port;
	size_t len;	 /* octets of the header, with PROXY_DONE */
	const char *why; /* with PROXY_BAD: a static reason */
};

/* Judge the first len octets of a connection (len <= PROXY_HEADER_MAX).
 * PROXY_MORE: they are a valid beginning, and *need_r (> len, at most
 * PROXY_HEADER_MAX) octets must be there before the next call; reading
 * exactly that many never takes an octet past the header. PROXY_DONE:
 * buf[0..len) is one whole header, described in *h. PROXY_BAD: refuse
 * the connection (h->why). Pure: no I/O, no allocation. */
enum proxy_status proxy_parse(const unsigned char *buf, size_t len,
			      size_t *need_r, struct proxy_header *h);

/* Read one header from fd (a socket or a pipe, blocking or not), never
 * an octet past it, within timeout_ms. Returns 0 with *h filled, or -1
 * with h->why set (a bad header, a timeout, the end of input, an error). */
int proxy_read(int fd, int timeout_ms, struct proxy_header *h);

/* Whether the octets waiting on a socket (without taking them) start like
 * a PROXY header: for connections that must not send one. 1 yes, 0 no or
 * nothing there yet or not a socket. */
int proxy_sniff(int fd);

#endif
