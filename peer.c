#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
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
	p->proxied = false;
	p->family = AF_UNSPEC;
	memset(p->bin, 0, sizeof(p->bin));
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
		p->family = AF_INET;
		memcpy(p->bin, &sin->sin_addr, 4);
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
			p->family = AF_INET;
			memcpy(p->bin, &v4, 4);
			return 0;
		}
		inet_ntop(AF_INET6, &sin6->sin6_addr, p->addr, sizeof(p->addr));
		p->local = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
		p->family = AF_INET6;
		memcpy(p->bin, &sin6->sin6_addr, 16);
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
	p->family = AF_UNSPEC;
	memset(p->bin, 0, sizeof(p->bin));
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

void
peer_from_octets(int family, const unsigned char *addr, struct peer *p)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;

	if (family == AF_INET) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		memcpy(&sin.sin_addr, addr, 4);
		peer_classify((struct sockaddr *)&sin, sizeof(sin), p);
	} else {
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		memcpy(&sin6.sin6_addr, addr, 16);
		peer_classify((struct sockaddr *)&sin6, sizeof(sin6), p);
	}
}

/* One "address[/bits]" of --proxy-from, len octets at s. */
static const char *
parse_net(const char *s, size_t len, struct peer_net *net)
{
	char text[INET6_ADDRSTRLEN + 5], *slash;
	unsigned max, bits = 0;
	size_t i;

	if (len == 0 || len >= sizeof(text))
		return "empty or overlong entry";
	memcpy(text, s, len);
	text[len] = '\0';
	slash = strchr(text, '/');
	if (slash != NULL)
		*slash++ = '\0';
	memset(net, 0, sizeof(*net));
	if (inet_pton(AF_INET, text, net->addr) == 1)
		net->family = AF_INET;
	else if (inet_pton(AF_INET6, text, net->addr) == 1)
		net->family = AF_INET6;
	else
		return "not an IPv4 or IPv6 address";
	max = net->family == AF_INET ? 32 : 128;
	if (slash == NULL) {
		bits = max;
	} else {
		/* Digits only, no leading zero, no sign: strtoul would take
		 * " 8" and "+8" and "08". */
		if (*slash == '\0' || strlen(slash) > 3 ||
		    (slash[0] == '0' && slash[1] != '\0'))
			return "malformed prefix length";
		for (i = 0; slash[i] != '\0'; i++) {
			if (slash[i] < '0' || slash[i] > '9')
				return "malformed prefix length";
			bits = bits * 10 + (unsigned)(slash[i] - '0');
		}
		if (bits > max)
			return "prefix length too long for the address";
	}
	net->bits = bits;
	/* Host bits set ("10.0.0.1/8") are a typo for something else. */
	for (i = bits; i < max; i++)
		if (net->addr[i / 8] & (0x80 >> (i % 8)))
			return "address has bits set beyond the prefix";
	return NULL;
}

int
peer_parse_nets(const char *list, struct peer_net *nets, unsigned max,
		const char **why_r)
{
	const char *s = list, *comma;
	unsigned n = 0;
	size_t len;

	for (;;) {
		comma = strchr(s, ',');
		len = comma != NULL ? (size_t)(comma - s) : strlen(s);
		if (n == max) {
			*why_r = "too many networks";
			return -1;
		}
		if ((*why_r = parse_net(s, len, &nets[n])) != NULL)
			return -1;
		n++;
		if (comma == NULL)
			return (int)n;
		s = comma + 1;
	}
}

static bool
net_contains(const struct peer_net *net, const unsigned char *addr)
{
	unsigned whole = net->bits / 8, rest = net->bits % 8;

	if (memcmp(net->addr, addr, whole) != 0)
		return false;
	return rest == 0 || ((net->addr[whole] ^ addr[whole]) &
			     (0xff << (8 - rest)) & 0xff) == 0;
}

bool
peer_in_nets(const struct peer *p, const struct peer_net *nets, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (nets[i].family == p->family &&
		    net_contains(&nets[i], p->bin))
			return true;
	return false;
}
