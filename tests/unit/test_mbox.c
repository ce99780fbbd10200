/* Unit tests for the mbox parser (mbox.c), through maildrop.h: where
 * messages begin and end, their CRLF sizes (R1939-38, DEC-07, DEC-08),
 * the facts TOP needs (R1939-44/45, DEC-17), at any line length and at
 * every chunk boundary, on real spool files (spool_helpers.h says what a
 * message is). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "maildrop.h"
#include "mbox.h"
#include "spool_helpers.h"

/* --- parse table ---------------------------------------------------------- */

struct parse_case {
	const char *name;
	struct bytes spool;
	size_t count;
	struct bytes msg[3];
};

static const struct parse_case parse_cases[] = {
	{"empty file", B(""), 0, {{NULL, 0}}},
	{"one message",
	 B(F1 "Subject: a\n\nbody\n"),
	 1,
	 {B("Subject: a\n\nbody\n")}},
	{"trailing separator blank line excluded",
	 B(F1 "Subject: a\n\nbody\n\n"),
	 1,
	 {B("Subject: a\n\nbody\n")}},
	{"only one trailing blank line is the separator",
	 B(F1 "Subject: a\n\nbody\n\n\n"),
	 1,
	 {B("Subject: a\n\nbody\n\n")}},
	{"two messages",
	 B(F1 "S: 1\n\nb1\n\n" F2 "S: 2\n\nb2\n\n"),
	 2,
	 {B("S: 1\n\nb1\n"), B("S: 2\n\nb2\n")}},
	{"three messages, last without separator",
	 B(F1 "S: 1\n\nb1\n\n" F2 "S: 2\n\nb2\n\n" F3 "S: 3\n\nb3\n"),
	 3,
	 {B("S: 1\n\nb1\n"), B("S: 2\n\nb2\n"), B("S: 3\n\nb3\n")}},
	{"no trailing newline", B(F1 "S: 1\n\nbody"), 1, {B("S: 1\n\nbody")}},
	{"second message without trailing newline",
	 B(F1 "S: 1\n\nb1\n\n" F2 "S: 2\n\nb2"),
	 2,
	 {B("S: 1\n\nb1\n"), B("S: 2\n\nb2")}},
	{"ends in a CR", B(F1 "S: 1\n\nbody\r"), 1, {B("S: 1\n\nbody\r")}},
	{"header-only message at the end",
	 B(F1 "S: 1\nTo: x\n"),
	 1,
	 {B("S: 1\nTo: x\n")}},
	{"header-only message, separator",
	 B(F1 "S: 1\nTo: x\n\n"),
	 1,
	 {B("S: 1\nTo: x\n")}},
	{"header-only message, no newline", B(F1 "S: 1"), 1, {B("S: 1")}},
	{"header-only message then another",
	 B(F1 "S: 1\nTo: x\n\n" F2 "S: 2\n\nb\n"),
	 2,
	 {B("S: 1\nTo: x\n"), B("S: 2\n\nb\n")}},
	{"From_ after a blank line in a body starts a message",
	 B(F1 "S: 1\n\nl1\n\nFrom x y\nS: 2\n\nb\n"),
	 2,
	 {B("S: 1\n\nl1\n"), B("S: 2\n\nb\n")}},
	{"From_ without a blank line before it is body",
	 B(F1 "S: 1\n\nl1\nFrom x y\nmore\n"),
	 1,
	 {B("S: 1\n\nl1\nFrom x y\nmore\n")}},
	{"From_ right after the header blank line",
	 B(F1 "S: 1\n\nFrom x\nS: 2\n\nb\n"),
	 2,
	 {B("S: 1\n"), B("S: 2\n\nb\n")}},
	{"From_ line after the From_ line is content",
	 B(F1 F2 "S: 1\n\nb\n"),
	 1,
	 {B(F2 "S: 1\n\nb\n")}},
	{"not separators: Fromage, from, From without SP",
	 B(F1 "S: 1\n\nx\n\nFromage\n\nfrom y\n\nFrom\n\n From z\n"),
	 1,
	 {B("S: 1\n\nx\n\nFromage\n\nfrom y\n\nFrom\n\n From z\n")}},
	{">From lines kept as stored",
	 B(F1 "S: 1\n\n>From me\n\n>>From you\n>From\n"),
	 1,
	 {B("S: 1\n\n>From me\n\n>>From you\n>From\n")}},
	{"From_ line only", B(F1), 1, {B("")}},
	{"empty message between two",
	 B(F1 "\n" F2 "S: 2\n\nb\n"),
	 2,
	 {B(""), B("S: 2\n\nb\n")}},
	{"no headers: blank line right after the From_ line",
	 B(F1 "\nbody1\nbody2\n"),
	 1,
	 {B("\nbody1\nbody2\n")}},
	{"CRLF-stored content, LF framing",
	 B(F1 "S: 1\r\n\r\nb\r\n\n" F2 "S: 2\r\n\r\nc\r\n"),
	 2,
	 {B("S: 1\r\n\r\nb\r\n"), B("S: 2\r\n\r\nc\r\n")}},
	{"CRLF-stored mbox throughout",
	 B("From a Mon Jan  1 00:00:00 2024\r\nS: 1\r\n\r\nb\r\n\r\n"
	   "From b Mon Jan  1 00:00:00 2024\r\nS: 2\r\n\r\nc\r\n"),
	 2,
	 {B("S: 1\r\n\r\nb\r\n"), B("S: 2\r\n\r\nc\r\n")}},
	{"mixed line ends",
	 B(F1 "S: 1\r\nT: 2\n\r\nl1\nl2\r\nl3\n"),
	 1,
	 {B("S: 1\r\nT: 2\n\r\nl1\nl2\r\nl3\n")}},
	{"NUL bytes in headers and body",
	 B(F1 "S: 1\nX-N: a\0b\n\na\0b\n\0\n\0"),
	 1,
	 {B("S: 1\nX-N: a\0b\n\na\0b\n\0\n\0")}},
	{"NUL bytes around a separator",
	 B(F1 "S: 1\n\n\0\n\n" F2 "S: \0\n\n\0"),
	 2,
	 {B("S: 1\n\n\0\n"), B("S: \0\n\n\0")}},
	{"8-bit octets",
	 B(F1 "S: caf\xc3\xa9\n\n\xff\xfe\n"),
	 1,
	 {B("S: caf\xc3\xa9\n\n\xff\xfe\n")}},
	{"dot lines are stored unstuffed",
	 B(F1 "S: 1\n\n.\n..x\n.\n"),
	 1,
	 {B("S: 1\n\n.\n..x\n.\n")}},
	{"lone CRs are content",
	 B(F1 "S: 1\r\r\n\na\rb\n\r\r\n"),
	 1,
	 {B("S: 1\r\r\n\na\rb\n\r\r\n")}},
};

