/* libFuzzer: the PROXY protocol header parser (proxyproto.c), the first
 * thing a --proxy-from connection's pre-auth process reads.
 *
 * Input: a flag byte, then the connection's first octets. The flag's low
 * four bits are the largest read the simulated reader makes (0: all the
 * parser asks for at once; 1..15: short reads, as TCP may deliver them).
 *
 * The harness plays proxy_read: it hands proxy_parse only as many octets
 * as it asked for, in pieces, until a verdict or the end of the input. It
 * checks that every request asks for more than it has and at most
 * PROXY_HEADER_MAX, and compares the verdict with a naive reference
 * reading of the whole input (below), written separately from HAProxy's
 * doc/proxy-protocol.txt with other means (token splitting, inet_pton,
 * strtoul): a header pop3d accepts is one the reference accepts, with the
 * same length (so the reader never took an octet past it), command,
 * family, source address and ports; one it refuses the reference refuses;
 * and where pop3d wants more input, the reference finds no whole valid
 * header in it. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include "params.h"
#include "proxyproto.h"

enum ref_status { REF_BAD, REF_MORE, REF_DONE };

struct ref {
	enum ref_status status;
	size_t len;
	int local;
	int family;
	unsigned char src[16];
	unsigned sport, dport;
};

static const unsigned char sig[12] = "\r\n\r\n\0\r\nQUIT\n";

/* A token of the v1 line: start and length. */
struct tok {
	const char *s;
	size_t n;
};

static bool
only(const struct tok *t, const char *set)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->s[i] == '\0' || strchr(set, t->s[i]) == NULL)
			return false;
	return true;
}

static bool
ref_port(const struct tok *t, unsigned *v)
{
	char text[8];
	unsigned long x;

	if (t->n == 0 || t->n > 5 || !only(t, "0123456789"))
		return false;
	if (t->n > 1 && t->s[0] == '0')
		return false;
	memcpy(text, t->s, t->n);
	text[t->n] = '\0';
	x = strtoul(text, NULL, 10);
	if (x > 65535)
		return false;
	*v = (unsigned)x;
	return true;
}

/* glibc's inet_pton for AF_INET takes exactly a.b.c.d in decimal and
 * refuses leading zeros; the charset check keeps NULs out. */
static bool
ref_addr(int family, const struct tok *t, unsigned char *out)
{
	char text[64];

	if (t->n == 0 || t->n >= sizeof(text))
		return false;
	if (!only(t, family == AF_INET ? "0123456789."
				       : "0123456789abcdefABCDEF:"))
		return false;
	memcpy(text, t->s, t->n);
	text[t->n] = '\0';
	return inet_pton(family, text, out) == 1;
}

static void
ref_line(const char *line, size_t n, struct ref *r)
{
	struct tok t[8];
	size_t k = 0, start = 0;
	unsigned char dst[16];

	for (size_t i = 0; i <= n; i++) {
		if (i < n && line[i] != ' ')
			continue;
		/* After UNKNOWN any number of words may follow: keep
		 * the first eight, count the rest. */
		if (k < 8) {
			t[k].s = line + start;
			t[k].n = i - start;
		}
		k++;
		start = i + 1;
	}
	r->status = REF_BAD;
	if (k < 2 || t[0].n != 5 || memcmp(t[0].s, "PROXY", 5) != 0)
		return;
	if (t[1].n == 7 && memcmp(t[1].s, "UNKNOWN", 7) == 0) {
		r->status = REF_DONE;
		r->local = 1;
		r->family = AF_UNSPEC;
		return;
	}
	if (k != 6 || t[1].n != 4 ||
	    (memcmp(t[1].s, "TCP4", 4) != 0 && memcmp(t[1].s, "TCP6", 4) != 0))
		return;
	r->family = t[1].s[3] == '4' ? AF_INET : AF_INET6;
	if (!ref_addr(r->family, &t[2], r->src) ||
	    !ref_addr(r->family, &t[3], dst) || !ref_port(&t[4], &r->sport) ||
	    !ref_port(&t[5], &r->dport))
		return;
	r->status = REF_DONE;
}

