/* libFuzzer: the parsers RFC 6856 added, lang.c's lookup of a LANG range
 * (RFC 4647 §3.4) and utf8.c's preparation of UTF-8 USER and PASS
 * arguments (RFC 3629, SASLprep), on arbitrary octets.
 *
 * Input: a flag byte, then the string (up to its first NUL).
 *   flags bit 0: 0 a LANG range, 1 a USER/PASS argument;
 *   flags bits 1-7: for an argument, the buffer it is prepared in holds
 *                this many octets more than the string (0 to 127).
 *
 * Checks, against references written here from the RFCs:
 *   - lookup: a range that is not RFC 4647's basic range (1*8ALPHA
 *     *("-" 1*8alphanum)), or longer than LANG_RANGE_MAX, never matches;
 *     a match is a shipped tag that equals the range or a prefix of it
 *     ending at a "-", case-insensitively, and the longest such tag;
 *   - preparation: ASCII comes back unchanged; octets that are not UTF-8
 *     (Unicode Table 3-7) are MALFORMED and wiped; well-formed ones are
 *     never MALFORMED; a prepared string is non-empty, well-formed UTF-8,
 *     fits its buffer, has no C0 or C1 control or DEL, and preparing it
 *     again changes nothing (SASLprep is idempotent on its output);
 *     anything refused is wiped. */
#include "fuzz.h"

#include <ctype.h>
#include <strings.h>

#include "lang.h"
#include "params.h"
#include "utf8.h"

/* Unicode Table 3-7, byte by byte. */
static bool
ref_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		unsigned char lo = 0x80, hi = 0xbf;
		size_t k;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3;
		else
			return false;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		else if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		if (i + k >= n)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t j = 2; j <= k; j++)
			if (s[i + j] < 0x80 || s[i + j] > 0xbf)
				return false;
		i += k + 1;
	}
	return true;
}

static bool
ref_basic_range(const char *r)
{
	size_t n = 0, subtags = 0;

	for (;; r++) {
		if (*r == '-' || *r == '\0') {
			if (n < 1 || n > 8)
				return false;
			subtags++;
			n = 0;
			if (*r == '\0')
				return true;
			continue;
		}
		if (subtags == 0 ? !isalpha((unsigned char)*r)
				 : !isalnum((unsigned char)*r))
			return false;
		n++;
	}
}

/* The longest shipped tag that is the range or a "-"-bounded prefix. */
static int
ref_lookup(const char *r)
{
	size_t best_len = 0;
	int best = -1;

	if (strlen(r) > LANG_RANGE_MAX || !ref_basic_range(r))
		return -1;
	for (unsigned i = 0; i < lang_count; i++) {
		size_t t = strlen(lang_tag(i));

		if (strncasecmp(r, lang_tag(i), t) == 0 &&
		    (r[t] == '\0' || r[t] == '-') && t > best_len) {
			best = (int)i;
			best_len = t;
		}
	}
	return best;
}

static void
fuzz_lookup(const char *r)
{
	int got = lang_lookup(r), want = ref_lookup(r);

	check(got == want, "lookup \"%s\": %d, reference %d", r, got, want);
}

static bool
all_zero(const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != '\0')
			return false;
	return true;
}

static void
fuzz_prep(const char *in, size_t len, size_t extra)
{
	size_t cap = len + 1 + extra;
	char *buf = malloc(cap), *again;
	enum utf8_prep r;
	bool ascii = true;

	check(buf != NULL, "out of memory");
	memcpy(buf, in, len + 1);
	for (size_t i = 0; i < len; i++)
		ascii = ascii && (unsigned char)in[i] < 0x80;
	r = utf8_prep(buf, cap);
	if (ascii) {
		check(r == UTF8_PREP_OK && strcmp(buf, in) == 0,
		      "ASCII changed: %d", r);
	} else if (!ref_utf8((const unsigned char *)in, len)) {
		check(r == UTF8_PREP_MALFORMED, "malformed input: %d", r);
	} else {
		check(r != UTF8_PREP_MALFORMED, "well-formed input refused");
	}
	if (r != UTF8_PREP_OK) {
		check(all_zero(buf, cap), "refused input not wiped");
		free(buf);
		return;
	}
	len = strlen(buf);
	check(len < cap, "prepared string overflows");
	check(ascii || len > 0, "prepared to nothing");
	check(ref_utf8((const unsigned char *)buf, len),
	      "prepared string is not UTF-8");
	for (size_t i = 0; !ascii && i < len; i++) {
		unsigned char c = buf[i];

		check(c >= 0x20 && c != 0x7f, "control in the prepared string");
		check(!(c == 0xc2 && i + 1 < len &&
			(unsigned char)buf[i + 1] < 0xa0),
		      "C1 control in the prepared string");
	}
	again = malloc(cap);
	check(again != NULL, "out of memory");
	memcpy(again, buf, len + 1);
	check(utf8_prep(again, cap) == UTF8_PREP_OK && strcmp(again, buf) == 0,
	      "preparation not idempotent");
	free(again);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	size_t len;

	if (size < 1 || size > 4096)
		return 0;
	s = malloc(size);
	check(s != NULL, "out of memory");
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	len = strlen(s);
	if (data[0] & 1)
		fuzz_prep(s, len, data[0] >> 1);
	else
		fuzz_lookup(s);
	free(s);
	return 0;
}
