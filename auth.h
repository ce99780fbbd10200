/* PAM authentication and the privilege drop (design.md §3): root's work,
 * called by the monitor alone. The protocol engine never sees these
 * functions; it gets a verdict on {user, password} through its login
 * hook, and the types it shares with the monitor live in privsep_msg.h. */
#ifndef POP3D_AUTH_H
#define POP3D_AUTH_H

/* The privilege boundary, held by the compiler: code that runs in the
 * pre-auth or session process cannot even name PAM or the drop. Only
 * files that run as root (monitor.c, auth.c, and recover.c, which drops
 * to each user before --recover touches their files) define this. */
#ifndef POP3D_ROOT_ONLY
#error "auth.h is for code that runs as root (monitor.c, auth.c, recover.c)"
#endif

#include <stddef.h>

#include "config.h"
#include "peer.h"
#include "privsep_msg.h"

/* Process-wide protection before any secret is read: no core dumps, no
 * ptrace by the same uid. */
void auth_init(void);

/* Run PAM for the request and apply the account policy (uid limits, the
 * authzid rule of DEC-15). Fills who on AUTH_OK. The password is wiped
 * before returning, whatever the verdict. */
enum auth_verdict auth_check(const struct config *cfg, const struct peer *peer,
			     struct auth_request *req, struct auth_user *who);

/* The name a client typed, as a failed login's line may show it: "UNKNOWN
 * USER" if no account has it (design.md §3: it may be a password typed
 * into the wrong field), else made one bounded word (log_word) in buf.
 * Returns what to log. */
const char *auth_log_name(const char *typed, char *buf, size_t size);

/* Become who for good (started as root), proving that root cannot be
 * regained; exits if anything fails. Not root: nothing to do. */
void auth_become(const struct auth_user *who);

#endif
