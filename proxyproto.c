/* The PROXY protocol header, versions 1 and 2, as HAProxy's
 * doc/proxy-protocol.txt defines it (requirement IDs PROXY-xx in
 * docs/rfc-checklist.md). The parser judges a prefix of the connection
 * and says how much more it may read, so the reader never takes an octet
 * of what follows (a POP3 command, a TLS ClientHello). */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "params.h"
#include "sysutil.h"

/* PROXY-06: the v2 signature; its NUL and CRLFs make it no text line. */
static const unsigned char v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
					 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
#define V2_FIXED 16
/* The shortest v1 line, "PROXY UNKNOWN\r\n": reading this much first
 * never passes the end of a v1 line, nor of a v2 header (16 or more). */
#define V1_SHORTEST 15

static enum proxy_status
bad(struct proxy_header *h, const char *why)
{
	h->why = why;
	return PROXY_BAD;
}

/* A decimal number with no sign, no leading zero and at most max:
 * PROXY-03 forbids leading zeroes (no octal confusion). */
static bool
decimal(const char *s, size_t n, unsigned max, unsigned *v)
{
	unsigned x = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (unsigned)(s[i] - '0');
	}
	if (x > max)
		return false;
	*v = x;
	return true;
}

/* PROXY-03: exactly four decimal octets, one dot between each. */
static bool
v1_ipv4(const char *s, size_t n, unsigned char out[16])
{
	size_t start = 0, part = 0;
	unsigned v;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		if (part == 4 || !decimal(s + start, i - start, 255, &v))
			return false;
		out[part++] = (unsigned char)v;
		start = i + 1;
	}
	return part == 4;
}

/* PROXY-03: hex groups and one "::" at most; inet_pton also takes a
 * dotted IPv4 tail, which the spec does not, so only hex and colons. */
static bool
v1_ipv6(const char *s, size_t n, unsigned char out[16])
{
	char text[40];

	if (n == 0 || n >= sizeof(text))
		return false;
	for (size_t i = 0; i < n; i++)
		if (strchr("0123456789abcdefABCDEF:", s[i]) == NULL ||
		    s[i] == '\0')
			return false;
	memcpy(text, s, n);
	text[n] = '\0';
	return inet_pton(AF_INET6, text, out) == 1;
}

/* Split "a b c d" (line has no CR or LF) into exactly four fields, each
 * separated by exactly one space (PROXY-02). */
static bool
four_fields(const char *line, size_t n, const char *f[4], size_t flen[4])
{
	size_t k = 0, start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && line[i] != ' ')
			continue;
		if (k == 4 || i == start)
			return false;
		f[k] = line + start;
		flen[k++] = i - start;
		start = i + 1;
	}
	return k == 4;
}

/* The v1 line without its CRLF, "PROXY " already checked. */
static enum proxy_status
v1_line(const char *line, size_t n, struct proxy_header *h)
{
	const char *rest = line + 6, *f[4];
	size_t rlen = n - 6, flen[4];
	unsigned sport, dport;
	bool ok;

	h->version = 1;
	/* PROXY-04: after UNKNOWN anything up to the CRLF is ignored, and
	 * the connection is the balancer's own. */
	if (rlen >= 7 && memcmp(rest, "UNKNOWN", 7) == 0 &&
	    (rlen == 7 || rest[7] == ' ')) {
		h->command = PROXY_CMD_LOCAL;
		h->family = AF_UNSPEC;
		return PROXY_DONE;
	}
	if (rlen < 5 ||
	    (memcmp(rest, "TCP4 ", 5) != 0 && memcmp(rest, "TCP6 ", 5) != 0))
		return bad(h, "v1: protocol not TCP4, TCP6 or UNKNOWN");
	if (memchr(line, '\r', n) != NULL || memchr(line, '\0', n) != NULL)
		return bad(h, "v1: stray CR or NUL in the line");
	if (!four_fields(rest + 5, rlen - 5, f, flen))
		return bad(h, "v1: not four fields after the protocol");
	h->family = rest[3] == '4' ? AF_INET : AF_INET6;
	if (h->family == AF_INET)
		ok = v1_ipv4(f[0], flen[0], h->src) &&
		     v1_ipv4(f[1], flen[1], h->dst);
	else
		ok = v1_ipv6(f[0], flen[0], h->src) &&
		     v1_ipv6(f[1], flen[1], h->dst);
	if (!ok)
		return bad(h, "v1: malformed address");
	if (!decimal(f[2], flen[2], 65535, &sport) ||
	    !decimal(f[3], flen[3], 65535, &dport))
		return bad(h, "v1: malformed port");
	h->src_port = (uint16_t)sport;
	h->dst_port = (uint16_t)dport;
	h->command = PROXY_CMD_PROXY;
	return PROXY_DONE;
}

