/* Unit tests for command.c: the command line grammar (R1939-02/03/29,
 * DEC-02, DEC-04) and strict message numbers (DEC-09). */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"

/* A line as net_read_line hands it over: CRLF stripped, NUL-terminated,
 * possibly with NULs inside (so the length is explicit). */
struct parse_case {
	const char *line;
	size_t len; /* 0: strlen(line) */
	enum command_error err;
	const char *keyword; /* checked when err == CMD_OK */
	int argc;
	const char *arg0, *arg1;
	/* PASS cases check rest; NO_REST means "must be NULL". */
	const char *rest;
	bool check_rest;
};

#define NO_REST NULL
/* A refused line: only the error is checked. */
/* clang-format off */
#define BAD(line, len, err) {line, len, err, NULL, 0, NULL, NULL, NULL, false}
/* clang-format on */

static const struct parse_case parse_cases[] = {
	/* Keywords: 3 or 4 characters, case-folded (R1939-02). */
	{"STAT", 0, CMD_OK, "STAT", 0, NULL, NULL, NO_REST, true},
	{"stat", 0, CMD_OK, "STAT", 0, NULL, NULL, NO_REST, true},
	{"StAt", 0, CMD_OK, "STAT", 0, NULL, NULL, NO_REST, true},
	{"top", 0, CMD_OK, "TOP", 0, NULL, NULL, NO_REST, true},
	{"Top 1 2", 0, CMD_OK, "TOP", 2, "1", "2", NULL, false},
	{"user Alice", 0, CMD_OK, "USER", 1, "Alice", NULL, NULL, false},
	{"UIDL 7", 0, CMD_OK, "UIDL", 1, "7", NULL, NULL, false},
	{"U5ER x", 0, CMD_OK, "U5ER", 1, "x", NULL, NULL, false},
	BAD("XY", 0, CMD_BAD_KEYWORD),
	BAD("XY 1", 0, CMD_BAD_KEYWORD),
	BAD("USERS alice", 0, CMD_BAD_KEYWORD),
	BAD("XYZZY", 0, CMD_BAD_KEYWORD),
	BAD("", 0, CMD_BAD_KEYWORD),
	/* DEC-02: trailing SP/TAB ignored outside PASS. */
	{"LIST 1 ", 0, CMD_OK, "LIST", 1, "1", NULL, NULL, false},
	{"LIST 1\t", 0, CMD_OK, "LIST", 1, "1", NULL, NULL, false},
	{"LIST 1 \t \t", 0, CMD_OK, "LIST", 1, "1", NULL, NULL, false},
	{"TOP 1 2 ", 0, CMD_OK, "TOP", 2, "1", "2", NULL, false},
	{"LIST ", 0, CMD_OK, "LIST", 0, NULL, NULL, NULL, false},
	{"LIST\t", 0, CMD_OK, "LIST", 0, NULL, NULL, NULL, false},
	{"NOOP   ", 0, CMD_OK, "NOOP", 0, NULL, NULL, NULL, false},
	/* DEC-02: doubled SP, leading SP, TAB between tokens. */
	BAD("LIST  1", 0, CMD_BAD_SPACING),
	BAD("TOP 1  2", 0, CMD_BAD_SPACING),
	BAD("TOP  1 2", 0, CMD_BAD_SPACING),
	BAD(" LIST 1", 0, CMD_BAD_SPACING),
	BAD(" STAT", 0, CMD_BAD_SPACING),
	BAD("\tSTAT", 0, CMD_BAD_SPACING),
	BAD("LIST\t1", 0, CMD_BAD_SPACING),
	BAD("TOP 1\t2", 0, CMD_BAD_SPACING),
	BAD("LIST \t1", 0, CMD_BAD_SPACING),
	BAD("LIST 1\t2 ", 0, CMD_BAD_SPACING),
	BAD("PASS\tsecret", 0, CMD_BAD_SPACING),
	/* More arguments than any command takes. */
	BAD("TOP 1 2 3", 0, CMD_TOO_MANY),
	BAD("TOP 1 2 3 ", 0, CMD_TOO_MANY),
	BAD("USER a b c d", 0, CMD_TOO_MANY),
	/* R1939-29: PASS takes the rest of the line, spaces and trailing
	 * blanks included (DEC-02). */
	{"PASS secret", 0, CMD_OK, "PASS", 1, "secret", NULL, "secret", true},
	{"pass secret", 0, CMD_OK, "PASS", 1, "secret", NULL, "secret", true},
	{"PASS a b c", 0, CMD_OK, "PASS", 1, "a b c", NULL, "a b c", true},
	{"PASS my  pw  ", 0, CMD_OK, "PASS", 1, "my  pw  ", NULL, "my  pw  ",
	 true},
	{"PASS secret\t", 0, CMD_OK, "PASS", 1, "secret\t", NULL, "secret\t",
	 true},
	{"PASS  lead", 0, CMD_OK, "PASS", 1, " lead", NULL, " lead", true},
	{"PASS 1 2 3 4 5", 0, CMD_OK, "PASS", 1, "1 2 3 4 5", NULL, "1 2 3 4 5",
	 true},
	/* "PASS " with nothing after it has no argument. */
	{"PASS ", 0, CMD_OK, "PASS", 0, NULL, NULL, NO_REST, true},
	{"PASS", 0, CMD_OK, "PASS", 0, NULL, NULL, NO_REST, true},
	/* R1939-03, DEC-04: control, NUL and 8-bit octets. */
	BAD("USER a\001b", 0, CMD_BAD_CHAR),
	BAD("USER a\x7f", 0, CMD_BAD_CHAR),
	/* R6856-07: 8-bit octets in arguments are for the command to judge
	 * (only USER and PASS take them); anywhere else, or in a line with
	 * another fault, they are bad characters as ever. */
	{"USER \x80", 0, CMD_EIGHT_BIT, "USER", 1, "\x80", NULL, NULL, false},
	{"USER caf\xc3\xa9", 0, CMD_EIGHT_BIT, "USER", 1, "caf\xc3\xa9", NULL,
	 NULL, false},
	{"USER \xff", 0, CMD_EIGHT_BIT, "USER", 1, "\xff", NULL, NULL, false},
	{"PASS s\xe9 cret ", 0, CMD_EIGHT_BIT, "PASS", 1, "s\xe9 cret ", NULL,
	 "s\xe9 cret ", true},
	{"LIST \xc3\xa9", 0, CMD_EIGHT_BIT, "LIST", 1, "\xc3\xa9", NULL, NULL,
	 false},
	BAD("\x80STA", 0, CMD_BAD_CHAR),
	BAD("US\xc3\xa9 x", 0, CMD_BAD_CHAR),
	BAD("\xc3\xa9", 0, CMD_BAD_CHAR),
	BAD("USER  caf\xc3\xa9", 0, CMD_BAD_CHAR),
	BAD("TOP \xc3 1 2", 0, CMD_BAD_CHAR),
	BAD("USER caf\xc3\xa9\001", 0, CMD_BAD_CHAR),
	BAD("ST\x1b", 0, CMD_BAD_CHAR),
	BAD("USER a\rb", 0, CMD_BAD_CHAR),
	BAD("USER a\r", 0, CMD_BAD_CHAR),
	BAD("USER a\nb", 0, CMD_BAD_CHAR),
	BAD("USER a\0b", 8, CMD_BAD_CHAR),
	BAD("USER a\0", 7, CMD_BAD_CHAR),
	BAD("\0STAT", 5, CMD_BAD_CHAR),
	BAD("PASS se\001cret", 0, CMD_BAD_CHAR),
	BAD("PASS secret\0", 12, CMD_BAD_CHAR),
	BAD("PASS \0", 6, CMD_BAD_CHAR),
};

