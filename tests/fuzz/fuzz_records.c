/* libFuzzer: the monitor's judgement of records from the pre-auth process
 * (privsep_check_record, privsep_msg.h). The pre-auth process parses
 * everything the client sends, so it is the one an attacker takes over
 * first; whatever it sends, the monitor (root) must accept only records
 * it can use as they are.
 *
 * Input: a flag byte (logged_in, the descriptor count, how the length is
 * chosen), a fill byte, then the record's octets. The record lives in a
 * buffer of exactly len octets when len is a length recv_record could
 * return, so ASan flags any look past the datagram.
 *
 * Checks: only 0, MSG_LOGIN, MSG_HANDOFF, MSG_LOG or MSG_PEER come
 * back; an accepted peer came before the verdict, with no descriptors,
 * the exact size and a family of AF_INET, AF_INET6 or AF_UNSPEC; an
 * accepted log line has no descriptors, the exact size, a syslog priority
 * from LOG_CRIT to LOG_DEBUG and its text NUL-terminated; an accepted login
 * came before the verdict, with no descriptors, the exact size, fields
 * NUL-terminated inside their arrays, a non-empty user, a method the
 * monitor knows; an accepted handoff came after it, with two descriptors,
 * the exact size, and an input length that net_preload takes. And every
 * record meeting privsep_msg.h's description is accepted (a refusal is
 * fatal() in the monitor: a lost login). */
#include "fuzz.h"

#include <sys/socket.h>
#include <syslog.h>

#include "netio.h"
#include "privsep_msg.h"

