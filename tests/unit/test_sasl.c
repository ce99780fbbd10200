/* Unit tests for sasl.c: strict base64 (R5034-11), UTF-8 validation
 * (R4616-03) and the PLAIN message (R4616-01/02). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

struct b64_case {
	const char *in;
	const char *out; /* NULL: must be refused */
	size_t out_len;
};

static const struct b64_case b64_cases[] = {
	{"", "", 0},
	{"Zg==", "f", 1},
	{"Zm8=", "fo", 2},
	{"Zm9v", "foo", 3},
	{"Zm9vYg==", "foob", 4},
	{"AGFsaWNlAHNlY3JldA==", "\0alice\0secret", 13},
	{"YWxpY2UAYWxpY2UAc2VjcmV0", "alice\0alice\0secret", 18},
	{"/+/+", "\xff\xef\xfe", 3},
	/* R5034-11: the refusals. */
	{"AGFs=aWNl", NULL, 0},		 /* "=" inside */
	{"AGFsaWNlAHNlY3JldA", NULL, 0}, /* unpadded */
	{"AGFs aWNl", NULL, 0},		 /* blank */
	{"=AAA", NULL, 0},
	{"Z===", NULL, 0},
	{"====", NULL, 0},
	{"Zm9", NULL, 0},
	{"Zm-v", NULL, 0}, /* URL-safe alphabet */
	{"Zm_v", NULL, 0},
	{"Zh==", NULL, 0}, /* non-zero pad bits */
	{"Zm9=", NULL, 0},
	{"Zm9v\n", NULL, 0},
	{"Zg==Zg==", NULL, 0}, /* padding before the end */
};

START_TEST(decode_table)
{
	const struct b64_case *c = &b64_cases[_i];
	unsigned char out[64];
	long n = base64_decode(c->in, strlen(c->in), out, sizeof(out));

	if (c->out == NULL) {
		ck_assert_msg(n == -1, "\"%s\" accepted", c->in);
		return;
	}
	ck_assert_msg(n == (long)c->out_len, "\"%s\": %ld", c->in, n);
	ck_assert(memcmp(out, c->out, c->out_len) == 0);
}
END_TEST

START_TEST(decode_respects_capacity)
{
	unsigned char out[3];

	ck_assert_int_eq(base64_decode("Zm9v", 4, out, 3), 3);
	ck_assert_int_eq(base64_decode("Zm9vYg==", 8, out, 3), -1);
}
END_TEST

START_TEST(encode_round_trip)
{
	unsigned char in[300], back[300];
	char text[404];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7 + 3);
	for (size_t n = 0; n <= sizeof(in); n++) {
		base64_encode(in, n, text);
		ck_assert_uint_eq(strlen(text), 4 * ((n + 2) / 3));
		ck_assert_int_eq(
			base64_decode(text, strlen(text), back, sizeof(back)),
			(long)n);
		ck_assert(memcmp(in, back, n) == 0);
	}
}
END_TEST

struct utf8_case {
	const char *s;
	bool ok;
};

static const struct utf8_case utf8_cases[] = {
	{"alice", true},
	{"J\xc3\xbcrgen", true},    /* ü */
	{"\xe2\x82\xac", true},	    /* € */
	{"\xf0\x9f\x98\x80", true}, /* U+1F600 */
	{"\xf4\x8f\xbf\xbf", true}, /* U+10FFFF */
	{"\xc3", false},	    /* truncated (R6856-07 test) */
	{"al\xc3", false},
	{"\xc0\xaf", false},		 /* overlong "/" */
	{"\xe0\x80\xaf", false},	 /* overlong */
	{"\xed\xa0\x80", false},	 /* surrogate */
	{"\xf4\x90\x80\x80", false},	 /* above U+10FFFF */
	{"\xf8\x88\x80\x80\x80", false}, /* 5-octet form */
	{"\x80", false},		 /* lone continuation */
	{"\xe2\x28\xa1", false},	 /* bad continuation */
};

START_TEST(utf8_table)
{
	const struct utf8_case *c = &utf8_cases[_i];

	ck_assert_msg(utf8_valid((const unsigned char *)c->s, strlen(c->s)) ==
			      c->ok,
		      "case %d", _i);
}
END_TEST

static bool
plain(const char *msg, size_t len, struct sasl_plain *p)
{
	return sasl_plain_parse((const unsigned char *)msg, len, p);
}

START_TEST(plain_fields)
{
	struct sasl_plain p;

	ck_assert(plain("\0alice\0secret", 13, &p));
	ck_assert_str_eq(p.authzid, "");
	ck_assert_str_eq(p.authcid, "alice");
	ck_assert_str_eq(p.passwd, "secret");
	ck_assert(plain("bob\0alice\0a b c", 15, &p));
	ck_assert_str_eq(p.authzid, "bob");
	ck_assert_str_eq(p.passwd, "a b c");
}
END_TEST

START_TEST(plain_refusals)
{
	struct sasl_plain p;

	ck_assert(!plain("", 0, &p));
	ck_assert(!plain("\0alice", 6, &p));		/* one NUL */
	ck_assert(!plain("\0alice\0", 7, &p));		/* empty passwd */
	ck_assert(!plain("\0\0secret", 8, &p));		/* empty authcid */
	ck_assert(!plain("\0alice\0sec\0ret", 14, &p)); /* three NULs */
	ck_assert(!plain("\0al\xc3\0secret", 11, &p));	/* bad UTF-8 */
}
END_TEST

START_TEST(plain_field_lengths)
{
	char msg[3 + 3 * 256];
	struct sasl_plain p;
	size_t n = 0;

	/* R4616-02: 255 octets each are accepted; 256 are not. */
	memset(msg, 'a', sizeof(msg));
	msg[255] = '\0';
	msg[511] = '\0';
	n = 511 + 1 + 255;
	ck_assert(plain(msg, n, &p));
	ck_assert_uint_eq(strlen(p.passwd), 255);
	ck_assert(!plain(msg, n + 1, &p));
}
END_TEST

static Suite *
sasl_suite(void)
{
	Suite *s = suite_create("sasl");
	TCase *tc = tcase_create("base64");

	tcase_add_loop_test(tc, decode_table, 0,
			    sizeof(b64_cases) / sizeof(b64_cases[0]));
	tcase_add_test(tc, decode_respects_capacity);
	tcase_add_test(tc, encode_round_trip);
	suite_add_tcase(s, tc);
	tc = tcase_create("utf8");
	tcase_add_loop_test(tc, utf8_table, 0,
			    sizeof(utf8_cases) / sizeof(utf8_cases[0]));
	suite_add_tcase(s, tc);
	tc = tcase_create("plain");
	tcase_add_test(tc, plain_fields);
	tcase_add_test(tc, plain_refusals);
	tcase_add_test(tc, plain_field_lengths);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sasl_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
