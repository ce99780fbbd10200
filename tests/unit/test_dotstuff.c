/* Unit tests for dotstuff.c: the multi-line reply encoding of RFC 1939 §3
 * (R1939-07/08/09): bare LF -> CRLF, leading dots doubled, a missing final
 * line end added, ".CRLF" last; input split anywhere gives the same bytes. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dotstuff.h"

struct buf {
	char *data;
	size_t len, cap;
};

static void
buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2 + 64;
		b->data = realloc(b->data, b->cap);
		ck_assert_ptr_nonnull(b->data);
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

static void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* The writer under test's eyes: collects everything. */
static int
collect(void *ctx, const void *data, size_t len)
{
	buf_add(ctx, data, len);
	return 0;
}

/* A byte-at-a-time model of the encoding, written from the RFC, not from
 * dotstuff.c. A CR is part of a line end only right before an LF; a CR at
 * the very end is content and gets CRLF after it. */
static void
model_encode(const char *in, size_t len, struct buf *out)
{
	bool line_start = true;

	for (size_t i = 0; i < len; i++) {
		if (line_start && in[i] == '.')
			buf_add(out, ".", 1);
		line_start = false;
		if (in[i] == '\n') {
			if (i == 0 || in[i - 1] != '\r')
				buf_add(out, "\r", 1);
			line_start = true;
		}
		buf_add(out, &in[i], 1);
	}
	if (!line_start)
		buf_add(out, "\r\n", 2);
	buf_add(out, ".\r\n", 3);
}

#define S(lit) lit, sizeof(lit) - 1

struct ds_case {
	const char *in;
	size_t in_len;
	const char *out;
	size_t out_len;
};

static const struct ds_case ds_cases[] = {
	/* Empty message: just the terminator. */
	{S(""), S(".\r\n")},
	/* Missing final newline gets CRLF. */
	{S("a"), S("a\r\n.\r\n")},
	{S("a\nb"), S("a\r\nb\r\n.\r\n")},
	/* Bare LF -> CRLF; CRLF kept. */
	{S("a\n"), S("a\r\n.\r\n")},
	{S("a\r\n"), S("a\r\n.\r\n")},
	{S("a\nb\n"), S("a\r\nb\r\n.\r\n")},
	{S("a\r\nb\nc\r\n"), S("a\r\nb\r\nc\r\n.\r\n")},
	{S("\n"), S("\r\n.\r\n")},
	{S("\n\n"), S("\r\n\r\n.\r\n")},
	{S("\r\n\r\n"), S("\r\n\r\n.\r\n")},
	{S("a\n\r\n"), S("a\r\n\r\n.\r\n")},
	/* A CR not before an LF is content. */
	{S("a\rb\n"), S("a\rb\r\n.\r\n")},
	{S("a\r\r\n"), S("a\r\r\n.\r\n")},
	{S("x\r"), S("x\r\r\n.\r\n")},
	{S("\r"), S("\r\r\n.\r\n")},
	{S("\r\r"), S("\r\r\r\n.\r\n")},
	/* Leading dots doubled, only at line starts. */
	{S("."), S("..\r\n.\r\n")},
	{S(".\n"), S("..\r\n.\r\n")},
	{S(".\r\n"), S("..\r\n.\r\n")},
	{S("..\n"), S("...\r\n.\r\n")},
	{S(".hidden\n..two\n.\n"), S("..hidden\r\n...two\r\n..\r\n.\r\n")},
	{S("a.b\n.c\n"), S("a.b\r\n..c\r\n.\r\n")},
	{S("a\n.\nb"), S("a\r\n..\r\nb\r\n.\r\n")},
	{S("\r\n.\r\n"), S("\r\n..\r\n.\r\n")},
	{S(" .x\n"), S(" .x\r\n.\r\n")},
	{S("\r.\n"), S("\r.\r\n.\r\n")},
	{S("a\r.\n"), S("a\r.\r\n.\r\n")},
	/* NUL and 8-bit bytes pass through. */
	{S("\0.\n"), S("\0.\r\n.\r\n")},
	{S("\n\0\n.\0"), S("\r\n\0\r\n..\0\r\n.\r\n")},
	{S("caf\xc3\xa9\n"), S("caf\xc3\xa9\r\n.\r\n")},
	/* No quoting or unquoting of From_ lines. */
	{S("From x\n>From y\n"), S("From x\r\n>From y\r\n.\r\n")},
	{S("H: a\n\n.body\n..\n"), S("H: a\r\n\r\n..body\r\n...\r\n.\r\n")},
};