static const char *
err_name(enum command_error e)
{
	switch (e) {
	case CMD_OK:
		return "CMD_OK";
	case CMD_BAD_CHAR:
		return "CMD_BAD_CHAR";
	case CMD_EIGHT_BIT:
		return "CMD_EIGHT_BIT";
	case CMD_BAD_KEYWORD:
		return "CMD_BAD_KEYWORD";
	case CMD_BAD_SPACING:
		return "CMD_BAD_SPACING";
	case CMD_TOO_MANY:
		return "CMD_TOO_MANY";
	}
	return "?";
}

/* Printable form of a test line for failure messages. */
static const char *
show(const char *s, size_t len)
{
	static char buf[256];
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < sizeof(buf); i++) {
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = c;
		else
			o += snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
	}
	buf[o] = '\0';
	return buf;
}

START_TEST(parse_table)
{
	const struct parse_case *pc = &parse_cases[_i];
	size_t len = pc->len ? pc->len : strlen(pc->line);
	char line[300];
	struct command cmd;
	enum command_error err;

	/* A copy with a NUL after it, as net_read_line gives it. */
	memcpy(line, pc->line, len);
	line[len] = '\0';
	err = command_parse(line, len, &cmd);
	ck_assert_msg(err == pc->err, "\"%s\": got %s, want %s",
		      show(pc->line, len), err_name(err), err_name(pc->err));
	if (pc->err != CMD_OK && pc->err != CMD_EIGHT_BIT)
		return;
	ck_assert_str_eq(cmd.keyword, pc->keyword);
	ck_assert_msg(cmd.argc == pc->argc, "\"%s\": argc %d, want %d",
		      show(pc->line, len), cmd.argc, pc->argc);
	if (pc->argc >= 1)
		ck_assert_str_eq(cmd.argv[0], pc->arg0);
	if (pc->argc >= 2)
		ck_assert_str_eq(cmd.argv[1], pc->arg1);
	if (pc->check_rest) {
		if (pc->rest == NULL)
			ck_assert_msg(cmd.rest == NULL,
				      "\"%s\": rest \"%s\", want NULL",
				      show(pc->line, len), cmd.rest);
		else
			ck_assert_str_eq(cmd.rest, pc->rest);
	}
}
END_TEST

