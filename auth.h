/* PAM authentication and the privilege drop (design.md §3). The protocol
 * engine asks for a verdict on {user, password} and never calls PAM or
 * set*id itself; the privilege-separation work moves this behind a
 * monitor process without changing the contract. */
#ifndef POP3D_AUTH_H
#define POP3D_AUTH_H

#include <limits.h>
#include <sys/types.h>

#include "params.h"
#include "config.h"
#include "peer.h"

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

/* One login attempt, as the pre-auth process sends it to the monitor:
 * a fixed-size record with NUL-terminated fields, nothing to parse. */
#define AUTH_FIELD_MAX 255 /* RFC 4616 §2; more than a USER line holds */
struct auth_request {
	char user[AUTH_FIELD_MAX + 1]; /* USER name, or SASL authcid */
	char authzid[AUTH_FIELD_MAX + 1];
	char password[AUTH_FIELD_MAX + 1];
	char method[8]; /* "USER", "PLAIN" or "LOGIN" */
	unsigned char tls;
};

/* Process-wide protection before any secret is read: no core dumps, no
 * ptrace by the same uid. */
void auth_init(void);

/* Run PAM for the request and apply the account policy (uid limits, the
 * authzid rule of DEC-15). Fills who on AUTH_OK. The password is wiped
 * before returning, whatever the verdict. */
enum auth_verdict auth_check(const struct config *cfg, const struct peer *peer,
			     struct auth_request *req, struct auth_user *who);

/* Become who for good (started as root), proving that root cannot be
 * regained; exits if anything fails. Not root: nothing to do. */
void auth_become(const struct auth_user *who);

#endif
