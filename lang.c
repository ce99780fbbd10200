/* The reply catalogues (RFC 6856 §3) and the RFC 4647 lookup that picks
 * one. Every human-readable reply text of pop3d is here and nowhere
 * else; session.c adds the status indicator and response code in front.
 *
 * Adding a reply: its id in lang.h, its English text in en[], and its
 * translation in every other catalogue. A translation must keep the
 * English printf conversions, in order (test_lang checks it), so that no
 * catalogue can make printf read an argument the caller did not pass.
 * Texts are UTF-8 (RFC 6856 §3.2) and short: a reply line is cut at
 * REPLY_LINE_MAX octets, and a cut must never split a character
 * (test_lang bounds every text well below it). */
#include "lang.h"

#include <ctype.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "params.h"

typedef const char *const catalogue[TXT_COUNT];

static catalogue en = {
	[TXT_READY] = "pop3d ready",
	[TXT_SIGNING_OFF] = "pop3d signing off",
	[TXT_CAPA_FOLLOWS] = "capability list follows",
	[TXT_SEND_PASS] = "send PASS",
	[TXT_SASL_FOLLOWS] = "SASL mechanisms follow",
	[TXT_BEGIN_TLS] = "begin TLS negotiation",
	[TXT_MAILDROP_1] = "maildrop has %zu message (%" PRIu64 " octets)",
	[TXT_MAILDROP_N] = "maildrop has %zu messages (%" PRIu64 " octets)",
	[TXT_SCAN_1] = "%zu message (%" PRIu64 " octets)",
	[TXT_SCAN_N] = "%zu messages (%" PRIu64 " octets)",
	[TXT_UIDL_FOLLOWS] = "unique-id listing follows",
	[TXT_OCTETS] = "%" PRIu64 " octets",
	[TXT_TOP_FOLLOWS] = "top of message follows",
	[TXT_DELETED] = "message %zu deleted",
	[TXT_QUIT_LEFT_1] = "pop3d signing off (%zu message left)",
	[TXT_QUIT_LEFT_N] = "pop3d signing off (%zu messages left)",
	[TXT_UTF8_ON] = "UTF-8 mode on",
	[TXT_LANG_FOLLOWS] = "language listing follows",
	[TXT_LANG_CHANGED] = "language changed",
	[TXT_UNKNOWN] = "unknown command",
	[TXT_BAD_CHAR] = "invalid character in command",
	[TXT_SYNTAX] = "syntax error",
	[TXT_TOO_MANY] = "too many arguments",
	[TXT_MISSING] = "missing argument",
	[TXT_TOO_LONG] = "line too long",
	[TXT_WRONG_STATE] = "command not valid in this state",
	[TXT_BAD_NUMBER] = "invalid message number",
	[TXT_NO_MESSAGE] = "no such message",
	[TXT_BAD_LINES] = "invalid line count",
	[TXT_NO_USER] = "USER first",
	[TXT_PLAINTEXT] = "cleartext login not allowed on this connection",
	[TXT_NO_MECH] = "unknown authentication mechanism",
	[TXT_BAD_SASL] = "malformed authentication data",
	[TXT_CANCELLED] = "authentication cancelled",
	[TXT_NO_TLS] = "TLS is not available",
	[TXT_TLS_ACTIVE] = "TLS is already active",
	[TXT_AUTH_FAILED] = "authentication failed",
	[TXT_TEMP_FAILURE] = "temporary failure, try again later",
	[TXT_LOGIN_CONFIG] = "login configuration error, contact the "
			     "administrator",
	[TXT_MD_IN_USE] = "maildrop is locked by another session",
	[TXT_MD_PERM] = "maildrop cannot be opened, contact the administrator",
	[TXT_UPDATE_FAILED] = "messages not deleted, try again later",
	[TXT_UPDATE_PENDING] = "some deleted messages not removed yet, they "
			       "will be at the next login",
	[TXT_UPDATE_PERM] = "messages not deleted, contact the administrator",
	[TXT_BAD_COMMANDS] = "too many bad commands, closing connection",
	[TXT_BAD_UTF8] = "invalid UTF-8",
	[TXT_PROHIBITED] = "user name or password contains a prohibited "
			   "character",
	[TXT_PREP_TOO_LONG] = "user name or password too long",
	[TXT_STLS_AFTER_UTF8] = "STLS not allowed after UTF8",
	[TXT_NO_LANG] = "no such language",
	[TXT_LOGIN_DELAY] = "too soon after the last login, try again later",
};

