/* The protocol engine's core: the command table, the mapping of results
 * to replies, and the loop shared by both processes. */
#include "session.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lang.h"
#include "log.h"
#include "params.h"
#include "session_int.h"
#include "tls.h"

/* Each result's reply: the status indicator and response code, never
 * translated (DEC-23), then its text in the session's language
 * (lang.c). A new result needs a row here and, for a new text, a TXT_ id
 * with its translations (lang.h says how). The text id comes first and
 * the status last, so that a row with the text written in, as before
 * ({"-ERR [CODE] text", bad, close}), does not compile. */
static const struct {
	enum text_id text;
	bool bad;   /* a client mistake: counts toward BAD_COMMANDS_MAX */
	bool close; /* the session ends after this reply */
	const char *status; /* "+OK", "-ERR" or "-ERR [CODE]"; NULL: none */
} results[] = {
	[POP_OK] = {0, false, false, NULL},
	[POP_QUIT] = {0, false, true, NULL},
	[POP_ABORT] = {0, false, true, NULL},
	[POP_LOGIN] = {0, false, true, NULL},
	[POP_GONE] = {0, false, true, NULL},
	[POP_UNKNOWN] = {TXT_UNKNOWN, true, false, "-ERR"},
	[POP_BAD_CHAR] = {TXT_BAD_CHAR, true, false, "-ERR"},
	[POP_SYNTAX] = {TXT_SYNTAX, true, false, "-ERR"},
	[POP_TOO_MANY] = {TXT_TOO_MANY, true, false, "-ERR"},
	[POP_MISSING] = {TXT_MISSING, true, false, "-ERR"},
	[POP_TOO_LONG] = {TXT_TOO_LONG, true, false, "-ERR"},
	[POP_WRONG_STATE] = {TXT_WRONG_STATE, true, false, "-ERR"},
	[POP_BAD_NUMBER] = {TXT_BAD_NUMBER, true, false, "-ERR"},
	/* R1939-24, DEC-05: a well-formed number naming a deleted or
	 * nonexistent message is not a mistake to count: a client asking
	 * again about a message it deleted would be closed without UPDATE,
	 * its DELEs lost. */
	[POP_NO_MESSAGE] = {TXT_NO_MESSAGE, false, false, "-ERR"},
	[POP_BAD_LINES] = {TXT_BAD_LINES, true, false, "-ERR"},
	[POP_NO_USER] = {TXT_NO_USER, true, false, "-ERR"},
	[POP_PLAINTEXT] = {TXT_PLAINTEXT, true, false, "-ERR"},
	[POP_NO_MECH] = {TXT_NO_MECH, true, false, "-ERR"},
	[POP_BAD_SASL] = {TXT_BAD_SASL, true, false, "-ERR"},
	[POP_CANCELLED] = {TXT_CANCELLED, true, false, "-ERR"},
	[POP_NO_TLS] = {TXT_NO_TLS, true, false, "-ERR"},
	[POP_TLS_ACTIVE] = {TXT_TLS_ACTIVE, true, false, "-ERR"},
	/* R6856-07: malformed or SASLprep-prohibited names and passwords,
	 * or ones SASLprep lengthened past their buffer. */
	[POP_BAD_UTF8] = {TXT_BAD_UTF8, true, false, "-ERR"},
	[POP_PROHIBITED] = {TXT_PROHIBITED, true, false, "-ERR"},
	[POP_PREP_TOO_LONG] = {TXT_PREP_TOO_LONG, true, false, "-ERR"},
	/* R6856-06: a protocol error, so no response code. */
	[POP_STLS_AFTER_UTF8] = {TXT_STLS_AFTER_UTF8, true, false, "-ERR"},
	/* R6856-14: not a mistake to count: a client may try its list. */
	[POP_NO_LANG] = {TXT_NO_LANG, false, false, "-ERR"},
	[POP_AUTH_FAILED] = {TXT_AUTH_FAILED, false, false, "-ERR [AUTH]"},
	[POP_AUTH_TEMP] = {TXT_TEMP_FAILURE, false, false, "-ERR [SYS/TEMP]"},
	[POP_AUTH_PERM] = {TXT_LOGIN_CONFIG, false, false, "-ERR [SYS/PERM]"},
	/* After the drop nobody else can be authenticated: these close
	 * (RFC 1939 §4 allows closing after a failed login). */
	[POP_MD_IN_USE] = {TXT_MD_IN_USE, false, true, "-ERR [IN-USE]"},
	[POP_MD_TEMP] = {TXT_TEMP_FAILURE, false, true, "-ERR [SYS/TEMP]"},
	[POP_MD_PERM] = {TXT_MD_PERM, false, true, "-ERR [SYS/PERM]"},
	[POP_SYS_TEMP] = {TXT_TEMP_FAILURE, false, false, "-ERR [SYS/TEMP]"},
	[POP_UPDATE_FAILED] = {TXT_UPDATE_FAILED, false, true,
			       "-ERR [SYS/TEMP]"},
	/* UPDATE began and its journal is kept: the deletions are not lost,
	 * they finish at the next login or pop3d --recover (§4.8). */
	[POP_UPDATE_PENDING] = {TXT_UPDATE_PENDING, false, true,
				"-ERR [SYS/TEMP]"},
	/* UPDATE needs the admin (R3206-02): no journal directory that can
	 * be trusted, or a dotlock another user planted. Retrying cannot
	 * help. */
	[POP_UPDATE_PERM] = {TXT_UPDATE_PERM, false, true, "-ERR [SYS/PERM]"},
	/* R2449-05: after a good login, so that a wrong password learns
	 * nothing and resets nothing; closes like [IN-USE]. */
	[POP_LOGIN_DELAY] = {TXT_LOGIN_DELAY, false, true,
			     "-ERR [LOGIN-DELAY]"},
};

