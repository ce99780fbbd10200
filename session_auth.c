/* AUTHORIZATION: USER/PASS (RFC 1939 §7), AUTH PLAIN and LOGIN
 * (RFC 5034, RFC 4616) and STLS (RFC 2595). Runs in the pre-auth process:
 * credentials go to the monitor through the login hook. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "params.h"
#include "sasl.h"
#include "session_int.h"
#include "tls.h"
#include "utf8.h"

/* R6856-07: a USER or PASS argument with 8-bit octets must be UTF-8, and
 * is prepared with SASLprep as a query string; ASCII passes unchanged. */
static enum pop_result
prepare(char *arg, size_t cap)
{
	switch (utf8_prep(arg, cap)) {
	case UTF8_PREP_OK:
		return POP_OK;
	case UTF8_PREP_MALFORMED:
		return POP_BAD_UTF8;
	case UTF8_PREP_TOO_LONG: /* NFKC lengthened it: not the line's fault */
		return POP_PREP_TOO_LONG;
	default:
		return POP_PROHIBITED;
	}
}

enum pop_result
auth_cmd_user(struct session *s, struct command *c)
{
	enum pop_result r;

	if (!session_cleartext_allowed(s))
		return POP_PLAINTEXT;
	/* R1939-27, R3206-05: the same answer for every name. */
	snprintf(s->auth->user, sizeof(s->auth->user), "%s", c->argv[0]);
	if ((r = prepare(s->auth->user, sizeof(s->auth->user))) != POP_OK)
		return r;
	s->auth->have_user = true;
	session_say(s, "+OK", TXT_SEND_PASS);
	return POP_OK;
}

static enum pop_result
verdict_result(enum auth_verdict v)
{
	switch (v) {
	case AUTH_OK:
		return POP_LOGIN;
	case AUTH_TEMPFAIL:
		return POP_AUTH_TEMP;
	case AUTH_PERMFAIL:
		return POP_AUTH_PERM;
	default:
		return POP_AUTH_FAILED;
	}
}

/* Ask for a verdict. The monitor makes every failure cost
 * AUTH_FAIL_DELAY_MS; we count them towards AUTH_FAILS_MAX. */
static enum pop_result
login(struct session *s, struct auth_request *req, const char *method)
{
	enum auth_verdict v;

	snprintf(req->method, sizeof(req->method), "%s", method);
	req->tls = s->tls_active;
	v = s->auth->hooks->login(s->auth->hooks->ctx, req);
	explicit_bzero(req, sizeof(*req));
	if (v != AUTH_OK)
		s->auth->failures++;
	return verdict_result(v);
}

enum pop_result
auth_cmd_pass(struct session *s, struct command *c)
{
	struct auth_request req = {0};
	enum pop_result r;

	s->auth->have_user = false;
	/* A longer password cannot be right for PAM either; it is still
	 * checked (and fails) so that length tells nothing. */
	snprintf(req.user, sizeof(req.user), "%s", s->auth->user);
	snprintf(req.password, sizeof(req.password), "%s", c->rest);
	if ((r = prepare(req.password, sizeof(req.password))) != POP_OK) {
		explicit_bzero(&req, sizeof(req));
		return r;
	}
	return login(s, &req, "USER");
}

/* --- AUTH ---------------------------------------------------------------- */

/* The mechanisms usable on this connection right now (R5034-02). */
static bool
mechanisms_usable(const struct session *s)
{
	return session_cleartext_allowed(s);
}

/* DEC-14: "AUTH" alone lists the mechanisms, one per line. */
static enum pop_result
list_mechanisms(struct session *s)
{
	session_say(s, "+OK", TXT_SASL_FOLLOWS);
	if (mechanisms_usable(s)) {
		net_reply(s->io, "PLAIN");
		net_reply(s->io, "LOGIN");
	}
	net_reply(s->io, ".");
	return POP_OK;
}

/* One client response: the initial response if given (where "=" means
 * present and empty, R5034-08), else the line after a "+ challenge".
 * Decodes it into out (at most cap octets) and sets *len_r. */
static enum pop_result
sasl_response(struct session *s, const char *initial, const char *challenge,
	      unsigned char *out, size_t cap, size_t *len_r)
{
	char line[AUTH_LINE_MAX];
	enum net_status st;
	const char *text = initial;
	size_t len;
	long n;

	if (text != NULL && strcmp(text, "=") == 0) {
		*len_r = 0;
		return POP_OK;
	}
	if (text == NULL) {
		/* R5034-06: "+", SP, base64, CRLF; "+ " alone if empty. */
		net_reply(s->io, "+ %s", challenge);
		st = net_read_line(s->io, line, sizeof(line), &len);
		if (st == NET_TOO_LONG)
			return POP_TOO_LONG;
		if (st != NET_OK) {
			s->gone = st;
			return POP_GONE;
		}
		/* R5034-10: "*" alone cancels. The length, not strlen: a
		 * NUL in the line must neither cancel ("*\0...") nor hide
		 * what follows it from the decoder, which refuses it. */
		if (len == 1 && line[0] == '*')
			return POP_CANCELLED;
		text = line;
	} else {
		len = strlen(text); /* the command's parser allowed no NUL */
	}
	n = base64_decode(text, len, out, cap);
	if (text == line)
		explicit_bzero(line, sizeof(line));
	if (n < 0)
		return POP_BAD_SASL;
	*len_r = n;
	return POP_OK;
}

