#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "command.h"
#include "dotstuff.h"
#include "maildrop.h"
#include "params.h"

enum state { ST_AUTH = 1, ST_TRANS = 2 };

/* What a command came to. Handlers reply themselves only on success;
 * every other outcome is turned into its reply in one table below. */
enum pop_result {
	POP_OK,	   /* replied */
	POP_QUIT,  /* replied; the session ends */
	POP_ABORT, /* a reply broke off; the session ends, nothing more */
	POP_UNKNOWN,
	POP_BAD_CHAR,
	POP_SYNTAX,
	POP_TOO_MANY,
	POP_MISSING,
	POP_TOO_LONG,
	POP_WRONG_STATE,
	POP_BAD_NUMBER,
	POP_NO_MESSAGE,
	POP_BAD_LINES,
	POP_NO_USER,
	POP_PLAINTEXT,
	POP_AUTH_FAILED,
	POP_AUTH_TEMP,
	POP_AUTH_PERM,
	POP_MD_IN_USE,
	POP_MD_TEMP,
	POP_MD_PERM,
	POP_SYS_TEMP,
	POP_UPDATE_FAILED,
};

static const struct {
	const char *reply;
	bool bad;   /* a client mistake: counts toward BAD_COMMANDS_MAX */
	bool close; /* the session ends after this reply */
} results[] = {
	[POP_OK] = {NULL, false, false},
	[POP_QUIT] = {NULL, false, true},
	[POP_ABORT] = {NULL, false, true},
	[POP_UNKNOWN] = {"-ERR unknown command", true, false},
	[POP_BAD_CHAR] = {"-ERR invalid character in command", true, false},
	[POP_SYNTAX] = {"-ERR syntax error", true, false},
	[POP_TOO_MANY] = {"-ERR too many arguments", true, false},
	[POP_MISSING] = {"-ERR missing argument", true, false},
	[POP_TOO_LONG] = {"-ERR line too long", true, false},
	[POP_WRONG_STATE] = {"-ERR command not valid in this state", true,
			     false},
	[POP_BAD_NUMBER] = {"-ERR invalid message number", true, false},
	[POP_NO_MESSAGE] = {"-ERR no such message", true, false},
	[POP_BAD_LINES] = {"-ERR invalid line count", true, false},
	[POP_NO_USER] = {"-ERR USER first", true, false},
	[POP_PLAINTEXT] = {"-ERR cleartext login not allowed on this "
			   "connection",
			   true, false},
	[POP_AUTH_FAILED] = {"-ERR [AUTH] authentication failed", false, false},
	[POP_AUTH_TEMP] = {"-ERR [SYS/TEMP] temporary failure, try again "
			   "later",
			   false, false},
	[POP_AUTH_PERM] = {"-ERR [SYS/PERM] login configuration error, "
			   "contact the administrator",
			   false, false},
	/* After the drop we cannot authenticate anyone again: these close
	 * (RFC 1939 §4 allows closing after a failed login). */
	[POP_MD_IN_USE] = {"-ERR [IN-USE] maildrop is locked by another "
			   "session",
			   false, true},
	[POP_MD_TEMP] = {"-ERR [SYS/TEMP] temporary failure, try again "
			 "later",
			 false, true},
	[POP_MD_PERM] = {"-ERR [SYS/PERM] maildrop cannot be opened, "
			 "contact the administrator",
			 false, true},
	[POP_SYS_TEMP] = {"-ERR [SYS/TEMP] temporary failure, try again "
			  "later",
			  false, false},
	[POP_UPDATE_FAILED] = {"-ERR [SYS/TEMP] messages not deleted, try "
			       "again later",
			       false, true},
};

struct session {
	const struct config *cfg;
	const struct peer *peer;
	struct netio *io;
	enum state state;
	bool have_user;
	char user[CMD_LINE_MAX];
	int auth_failures;
	int bad_commands;
	struct auth_user who;
	struct maildrop *md;
	size_t retrieved;
	uint64_t retrieved_bytes;
	struct md_update_stats update;
	const char *reason; /* why the session ended, for the log */
};