/* Feed in pieces cut at the given positions (ascending, within len). */
static void
encode_pieces(const char *in, size_t len, const size_t *cuts, size_t ncuts,
	      struct buf *out)
{
	struct dotstuff ds;
	size_t at = 0;

	dotstuff_init(&ds, collect, out);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		ck_assert_int_eq(dotstuff_feed(&ds, in + at, end - at), 0);
		at = end;
	}
	ck_assert_int_eq(dotstuff_finish(&ds), 0);
}

static void
show_bytes(char *dst, size_t cap, const char *s, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			dst[o++] = c;
		else
			o += snprintf(dst + o, cap - o, "\\x%02x", c);
	}
	dst[o] = '\0';
}

static void
expect_bytes(const struct buf *got, const char *want, size_t want_len,
	     const char *in, size_t in_len, const char *how)
{
	char a[512], b[512], c[512];

	if (got->len == want_len && memcmp(got->data, want, want_len) == 0)
		return;
	show_bytes(a, sizeof(a), in, in_len);
	show_bytes(b, sizeof(b), want, want_len);
	show_bytes(c, sizeof(c), got->data, got->len);
	ck_abort_msg("input \"%s\" fed %s: want \"%s\", got \"%s\"", a, how, b,
		     c);
}

/* The table's expectations agree with the model (guards the table). */
START_TEST(model_matches_table)
{
	const struct ds_case *dc = &ds_cases[_i];
	struct buf out = {0};

	model_encode(dc->in, dc->in_len, &out);
	expect_bytes(&out, dc->out, dc->out_len, dc->in, dc->in_len, "model");
	buf_free(&out);
}
END_TEST

START_TEST(table_whole_and_bytewise)
{
	const struct ds_case *dc = &ds_cases[_i];
	struct buf out = {0};
	size_t cuts[64];

	encode_pieces(dc->in, dc->in_len, NULL, 0, &out);
	expect_bytes(&out, dc->out, dc->out_len, dc->in, dc->in_len, "whole");
	buf_free(&out);

	ck_assert_uint_le(dc->in_len, sizeof(cuts) / sizeof(cuts[0]));
	for (size_t i = 0; i < dc->in_len; i++)
		cuts[i] = i;
	encode_pieces(dc->in, dc->in_len, cuts, dc->in_len, &out);
	expect_bytes(&out, dc->out, dc->out_len, dc->in, dc->in_len,
		     "in 1-byte pieces (and one empty piece first)");
	buf_free(&out);
}
END_TEST

/* Every split into two and three pieces, empty pieces included. */
START_TEST(table_every_split)
{
	const struct ds_case *dc = &ds_cases[_i];
	size_t n = dc->in_len;

	for (size_t i = 0; i <= n; i++) {
		for (size_t j = i; j <= n; j++) {
			struct buf out = {0};
			size_t cuts[2] = {i, j};
			char how[64];

			encode_pieces(dc->in, n, cuts, 2, &out);
			snprintf(how, sizeof(how), "cut at %zu and %zu", i, j);
			expect_bytes(&out, dc->out, dc->out_len, dc->in, n,
				     how);
			buf_free(&out);
		}
	}
}
END_TEST

/* Random pieces of random inputs over the interesting alphabet. */
START_TEST(random_inputs_random_pieces)
{
	static const char alphabet[] = ".\r\nax\0";
	unsigned seed = 12345;

	for (int round = 0; round < 5000; round++) {
		char in[64];
		size_t len = rand_r(&seed) % sizeof(in), cuts[64], ncuts = 0;
		struct buf want = {0}, got = {0};
		char how[32];

		for (size_t i = 0; i < len; i++)
			in[i] = alphabet[rand_r(&seed) %
					 (sizeof(alphabet) - 1)];
		for (size_t at = 0; at < len;) {
			at += 1 + rand_r(&seed) % 8;
			if (at < len)
				cuts[ncuts++] = at;
		}
		model_encode(in, len, &want);
		encode_pieces(in, len, cuts, ncuts, &got);
		snprintf(how, sizeof(how), "in %zu pieces", ncuts + 1);
		expect_bytes(&got, want.data, want.len, in, len, how);
		buf_free(&want);
		buf_free(&got);
	}
}
END_TEST

/* Encode in (exactly len octets of its own, so that AddressSanitizer
 * sees any read past the piece) whole and in the given pieces, and
 * compare with the model. */
