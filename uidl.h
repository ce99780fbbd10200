/* Unique ids for UIDL (R1939-47..50, DEC-18, design.md §4): a digest of
 * the headers that stay fixed after delivery, or an X-UIDL header left by
 * qpopper or Dovecot, made unique within the listing with "-N" suffixes
 * in mailbox order. Nothing is ever written to the spool. */
#ifndef POP3D_UIDL_H
#define POP3D_UIDL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "params.h"

struct uidl_entry {
	char *xuidl; /* a valid X-UIDL value (malloc'ed), or NULL */
	unsigned char digest[UIDL_DIGEST_BYTES];
	/* Set by uidl_assign: */
	bool use_xuidl;
	uint32_t suffix; /* 0, or N for "-N" */
};

/* True if s[0..len) may be sent as a unique id: 1-70 octets 0x21-0x7E. */
bool uidl_valid(const char *s, size_t len);

/* Choose each message's id: its X-UIDL where that value is unique among
 * the X-UIDLs, else its digest; then suffix repeats in mailbox order so
 * that every id differs. Returns 0, or -1 when out of memory. */
int uidl_assign(struct uidl_entry *e, size_t n);

/* The id of e, NUL-terminated. */
void uidl_format(const struct uidl_entry *e, char out[UIDL_MAX + 1]);

/* Incremental digest of the selected header bytes (SHA-256, cut to
 * UIDL_DIGEST_BYTES: stable across versions and platforms, and without
 * accidental collisions). */
struct uidl_hasher;
struct uidl_hasher *uidl_hasher_new(void);
void uidl_hasher_free(struct uidl_hasher *h);
void uidl_hasher_reset(struct uidl_hasher *h);
void uidl_hasher_update(struct uidl_hasher *h, const void *data, size_t len);
void uidl_hasher_final(struct uidl_hasher *h,
		       unsigned char digest[UIDL_DIGEST_BYTES]);

#endif
