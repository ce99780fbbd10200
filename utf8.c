/* UTF-8 user names and passwords (RFC 6856 §2.2). SASLprep is GNU
 * libidn's: its tables are Unicode 3.2, the version RFC 3454 and
 * RFC 4013 fix, and writing NFKC and the stringprep tables again here
 * would be several thousand lines of tables to get wrong. */
#include "utf8.h"

#include <string.h>

#include <stringprep.h>

#include "sasl.h"

bool
utf8_has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

enum utf8_prep
utf8_prep(char *s, size_t cap)
{
	size_t len = strlen(s);
	int rc;

	if (!utf8_has_8bit(s))
		return UTF8_PREP_OK;
	/* R6856-07: malformed UTF-8 MUST be refused; libidn is only handed
	 * well-formed input. */
	if (!utf8_valid((const unsigned char *)s, len)) {
		explicit_bzero(s, cap);
		return UTF8_PREP_MALFORMED;
	}
	/* A query string (RFC 3454 §7): unassigned code points pass. */
	rc = stringprep(s, cap, 0, stringprep_saslprep);
	if (rc == STRINGPREP_OK && s[0] != '\0')
		return UTF8_PREP_OK;
	explicit_bzero(s, cap);
	if (rc == STRINGPREP_TOO_SMALL_BUFFER)
		return UTF8_PREP_TOO_LONG;
	return UTF8_PREP_PROHIBITED;
}
