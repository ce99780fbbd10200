#include "command.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>

/* R1939-03, DEC-04: printable US-ASCII, and 8-bit octets that only USER
 * and PASS may take (R6856-07; the session judges them). TAB passes this
 * test; where it may stand is decided by the spacing rules (DEC-02). */
static enum command_error
line_chars(const char *line, size_t len)
{
	enum command_error err = CMD_OK;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = line[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return CMD_BAD_CHAR;
		if (c >= 0x80)
			err = CMD_EIGHT_BIT;
	}
	return err;
}

static enum command_error
take_keyword(char *line, size_t klen, struct command *cmd)
{
	if (klen < 3 || klen > 4)
		return CMD_BAD_KEYWORD;
	for (size_t i = 0; i < klen; i++)
		cmd->keyword[i] = toupper((unsigned char)line[i]);
	cmd->keyword[klen] = '\0';
	return CMD_OK;
}

/* Split "arg SP arg" in place: exactly one SP between arguments, no TAB. */
static enum command_error
split_args(char *s, struct command *cmd)
{
	char *sp;

	if (strchr(s, '\t') != NULL)
		return CMD_BAD_SPACING;
	while (*s != '\0') {
		if (*s == ' ')
			return CMD_BAD_SPACING;
		if (cmd->argc == COMMAND_ARGS_MAX)
			return CMD_TOO_MANY;
		cmd->argv[cmd->argc++] = s;
		sp = strchr(s, ' ');
		if (sp == NULL)
			break;
		*sp = '\0';
		s = sp + 1;
		if (*s == '\0')
			return CMD_BAD_SPACING;
	}
	return CMD_OK;
}

static bool
ascii(const char *from, const char *to)
{
	for (; from < to; from++)
		if ((unsigned char)*from >= 0x80)
			return false;
	return true;
}

static enum command_error
parse_line(char *line, size_t len, struct command *cmd)
{
	enum command_error err;
	size_t klen;

	klen = strcspn(line, " \t");
	/* DEC-02: a blank before the keyword is a spacing error. */
	if (klen == 0 && len > 0)
		return CMD_BAD_SPACING;
	if ((err = take_keyword(line, klen, cmd)) != CMD_OK)
		return err;
	/* R1939-29: PASS takes the rest of the line as it is; trailing
	 * blanks belong to the password (DEC-02). */
	if (strcmp(cmd->keyword, "PASS") == 0 && line[klen] == ' ' &&
	    line[klen + 1] != '\0') {
		cmd->rest = line + klen + 1;
		cmd->argv[cmd->argc++] = cmd->rest;
		return CMD_OK;
	}
	while (len > klen && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	if (line[klen] == '\0')
		return CMD_OK;
	if (line[klen] == '\t')
		return CMD_BAD_SPACING;
	cmd->rest = line + klen + 1;
	return split_args(cmd->rest, cmd);
}

enum command_error
command_parse(char *line, size_t len, struct command *cmd)
{
	enum command_error chars, err;

	memset(cmd, 0, sizeof(*cmd));
	if ((chars = line_chars(line, len)) == CMD_BAD_CHAR)
		return CMD_BAD_CHAR;
	err = parse_line(line, len, cmd);
	if (chars == CMD_OK)
		return err;
	/* An 8-bit line is what it always was, a bad character, unless it
	 * is well-formed with its 8-bit octets in the arguments. */
	if (err == CMD_OK && cmd->rest != NULL && ascii(line, cmd->rest))
		return CMD_EIGHT_BIT;
	memset(cmd, 0, sizeof(*cmd));
	return CMD_BAD_CHAR;
}

enum number_result
command_number(const char *s, unsigned long *value_r)
{
	unsigned long v = 0;
	unsigned d;

	if (*s == '\0')
		return NUMBER_BAD;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return NUMBER_BAD;
		d = *s - '0';
		if (v > (ULONG_MAX - d) / 10) {
			/* Still reject junk after the digits. */
			while (*s >= '0' && *s <= '9')
				s++;
			if (*s != '\0')
				return NUMBER_BAD;
			*value_r = ULONG_MAX;
			return NUMBER_OVERFLOW;
		}
		v = v * 10 + d;
	}
	*value_r = v;
	return NUMBER_OK;
}
