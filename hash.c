#include "hash.h"

#include <string.h>

#define HASH_PRIME 0x9e3779b97f4a7c15ULL

static uint64_t
hash_mix(uint64_t h, uint64_t w)
{
	h = (h ^ w) * HASH_PRIME;
	return h ^ (h >> 29);
}

/* Four independent lanes over 32-octet blocks keep the multiplier busy:
 * several GB/s, so the digest costs little next to reading the file. */
static void
hash_blocks(struct content_hash *c, const char *p, size_t n)
{
	uint64_t w[4];

	for (; n >= 32; p += 32, n -= 32) {
		memcpy(w, p, 32);
		c->lane[0] = hash_mix(c->lane[0], w[0]);
		c->lane[1] = hash_mix(c->lane[1], w[1]);
		c->lane[2] = hash_mix(c->lane[2], w[2]);
		c->lane[3] = hash_mix(c->lane[3], w[3]);
	}
}

void
hash_update(struct content_hash *c, const char *p, size_t n)
{
	size_t take;

	c->total += n;
	if (c->ntail > 0) {
		take = 32 - c->ntail < n ? 32 - c->ntail : n;
		memcpy(c->tail + c->ntail, p, take);
		c->ntail += take;
		p += take;
		n -= take;
		if (c->ntail < 32)
			return;
		hash_blocks(c, (const char *)c->tail, 32);
		c->ntail = 0;
	}
	hash_blocks(c, p, n & ~(size_t)31);
	memcpy(c->tail, p + (n & ~(size_t)31), n & 31);
	c->ntail = n & 31;
}

uint64_t
hash_final(struct content_hash *c)
{
	uint64_t h = c->total;

	memset(c->tail + c->ntail, 0, 32 - c->ntail);
	hash_blocks(c, (const char *)c->tail, 32);
	for (int i = 0; i < 4; i++)
		h = hash_mix(h, c->lane[i]);
	return h;
}
