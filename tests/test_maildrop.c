/* Unit tests for the maildrop (design.md §4), through maildrop.h only:
 * real spool files in a temporary directory, owned by getuid().
 *
 * What a message is: the bytes after its From_ line up to, not including,
 * the blank line before the next From_ line (or the end of the file, where
 * one trailing blank line is also a separator). Its size is what RETR
 * sends before dot-stuffing: bare LF counted as CRLF, and CRLF added when
 * the message does not end in a newline (R1939-38, DEC-07, DEC-08). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw */
#endif
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dotstuff.h"
#include "log.h"
#include "maildrop.h"

/* --- helpers ------------------------------------------------------------ */

struct bytes {
	const char *p;
	size_t n;
};

/* clang-format off */
#define B(lit) {lit, sizeof(lit) - 1}
/* clang-format on */

struct buf {
	char *data;
	size_t len, cap;
};

static void
buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		b->cap = (b->len + len + 1) * 2;
		b->data = realloc(b->data, b->cap);
		ck_assert_ptr_nonnull(b->data);
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static char base_dir[PATH_MAX / 2];

static const struct md_limits no_limits = {
	MAILDROP_MESSAGES_MAX_DEFAULT, MAILDROP_SIZE_MAX_DEFAULT,
	base_dir, /* UPDATE's journals */
};

/* A fresh directory for one test; path gets "<dir>/mbox". */
static void
new_spool_path(char dir[PATH_MAX], char path[PATH_MAX])
{
	snprintf(dir, PATH_MAX, "%s/tXXXXXX", base_dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, PATH_MAX, "%s/mbox", dir);
}

static void
write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static void
append_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static void
read_whole_file(const char *path, struct buf *b)
{
	char chunk[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	b->len = 0;
	buf_add(b, "", 0);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(b, chunk, n);
	ck_assert_int_eq(n, 0);
	close(fd);
}

/* A spool at a new path holding data. */
static void
make_spool(char path[PATH_MAX], const void *data, size_t len)
{
	char dir[PATH_MAX];

	new_spool_path(dir, path);
	write_file(path, data, len);
}

static enum md_status
open_spool(const char *path, struct maildrop **md)
{
	*md = NULL;
	return maildrop_open(path, getuid(), &no_limits, md);
}

static struct maildrop *
open_ok(const char *path)
{
	struct maildrop *md;
	enum md_status st = open_spool(path, &md);

	ck_assert_msg(st == MD_OK, "maildrop_open(%s) = %d", path, st);
	ck_assert_ptr_nonnull(md);
	return md;
}

static int
sink_collect(void *ctx, const char *data, size_t len)
{
	buf_add(ctx, data, len);
	return 0;
}

/* Message i as maildrop_send gives it: whole (top NULL) or TOP *top. */
static enum md_status
send_msg(struct maildrop *md, size_t i, const unsigned long *top,
	 struct buf *out)
{
	out->len = 0;
	buf_add(out, "", 0);
	return maildrop_send(md, i, top, sink_collect, out);
}

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n++;
	closedir(d);
	return n;
}

/* Printable form of some bytes for failure messages. */
static const char *
show(const char *s, size_t len)
{
	static char out[4][600];
	static int which;
	char *o = out[which++ % 4];
	size_t k = 0;

	for (size_t i = 0; i < len && k + 8 < 560; i++) {
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			o[k++] = c;
		else
			k += snprintf(o + k, 8, "\\x%02x", c);
	}
	if (len > 0 && k + 8 >= 560)
		strcpy(o + k, "...");
	else
		o[k] = '\0';
	return o;
}

static void
expect_bytes(const char *what, const char *got, size_t got_len,
	     const char *want, size_t want_len)
{
	if (got_len == want_len && memcmp(got, want, want_len) == 0)
		return;
	ck_abort_msg("%s: want %zu bytes \"%s\", got %zu bytes \"%s\"", what,
		     want_len, show(want, want_len), got_len,
		     show(got, got_len));
}

/* R1939-38: the CRLF size, computed from the stored bytes. */
static uint64_t
size_model(const char *p, size_t n)
{
	uint64_t size = n;

	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			size++;
	if (n > 0 && p[n - 1] != '\n')
		size += 2;
	return size;
}

static int
ds_collect(void *ctx, const void *data, size_t len)
{
	buf_add(ctx, data, len);
	return 0;
}

/* The octets of a RETR body as a client sees it after unstuffing, with
 * the terminating ".CRLF" removed (R1939-09's test). */
static uint64_t
retr_unstuffed_len(const char *p, size_t n)
{
	struct buf enc = {0};
	struct dotstuff ds;
	uint64_t len = 0;
	size_t i = 0;

	dotstuff_init(&ds, ds_collect, &enc);
	ck_assert_int_eq(dotstuff_feed(&ds, p, n), 0);
	ck_assert_int_eq(dotstuff_finish(&ds), 0);
	ck_assert_uint_ge(enc.len, 3);
	ck_assert(memcmp(enc.data + enc.len - 3, ".\r\n", 3) == 0);
	enc.len -= 3;
	while (i < enc.len) {
		const char *lf = memchr(enc.data + i, '\n', enc.len - i);
		size_t end = lf ? (size_t)(lf - enc.data) + 1 : enc.len;

		if (lf == NULL) /* every line ends in CRLF */
			ck_abort_msg("RETR output line without LF");
		len += end - i - (enc.data[i] == '.' ? 1 : 0);
		i = end;
	}
	buf_free(&enc);
	return len;
}

