/* The two things every module may read: the parsed configuration and
 * what we know about the client. Both are set up once in pop3d.c. */
#ifndef POP3D_POP3D_H
#define POP3D_POP3D_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"

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
	unsigned preauth_timeout; /* seconds from connect to login */
};

struct peer {
	/* "pipe", "unix", or the numeric address; also PAM_RHOST. */
	char addr[64];
	/* A pipe, a Unix socket or a loopback address: cleartext passwords
	 * cannot be sniffed there (DEC-24). */
	bool local;
};

#endif
