/* Unit tests for proxyproto.c (the PROXY protocol header, HAProxy's
 * doc/proxy-protocol.txt; PROXY-xx in docs/rfc-checklist.md) and for
 * peer.c's --proxy-from networks: valid and invalid headers side by side,
 * fed whole and as the reader feeds them (only as many octets as the
 * parser asks for), so that no octet after a header is ever taken. */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "params.h"
#include "peer.h"
#include "proxyproto.h"

/* A header and what it must give: the command, the family, the source
 * address as text, the ports; bad is the expected refusal's reason (a
 * substring), NULL for a valid header. */
struct hcase {
	const char *name;
	const unsigned char *data;
	size_t len;
	const char *bad;
	enum proxy_command cmd;
	int family;
	const char *src;
	unsigned sport, dport;
};

#define TXT(s) (const unsigned char *)(s), sizeof(s) - 1

/* v2: signature, version/command, family/protocol, length (big endian). */
#define SIG "\r\n\r\n\0\r\nQUIT\n"
static const unsigned char v2_tcp4[] = SIG "\x21\x11\x00\x0c"
					   "\xc0\x00\x02\x07"
					   "\x7f\x00\x00\x01"
					   "\x9c\x40\x00\x6e";
static const unsigned char v2_tcp6_tlvs[] =
	SIG "\x21\x21\x00\x37"
	    "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07"
	    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
	    "\x01\x02\x00\x6e"
	    /* ALPN "pop3", then a NOOP of 9 octets */
	    "\x01\x00\x04pop3"
	    "\x04\x00\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00";
static const unsigned char v2_local[] = SIG "\x20\x00\x00\x00";
/* LOCAL with an address block anyway: skipped (PROXY-09). */
static const unsigned char v2_local_addr[] = SIG "\x20\x11\x00\x0c"
						 "\x01\x02\x03\x04\x05\x06\x07"
						 "\x08\x09\x0a\x0b\x0c";
static const unsigned char v2_v1version[] = SIG "\x11\x11\x00\x0c"
						"\xc0\x00\x02\x07\x7f\x00\x00"
						"\x01\x9c\x40\x00\x6e";
static const unsigned char v2_cmd2[] = SIG "\x22\x11\x00\x0c"
					   "\xc0\x00\x02\x07\x7f\x00\x00\x01"
					   "\x9c\x40\x00\x6e";
static const unsigned char v2_fam4[] = SIG "\x21\x41\x00\x00";
static const unsigned char v2_udp4[] = SIG "\x21\x12\x00\x0c"
					   "\xc0\x00\x02\x07\x7f\x00\x00\x01"
					   "\x9c\x40\x00\x6e";
static const unsigned char v2_unix[] = SIG "\x21\x31\x00\x00";
static const unsigned char v2_unspec[] = SIG "\x21\x00\x00\x00";
static const unsigned char v2_short_block[] = SIG "\x21\x11\x00\x08"
						  "\xc0\x00\x02\x07\x7f\x00"
						  "\x00\x01";
static const unsigned char v2_tlv_overrun[] = SIG "\x21\x11\x00\x10"
						  "\xc0\x00\x02\x07\x7f\x00"
						  "\x00\x01\x9c\x40\x00\x6e"
						  "\x04\x00\x02\x00";
static const unsigned char v2_tlv_truncated[] = SIG "\x21\x11\x00\x0e"
						    "\xc0\x00\x02\x07\x7f\x00"
						    "\x00\x01\x9c\x40\x00\x6e"
						    "\x04\x00";
static const unsigned char v2_too_long[] = SIG "\x21\x11\x03\xf1";
static const unsigned char v2_bad_sig[] = "\r\n\r\n\0\r\nQUIX\n"
					  "\x21\x11\x00\x00";

