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

/* Repeated ids are found by sorting, not hashing (issue 14): X-UIDL
 * values come from whoever sends mail, and with an unkeyed hash they
 * could all be made to share one bucket, which made every login
 * quadratic. A merge sort costs O(n log n) comparisons of at most 70
 * octets whatever the input, needs no secret key and less memory than
 * the hash maps did; written here rather than qsort so that the bound
 * does not depend on the libc (glibc before 2.37 falls back to a
 * quicksort when it cannot allocate). */
struct id_ref {
	const char *id;
	size_t i; /* the message */
};

static int
cmp_ref(const void *key, const void *elem)
{
	return strcmp(key, ((const struct id_ref *)elem)->id);
}

/* Sort r[0..n) by id, stably (equal ids stay in mailbox order); tmp
 * has room for n. */
static void
sort_refs(struct id_ref *r, struct id_ref *tmp, size_t n)
{
	struct id_ref *from = r, *to = tmp, *t;

	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = n - lo > w ? lo + w : n;
			size_t hi = n - mid > w ? mid + w : n;
			size_t i = lo, j = mid, k = lo;

			while (i < mid && j < hi)
				to[k++] = strcmp(from[j].id, from[i].id) < 0
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

/* The end of the run of ids equal to r[a].id in sorted r[0..n). */
static size_t
run_end(const struct id_ref *r, size_t n, size_t a)
{
	size_t b = a + 1;

	while (b < n && strcmp(r[a].id, r[b].id) == 0)
		b++;
	return b;
}

/* Use an X-UIDL only where no other message carries the same one. */
static void
choose_bases(struct uidl_entry *e, size_t n, struct id_ref *r,
	     struct id_ref *tmp)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		e[i].use_xuidl = false;
		if (e[i].xuidl != NULL)
			r[m++] = (struct id_ref){e[i].xuidl, i};
	}
	sort_refs(r, tmp, m);
	for (size_t a = 0, b; a < m; a = b)
		if ((b = run_end(r, m, a)) == a + 1)
			e[r[a].i].use_xuidl = true;
}

/* The first k >= from for which "base-k" is no message's base id, in
 * the n sorted base ids r. A suffixed id never equals another base's
 * suffixed id either: the digits after its last "-" are k, and what
 * stands before is its base. */
static uint32_t
free_suffix(const struct id_ref *r, size_t n, const char *base, uint32_t from)
{
	char cand[UIDL_MAX + 12];

	for (uint32_t k = from;; k++) {
		snprintf(cand, sizeof(cand), "%s-%u", base, k);
		if (bsearch(cand, r, n, sizeof(*r), cmp_ref) == NULL)
			return k;
	}
}

/* Copies of one base id get "-2", "-3", ... in mailbox order, skipping
 * ids other messages have; each copy goes on from where the last one
 * stopped, so each id is skipped at most once and a flood of copies
 * costs O(n log n). The first copy keeps the plain id. */
static void
suffix_copies(struct uidl_entry *e, const struct id_ref *r, size_t n)
{
	for (size_t a = 0, b; a < n; a = b) {
		uint32_t k = 2;

		b = run_end(r, n, a);
		/* Only a digest (32 characters) can be repeated: X-UIDLs in
		 * use are unique, and a 32-character one is the longest that
		 * can equal a digest. */
		if (b > a + 1 && strlen(r[a].id) > UIDL_MAX - 11)
			fatal("uidl: a repeated id of %zu characters",
			      strlen(r[a].id));
		for (size_t c = a + 1; c < b; c++) {
			k = free_suffix(r, n, r[a].id, k);
			e[r[c].i].suffix = k++;
		}
	}
}

#define HEX_SIZE (2 * UIDL_DIGEST_BYTES + 1)

int
uidl_assign(struct uidl_entry *e, size_t n)
{
	struct id_ref *r, *tmp;
	char *hexes;

	if (n == 0)
		return 0;
	r = calloc(n, sizeof(*r));
	tmp = calloc(n, sizeof(*tmp));
	hexes = calloc(n, HEX_SIZE);
	if (r == NULL || tmp == NULL || hexes == NULL) {
		free(r);
		free(tmp);
		free(hexes);
		return -1;
	}
	choose_bases(e, n, r, tmp);
	for (size_t i = 0; i < n; i++) {
		e[i].suffix = 0;
		if (!e[i].use_xuidl)
			hex(e[i].digest, UIDL_DIGEST_BYTES,
			    hexes + i * HEX_SIZE);
		r[i] = (struct id_ref){
			e[i].use_xuidl ? e[i].xuidl : hexes + i * HEX_SIZE, i};
	}
	sort_refs(r, tmp, n);
	suffix_copies(e, r, n);
	free(r);
	free(tmp);
	free(hexes);
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
