/* The Accept=no listener: systemd (or systemd-socket-activate) passes a
 * listening socket; we accept, and run every connection in a process of
 * its own, exactly as inetd or Accept=yes would start it. */
#ifndef POP3D_SERVER_H
#define POP3D_SERVER_H

#include "peer.h"

struct server_limits {
	unsigned max_children;
	unsigned max_per_source;
	/* --proxy-from: connections from these are counted by the client
	 * their PROXY header names, once it is known (design.md §13). */
	const struct peer_net *proxy_from;
	unsigned n_proxy_from;
};

/* Serve listen_fd until SIGTERM, SIGINT or SIGHUP. Each connection gets
 * a fork, then an exec of this program with argv and the connection on
 * fd 0 and 1, so every session starts from a fresh image (new address
 * space layout, nothing inherited but the configuration). Returns the
 * exit status for main. */
int server_run(int listen_fd, const struct server_limits *limits, char **argv);

/* In a session the listener started for a --proxy-from connection: take
 * the descriptor it passed (POP3D_SOURCE_FD), on which the monitor tells
 * it the real client. Called once in main; without one, nothing. */
void server_take_channel(void);

/* Close that descriptor: before the pre-auth process runs, and once the
 * claim is made. */
void server_forget_channel(void);

/* Ask the listener whether client p may have one more session
 * (--max-per-source); it then counts this session as p's. Returns 0 yes
 * (or no listener to ask), -1 no (the listener logs it). */
int server_claim_source(const struct peer *p);

#endif