static const struct hcase cases[] = {
	{"v1 tcp4", TXT("PROXY TCP4 192.0.2.7 127.0.0.1 40000 110\r\n"), NULL,
	 PROXY_CMD_PROXY, AF_INET, "192.0.2.7", 40000, 110},
	{"v1 tcp4 max",
	 TXT("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
	 NULL, PROXY_CMD_PROXY, AF_INET, "255.255.255.255", 65535, 65535},
	{"v1 tcp4 zeros", TXT("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n"), NULL,
	 PROXY_CMD_PROXY, AF_INET, "0.0.0.0", 0, 0},
	{"v1 tcp6", TXT("PROXY TCP6 2001:db8::7 ::1 40000 995\r\n"), NULL,
	 PROXY_CMD_PROXY, AF_INET6, "2001:db8::7", 40000, 995},
	{"v1 tcp6 longest",
	 TXT("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	 NULL, PROXY_CMD_PROXY, AF_INET6,
	 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535},
	{"v1 unknown short", TXT("PROXY UNKNOWN\r\n"), NULL, PROXY_CMD_LOCAL,
	 AF_UNSPEC, NULL, 0, 0},
	{"v1 unknown longest",
	 TXT("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	 NULL, PROXY_CMD_LOCAL, AF_UNSPEC, NULL, 0, 0},
	{"v1 unknown junk", TXT("PROXY UNKNOWN whatever \x01\r\n"), NULL,
	 PROXY_CMD_LOCAL, AF_UNSPEC, NULL, 0, 0},
	{"v1 108 octets",
	 TXT("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655355\r\n"),
	 "107", 0, 0, NULL, 0, 0},
	{"v1 lone LF", TXT("PROXY TCP4 192.0.2.7 127.0.0.1 40000 110\n"),
	 "LF without CR", 0, 0, NULL, 0, 0},
	{"v1 lowercase", TXT("proxy TCP4 192.0.2.7 127.0.0.1 40000 110\r\n"),
	 "not a PROXY header", 0, 0, NULL, 0, 0},
	{"v1 two spaces", TXT("PROXY  TCP4 192.0.2.7 127.0.0.1 1 2\r\n"),
	 "protocol", 0, 0, NULL, 0, 0},
	{"v1 tcp5", TXT("PROXY TCP5 192.0.2.7 127.0.0.1 40000 110\r\n"),
	 "protocol", 0, 0, NULL, 0, 0},
	{"v1 unknownx", TXT("PROXY UNKNOWNX\r\n"), "protocol", 0, 0, NULL, 0,
	 0},
	{"v1 leading zero",
	 TXT("PROXY TCP4 192.0.2.07 127.0.0.1 40000 110\r\n"), "address", 0, 0,
	 NULL, 0, 0},
	{"v1 octet 256", TXT("PROXY TCP4 192.0.2.256 127.0.0.1 40000 110\r\n"),
	 "address", 0, 0, NULL, 0, 0},
	{"v1 three octets", TXT("PROXY TCP4 192.0.2 127.0.0.1 40000 110\r\n"),
	 "address", 0, 0, NULL, 0, 0},
	{"v1 v6 in tcp4", TXT("PROXY TCP4 ::1 127.0.0.1 40000 110\r\n"),
	 "address", 0, 0, NULL, 0, 0},
	{"v1 v4 in tcp6", TXT("PROXY TCP6 192.0.2.7 ::1 40000 110\r\n"),
	 "address", 0, 0, NULL, 0, 0},
	{"v1 dotted tail", TXT("PROXY TCP6 ::ffff:1.2.3.4 ::1 40000 110\r\n"),
	 "address", 0, 0, NULL, 0, 0},
	{"v1 port 65536", TXT("PROXY TCP4 192.0.2.7 127.0.0.1 65536 110\r\n"),
	 "port", 0, 0, NULL, 0, 0},
	{"v1 port zero-led", TXT("PROXY TCP4 192.0.2.7 127.0.0.1 040 110\r\n"),
	 "port", 0, 0, NULL, 0, 0},
	{"v1 port sign", TXT("PROXY TCP4 192.0.2.7 127.0.0.1 +40 110\r\n"),
	 "port", 0, 0, NULL, 0, 0},
	{"v1 five fields",
	 TXT("PROXY TCP4 192.0.2.7 127.0.0.1 40000 110 1\r\n"), "four fields",
	 0, 0, NULL, 0, 0},
	{"v1 three fields", TXT("PROXY TCP4 192.0.2.7 127.0.0.1 40000\r\n"),
	 "four fields", 0, 0, NULL, 0, 0},
	{"v1 trailing space", TXT("PROXY TCP4 192.0.2.7 127.0.0.1 1 2 \r\n"),
	 "four fields", 0, 0, NULL, 0, 0},
	{"v1 stray CR", TXT("PROXY TCP4 192.0.2.7\r127.0.0.1 40000 110\r\n"),
	 "CR", 0, 0, NULL, 0, 0},
	{"v1 short line", TXT("PROXY TCP4\r\nUSER alice\r\n"), "too short", 0,
	 0, NULL, 0, 0},
	{"pop3 command", TXT("USER alice\r\nPASS secret\r\n"),
	 "not a PROXY header", 0, 0, NULL, 0, 0},
	{"tls hello", TXT("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
	 "not a PROXY header", 0, 0, NULL, 0, 0},
	{"v2 tcp4", v2_tcp4, sizeof(v2_tcp4) - 1, NULL, PROXY_CMD_PROXY,
	 AF_INET, "192.0.2.7", 40000, 110},
	{"v2 tcp6 tlvs", v2_tcp6_tlvs, sizeof(v2_tcp6_tlvs) - 1, NULL,
	 PROXY_CMD_PROXY, AF_INET6, "2001:db8::7", 258, 110},
	{"v2 local", v2_local, sizeof(v2_local) - 1, NULL, PROXY_CMD_LOCAL,
	 AF_UNSPEC, NULL, 0, 0},
	{"v2 local with addresses", v2_local_addr, sizeof(v2_local_addr) - 1,
	 NULL, PROXY_CMD_LOCAL, AF_UNSPEC, NULL, 0, 0},
	{"v2 version 1", v2_v1version, sizeof(v2_v1version) - 1, "version", 0,
	 0, NULL, 0, 0},
	{"v2 command 2", v2_cmd2, sizeof(v2_cmd2) - 1, "command", 0, 0, NULL, 0,
	 0},
	{"v2 family 4", v2_fam4, sizeof(v2_fam4) - 1, "family", 0, 0, NULL, 0,
	 0},
	{"v2 udp", v2_udp4, sizeof(v2_udp4) - 1, "other than TCP", 0, 0, NULL,
	 0, 0},
	{"v2 unix", v2_unix, sizeof(v2_unix) - 1, "other than TCP", 0, 0, NULL,
	 0, 0},
	{"v2 unspec proxy", v2_unspec, sizeof(v2_unspec) - 1, "other than TCP",
	 0, 0, NULL, 0, 0},
	{"v2 short block", v2_short_block, sizeof(v2_short_block) - 1,
	 "too short", 0, 0, NULL, 0, 0},
	{"v2 tlv overrun", v2_tlv_overrun, sizeof(v2_tlv_overrun) - 1,
	 "TLV longer", 0, 0, NULL, 0, 0},
	{"v2 tlv truncated", v2_tlv_truncated, sizeof(v2_tlv_truncated) - 1,
	 "truncated TLV", 0, 0, NULL, 0, 0},
	{"v2 too long", v2_too_long, sizeof(v2_too_long) - 1, "longer than", 0,
	 0, NULL, 0, 0},
	{"v2 bad signature", v2_bad_sig, sizeof(v2_bad_sig) - 1, "signature", 0,
	 0, NULL, 0, 0},
};

static void
check_result(const struct hcase *c, enum proxy_status st,
	     const struct proxy_header *h, size_t len)
{
	char text[INET6_ADDRSTRLEN];

	if (c->bad != NULL) {
		ck_assert_msg(st == PROXY_BAD, "%s: accepted", c->name);
		ck_assert_msg(h->why != NULL && strstr(h->why, c->bad) != NULL,
			      "%s: reason \"%s\", want \"%s\"", c->name,
			      h->why ? h->why : "(null)", c->bad);
		return;
	}
	ck_assert_msg(st == PROXY_DONE, "%s: status %d (%s)", c->name, st,
		      h->why ? h->why : "");
	ck_assert_msg(h->len == len, "%s: len %zu, want %zu", c->name, h->len,
		      len);
	ck_assert_int_eq(h->command, c->cmd);
	ck_assert_int_eq(h->family, c->family);
	if (c->src == NULL)
		return;
	ck_assert_ptr_nonnull(inet_ntop(c->family, h->src, text, sizeof(text)));
	ck_assert_msg(strcmp(text, c->src) == 0, "%s: src %s, want %s", c->name,
		      text, c->src);
	ck_assert_uint_eq(h->src_port, c->sport);
	ck_assert_uint_eq(h->dst_port, c->dport);
}

/* As proxy_read feeds it: never more than the parser asked for. With a
 * POP3 command after the header, the header must end where it does. */
START_TEST(parse_as_read)
{
	const struct hcase *c = &cases[_i];
	unsigned char buf[PROXY_HEADER_MAX + 64];
	struct proxy_header h;
	enum proxy_status st;
	size_t len = 0, need, total = c->len + 6;

	memcpy(buf, c->data, c->len);
	memcpy(buf + c->len, "CAPA\r\n", 6);
	for (;;) {
		st = proxy_parse(buf, len, &need, &h);
		if (st != PROXY_MORE)
			break;
		ck_assert_msg(need > len && need <= PROXY_HEADER_MAX,
			      "%s: need %zu at %zu", c->name, need, len);
		/* Never past a valid header. */
		if (c->bad == NULL)
			ck_assert_msg(need <= c->len, "%s: asks for %zu of %zu",
				      c->name, need, c->len);
		if (need > total)
			break;
		len = need;
	}
	if (c->bad == NULL)
		ck_assert_msg(len == c->len, "%s: stopped at %zu", c->name,
			      len);
	if (st == PROXY_MORE)
		ck_assert_msg(c->bad == NULL && 0, "%s: wants more than given",
			      c->name);
	check_result(c, st, &h, len);
}
END_TEST

/* Whole, as one read: the same verdict (a valid header is exactly its
 * own length; longer input is not asked for). */
START_TEST(parse_whole)
{
	const struct hcase *c = &cases[_i];
	struct proxy_header h;
	enum proxy_status st;
	size_t need;

	if (c->len > PROXY_HEADER_MAX)
		return;
	st = proxy_parse(c->data, c->len, &need, &h);
	if (st == PROXY_MORE) {
		/* Only a header announcing more than it brought. */
		ck_assert_msg(c->bad != NULL, "%s: incomplete", c->name);
		return;
	}
	check_result(c, st, &h, c->len);
}
END_TEST

/* proxy_read on a pipe: the header, then the rest left unread. */
START_TEST(read_leaves_the_rest)
{
	static const char in[] =
		"PROXY TCP4 192.0.2.7 127.0.0.1 1 2\r\nCAPA\r\n";
	struct proxy_header h;
	char rest[16];
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], in, sizeof(in) - 1), sizeof(in) - 1);
	close(p[1]);
	ck_assert_int_eq(proxy_read(p[0], 1000, &h), 0);
	ck_assert_int_eq(h.family, AF_INET);
	ck_assert_int_eq(read(p[0], rest, sizeof(rest)), 6);
	ck_assert(memcmp(rest, "CAPA\r\n", 6) == 0);
	close(p[0]);
}
END_TEST

START_TEST(read_timeout_and_eof)
{
	struct proxy_header h;
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], "PROXY TCP4 1", 12), 12);
	ck_assert_int_eq(proxy_read(p[0], 100, &h), -1);
	ck_assert_str_eq(h.why, "no whole header in time");
	close(p[1]);
	close(p[0]);

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], "PROXY TCP4 192.0.2.7", 20), 20);
	close(p[1]);
	ck_assert_int_eq(proxy_read(p[0], 1000, &h), -1);
	ck_assert_str_eq(h.why, "closed inside the header");
	close(p[0]);
}
END_TEST

