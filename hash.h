/* A fast 64-bit digest of octets, fed in pieces of any size: to notice
 * a message another program changed in place, and a torn journal. Not
 * cryptographic: whoever can write the spool needs no collisions. */
#ifndef POP3D_HASH_H
#define POP3D_HASH_H

#include <stddef.h>
#include <stdint.h>

struct content_hash {
	uint64_t lane[4];
	unsigned char tail[32];
	size_t ntail;
	uint64_t total;
};

/* Start with a zeroed struct content_hash. */
void hash_update(struct content_hash *c, const char *p, size_t n);
/* The digest; c is spent afterwards. */
uint64_t hash_final(struct content_hash *c);

/* The span hash: the same use, about twice as fast, for digests
 * that are only ever compared within one process (the content hash of a
 * message's first CONTENT_HASH_SPAN octets, taken at login and again at
 * each full check). It is never stored, so it may differ between builds
 * and machines; hash_update's values are on disk in journals and must
 * not change. */
struct span_hash {
	uint64_t acc[8];
	unsigned char tail[64];
	size_t ntail;
	uint64_t total, stripes;
};

/* Start with a zeroed struct span_hash. */
void span_update(struct span_hash *s, const char *p, size_t n);
/* The digest; s is spent afterwards. */
uint64_t span_final(struct span_hash *s);

#endif
