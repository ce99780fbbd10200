/* The human-readable text of every reply, per language (RFC 6856 §3,
 * R6856-12..17, DEC-23), and the choice of a language by an RFC 4647
 * lookup. Status indicators, response codes, numbers and multi-line
 * content (CAPA tags, listings) are never text: the callers write them.
 *
 * To add a reply: a TXT_ id below, its English format in lang.c's en[]
 * and its translation in every other catalogue there. test_lang fails,
 * naming the id and the language, while one is missing or its printf
 * conversions differ from the English ones. */
#ifndef POP3D_LANG_H
#define POP3D_LANG_H

#include <stdbool.h>
#include <stddef.h>

enum text_id {
	/* +OK replies */
	TXT_READY,
	TXT_SIGNING_OFF,
	TXT_CAPA_FOLLOWS,
	TXT_SEND_PASS,
	TXT_SASL_FOLLOWS,
	TXT_BEGIN_TLS,
	TXT_MAILDROP_1, /* count == 1 */
	TXT_MAILDROP_N, /* any other count */
	TXT_SCAN_1,	/* LIST without argument */
	TXT_SCAN_N,
	TXT_UIDL_FOLLOWS,
	TXT_OCTETS, /* RETR */
	TXT_TOP_FOLLOWS,
	TXT_DELETED,
	TXT_QUIT_LEFT_1,
	TXT_QUIT_LEFT_N,
	TXT_UTF8_ON,
	TXT_LANG_FOLLOWS,
	TXT_LANG_CHANGED,
	/* -ERR replies */
	TXT_UNKNOWN,
	TXT_BAD_CHAR,
	TXT_SYNTAX,
	TXT_TOO_MANY,
	TXT_MISSING,
	TXT_TOO_LONG,
	TXT_WRONG_STATE,
	TXT_BAD_NUMBER,
	TXT_NO_MESSAGE,
	TXT_BAD_LINES,
	TXT_NO_USER,
	TXT_PLAINTEXT,
	TXT_NO_MECH,
	TXT_BAD_SASL,
	TXT_CANCELLED,
	TXT_NO_TLS,
	TXT_TLS_ACTIVE,
	TXT_AUTH_FAILED,
	TXT_TEMP_FAILURE,
	TXT_LOGIN_CONFIG,
	TXT_MD_IN_USE,
	TXT_MD_PERM,
	TXT_UPDATE_FAILED,
	TXT_UPDATE_PENDING,
	TXT_UPDATE_PERM,
	TXT_BAD_COMMANDS,
	TXT_BAD_UTF8,
	TXT_PROHIBITED,
	TXT_PREP_TOO_LONG,
	TXT_STLS_AFTER_UTF8,
	TXT_NO_LANG,
	TXT_LOGIN_DELAY,
	TXT_COUNT
};

/* The catalogues shipped; 0 is English, the language of every reply
 * until a LANG command changes it. */
#define LANG_DEFAULT 0
extern const size_t lang_count;

/* The tag (as shipped, e.g. "de") and its name in itself. */
const char *lang_tag(unsigned lang);
const char *lang_self_name(unsigned lang);

/* The printf format of a text in a language (lang < lang_count). NULL
 * only in a catalogue with a gap, which test_lang forbids. */
const char *lang_format(unsigned lang, enum text_id id);

/* The catalogue an RFC 4647 §3.4 lookup picks for a basic language range
 * (RFC 4647 §2.1; not "*", which the caller maps to its default):
 * "de-CH-1996" falls back to "de-CH", then "de". Returns its index, or -1
 * when the range is malformed, longer than LANG_RANGE_MAX, or nothing
 * matches (R6856-13/14). */
int lang_lookup(const char *range);

/* The conversions of a printf format ("%zu", "%s", ...), in order, into
 * out as one string; false if it does not fit. For test_lang, which holds
 * every translation to the English conversions. */
bool lang_conversions(const char *fmt, char *out, size_t cap);

#endif
