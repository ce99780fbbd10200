/* PAM authentication and the privilege drop (design.md §3). The protocol
 * engine asks for a verdict on {user, password} and never calls PAM or
 * set*id itself; the privilege-separation work moves this behind a
 * monitor process without changing the contract. */
#ifndef POP3D_AUTH_H
#define POP3D_AUTH_H

#include <limits.h>
#include <sys/types.h>

#include "params.h"
#include "pop3d.h"

enum auth_verdict {
	AUTH_OK,
	AUTH_FAILED,	   /* wrong password: [AUTH] */
	AUTH_UNKNOWN_USER, /* PAM does not know the name: [AUTH] */
	AUTH_REFUSED,	   /* account locked, expired, or uid not allowed */
	AUTH_TEMPFAIL,	   /* PAM or system fault: [SYS/TEMP] */
	AUTH_PERMFAIL,	   /* configuration fault: [SYS/PERM] */
};

struct auth_user {
	char name[USER_NAME_MAX + 1]; /* the final PAM_USER */
	uid_t uid;
	gid_t gid;
	char home[PATH_MAX];
};

/* Process-wide protection before any secret is read: no core dumps, no
 * ptrace by the same uid. */
void auth_init(void);

/* Run PAM for user with password, then, on AUTH_OK, become that user for
 * good (started as root) or check that it is us (started as a user).
 * password is wiped before returning, whatever the verdict. */
enum auth_verdict auth_login(const struct config *cfg, const struct peer *peer,
			     const char *user, char *password,
			     struct auth_user *who);

#endif
