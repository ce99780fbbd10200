/* The system-call loops and the clock, each written once (in the manner
 * of OpenSSH's atomicio.c): EINTR, short reads and CLOCK_MONOTONIC are
 * handled here and nowhere else. */
#ifndef POP3D_SYSUTIL_H
#define POP3D_SYSUTIL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* poll(2), resumed after a signal with the time that is left, so that a
 * stream of signals cannot stretch a bounded wait. A negative timeout
 * waits for ever. Returns as poll: > 0, 0 on timeout, -1 on an error. */
int sys_poll(struct pollfd *pfd, nfds_t nfds, int timeout_ms);

/* Make the process non-dumpable (no core file, /proc and ptrace closed
 * to processes of the same uid) and check that it is. Needed again
 * after every change of uid or gid: the kernel then resets the flag to
 * the fs.suid_dumpable sysctl, which may be 1. 0, or -1. */
int sys_undumpable(void);

/* Close every descriptor from 3 up but the n (at most 8) in keep: what a
 * parent, NSS or PAM left open must not follow a process into its
 * confinement or the user's session. 0, or -1 with errno. */
int sys_close_others(const int *keep, size_t n);

/* Milliseconds on CLOCK_MONOTONIC: timeouts and deadlines must not jump
 * when the wall clock is set. */
int64_t sys_now_ms(void);

/* Sleep for ms milliseconds, however many signals arrive meanwhile. */
void sys_sleep_ms(long ms);

/* pread(2) until n octets are read or the file ends, across short reads
 * and signals. Returns the count read (fewer than n only at the end of
 * the file), or -1 with errno set. */
ssize_t sys_pread_full(int fd, void *buf, size_t n, off_t at);

/* What tells a file from a later one made at the same name: its inode
 * number and its change time to the nanosecond. */
struct file_stamp {
	uint64_t ino;
	int64_t ctime_sec;
	uint32_t ctime_nsec;
};

/* lstat(2) path into *s. Returns 0, or -1 with errno set. */
int sys_lstat_stamp(const char *path, struct file_stamp *s);

bool sys_same_stamp(const struct file_stamp *a, const struct file_stamp *b);

/* Does name end in suffix, with something before it? */
bool sys_ends_with(const char *name, const char *suffix);

/* A function a dlopen'ed library provides, and where its address goes. */
struct sys_dlsym {
	const char *name;
	void **slot;
};

/* Look up each of syms in lib (a dlopen handle, or RTLD_DEFAULT) and
 * store it. All at once, so that a missing function shows at the first
 * use of the library, not in the middle of a login or a handshake.
 * Returns NULL, or the name of the first function not found. */
const char *sys_dlbind(void *lib, const struct sys_dlsym *syms, size_t n);

#endif
