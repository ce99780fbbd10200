/* Unit tests for utf8.c: UTF-8 user names and passwords in USER and PASS
 * (R6856-07): malformed UTF-8 refused, SASLprep applied as to a query
 * string (RFC 4013; the examples of its §3 among the cases), prohibited
 * characters refused, and a refused string wiped. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

struct prep_case {
	const char *in;
	enum utf8_prep want;
	const char *out; /* when UTF8_PREP_OK */
};

static const struct prep_case prep_cases[] = {
	/* ASCII is never touched, controls included: the command parser
	 * refuses those first. */
	{"alice", UTF8_PREP_OK, "alice"},
	{"a b\tc", UTF8_PREP_OK, "a b\tc"},
	{"", UTF8_PREP_OK, ""},
	/* Already prepared. */
	{"caf\xc3\xa9", UTF8_PREP_OK, "caf\xc3\xa9"},
	{"j\xc3\xb6rg", UTF8_PREP_OK, "j\xc3\xb6rg"},
	{"\xe6\x97\xa5\xe6\x9c\xac", UTF8_PREP_OK, "\xe6\x97\xa5\xe6\x9c\xac"},
	{"\xf0\x9f\x98\x80", UTF8_PREP_OK, "\xf0\x9f\x98\x80"},
	/* NFKC: decomposed to composed (as macOS sends it), compatibility
	 * forms folded. */
	{"cafe\xcc\x81", UTF8_PREP_OK, "caf\xc3\xa9"},
	{"\xef\xbc\xa1lice", UTF8_PREP_OK, "Alice"},
	{"\xef\xac\x81sh", UTF8_PREP_OK, "fish"},
	/* RFC 4013 §3: "I<U+00AD>X" -> "IX", U+00AA -> "a", U+2168 -> "IX". */
	{"I\xc2\xadX", UTF8_PREP_OK, "IX"},
	{"\xc2\xaa", UTF8_PREP_OK, "a"},
	{"\xe2\x85\xa8", UTF8_PREP_OK, "IX"},
	/* Non-ASCII spaces become SP (RFC 4013 §2.1). */
	{"a\xc2\xa0"
	 "b",
	 UTF8_PREP_OK, "a b"},
	{"a\xe3\x80\x80"
	 "b",
	 UTF8_PREP_OK, "a b"},
	/* A query string may hold code points Unicode 3.2 had not
	 * assigned (U+0221). */
	{"x\xc8\xa1", UTF8_PREP_OK, "x\xc8\xa1"},
	/* RFC 4013 §3: U+0007 is prohibited, "<U+0627>1" breaks the bidi
	 * rule. */
	{"\xc3\xa9\x07", UTF8_PREP_PROHIBITED, NULL},
	{"\xd8\xa7"
	 "1",
	 UTF8_PREP_PROHIBITED, NULL},
	/* C1 controls, line separators, private use, non-characters,
	 * surrogate-free but prohibited tags and the BOM. */
	{"a\xc2\x80", UTF8_PREP_PROHIBITED, NULL},
	{"a\xc2\x85", UTF8_PREP_PROHIBITED, NULL},
	{"a\xc2\x9f", UTF8_PREP_PROHIBITED, NULL},
	{"a\xe2\x80\xa8", UTF8_PREP_PROHIBITED, NULL},
	{"a\xee\x80\x80", UTF8_PREP_PROHIBITED, NULL},
	{"a\xef\xbf\xbf", UTF8_PREP_PROHIBITED, NULL},
	{"a\xf3\xa0\x80\x81", UTF8_PREP_PROHIBITED, NULL},
	{"a\xef\xbb\xbf"
	 "b",
	 UTF8_PREP_OK, "ab"}, /* mapped to nothing */
	/* Mapped to nothing at all: an empty name or password. */
	{"\xc2\xad", UTF8_PREP_PROHIBITED, NULL},
	/* Malformed (RFC 3629): overlongs, surrogates, beyond U+10FFFF,
	 * truncated sequences, stray continuations, octets UTF-8 never
	 * uses. */
	{"\xc0\xaf", UTF8_PREP_MALFORMED, NULL},
	{"\xc1\xbf", UTF8_PREP_MALFORMED, NULL},
	{"\xe0\x80\xaf", UTF8_PREP_MALFORMED, NULL},
	{"\xe0\x9f\xbf", UTF8_PREP_MALFORMED, NULL},
	{"\xf0\x80\x80\xaf", UTF8_PREP_MALFORMED, NULL},
	{"\xf0\x8f\xbf\xbf", UTF8_PREP_MALFORMED, NULL},
	{"\xed\xa0\x80", UTF8_PREP_MALFORMED, NULL},
	{"\xed\xbf\xbf", UTF8_PREP_MALFORMED, NULL},
	{"\xf4\x90\x80\x80", UTF8_PREP_MALFORMED, NULL},
	{"\xf5\x80\x80\x80", UTF8_PREP_MALFORMED, NULL},
	{"\xf8\x88\x80\x80\x80", UTF8_PREP_MALFORMED, NULL},
	{"al\xc3", UTF8_PREP_MALFORMED, NULL},
	{"al\xc3 x", UTF8_PREP_MALFORMED, NULL},
	{"\xe2\x82", UTF8_PREP_MALFORMED, NULL},
	{"\xf0\x9f\x98", UTF8_PREP_MALFORMED, NULL},
	{"\x80", UTF8_PREP_MALFORMED, NULL},
	{"a\xbf"
	 "b",
	 UTF8_PREP_MALFORMED, NULL},
	{"\xfe", UTF8_PREP_MALFORMED, NULL},
	{"\xff", UTF8_PREP_MALFORMED, NULL},
	{"caf\xe9", UTF8_PREP_MALFORMED, NULL}, /* Latin-1 */
};

