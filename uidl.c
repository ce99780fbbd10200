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

bool
uidl_xuidl_usable(const char *s, size_t len)
{
	size_t i = 0;

	if (!uidl_valid(s, len))
		return false;
	/* pop3d's own suffixed form, "<digest>-<k>": no server writes it
	 * into mail, and taken from new mail it would take an older copy's
	 * id away from it (that copy moving on to "-<k+1>"). */
	while (i < len &&
	       ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
		i++;
	if (i != (size_t)2 * UIDL_DIGEST_BYTES || len < i + 2 || s[i] != '-')
		return true;
	for (i++; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return true;
	return false;
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

int
uidl_table_add(struct uidl_table *t, char *value, struct uidl_entry *e)
{
	size_t cap;
	char **v;

	if (t->n == UINT32_MAX - 1) {
		free(value);
		return -1;
	}
	if (t->n == t->cap) {
		cap = t->cap ? t->cap * 2 : 16;
		v = reallocarray(t->value, cap, sizeof(*v));
		if (v == NULL) {
			free(value);
			return -1;
		}
		t->value = v;
		t->cap = cap;
	}
	t->value[t->n++] = value;
	e->xuidl = t->n;
	return 0;
}

void
uidl_table_free(struct uidl_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->value[i]);
	free(t->value);
	*t = (struct uidl_table){0};
}

/* The id before any suffix. */
static void
base_id(const struct uidl_entry *e, const struct uidl_table *t,
	char out[UIDL_MAX + 1])
{
	if (e->use_xuidl)
		snprintf(out, UIDL_MAX + 1, "%s", uidl_xuidl(t, e));
	else
		hex(e->digest, UIDL_DIGEST_BYTES, out);
}

void
uidl_format(const struct uidl_entry *e, const struct uidl_table *t,
	    char out[UIDL_MAX + 1])
{
	size_t n;

	base_id(e, t, out);
	if (e->suffix != 0) {
		n = strlen(out);
		snprintf(out + n, UIDL_MAX + 1 - n, "-%u", e->suffix);
	}
}

/* Repeated ids are found by sorting, not hashing (issue 14): X-UIDL
 * values come from whoever sends mail, and with an unkeyed hash they
 * could all be made to share one bucket, which made every login
 * quadratic. A merge sort costs O(n log n) comparisons of at most 70
 * octets whatever the input, and needs no secret key; written here
 * rather than qsort so that the bound does not depend on the libc
 * (glibc before 2.37 falls back to a quicksort when it cannot
 * allocate). What is sorted is message numbers, 4 octets each, compared
 * by their ids' text: no id is copied or formatted ahead (issue 12). */
#define HEX_SIZE (2 * UIDL_DIGEST_BYTES + 1)

/* The entries being assigned, and where their X-UIDLs are. */
struct ids {
	struct uidl_entry *e;
	const struct uidl_table *t;
};

/* The text an entry is sorted by: its X-UIDL when it uses one (or, with
 * by_xuidl, whenever it has one), else its digest in hex, in buf. */
static const char *
key_text(const struct ids *x, size_t i, bool by_xuidl, char buf[HEX_SIZE])
{
	const struct uidl_entry *e = &x->e[i];

	if (by_xuidl || e->use_xuidl)
		return uidl_xuidl(x->t, e);
	hex(e->digest, UIDL_DIGEST_BYTES, buf);
	return buf;
}

/* strcmp of the two keys. Hex keeps the order of the octets, so two
 * digests compare as their hex would without formatting either. */
static int
cmp_keys(const struct ids *x, size_t i, size_t j, bool by_xuidl)
{
	const struct uidl_entry *a = &x->e[i], *b = &x->e[j];
	char ha[HEX_SIZE], hb[HEX_SIZE];

	if (!by_xuidl && !a->use_xuidl && !b->use_xuidl)
		return memcmp(a->digest, b->digest, UIDL_DIGEST_BYTES);
	return strcmp(key_text(x, i, by_xuidl, ha),
		      key_text(x, j, by_xuidl, hb));
}

/* Sort the message numbers r[0..n) by key, stably (equal ids stay in
 * mailbox order); tmp has room for n. */
static void
sort_refs(const struct ids *x, uint32_t *r, uint32_t *tmp, size_t n,
	  bool by_xuidl)
{
	uint32_t *from = r, *to = tmp, *t;

	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = n - lo > w ? lo + w : n;
			size_t hi = n - mid > w ? mid + w : n;
			size_t i = lo, j = mid, k = lo;

			while (i < mid && j < hi)
				to[k++] = cmp_keys(x, from[j], from[i],
						   by_xuidl) < 0
						  ? from[j++]
						  : from[i++];
			while (i < mid)
				to[k++] = from[i++];
			while (j < hi)
				to[k++] = from[j++];
		}
		t = from;
		from = to;
		to = t;
	}
	if (from != r)
		memcpy(r, from, n * sizeof(*r));
}

