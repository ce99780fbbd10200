/* libpam, loaded at the first login rather than at every start: pop3d is
 * not linked to it (libpam brings libaudit and libcap-ng, whose
 * constructor alone makes a dozen system calls, before the greeting of
 * every connection, most of which never log in). pamload.c defines the
 * PAM functions auth.c calls, with libpam's own prototypes; the first
 * call loads libpam.so.0 and looks them up in the global scope, so that
 * a preloaded PAM (pam_wrapper in the tests) still comes first, as it
 * would for a linked libpam. The monitor calls them as root, unconfined:
 * the file is there to load. */
#ifndef POP3D_PAMLOAD_H
#define POP3D_PAMLOAD_H

#include <stdbool.h>

/* Load libpam now if it is not loaded yet: true if it is, false (logged)
 * if it cannot be. */
bool pamload_load(void);

/* Has libpam been loaded into this process? */
bool pamload_loaded(void);

#endif