/* Every upper/lower case spelling of a keyword folds to upper case. */
START_TEST(keyword_case_folding)
{
	static const char *const words[] = {"USER", "PASS", "QUIT", "STAT",
					    "LIST", "RETR", "DELE", "NOOP",
					    "RSET", "TOP",  "UIDL", "CAPA"};

	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
		size_t n = strlen(words[w]);

		for (unsigned mask = 0; mask < (1u << n); mask++) {
			char line[16];
			struct command cmd;

			for (size_t i = 0; i < n; i++)
				line[i] = (mask & (1u << i))
						  ? (char)(words[w][i] | 0x20)
						  : words[w][i];
			strcpy(line + n, " x");
			ck_assert_int_eq(command_parse(line, n + 2, &cmd),
					 CMD_OK);
			ck_assert_str_eq(cmd.keyword, words[w]);
			ck_assert_int_eq(cmd.argc, 1);
			ck_assert_str_eq(cmd.argv[0], "x");
		}
	}
}
END_TEST

/* Every control octet and DEL (TAB aside) in an argument is refused;
 * every 8-bit octet is left to the command (R6856-07). */
START_TEST(every_bad_octet)
{
	for (unsigned c = 0; c < 256; c++) {
		char line[16] = "USER a?b";
		struct command cmd;
		enum command_error err, want;

		if (c == '\t' || (c >= 0x20 && c < 0x7f))
			continue;
		want = c >= 0x80 ? CMD_EIGHT_BIT : CMD_BAD_CHAR;
		line[6] = (char)c;
		err = command_parse(line, 8, &cmd);
		ck_assert_msg(err == want, "octet 0x%02x: got %s", c,
			      err_name(err));
		if (want == CMD_EIGHT_BIT)
			ck_assert_int_eq((unsigned char)cmd.argv[0][1], c);
	}
}
END_TEST

/* Every printable octet is fine inside an argument. */
START_TEST(every_printable_octet)
{
	for (unsigned c = 0x21; c < 0x7f; c++) {
		char line[16] = "USER a?b";
		struct command cmd;

		line[6] = (char)c;
		ck_assert_int_eq(command_parse(line, 8, &cmd), CMD_OK);
		ck_assert_int_eq(cmd.argc, 1);
		ck_assert_int_eq((unsigned char)cmd.argv[0][1], c);
	}
}
END_TEST

/* Fields from an earlier parse never leak into the next one. */
START_TEST(parse_resets_command)
{
	char a[] = "TOP 1 2", b[] = "STAT";
	struct command cmd;

	ck_assert_int_eq(command_parse(a, strlen(a), &cmd), CMD_OK);
	ck_assert_int_eq(command_parse(b, strlen(b), &cmd), CMD_OK);
	ck_assert_int_eq(cmd.argc, 0);
	ck_assert_ptr_null(cmd.rest);
}
END_TEST

struct number_case {
	const char *s;
	enum number_result res;
	unsigned long value; /* checked for NUMBER_OK and NUMBER_OVERFLOW */
	bool only_64bit;
};

