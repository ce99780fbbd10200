/* TRANSACTION and UPDATE (RFC 1939 §5-6), as the user. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "dotstuff.h"
#include "log.h"
#include "params.h"
#include "session_int.h"

static const char *
plural(size_t n)
{
	return n == 1 ? "" : "s";
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

void
trans_totals(const struct session *s, size_t *n_r, uint64_t *bytes_r)
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
enum pop_result
trans_enter(struct session *s)
{
	struct md_limits limits = {s->cfg->max_messages, s->cfg->max_size,
				   NULL};
	char jdir[PATH_MAX];
	char path[PATH_MAX];
	enum md_status st;
	uint64_t bytes;
	size_t n;

	if (maildrop_path(s->cfg->mailbox, s->who.name, s->who.home, path,
			  sizeof(path)) < 0) {
		log_msg(LOG_ERR, "user %s: spool path too long", s->who.name);
		return POP_MD_PERM;
	}
	/* The monitor made this directory the user's (journal_prepare). */
	if ((size_t)snprintf(jdir, sizeof(jdir), "%s/%lu", s->cfg->journal_dir,
			     (unsigned long)s->who.uid) < sizeof(jdir))
		limits.journal_dir = jdir;
	st = maildrop_open(path, s->who.uid, &limits, &s->md);
	if (st != MD_OK)
		return md_result(st, POP_MD_TEMP);
	s->state = ST_TRANS;
	trans_totals(s, &n, &bytes);
	log_msg(LOG_INFO, "maildrop: user=%s messages=%zu bytes=%" PRIu64,
		s->who.name, n, bytes);
	net_reply(s->io, "+OK maildrop has %zu message%s (%" PRIu64 " octets)",
		  n, plural(n), bytes);
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
	if (n == 0 || n > maildrop_count(s->md) ||
	    maildrop_deleted(s->md, n - 1))
		return POP_NO_MESSAGE;
	*i_r = n - 1;
	return POP_OK;
}

enum pop_result
trans_cmd_stat(struct session *s, struct command *c)
{
	uint64_t bytes;
	size_t n;

	trans_totals(s, &n, &bytes);
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
	trans_totals(s, &n, &bytes);
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

enum pop_result
trans_cmd_retr(struct session *s, struct command *c)
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
	maildrop_set_deleted(s->md, i, true);
	net_reply(s->io, "+OK message %zu deleted", i + 1);
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
	uint64_t bytes;
	size_t n;

	for (size_t i = 0; i < maildrop_count(s->md); i++)
		maildrop_set_deleted(s->md, i, false);
	trans_totals(s, &n, &bytes);
	net_reply(s->io, "+OK maildrop has %zu message%s (%" PRIu64 " octets)",
		  n, plural(n), bytes);
	return POP_OK;
}

/* UPDATE happens here and nowhere else (R1939-22). */
enum pop_result
trans_quit(struct session *s)
{
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
