/* Moving the records of privsep_msg.h over the socketpair between the
 * pre-auth process and the monitor. Runs in both: unprivileged on one
 * side, as root on the other, so it only copies octets and descriptors
 * and leaves every judgement to the receiver. */
#include "privsep_msg.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
privsep_send(int sock, const void *rec, size_t len, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = {(void *)rec, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;
	ssize_t n;

	if (nfds > 0) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

ssize_t
privsep_recv(int sock, union msg *m, int *fds, int *nfds_r)
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = {m, sizeof(*m)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm;
	int got = 0, fd;
	ssize_t n;

	*nfds_r = 0;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (cm = CMSG_FIRSTHDR(&mh); n >= 0 && cm != NULL;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0;
		     i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(fd));
			if (fds != NULL && got < 2)
				fds[got++] = fd;
			else
				close(fd);
		}
	}
	if (n < 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		while (got > 0)
			close(fds[--got]);
		return -1;
	}
	*nfds_r = got;
	return n;
}