struct command_row {
	const char *name;
	unsigned states;
	int min_args, max_args;
	enum pop_result (*run)(struct session *s, struct command *c);
};

static const char *
plural(size_t n)
{
	return n == 1 ? "" : "s";
}

static bool
cleartext_allowed(const struct session *s)
{
	return s->peer->local || s->cfg->allow_plaintext;
}

/* --- AUTHORIZATION ------------------------------------------------------ */

static enum pop_result
cmd_capa(struct session *s, struct command *c)
{
	net_reply(s->io, "+OK capability list follows");
	net_reply(s->io, "TOP");
	net_reply(s->io, "UIDL");
	net_reply(s->io, "RESP-CODES");
	net_reply(s->io, "AUTH-RESP-CODE");
	net_reply(s->io, "PIPELINING");
	if (cleartext_allowed(s))
		net_reply(s->io, "USER");
	net_reply(s->io, "IMPLEMENTATION pop3d-%s", POP3D_VERSION);
	net_reply(s->io, ".");
	return POP_OK;
}

static enum pop_result
cmd_user(struct session *s, struct command *c)
{
	if (!cleartext_allowed(s))
		return POP_PLAINTEXT;
	/* R1939-27, R3206-05: the same answer for every name. */
	snprintf(s->user, sizeof(s->user), "%s", c->argv[0]);
	s->have_user = true;
	net_reply(s->io, "+OK send PASS");
	return POP_OK;
}

static void
sleep_until(const struct timespec *t)
{
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) ==
	       EINTR)
		;
}

static enum pop_result
verdict_result(enum auth_verdict v)
{
	switch (v) {
	case AUTH_OK:
		return POP_OK;
	case AUTH_TEMPFAIL:
		return POP_AUTH_TEMP;
	case AUTH_PERMFAIL:
		return POP_AUTH_PERM;
	default:
		return POP_AUTH_FAILED;
	}
}

static enum pop_result
md_result(enum md_status st, enum pop_result temp)
{
	switch (st) {
	case MD_OK:
		return POP_OK;
	case MD_IN_USE:
		return temp == POP_MD_TEMP ? POP_MD_IN_USE : temp;
	case MD_PERMFAIL:
		return temp == POP_MD_TEMP ? POP_MD_PERM : temp;
	default:
		return temp;
	}
}

static void
maildrop_totals(const struct session *s, size_t *n_r, uint64_t *bytes_r)
{
	*n_r = 0;
	*bytes_r = 0;
	for (size_t i = 0; i < maildrop_count(s->md); i++)
		if (!maildrop_deleted(s->md, i)) {
			(*n_r)++;
			*bytes_r += maildrop_size(s->md, i);
		}
}

/* R1939-16: lock and load the maildrop before saying +OK. */
static enum pop_result
enter_transaction(struct session *s)
{
	struct md_limits limits = {s->cfg->max_messages, s->cfg->max_size};
	char path[PATH_MAX];
	enum md_status st;
	uint64_t bytes;
	size_t n;

	if (maildrop_path(s->cfg->mailbox, s->who.name, s->who.home, path,
			  sizeof(path)) < 0) {
		log_msg(LOG_ERR, "user %s: spool path too long", s->who.name);
		return POP_MD_PERM;
	}
	st = maildrop_open(path, s->who.uid, &limits, &s->md);
	if (st != MD_OK)
		return md_result(st, POP_MD_TEMP);
	s->state = ST_TRANS;
	maildrop_totals(s, &n, &bytes);
	log_msg(LOG_INFO, "maildrop: user=%s messages=%zu bytes=%" PRIu64,
		s->who.name, n, bytes);
	net_reply(s->io, "+OK maildrop has %zu message%s (%" PRIu64 " octets)",
		  n, plural(n), bytes);
	return POP_OK;
}

