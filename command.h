/* The POP3 command line grammar (RFC 1939 §3, RFC 2449 §4, DEC-01..04,
 * DEC-09), kept apart from the state machine so it can be tested alone. */
#ifndef POP3D_COMMAND_H
#define POP3D_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#define COMMAND_ARGS_MAX 2

struct command {
	char keyword[5]; /* upper-cased, 3 or 4 characters */
	int argc;
	char *argv[COMMAND_ARGS_MAX];
	/* Everything after "KEYWORD SP", unsplit: PASS takes it whole,
	 * spaces and trailing blanks included (R1939-29). NULL if none. */
	char *rest;
};

enum command_error {
	CMD_OK,
	CMD_BAD_CHAR,	 /* control, NUL, DEL (R1939-03, DEC-04) */
	CMD_BAD_KEYWORD, /* not 3-4 printable characters */
	CMD_BAD_SPACING, /* empty argument: doubled SP, leading SP, TAB */
	CMD_TOO_MANY,	 /* more arguments than any command takes */
	/* Well-formed, but an argument has 8-bit octets: only USER and PASS
	 * take them (R6856-07); cmd is filled. Octets >= 0x80 anywhere else,
	 * or in a line with another fault, are CMD_BAD_CHAR. */
	CMD_EIGHT_BIT,
};

/* Split a line (as net_read_line returns it) in place. The keyword is
 * case-folded; arguments point into line. */
enum command_error command_parse(char *line, size_t len, struct command *cmd);

enum number_result { NUMBER_OK, NUMBER_BAD, NUMBER_OVERFLOW };

/* Parse a decimal number strictly (DEC-09): one or more digits, leading
 * zeros allowed, no sign, no blanks, nothing after. A value too large for
 * unsigned long gives NUMBER_OVERFLOW and *value_r = ULONG_MAX; it never
 * wraps. */
enum number_result command_number(const char *s, unsigned long *value_r);

#endif
