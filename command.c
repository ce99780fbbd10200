#include "command.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>

/* R1939-03, DEC-04: printable US-ASCII only. TAB passes this test; where it
 * may stand is decided by the spacing rules (DEC-02). */
static bool
line_chars_ok(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = line[i];

		if ((c < 0x20 && c != '\t') || c >= 0x7f)
			return false;
	}
	return true;
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

enum command_error
command_parse(char *line, size_t len, struct command *cmd)
{
	enum command_error err;
	size_t klen;

	memset(cmd, 0, sizeof(*cmd));
	if (!line_chars_ok(line, len))
		return CMD_BAD_CHAR;
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