static enum pop_result
cmd_pass(struct session *s, struct command *c)
{
	struct timespec deadline;
	enum auth_verdict v;

	if (!s->have_user)
		return POP_NO_USER;
	s->have_user = false;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += AUTH_FAIL_DELAY_MS / 1000;
	deadline.tv_nsec += (AUTH_FAIL_DELAY_MS % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	v = auth_login(s->cfg, s->peer, s->user, c->rest, &s->who);
	if (v == AUTH_OK) {
		log_msg(LOG_INFO, "login: user=%s peer=%s method=USER tls=no",
			s->who.name, s->peer->addr);
		return enter_transaction(s);
	}
	/* design.md §3: never echo a name PAM did not know into the log;
	 * it may be a password typed into the wrong field. */
	log_msg(LOG_NOTICE, "login failed: user=%s peer=%s method=USER tls=no",
		v == AUTH_UNKNOWN_USER ? "UNKNOWN USER" : s->user,
		s->peer->addr);
	s->auth_failures++;
	sleep_until(&deadline);
	return verdict_result(v);
}

/* --- TRANSACTION -------------------------------------------------------- */

/* R1939-24, DEC-09: a number naming a message that is not deleted. */
static enum pop_result
message_arg(struct session *s, const char *arg, size_t *i_r)
{
	unsigned long n;

	switch (command_number(arg, &n)) {
	case NUMBER_BAD:
		return POP_BAD_NUMBER;
	case NUMBER_OVERFLOW:
		return POP_NO_MESSAGE;
	case NUMBER_OK:
		break;
	}
	if (n == 0 || n > maildrop_count(s->md) ||
	    maildrop_deleted(s->md, n - 1))
		return POP_NO_MESSAGE;
	*i_r = n - 1;
	return POP_OK;
}

static enum pop_result
cmd_stat(struct session *s, struct command *c)
{
	uint64_t bytes;
	size_t n;

	maildrop_totals(s, &n, &bytes);
	net_reply(s->io, "+OK %zu %" PRIu64, n, bytes);
	return POP_OK;
}

/* LIST and UIDL share their shape: one message, or all that are left. */
static enum pop_result
scan_listing(struct session *s, struct command *c, bool uidl)
{
	enum pop_result r;
	uint64_t bytes;
	size_t i, n;

	if (c->argc == 1) {
		if ((r = message_arg(s, c->argv[0], &i)) != POP_OK)
			return r;
		if (uidl)
			net_reply(s->io, "+OK %zu %s", i + 1,
				  maildrop_uid(s->md, i));
		else
			net_reply(s->io, "+OK %zu %" PRIu64, i + 1,
				  maildrop_size(s->md, i));
		return POP_OK;
	}
	maildrop_totals(s, &n, &bytes);
	if (uidl)
		net_reply(s->io, "+OK unique-id listing follows");
	else
		net_reply(s->io, "+OK %zu message%s (%" PRIu64 " octets)", n,
			  plural(n), bytes);
	for (i = 0; i < maildrop_count(s->md); i++) {
		if (maildrop_deleted(s->md, i))
			continue;
		if (uidl)
			net_reply(s->io, "%zu %s", i + 1,
				  maildrop_uid(s->md, i));
		else
			net_reply(s->io, "%zu %" PRIu64, i + 1,
				  maildrop_size(s->md, i));
	}
	net_reply(s->io, ".");
	return POP_OK;
}

static enum pop_result
cmd_list(struct session *s, struct command *c)
{
	return scan_listing(s, c, false);
}

static enum pop_result
cmd_uidl(struct session *s, struct command *c)
{
	return scan_listing(s, c, true);
}

static int
write_to_net(void *ctx, const void *data, size_t len)
{
	return net_write(ctx, data, len);
}

static int
feed_stuffer(void *ctx, const char *data, size_t len)
{
	return dotstuff_feed(ctx, data, len);
}

/* RETR and TOP: verify, promise, stream, and end with "." only if every
 * byte went out as it was parsed (design.md §4, guarantee 4). */
static enum pop_result
send_message(struct session *s, size_t i, const unsigned long *lines)
{
	struct dotstuff ds;
	enum md_status st;

	st = maildrop_verify(s->md, i);
	if (st != MD_OK)
		return POP_SYS_TEMP;
	if (lines == NULL)
		net_reply(s->io, "+OK %" PRIu64 " octets",
			  maildrop_size(s->md, i));
	else
		net_reply(s->io, "+OK top of message follows");
	dotstuff_init(&ds, write_to_net, s->io);
	st = maildrop_send(s->md, i, lines, feed_stuffer, &ds);
	if (st != MD_OK || dotstuff_finish(&ds) < 0) {
		if (s->io->out_failed == NET_OK)
			log_msg(LOG_ERR, "user=%s: message %zu broken off",
				s->who.name, i + 1);
		return POP_ABORT;
	}
	return POP_OK;
}

static enum pop_result
cmd_retr(struct session *s, struct command *c)
{
	enum pop_result r;
	size_t i;

	if ((r = message_arg(s, c->argv[0], &i)) != POP_OK)
		return r;
	if ((r = send_message(s, i, NULL)) == POP_OK) {
		s->retrieved++;
		s->retrieved_bytes += maildrop_size(s->md, i);
	}
	return r;
}

static enum pop_result
cmd_top(struct session *s, struct command *c)
{
	unsigned long lines;
	enum pop_result r;
	size_t i;

	if ((r = message_arg(s, c->argv[0], &i)) != POP_OK)
		return r;
	/* DEC-17: a count too large for the type means every line. */
	if (command_number(c->argv[1], &lines) == NUMBER_BAD)
		return POP_BAD_LINES;
	return send_message(s, i, &lines);
}

static enum pop_result
cmd_dele(struct session *s, struct command *c)
{
	enum pop_result r;
	size_t i;

	if ((r = message_arg(s, c->argv[0], &i)) != POP_OK)
		return r;
	maildrop_set_deleted(s->md, i, true);
	net_reply(s->io, "+OK message %zu deleted", i + 1);
	return POP_OK;
}

static enum pop_result
cmd_noop(struct session *s, struct command *c)
{
	net_reply(s->io, "+OK");
	return POP_OK;
}

static enum pop_result
cmd_rset(struct session *s, struct command *c)
{
	uint64_t bytes;
	size_t n;

	for (size_t i = 0; i < maildrop_count(s->md); i++)
		maildrop_set_deleted(s->md, i, false);
	maildrop_totals(s, &n, &bytes);
	net_reply(s->io, "+OK maildrop has %zu message%s (%" PRIu64 " octets)",
		  n, plural(n), bytes);
	return POP_OK;
}

/* UPDATE happens here and nowhere else (R1939-22). */
static enum pop_result
cmd_quit(struct session *s, struct command *c)
{
	s->reason = "QUIT";
	if (s->state == ST_TRANS) {
		if (maildrop_update(s->md, &s->update) != MD_OK) {
			s->update.left += s->update.deleted;
			s->update.left_bytes += s->update.deleted_bytes;
			s->update.deleted = s->update.deleted_bytes = 0;
			return POP_UPDATE_FAILED;
		}
		net_reply(s->io, "+OK pop3d signing off (%zu message%s left)",
			  s->update.left, plural(s->update.left));
		return POP_QUIT;
	}
	net_reply(s->io, "+OK pop3d signing off");
	return POP_QUIT;
}

/* --- dispatch ------------------------------------------------------------- */

static const struct command_row commands[] = {
	{"USER", ST_AUTH, 1, 1, cmd_user},
	{"PASS", ST_AUTH, 1, 1, cmd_pass},
	{"QUIT", ST_AUTH | ST_TRANS, 0, 0, cmd_quit},
	{"CAPA", ST_AUTH | ST_TRANS, 0, 0, cmd_capa},
	{"STAT", ST_TRANS, 0, 0, cmd_stat},
	{"LIST", ST_TRANS, 0, 1, cmd_list},
	{"RETR", ST_TRANS, 1, 1, cmd_retr},
	{"DELE", ST_TRANS, 1, 1, cmd_dele},
	{"NOOP", ST_TRANS, 0, 0, cmd_noop},
	{"RSET", ST_TRANS, 0, 0, cmd_rset},
	{"TOP", ST_TRANS, 2, 2, cmd_top},
	{"UIDL", ST_TRANS, 0, 1, cmd_uidl},
};

static const struct command_row *
find_command(const char *keyword)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, keyword) == 0)
			return &commands[i];
	return NULL;
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
	}
	return POP_SYNTAX;
}