/* The reason= field of the logout line. */
static const char *const end_text[] = {
	[END_NONE] = "disconnect",
	[END_QUIT] = "QUIT",
	[END_DISCONNECT] = "disconnect",
	[END_TIMEOUT] = "timeout",
	[END_TLS_FAILED] = "TLS handshake failed",
	[END_AUTH_FAILS] = "too many failed logins",
	[END_BAD_COMMANDS] = "too many bad commands",
	[END_LOGIN_REFUSED] = "login refused",
	[END_MD_IN_USE] = "maildrop in use",
	[END_MD_TEMP] = "maildrop temporarily unavailable",
	[END_MD_PERM] = "maildrop refused",
	[END_LOGIN_DELAY] = "login delay",
	[END_ERROR] = "error",
};

/* DEC-23: the status (and code) as given, then the text in the
 * session's language. The formats are lang.c's, held by test_lang to the
 * English conversions. */
void
session_say(struct session *s, const char *status, enum text_id id, ...)
{
	char text[REPLY_LINE_MAX];
	va_list ap;

	va_start(ap, id);
	/* The one format that is not a literal: a catalogue's, which
	 * test_lang holds to the English conversions. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	vsnprintf(text, sizeof(text), lang_format(s->lang, id), ap);
#pragma GCC diagnostic pop
	va_end(ap);
	net_reply(s->io, "%s %s", status, text);
}

static void
say_result(struct session *s, enum pop_result r)
{
	session_say(s, results[r].status, results[r].text);
}

bool
session_cleartext_allowed(const struct session *s)
{
	return s->tls_active || s->peer->local || s->cfg->allow_plaintext;
}

/* R2449-07/08, R2595-05, R5034-01: the same list in both states, except
 * STLS, which is listed only while it can be used: before the login, not
 * under TLS, not after UTF8 (R6856-06 refuses it). LOGIN-DELAY and EXPIRE
 * have one value for every user (R2449-09: no USER suffix), and
 * IMPLEMENTATION says what runs only when the admin asks (R2449-19). */
static enum pop_result
cmd_capa(struct session *s, struct command *c)
{
	const struct config *cfg = s->cfg;

	session_say(s, "+OK", TXT_CAPA_FOLLOWS);
	net_reply(s->io, "TOP");
	net_reply(s->io, "UIDL");
	net_reply(s->io, "RESP-CODES");
	net_reply(s->io, "AUTH-RESP-CODE");
	net_reply(s->io, "PIPELINING");
	if (s->state == ST_AUTH && !s->tls_active && !s->utf8 &&
	    tls_available())
		net_reply(s->io, "STLS");
	if (session_cleartext_allowed(s)) {
		net_reply(s->io, "USER");
		net_reply(s->io, "SASL PLAIN LOGIN");
	}
	/* R6856-01: USER/PASS take UTF-8 wherever USER is offered. */
	net_reply(s->io, session_cleartext_allowed(s) ? "UTF8 USER" : "UTF8");
	net_reply(s->io, "LANG"); /* R6856-12 */
	if (cfg->login_delay > 0) /* R2449-21 */
		net_reply(s->io, "LOGIN-DELAY %u", cfg->login_delay);
	if (cfg->expire == EXPIRE_NEVER) /* R2449-20 */
		net_reply(s->io, "EXPIRE NEVER");
	else if (cfg->expire >= 0)
		net_reply(s->io, "EXPIRE %d", cfg->expire);
	if (cfg->capa_implementation)
		net_reply(s->io, "IMPLEMENTATION pop3d-%s", POP3D_VERSION);
	net_reply(s->io, ".");
	return POP_OK;
}

/* R6856-16: one line per catalogue, its tag and its name in itself. */
static enum pop_result
list_languages(struct session *s)
{
	session_say(s, "+OK", TXT_LANG_FOLLOWS);
	for (unsigned i = 0; i < lang_count; i++)
		net_reply(s->io, "%s %s", lang_tag(i), lang_self_name(i));
	net_reply(s->io, ".");
	return POP_OK;
}

/* R6856-13..15: the reply to LANG is already in the new language, after
 * the tag chosen; a failure keeps the old one. "*" is the administrator's
 * choice (--language), the same for every user, so no reply before the
 * login can depend on who logs in (R6856-17). */
static enum pop_result
cmd_lang(struct session *s, struct command *c)
{
	char status[sizeof("+OK ") + LANG_RANGE_MAX];
	const char *range;
	int i;

	if (c->argc == 0)
		return list_languages(s);
	range = c->argv[0];
	if (strcmp(range, "*") == 0)
		range = s->cfg->language != NULL ? s->cfg->language : "en";
	if ((i = lang_lookup(range)) < 0)
		return POP_NO_LANG;
	s->lang = (unsigned)i;
	snprintf(status, sizeof(status), "+OK %s", lang_tag(s->lang));
	session_say(s, status, TXT_LANG_CHANGED);
	return POP_OK;
}

/* The one place that decides on UPDATE (R1939-22): the client's QUIT in
 * TRANSACTION. A timeout, a drop or an error leaves every message. */
static enum pop_result
cmd_quit(struct session *s, struct command *c)
{
	s->end = END_QUIT;
	if (s->state == ST_TRANS)
		return trans_quit(s);
	session_say(s, "+OK", TXT_SIGNING_OFF);
	return POP_QUIT;
}

/* The rules a row carries besides its states and arity. */
enum command_flags {
	CF_KEEPS_USER = 1 << 0,	   /* may come between USER and PASS (DEC-11) */
	CF_NEEDS_USER = 1 << 1,	   /* only after USER */
	CF_ONCE_PER_USER = 1 << 2, /* not while a USER name is pending */
	CF_LONG_LINE = 1 << 3,	   /* up to AUTH_LINE_MAX, not CMD_LINE_MAX
				    * (DEC-13) */
	CF_UTF8_ARGS = 1 << 4,	   /* arguments may be UTF-8 (R6856-07) */
};

struct command_row {
	const char *name;
	unsigned states;
	int min_args, max_args;
	unsigned flags;
	enum pop_result (*run)(struct session *s, struct command *c);
};

static const struct command_row commands[] = {
	{"USER", ST_AUTH, 1, 1, CF_ONCE_PER_USER | CF_UTF8_ARGS, auth_cmd_user},
	{"PASS", ST_AUTH, 1, 1, CF_KEEPS_USER | CF_NEEDS_USER | CF_UTF8_ARGS,
	 auth_cmd_pass},
	{"AUTH", ST_AUTH, 0, 2, CF_LONG_LINE, auth_cmd_auth},
	{"STLS", ST_AUTH, 0, 0, 0, auth_cmd_stls},
	{"QUIT", ST_AUTH | ST_TRANS, 0, 0, CF_KEEPS_USER, cmd_quit},
	{"CAPA", ST_AUTH | ST_TRANS, 0, 0, CF_KEEPS_USER, cmd_capa},
	/* DEC-11: neither comes between USER and PASS. */
	{"UTF8", ST_AUTH, 0, 0, CF_ONCE_PER_USER, auth_cmd_utf8},
	{"LANG", ST_AUTH | ST_TRANS, 0, 1, CF_ONCE_PER_USER, cmd_lang},
	{"STAT", ST_TRANS, 0, 0, 0, trans_cmd_stat},
	{"LIST", ST_TRANS, 0, 1, 0, trans_cmd_list},
	{"RETR", ST_TRANS, 1, 1, 0, trans_cmd_retr},
	{"DELE", ST_TRANS, 1, 1, 0, trans_cmd_dele},
	{"NOOP", ST_TRANS, 0, 0, 0, trans_cmd_noop},
	{"RSET", ST_TRANS, 0, 0, 0, trans_cmd_rset},
	{"TOP", ST_TRANS, 2, 2, 0, trans_cmd_top},
	{"UIDL", ST_TRANS, 0, 1, 0, trans_cmd_uidl},
};

static const struct command_row *
find_command(const char *keyword)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, keyword) == 0)
			return &commands[i];
	return NULL;
}

