/* Unit tests for lang.c: the reply catalogues (R6856-13, DEC-23) and the
 * RFC 4647 lookup (R6856-13/14). Every text of every shipped language
 * exists, keeps the English printf conversions (so no translation can
 * make printf read an argument its caller did not pass), is UTF-8 and
 * short enough never to be cut. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang.h"
#include "params.h"
#include "sasl.h"

/* Room for the longest status and code, and 20 digits per conversion. */
#define STATUS_MAX sizeof("-ERR [SYS/TEMP] ")
#define DIGITS_MAX 20

static const char *
english(enum text_id id)
{
	const char *t = lang_format(LANG_DEFAULT, id);

	return t != NULL ? t : "(no English text either)";
}

START_TEST(every_text_in_every_language)
{
	for (unsigned l = 0; l < lang_count; l++)
		for (int id = 0; id < TXT_COUNT; id++)
			ck_assert_msg(lang_format(l, id) != NULL,
				      "language %s has no text for reply #%d "
				      "(English: \"%s\"): add it to lang.c",
				      lang_tag(l), id, english(id));
}
END_TEST

START_TEST(conversions_match_english)
{
	char want[64], got[64];

	for (int id = 0; id < TXT_COUNT; id++) {
		ck_assert_msg(lang_conversions(english(id), want, sizeof(want)),
			      "English reply #%d: bad format", id);
		for (unsigned l = 1; l < lang_count; l++) {
			const char *t = lang_format(l, id);

			if (t == NULL)
				continue; /* every_text_in_every_language */
			ck_assert_msg(lang_conversions(t, got, sizeof(got)) &&
					      strcmp(want, got) == 0,
				      "language %s, reply #%d \"%s\": "
				      "conversions \"%s\", English \"%s\" has "
				      "\"%s\"",
				      lang_tag(l), id, t, got, english(id),
				      want);
		}
	}
}
END_TEST

/* UTF-8 (RFC 6856 §3.2), one line, never cut by REPLY_LINE_MAX (a cut
 * could split a character), and never starting with "[", which would
 * read as a response code (R2449-04). English is ASCII: it is what a
 * client that never sent LANG gets (RFC 1939). */
START_TEST(texts_well_formed)
{
	for (unsigned l = 0; l < lang_count; l++) {
		for (int id = 0; id < TXT_COUNT; id++) {
			const char *t = lang_format(l, id);
			char conv[64];
			size_t len, n;

			if (t == NULL)
				continue;
			len = strlen(t);
			ck_assert(lang_conversions(t, conv, sizeof(conv)));
			n = strlen(conv);
			ck_assert_msg(STATUS_MAX + len + n * DIGITS_MAX + 2 <
					      REPLY_LINE_MAX / 2,
				      "%s #%d too long", lang_tag(l), id);
			ck_assert_msg(utf8_valid((const unsigned char *)t, len),
				      "%s #%d not UTF-8", lang_tag(l), id);
			ck_assert_msg(t[0] != '[' && t[0] != '\0',
				      "%s #%d: \"%s\"", lang_tag(l), id, t);
			for (size_t i = 0; i < len; i++) {
				unsigned char c = t[i];

				ck_assert_msg(c >= 0x20 && c != 0x7f,
					      "%s #%d: control octet",
					      lang_tag(l), id);
				ck_assert_msg(l != LANG_DEFAULT || c < 0x80,
					      "English #%d not ASCII", id);
			}
		}
	}
}
END_TEST

/* The shipped list: English first (the default), each tag found by
 * itself, a name for each (R6856-16). */
START_TEST(shipped_languages)
{
	ck_assert_uint_ge(lang_count, 2);
	ck_assert_str_eq(lang_tag(LANG_DEFAULT), "en");
	for (unsigned l = 0; l < lang_count; l++) {
		ck_assert_int_eq(lang_lookup(lang_tag(l)), (int)l);
		ck_assert(lang_self_name(l)[0] != '\0');
	}
	ck_assert_str_eq(lang_self_name(1), "Deutsch");
}
END_TEST

struct lookup_case {
	const char *range;
	const char *want; /* NULL: refused */
};

