/* The parsed configuration: set up once by pop3d.c from the command
 * line, then only read. Every module that needs a setting gets it from
 * here, never from the entry point's own header. */
#ifndef POP3D_CONFIG_H
#define POP3D_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"

/* struct config's expire, besides a number of days. */
enum { EXPIRE_UNSET = -1 /* no EXPIRE line */, EXPIRE_NEVER = -2 };
struct peer_net;

struct config {
	const char *mailbox; /* spool path pattern: %u user, %h home */
	const char *pam_service;
	unsigned timeout; /* idle seconds, DEC-25 */
	uid_t min_uid;
	bool allow_plaintext; /* USER/PASS on non-local links, DEC-24 */
	enum log_target log;
	unsigned long max_messages;
	uint64_t max_size;
	unsigned max_children;	 /* Accept=no mode only */
	unsigned max_per_source; /* Accept=no mode only */
	const char *tls_cert, *tls_key;
	bool tls_implicit;	  /* port 995: TLS before the greeting */
	const char *preauth_user; /* runs the pre-auth process */
	const char *preauth_dir;  /* its empty chroot */
	const char *journal_dir;  /* UPDATE's recovery journals, per uid */
	bool shared_spool;	  /* other hosts serve the spools too */
	unsigned preauth_timeout; /* seconds from connect to login */
	/* RFC 2449 §6.5: seconds between logins; 0 offers and enforces no
	 * LOGIN-DELAY. */
	unsigned login_delay;
	/* RFC 2449 §6.7: the EXPIRE policy announced, in days, or one of: */
	int expire;
	bool capa_implementation; /* IMPLEMENTATION in CAPA (R2449-19) */
	/* what LANG * picks (R6856-15); NULL: English. Checked at start by
	 * lang_lookup, so it always finds a catalogue. */
	const char *language;
	/* --recover: NULL when not asked; "" every user with a pending
	 * journal; otherwise that one user (recover.h). */
	const char *recover;
	/* --proxy-from: the balancers whose connections start with a
	 * PROXY header (design.md §13); n_proxy_from 0 without. */
	const char *proxy_from_text;
	const struct peer_net *proxy_from;
	unsigned n_proxy_from;
};

#endif