static bool
empty_line(const char *p, size_t n)
{
	return (n == 1 && p[0] == '\n') ||
	       (n == 2 && p[0] == '\r' && p[1] == '\n');
}

/* TOP (R1939-44/45, DEC-17): the header section, the blank line after
 * it, then at most k body lines; no blank line means headers only. */
static size_t
top_model(const char *p, size_t n, unsigned long k)
{
	size_t pos = 0;
	bool body = false;

	while (pos < n && !body) {
		const char *lf = memchr(p + pos, '\n', n - pos);
		size_t end = lf ? (size_t)(lf - p) + 1 : n;

		body = empty_line(p + pos, end - pos);
		pos = end;
	}
	for (unsigned long line = 0; body && line < k && pos < n; line++) {
		const char *lf = memchr(p + pos, '\n', n - pos);

		pos = lf ? (size_t)(lf - p) + 1 : n;
	}
	return pos;
}

static size_t
count_lines(const char *p, size_t n)
{
	size_t lines = 0;

	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n')
			lines++;
	return lines + (n > 0 && p[n - 1] != '\n');
}

/* R1939-48: 1-70 characters 0x21-0x7E. */
static void
expect_valid_uid(const char *uid)
{
	size_t len;

	ck_assert_ptr_nonnull(uid);
	len = strlen(uid);
	ck_assert_msg(len >= 1 && len <= 70, "uid \"%s\" length %zu", uid, len);
	for (size_t i = 0; i < len; i++)
		if (uid[i] < 0x21 || uid[i] > 0x7e)
			ck_abort_msg("uid \"%s\": octet 0x%02x", show(uid, len),
				     (unsigned char)uid[i]);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A derived uid: 32 lowercase hex digits, optionally "-N". */
static bool
is_digest_uid(const char *uid, const char **suffix_r)
{
	for (int i = 0; i < 32; i++)
		if (!((uid[i] >= '0' && uid[i] <= '9') ||
		      (uid[i] >= 'a' && uid[i] <= 'f')))
			return false;
	if (suffix_r != NULL)
		*suffix_r = uid + 32;
	return uid[32] == '\0' || uid[32] == '-';
}

/* Every uid valid and no two alike (R1939-48/49). Copies them to uids_r
 * (malloc'ed strings) when that is not NULL. */
static void
expect_uids_ok(struct maildrop *md, char ***uids_r)
{
	size_t n = maildrop_count(md);
	char **uids = calloc(n + 1, sizeof(*uids));

	ck_assert_ptr_nonnull(uids);
	for (size_t i = 0; i < n; i++) {
		const char *uid = maildrop_uid(md, i);

		expect_valid_uid(uid);
		uids[i] = strdup(uid);
		ck_assert_ptr_nonnull(uids[i]);
	}
	/* Sorted copies: equal ids end up next to each other. */
	{
		char **sorted = malloc((n + 1) * sizeof(*sorted));

		ck_assert_ptr_nonnull(sorted);
		memcpy(sorted, uids, (n + 1) * sizeof(*sorted));
		qsort(sorted, n, sizeof(*sorted), cmp_str);
		for (size_t i = 1; i < n; i++)
			if (strcmp(sorted[i - 1], sorted[i]) == 0)
				ck_abort_msg("two messages share uid %s",
					     sorted[i]);
		free(sorted);
	}
	if (uids_r != NULL) {
		*uids_r = uids;
		return;
	}
	for (size_t i = 0; i < n; i++)
		free(uids[i]);
	free(uids);
}

static void
free_uids(char **uids)
{
	for (size_t i = 0; uids[i] != NULL; i++)
		free(uids[i]);
	free(uids);
}

/* Everything the public API says about message i, against its expected
 * stored bytes: content, size, TOP for several line counts. */
static void
expect_message(struct maildrop *md, size_t i, const char *want, size_t n,
	       const char *name)
{
	struct buf out = {0};
	char what[128];
	size_t lines = count_lines(want, n);
	unsigned long tops[] = {0, 1, 2, 3, lines, lines + 1, ULONG_MAX};

	snprintf(what, sizeof(what), "%s: message %zu", name, i);
	ck_assert_msg(!maildrop_deleted(md, i), "%s: deleted at open", what);
	ck_assert_int_eq(send_msg(md, i, NULL, &out), MD_OK);
	expect_bytes(what, out.data, out.len, want, n);
	ck_assert_msg(maildrop_size(md, i) == size_model(want, n),
		      "%s: size %llu, want %llu", what,
		      (unsigned long long)maildrop_size(md, i),
		      (unsigned long long)size_model(want, n));
	ck_assert_msg(maildrop_size(md, i) == retr_unstuffed_len(want, n),
		      "%s: size %llu, unstuffed RETR has %llu", what,
		      (unsigned long long)maildrop_size(md, i),
		      (unsigned long long)retr_unstuffed_len(want, n));
	for (size_t t = 0; t < sizeof(tops) / sizeof(tops[0]); t++) {
		size_t top_len = top_model(want, n, tops[t]);

		snprintf(what, sizeof(what), "%s: message %zu, TOP %lu", name,
			 i, tops[t]);
		ck_assert_int_eq(send_msg(md, i, &tops[t], &out), MD_OK);
		expect_bytes(what, out.data, out.len, want, top_len);
	}
	buf_free(&out);
}

/* --- parse table ---------------------------------------------------------- */

#define F1 "From alice@example.org Mon Jan  1 00:00:00 2024\n"
#define F2 "From bob@example.org  Tue Jan  2 10:11:12 2024\n"
#define F3 "From MAILER-DAEMON Wed Jan  3 23:59:59 2024\n"

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

START_TEST(missing_file_is_empty)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct maildrop *md;
	struct stat st;

	new_spool_path(dir, path);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 0);
	maildrop_close(md);
	/* Never O_CREAT (design.md §4). */
	ck_assert_int_eq(stat(path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
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
 * (_i picks the boundary). */
START_TEST(separator_at_chunk_boundary)
{
	static const size_t bounds[] = {SPOOL_CHUNK_SIZE, 2 * SPOOL_CHUNK_SIZE,
					LINE_LOOKAHEAD};

	for (int d = -10; d < 10; d++) {
		size_t target = bounds[_i] + d;
		struct buf spool = {0}, m1 = {0};
		char path[PATH_MAX], name[64];
		struct maildrop *md;
		unsigned seed = d + 10;
		bool crlf = d & 1;

		/* m1 is padded so that the separator's blank line sits at
		 * target; lines of random lengths put line ends everywhere. */
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
		buf_str(&spool, "\n" F2 "S: 2\n\n.b\n");
		make_spool(path, spool.data, spool.len);
		md = open_ok(path);
		snprintf(name, sizeof(name), "blank line at offset %zu",
			 target);
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
 * every message but the last ends in a newline and a separator, and the
 * last one only omits the separator when its last line is not empty. */
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
		if (!last || (newline && (last_empty || rand_r(seed) % 2)))
			buf_str(spool, "\n");
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

/* --- UIDL --------------------------------------------------------------- */

static char *
uid_of_single(const char *spool, size_t len)
{
	char path[PATH_MAX];
	struct maildrop *md;
	char *uid;

	make_spool(path, spool, len);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 1);
	expect_valid_uid(maildrop_uid(md, 0));
	uid = strdup(maildrop_uid(md, 0));
	maildrop_close(md);
	return uid;
}

#define HDRS_RECEIVED                                                          \
	"Received: from mx.example.org by host.example.org; Mon, 1 Jan "       \
	"2024 00:00:00 +0000\n"                                                \
	"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"                               \
	"Message-ID: <1@example.org>\n"                                        \
	"Subject: hello\n"
#define HDRS_PLAIN "From: a@example.org\nTo: b@example.org\nSubject: hi\n"
#define MUA_HDRS                                                               \
	"Status: RO\nX-Status: A\nX-Keywords: $Label1 junk\nX-UID: 17\n"       \
	"X-IMAP: 1700000000 0000000042\nX-IMAPbase: 1 2\n"                     \
	"Content-Length: 5\nLines: 1\n"

struct uid_pair {
	const char *name;
	struct bytes a, b;
	bool same;
};

static const struct uid_pair uid_pairs[] = {
	{"Status/X-Status rewrite, with Received",
	 B(F1 HDRS_RECEIVED "\nbody\n"),
	 B(F1 HDRS_RECEIVED "Status: RO\nX-Status: A\n\nbody\n"), true},
	{"Status value changed, with Received",
	 B(F1 HDRS_RECEIVED "Status: O\n\nbody\n"),
	 B(F1 HDRS_RECEIVED "Status: RO\n\nbody\n"), true},
	{"all MUA headers added, with Received", B(F1 HDRS_RECEIVED "\nbody\n"),
	 B(F1 HDRS_RECEIVED MUA_HDRS "\nbody\n"), true},
	{"MUA headers before the others, with Received",
	 B(F1 HDRS_RECEIVED "\nbody\n"),
	 B(F1 MUA_HDRS HDRS_RECEIVED "\nbody\n"), true},
	{"Status/X-Status rewrite, no stable headers",
	 B(F1 HDRS_PLAIN "\nbody\n"),
	 B(F1 HDRS_PLAIN "Status: RO\nX-Status: A\n\nbody\n"), true},
	{"all MUA headers added, no stable headers",
	 B(F1 HDRS_PLAIN "\nbody\n"), B(F1 HDRS_PLAIN MUA_HDRS "\nbody\n"),
	 true},
	{"From_ line differs", B(F1 HDRS_RECEIVED "\nbody\n"),
	 B(F2 HDRS_RECEIVED "\nbody\n"), true},
	{"different first Received", B(F1 HDRS_RECEIVED "\nbody\n"),
	 B(F1 "Received: from other by host; Mon, 1 Jan 2024 00:00:01 +0000\n"
	      "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
	      "Message-ID: <1@example.org>\nSubject: hello\n\nbody\n"),
	 false},
	{"different Subject, no stable headers", B(F1 HDRS_PLAIN "\nbody\n"),
	 B(F1 "From: a@example.org\nTo: b@example.org\nSubject: ho\n\nbody\n"),
	 false},
	{"different Delivered-To",
	 B(F1 "Delivered-To: a@example.org\nSubject: x\n\nbody\n"),
	 B(F1 "Delivered-To: b@example.org\nSubject: x\n\nbody\n"), false},
};

START_TEST(uid_pairs_table)
{
	const struct uid_pair *up = &uid_pairs[_i];
	char *a = uid_of_single(up->a.p, up->a.n);
	char *b = uid_of_single(up->b.p, up->b.n);

	ck_assert_msg(is_digest_uid(a, NULL), "%s: uid \"%s\" not a digest",
		      up->name, a);
	if (up->same)
		ck_assert_msg(strcmp(a, b) == 0, "%s: uid %s became %s",
			      up->name, a, b);
	else
		ck_assert_msg(strcmp(a, b) != 0, "%s: both uids %s", up->name,
			      a);
	free(a);
	free(b);
}
END_TEST

/* DEC-18: byte-identical copies get h, h-2, h-3 in mailbox order. */
START_TEST(identical_messages_suffixed)
{
	/* clang-format off */
	static const char spool[] =
		F1 HDRS_RECEIVED "\nbody\n\n"
		F1 HDRS_RECEIVED "\nbody\n\n"
		F1 HDRS_RECEIVED "\nbody\n\n"
		F2 HDRS_PLAIN "\nother\n\n"
		F1 HDRS_RECEIVED "\nbody\n";
	/* clang-format on */
	char path[PATH_MAX], want[80];
	struct maildrop *md;
	const char *suffix;
	char *h;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 5);
	expect_uids_ok(md, NULL);
	h = strdup(maildrop_uid(md, 0));
	ck_assert_ptr_nonnull(h);
	ck_assert_msg(is_digest_uid(h, &suffix) && *suffix == '\0',
		      "first copy: uid \"%s\"", h);
	snprintf(want, sizeof(want), "%s-2", h);
	ck_assert_str_eq(maildrop_uid(md, 1), want);
	snprintf(want, sizeof(want), "%s-3", h);
	ck_assert_str_eq(maildrop_uid(md, 2), want);
	ck_assert(is_digest_uid(maildrop_uid(md, 3), &suffix) &&
		  *suffix == '\0');
	snprintf(want, sizeof(want), "%s-4", h);
	ck_assert_str_eq(maildrop_uid(md, 4), want);
	maildrop_close(md);
	free(h);
}
END_TEST

/* A mail loop or a flood leaves thousands of identical messages; login
 * must stay fast (suffixes found in linear, not quadratic, time). */
START_TEST(flood_of_identical_messages)
{
	struct buf spool = {0};
	char path[PATH_MAX];
	struct maildrop *md;
	size_t n = 30000;

	for (size_t i = 0; i < n; i++)
		buf_str(&spool, F1 "Subject: same\n\nsame\n\n");
	make_spool(path, spool.data, spool.len);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), n);
	maildrop_close(md);
	buf_free(&spool);
}
END_TEST

