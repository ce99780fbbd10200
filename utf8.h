/* UTF-8 user names and passwords for USER and PASS (RFC 6856 §2.2,
 * R6856-07): strict UTF-8 (RFC 3629), then SASLprep (RFC 4013) as a
 * query string, through GNU libidn's stringprep. */
#ifndef POP3D_UTF8_H
#define POP3D_UTF8_H

#include <stdbool.h>
#include <stddef.h>

enum utf8_prep {
	UTF8_PREP_OK,
	UTF8_PREP_MALFORMED,  /* not UTF-8: overlong, surrogate, truncated,
			       * above U+10FFFF, a stray continuation */
	UTF8_PREP_PROHIBITED, /* SASLprep refuses it: a control or private-use
			       * character, a non-character, mixed
			       * directions, or an empty result */
	UTF8_PREP_TOO_LONG,   /* the prepared string does not fit cap */
};

/* Prepare the NUL-terminated string s in place, in a buffer of cap
 * octets. Pure ASCII comes back unchanged (SASLprep maps no printable
 * ASCII character). On any result but UTF8_PREP_OK, s is wiped: it may
 * be a password. */
enum utf8_prep utf8_prep(char *s, size_t cap);

/* Whether s has an octet outside ASCII. */
bool utf8_has_8bit(const char *s);

#endif