static enum pop_result
dispatch(struct session *s, char *line, size_t len)
{
	const struct command_row *row;
	struct command c;
	bool pending_user = s->have_user;
	enum pop_result r;

	r = parse_result(command_parse(line, len, &c));
	row = r == POP_OK ? find_command(c.keyword) : NULL;
	/* DEC-11: after USER only PASS, QUIT or CAPA may come; anything
	 * else, another USER included, forgets the name. */
	if (row == NULL || (row->run != cmd_pass && row->run != cmd_quit &&
			    row->run != cmd_capa))
		s->have_user = false;
	if (r != POP_OK)
		return r;
	if (row == NULL)
		return POP_UNKNOWN;
	if (!(row->states & s->state) || (row->run == cmd_user && pending_user))
		return POP_WRONG_STATE;
	if (c.argc < row->min_args)
		return POP_MISSING;
	if (c.argc > row->max_args)
		return POP_TOO_MANY;
	return row->run(s, &c);
}

/* Turn a result into its reply and decide whether the session goes on. */
static bool
conclude(struct session *s, enum pop_result r)
{
	if (r == POP_AUTH_FAILED || r == POP_AUTH_TEMP || r == POP_AUTH_PERM) {
		net_reply(s->io, "%s", results[r].reply);
		if (s->auth_failures < AUTH_FAILS_MAX)
			return true;
		s->reason = "too many failed logins";
		return false;
	}
	if (!results[r].bad) {
		s->bad_commands = 0;
		if (results[r].reply != NULL)
			net_reply(s->io, "%s", results[r].reply);
		if (results[r].close && s->reason == NULL)
			s->reason = r == POP_ABORT ? "error" : "login refused";
		return !results[r].close;
	}
	if (++s->bad_commands >= BAD_COMMANDS_MAX) {
		net_reply(s->io, "-ERR too many bad commands, closing "
				 "connection");
		s->reason = "too many bad commands";
		return false;
	}
	net_reply(s->io, "%s", results[r].reply);
	return true;
}