static catalogue de = {
	[TXT_READY] = "pop3d bereit",
	[TXT_SIGNING_OFF] = "pop3d meldet sich ab",
	[TXT_CAPA_FOLLOWS] = "Liste der Fähigkeiten folgt",
	[TXT_SEND_PASS] = "bitte PASS senden",
	[TXT_SASL_FOLLOWS] = "SASL-Verfahren folgen",
	[TXT_BEGIN_TLS] = "TLS-Aushandlung beginnt",
	[TXT_MAILDROP_1] = "Postfach enthält %zu Nachricht (%" PRIu64 " Bytes)",
	[TXT_MAILDROP_N] =
		"Postfach enthält %zu Nachrichten (%" PRIu64 " Bytes)",
	[TXT_SCAN_1] = "%zu Nachricht (%" PRIu64 " Bytes)",
	[TXT_SCAN_N] = "%zu Nachrichten (%" PRIu64 " Bytes)",
	[TXT_UIDL_FOLLOWS] = "Liste der eindeutigen IDs folgt",
	[TXT_OCTETS] = "%" PRIu64 " Bytes",
	[TXT_TOP_FOLLOWS] = "Anfang der Nachricht folgt",
	[TXT_DELETED] = "Nachricht %zu gelöscht",
	[TXT_QUIT_LEFT_1] = "pop3d meldet sich ab (%zu Nachricht verbleibt)",
	[TXT_QUIT_LEFT_N] = "pop3d meldet sich ab (%zu Nachrichten "
			    "verbleiben)",
	[TXT_UTF8_ON] = "UTF-8-Modus eingeschaltet",
	[TXT_LANG_FOLLOWS] = "Liste der Sprachen folgt",
	[TXT_LANG_CHANGED] = "Sprache geändert",
	[TXT_UNKNOWN] = "unbekannter Befehl",
	[TXT_BAD_CHAR] = "ungültiges Zeichen im Befehl",
	[TXT_SYNTAX] = "Syntaxfehler",
	[TXT_TOO_MANY] = "zu viele Argumente",
	[TXT_MISSING] = "Argument fehlt",
	[TXT_TOO_LONG] = "Zeile zu lang",
	[TXT_WRONG_STATE] = "Befehl in diesem Zustand nicht zulässig",
	[TXT_BAD_NUMBER] = "ungültige Nachrichtennummer",
	[TXT_NO_MESSAGE] = "Nachricht nicht vorhanden",
	[TXT_BAD_LINES] = "ungültige Zeilenzahl",
	[TXT_NO_USER] = "zuerst USER senden",
	[TXT_PLAINTEXT] = "Klartext-Anmeldung auf dieser Verbindung nicht "
			  "erlaubt",
	[TXT_NO_MECH] = "unbekanntes Authentifizierungsverfahren",
	[TXT_BAD_SASL] = "fehlerhafte Authentifizierungsdaten",
	[TXT_CANCELLED] = "Authentifizierung abgebrochen",
	[TXT_NO_TLS] = "TLS ist nicht verfügbar",
	[TXT_TLS_ACTIVE] = "TLS ist bereits aktiv",
	[TXT_AUTH_FAILED] = "Authentifizierung fehlgeschlagen",
	[TXT_TEMP_FAILURE] = "vorübergehender Fehler, bitte später erneut "
			     "versuchen",
	[TXT_LOGIN_CONFIG] = "Fehler in der Anmeldekonfiguration, bitte den "
			     "Administrator verständigen",
	[TXT_MD_IN_USE] = "Postfach ist von einer anderen Sitzung gesperrt",
	[TXT_MD_PERM] = "Postfach kann nicht geöffnet werden, bitte den "
			"Administrator verständigen",
	[TXT_UPDATE_FAILED] = "Nachrichten nicht gelöscht, bitte später "
			      "erneut versuchen",
	[TXT_UPDATE_PENDING] = "einige gelöschte Nachrichten sind noch nicht "
			       "entfernt, das geschieht bei der nächsten "
			       "Anmeldung",
	[TXT_UPDATE_PERM] = "Nachrichten nicht gelöscht, bitte den "
			    "Administrator verständigen",
	[TXT_BAD_COMMANDS] = "zu viele fehlerhafte Befehle, Verbindung wird "
			     "geschlossen",
	[TXT_BAD_UTF8] = "ungültiges UTF-8",
	[TXT_PROHIBITED] = "Benutzername oder Passwort enthält ein "
			   "unzulässiges Zeichen",
	[TXT_PREP_TOO_LONG] = "Benutzername oder Passwort zu lang",
	[TXT_STLS_AFTER_UTF8] = "STLS ist nach UTF8 nicht erlaubt",
	[TXT_NO_LANG] = "Sprache nicht verfügbar",
	[TXT_LOGIN_DELAY] = "zu kurz nach der letzten Anmeldung, bitte später "
			    "erneut versuchen",
};

