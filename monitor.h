/* The monitor (monitor.c): the root side of every connection, and the
 * root work done once at startup. */
#ifndef POP3D_MONITOR_H
#define POP3D_MONITOR_H

#include "config.h"

/* Once per process, as root, before anything is served: no core dumps,
 * the TLS key loaded (it may be root's alone), the pre-auth chroot
 * directory made or checked. Exits on failure. */
void monitor_init(const struct config *cfg);

/* Serve the connection on in_fd/out_fd: fork the pre-auth process,
 * judge its logins, then become the user and run the session. Returns
 * main's exit status. */
int monitor_serve(const struct config *cfg, int in_fd, int out_fd);

#endif
