/* The Accept=no listener: systemd (or systemd-socket-activate) passes a
 * listening socket; we accept, and run every connection in a process of
 * its own, exactly as inetd or Accept=yes would start it. */
#ifndef POP3D_SERVER_H
#define POP3D_SERVER_H

struct server_limits {
	unsigned max_children;
	unsigned max_per_source;
};

/* Serve listen_fd until SIGTERM, SIGINT or SIGHUP. Each connection gets
 * a fork, then an exec of this program with argv and the connection on
 * fd 0 and 1, so every session starts from a fresh image (new address
 * space layout, nothing inherited but the configuration). Returns the
 * exit status for main. */
int server_run(int listen_fd, const struct server_limits *limits, char **argv);

#endif