START_TEST(sniff)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(proxy_sniff(sv[0]), 0); /* nothing yet */
	ck_assert_int_eq(write(sv[1], "PROXY TCP4 ", 11), 11);
	ck_assert_int_eq(proxy_sniff(sv[0]), 1);
	close(sv[0]);
	close(sv[1]);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(write(sv[1], v2_local, 16), 16);
	ck_assert_int_eq(proxy_sniff(sv[0]), 1);
	close(sv[0]);
	close(sv[1]);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(write(sv[1], "CAPA\r\nUSER alice\r\n", 18), 18);
	ck_assert_int_eq(proxy_sniff(sv[0]), 0);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* --proxy-from: what is accepted, what is refused and why. */
struct ncase {
	const char *list;
	int n;		 /* networks, or -1 */
	const char *why; /* substring of the refusal */
};

static const struct ncase ncases[] = {
	{"127.0.0.1", 1, NULL},
	{"10.0.0.0/8,192.0.2.0/24,2001:db8::/32,::1", 4, NULL},
	{"0.0.0.0/0", 1, NULL},
	{"::/0", 1, NULL},
	{"192.0.2.1/32", 1, NULL},
	{"", -1, "empty"},
	{"127.0.0.1,", -1, "empty"},
	{",127.0.0.1", -1, "empty"},
	{"127.0.0.1 ", -1, "not an IPv4"},
	{"localhost", -1, "not an IPv4"},
	{"10.0.0.0/", -1, "prefix"},
	{"10.0.0.0/08", -1, "prefix"},
	{"10.0.0.0/+8", -1, "prefix"},
	{"10.0.0.0/33", -1, "too long"},
	{"2001:db8::/129", -1, "too long"},
	{"10.0.0.1/8", -1, "bits set"},
	{"2001:db8::1/32", -1, "bits set"},
	{"1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5,6.6.6.6,7.7.7.7,8.8.8.8,"
	 "9.9.9.9,10.10.10.10,11.11.11.11,12.12.12.12,13.13.13.13,"
	 "14.14.14.14,15.15.15.15,16.16.16.16,17.17.17.17",
	 -1, "too many"},
};

