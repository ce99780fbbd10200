/* Unit tests for UIDL (uidl.c and the header digest of mbox.c), through
 * maildrop.h: which headers make the id (R1939-50, DEC-18, docs/design.md
 * §4), valid and unique ids (R1939-48/49), X-UIDL headers from migrated
 * mailboxes, "-N" suffixes for copies, stability across sessions. */
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
#include <time.h>
#include <unistd.h>

#include "maildrop.h"
#include "spool_helpers.h"
#include "uidl.h"

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

/* Issue 14: X-UIDL values come from whoever sends mail. The old maps
 * hashed them with unkeyed FNV-1a, whose low k bits depend only on the
 * low k bits of its state: two 4-octet blocks that agree there from the
 * same state can be swapped freely, so m such pairs give 2^m valid
 * X-UIDLs in one bucket of any map up to 2^32 slots, and login went
 * quadratic. Here: the pairs for FNV-1a's low 32 bits. */
#define FLOOD_BITS 14 /* 16,384 messages, X-UIDLs of 56 octets */

/* Found by sorting all 64^4 blocks of [0-9A-Za-z_.] by the low 32 bits
 * of the state after them, starting from the offset basis and then from
 * each pair's common state in turn. */
static const char fnv_pairs[FLOOD_BITS][2][5] = {
	{"h8oO", "4J9_"}, {"fg_3", "Rq1C"}, {"wtx1", "CN.A"}, {"bukf", ".c9v"},
	{"bukf", ".c9v"}, {"j_x1", "6U.A"}, {"kfHg", "7xzw"}, {"2Q.Q", "Jjwq"},
	{"ygd1", "EmVA"}, {"AZ.Z", "9gqz"}, {"wlSh", "KfMx"}, {"wGb1", "K9TA"},
	{"Hrkf", "tl9v"}, {"eExb", "1sVr"},
};

static uint32_t
fnv_low32(uint32_t h, const char *s, size_t n)
{
	for (size_t k = 0; k < n; k++)
		h = (h ^ (unsigned char)s[k]) * 0x1b3u; /* the prime mod 2^32 */
	return h;
}

/* A spool of 2^FLOOD_BITS messages whose X-UIDLs are all distinct:
 * colliding ones for the old hash, or random ones. */
static void
flood_spool(char path[PATH_MAX], bool colliding, char ***uids_r)
{
	static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz_.";
	char uid[4 * FLOOD_BITS + 1];
	size_t n = (size_t)1 << FLOOD_BITS;
	uint64_t rnd = 0x9e3779b97f4a7c15ULL;
	uint32_t h = 0x739d0383u; /* str_hash's offset basis mod 2^32 */
	struct buf spool = {0};
	char **uids = calloc(n + 1, sizeof(*uids));

	ck_assert_ptr_nonnull(uids);
	/* The premise: each pair agrees in the low 32 bits. */
	for (int b = 0; b < FLOOD_BITS; b++) {
		ck_assert_uint_eq(fnv_low32(h, fnv_pairs[b][0], 4),
				  fnv_low32(h, fnv_pairs[b][1], 4));
		h = fnv_low32(h, fnv_pairs[b][0], 4);
	}
	for (size_t i = 0; i < n; i++) {
		for (int b = 0; b < FLOOD_BITS; b++)
			if (colliding)
				memcpy(uid + 4 * b, fnv_pairs[b][(i >> b) & 1],
				       4);
			else
				for (int k = 0; k < 4; k++) {
					rnd ^= rnd << 13;
					rnd ^= rnd >> 7;
					rnd ^= rnd << 17;
					uid[4 * b + k] = alphabet[rnd & 63];
				}
		uid[4 * FLOOD_BITS] = '\0';
		buf_str(&spool, F1 "X-UIDL: ");
		buf_str(&spool, uid);
		buf_str(&spool, "\nSubject: flood\n\nbody\n\n");
		uids[i] = strdup(uid);
		ck_assert_ptr_nonnull(uids[i]);
	}
	make_spool(path, spool.data, spool.len);
	buf_free(&spool);
	*uids_r = uids;
}

/* CPU seconds to open the maildrop at path; each message's id must be
 * its own X-UIDL. */