START_TEST(parse_table)
{
	const struct parse_case *pc = &parse_cases[_i];
	char path[PATH_MAX];
	struct maildrop *md;

	make_spool(path, pc->spool.p, pc->spool.n);
	md = open_ok(path);
	ck_assert_msg(maildrop_count(md) == pc->count,
		      "%s: %zu messages, want %zu", pc->name,
		      maildrop_count(md), pc->count);
	for (size_t i = 0; i < pc->count; i++)
		expect_message(md, i, pc->msg[i].p, pc->msg[i].n, pc->name);
	expect_uids_ok(md, NULL);
	maildrop_close(md);
}
END_TEST

/* Not mbox: refused as a spool the admin must look at. */
static const struct bytes not_mbox[] = {
	B("Subject: x\n\nbody\n"),
	B("\n" F1 "S: 1\n\nb\n"),
	B("\r\n" F1 "S: 1\n\nb\n"),
	B("from a Mon Jan  1 00:00:00 2024\nS: 1\n\nb\n"),
	B(">From a Mon Jan  1 00:00:00 2024\nS: 1\n\nb\n"),
	B(" From a\nS: 1\n\nb\n"),
	B("From\nS: 1\n\nb\n"),
	B("From"),
	B("F"),
	B("\0From a\n"),
	B("FROM a\nS: 1\n"),
	B("\n"),
};

