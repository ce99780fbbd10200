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

#endif