static const struct number_case number_cases[] = {
	{"1", NUMBER_OK, 1, false},
	{"0", NUMBER_OK, 0, false},
	{"01", NUMBER_OK, 1, false},
	{"007", NUMBER_OK, 7, false},
	{"000000000000000000000000000000000001", NUMBER_OK, 1, false},
	{"123456", NUMBER_OK, 123456, false},
	{"4294967295", NUMBER_OK, 4294967295UL, false},
	{"4294967297", NUMBER_OK, 0 /* set below */, true},
	{"18446744073709551615", NUMBER_OK, ULONG_MAX, true},
	{"18446744073709551616", NUMBER_OVERFLOW, ULONG_MAX, true},
	{"99999999999999999999", NUMBER_OVERFLOW, ULONG_MAX, false},
	{"123456789012345678901234567890", NUMBER_OVERFLOW, ULONG_MAX, false},
	{"99999999999999999999x", NUMBER_BAD, 0, false},
	{"99999999999999999999 ", NUMBER_BAD, 0, false},
	{"", NUMBER_BAD, 0, false},
	{"+1", NUMBER_BAD, 0, false},
	{"-1", NUMBER_BAD, 0, false},
	{"-0", NUMBER_BAD, 0, false},
	{"1.0", NUMBER_BAD, 0, false},
	{"0x1", NUMBER_BAD, 0, false},
	{"1a", NUMBER_BAD, 0, false},
	{"a1", NUMBER_BAD, 0, false},
	{" 1", NUMBER_BAD, 0, false},
	{"1 ", NUMBER_BAD, 0, false},
	{"\t1", NUMBER_BAD, 0, false},
	{"1e3", NUMBER_BAD, 0, false},
	{"١", NUMBER_BAD, 0, false}, /* Arabic-Indic digit one, UTF-8 */
	{"1/", NUMBER_BAD, 0, false},
	{"1:", NUMBER_BAD, 0, false},
};

START_TEST(number_table)
{
	const struct number_case *nc = &number_cases[_i];
	unsigned long v = 12345;
	enum number_result res, want = nc->res;
	unsigned long want_v = nc->value;

	if (nc->only_64bit && ULONG_MAX == 0xffffffffUL) {
		/* Too large for a 32-bit unsigned long. */
		want = NUMBER_OVERFLOW;
		want_v = ULONG_MAX;
	} else if (strcmp(nc->s, "4294967297") == 0) {
		want_v = 4294967297UL;
	}
	res = command_number(nc->s, &v);
	ck_assert_msg(res == want, "\"%s\": got %d, want %d", nc->s, res, want);
	if (want != NUMBER_BAD)
		ck_assert_msg(v == want_v, "\"%s\": value %lu, want %lu", nc->s,
			      v, want_v);
}
END_TEST

/* Every value around the overflow boundary, and every length of 9s. */
START_TEST(number_boundaries)
{
	char buf[64];
	unsigned long v;

	snprintf(buf, sizeof(buf), "%lu", ULONG_MAX);
	ck_assert_int_eq(command_number(buf, &v), NUMBER_OK);
	ck_assert(v == ULONG_MAX);
	snprintf(buf, sizeof(buf), "%lu", ULONG_MAX - 1);
	ck_assert_int_eq(command_number(buf, &v), NUMBER_OK);
	ck_assert(v == ULONG_MAX - 1);
	/* ULONG_MAX with its last digit raised: still no wrap. */
	snprintf(buf, sizeof(buf), "%lu", ULONG_MAX / 10);
	strcat(buf, "9");
	ck_assert_int_eq(command_number(buf, &v), NUMBER_OVERFLOW);
	ck_assert(v == ULONG_MAX);
	snprintf(buf, sizeof(buf), "%lu0", ULONG_MAX);
	ck_assert_int_eq(command_number(buf, &v), NUMBER_OVERFLOW);
	ck_assert(v == ULONG_MAX);

	for (size_t n = 1; n < 40; n++) {
		unsigned long want = 0;
		bool fits = true;

		memset(buf, '9', n);
		buf[n] = '\0';
		for (size_t i = 0; i < n; i++) {
			if (want > (ULONG_MAX - 9) / 10)
				fits = false;
			want = want * 10 + 9;
		}
		v = 0;
		ck_assert_int_eq(command_number(buf, &v),
				 fits ? NUMBER_OK : NUMBER_OVERFLOW);
		ck_assert(v == (fits ? want : ULONG_MAX));
	}
}
END_TEST

static Suite *
command_suite(void)
{
	Suite *s = suite_create("command");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, parse_table, 0,
			    sizeof(parse_cases) / sizeof(parse_cases[0]));
	tcase_add_test(tc, keyword_case_folding);
	tcase_add_test(tc, every_bad_octet);
	tcase_add_test(tc, every_printable_octet);
	tcase_add_test(tc, parse_resets_command);
	suite_add_tcase(s, tc);

	tc = tcase_create("number");
	tcase_add_loop_test(tc, number_table, 0,
			    sizeof(number_cases) / sizeof(number_cases[0]));
	tcase_add_test(tc, number_boundaries);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(command_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