START_TEST(not_mbox_refused)
{
	char path[PATH_MAX];
	struct maildrop *md = NULL;
	struct buf before = {0}, after = {0};
	int fds = count_fds();

	make_spool(path, not_mbox[_i].p, not_mbox[_i].n);
	read_whole_file(path, &before);
	ck_assert_msg(open_spool(path, &md) == MD_PERMFAIL, "\"%s\" accepted",
		      show(not_mbox[_i].p, not_mbox[_i].n));
	ck_assert_int_eq(count_fds(), fds);
	read_whole_file(path, &after);
	expect_bytes("spool after refusal", after.data, after.len, before.data,
		     before.len);
	buf_free(&before);
	buf_free(&after);
}
END_TEST

/* --- large inputs and chunk boundaries ------------------------------------ */

/* A line longer than any buffer: 1 MB in the body. */
START_TEST(one_megabyte_line)
{
	size_t line = 1024 * 1024;
	struct buf spool = {0}, m1 = {0};
	char path[PATH_MAX];
	struct maildrop *md;
	char *x = malloc(line);

	ck_assert_ptr_nonnull(x);
	memset(x, 'x', line);
	buf_str(&m1, "S: 1\n\n");
	buf_add(&m1, x, line);
	buf_str(&m1, "\nend\n");
	buf_str(&spool, F1);
	buf_add(&spool, m1.data, m1.len);
	buf_str(&spool, "\n" F2 "S: 2\n\nb\n");
	make_spool(path, spool.data, spool.len);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 2);
	expect_message(md, 0, m1.data, m1.len, "1 MB body line");
	expect_message(md, 1, "S: 2\n\nb\n", 8, "after 1 MB body line");
	maildrop_close(md);
	buf_free(&spool);
	buf_free(&m1);
	free(x);
}
END_TEST

/* A 1 MB header line, and a 1 MB From_ line before it. */
START_TEST(one_megabyte_header_and_from_line)
{
	size_t line = 1024 * 1024;
	struct buf spool = {0}, m1 = {0};
	char path[PATH_MAX];
	struct maildrop *md;
	char *x = malloc(line);

	ck_assert_ptr_nonnull(x);
	memset(x, 'h', line);
	buf_str(&m1, "X-Long: ");
	buf_add(&m1, x, line);
	buf_str(&m1, "\nS: 1\n\nbody\n");
	buf_str(&spool, "From ");
	buf_add(&spool, x, line);
	buf_str(&spool, "\n");
	buf_add(&spool, m1.data, m1.len);
	buf_str(&spool, "\n" F2 "S: 2\n\nb\n");
	make_spool(path, spool.data, spool.len);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 2);
	expect_message(md, 0, m1.data, m1.len, "1 MB header line");
	expect_message(md, 1, "S: 2\n\nb\n", 8, "after 1 MB header line");
	expect_uids_ok(md, NULL);
	maildrop_close(md);
	buf_free(&spool);
	buf_free(&m1);
	free(x);
}
END_TEST

/* The blank line and the From_ line of a separator, and CRLF pairs,
 * straddling each position around the parser's read-chunk boundaries
 * (_i / 2 picks the boundary, _i % 2 the line ends: with CR LF, the
 * blank line's CR once ended a window and its LF began the next, and
 * the parse crashed). */