static const char *
net_reason(enum net_status st)
{
	return st == NET_TIMEOUT ? "timeout" : "disconnect";
}

static void
log_logout(const struct session *s)
{
	if (s->state != ST_TRANS) {
		log_msg(LOG_INFO, "logout: user=- peer=%s reason=%s",
			s->peer->addr, s->reason);
		return;
	}
	log_msg(LOG_INFO,
		"logout: user=%s reason=%s retrieved=%zu/%" PRIu64
		" deleted=%zu/%" PRIu64 " left=%zu/%" PRIu64,
		s->who.name, s->reason, s->retrieved, s->retrieved_bytes,
		s->update.deleted, s->update.deleted_bytes, s->update.left,
		s->update.left_bytes);
}

void
session_run(const struct config *cfg, const struct peer *peer, struct netio *io)
{
	struct session s = {
		.cfg = cfg, .peer = peer, .io = io, .state = ST_AUTH};
	char line[CMD_LINE_MAX];
	enum net_status st;
	enum pop_result r;
	size_t len;
	bool go_on = true;

	log_msg(LOG_INFO, "connect from %s", peer->addr);
	net_reply(io, "+OK pop3d ready");
	while (go_on) {
		st = net_read_line(io, line, sizeof(line), &len);
		if (st == NET_OK)
			r = dispatch(&s, line, len);
		else if (st == NET_TOO_LONG)
			r = POP_TOO_LONG;
		else {
			s.reason = net_reason(st);
			break;
		}
		/* The line may have been a PASS. */
		explicit_bzero(line, sizeof(line));
		go_on = conclude(&s, r);
		if (io->out_failed != NET_OK) {
			s.reason = net_reason(io->out_failed);
			break;
		}
	}
	net_flush(io);
	if (s.state == ST_TRANS && strcmp(s.reason, "QUIT") != 0) {
		/* No UPDATE (R1939-22): every message stays. */
		s.update = (struct md_update_stats){0};
		for (size_t i = 0; i < maildrop_count(s.md); i++) {
			s.update.left++;
			s.update.left_bytes += maildrop_size(s.md, i);
		}
	}
	log_logout(&s);
	maildrop_close(s.md);
}