/* How long a line may be, from the row its first word names: decided
 * before parsing, since an overlong line is refused unparsed. */
static size_t
line_max(const char *line, size_t len)
{
	size_t klen = strcspn(line, " ");
	const struct command_row *row;
	char keyword[5];

	if (klen < 3 || klen > 4 || klen >= len || line[klen] != ' ')
		return CMD_LINE_MAX;
	for (size_t i = 0; i < klen; i++)
		keyword[i] = toupper((unsigned char)line[i]);
	keyword[klen] = '\0';
	row = find_command(keyword);
	return row != NULL && (row->flags & CF_LONG_LINE) ? AUTH_LINE_MAX
							  : CMD_LINE_MAX;
}

/* The row's rules, in the order the replies take precedence. */
static enum pop_result
check_row(const struct command_row *row, const struct command *c,
	  enum state state, bool pending_user)
{
	if (!(row->states & state) ||
	    ((row->flags & CF_ONCE_PER_USER) && pending_user))
		return POP_WRONG_STATE;
	if (c->argc < row->min_args)
		return POP_MISSING;
	if (c->argc > row->max_args)
		return POP_TOO_MANY;
	if ((row->flags & CF_NEEDS_USER) && !pending_user)
		return POP_NO_USER;
	return POP_OK;
}