/* The end of the run of keys equal to r[a]'s in sorted r[0..n). */
static size_t
run_end(const struct ids *x, const uint32_t *r, size_t n, size_t a,
	bool by_xuidl)
{
	size_t b = a + 1;

	while (b < n && cmp_keys(x, r[a], r[b], by_xuidl) == 0)
		b++;
	return b;
}

/* An X-UIDL is used by the first message in the maildrop that carries
 * it; a later one with the same value gets its digest. Mail delivered
 * since login comes after the old, so whatever X-UIDL a sender puts in
 * it cannot change an older message's id (it took that id away from the
 * first one until round 12 of issue 13, and gave it back once the copy
 * was deleted: a client that keeps ids fetched the message again). The
 * sort is stable and r starts in mailbox order, so each run of equal
 * values begins with its first message. */
static void
choose_bases(const struct ids *x, size_t n, uint32_t *r, uint32_t *tmp)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		x->e[i].use_xuidl = false;
		if (x->e[i].xuidl != 0)
			r[m++] = i;
	}
	sort_refs(x, r, tmp, m, true);
	for (size_t a = 0; a < m; a = run_end(x, r, m, a, true))
		x->e[r[a]].use_xuidl = true;
}

/* Is id one of the n sorted base ids r? */
static bool
taken(const struct ids *x, const uint32_t *r, size_t n, const char *id)
{
	char buf[HEX_SIZE];
	size_t lo = 0, hi = n;
	int c;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		c = strcmp(id, key_text(x, r[mid], false, buf));
		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

/* The first k >= from for which "base-k" is no message's base id, in
 * the n sorted base ids r. A suffixed id never equals another base's
 * suffixed id either: the digits after its last "-" are k, and what
 * stands before is its base. */
static uint32_t
free_suffix(const struct ids *x, const uint32_t *r, size_t n, const char *base,
	    uint32_t from)
{
	char cand[UIDL_MAX + 12];

	for (uint32_t k = from;; k++) {
		snprintf(cand, sizeof(cand), "%s-%u", base, k);
		if (!taken(x, r, n, cand))
			return k;
	}
}

/* Copies of one base id get "-2", "-3", ... in mailbox order, skipping
 * ids other messages have; each copy goes on from where the last one
 * stopped, so each id is skipped at most once and a flood of copies
 * costs O(n log n). The first copy keeps the plain id. */
static void
suffix_copies(const struct ids *x, const uint32_t *r, size_t n)
{
	char buf[HEX_SIZE];
	const char *base;

	for (size_t a = 0, b; a < n; a = b) {
		uint32_t k = 2;

		b = run_end(x, r, n, a, false);
		if (b == a + 1)
			continue;
		base = key_text(x, r[a], false, buf);
		/* Only a digest (32 characters) can be repeated: X-UIDLs in
		 * use are unique, and a 32-character one is the longest that
		 * can equal a digest. */
		if (strlen(base) > UIDL_MAX - 11)
			fatal("uidl: a repeated id of %zu characters",
			      strlen(base));
		for (size_t c = a + 1; c < b; c++) {
			k = free_suffix(x, r, n, base, k);
			x->e[r[c]].suffix = k++;
		}
	}
}

int
uidl_assign(struct uidl_entry *e, size_t n, const struct uidl_table *t)
{
	const struct ids x = {e, t};
	uint32_t *r, *tmp;

	if (n == 0)
		return 0;
	if (n > UINT32_MAX)
		return -1;
	r = calloc(n, sizeof(*r));
	tmp = calloc(n, sizeof(*tmp));
	if (r == NULL || tmp == NULL) {
		free(r);
		free(tmp);
		return -1;
	}
	choose_bases(&x, n, r, tmp);
	for (size_t i = 0; i < n; i++) {
		e[i].suffix = 0;
		r[i] = i;
	}
	sort_refs(&x, r, tmp, n, false);
	suffix_copies(&x, r, n);
	free(r);
	free(tmp);
	return 0;
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
