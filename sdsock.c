#include "sdsock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A whole decimal number in [0, INT_MAX]: -1 if s is anything else. */
static int
parse_count(const char *s)
{
	char *end;
	long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > INT_MAX)
		return -1;
	return (int)v;
}

int
sdsock_listen_fds(void)
{
	const char *pid_s = getenv("LISTEN_PID");
	int pid, n = 0, flags;

	if (pid_s == NULL)
		return 0;
	pid = parse_count(pid_s);
	if (pid < 0)
		n = -1;
	else if (pid == getpid())
		n = parse_count(getenv("LISTEN_FDS"));
	/* Meant for another process (a parent that did not clear them):
	 * none for us. */
	for (int fd = SDSOCK_FDS_START; n > 0 && fd < SDSOCK_FDS_START + n;
	     fd++) {
		flags = fcntl(fd, F_GETFD);
		if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
			n = -1;
			break;
		}
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return n;
}

int
sdsock_is_stream(int fd, bool listening)
{
	struct stat st;
	int type = 0, acc = 0;
	socklen_t len = sizeof(type);

	if (fstat(fd, &st) < 0)
		return -1;
	if (!S_ISSOCK(st.st_mode))
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    type != SOCK_STREAM)
		return 0;
	len = sizeof(acc);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
		return 0;
	return (acc != 0) == listening;
}

int
sdsock_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t plen;
	socklen_t salen;
	ssize_t n;
	int fd;

	if (path == NULL || path[0] == '\0')
		return 0;
	/* A path, or "@name" for the abstract namespace; nothing else
	 * (vsock) is used where pop3d runs. */
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = offsetof(struct sockaddr_un, sun_path) + plen +
		(path[0] == '@' ? 0 : 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	do
		n = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
			   (struct sockaddr *)&sa, salen);
	while (n < 0 && errno == EINTR);
	close(fd);
	return n < 0 ? -1 : 0;
}
