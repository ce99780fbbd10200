/* Serve one connection as a root monitor and an unprivileged, chrooted
 * pre-auth process (design.md §2); after login the monitor becomes the
 * user's session. Not started as root: the same processes, minus the
 * uid changes and the chroot. */
#ifndef POP3D_PRIVSEP_H
#define POP3D_PRIVSEP_H

#include "config.h"
#include "peer.h"

/* Serve the connection on in_fd/out_fd. Returns main's exit status. */
int privsep_serve(const struct config *cfg, int in_fd, int out_fd);

/* Check, once at startup, that the pre-auth chroot directory is usable:
 * create it if missing (root-owned, mode 0555), refuse one that others
 * could write to. Exits on failure. */
void privsep_check_dir(const struct config *cfg);

#endif