static bool
terminated(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

static bool
known_method(const char *m)
{
	return strcmp(m, "USER") == 0 || strcmp(m, "PLAIN") == 0 ||
	       strcmp(m, "LOGIN") == 0;
}

/* privsep_msg.h's and monitor.c's contract, written out. */
static int
reference(const union msg *m, ssize_t len, int nfds, bool logged_in)
{
	if (len < 0 || (size_t)len < sizeof(uint32_t))
		return 0;
	if (m->type == MSG_LOGIN && !logged_in && nfds == 0 &&
	    (size_t)len == sizeof(struct msg_login)) {
		const struct auth_request *r = &m->login.req;

		if (terminated(r->user, sizeof(r->user)) &&
		    terminated(r->authzid, sizeof(r->authzid)) &&
		    terminated(r->password, sizeof(r->password)) &&
		    terminated(r->method, sizeof(r->method)) &&
		    r->user[0] != '\0' && r->tls <= 1 &&
		    known_method(r->method))
			return MSG_LOGIN;
		return 0;
	}
	if (m->type == MSG_HANDOFF && logged_in && nfds == 2 &&
	    (size_t)len == sizeof(struct msg_handoff) && m->handoff.tls <= 1 &&
	    m->handoff.len <= sizeof(m->handoff.input))
		return MSG_HANDOFF;
	if (m->type == MSG_PEER && !logged_in && nfds == 0 &&
	    (size_t)len == sizeof(struct msg_peer) &&
	    (m->peer.family == AF_INET || m->peer.family == AF_INET6 ||
	     m->peer.family == AF_UNSPEC))
		return MSG_PEER;
	if (m->type == MSG_LOG && nfds == 0 &&
	    (size_t)len == sizeof(struct msg_log) &&
	    m->log.priority >= LOG_CRIT && m->log.priority <= LOG_DEBUG &&
	    terminated(m->log.text, sizeof(m->log.text)))
		return MSG_LOG;
	return 0;
}

static struct netio io;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int nfds_choice[8] = {0, 1, 2, 3, -1, 2, 0, 2};
	const uint8_t *payload;
	union msg *m;
	size_t n, alloc;
	int64_t raw;
	ssize_t len;
	bool logged_in;
	int nfds, r, want;
	uint8_t fill;

	if (size < 2)
		return 0;
	logged_in = data[0] & 1;
	nfds = nfds_choice[data[0] >> 1 & 7];
	fill = data[1];
	payload = data + 2;
	n = size - 2;
	switch (data[0] >> 4 & 7) {
	case 0:
		len = (ssize_t)n;
		break;
	case 1:
		len = sizeof(struct msg_login);
		break;
	case 2:
		len = sizeof(struct msg_handoff);
		break;
	case 3:
		len = sizeof(struct msg_verdict);
		break;
	case 4:
		len = sizeof(uint32_t) - (data[0] >> 7);
		break;
	case 5:
		/* Anything at all, negative and huge included. */
		raw = 0;
		memcpy(&raw, payload, n < 8 ? n : 8);
		len = (ssize_t)raw;
		break;
	case 6:
		len = (ssize_t)sizeof(struct msg_login) +
		      (data[0] >> 7 ? 1 : -1);
		break;
	default:
		len = (ssize_t)sizeof(struct msg_handoff) +
		      (data[0] >> 7 ? 1 : -1);
		break;
	}
	/* recv_record returns at most sizeof(union msg): such a record gets
	 * a buffer of exactly its size. Other lengths get a whole union. */
	alloc = len >= 0 && (size_t)len <= sizeof(union msg)
			? (size_t)len
			: sizeof(union msg);
	m = malloc(alloc > 0 ? alloc : 1);
	check(m != NULL, "out of memory");
	memset(m, fill, alloc);
	memcpy(m, payload, n < alloc ? n : alloc);

	r = privsep_check_record(m, len, nfds, logged_in);
	check(r == 0 || r == MSG_LOGIN || r == MSG_HANDOFF || r == MSG_LOG ||
		      r == MSG_PEER,
	      "privsep_check_record returned %#x", (unsigned)r);
	if (r == MSG_LOGIN) {
		const struct auth_request *q = &m->login.req;

		check(!logged_in && nfds == 0, "login accepted out of turn");
		check(len == (ssize_t)sizeof(struct msg_login),
		      "login of %zd octets accepted", len);
		check(terminated(q->user, sizeof(q->user)) &&
			      terminated(q->authzid, sizeof(q->authzid)) &&
			      terminated(q->password, sizeof(q->password)) &&
			      terminated(q->method, sizeof(q->method)),
		      "login accepted with an unterminated field");
		check(q->user[0] != '\0', "login accepted without a user");
		check(known_method(q->method), "login accepted with method %s",
		      q->method);
	} else if (r == MSG_LOG) {
		check(nfds == 0 && len == (ssize_t)sizeof(struct msg_log),
		      "log line of %zd octets with %d descriptors accepted",
		      len, nfds);
		check(m->log.priority >= LOG_CRIT &&
			      m->log.priority <= LOG_DEBUG,
		      "log line at priority %d accepted", m->log.priority);
		check(terminated(m->log.text, sizeof(m->log.text)),
		      "log line accepted without its NUL");
	} else if (r == MSG_PEER) {
		check(!logged_in && nfds == 0 &&
			      len == (ssize_t)sizeof(struct msg_peer),
		      "peer of %zd octets, %d descriptors, accepted", len,
		      nfds);
		check(m->peer.family == AF_INET || m->peer.family == AF_INET6 ||
			      m->peer.family == AF_UNSPEC,
		      "peer of family %d accepted", m->peer.family);
	} else if (r == MSG_HANDOFF) {
		check(logged_in && nfds == 2, "handoff accepted out of turn");
		check(len == (ssize_t)sizeof(struct msg_handoff),
		      "handoff of %zd octets accepted", len);
		check(m->handoff.len <= sizeof(m->handoff.input),
		      "handoff accepted with len %u", m->handoff.len);
		/* What the monitor does next (monitor_serve). */
		memset(&io, 0, offsetof(struct netio, in));
		io.in_fd = io.out_fd = -1;
		check(net_preload(&io, m->handoff.input, m->handoff.len) == 0,
		      "accepted handoff does not fit: len %u", m->handoff.len);
	}
	want = reference(m, len, nfds, logged_in);
	check(r == want, "privsep_check_record says %#x, privsep_msg.h %#x",
	      (unsigned)r, (unsigned)want);
	free(m);
	return 0;
}