/* Many copies: every id stays unique and within 70 characters. */
START_TEST(many_identical_messages)
{
	struct buf spool = {0};
	char path[PATH_MAX], want[80];
	struct maildrop *md;
	size_t n = 2500;

	for (size_t i = 0; i < n; i++)
		buf_str(&spool, F1 "Subject: same\n\nsame\n\n");
	make_spool(path, spool.data, spool.len);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), n);
	expect_uids_ok(md, NULL);
	snprintf(want, sizeof(want), "%s-%zu", maildrop_uid(md, 0), n);
	ck_assert_str_eq(maildrop_uid(md, n - 1), want);
	maildrop_close(md);
	buf_free(&spool);
}
END_TEST

struct xuidl_case {
	const char *name;
	struct bytes spool;
	size_t count;
	/* Per message: the X-UIDL value that must be the uid, or NULL for
	 * "a derived digest id". */
	const char *uid[3];
};

static const struct xuidl_case xuidl_cases[] = {
	{"valid X-UIDL reused",
	 B(F1 "X-UIDL: 0123abcdXYZ!~\nS: 1\n\nb\n"),
	 1,
	 {"0123abcdXYZ!~"}},
	{"qpopper-style 32 hex X-UIDL",
	 B(F1 "Subject: x\nX-UIDL: 5c1d9b3e6f7a8b9c0d1e2f3a4b5c6d7e\n\nb\n"),
	 1,
	 {"5c1d9b3e6f7a8b9c0d1e2f3a4b5c6d7e"}},
	{"two distinct X-UIDLs",
	 B(F1 "X-UIDL: one\n\nb\n\n" F2 "X-UIDL: two\n\nb\n"),
	 2,
	 {"one", "two"}},
	{"X-UIDL only on one of two",
	 B(F1 "X-UIDL: uid1\n\nb\n\n" F2 HDRS_PLAIN "\nb\n"),
	 2,
	 {"uid1", NULL}},
	{"59-character X-UIDL",
	 B(F1 "X-UIDL: "
	      "12345678901234567890123456789012345678901234567890123456789"
	      "\n\nb\n"),
	 1,
	 {"12345678901234567890123456789012345678901234567890123456789"}},
	{"60-character X-UIDL",
	 B(F1 "X-UIDL: "
	      "123456789012345678901234567890123456789012345678901234567890"
	      "\n\nb\n"),
	 1,
	 {"123456789012345678901234567890123456789012345678901234567890"}},
	{"70-character X-UIDL",
	 B(F1 "X-UIDL: "
	      "1234567890123456789012345678901234567890123456789012345678901234"
	      "567890\n\nb\n"),
	 1,
	 {"1234567890123456789012345678901234567890123456789012345678901234"
	  "567890"}},
	{"71-character X-UIDL is invalid",
	 B(F1 "X-UIDL: "
	      "1234567890123456789012345678901234567890123456789012345678901234"
	      "5678901\n\nb\n"),
	 1,
	 {NULL}},
	{"X-UIDL with a space inside is invalid",
	 B(F1 "X-UIDL: abc def\n\nb\n"),
	 1,
	 {NULL}},
	{"X-UIDL with an 8-bit octet is invalid",
	 B(F1 "X-UIDL: abc\xe9\n\nb\n"),
	 1,
	 {NULL}},
	{"empty X-UIDL is invalid", B(F1 "X-UIDL:\nS: x\n\nb\n"), 1, {NULL}},
	{"duplicate X-UIDLs are not used",
	 B(F1 "X-UIDL: dup\nS: 1\n\nb\n\n" F2 "X-UIDL: dup\nS: 2\n\nb\n"),
	 2,
	 {NULL, NULL}},
	{"X-UIDL in the body is not a header",
	 B(F1 "S: 1\n\nX-UIDL: body\n"),
	 1,
	 {NULL}},
};