START_TEST(separator_at_chunk_boundary)
{
	static const size_t bounds[] = {SPOOL_CHUNK_SIZE, 2 * SPOOL_CHUNK_SIZE,
					LINE_LOOKAHEAD};

	for (int d = -10; d < 10; d++) {
		size_t target = bounds[_i / 2] + d;
		struct buf spool = {0}, m1 = {0};
		char path[PATH_MAX], name[64];
		struct maildrop *md;
		unsigned seed = d + 10;
		bool crlf = _i % 2;

		/* m1 is padded so that the separator's blank line (CR LF
		 * too, with CR LF line ends) sits at target; lines of random
		 * lengths put line ends everywhere. */
		buf_str(&spool, F1);
		buf_str(&m1, crlf ? "S: 1\r\n\r\n" : "S: 1\n\n");
		while (strlen(F1) + m1.len + 40 < target) {
			size_t n = 1 + rand_r(&seed) % 30;
			char line[32];

			memset(line, 'y', n);
			buf_add(&m1, line, n);
			buf_str(&m1, crlf ? "\r\n" : "\n");
		}
		while (strlen(F1) + m1.len + (crlf ? 2 : 1) < target)
			buf_add(&m1, "z", 1);
		buf_str(&m1, crlf ? "\r\n" : "\n");
		buf_add(&spool, m1.data, m1.len);
		buf_str(&spool, crlf ? "\r\n" F2 "S: 2\n\n.b\n"
				     : "\n" F2 "S: 2\n\n.b\n");
		make_spool(path, spool.data, spool.len);
		md = open_ok(path);
		snprintf(name, sizeof(name), "%s blank line at offset %zu",
			 crlf ? "CR LF" : "LF", target);
		ck_assert_msg(maildrop_count(md) == 2, "%s: %zu messages", name,
			      maildrop_count(md));
		expect_message(md, 0, m1.data, m1.len, name);
		expect_message(md, 1, "S: 2\n\n.b\n", 9, name);
		maildrop_close(md);
		buf_free(&spool);
		buf_free(&m1);
	}
}
END_TEST

/* --- random mailboxes ------------------------------------------------------
 */

/* Build a random but unambiguous mbox: no body line starts with "From ",
 * every message but the last ends in a newline and a separator (LF or
 * CR LF), and the last one only omits the separator when its last line
 * is not empty. */
static void
random_spool(unsigned *seed, struct buf *spool, struct buf *msgs, size_t *count)
{
	/* clang-format off */
	static const struct bytes body_lines[] = {
		B(""), B("."), B("..x"), B(">From a"), B("text"), B("a\0b"),
		B("tab\there"), B("xFrom y"), B(" From z"), B("Fromage"),
		B("From"), B("\xc3\xa9t\xc3\xa9"), B("Subject: not a header"),
	};
	/* clang-format on */
	size_t n = 1 + rand_r(seed) % 5;

	*count = n;
	for (size_t m = 0; m < n; m++) {
		struct buf *c = &msgs[m];
		bool last = m == n - 1, last_empty = false, newline = true;
		int mode = rand_r(seed) % 3, kind = rand_r(seed) % 12;
		char from[128];

		c->len = 0;
		buf_add(c, "", 0);
#define EOL() (mode == 1 || (mode == 2 && rand_r(seed) % 2) ? "\r\n" : "\n")
		if (kind != 0) {
			size_t nh = 1 + rand_r(seed) % 4;

			for (size_t h = 0; h < nh; h++) {
				char hdr[64];

				snprintf(hdr, sizeof(hdr), "X-H%zu: v%u", h,
					 rand_r(seed) % 1000);
				buf_str(c, hdr);
				buf_str(c, EOL());
			}
		}
		if (kind > 1) { /* kind 1: headers only, 0: empty */
			size_t nb = rand_r(seed) % 7;

			buf_str(c, EOL());
			last_empty = true;
			for (size_t b = 0; b < nb; b++) {
				const struct bytes *l =
					&body_lines[rand_r(seed) %
						    (sizeof(body_lines) /
						     sizeof(body_lines[0]))];

				buf_add(c, l->p, l->n);
				buf_str(c, EOL());
				last_empty = l->n == 0;
			}
		} else {
			last_empty = false;
		}
#undef EOL
		if (last && c->len > 0 && rand_r(seed) % 3 == 0) {
			buf_str(c, "no newline");
			newline = false;
			last_empty = false;
		}
		snprintf(
			from, sizeof(from),
			"From gen%zu@example.org Mon Jan  1 00:00:%02zu 2024\n",
			m, m);
		buf_str(spool, from);
		buf_add(spool, c->data, c->len);
		/* The separator: a blank line, CR LF one time in three. */
		if (!last || (newline && (last_empty || rand_r(seed) % 2)))
			buf_str(spool, rand_r(seed) % 3 ? "\n" : "\r\n");
	}
}