static const char *
prep_name(enum utf8_prep r)
{
	switch (r) {
	case UTF8_PREP_OK:
		return "OK";
	case UTF8_PREP_MALFORMED:
		return "MALFORMED";
	case UTF8_PREP_PROHIBITED:
		return "PROHIBITED";
	case UTF8_PREP_TOO_LONG:
		return "TOO_LONG";
	}
	return "?";
}

static bool
all_zero(const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != '\0')
			return false;
	return true;
}

/* One test for the whole table: a process per case costs more than the
 * cases under ASan. */
START_TEST(prep_table)
{
	for (size_t i = 0; i < sizeof(prep_cases) / sizeof(prep_cases[0]);
	     i++) {
		const struct prep_case *pc = &prep_cases[i];
		char buf[256];
		enum utf8_prep r;

		snprintf(buf, sizeof(buf), "%s", pc->in);
		r = utf8_prep(buf, sizeof(buf));
		ck_assert_msg(r == pc->want, "case %zu: got %s, want %s", i,
			      prep_name(r), prep_name(pc->want));
		if (r == UTF8_PREP_OK)
			ck_assert_msg(strcmp(buf, pc->out) == 0,
				      "case %zu: \"%s\"", i, buf);
		else
			ck_assert_msg(all_zero(buf, sizeof(buf)),
				      "case %zu: not wiped", i);
	}
}
END_TEST

/* NFKC may lengthen: U+FDFA is 3 octets and prepares to 33. A result
 * that does not fit is refused, never cut. */
START_TEST(prep_too_long)
{
	char buf[16] = "\xef\xb7\xba";
	char big[64] = "\xef\xb7\xba";

	ck_assert_int_eq(utf8_prep(buf, sizeof(buf)), UTF8_PREP_TOO_LONG);
	ck_assert(all_zero(buf, sizeof(buf)));
	ck_assert_int_eq(utf8_prep(big, sizeof(big)), UTF8_PREP_OK);
	ck_assert_uint_eq(strlen(big), 33);
}
END_TEST

START_TEST(has_8bit)
{
	ck_assert(!utf8_has_8bit("alice"));
	ck_assert(!utf8_has_8bit(""));
	ck_assert(utf8_has_8bit("caf\xc3\xa9"));
	ck_assert(utf8_has_8bit("\x80"));
}
END_TEST

static Suite *
utf8_suite(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("prep");

	tcase_add_test(tc, prep_table);
	tcase_add_test(tc, prep_too_long);
	tcase_add_test(tc, has_8bit);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(utf8_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