START_TEST(xuidl_table)
{
	const struct xuidl_case *xc = &xuidl_cases[_i];
	char path[PATH_MAX];
	struct maildrop *md;

	make_spool(path, xc->spool.p, xc->spool.n);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), xc->count);
	expect_uids_ok(md, NULL);
	for (size_t i = 0; i < xc->count; i++) {
		const char *uid = maildrop_uid(md, i);

		if (xc->uid[i] != NULL)
			ck_assert_msg(strcmp(uid, xc->uid[i]) == 0,
				      "%s: message %zu uid \"%s\", want \"%s\"",
				      xc->name, i, uid, xc->uid[i]);
		else
			ck_assert_msg(is_digest_uid(uid, NULL),
				      "%s: message %zu uid \"%s\", want a "
				      "digest",
				      xc->name, i, uid);
	}
	maildrop_close(md);
}
END_TEST

/* clang-format off */
#define THREE								\
	F1 HDRS_RECEIVED "\nbody 1\n\n"					\
	F2 "Delivered-To: b@example.org\nSubject: two\n\nbody 2\n\n"	\
	F3 HDRS_PLAIN "\nbody 3\n"
/* clang-format on */

/* R1939-49: the same ids in every session. */
START_TEST(uid_stable_when_reopening)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	char **first;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	expect_uids_ok(md, &first);
	maildrop_close(md);
	for (int round = 0; round < 3; round++) {
		md = open_ok(path);
		ck_assert_uint_eq(maildrop_count(md), 3);
		for (size_t i = 0; i < 3; i++)
			ck_assert_str_eq(maildrop_uid(md, i), first[i]);
		maildrop_close(md);
	}
	/* Mail delivered since does not change the old ids. */
	{
		static const char more[] = "\n" F1 "Subject: new\n\nnew\n";

		append_file(path, more, sizeof(more) - 1);
	}
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 4);
	for (size_t i = 0; i < 3; i++)
		ck_assert_str_eq(maildrop_uid(md, i), first[i]);
	expect_uids_ok(md, NULL);
	maildrop_close(md);
	free_uids(first);
}
END_TEST