static enum proxy_status
parse_v1(const unsigned char *buf, size_t len, size_t *need_r,
	 struct proxy_header *h)
{
	const unsigned char *lf;

	if (memcmp(buf, "PROXY ", len < 6 ? len : 6) != 0)
		return bad(h, "v1: does not start with \"PROXY \"");
	/* PROXY-05: the CRLF within 107 octets. */
	lf = memchr(buf, '\n', len);
	if (len > PROXY_V1_LINE_MAX || (lf == NULL && len == PROXY_V1_LINE_MAX))
		return bad(h, "v1: no CRLF in 107 octets");
	if (lf == NULL) {
		*need_r = len < V1_SHORTEST ? V1_SHORTEST : len + 1;
		return PROXY_MORE;
	}
	/* Past V1_SHORTEST we read one octet at a time, so an LF is the
	 * last octet, unless the line is shorter than any valid one. */
	if ((size_t)(lf - buf) + 1 != len)
		return bad(h, "v1: line too short");
	/* PROXY-02: a lone LF is no line end. */
	if (len < 2 || buf[len - 2] != '\r')
		return bad(h, "v1: LF without CR");
	h->len = len;
	return v1_line((const char *)buf, len - 2, h);
}

/* TLVs after the addresses: skipped, but each must lie inside the header
 * (PROXY-08), so a wrong length cannot hide where the header ends. */
static enum proxy_status
v2_tlvs(const unsigned char *p, size_t n, struct proxy_header *h)
{
	size_t off = 0, vlen;

	while (off < n) {
		if (n - off < 3)
			return bad(h, "v2: truncated TLV");
		vlen = (size_t)p[off + 1] << 8 | p[off + 2];
		if (vlen > n - off - 3)
			return bad(h, "v2: TLV longer than the header");
		off += 3 + vlen;
	}
	return PROXY_DONE;
}

static enum proxy_status
v2_addresses(const unsigned char *buf, size_t total, struct proxy_header *h)
{
	const unsigned char *a = buf + V2_FIXED;
	size_t alen = total - V2_FIXED, used, asize;

	/* PROXY-10: only TCP over IPv4 or IPv6 names a client we can
	 * count, log and judge; UNSPEC, UDP and Unix are refused. */
	switch (buf[13]) {
	case 0x11:
		h->family = AF_INET;
		asize = 4;
		break;
	case 0x21:
		h->family = AF_INET6;
		asize = 16;
		break;
	default:
		return bad(h, "v2: PROXY for a protocol other than TCP");
	}
	used = 2 * asize + 4;
	if (alen < used)
		return bad(h, "v2: address block too short");
	memcpy(h->src, a, asize);
	memcpy(h->dst, a + asize, asize);
	h->src_port = (uint16_t)(a[2 * asize] << 8 | a[2 * asize + 1]);
	h->dst_port = (uint16_t)(a[2 * asize + 2] << 8 | a[2 * asize + 3]);
	h->command = PROXY_CMD_PROXY;
	return v2_tlvs(a + used, alen - used, h);
}