static enum pop_result
parse_result(enum command_error e)
{
	switch (e) {
	case CMD_OK:
		return POP_OK;
	case CMD_BAD_CHAR:
		return POP_BAD_CHAR;
	case CMD_BAD_KEYWORD:
		return POP_UNKNOWN;
	case CMD_BAD_SPACING:
		return POP_SYNTAX;
	case CMD_TOO_MANY:
		return POP_TOO_MANY;
	case CMD_EIGHT_BIT:
		return POP_OK; /* the row decides */
	}
	return POP_SYNTAX;
}

static void
forget_user(struct session *s)
{
	if (s->auth != NULL)
		s->auth->have_user = false;
}

static enum pop_result
dispatch(struct session *s, char *line, size_t len)
{
	const struct command_row *row;
	struct command c;
	bool pending_user = s->auth != NULL && s->auth->have_user;
	enum command_error e;
	enum pop_result r;

	if (len + 2 > line_max(line, len)) {
		forget_user(s);
		return POP_TOO_LONG;
	}
	e = command_parse(line, len, &c);
	r = parse_result(e);
	row = r == POP_OK ? find_command(c.keyword) : NULL;
	/* R1939-03, DEC-22: 8-bit octets only in the arguments of USER and
	 * PASS, which judge them as UTF-8 (R6856-07). */
	if (e == CMD_EIGHT_BIT &&
	    (row == NULL || !(row->flags & CF_UTF8_ARGS))) {
		r = POP_BAD_CHAR;
		row = NULL;
	}
	/* DEC-11: anything but a CF_KEEPS_USER command, another USER
	 * included, forgets the name. */
	if (row == NULL || !(row->flags & CF_KEEPS_USER))
		forget_user(s);
	if (r != POP_OK)
		return r;
	if (row == NULL)
		return POP_UNKNOWN;
	if ((r = check_row(row, &c, s->state, pending_user)) != POP_OK)
		return r;
	return row->run(s, &c);
}