static void
ref_v1(const uint8_t *d, size_t size, struct ref *r)
{
	size_t i;

	for (i = 0; i < size && i < 6; i++)
		if (d[i] != "PROXY "[i]) {
			r->status = REF_BAD;
			return;
		}
	for (i = 0; i < size && i < PROXY_V1_LINE_MAX; i++)
		if (d[i] == '\n')
			break;
	if (i == PROXY_V1_LINE_MAX) {
		r->status = REF_BAD; /* no LF in the first 107 octets */
		return;
	}
	if (i == size) {
		r->status = REF_MORE;
		return;
	}
	if (i == 0 || d[i - 1] != '\r') {
		r->status = REF_BAD;
		return;
	}
	r->len = i + 1;
	/* Anything after UNKNOWN is ignored; a CR or NUL elsewhere fails
	 * the token checks. */
	ref_line((const char *)d, i - 1, r);
}

static void
ref_v2(const uint8_t *d, size_t size, struct ref *r)
{
	size_t n = size < 12 ? size : 12, total, pos, end, alen;

	r->status = REF_BAD;
	if (memcmp(d, sig, n) != 0)
		return;
	if (size < 16) {
		r->status = REF_MORE;
		return;
	}
	if ((d[12] & 0xf0) != 0x20 || (d[12] & 0x0f) > 1)
		return;
	switch (d[13]) {
	case 0x00:
	case 0x11:
	case 0x12:
	case 0x21:
	case 0x22:
	case 0x31:
	case 0x32:
		break;
	default:
		return;
	}
	total = 16 + (size_t)(d[14] * 256 + d[15]);
	if (total > PROXY_HEADER_MAX)
		return;
	if (size < total) {
		r->status = REF_MORE;
		return;
	}
	r->len = total;
	if ((d[12] & 0x0f) == 0) {
		r->status = REF_DONE;
		r->local = 1;
		r->family = AF_UNSPEC;
		return;
	}
	if (d[13] == 0x11) {
		r->family = AF_INET;
		alen = 12;
	} else if (d[13] == 0x21) {
		r->family = AF_INET6;
		alen = 36;
	} else {
		return;
	}
	if (total - 16 < alen)
		return;
	memcpy(r->src, d + 16, alen == 12 ? 4 : 16);
	r->sport = d[16 + alen - 4] * 256u + d[16 + alen - 3];
	r->dport = d[16 + alen - 2] * 256u + d[16 + alen - 1];
	end = total;
	for (pos = 16 + alen; pos < end;) {
		if (end - pos < 3)
			return;
		pos += 3 + (size_t)(d[pos + 1] * 256 + d[pos + 2]);
		if (pos > end)
			return;
	}
	r->status = REF_DONE;
}

static void
reference(const uint8_t *d, size_t size, struct ref *r)
{
	memset(r, 0, sizeof(*r));
	if (size == 0)
		r->status = REF_MORE;
	else if (d[0] == 'P')
		ref_v1(d, size, r);
	else if (d[0] == '\r')
		ref_v2(d, size, r);
	else
		r->status = REF_BAD;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *buf;
	struct proxy_header h;
	enum proxy_status st;
	size_t len = 0, need, step;
	struct ref r;

	if (size < 1)
		return 0;
	step = data[0] & 0x0f;
	data++;
	size--;
	/* Exactly the octets there are: ASan flags any look past them. */
	buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	for (;;) {
		st = proxy_parse(buf, len, &need, &h);
		if (st != PROXY_MORE)
			break;
		if (need <= len || need > PROXY_HEADER_MAX)
			fuzz_fail("asked for %zu octets having %zu", need, len);
		if (len == size)
			break; /* the input ends: the reader would wait */
		need = need > size ? size : need;
		len += step == 0 || need - len < step ? need - len : step;
	}
	reference(data, size, &r);
	if (st == PROXY_DONE) {
		if (r.status != REF_DONE || r.len != len || h.len != len)
			fuzz_fail("accepted %zu octets; reference status %d "
				  "len %zu",
				  len, r.status, r.len);
		if ((h.command == PROXY_CMD_LOCAL) != r.local ||
		    h.family != r.family)
			fuzz_fail("command or family differ");
		if (!r.local &&
		    (memcmp(h.src, r.src, h.family == AF_INET ? 4 : 16) != 0 ||
		     h.src_port != r.sport || h.dst_port != r.dport))
			fuzz_fail("address or ports differ");
	} else if (st == PROXY_BAD) {
		if (h.why == NULL)
			fuzz_fail("refused without a reason");
		if (r.status != REF_BAD)
			fuzz_fail("refused (%s); reference status %d", h.why,
				  r.status);
	} else if (r.status == REF_DONE) {
		fuzz_fail("wants more than the %zu octets of a whole header",
			  r.len);
	}
	free(buf);
	return 0;
}