static enum proxy_status
parse_v2(const unsigned char *buf, size_t len, size_t *need_r,
	 struct proxy_header *h)
{
	size_t total;
	unsigned cmd, fam;

	if (memcmp(buf, v2_sig, len < 12 ? len : 12) != 0)
		return bad(h, "v2: wrong signature");
	if (len < V2_FIXED) {
		*need_r = V2_FIXED;
		return PROXY_MORE;
	}
	h->version = 2;
	/* PROXY-07: version 2, and a command that is LOCAL or PROXY. */
	if (buf[12] >> 4 != 2)
		return bad(h, "v2: version not 2");
	cmd = buf[12] & 0x0f;
	if (cmd > 1)
		return bad(h, "v2: unknown command");
	/* Address families and protocols the spec defines. */
	fam = buf[13];
	if (fam != 0x00 && fam != 0x11 && fam != 0x12 && fam != 0x21 &&
	    fam != 0x22 && fam != 0x31 && fam != 0x32)
		return bad(h, "v2: unknown address family or protocol");
	total = V2_FIXED + ((size_t)buf[14] << 8 | buf[15]);
	if (total > PROXY_HEADER_MAX)
		return bad(h, "v2: header longer than pop3d accepts");
	if (len < total) {
		*need_r = total;
		return PROXY_MORE;
	}
	h->len = total;
	if (cmd == 0) {
		/* PROXY-09: LOCAL, the balancer's own connection; its
		 * address block, whatever the family says, is skipped. */
		h->command = PROXY_CMD_LOCAL;
		h->family = AF_UNSPEC;
		return PROXY_DONE;
	}
	return v2_addresses(buf, total, h);
}

enum proxy_status
proxy_parse(const unsigned char *buf, size_t len, size_t *need_r,
	    struct proxy_header *h)
{
	memset(h, 0, sizeof(*h));
	*need_r = 0;
	if (len == 0) {
		*need_r = V1_SHORTEST;
		return PROXY_MORE;
	}
	/* PROXY-06: the first octet tells v1 from v2 from anything else. */
	if (buf[0] == 'P')
		return parse_v1(buf, len, need_r, h);
	if (buf[0] == v2_sig[0])
		return parse_v2(buf, len, need_r, h);
	return bad(h, "not a PROXY header");
}

int
proxy_read(int fd, int timeout_ms, struct proxy_header *h)
{
	static unsigned char buf[PROXY_HEADER_MAX];
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int64_t deadline = sys_now_ms() + timeout_ms, left;
	size_t len = 0, need;
	ssize_t n;
	int r = 0;

	for (;;) {
		switch (proxy_parse(buf, len, &need, h)) {
		case PROXY_DONE:
			return 0;
		case PROXY_BAD:
			return -1;
		case PROXY_MORE:
			break;
		}
		/* PROXY-01: nothing else is read before the header. */
		left = deadline - sys_now_ms();
		if (left <= 0 || (r = sys_poll(&pfd, 1, (int)left)) == 0) {
			h->why = "no whole header in time";
			return -1;
		}
		if (r < 0) {
			h->why = "poll error";
			return -1;
		}
		n = read(fd, buf + len, need - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			h->why = n < 0	    ? "read error"
				 : len == 0 ? "closed before a header"
					    : "closed inside the header";
			return -1;
		}
		len += (size_t)n;
	}
}

int
proxy_sniff(int fd)
{
	unsigned char buf[V2_FIXED];
	ssize_t n;

	n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	if (n < 5)
		return 0;
	/* Five octets tell either signature from anything a POP3 or TLS
	 * client sends first: "PROXY" is no command, and a ClientHello
	 * starts with 0x16. */
	return memcmp(buf, "PROXY", 5) == 0 || memcmp(buf, v2_sig, 5) == 0;
}