static enum end_reason
net_end(enum net_status st)
{
	return st == NET_TIMEOUT ? END_TIMEOUT : END_DISCONNECT;
}

/* The logout line's reason for a result that closes the session. A
 * maildrop that cannot be opened after a good login is named as such:
 * "login refused" was read as a failed login. Its cause is logged before. */
static enum end_reason
close_reason(const struct session *s, enum pop_result r)
{
	switch (r) {
	case POP_MD_IN_USE:
		return END_MD_IN_USE;
	case POP_MD_TEMP:
		return END_MD_TEMP;
	case POP_MD_PERM:
		return END_MD_PERM;
	case POP_LOGIN_DELAY:
		return END_LOGIN_DELAY;
	case POP_ABORT:
		return s->io->out_failed != NET_OK ? net_end(s->io->out_failed)
						   : END_ERROR;
	default:
		return END_LOGIN_REFUSED;
	}
}

/* Turn a result into its reply and decide whether the session goes on. */
static bool
conclude(struct session *s, enum pop_result r)
{
	if (r == POP_AUTH_FAILED || r == POP_AUTH_TEMP || r == POP_AUTH_PERM) {
		say_result(s, r);
		if (s->auth->failures < AUTH_FAILS_MAX)
			return true;
		s->end = END_AUTH_FAILS;
		return false;
	}
	if (!results[r].bad) {
		s->bad_commands = 0;
		if (results[r].status != NULL)
			say_result(s, r);
		if (results[r].close && s->end == END_NONE)
			s->end = close_reason(s, r);
		return !results[r].close;
	}
	if (++s->bad_commands >= BAD_COMMANDS_MAX) {
		session_say(s, "-ERR", TXT_BAD_COMMANDS);
		s->end = END_BAD_COMMANDS;
		return false;
	}
	say_result(s, r);
	return true;
}

/* Read and run commands until the session ends or a login succeeds. */
static enum pop_result
serve(struct session *s)
{
	char line[AUTH_LINE_MAX];
	enum net_status st;
	enum pop_result r;
	size_t len;

	for (;;) {
		st = net_read_line(s->io, line, sizeof(line), &len);
		if (st == NET_OK)
			r = dispatch(s, line, len);
		else if (st == NET_TOO_LONG) /* DEC-11, as in dispatch */
			r = POP_TOO_LONG, forget_user(s);
		else
			r = POP_GONE, s->gone = st;
		/* The line may have been a PASS or AUTH. */
		explicit_bzero(line, sizeof(line));
		if (r == POP_LOGIN)
			return r;
		if (r == POP_GONE && s->end == END_NONE)
			s->end = net_end(s->gone);
		if (!conclude(s, r))
			return r;
		if (s->io->out_failed != NET_OK) {
			s->end = net_end(s->io->out_failed);
			return POP_GONE;
		}
	}
}