/* --- limits and spool safety -------------------------------------------- */

START_TEST(limits)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct md_limits lim = no_limits;
	int fds = count_fds();

	make_spool(path, spool, sizeof(spool) - 1);
	lim.max_messages = 2;
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_PERMFAIL);
	ck_assert_int_eq(count_fds(), fds);
	lim.max_messages = 3;
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_OK);
	maildrop_close(md);

	lim = no_limits;
	lim.max_size = 20;
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_PERMFAIL);
	ck_assert_int_eq(count_fds(), fds);
	lim.max_size = 100000;
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_OK);
	maildrop_close(md);
	/* A refusal leaves nothing locked. */
	md = open_ok(path);
	maildrop_close(md);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(symlink_refused)
{
	static const char spool[] = THREE;
	char dir[PATH_MAX], path[PATH_MAX], target[PATH_MAX + 8];
	struct maildrop *md;

	new_spool_path(dir, path);
	snprintf(target, sizeof(target), "%s/real", dir);
	write_file(target, spool, sizeof(spool) - 1);
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
	/* A dangling link is no "missing file" either. */
	ck_assert_int_eq(unlink(target), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
}
END_TEST

/* Issue 7: a spool directory anyone may write to (without the sticky
 * bit) lets anyone swap the spool: refused; with the sticky bit, as /tmp
 * or a mail spool with mode 1777, it is fine. */
START_TEST(open_spool_directory_refused)
{
	static const char spool[] = THREE;
	char dir[PATH_MAX], path[PATH_MAX];
	struct maildrop *md;

	new_spool_path(dir, path);
	write_file(path, spool, sizeof(spool) - 1);
	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
	ck_assert_int_eq(chmod(dir, 01777), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_OK);
	maildrop_close(md);
	ck_assert_int_eq(chmod(dir, 0700), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_OK);
	maildrop_close(md);
}
END_TEST

START_TEST(hard_link_refused)
{
	static const char spool[] = THREE;
	char dir[PATH_MAX], path[PATH_MAX], other[PATH_MAX + 8];
	struct maildrop *md;

	new_spool_path(dir, path);
	write_file(path, spool, sizeof(spool) - 1);
	snprintf(other, sizeof(other), "%s/other", dir);
	ck_assert_int_eq(link(path, other), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
	ck_assert_int_eq(unlink(other), 0);
	md = open_ok(path);
	maildrop_close(md);
}
END_TEST

START_TEST(wrong_owner_refused)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;

	make_spool(path, spool, sizeof(spool) - 1);
	ck_assert_int_eq(maildrop_open(path, getuid() + 1, &no_limits, &md),
			 MD_PERMFAIL);
}
END_TEST

START_TEST(not_a_regular_file_refused)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct maildrop *md;
	int fds = count_fds();

	new_spool_path(dir, path);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
	ck_assert_int_eq(rmdir(path), 0);
	/* O_NONBLOCK: a FIFO must not hang the open. */
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* Without read permission (not testable as root): a temporary failure. */
START_TEST(unreadable_is_tempfail)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;

	if (geteuid() == 0)
		return;
	make_spool(path, spool, sizeof(spool) - 1);
	ck_assert_int_eq(chmod(path, 0), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_TEMPFAIL);
}
END_TEST

