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
 * several GB/s, so the digest costs little next to reading the file.
 * The lanes live in locals: kept in *c, they made gcc vectorize the loop
 * with 64-bit products built from 32-bit ones, each lane stored and
 * loaded again per block, at 7.8 GB/s; as plain imul chains the same
 * digests come at 11 GB/s (bench/RESULTS.md, round 8; test_hash pins
 * the values, which journals keep on disk). */
static void
hash_blocks(void *h, const char *p, size_t n)
{
	struct content_hash *c = h;
	uint64_t a = c->lane[0], b = c->lane[1], x = c->lane[2], y = c->lane[3],
		 w[4];

	for (; n >= 32; p += 32, n -= 32) {
		memcpy(w, p, 32);
		a = hash_mix(a, w[0]);
		b = hash_mix(b, w[1]);
		x = hash_mix(x, w[2]);
		y = hash_mix(y, w[3]);
	}
	c->lane[0] = a, c->lane[1] = b, c->lane[2] = x, c->lane[3] = y;
}

/* Both hashes take whole blocks only (fn is given a multiple of size);
 * this keeps a partial block in tail across calls, so that a digest does
 * not depend on the pieces it is fed in. Inlined into each caller, where
 * fn is known: a call through the pointer cost 12 % of the speed. */
static inline __attribute__((always_inline)) void
feed_blocks(void *h, void (*fn)(void *, const char *, size_t),
	    unsigned char *tail, size_t *ntail, size_t size, const char *p,
	    size_t n)
{
	size_t take, whole;

	if (*ntail > 0) {
		take = size - *ntail < n ? size - *ntail : n;
		memcpy(tail + *ntail, p, take);
		*ntail += take;
		p += take;
		n -= take;
		if (*ntail < size)
			return;
		*ntail = 0;
		fn(h, (const char *)tail, size);
	}
	whole = n - n % size;
	fn(h, p, whole);
	*ntail = n - whole;
	memcpy(tail, p + whole, *ntail);
}

void
hash_update(struct content_hash *c, const char *p, size_t n)
{
	c->total += n;
	feed_blocks(c, hash_blocks, c->tail, &c->ntail, 32, p, n);
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

/* The span hash. Eight 64-bit lanes over 64-octet stripes; each word w
 * is keyed by its lane and its stripe's number (so that equal stripes at
 * different places do not cancel out), x = w ^ key, and the lane adds
 * lo32(x) * hi32(x) + w. No lane waits on a multiply of its own, as the
 * four chained lanes of hash_update do: in 4 KiB pieces, 7.6 GB/s became
 * 14 (bench/RESULTS.md, round 6; an SSE2 version was no faster). The
 * keys are the first 576 bits of pi's fraction. */
static const uint64_t span_key[8] = {
	0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL, 0xa4093822299f31d0ULL,
	0x082efa98ec4e6c89ULL, 0x452821e638d01377ULL, 0xbe5466cf34e90c6cULL,
	0xc0ac29b7c97c50ddULL, 0x3f84d5b5b5470917ULL,
};
#define SPAN_STEP 0x9216d5d98979fb1bULL /* added to every key per stripe */

static void
span_stripes(void *h, const char *p, size_t n)
{
	struct span_hash *s = h;
	uint64_t w, x, step = s->stripes * SPAN_STEP;

	s->stripes += n / 64;
	for (; n >= 64; n -= 64, p += 64, step += SPAN_STEP) {
		for (size_t j = 0; j < 8; j++) {
			memcpy(&w, p + 8 * j, 8);
			x = w ^ (span_key[j] + step);
			s->acc[j] += (x & 0xffffffffULL) * (x >> 32) + w;
		}
	}
}

void
span_update(struct span_hash *s, const char *p, size_t n)
{
	s->total += n;
	feed_blocks(s, span_stripes, s->tail, &s->ntail, 64, p, n);
}

uint64_t
span_final(struct span_hash *s)
{
	uint64_t h = s->total;

	if (s->ntail > 0) {
		memset(s->tail + s->ntail, 0, 64 - s->ntail);
		span_stripes(s, (const char *)s->tail, 64);
	}
	for (int j = 0; j < 8; j++)
		h = hash_mix(h, s->acc[j]);
	return h;
}
