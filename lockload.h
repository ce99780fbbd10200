/* liblockfile, loaded at the first dotlock rather than at every start:
 * only UPDATE and recovery take a dotlock, and most connections never
 * get there. lockload.c defines the two liblockfile functions lock.c
 * calls, with liblockfile's own prototypes; the first call loads
 * liblockfile.so.1 and binds them from it. Then liblockfile makes the
 * lock as it always did (the link trick, the setgid dotlockfile helper
 * where the user cannot write the spool directory). */
#ifndef POP3D_LOCKLOAD_H
#define POP3D_LOCKLOAD_H

#include <stdbool.h>

/* Has liblockfile been loaded into this process? */
bool lockload_loaded(void);

/* Load it now (the dotlock keeper, which has nothing else to do while
 * the session parses); false, logged, if it cannot be loaded. */
bool lockload_load(void);

#endif