/* --- locks ------------------------------------------------------------------
 */

START_TEST(second_session_in_use)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md, *md2;
	int fds, status;
	pid_t pid;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	fds = count_fds();
	/* Another process, as a second pop3d session would be. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct maildrop *child_md;

		alarm(5);
		_exit(open_spool(path, &child_md) == MD_IN_USE ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "second session in another process not refused");
	/* The same process: flock is per open file description. */
	ck_assert_int_eq(open_spool(path, &md2), MD_IN_USE);
	ck_assert_int_eq(count_fds(), fds);
	maildrop_close(md);
	md = open_ok(path);
	maildrop_close(md);
}
END_TEST

/* design.md §4, guarantee 2: an idle session never holds up delivery. An
 * MTA's fcntl write lock is granted at once while a session is open. */
static void
deliver_locked(const char *path, const char *mail)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
		int fd = open(path, O_WRONLY | O_APPEND);
		size_t len = strlen(mail);

		if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
			_exit(2);
		if (write(fd, mail, len) != (ssize_t)len)
			_exit(3);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "delivery during the session failed (%d)",
		      WEXITSTATUS(status));
}

START_TEST(idle_session_lets_mta_deliver)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct buf out = {0};

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	deliver_locked(path, "\n" F1 "Subject: late\n\nlate\n");
	ck_assert_int_eq(send_msg(md, 2, NULL, &out), MD_OK);
	deliver_locked(path, "\n" F2 "Subject: later\n\nlater\n");
	/* Mail delivered during the session is not listed in it. */
	ck_assert_uint_eq(maildrop_count(md), 3);
	maildrop_close(md);
	buf_free(&out);
}
END_TEST

/* --- send failures ---------------------------------------------------------
 */

static int
sink_fail(void *ctx, const char *data, size_t len)
{
	errno = EPIPE;
	return -1;
}

START_TEST(sink_failure)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	unsigned long zero = 0;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	errno = 0;
	ck_assert_int_eq(maildrop_send(md, 0, NULL, sink_fail, NULL),
			 MD_TEMPFAIL);
	ck_assert_int_eq(errno, EPIPE);
	errno = 0;
	ck_assert_int_eq(maildrop_send(md, 1, &zero, sink_fail, NULL),
			 MD_TEMPFAIL);
	ck_assert_int_eq(errno, EPIPE);
	maildrop_close(md);
}
END_TEST

/* Another program cut the spool short: never send a wrong message as
 * complete (guarantee 4). */
START_TEST(send_after_truncation)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct buf out = {0};
	size_t cut = sizeof(spool) - 1 - 4;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	ck_assert_int_eq(truncate(path, cut), 0);
	ck_assert_int_eq(send_msg(md, 0, NULL, &out), MD_OK);
	ck_assert_int_eq(send_msg(md, 2, NULL, &out), MD_TEMPFAIL);
	maildrop_close(md);
	buf_free(&out);
}
END_TEST

/* What an MUA does when it marks the first message read: rewrite the
 * spool in place with a Status: header added to it. The new contents
 * are left in out. */
static void
rewrite_with_status(const char *path, const char *spool, size_t len,
		    struct buf *out)
{
	const char *blank = memmem(spool, len, "\n\n", 2);
	int fd;

	ck_assert_ptr_nonnull(blank);
	out->len = 0;
	buf_add(out, spool, blank + 1 - spool);
	buf_str(out, "Status: RO\n");
	buf_add(out, blank + 1, len - (blank + 1 - spool));
	/* Same inode, as MUAs rewrite mbox files. */
	fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, out->data, out->len), (ssize_t)out->len);
	ck_assert_int_eq(close(fd), 0);
}

/* The spool was rewritten with every message moved: none of them may be
 * sent as if it were the one parsed at login. */
START_TEST(send_after_rewrite)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct buf out = {0}, now = {0};
	unsigned long zero = 0;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	rewrite_with_status(path, spool, sizeof(spool) - 1, &now);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_msg(send_msg(md, i, NULL, &out) == MD_TEMPFAIL,
			      "RETR %zu after a rewrite", i + 1);
		ck_assert_msg(send_msg(md, i, &zero, &out) == MD_TEMPFAIL,
			      "TOP %zu 0 after a rewrite", i + 1);
	}
	maildrop_close(md);
	buf_free(&out);
	buf_free(&now);
}
END_TEST

START_TEST(deleted_flags)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	for (size_t i = 0; i < 3; i++)
		ck_assert(!maildrop_deleted(md, i));
	maildrop_set_deleted(md, 1, true);
	ck_assert(!maildrop_deleted(md, 0));
	ck_assert(maildrop_deleted(md, 1));
	ck_assert(!maildrop_deleted(md, 2));
	maildrop_set_deleted(md, 1, false);
	ck_assert(!maildrop_deleted(md, 1));
	maildrop_close(md);
}
END_TEST

/* --- UPDATE ------------------------------------------------------------- */

/* Three stored messages, each with its From_ line and separator, the last
 * without a final newline in the odd variants. */
static const struct bytes pieces[2][3] = {
	{
		B(F1 HDRS_RECEIVED "\nbody 1\n\n"),
		B(F2 "Subject: two\n\n>From quoted\n.dot\n\n"),
		B(F3 HDRS_PLAIN "\nbody 3\n\n"),
	},
	{
		B(F1 "S: 1\r\n\r\nbody 1\r\n\n"),
		B(F2 "S: 2\nX: \0\n\nb\0dy 2\n\n"),
		B(F3 "S: 3\n\nno newline"),
	},
};
/* What an MTA appends: a message and its separator. */
#define APPENDED F1 "Subject: appended\n\nnew mail\n\n"