static void
expect_model(const char *src, size_t len, const size_t *cuts, size_t ncuts,
	     const char *how)
{
	char *in = malloc(len > 0 ? len : 1);
	struct buf want = {0}, got = {0};

	ck_assert_ptr_nonnull(in);
	memcpy(in, src, len);
	model_encode(in, len, &want);
	encode_pieces(in, len, NULL, 0, &got);
	expect_bytes(&got, want.data, want.len, in, len, how);
	buf_free(&got);
	if (ncuts > 0) {
		encode_pieces(in, len, cuts, ncuts, &got);
		expect_bytes(&got, want.data, want.len, in, len, how);
		buf_free(&got);
	}
	buf_free(&want);
	free(in);
}

/* The encoder finds LFs 64 octets a step and copies a line of up to 128
 * octets in 16-, 8- and 4-octet moves: lines of every length from 0 to
 * past that (and a few longer), ended by ends[_i] (LF or CRLF, with and
 * without a leading dot next), starting at offsets across a step, whole
 * and cut inside the lines. One loop test per line end, so that each
 * stays well within check's timeout under AddressSanitizer. */
static const char *const line_ends[] = {"\n", "\r\n", "\n.", "\r\n.."};

START_TEST(every_line_length_and_offset)
{
	static const size_t leads[] = {0, 1, 15, 17, 47, 63};
	static const size_t longer[] = {191, 255, 256, 300};
	const char *end = line_ends[_i];
	char in[1024];

	for (size_t n = 0; n <= 144 + sizeof(longer) / sizeof(*longer); n++) {
		size_t line = n <= 144 ? n : longer[n - 145];

		for (size_t l = 0; l < sizeof(leads) / sizeof(*leads); l++) {
			size_t lead = leads[l], len = 0, cuts[2];
			char how[96];

			memset(in, 'p', lead);
			len = lead;
			/* Three lines at least, and 300 octets. */
			while (len + line + 4 <= sizeof(in) &&
			       (len < 300 || len < lead + 3 * line)) {
				for (size_t k = 0; k < line; k++)
					in[len + k] = 'a' + k % 26;
				len += line;
				memcpy(in + len, end, strlen(end));
				len += strlen(end);
			}
			cuts[0] = len / 3;
			cuts[1] = len / 3 + 1 + line;
			snprintf(how, sizeof(how),
				 "lines of %zu + end %d after %zu, cut at %zu, "
				 "%zu",
				 line, _i, lead, cuts[0], cuts[1]);
			expect_model(in, len, cuts, 2, how);
		}
	}
}
END_TEST

/* Random inputs of up to 2 KiB whose lines run from 0 to a few hundred
 * octets, CRs and dots anywhere, in random pieces. */
START_TEST(random_long_lines)
{
	unsigned seed = 4242;

	for (int round = 0; round < 1500; round++) {
		char in[2048];
		size_t len = rand_r(&seed) % sizeof(in), cuts[64], ncuts = 0;
		unsigned lf_every = 1 + rand_r(&seed) % 200;
		char how[32];

		for (size_t i = 0; i < len; i++) {
			unsigned r = rand_r(&seed);

			in[i] = r % lf_every == 0 ? '\n'
				: r % 37 == 1	  ? '\r'
				: r % 41 == 2	  ? '.'
						  : 'a' + r % 26;
		}
		for (size_t at = 0; at < len && ncuts < 64;) {
			at += 1 + rand_r(&seed) % 300;
			if (at < len)
				cuts[ncuts++] = at;
		}
		snprintf(how, sizeof(how), "round %d", round);
		expect_model(in, len, cuts, ncuts, how);
	}
}
END_TEST

/* A large message in large and odd-sized pieces. */
START_TEST(large_message)
{
	size_t len = 3 * 1024 * 1024 + 17;
	char *in = malloc(len);
	struct buf want = {0}, got = {0};
	size_t cuts[2048], ncuts = 0;
	unsigned seed = 7;

	ck_assert_ptr_nonnull(in);
	for (size_t i = 0; i < len; i++) {
		unsigned r = rand_r(&seed) % 100;

		in[i] = r < 3 ? '\n' : r < 5 ? '\r' : r < 8 ? '.' : 'm';
	}
	for (size_t at = 0; ncuts < 2048;) {
		at += 1 + rand_r(&seed) % 4000;
		if (at >= len)
			break;
		cuts[ncuts++] = at;
	}
	model_encode(in, len, &want);
	encode_pieces(in, len, cuts, ncuts, &got);
	ck_assert_uint_eq(got.len, want.len);
	ck_assert(memcmp(got.data, want.data, want.len) == 0);
	buf_free(&want);
	buf_free(&got);
	free(in);
}
END_TEST

