#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

static bool
ipv4_loopback(const struct in_addr *a)
{
	return (ntohl(a->s_addr) >> 24) == 127;
}

int
peer_classify(const struct sockaddr *sa, socklen_t len, struct peer *p)
{
	const struct sockaddr_in *sin = (const void *)sa;
	const struct sockaddr_in6 *sin6 = (const void *)sa;
	struct in_addr v4;

	p->local = false;
	snprintf(p->addr, sizeof(p->addr), "unknown");
	if (len < (socklen_t)sizeof(sa_family_t))
		return -1;
	switch (sa->sa_family) {
	case AF_UNIX:
		snprintf(p->addr, sizeof(p->addr), "unix");
		p->local = true;
		return 0;
	case AF_INET:
		if (len < (socklen_t)sizeof(*sin))
			return -1;
		inet_ntop(AF_INET, &sin->sin_addr, p->addr, sizeof(p->addr));
		p->local = ipv4_loopback(&sin->sin_addr);
		return 0;
	case AF_INET6:
		if (len < (socklen_t)sizeof(*sin6))
			return -1;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			/* An IPv4 client of a dual-stack socket (systemd's
			 * ListenStream=110): logs, PAM_RHOST and fail2ban's
			 * IPv4 rules know it as a.b.c.d, not ::ffff:a.b.c.d. */
			memcpy(&v4, &sin6->sin6_addr.s6_addr[12], sizeof(v4));
			inet_ntop(AF_INET, &v4, p->addr, sizeof(p->addr));
			p->local = ipv4_loopback(&v4);
			return 0;
		}
		inet_ntop(AF_INET6, &sin6->sin6_addr, p->addr, sizeof(p->addr));
		p->local = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
		return 0;
	default:
		return -1;
	}
}

void
peer_from_fd(int fd, struct peer *p)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
		peer_classify((struct sockaddr *)&ss, len, p);
		return;
	}
	if (errno == ENOTSOCK) {
		snprintf(p->addr, sizeof(p->addr), "pipe");
		p->local = true;
		return;
	}
	/* Anything else (a TCP peer already gone: ENOTCONN) is treated as
	 * remote: being wrong that way only refuses a cleartext login. */
	snprintf(p->addr, sizeof(p->addr), "unknown");
	p->local = false;
}