/* UPDATE's "<spool>.lock" is gone when it returns. */
static void
expect_no_dotlock(const char *path)
{
	char lock[PATH_MAX + 8];
	struct stat st;

	snprintf(lock, sizeof(lock), "%s.lock", path);
	ck_assert_msg(lstat(lock, &st) < 0 && errno == ENOENT, "%s left behind",
		      lock);
}

/* _i: bits 0-2 the messages to delete, bit 3 the spool variant, bit 4
 * whether an MTA appends mail after login. */
START_TEST(update_table)
{
	unsigned mask = _i & 7, variant = (_i >> 3) & 1;
	bool append = (_i >> 4) & 1;
	struct buf spool = {0}, want = {0}, got = {0};
	char path[PATH_MAX];
	struct maildrop *md;
	struct md_update_stats stats;
	struct stat before, after;
	uint64_t sizes[3], del_bytes = 0, left_bytes = 0;
	char **uids;
	size_t deleted = 0, kept = 0;

	if (append && variant == 1)
		return; /* no MTA appends after a missing final newline */
	for (size_t i = 0; i < 3; i++)
		buf_add(&spool, pieces[variant][i].p, pieces[variant][i].n);
	make_spool(path, spool.data, spool.len);
	ck_assert_int_eq(stat(path, &before), 0);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 3);
	expect_uids_ok(md, &uids);
	if (append)
		deliver_locked(path, APPENDED);
	buf_add(&want, "", 0);
	for (size_t i = 0; i < 3; i++) {
		sizes[i] = maildrop_size(md, i);
		if (mask & (1u << i)) {
			maildrop_set_deleted(md, i, true);
			deleted++;
			del_bytes += sizes[i];
		} else {
			buf_add(&want, pieces[variant][i].p,
				pieces[variant][i].n);
			kept++;
			left_bytes += sizes[i];
		}
	}
	if (append)
		buf_str(&want, APPENDED); /* after the kept messages */
	memset(&stats, 0xff, sizeof(stats));
	ck_assert_int_eq(maildrop_update(md, &stats), MD_OK);
	maildrop_close(md);

	read_whole_file(path, &got);
	{
		char what[64];

		snprintf(what, sizeof(what), "spool after deleting mask %u%s",
			 mask, append ? " with appended mail" : "");
		expect_bytes(what, got.data, got.len, want.data, want.len);
	}
	ck_assert_uint_eq(stats.deleted, deleted);
	ck_assert_uint_eq(stats.deleted_bytes, del_bytes);
	if (!append) {
		ck_assert_uint_eq(stats.left, kept);
		ck_assert_uint_eq(stats.left_bytes, left_bytes);
	}
	ck_assert_int_eq(stat(path, &after), 0);
	ck_assert_uint_eq(after.st_ino, before.st_ino);
	ck_assert_uint_eq(after.st_dev, before.st_dev);
	ck_assert_uint_eq(after.st_mode, before.st_mode);
	ck_assert_uint_eq(after.st_uid, before.st_uid);
	ck_assert_uint_eq(after.st_gid, before.st_gid);
	ck_assert_uint_eq(after.st_nlink, 1);
	expect_no_dotlock(path);

	/* The lock is gone, and the kept messages keep their ids. */
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), kept + (append ? 1 : 0));
	for (size_t i = 0, k = 0; i < 3; i++)
		if (!(mask & (1u << i)))
			ck_assert_str_eq(maildrop_uid(md, k++), uids[i]);
	maildrop_close(md);
	free_uids(uids);
	buf_free(&spool);
	buf_free(&want);
	buf_free(&got);
}
END_TEST

/* The spool's last message had no separator blank line, and the MTA
 * delivering during the session wrote one before its From_ line (as MDAs
 * do that keep messages apart). Whatever was deleted, the spool must
 * still parse, into the kept messages unchanged and the new mail. */
START_TEST(update_tail_after_unseparated_last)
{
	static const struct bytes msgs[3] = {
		B("S: 1\n\nb1\n"),
		B("S: 2\n\nb2\n"),
		B("S: 3\n\nb3\n"),
	};
	static const char spool[] =
		F1 "S: 1\n\nb1\n\n" F2 "S: 2\n\nb2\n\n" F3 "S: 3\n\nb3\n";
	unsigned mask = _i;
	char path[PATH_MAX], name[64];
	struct maildrop *md;
	struct md_update_stats stats;
	size_t k = 0;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 3);
	deliver_locked(path, "\n" F1 "S: 4\n\nb4\n\n");
	for (size_t i = 0; i < 3; i++)
		maildrop_set_deleted(md, i, mask & (1u << i));
	ck_assert_int_eq(maildrop_update(md, &stats), MD_OK);
	maildrop_close(md);

	snprintf(name, sizeof(name), "after deleting mask %u", mask);
	ck_assert_msg(open_spool(path, &md) == MD_OK,
		      "%s: spool no longer opens", name);
	ck_assert_uint_eq(maildrop_count(md),
			  1 + !(mask & 1) + !(mask & 2) + !(mask & 4));
	for (size_t i = 0; i < 3; i++)
		if (!(mask & (1u << i)))
			expect_message(md, k++, msgs[i].p, msgs[i].n, name);
	expect_message(md, k, "S: 4\n\nb4\n", 9, name);
	maildrop_close(md);
}
END_TEST

