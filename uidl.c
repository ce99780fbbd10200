#include "uidl.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct uidl_hasher {
	EVP_MD_CTX *ctx;
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

/* The id before any suffix. An X-UIDL long enough that a suffix would
 * push it past 70 characters is never suffixed: uidl_assign falls back
 * to the digest for it. */
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

/* A set of strings: open addressing, linear probing, never shrinks. */
struct strset {
	char **slot;
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
strset_init(struct strset *set, size_t entries)
{
	size_t size = 16;

	while (size < entries * 2)
		size *= 2;
	set->slot = calloc(size, sizeof(*set->slot));
	set->mask = size - 1;
	return set->slot == NULL ? -1 : 0;
}

static void
strset_free(struct strset *set)
{
	for (size_t i = 0; i <= set->mask; i++)
		free(set->slot[i]);
	free(set->slot);
}

/* The slot that holds s, or the empty slot where it would go. */
static char **
strset_find(const struct strset *set, const char *s)
{
	size_t i = str_hash(s) & set->mask;

	while (set->slot[i] != NULL && strcmp(set->slot[i], s) != 0)
		i = (i + 1) & set->mask;
	return &set->slot[i];
}

/* Add s; returns 1 if added, 0 if present, -1 when out of memory. */
static int
strset_add(struct strset *set, const char *s)
{
	char **slot = strset_find(set, s);

	if (*slot != NULL)
		return 0;
	*slot = strdup(s);
	return *slot == NULL ? -1 : 1;
}

/* Use an X-UIDL only where no other message carries the same one. */
static int
choose_bases(struct uidl_entry *e, size_t n)
{
	struct strset seen, dup;
	int r = 0;

	if (strset_init(&seen, n) < 0)
		return -1;
	if (strset_init(&dup, n) < 0) {
		strset_free(&seen);
		return -1;
	}
	for (size_t i = 0; i < n && r >= 0; i++)
		if (e[i].xuidl != NULL &&
		    (r = strset_add(&seen, e[i].xuidl)) == 0)
			r = strset_add(&dup, e[i].xuidl);
	for (size_t i = 0; i < n && r >= 0; i++)
		e[i].use_xuidl = e[i].xuidl != NULL &&
				 *strset_find(&dup, e[i].xuidl) == NULL &&
				 strlen(e[i].xuidl) <= UIDL_MAX - 11;
	strset_free(&seen);
	strset_free(&dup);
	return r < 0 ? -1 : 0;
}

int
uidl_assign(struct uidl_entry *e, size_t n)
{
	struct strset bases, taken;
	/* Room for an id, "-" and any uint32_t; bases are short enough
	 * (choose_bases) that the result always fits UIDL_MAX. */
	char id[UIDL_MAX + 1], cand[UIDL_MAX + 12];
	int r = 0;

	if (choose_bases(e, n) < 0)
		return -1;
	if (strset_init(&bases, n) < 0)
		return -1;
	if (strset_init(&taken, 2 * n) < 0) {
		strset_free(&bases);
		return -1;
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		base_id(&e[i], id);
		r = strset_add(&bases, id);
	}
	/* A suffixed id must not equal any message's plain id, nor another
	 * suffixed one: candidates are checked against both sets. */
	for (size_t i = 0; i < n && r >= 0; i++) {
		e[i].suffix = 0;
		base_id(&e[i], id);
		if ((r = strset_add(&taken, id)) != 0)
			continue;
		for (uint32_t k = 2;; k++) {
			snprintf(cand, sizeof(cand), "%s-%u", id, k);
			if (*strset_find(&bases, cand) != NULL)
				continue;
			if ((r = strset_add(&taken, cand)) != 0) {
				e[i].suffix = k;
				break;
			}
		}
	}
	strset_free(&bases);
	strset_free(&taken);
	return r < 0 ? -1 : 0;
}

struct uidl_hasher *
uidl_hasher_new(void)
{
	struct uidl_hasher *h = malloc(sizeof(*h));

	if (h == NULL)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (h->ctx == NULL) {
		free(h);
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
	free(h);
}

void
uidl_hasher_reset(struct uidl_hasher *h)
{
	if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
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