static const struct {
	const char *tag; /* RFC 5646, as LANG names it */
	const char *self_name;
	const char *const *texts;
} langs[] = {
	{"en", "English", en},
	{"de", "Deutsch", de},
};

const size_t lang_count = sizeof(langs) / sizeof(langs[0]);

const char *
lang_tag(unsigned lang)
{
	return langs[lang].tag;
}

const char *
lang_self_name(unsigned lang)
{
	return langs[lang].self_name;
}

const char *
lang_format(unsigned lang, enum text_id id)
{
	return langs[lang].texts[id];
}

/* RFC 4647 §2.1: language-range = (1*8ALPHA *("-" 1*8alphanum)). The
 * wildcard "*" is the caller's. */
static bool
basic_range_ok(const char *r)
{
	size_t n = 0;
	bool first = true;

	for (;; r++) {
		if (*r == '-' || *r == '\0') {
			if (n == 0 || n > 8)
				return false;
			if (*r == '\0')
				return true;
			n = 0;
			first = false;
			continue;
		}
		if (first ? !isalpha((unsigned char)*r)
			  : !isalnum((unsigned char)*r))
			return false;
		n++;
	}
}

static int
find_tag(const char *t)
{
	for (size_t i = 0; i < lang_count; i++)
		if (strcasecmp(langs[i].tag, t) == 0)
			return (int)i;
	return -1;
}

/* R6856-13: RFC 4647 §3.4 lookup. Drop the last subtag until a tag
 * matches; a singleton left at the end ("x" of "x-private") goes with
 * the subtag after it. */
int
lang_lookup(const char *range)
{
	char r[LANG_RANGE_MAX + 1];
	size_t len = strlen(range);
	char *dash;
	int i;

	if (len > LANG_RANGE_MAX || !basic_range_ok(range))
		return -1;
	memcpy(r, range, len + 1);
	while ((i = find_tag(r)) < 0) {
		if ((dash = strrchr(r, '-')) == NULL)
			return -1;
		*dash = '\0';
		if ((dash = strrchr(r, '-')) != NULL && strlen(dash + 1) == 1)
			*dash = '\0';
	}
	return i;
}

bool
lang_conversions(const char *fmt, char *out, size_t cap)
{
	size_t n = 0, span;

	for (const char *p = fmt; (p = strchr(p, '%')) != NULL; p += span) {
		/* flags, width, precision, length, then the conversion */
		span = 1 + strspn(p + 1, "-+ #0123456789.*hljztL");
		if (p[span] == '\0')
			return false;
		span++;
		if (n + span + 1 > cap)
			return false;
		memcpy(out + n, p, span);
		n += span;
	}
	if (n + 1 > cap)
		return false;
	out[n] = '\0';
	return true;
}
