/* TRANSACTION and UPDATE (RFC 1939 §5-6), as the user. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dotstuff.h"
#include "log.h"
#include "logindelay.h"
#include "params.h"
#include "session_int.h"

/* The singular text for one, the plural for any other count. */
static enum text_id
counted(size_t n, enum text_id one, enum text_id many)
{
	return n == 1 ? one : many;
}

/* At login, where every failure ends the session. */
static enum pop_result
md_result(enum md_status st)
{
	switch (st) {
	case MD_OK:
		return POP_OK;
	case MD_IN_USE:
	case MD_BUSY:
		return POP_MD_IN_USE;
	case MD_PERMFAIL:
		return POP_MD_PERM;
	default:
		return POP_MD_TEMP;
	}
}

/* R2449-21: --login-delay, in the user's own journal directory (jdir,
 * NULL if its path did not fit: then not enforced). Checked before the
 * maildrop is opened, which is the cost the delay spares (RFC 2449
 * §8.1.1); recorded only at the +OK to a login, where RFC 2449 §6.5
 * counts from, so a login refused here or by the maildrop counts for
 * nothing. */
static bool
login_too_soon(const struct session *s, const char *jdir)
{
	struct timespec now;
	unsigned left;

	if (s->cfg->login_delay == 0 || jdir == NULL)
		return false;
	clock_gettime(CLOCK_REALTIME, &now);
	if (!logindelay_too_soon(jdir, s->cfg->login_delay, &now, &left))
		return false;
	log_msg(LOG_NOTICE, "login delay: user=%s %u s to wait",
		s->trans->who.name, left);
	return true;
}

static void
login_record(const struct session *s, const char *jdir)
{
	struct timespec now;

	if (s->cfg->login_delay == 0 || jdir == NULL)
		return;
	/* Wall-clock time: the record outlives the process and the boot. */
	clock_gettime(CLOCK_REALTIME, &now);
	(void)logindelay_record(jdir, &now);
}

/* R1939-16: lock and load the maildrop before saying +OK. */
enum pop_result
trans_enter(struct session *s)
{
	struct md_limits limits = {s->cfg->max_messages, s->cfg->max_size, NULL,
				   s->cfg->shared_spool};
	char jdir[PATH_MAX];
	char path[PATH_MAX];
	struct md_totals t;
	enum md_status st;

	if (maildrop_path(s->cfg->mailbox, s->trans->who.name,
			  s->trans->who.home, path, sizeof(path)) < 0) {
		log_msg(LOG_ERR, "user %s: spool path too long",
			s->trans->who.name);
		return POP_MD_PERM;
	}
	/* The monitor made this directory the user's (journal_prepare);
	 * maildrop_open judges it before trusting a journal in it. */
	if ((size_t)snprintf(jdir, sizeof(jdir), "%s/%lu", s->cfg->journal_dir,
			     (unsigned long)s->trans->who.uid) < sizeof(jdir))
		limits.journal_dir = jdir;
	if (login_too_soon(s, limits.journal_dir))
		return POP_LOGIN_DELAY;
	st = maildrop_open(path, s->trans->who.uid, &limits, &s->trans->md);
	if (st != MD_OK)
		return md_result(st);
	s->state = ST_TRANS;
	t = maildrop_totals(s->trans->md);
	/* Until UPDATE runs, every message stays. */
	s->trans->update = (struct md_update_stats){.left = t.count,
						    .left_bytes = t.bytes};
	log_msg(LOG_INFO, "maildrop: user=%s messages=%zu bytes=%" PRIu64,
		s->trans->who.name, t.count, t.bytes);
	login_record(s, limits.journal_dir);
	session_say(s, "+OK", counted(t.count, TXT_MAILDROP_1, TXT_MAILDROP_N),
		    t.count, t.bytes);
	return POP_OK;
}

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
	if (n == 0 || n > maildrop_count(s->trans->md) ||
	    maildrop_deleted(s->trans->md, n - 1))
		return POP_NO_MESSAGE;
	*i_r = n - 1;
	return POP_OK;
}

enum pop_result
trans_cmd_stat(struct session *s, struct command *c)
{
	struct md_totals t = maildrop_totals(s->trans->md);

	net_reply(s->io, "+OK %zu %" PRIu64, t.count, t.bytes);
	return POP_OK;
}