static enum pop_result
auth_plain(struct session *s, const char *initial)
{
	unsigned char msg[3 * (SASL_FIELD_MAX + 1)];
	struct auth_request req = {0};
	struct sasl_plain p;
	enum pop_result r;
	size_t len;
	bool ok;

	r = sasl_response(s, initial, "", msg, sizeof(msg), &len);
	if (r != POP_OK)
		return r;
	ok = sasl_plain_parse(msg, len, &p);
	explicit_bzero(msg, sizeof(msg));
	if (!ok) {
		explicit_bzero(&p, sizeof(p));
		return POP_BAD_SASL;
	}
	memcpy(req.user, p.authcid, sizeof(req.user));
	memcpy(req.authzid, p.authzid, sizeof(req.authzid));
	memcpy(req.password, p.passwd, sizeof(req.password));
	explicit_bzero(&p, sizeof(p));
	return login(s, &req, "PLAIN");
}

/* AUTH LOGIN: not standardised, but Outlook and many libraries use it.
 * Username and password come base64-encoded after fixed prompts. */
static enum pop_result
login_field(struct session *s, const char *initial, const char *prompt,
	    char out[AUTH_FIELD_MAX + 1])
{
	unsigned char buf[AUTH_FIELD_MAX + 1];
	enum pop_result r;
	size_t len = 0;

	r = sasl_response(s, initial, prompt, buf, sizeof(buf) - 1, &len);
	if (r == POP_OK && (len == 0 || memchr(buf, '\0', len) != NULL ||
			    !utf8_valid(buf, len)))
		r = POP_BAD_SASL;
	if (r == POP_OK) {
		memcpy(out, buf, len);
		out[len] = '\0';
	}
	explicit_bzero(buf, sizeof(buf));
	return r;
}

static enum pop_result
auth_login(struct session *s, const char *initial)
{
	struct auth_request req = {0};
	enum pop_result r;

	/* base64 of "Username:" and "Password:". */
	r = login_field(s, initial, "VXNlcm5hbWU6", req.user);
	if (r == POP_OK)
		r = login_field(s, NULL, "UGFzc3dvcmQ6", req.password);
	if (r != POP_OK) {
		explicit_bzero(&req, sizeof(req));
		return r;
	}
	return login(s, &req, "LOGIN");
}

enum pop_result
auth_cmd_auth(struct session *s, struct command *c)
{
	const char *initial = c->argc == 2 ? c->argv[1] : NULL;

	if (c->argc == 0)
		return list_mechanisms(s);
	if (strcasecmp(c->argv[0], "PLAIN") != 0 &&
	    strcasecmp(c->argv[0], "LOGIN") != 0)
		return POP_NO_MECH;
	/* R5034-20, R4616-07: no cleartext mechanism without TLS. */
	if (!mechanisms_usable(s))
		return POP_PLAINTEXT;
	if (strcasecmp(c->argv[0], "PLAIN") == 0)
		return auth_plain(s, initial);
	return auth_login(s, initial);
}

/* --- STLS ---------------------------------------------------------------- */

enum pop_result
auth_cmd_stls(struct session *s, struct command *c)
{
	if (s->tls_active)
		return POP_TLS_ACTIVE;
	/* R6856-06: clients must not; refusing keeps the rule simple. */
	if (s->utf8)
		return POP_STLS_AFTER_UTF8;
	if (!tls_available())
		return POP_NO_TLS;
	session_say(s, "+OK", TXT_BEGIN_TLS);
	if (net_flush(s->io) < 0)
		return POP_ABORT;
	/* R2595-10: net_start_tls drops what came after STLS unread. */
	if (net_start_tls(s->io) < 0) {
		s->end = END_TLS_FAILED;
		return POP_ABORT; /* R2595-13: never fall back */
	}
	s->tls_active = true;
	/* R2595-11: a USER given before TLS is forgotten, and a LANG: it
	 * may have been injected (RFC 6856 §7). */
	s->auth->have_user = false;
	s->lang = LANG_DEFAULT;
	log_msg(LOG_INFO, "STLS: peer=%s %s", s->peer->addr,
		tls_version(s->io->tls));
	return POP_OK;
}

/* --- UTF8 ---------------------------------------------------------------- */

/* R6856-02: UTF-8 mode. USER and PASS take UTF-8 with or without it, as
 * "UTF8 USER" allows (R6856-07); messages go out as stored either way
 * (DEC-21). Asking twice changes nothing and is answered the same. */
enum pop_result
auth_cmd_utf8(struct session *s, struct command *c)
{
	s->utf8 = true;
	session_say(s, "+OK", TXT_UTF8_ON);
	return POP_OK;
}