static double
timed_open(const char *path, char **uids)
{
	struct timespec t0, t1;
	struct maildrop *md;
	size_t n = (size_t)1 << FLOOD_BITS;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	md = open_ok(path);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
	ck_assert_uint_eq(maildrop_count(md), n);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(maildrop_uid(md, i), uids[i]);
	maildrop_close(md);
	return (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

START_TEST(colliding_xuidls_cost_no_more_than_random)
{
	char crafted[PATH_MAX], random[PATH_MAX];
	char **crafted_uids, **random_uids;
	double tc, tr;

	flood_spool(crafted, true, &crafted_uids);
	flood_spool(random, false, &random_uids);
	tr = timed_open(random, random_uids);
	tc = timed_open(crafted, crafted_uids);
	fprintf(stderr,
		"test_uidl: %zu messages: random X-UIDLs %.3f s, "
		"colliding %.3f s\n",
		(size_t)1 << FLOOD_BITS, tr, tc);
	ck_assert_msg(tc <= 4 * tr + 0.2,
		      "colliding X-UIDLs took %.3f s to open, random ones "
		      "%.3f s",
		      tc, tr);
	free_uids(crafted_uids);
	free_uids(random_uids);
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
	const char *uid[5];
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
	{"a repeated X-UIDL is the first message's",
	 B(F1 "X-UIDL: dup\nS: 1\n\nb\n\n" F2 "X-UIDL: dup\nS: 2\n\nb\n"),
	 2,
	 {"dup", NULL}},
	{"an X-UIDL three times, between two others",
	 B(F1 "X-UIDL: b\nS: 1\n\nb\n\n" F2 "X-UIDL: a\nS: 2\n\nb\n\n" F1
	      "X-UIDL: b\nS: 3\n\nb\n\n" F2 "X-UIDL: b\nS: 4\n\nb\n\n" F1
	      "X-UIDL: c\nS: 5\n\nb\n"),
	 5,
	 {"b", "a", NULL, NULL, "c"}},
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

/* R1939-49: a sender who copies a message's X-UIDL into new mail does
 * not change that message's id, now or once the copy is deleted (found
 * in review, round 12: the id went to a digest and came back). */
START_TEST(xuidl_kept_when_a_copy_arrives)
{
	static const char spool[] = F1 "X-UIDL: migrated-0001\nS: 1\n\nb\n";
	static const char copy[] = "\n" F2 "X-UIDL: migrated-0001\nS: 2\n\nb\n";
	char path[PATH_MAX];
	struct maildrop *md;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	ck_assert_str_eq(maildrop_uid(md, 0), "migrated-0001");
	maildrop_close(md);
	append_file(path, copy, sizeof(copy) - 1);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 2);
	ck_assert_str_eq(maildrop_uid(md, 0), "migrated-0001");
	ck_assert(is_digest_uid(maildrop_uid(md, 1), NULL));
	expect_uids_ok(md, NULL);
	maildrop_close(md);
}
END_TEST

/* R1939-49: new mail whose X-UIDL is pop3d's own id of an older copy
 * ("<digest>-2") does not take that id away from it (found in review,
 * round 13: the older copy moved on to "-3", the new mail took "-2", and
 * a client that keeps ids fetched the old copy again and never the new
 * one). Such a value is not used; the new message gets its digest. */
START_TEST(suffixed_xuidl_takes_no_id)
{
	static const char two[] = F1 "S: 1\n\nsame\n\n" F1 "S: 1\n\nsame\n";
	char path[PATH_MAX], forged[256], d2[80];
	struct maildrop *md;
	int n;

	make_spool(path, two, sizeof(two) - 1);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 2);
	snprintf(d2, sizeof(d2), "%s", maildrop_uid(md, 1));
	ck_assert(strlen(d2) == 34 && strcmp(d2 + 32, "-2") == 0);
	maildrop_close(md);
	n = snprintf(forged, sizeof(forged),
		     "\n" F2 "X-UIDL: %s\nS: 2\n\nnew\n", d2);
	append_file(path, forged, (size_t)n);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 3);
	ck_assert_str_eq(maildrop_uid(md, 1), d2);
	ck_assert(is_digest_uid(maildrop_uid(md, 2), NULL));
	expect_uids_ok(md, NULL);
	maildrop_close(md);
	ck_assert(!uidl_xuidl_usable(d2, strlen(d2)));
	ck_assert(uidl_xuidl_usable(d2, 32)); /* qpopper's: 32 hex octets */
	ck_assert(uidl_xuidl_usable("migrated-0001", 13));
}
END_TEST

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