START_TEST(random_mailboxes)
{
	unsigned seed = 1000 + _i;

	for (int round = 0; round < 100; round++) {
		struct buf spool = {0}, msgs[5];
		char path[PATH_MAX], name[64];
		struct maildrop *md;
		size_t count;

		memset(msgs, 0, sizeof(msgs));
		random_spool(&seed, &spool, msgs, &count);
		make_spool(path, spool.data, spool.len);
		md = open_ok(path);
		snprintf(name, sizeof(name), "random spool %d/%d", _i, round);
		ck_assert_msg(maildrop_count(md) == count,
			      "%s \"%s\": %zu messages, want %zu", name,
			      show(spool.data, spool.len), maildrop_count(md),
			      count);
		for (size_t i = 0; i < count; i++)
			expect_message(md, i, msgs[i].data, msgs[i].len, name);
		expect_uids_ok(md, NULL);
		maildrop_close(md);
		for (size_t i = 0; i < 5; i++)
			buf_free(&msgs[i]);
		buf_free(&spool);
	}
}
END_TEST

/* Every fact of every message of the spool at fd, parsed through a
 * window of cap octets. Returns the count. */
static size_t
parse_with_window(int fd, off_t len, size_t cap, struct message *m,
		  struct uidl_entry *u, char **xuidl, size_t max)
{
	struct uidl_hasher *h = uidl_hasher_new();
	char *buf = malloc(cap);
	struct reader r;
	size_t n = 0;

	ck_assert_ptr_nonnull(h);
	ck_assert_ptr_nonnull(buf);
	reader_init(&r, fd, buf, cap, 0, len);
	while (!reader_at_end(&r)) {
		ck_assert_uint_lt(n, max);
		ck_assert_int_eq(
			mbox_parse_message(&r, h, &m[n], &u[n], &xuidl[n]), 0);
		n++;
	}
	free(buf);
	uidl_hasher_free(h);
	return n;
}

/* The facts must not depend on where the reads fall: windows from the
 * smallest the parser works with up, against one that holds the whole
 * spool, on random spools with bodies long enough to cross many. */