/* LIST and UIDL share their shape: one message, or all that are left. */
static enum pop_result
scan_listing(struct session *s, struct command *c, bool uidl)
{
	struct md_totals t;
	enum pop_result r;
	size_t i;

	if (c->argc == 1) {
		if ((r = message_arg(s, c->argv[0], &i)) != POP_OK)
			return r;
		if (uidl)
			net_reply(s->io, "+OK %zu %s", i + 1,
				  maildrop_uid(s->trans->md, i));
		else
			net_reply(s->io, "+OK %zu %" PRIu64, i + 1,
				  maildrop_size(s->trans->md, i));
		return POP_OK;
	}
	t = maildrop_totals(s->trans->md);
	if (uidl)
		session_say(s, "+OK", TXT_UIDL_FOLLOWS);
	else
		session_say(s, "+OK", counted(t.count, TXT_SCAN_1, TXT_SCAN_N),
			    t.count, t.bytes);
	for (i = 0; i < maildrop_count(s->trans->md); i++) {
		if (maildrop_deleted(s->trans->md, i))
			continue;
		if (uidl)
			net_reply(s->io, "%zu %s", i + 1,
				  maildrop_uid(s->trans->md, i));
		else
			net_reply(s->io, "%zu %" PRIu64, i + 1,
				  maildrop_size(s->trans->md, i));
	}
	net_reply(s->io, ".");
	return POP_OK;
}

enum pop_result
trans_cmd_list(struct session *s, struct command *c)
{
	return scan_listing(s, c, false);
}

enum pop_result
trans_cmd_uidl(struct session *s, struct command *c)
{
	return scan_listing(s, c, true);
}

/* RETR and TOP: verify, promise, stream, and end with "." only if every
 * byte went out as it was parsed (design.md §4, guarantee 4). */
static enum pop_result
send_message(struct session *s, size_t i, const unsigned long *lines)
{
	struct dotstuff ds;
	enum md_status st;

	st = maildrop_verify(s->trans->md, i);
	if (st != MD_OK)
		return POP_SYS_TEMP;
	if (lines == NULL)
		session_say(s, "+OK", TXT_OCTETS,
			    maildrop_size(s->trans->md, i));
	else
		session_say(s, "+OK", TXT_TOP_FOLLOWS);
	/* The bytes go maildrop -> encoder -> client, not back through
	 * here. */
	dotstuff_init(&ds, net_sink, s->io);
	st = maildrop_send(s->trans->md, i, lines, dotstuff_sink, &ds);
	if (st != MD_OK || dotstuff_finish(&ds) < 0) {
		if (s->io->out_failed == NET_OK)
			log_msg(LOG_ERR, "user=%s: message %zu broken off",
				s->trans->who.name, i + 1);
		return POP_ABORT;
	}
	return POP_OK;
}

enum pop_result
trans_cmd_retr(struct session *s, struct command *c)
{
	enum pop_result r;
	size_t i;

	if ((r = message_arg(s, c->argv[0], &i)) != POP_OK)
		return r;
	if ((r = send_message(s, i, NULL)) == POP_OK) {
		s->trans->retrieved++;
		s->trans->retrieved_bytes += maildrop_size(s->trans->md, i);
	}
	return r;
}

enum pop_result
trans_cmd_top(struct session *s, struct command *c)
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

enum pop_result
trans_cmd_dele(struct session *s, struct command *c)
{
	enum pop_result r;
	size_t i;

	if ((r = message_arg(s, c->argv[0], &i)) != POP_OK)
		return r;
	if (maildrop_set_deleted(s->trans->md, i, true) < 0)
		return POP_SYS_TEMP;
	session_say(s, "+OK", TXT_DELETED, i + 1);
	return POP_OK;
}

enum pop_result
trans_cmd_noop(struct session *s, struct command *c)
{
	net_reply(s->io, "+OK");
	return POP_OK;
}

enum pop_result
trans_cmd_rset(struct session *s, struct command *c)
{
	struct md_totals t;

	maildrop_reset(s->trans->md);
	t = maildrop_totals(s->trans->md);
	session_say(s, "+OK", counted(t.count, TXT_MAILDROP_1, TXT_MAILDROP_N),
		    t.count, t.bytes);
	return POP_OK;
}

/* UPDATE happens here and nowhere else (R1939-22). */
enum pop_result
trans_quit(struct session *s)
{
	enum md_status st = maildrop_update(s->trans->md, &s->trans->update);

	/* Retrying cannot help when the admin must act (a dotlock another
	 * user planted, no journal directory): say so (R3206-02). */
	if (st == MD_PERMFAIL)
		return POP_UPDATE_PERM;
	if (st != MD_OK)
		return s->trans->update.pending ? POP_UPDATE_PENDING
						: POP_UPDATE_FAILED;
	session_say(s, "+OK",
		    counted(s->trans->update.left, TXT_QUIT_LEFT_1,
			    TXT_QUIT_LEFT_N),
		    s->trans->update.left);
	return POP_QUIT;
}
