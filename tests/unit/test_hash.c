/* Unit tests for hash.c's span hash, the content hash of a message's
 * first CONTENT_HASH_SPAN octets (design.md §4.6): the login parse feeds
 * it in pieces cut wherever the read windows fall and the full check
 * feeds the same octets cut elsewhere, so the digest must not depend on
 * the pieces; and an in-place edit of any octet, a move of a block or a
 * change of length must change it. hash_update's values are kept on
 * disk in journals (saved windows, boundary digests), so they are pinned
 * here: a faster way to compute them must give the same ones (its use is
 * covered by test_journal and fuzz_journal). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define SPAN 4096

static uint64_t
digest(const char *p, size_t n)
{
	struct span_hash s;

	memset(&s, 0, sizeof(s));
	span_update(&s, p, n);
	return span_final(&s);
}

static void
fill_random(char *p, size_t n, unsigned *seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)rand_r(seed);
}

/* Any cut into pieces, empty ones included, gives the one-piece digest. */
START_TEST(pieces_do_not_matter)
{
	static char buf[SPAN + 200];
	unsigned seed = 10 + _i;

	fill_random(buf, sizeof(buf), &seed);
	for (int round = 0; round < 2000; round++) {
		size_t off = rand_r(&seed) % 100, n = rand_r(&seed) % SPAN;
		uint64_t want = digest(buf + off, n);
		struct span_hash s;
		size_t done = 0, k;

		memset(&s, 0, sizeof(s));
		while (done < n) {
			k = rand_r(&seed) % (round % 2 ? 7 : 300);
			if (k > n - done)
				k = n - done;
			span_update(&s, buf + off + done, k);
			done += k;
		}
		ck_assert_msg(span_final(&s) == want,
			      "%zu octets at %zu, round %d", n, off, round);
	}
}
END_TEST

/* Every single-bit change of a span of 4 KiB (or a little less: the
 * last stripe then ends part way) shows in the 32 bits pop3d keeps
 * (struct message's content). */
START_TEST(every_bit_counts)
{
	static char buf[SPAN];
	size_t n = SPAN - 37 * _i;
	unsigned seed = 20 + _i;
	uint32_t base;

	fill_random(buf, n, &seed);
	base = (uint32_t)digest(buf, n);
	for (size_t i = 0; i < n; i++) {
		for (int b = 0; b < 8; b++) {
			buf[i] ^= (char)(1 << b);
			ck_assert_msg((uint32_t)digest(buf, n) != base,
				      "bit %d of octet %zu of %zu", b, i, n);
			buf[i] ^= (char)(1 << b);
		}
	}
}
END_TEST

/* Blocks that trade places (whole 64-octet stripes, or the same edit at
 * another place), and octets added or taken away at the end, zeros
 * included, change the digest. */
START_TEST(moves_and_lengths_count)
{
	static char buf[SPAN], moved[SPAN];
	unsigned seed = 30 + _i;
	uint64_t base;

	fill_random(buf, sizeof(buf), &seed);
	base = digest(buf, sizeof(buf));
	for (int round = 0; round < 1000; round++) {
		size_t a = 64 * (rand_r(&seed) % 64),
		       b = 64 * (rand_r(&seed) % 64);
		size_t len = round % 2 ? 64 : 1 + rand_r(&seed) % 64;

		if (a == b || (a < b ? b - a : a - b) < len)
			continue;
		memcpy(moved, buf, sizeof(buf));
		memcpy(moved + a, buf + b, len);
		memcpy(moved + b, buf + a, len);
		if (memcmp(moved, buf, sizeof(buf)) == 0)
			continue;
		ck_assert_msg(digest(moved, sizeof(moved)) != base,
			      "%zu octets at %zu and %zu swapped", len, a, b);
	}
	memset(buf, 0, sizeof(buf));
	for (size_t n = 1; n < sizeof(buf); n++)
		ck_assert_msg(digest(buf, n) != digest(buf, n - 1),
			      "%zu zero octets", n);
}
END_TEST

/* hash_update's digests of fixed octets, as journals hold them: whole,
 * and fed in pieces of 1-300 octets. */
START_TEST(journal_digests_are_fixed)
{
	static const struct {
		size_t len;
		uint64_t digest;
	} known[] = {
		{0, 0x0000000000000000ULL},	 {1, 0x389e292fa710107bULL},
		{31, 0x1ebc9ee029053824ULL},	 {32, 0xf41e868e16c5319bULL},
		{33, 0x6645213490e2e725ULL},	 {4096, 0x6375fd3d5940ab47ULL},
		{262149, 0xdd3661daaf2a8d36ULL},
	};
	static char buf[262149];
	unsigned seed = 40;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 131 + 7);
	for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
		struct content_hash whole, cut;
		size_t done = 0, n = known[k].len, piece;

		memset(&whole, 0, sizeof(whole));
		memset(&cut, 0, sizeof(cut));
		hash_update(&whole, buf, n);
		ck_assert_msg(hash_final(&whole) == known[k].digest,
			      "%zu octets whole", n);
		while (done < n) {
			piece = 1 + rand_r(&seed) % 300;
			if (piece > n - done)
				piece = n - done;
			hash_update(&cut, buf + done, piece);
			done += piece;
		}
		ck_assert_msg(hash_final(&cut) == known[k].digest,
			      "%zu octets in pieces", n);
	}
}
END_TEST

static Suite *
hash_suite(void)
{
	Suite *s = suite_create("hash");
	TCase *tc = tcase_create("span");
	TCase *tj = tcase_create("journal");

	tcase_add_loop_test(tc, pieces_do_not_matter, 0, 3);
	tcase_add_loop_test(tc, every_bit_counts, 0, 3);
	tcase_add_loop_test(tc, moves_and_lengths_count, 0, 3);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	tcase_add_test(tj, journal_digests_are_fixed);
	suite_add_tcase(s, tj);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(hash_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
