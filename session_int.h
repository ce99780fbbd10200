/* Shared by the parts of the protocol engine: session.c (dispatch,
 * replies, the loop), session_auth.c (AUTHORIZATION) and session_trans.c
 * (TRANSACTION). Nothing outside the engine includes this. */
#ifndef POP3D_SESSION_INT_H
#define POP3D_SESSION_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "command.h"
#include "lang.h"
#include "maildrop.h"
#include "privsep_msg.h"
#include "session.h"

enum state { ST_AUTH = 1, ST_TRANS = 2 };

/* What a command came to. Handlers reply themselves only on success;
 * every other outcome becomes its reply in one table (session.c). */
enum pop_result {
	POP_OK,	   /* replied */
	POP_QUIT,  /* replied; the session ends */
	POP_ABORT, /* a reply broke off, or TLS failed: end, say nothing */
	POP_LOGIN, /* credentials accepted: the session proper takes over */
	POP_GONE,  /* the client went away or timed out mid-command */
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
	POP_NO_MECH,
	POP_BAD_SASL,
	POP_CANCELLED,
	POP_NO_TLS,
	POP_TLS_ACTIVE,
	POP_BAD_UTF8,
	POP_PROHIBITED,
	POP_PREP_TOO_LONG, /* SASLprep made a USER or PASS argument too long */
	POP_STLS_AFTER_UTF8,
	POP_NO_LANG,
	POP_AUTH_FAILED,
	POP_AUTH_TEMP,
	POP_AUTH_PERM,
	POP_MD_IN_USE,
	POP_MD_TEMP,
	POP_MD_PERM,
	POP_SYS_TEMP,
	POP_UPDATE_FAILED,
	POP_UPDATE_PENDING,
	POP_UPDATE_PERM, /* nothing deleted until the admin acts */
	POP_LOGIN_DELAY, /* R2449-05: logged in too recently */
};

/* Why a session ended. The log text of each is in one table (session.c);
 * UPDATE runs only for END_QUIT in TRANSACTION (cmd_quit). */
enum end_reason {
	END_NONE, /* not yet ended */
	END_QUIT, /* the client's QUIT */
	END_DISCONNECT,
	END_TIMEOUT,
	END_TLS_FAILED,
	END_AUTH_FAILS,
	END_BAD_COMMANDS,
	END_LOGIN_REFUSED,
	END_MD_IN_USE, /* credentials fine, the maildrop could not be opened */
	END_MD_TEMP,
	END_MD_PERM,
	END_LOGIN_DELAY, /* credentials fine, too soon after the last login */
	END_ERROR,
};

/* AUTHORIZATION's state: the pre-auth process's half of a session. */
struct auth_state {
	const struct session_hooks *hooks;
	bool have_user; /* a USER name waits for PASS */
	char user[CMD_LINE_MAX];
	int failures; /* failed logins, towards AUTH_FAILS_MAX */
};

/* TRANSACTION's state: the session process's half, as the user. */
struct trans_state {
	struct auth_user who;
	struct maildrop *md;
	size_t retrieved;
	uint64_t retrieved_bytes;
	struct md_update_stats update; /* for the logout line */
};

/* What both states share; each process fills in its own half. */
struct session {
	const struct config *cfg;
	const struct peer *peer;
	struct netio *io;
	enum state state;
	bool tls_active;
	bool utf8;     /* the UTF8 command was accepted (R6856-02) */
	unsigned lang; /* the catalogue replies come from (R6856-13) */
	int bad_commands;
	enum net_status gone; /* why the client went away mid-command */
	enum end_reason end;
	struct auth_state *auth;   /* NULL in the session process */
	struct trans_state *trans; /* NULL in the pre-auth process */
};

/* Cleartext passwords are fine under TLS, on a local link, or where the
 * admin said so (R2595-01, DEC-24). */
bool session_cleartext_allowed(const struct session *s);

/* Reply status (with its response code, if any), SP, then the text id's
 * format from the session's catalogue with the arguments (DEC-23). */
void session_say(struct session *s, const char *status, enum text_id id, ...);

/* AUTHORIZATION (session_auth.c). */
enum pop_result auth_cmd_user(struct session *s, struct command *c);
enum pop_result auth_cmd_pass(struct session *s, struct command *c);
enum pop_result auth_cmd_auth(struct session *s, struct command *c);
enum pop_result auth_cmd_stls(struct session *s, struct command *c);
enum pop_result auth_cmd_utf8(struct session *s, struct command *c);

/* TRANSACTION (session_trans.c). */
enum pop_result trans_enter(struct session *s);
enum pop_result trans_cmd_stat(struct session *s, struct command *c);
enum pop_result trans_cmd_list(struct session *s, struct command *c);
enum pop_result trans_cmd_uidl(struct session *s, struct command *c);
enum pop_result trans_cmd_retr(struct session *s, struct command *c);
enum pop_result trans_cmd_top(struct session *s, struct command *c);
enum pop_result trans_cmd_dele(struct session *s, struct command *c);
enum pop_result trans_cmd_noop(struct session *s, struct command *c);
enum pop_result trans_cmd_rset(struct session *s, struct command *c);
/* UPDATE; replies. */
enum pop_result trans_quit(struct session *s);

#endif
