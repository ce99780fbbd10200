/* OpenSSL, loaded when something first needs it rather than at every
 * start: pop3d is not linked to libssl or libcrypto (mapping and
 * relocating them cost about 0.8 ms of each start-up, before the
 * greeting, for connections that never use TLS). Instead ossl.c defines
 * each OpenSSL function pop3d calls, with OpenSSL's own prototype; the
 * first call of any of them loads libssl (and with it libcrypto) and
 * looks all of them up at once. TLS (tls_setup, at start, before any
 * chroot) and the UIDL digest (at login) are what load it. */
#ifndef POP3D_OSSL_H
#define POP3D_OSSL_H

#include <stdbool.h>

/* Load OpenSSL now if it is not loaded yet. Returns true if it is
 * loaded; false, after logging why, if it cannot be (the functions
 * would then end the process with fatal()). */
bool ossl_load(void);

/* Has OpenSSL been loaded into this process? */
bool ossl_loaded(void);

#endif