START_TEST(nets_parse)
{
	const struct ncase *c = &ncases[_i];
	struct peer_net nets[PROXY_FROM_MAX];
	const char *why = NULL;
	int n;

	n = peer_parse_nets(c->list, nets, PROXY_FROM_MAX, &why);
	ck_assert_msg(n == c->n, "\"%s\": %d networks, want %d (%s)", c->list,
		      n, c->n, why ? why : "");
	if (c->why != NULL)
		ck_assert_msg(why != NULL && strstr(why, c->why) != NULL,
			      "\"%s\": reason \"%s\"", c->list,
			      why ? why : "(null)");
}
END_TEST

static bool
in_list(const char *list, int family, const char *addr)
{
	struct peer_net nets[PROXY_FROM_MAX];
	unsigned char bin[16];
	struct peer p;
	const char *why;
	int n;

	n = peer_parse_nets(list, nets, PROXY_FROM_MAX, &why);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(inet_pton(family, addr, bin), 1);
	peer_from_octets(family, bin, &p);
	return peer_in_nets(&p, nets, (unsigned)n);
}

START_TEST(nets_match)
{
	ck_assert(in_list("127.0.0.1", AF_INET, "127.0.0.1"));
	ck_assert(!in_list("127.0.0.1", AF_INET, "127.0.0.2"));
	ck_assert(in_list("10.0.0.0/8", AF_INET, "10.255.1.2"));
	ck_assert(!in_list("10.0.0.0/8", AF_INET, "11.0.0.0"));
	ck_assert(in_list("192.0.2.128/25", AF_INET, "192.0.2.200"));
	ck_assert(!in_list("192.0.2.128/25", AF_INET, "192.0.2.127"));
	ck_assert(in_list("192.0.2.0/31", AF_INET, "192.0.2.1"));
	ck_assert(!in_list("192.0.2.0/31", AF_INET, "192.0.2.2"));
	ck_assert(in_list("0.0.0.0/0", AF_INET, "203.0.113.9"));
	ck_assert(!in_list("0.0.0.0/0", AF_INET6, "2001:db8::1"));
	ck_assert(in_list("2001:db8::/32", AF_INET6, "2001:db8:ffff::1"));
	ck_assert(!in_list("2001:db8::/32", AF_INET6, "2001:db9::1"));
	ck_assert(in_list("2001:db8::/33", AF_INET6, "2001:db8:7fff::1"));
	ck_assert(!in_list("2001:db8::/33", AF_INET6, "2001:db8:8000::1"));
	/* A dual-stack socket's IPv4 client is matched as IPv4. */
	ck_assert(in_list("127.0.0.1", AF_INET6, "::ffff:127.0.0.1"));
	ck_assert(!in_list("::ffff:127.0.0.1", AF_INET6, "::1"));
}
END_TEST

START_TEST(nets_pipe_never_listed)
{
	struct peer_net nets[PROXY_FROM_MAX];
	struct peer p;
	const char *why;
	int fds[2];

	ck_assert_int_eq(peer_parse_nets("0.0.0.0/0,::/0", nets, 16, &why), 2);
	ck_assert_int_eq(pipe(fds), 0);
	peer_from_fd(fds[0], &p);
	ck_assert(!peer_in_nets(&p, nets, 2));
	close(fds[0]);
	close(fds[1]);
}
END_TEST

static Suite *
proxyproto_suite(void)
{
	Suite *s = suite_create("proxyproto");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, parse_as_read, 0,
			    sizeof(cases) / sizeof(cases[0]));
	tcase_add_loop_test(tc, parse_whole, 0,
			    sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, read_leaves_the_rest);
	tcase_add_test(tc, read_timeout_and_eof);
	tcase_add_test(tc, sniff);
	suite_add_tcase(s, tc);

	tc = tcase_create("nets");
	tcase_add_loop_test(tc, nets_parse, 0,
			    sizeof(ncases) / sizeof(ncases[0]));
	tcase_add_test(tc, nets_match);
	tcase_add_test(tc, nets_pipe_never_listed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(proxyproto_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