/* --- uidl.h directly: validity, assignment, the digest ------------------ */

/* R1939-48: 1-70 octets, each 0x21-0x7E. */
struct valid_case {
	const char *s;
	size_t len; /* 0: strlen(s) */
	bool valid;
};

#define X70                                                                    \
	"01234567890123456789012345678901234567890123456789012345678901234567" \
	"89"

static const struct valid_case valid_cases[] = {
	{"a", 0, true},
	{"!", 0, true},
	{"~", 0, true},
	{"abc-2", 0, true},
	{"<1@example.org>", 0, true},
	{X70, 0, true},
	{"", 0, false},
	{X70 "0", 0, false},
	{"a b", 0, false},
	{"a\tb", 0, false},
	{"ab\x7f", 0, false},
	{"\x80", 0, false},
	{"\xc3\xa9", 0, false},
	{"a\0b", 3, false},
	{"ab\r", 0, false},
};

START_TEST(valid_table)
{
	const struct valid_case *vc = &valid_cases[_i];
	size_t len = vc->len ? vc->len : strlen(vc->s);

	ck_assert_msg(uidl_valid(vc->s, len) == vc->valid, "\"%s\": want %s",
		      show(vc->s, len), vc->valid ? "valid" : "invalid");
}
END_TEST

/* uidl_assign: entries are a digest byte (the digest is that byte 16
 * times) or an X-UIDL; want are the ids uidl_format gives. */
#define D(b) "" #b #b #b #b #b #b #b #b #b #b #b #b #b #b #b #b
#define DIG(b) D(b) D(b)

struct assign_case {
	const char *name;
	int n;
	unsigned char digest[4];
	const char *xuidl[4];
	const char *want[4];
};

static const struct assign_case assign_cases[] = {
	{"distinct digests",
	 3,
	 {0x11, 0x22, 0x33},
	 {NULL, NULL, NULL},
	 {D(11), D(22), D(33)}},
	{"copies get -2, -3 in mailbox order",
	 3,
	 {0x11, 0x11, 0x11},
	 {NULL, NULL, NULL},
	 {D(11), D(11) "-2", D(11) "-3"}},
	{"unique X-UIDLs win",
	 2,
	 {0x11, 0x22},
	 {"qpopper-17", "<x@y>"},
	 {"qpopper-17", "<x@y>"}},
	{"a repeated X-UIDL is the first message's",
	 3,
	 {0x11, 0x22, 0x33},
	 {"dup", NULL, "dup"},
	 {"dup", D(22), D(33)}},
	{"a suffix skips an id another message has",
	 3,
	 {0x11, 0x11, 0x22},
	 {NULL, NULL, D(11) "-2"},
	 {D(11), D(11) "-3", D(11) "-2"}},
	{"an X-UIDL equal to another message's digest is suffixed",
	 2,
	 {0x11, 0x22},
	 {NULL, D(11)},
	 {D(11), D(11) "-2"}},
};

START_TEST(assign_table)
{
	const struct assign_case *ac = &assign_cases[_i];
	struct uidl_table t = {0};
	struct uidl_entry e[4];
	char id[UIDL_MAX + 1];

	memset(e, 0, sizeof(e));
	for (int i = 0; i < ac->n; i++) {
		memset(e[i].digest, ac->digest[i], sizeof(e[i].digest));
		if (ac->xuidl[i] != NULL)
			ck_assert_int_eq(
				uidl_table_add(&t, strdup(ac->xuidl[i]), &e[i]),
				0);
	}
	ck_assert_int_eq(uidl_assign(e, ac->n, &t), 0);
	for (int i = 0; i < ac->n; i++) {
		uidl_format(&e[i], &t, id);
		ck_assert_msg(strcmp(id, ac->want[i]) == 0,
			      "%s: message %d has \"%s\", want \"%s\"",
			      ac->name, i + 1, id, ac->want[i]);
	}
	uidl_table_free(&t);
}
END_TEST

