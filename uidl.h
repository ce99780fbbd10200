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

/* 28 octets a message. The X-UIDL values few messages carry are kept
 * apart, in a struct uidl_table, so that the others pay no pointer. */
struct uidl_entry {
	unsigned char digest[UIDL_DIGEST_BYTES];
	uint32_t xuidl; /* 0, or 1 + the index of its value in the table */
	/* Set by uidl_assign: */
	uint32_t suffix; /* 0, or N for "-N" */
	bool use_xuidl;
};

struct uidl_table {
	char **value; /* valid X-UIDL values (malloc'ed) */
	size_t n, cap;
};

/* Take value (malloc'ed) into t and point e at it. Returns 0, or -1 when
 * out of memory (value is then freed). */
int uidl_table_add(struct uidl_table *t, char *value, struct uidl_entry *e);
/* Free every value, and the table's array. */
void uidl_table_free(struct uidl_table *t);

/* The X-UIDL of e, or NULL. */
static inline const char *
uidl_xuidl(const struct uidl_table *t, const struct uidl_entry *e)
{
	return e->xuidl != 0 ? t->value[e->xuidl - 1] : NULL;
}

/* True if s[0..len) may be sent as a unique id: 1-70 octets 0x21-0x7E. */
bool uidl_valid(const char *s, size_t len);
/* True if an X-UIDL value s[0..len) is used as the message's id: valid,
 * and not of the form pop3d gives a repeated digest ("<digest>-<k>"). */
bool uidl_xuidl_usable(const char *s, size_t len);

/* Choose each message's id: its X-UIDL where that value is unique among
 * the X-UIDLs, else its digest; then suffix repeats in mailbox order so
 * that every id differs. Returns 0, or -1 when out of memory. */
int uidl_assign(struct uidl_entry *e, size_t n, const struct uidl_table *t);

/* The id of e, NUL-terminated. */
void uidl_format(const struct uidl_entry *e, const struct uidl_table *t,
		 char out[UIDL_MAX + 1]);

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