static const struct lookup_case lookup_cases[] = {
	{"en", "en"},
	{"EN", "en"},
	{"de", "de"},
	{"De", "de"},
	/* RFC 4647 §3.4: truncate from the end until a tag matches. */
	{"de-CH", "de"},
	{"de-CH-1996", "de"},
	{"DE-ch-1996", "de"},
	{"de-Latn-DE", "de"},
	{"en-GB-oxendict", "en"},
	{"en-US", "en"},
	/* A singleton left last goes with the subtag after it. */
	{"de-x-private", "de"},
	{"de-CH-x-a", "de"},
	{"en-a-bbb-x-a-ccc", "en"},
	/* No catalogue: R6856-14's -ERR. */
	{"fr", NULL},
	{"fr-CH", NULL},
	{"MUL", NULL},
	{"uga", NULL},
	{"x-private", NULL},
	{"i-klingon", NULL},
	{"dea", NULL},
	{"d", NULL},
	/* Not a basic language range (RFC 4647 §2.1). */
	{"", NULL},
	{"*", NULL},
	{"de-*", NULL},
	{"*-CH", NULL},
	{"de-", NULL},
	{"-de", NULL},
	{"de--CH", NULL},
	{"de_CH", NULL},
	{"d3", NULL},
	{"1de", NULL},
	{"de CH", NULL},
	{"abcdefghi", NULL},
	{"de-abcdefghi", NULL},
	{"de-\xc3\xa9", NULL},
	{"de-12345678", "de"},
	{"de-a1b2c3d4-e5", "de"},
	/* 65 characters: longer than LANG_RANGE_MAX, refused unread. */
	{"de-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd-eeeeeeee-ffffffff-gggggggg",
	 NULL},
};

/* One test for the whole table: a process per case costs more than the
 * cases under ASan. */
START_TEST(lookup_table)
{
	for (size_t k = 0; k < sizeof(lookup_cases) / sizeof(lookup_cases[0]);
	     k++) {
		const struct lookup_case *lc = &lookup_cases[k];
		int i = lang_lookup(lc->range);

		if (lc->want == NULL)
			ck_assert_msg(i < 0, "\"%s\" matched %s", lc->range,
				      i >= 0 ? lang_tag(i) : "");
		else
			ck_assert_msg(
				i >= 0 && strcmp(lang_tag(i), lc->want) == 0,
				"\"%s\": got %s, want %s", lc->range,
				i >= 0 ? lang_tag(i) : "nothing", lc->want);
	}
}
END_TEST

/* 64 characters are looked up, 65 are not. */
START_TEST(lookup_length_bound)
{
	char r[LANG_RANGE_MAX + 2];

	memset(r, 'a', sizeof(r));
	memcpy(r, "de", 2);
	for (size_t i = 2; i < sizeof(r) - 1; i += 9)
		r[i] = '-';
	r[LANG_RANGE_MAX] = '\0';
	if (r[LANG_RANGE_MAX - 1] == '-')
		r[LANG_RANGE_MAX - 1] = 'a';
	ck_assert_int_eq(lang_lookup(r), 1);
	r[LANG_RANGE_MAX] = 'a';
	r[LANG_RANGE_MAX + 1] = '\0';
	ck_assert_int_eq(lang_lookup(r), -1);
}
END_TEST

START_TEST(conversions_parse)
{
	char out[32];

	ck_assert(lang_conversions("a %zu b %s c %lu", out, sizeof(out)));
	ck_assert_str_eq(out, "%zu%s%lu");
	ck_assert(lang_conversions("none", out, sizeof(out)));
	ck_assert_str_eq(out, "");
	ck_assert(lang_conversions("100%% %-5.2s", out, sizeof(out)));
	ck_assert_str_eq(out, "%%%-5.2s");
	ck_assert(!lang_conversions("dangling %", out, sizeof(out)));
	ck_assert(!lang_conversions("%zu%zu%zu", out, 6));
}
END_TEST

static Suite *
lang_suite(void)
{
	Suite *s = suite_create("lang");
	TCase *tc = tcase_create("catalogue");

	tcase_add_test(tc, every_text_in_every_language);
	tcase_add_test(tc, conversions_match_english);
	tcase_add_test(tc, texts_well_formed);
	tcase_add_test(tc, shipped_languages);
	tcase_add_test(tc, conversions_parse);
	suite_add_tcase(s, tc);

	tc = tcase_create("lookup");
	tcase_add_test(tc, lookup_table);
	tcase_add_test(tc, lookup_length_bound);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(lang_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