/* Large inputs fed whole or in large pieces: the buffer fills many
 * times within one feed, and long runs that need no change (CRLF lines,
 * one long line) go to the writer uncopied. kind 0: short LF lines with
 * leading dots; 1: CRLF lines, a few with dots; 2: one 200 KB line;
 * 3: random over the interesting alphabet. */
static char *
make_large(int kind, size_t len, unsigned seed)
{
	char *in = malloc(len);

	ck_assert_ptr_nonnull(in);
	for (size_t i = 0; i < len; i++) {
		unsigned r = rand_r(&seed) % 1000;

		switch (kind) {
		case 0:
			in[i] = r < 15 ? '\n' : r < 30 ? '.' : 'a' + r % 26;
			break;
		case 1:
			in[i] = i % 80 == 78	       ? '\r'
				: i % 80 == 79	       ? '\n'
				: i % 80 == 0 && r < 5 ? '.'
						       : 'a' + r % 26;
			break;
		case 2:
			in[i] = i == len / 2 ? '\n' : '.';
			break;
		default:
			in[i] = ".\r\nx"[r % 4];
			break;
		}
	}
	return in;
}

static const size_t large_piece[] = {(size_t)-1, DOTSTUFF_BUFFER_SIZE,
				     DOTSTUFF_DIRECT_MIN - 1, 100003};

START_TEST(large_inputs_large_pieces)
{
	size_t len = 1024 * 1024 + 3, cuts[64], ncuts = 0;
	struct buf want = {0}, got = {0};

	for (int kind = 0; kind < 4; kind++) {
		char *in = make_large(kind, len, 99 + kind);

		ncuts = 0;
		for (size_t at = large_piece[_i]; at < len && ncuts < 64;
		     at += large_piece[_i])
			cuts[ncuts++] = at;
		model_encode(in, len, &want);
		encode_pieces(in, len, cuts, ncuts, &got);
		ck_assert_msg(got.len == want.len && memcmp(got.data, want.data,
							    want.len) == 0,
			      "kind %d, pieces of %zu: output differs", kind,
			      large_piece[_i]);
		buf_free(&want);
		buf_free(&got);
		free(in);
	}
}
END_TEST

/* Nothing fed waits in the encoder for a later call: after each feed
 * the writer holds the encoding of everything fed so far (a reply cut
 * off later still delivered every octet it was given). */
START_TEST(feed_hands_everything_on)
{
	static const char in[] = "a\n.b\r\nc";
	struct buf got = {0}, want = {0};
	struct dotstuff ds;

	dotstuff_init(&ds, collect, &got);
	for (size_t i = 0; i < sizeof(in) - 1; i++) {
		ck_assert_int_eq(dotstuff_feed(&ds, in + i, 1), 0);
		model_encode(in, i + 1, &want);
		/* The model closes the line and adds ".CRLF": not yet. */
		want.len -= in[i] == '\n' ? 3 : 5;
		expect_bytes(&got, want.data, want.len, in, i + 1,
			     "so far, bytewise");
		buf_free(&want);
	}
	buf_free(&got);
}
END_TEST

/* Counts the writer's calls. */
static int
count_writer(void *ctx, const void *data, size_t len)
{
	(*(size_t *)ctx)++;
	return 0;
}

/* The encoder hands the writer large blocks, not a line or an inserted
 * CR at a time: 1 MB of 40-octet lines (26,000 of them, each needing a
 * CR) fed whole reaches the writer in at most one call per buffer's worth
 * of output, plus the terminator's. */
START_TEST(output_in_large_blocks)
{
	size_t len = 1024 * 1024, calls = 0;
	char *in = malloc(len);
	struct dotstuff ds;

	ck_assert_ptr_nonnull(in);
	for (size_t i = 0; i < len; i++)
		in[i] = i % 40 == 39 ? '\n' : i % 40 == 0 ? '.' : 'x';
	dotstuff_init(&ds, count_writer, &calls);
	ck_assert_int_eq(dotstuff_feed(&ds, in, len), 0);
	ck_assert_int_eq(dotstuff_finish(&ds), 0);
	ck_assert_uint_le(calls, (len * 43 / 40) / DOTSTUFF_BUFFER_SIZE + 2);
	free(in);
}
END_TEST