START_TEST(window_sizes_agree)
{
	unsigned seed = 2000 + _i;

	for (int round = 0; round < 20; round++) {
		struct message want[8], got[8];
		struct uidl_entry wu[8], gu[8];
		char *wx[8], *gx[8];
		struct buf spool = {0}, msgs[5];
		char path[PATH_MAX];
		size_t count, n;
		int fd;

		memset(msgs, 0, sizeof(msgs));
		random_spool(&seed, &spool, msgs, &count);
		make_spool(path, spool.data, spool.len);
		fd = open(path, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		n = parse_with_window(fd, spool.len, spool.len + 4096, want, wu,
				      wx, 8);
		ck_assert_uint_eq(n, count);
		for (size_t cap = READER_MIN_CAP; cap < READER_MIN_CAP + 72;
		     cap += 1 + rand_r(&seed) % 7) {
			ck_assert_uint_eq(parse_with_window(fd, spool.len, cap,
							    got, gu, gx, 8),
					  n);
			for (size_t i = 0; i < n; i++) {
				got[i].deleted = want[i].deleted;
				ck_assert_msg(memcmp(&got[i], &want[i],
						     sizeof(got[i])) == 0,
					      "window %zu, message %zu of "
					      "\"%s\"",
					      cap, i + 1,
					      show(spool.data, spool.len));
				ck_assert(memcmp(gu[i].digest, wu[i].digest,
						 sizeof(gu[i].digest)) == 0);
				ck_assert((gx[i] == NULL) == (wx[i] == NULL));
				ck_assert(gx[i] == NULL ||
					  strcmp(gx[i], wx[i]) == 0);
				free(gx[i]);
			}
		}
		for (size_t i = 0; i < n; i++)
			free(wx[i]);
		close(fd);
		for (size_t i = 0; i < 5; i++)
			buf_free(&msgs[i]);
		buf_free(&spool);
	}
}
END_TEST

/* --- the two body scans ----------------------------------------------------
 */

/* A spool made to trip the body scan: bodies of pieces dense in LF, CR
 * and 'F', "From " with and without a blank line (LF or CR LF) before
 * it, so that separators and near misses fall at every offset of the
 * AVX2 way's 64-octet steps and of the windows. */
static void
scan_spool(unsigned *seed, struct buf *spool)
{
	/* clang-format off */
	static const struct bytes pieces[] = {
		B("\n"), B("\r\n"), B("\r"), B("F"), B("From "), B("\nFrom "),
		B("\nF"), B("\n\nFrom x y\n"), B("\r\n\r\nFrom x y\n"),
		B("\n\r\nFrom x y\n"), B("\r\n\nFrom x y\n"), B("\n\nFro"),
		B("\n\nFromage\n"), B("x"), B("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
		B("\n>From "), B("\n\n"), B("\r\r\n"),
	};
	/* clang-format on */
	size_t want = rand_r(seed) % 1500;

	spool->len = 0;
	buf_str(spool, F1 "S: 1\n\n");
	while (spool->len < want) {
		const struct bytes *b = &pieces[rand_r(seed) % N(pieces)];

		buf_add(spool, b->p, b->n);
	}
}

/* The AVX2 way (where the CPU has it) gives every fact the portable way
 * gives, through whole and small windows. */
START_TEST(scans_agree)
{
	enum { MAX = 512 };
	struct message *want = calloc(MAX, sizeof(*want)),
		       *got = calloc(MAX, sizeof(*got));
	struct uidl_entry *wu = calloc(MAX, sizeof(*wu)),
			  *gu = calloc(MAX, sizeof(*gu));
	char **wx = calloc(MAX, sizeof(*wx)), **gx = calloc(MAX, sizeof(*gx));
	unsigned seed = 3000 + _i;
	struct buf spool = {0};

	for (int round = 0; round < 200; round++) {
		char path[PATH_MAX];
		size_t cap, n;
		int fd;

		scan_spool(&seed, &spool);
		make_spool(path, spool.data, spool.len);
		fd = open(path, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		cap = round % 2 ? spool.len + 4096
				: (size_t)READER_MIN_CAP + rand_r(&seed) % 300;
		mbox_portable_scan(true);
		n = parse_with_window(fd, spool.len, cap, want, wu, wx, MAX);
		mbox_portable_scan(false);
		ck_assert_uint_eq(
			parse_with_window(fd, spool.len, cap, got, gu, gx, MAX),
			n);
		for (size_t i = 0; i < n; i++) {
			ck_assert_msg(memcmp(&got[i], &want[i],
					     sizeof(got[i])) == 0 &&
					      memcmp(gu[i].digest, wu[i].digest,
						     sizeof(gu[i].digest)) == 0,
				      "window %zu, message %zu of \"%s\"", cap,
				      i + 1, show(spool.data, spool.len));
			free(wx[i]);
			free(gx[i]);
		}
		close(fd);
	}
	buf_free(&spool);
	free(want);
	free(got);
	free(wu);
	free(gu);
	free(wx);
	free(gx);
}
END_TEST

static void
portable_on(void)
{
	mbox_portable_scan(true);
}

static void
portable_off(void)
{
	mbox_portable_scan(false);
}

/* --- TOP --------------------------------------------------------------------
 */

struct top_case {
	size_t msg;
	unsigned long lines;
	struct bytes want;
};

/* clang-format off */
#define TOP_SPOOL					\
	F1 "H1: a\nH2: b\n\nl1\nl2\nl3\n\n"		\
	F2 "H1: a\nH2: b\n\n"				\
	F3 "H: a\r\n\r\nl1\r\nl2\r\n\n"			\
	F1 "\nbody1\nbody2\n\n"				\
	F2 "H: a\n\n\n\nl4\n\n"				\
	F3 "H: a\n\nl1\nl2"
/* clang-format on */

static const struct top_case top_cases[] = {
	{0, 0, B("H1: a\nH2: b\n\n")},
	{0, 1, B("H1: a\nH2: b\n\nl1\n")},
	{0, 2, B("H1: a\nH2: b\n\nl1\nl2\n")},
	{0, 3, B("H1: a\nH2: b\n\nl1\nl2\nl3\n")},
	{0, 4, B("H1: a\nH2: b\n\nl1\nl2\nl3\n")},
	{0, 1000000, B("H1: a\nH2: b\n\nl1\nl2\nl3\n")},
	{0, ULONG_MAX, B("H1: a\nH2: b\n\nl1\nl2\nl3\n")},
	/* DEC-17: no blank line, headers only. */
	{1, 0, B("H1: a\nH2: b\n")},
	{1, 5, B("H1: a\nH2: b\n")},
	{2, 0, B("H: a\r\n\r\n")},
	{2, 1, B("H: a\r\n\r\nl1\r\n")},
	{2, 9, B("H: a\r\n\r\nl1\r\nl2\r\n")},
	/* Empty header section. */
	{3, 0, B("\n")},
	{3, 1, B("\nbody1\n")},
	/* Blank body lines count as lines. */
	{4, 0, B("H: a\n\n")},
	{4, 1, B("H: a\n\n\n")},
	{4, 2, B("H: a\n\n\n\n")},
	{4, 3, B("H: a\n\n\n\nl4\n")},
	/* No final newline: the last line is a line. */
	{5, 1, B("H: a\n\nl1\n")},
	{5, 2, B("H: a\n\nl1\nl2")},
	{5, 3, B("H: a\n\nl1\nl2")},
};

START_TEST(top_table)
{
	const struct top_case *tc = &top_cases[_i];
	static const char spool[] = TOP_SPOOL;
	char path[PATH_MAX], what[64];
	struct maildrop *md;
	struct buf out = {0};

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 6);
	ck_assert_int_eq(send_msg(md, tc->msg, &tc->lines, &out), MD_OK);
	snprintf(what, sizeof(what), "TOP %zu %lu", tc->msg + 1, tc->lines);
	expect_bytes(what, out.data, out.len, tc->want.p, tc->want.n);
	/* The model used elsewhere agrees with this table. */
	ck_assert_int_eq(send_msg(md, tc->msg, NULL, &out), MD_OK);
	ck_assert_uint_eq(top_model(out.data, out.len, tc->lines), tc->want.n);
	maildrop_close(md);
	buf_free(&out);
}
END_TEST

/* --- runner ------------------------------------------------------------- */

static Suite *
mbox_suite(void)
{
	Suite *s = suite_create("mbox");
	TCase *tc;

	/* Every parse test runs twice: with the body scan pop3d picks for
	 * this CPU, then with the portable one. */
	for (int portable = 0; portable < 2; portable++) {
		tc = tcase_create(portable ? "parse, portable scan" : "parse");
		if (portable)
			tcase_add_unchecked_fixture(tc, portable_on,
						    portable_off);
		tcase_add_loop_test(tc, parse_table, 0, N(parse_cases));
		tcase_add_loop_test(tc, not_mbox_refused, 0, N(not_mbox));
		tcase_add_test(tc, one_megabyte_line);
		tcase_add_test(tc, one_megabyte_header_and_from_line);
		tcase_add_loop_test(tc, separator_at_chunk_boundary, 0, 6);
		tcase_add_loop_test(tc, window_sizes_agree, 0, 10);
		tcase_add_loop_test(tc, random_mailboxes, 0, 3);
		tcase_set_timeout(tc, 30);
		suite_add_tcase(s, tc);
	}

	tc = tcase_create("scans");
	tcase_add_loop_test(tc, scans_agree, 0, 5);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("top");
	tcase_add_loop_test(tc, top_table, 0, N(top_cases));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return spool_test_main("test_mbox", mbox_suite());
}