/* Copies of a message among X-UIDLs that take its "-2", "-3", ...: each
 * copy goes on from where the last one stopped, so the skipped ids cost
 * linear time, and the ids stay those of the old maps. */
START_TEST(suffixes_skip_many_taken_ids)
{
	enum { HALF = 20000 };
	struct uidl_entry *e = calloc(2 * HALF, sizeof(*e));
	struct uidl_table t = {0};
	char id[UIDL_MAX + 1], want[UIDL_MAX + 1];

	ck_assert_ptr_nonnull(e);
	for (size_t i = 0; i < 2 * HALF; i++)
		memset(e[i].digest, 0x11, sizeof(e[i].digest));
	for (size_t i = 0; i < HALF; i++) {
		memcpy(e[i].digest, &i, sizeof(i));
		snprintf(id, sizeof(id), D(11) "-%zu", i + 2);
		ck_assert_int_eq(uidl_table_add(&t, strdup(id), &e[i]), 0);
	}
	ck_assert_int_eq(uidl_assign(e, 2 * HALF, &t), 0);
	for (size_t i = 0; i < 2 * HALF; i++) {
		if (i < HALF)
			snprintf(want, sizeof(want), D(11) "-%zu", i + 2);
		else if (i == HALF)
			snprintf(want, sizeof(want), D(11));
		else
			snprintf(want, sizeof(want), D(11) "-%zu", i + 1);
		uidl_format(&e[i], &t, id);
		ck_assert_str_eq(id, want);
	}
	uidl_table_free(&t);
	free(e);
}
END_TEST

/* The digest is SHA-256 cut to 16 bytes, so ids stay the same across
 * versions and platforms (FIPS 180-2's "abc" vector), whatever pieces
 * the parser feeds it in. */
START_TEST(digest_is_sha256)
{
	static const unsigned char want[UIDL_DIGEST_BYTES] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
		0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
	};
	unsigned char got[UIDL_DIGEST_BYTES];
	struct uidl_hasher *h = uidl_hasher_new();

	ck_assert_ptr_nonnull(h);
	uidl_hasher_update(h, "abc", 3);
	uidl_hasher_final(h, got);
	ck_assert(memcmp(got, want, sizeof(want)) == 0);
	uidl_hasher_reset(h);
	uidl_hasher_update(h, "a", 1);
	uidl_hasher_update(h, "", 0);
	uidl_hasher_update(h, "bc", 2);
	uidl_hasher_final(h, got);
	ck_assert(memcmp(got, want, sizeof(want)) == 0);
	uidl_hasher_free(h);
}
END_TEST

/* --- runner ------------------------------------------------------------- */

static Suite *
uidl_suite(void)
{
	Suite *s = suite_create("uidl");
	TCase *tc;

	tc = tcase_create("uidl");
	tcase_add_loop_test(tc, uid_pairs_table, 0, N(uid_pairs));
	tcase_add_test(tc, identical_messages_suffixed);
	tcase_add_test(tc, many_identical_messages);
	tcase_add_loop_test(tc, xuidl_table, 0, N(xuidl_cases));
	tcase_add_test(tc, suffixed_xuidl_takes_no_id);
	tcase_add_test(tc, uid_stable_when_reopening);
	tcase_add_test(tc, xuidl_kept_when_a_copy_arrives);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_loop_test(tc, valid_table, 0, N(valid_cases));
	tcase_add_loop_test(tc, assign_table, 0, N(assign_cases));
	tcase_add_test(tc, digest_is_sha256);
	suite_add_tcase(s, tc);

	/* Well under a second when linear, even under ASan on a loaded
	 * machine; quadratic suffixing took 36 s for 20,000 copies. The
	 * timeout is the assertion. */
	tc = tcase_create("scale");
	tcase_add_test(tc, flood_of_identical_messages);
	tcase_add_test(tc, suffixes_skip_many_taken_ids);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);

	/* Each open about 0.05 s (0.2 s under ASan); with the FNV-1a maps
	 * the colliding one took 0.9 s (4 s under ASan). */
	tc = tcase_create("flood");
	tcase_add_test(tc, colliding_xuidls_cost_no_more_than_random);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return spool_test_main("test_uidl", uidl_suite());
}