/* Another MUA changed the spool after login: UPDATE deletes nothing. */
START_TEST(update_after_foreign_change)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct md_update_stats stats;
	struct buf got = {0};
	size_t len = sizeof(spool) - 1;
	size_t p1 = sizeof(F1 HDRS_RECEIVED "\nbody 1\n\n") - 1;

	/* (a) Cut short: the last message lost its tail. */
	make_spool(path, spool, len);
	md = open_ok(path);
	maildrop_set_deleted(md, 0, true);
	ck_assert_int_eq(truncate(path, len - 3), 0);
	ck_assert_int_eq(maildrop_update(md, &stats), MD_TEMPFAIL);
	maildrop_close(md);
	read_whole_file(path, &got);
	expect_bytes("spool cut short, after UPDATE", got.data, got.len, spool,
		     len - 3);
	expect_no_dotlock(path);
	md = open_ok(path); /* the lock was released */
	maildrop_close(md);

	/* (b) Rewritten: an MUA expunged the first message. */
	make_spool(path, spool, len);
	md = open_ok(path);
	maildrop_set_deleted(md, 1, true);
	write_file(path, spool + p1, len - p1);
	ck_assert_int_eq(maildrop_update(md, &stats), MD_TEMPFAIL);
	maildrop_close(md);
	read_whole_file(path, &got);
	expect_bytes("spool rewritten, after UPDATE", got.data, got.len,
		     spool + p1, len - p1);
	expect_no_dotlock(path);

	/* (c) Rewritten longer: an MUA added a Status: header to the
	 * first message, moving the others up. */
	make_spool(path, spool, len);
	md = open_ok(path);
	maildrop_set_deleted(md, 1, true);
	rewrite_with_status(path, spool, len, &got);
	ck_assert_int_eq(maildrop_update(md, &stats), MD_TEMPFAIL);
	maildrop_close(md);
	{
		struct buf now = {0};

		read_whole_file(path, &now);
		expect_bytes("spool with Status: added, after UPDATE", now.data,
			     now.len, got.data, got.len);
		buf_free(&now);
	}
	expect_no_dotlock(path);
	buf_free(&got);
}
END_TEST

/* UPDATE on an empty or missing maildrop changes nothing. */
START_TEST(update_empty)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct maildrop *md;
	struct md_update_stats stats;
	struct stat st;

	new_spool_path(dir, path);
	md = open_ok(path);
	ck_assert_int_eq(maildrop_update(md, &stats), MD_OK);
	maildrop_close(md);
	ck_assert_int_eq(stat(path, &st), -1);

	write_file(path, "", 0);
	md = open_ok(path);
	ck_assert_int_eq(maildrop_update(md, &stats), MD_OK);
	maildrop_close(md);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
}
END_TEST

/* --- runner ------------------------------------------------------------- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path);
}

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
maildrop_suite(void)
{
	Suite *s = suite_create("maildrop");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, parse_table, 0, N(parse_cases));
	tcase_add_loop_test(tc, not_mbox_refused, 0, N(not_mbox));
	tcase_add_test(tc, missing_file_is_empty);
	tcase_add_test(tc, one_megabyte_line);
	tcase_add_test(tc, one_megabyte_header_and_from_line);
	tcase_add_loop_test(tc, separator_at_chunk_boundary, 0, 3);
	tcase_add_loop_test(tc, random_mailboxes, 0, 3);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("top");
	tcase_add_loop_test(tc, top_table, 0, N(top_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("uidl");
	tcase_add_loop_test(tc, uid_pairs_table, 0, N(uid_pairs));
	tcase_add_test(tc, identical_messages_suffixed);
	tcase_add_test(tc, many_identical_messages);
	tcase_add_loop_test(tc, xuidl_table, 0, N(xuidl_cases));
	tcase_add_test(tc, uid_stable_when_reopening);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	/* Well under a second when linear; the timeout is the assertion. */
	tc = tcase_create("scale");
	tcase_add_test(tc, flood_of_identical_messages);
	tcase_set_timeout(tc, 3);
	suite_add_tcase(s, tc);

	tc = tcase_create("safety");
	tcase_add_test(tc, limits);
	tcase_add_test(tc, symlink_refused);
	tcase_add_test(tc, open_spool_directory_refused);
	tcase_add_test(tc, hard_link_refused);
	tcase_add_test(tc, wrong_owner_refused);
	tcase_add_test(tc, not_a_regular_file_refused);
	tcase_add_test(tc, unreadable_is_tempfail);
	tcase_add_test(tc, second_session_in_use);
	tcase_add_test(tc, idle_session_lets_mta_deliver);
	tcase_add_test(tc, sink_failure);
	tcase_add_test(tc, send_after_truncation);
	tcase_add_test(tc, send_after_rewrite);
	tcase_add_test(tc, deleted_flags);
	suite_add_tcase(s, tc);

	tc = tcase_create("update");
	tcase_add_loop_test(tc, update_table, 0, 32);
	tcase_add_loop_test(tc, update_tail_after_unseparated_last, 0, 8);
	tcase_add_test(tc, update_after_foreign_change);
	tcase_add_test(tc, update_empty);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	SRunner *sr;
	int failed;

	/* Log lines of refusals go to stderr only when asked for. */
	if (getenv("TEST_LOG") != NULL)
		log_init(LOG_TO_STDERR);
	snprintf(base_dir, sizeof(base_dir), "%s/test_maildrop.XXXXXX",
		 tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(base_dir) == NULL) {
		perror(base_dir);
		return EXIT_FAILURE;
	}
	sr = srunner_create(maildrop_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	nftw(base_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
