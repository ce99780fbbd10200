/* The two halves of systemd's socket activation and readiness protocol
 * that pop3d uses, without libsystemd (which, with the seven libraries it
 * brings, cost 0.7 ms of every start-up): the descriptors passed in
 * LISTEN_FDS/LISTEN_PID (sd_listen_fds(3)), what kind of socket one is,
 * and a state line to NOTIFY_SOCKET (sd_notify(3)). */
#ifndef POP3D_SDSOCK_H
#define POP3D_SDSOCK_H

#include <stdbool.h>

/* The first passed descriptor (SD_LISTEN_FDS_START). */
#define SDSOCK_FDS_START 3

/* How many descriptors systemd passed us: 0 if none (no LISTEN_PID, or
 * one naming another process), -1 if LISTEN_FDS or LISTEN_PID is not a
 * number. The passed descriptors are made close-on-exec and the
 * variables removed, so that nothing we start inherits them. */
int sdsock_listen_fds(void);

/* 1 if fd is a stream socket, listening or not as asked; 0 if not; -1 if
 * fd is not open. */
int sdsock_is_stream(int fd, bool listening);

/* Send state (e.g. "READY=1") to the service manager if NOTIFY_SOCKET
 * names one; quietly nothing otherwise. Returns 0, or -1 if sending
 * failed. */
int sdsock_notify(const char *state);

#endif
