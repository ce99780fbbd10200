#include "uidl.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct uidl_hasher {
	EVP_MD_CTX *ctx;
	EVP_MD *sha256; /* fetched once: a fetch per message cost 5 % of login
			 */
};

bool
uidl_valid(const char *s, size_t len)
{
	if (len == 0 || len > UIDL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static void
hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The id before any suffix. */
static void
base_id(const struct uidl_entry *e, char out[UIDL_MAX + 1])
{
	if (e->use_xuidl)
		snprintf(out, UIDL_MAX + 1, "%s", e->xuidl);
	else
		hex(e->digest, UIDL_DIGEST_BYTES, out);
}

void
uidl_format(const struct uidl_entry *e, char out[UIDL_MAX + 1])
{
	size_t n;

	base_id(e, out);
	if (e->suffix != 0) {
		n = strlen(out);
		snprintf(out + n, UIDL_MAX + 1 - n, "-%u", e->suffix);
	}
}

/* A map from strings to a counter: open addressing, linear probing,
 * at most half full. */
struct slot {
	char *key;
	uint32_t next; /* the next "-N" suffix to try for key */
};

struct strmap {
	struct slot *slot;
	size_t mask;
};

static uint64_t
str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int
strmap_init(struct strmap *map, size_t entries)
{
	size_t size = 16;

	while (size < entries * 2)
		size *= 2;
	map->slot = calloc(size, sizeof(*map->slot));
	map->mask = size - 1;
	return map->slot == NULL ? -1 : 0;
}

static void
strmap_free(struct strmap *map)
{
	for (size_t i = 0; i <= map->mask; i++)
		free(map->slot[i].key);
	free(map->slot);
}

/* The slot that holds key, or the empty slot where it would go. */
static struct slot *
strmap_find(const struct strmap *map, const char *key)
{
	size_t i = str_hash(key) & map->mask;

	while (map->slot[i].key != NULL && strcmp(map->slot[i].key, key) != 0)
		i = (i + 1) & map->mask;
	return &map->slot[i];
}

/* Add key; returns 1 if added, 0 if present, -1 when out of memory. */
static int
strmap_add(struct strmap *map, const char *key)
{
	struct slot *slot = strmap_find(map, key);

	if (slot->key != NULL)
		return 0;
	slot->key = strdup(key);
	slot->next = 2;
	return slot->key == NULL ? -1 : 1;
}

/* Use an X-UIDL only where no other message carries the same one. */
static int
choose_bases(struct uidl_entry *e, size_t n)
{
	struct strmap seen, dup;
	int r = 0;

	if (strmap_init(&seen, n) < 0)
		return -1;
	if (strmap_init(&dup, n) < 0) {
		strmap_free(&seen);
		return -1;
	}
	for (size_t i = 0; i < n && r >= 0; i++)
		if (e[i].xuidl != NULL &&
		    (r = strmap_add(&seen, e[i].xuidl)) == 0)
			r = strmap_add(&dup, e[i].xuidl);
	for (size_t i = 0; i < n && r >= 0; i++)
		e[i].use_xuidl = e[i].xuidl != NULL &&
				 strmap_find(&dup, e[i].xuidl)->key == NULL;
	strmap_free(&seen);
	strmap_free(&dup);
	return r < 0 ? -1 : 0;
}

/* The first free "base-N" for a repeated base, N counting on from where
 * the last copy of the same base stopped, so that a flood of identical
 * messages costs linear time. A suffixed id must equal neither another
 * message's plain id nor another suffixed one. */
static int
suffix(struct uidl_entry *e, struct strmap *bases, struct strmap *taken)
{
	char id[UIDL_MAX + 1], cand[UIDL_MAX + 12];
	struct slot *base;
	int r;

	base_id(e, id);
	if (strlen(id) > UIDL_MAX - 11) {
		/* No room for a suffix; cannot happen for a repeated id
		 * (X-UIDLs used are unique, digests are 32 characters),
		 * but if it did, the digest takes over. */
		e->use_xuidl = false;
		base_id(e, id);
		if ((r = strmap_add(taken, id)) != 0)
			return r < 0 ? -1 : 0;
	}
	base = strmap_find(bases, id);
	for (uint32_t k = base->key != NULL ? base->next : 2;; k++) {
		snprintf(cand, sizeof(cand), "%s-%u", id, k);
		if (strmap_find(bases, cand)->key != NULL)
			continue;
		if ((r = strmap_add(taken, cand)) != 0) {
			e->suffix = k;
			if (base->key != NULL)
				base->next = k + 1;
			return r < 0 ? -1 : 0;
		}
	}
}

int
uidl_assign(struct uidl_entry *e, size_t n)
{
	struct strmap bases, taken;
	char id[UIDL_MAX + 1];
	int r = 0;

	if (choose_bases(e, n) < 0)
		return -1;
	if (strmap_init(&bases, 2 * n) < 0)
		return -1;
	if (strmap_init(&taken, 2 * n) < 0) {
		strmap_free(&bases);
		return -1;
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		base_id(&e[i], id);
		r = strmap_add(&bases, id);
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		e[i].suffix = 0;
		base_id(&e[i], id);
		if ((r = strmap_add(&taken, id)) == 0)
			r = suffix(&e[i], &bases, &taken);
	}
	strmap_free(&bases);
	strmap_free(&taken);
	return r < 0 ? -1 : 0;
}

struct uidl_hasher *
uidl_hasher_new(void)
{
	struct uidl_hasher *h = malloc(sizeof(*h));

	if (h == NULL)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	h->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (h->ctx == NULL || h->sha256 == NULL) {
		uidl_hasher_free(h);
		return NULL;
	}
	uidl_hasher_reset(h);
	return h;
}

void
uidl_hasher_free(struct uidl_hasher *h)
{
	if (h == NULL)
		return;
	EVP_MD_CTX_free(h->ctx);
	EVP_MD_free(h->sha256);
	free(h);
}

void
uidl_hasher_reset(struct uidl_hasher *h)
{
	if (EVP_DigestInit_ex2(h->ctx, h->sha256, NULL) != 1)
		fatal("SHA-256 unavailable");
}

void
uidl_hasher_update(struct uidl_hasher *h, const void *data, size_t len)
{
	if (len > 0 && EVP_DigestUpdate(h->ctx, data, len) != 1)
		fatal("SHA-256 update failed");
}

void
uidl_hasher_final(struct uidl_hasher *h,
		  unsigned char digest[UIDL_DIGEST_BYTES])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len;

	if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1 ||
	    len < UIDL_DIGEST_BYTES)
		fatal("SHA-256 final failed");
	memcpy(digest, md, UIDL_DIGEST_BYTES);
}
