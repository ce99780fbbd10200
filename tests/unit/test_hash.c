/* Unit tests for hash.c's span hash, the content hash of a message's
 * first CONTENT_HASH_SPAN octets (design.md §4.6): the login parse feeds
 * it in pieces cut wherever the read windows fall and the full check
 * feeds the same octets cut elsewhere, so the digest must not depend on
 * the pieces; and an in-place edit of any octet, a move of a block or a
 * change of length must change it. (hash_update, whose values journals
 * keep on disk, is covered by test_journal and fuzz_journal.) */
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

static Suite *
hash_suite(void)
{
	Suite *s = suite_create("hash");
	TCase *tc = tcase_create("span");

	tcase_add_loop_test(tc, pieces_do_not_matter, 0, 3);
	tcase_add_loop_test(tc, every_bit_counts, 0, 3);
	tcase_add_loop_test(tc, moves_and_lengths_count, 0, 3);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
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