/* A writer that fails on its fail_at-th call and counts later calls. */
struct failing {
	int calls, fail_at;
	bool failed;
	int calls_after_failure;
};

static int
fail_writer(void *ctx, const void *data, size_t len)
{
	struct failing *f = ctx;

	if (f->failed) {
		f->calls_after_failure++;
		return -1;
	}
	if (f->calls++ == f->fail_at) {
		f->failed = true;
		return -1;
	}
	return 0;
}

/* For every write the encoder makes, fail that one: the feed or finish
 * call during which it failed returns -1 and writes nothing more; calls
 * before it return 0. Done whole and bytewise. */
START_TEST(writer_failure_propagates)
{
	const struct ds_case *dc = &ds_cases[_i];

	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct failing probe = {0, -1, false, 0};
		struct dotstuff ds;
		int total;

		/* Count the writes of a run that does not fail. */
		dotstuff_init(&ds, fail_writer, &probe);
		if (bytewise)
			for (size_t i = 0; i < dc->in_len; i++)
				ck_assert_int_eq(
					dotstuff_feed(&ds, dc->in + i, 1), 0);
		else
			ck_assert_int_eq(dotstuff_feed(&ds, dc->in, dc->in_len),
					 0);
		ck_assert_int_eq(dotstuff_finish(&ds), 0);
		total = probe.calls;
		ck_assert_int_ge(total, 1);

		for (int k = 0; k < total; k++) {
			struct failing f = {0, k, false, 0};
			bool seen = false;
			size_t steps = bytewise ? dc->in_len : 1;
			int r;

			dotstuff_init(&ds, fail_writer, &f);
			for (size_t i = 0; i <= steps && !seen; i++) {
				bool was_failed = f.failed;

				if (i < steps)
					r = bytewise
						    ? dotstuff_feed(&ds,
								    dc->in + i,
								    1)
						    : dotstuff_feed(&ds, dc->in,
								    dc->in_len);
				else
					r = dotstuff_finish(&ds);
				ck_assert_msg(
					r == (f.failed && !was_failed ? -1 : 0),
					"case %d, fail write %d, step %zu: "
					"returned %d",
					_i, k, i, r);
				seen = r < 0;
			}
			ck_assert_msg(seen, "case %d: failure at write %d lost",
				      _i, k);
			ck_assert_int_eq(f.calls_after_failure, 0);
		}
	}
}
END_TEST

/* A writer failure in the middle of a large feed: that feed returns -1
 * and nothing more is written, then or later. */
START_TEST(writer_failure_in_large_feed)
{
	size_t len = 512 * 1024;

	for (int kind = 0; kind < 4; kind++) {
		char *in = make_large(kind, len, 5 + kind);

		for (int k = 0; k < 6; k++) {
			struct failing f = {0, k, false, 0};
			struct dotstuff ds;
			int r;

			dotstuff_init(&ds, fail_writer, &f);
			r = dotstuff_feed(&ds, in, len);
			if (!f.failed) {
				/* Fewer writes than k in this input. */
				ck_assert_int_eq(r, 0);
				continue;
			}
			ck_assert_int_eq(r, -1);
			ck_assert_int_eq(dotstuff_feed(&ds, in, 10), -1);
			ck_assert_int_eq(dotstuff_finish(&ds), -1);
			ck_assert_int_eq(f.calls_after_failure, 0);
		}
		free(in);
	}
}
END_TEST

static Suite *
dotstuff_suite(void)
{
	Suite *s = suite_create("dotstuff");
	TCase *tc = tcase_create("encode");
	int n = sizeof(ds_cases) / sizeof(ds_cases[0]);

	tcase_add_loop_test(tc, model_matches_table, 0, n);
	tcase_add_loop_test(tc, table_whole_and_bytewise, 0, n);
	tcase_add_loop_test(tc, table_every_split, 0, n);
	tcase_add_test(tc, random_inputs_random_pieces);
	tcase_add_loop_test(tc, every_line_length_and_offset, 0,
			    sizeof(line_ends) / sizeof(line_ends[0]));
	tcase_add_test(tc, random_long_lines);
	tcase_add_test(tc, large_message);
	tcase_add_loop_test(tc, large_inputs_large_pieces, 0,
			    sizeof(large_piece) / sizeof(large_piece[0]));
	tcase_add_test(tc, output_in_large_blocks);
	tcase_add_test(tc, feed_hands_everything_on);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, writer_failure_propagates, 0, n);
	tcase_add_test(tc, writer_failure_in_large_feed);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(dotstuff_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