size_t
session_greeting(char *buf, size_t cap)
{
	/* R2449-02/03: "+OK", no response code, no APOP timestamp; English
	 * (LANG_DEFAULT) until a LANG command (DEC-30). TXT_READY has no
	 * conversions (test_lang holds every catalogue to the English
	 * ones), so its format is its text. */
	int n = snprintf(buf, cap, "+OK %s\r\n",
			 lang_format(LANG_DEFAULT, TXT_READY));

	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

enum session_end
session_authorize(const struct config *cfg, const struct peer *peer,
		  struct netio *io, const struct session_hooks *hooks,
		  bool greeted, struct session_mode *mode_r)
{
	struct auth_state a = {.hooks = hooks};
	struct session s = {.cfg = cfg,
			    .peer = peer,
			    .io = io,
			    .state = ST_AUTH,
			    .lang = LANG_DEFAULT,
			    .auth = &a};
	char greeting[REPLY_LINE_MAX];

	*mode_r = (struct session_mode){.lang = LANG_DEFAULT};
	/* Issue 7: nobody gets to sit unauthenticated for long, however
	 * slowly they type. */
	net_set_deadline(io, cfg->preauth_timeout);
	/* RFC 8314: the handshake first; the greeting is the first octet
	 * sent inside TLS. */
	if (cfg->tls_implicit && net_start_tls(io) < 0) {
		s.end = END_TLS_FAILED;
		goto ended;
	}
	s.tls_active = cfg->tls_implicit;
	/* Greeted already by the monitor, before the fork (monitor.c):
	 * once only. */
	if (!greeted)
		net_write(io, greeting,
			  session_greeting(greeting, sizeof(greeting)));
	if (serve(&s) == POP_LOGIN && net_flush(io) == 0) {
		*mode_r = (struct session_mode){s.tls_active, s.utf8, s.lang};
		return SESSION_LOGGED_IN;
	}
	net_flush(io);
ended:
	log_msg(LOG_INFO, "logout: user=- peer=%s reason=%s", peer->addr,
		end_text[s.end]);
	return SESSION_ENDED;
}

/* The maildrop's figures only if it was loaded. */
static void
log_logout(const struct session *s)
{
	const struct trans_state *t = s->trans;

	if (s->state != ST_TRANS) {
		log_msg(LOG_INFO, "logout: user=%s reason=%s", t->who.name,
			end_text[s->end]);
		return;
	}
	log_msg(LOG_INFO,
		"logout: user=%s reason=%s retrieved=%zu/%" PRIu64
		" deleted=%zu/%" PRIu64 " left=%zu/%" PRIu64,
		t->who.name, end_text[s->end], t->retrieved, t->retrieved_bytes,
		t->update.deleted, t->update.deleted_bytes, t->update.left,
		t->update.left_bytes);
}

void
session_transact(const struct config *cfg, const struct peer *peer,
		 struct netio *io, const struct auth_user *who,
		 const char *method, const struct session_mode *mode)
{
	struct trans_state t = {.who = *who};
	struct session s = {.cfg = cfg,
			    .peer = peer,
			    .io = io,
			    .state = ST_AUTH,
			    .tls_active = mode->tls,
			    .utf8 = mode->utf8,
			    .lang = mode->lang,
			    .trans = &t};
	enum pop_result r;

	/* R1939-16: lock and load first; then answer the login. */
	r = trans_enter(&s);
	if (r == POP_OK)
		serve(&s);
	else
		conclude(&s, r);
	net_flush(io);
	log_logout(&s);
	maildrop_close(t.md);
}
