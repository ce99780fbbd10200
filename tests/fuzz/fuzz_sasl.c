/* libFuzzer: sasl.c (base64, UTF-8, SASL PLAIN) against reference
 * implementations written here from the RFCs, independently of sasl.c.
 *
 * Input: one selector byte (the decode buffer's size), then the data.
 *   - base64_decode into a buffer of exactly cap octets (ASan sees any
 *     overrun) must agree with the reference on accept/refuse and bytes;
 *     what it accepts must encode back to the very same text (strict
 *     base64 has one spelling per octet string).
 *   - base64_encode of the data must decode back to the data.
 *   - utf8_valid must agree with Unicode's table of well-formed
 *     sequences (Table 3-7).
 *   - sasl_plain_parse must agree with RFC 4616 as sasl.h states it, on
 *     the data and on what the data decodes to (as AUTH PLAIN does). */
#include "fuzz.h"

#include "sasl.h"

/* --- references ---------------------------------------------------------- */

static int
ref_b64(unsigned char c)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				"abcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c != '\0' ? strchr(a, c) : NULL;

	return p != NULL ? (int)(p - a) : -1;
}

/* RFC 4648 §4 with RFC 4954's strictness: whole quanta, pad only at the
 * end, zero pad bits. */
static long
ref_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	size_t n = 0;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		const unsigned char *q = (const unsigned char *)in + i;
		bool last = i + 4 == len;
		int v[4], pad = 0;

		for (int j = 0; j < 4; j++) {
			v[j] = ref_b64(q[j]);
			if (v[j] < 0) {
				if (q[j] != '=' || !last || j < 2)
					return -1;
				pad++;
				v[j] = 0;
			} else if (pad > 0) {
				return -1; /* "=" then a letter: "AB=C" */
			}
		}
		if (pad == 2 && ((v[1] & 0x0f) != 0))
			return -1;
		if (pad == 1 && ((v[2] & 0x03) != 0))
			return -1;
		if (n + 3 - pad > cap)
			return -1;
		out[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[n++] =
				(unsigned char)((v[1] & 0x0f) << 4 | v[2] >> 2);
		if (pad < 1)
			out[n++] = (unsigned char)((v[2] & 0x03) << 6 | v[3]);
	}
	return (long)n;
}

/* The Unicode Standard, Table 3-7: well-formed UTF-8 byte sequences. */
static bool
ref_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		unsigned char lo = 0x80, hi = 0xbf;
		size_t more;

		if (c <= 0x7f) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			more = 1;
		else if (c == 0xe0)
			more = 2, lo = 0xa0;
		else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
			more = 2;
		else if (c == 0xed)
			more = 2, hi = 0x9f;
		else if (c == 0xf0)
			more = 3, lo = 0x90;
		else if (c >= 0xf1 && c <= 0xf3)
			more = 3;
		else if (c == 0xf4)
			more = 3, hi = 0x8f;
		else
			return false;
		if (len - i - 1 < more)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= more; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += more + 1;
	}
	return true;
}

struct ref_plain {
	bool ok;
	const unsigned char *f[3];
	size_t n[3];
};

/* [authzid] NUL authcid NUL passwd: exactly two NULs, authcid and passwd
 * not empty, every field 0-255 octets of UTF-8. */
static struct ref_plain
ref_plain_parse(const unsigned char *msg, size_t len)
{
	struct ref_plain r = {0};
	size_t field = 0, start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && msg[i] != '\0')
			continue;
		if (field == 3)
			return r; /* a third NUL */
		r.f[field] = msg + start;
		r.n[field] = i - start;
		field++;
		start = i + 1;
	}
	if (field != 3 || r.n[1] == 0 || r.n[2] == 0)
		return r;
	for (int k = 0; k < 3; k++)
		if (r.n[k] > SASL_FIELD_MAX || !ref_utf8_valid(r.f[k], r.n[k]))
			return r;
	r.ok = true;
	return r;
}

/* --- checks --------------------------------------------------------------- */

static void
check_plain(const unsigned char *msg, size_t len)
{
	struct ref_plain want = ref_plain_parse(msg, len);
	struct sasl_plain *p = malloc(sizeof(*p));
	const char *got[3];
	bool ok;

	check(p != NULL, "out of memory");
	memset(p, 0xa5, sizeof(*p));
	ok = sasl_plain_parse(msg, len, p);
	check(ok == want.ok, "sasl_plain_parse says %d, RFC 4616 says %d", ok,
	      want.ok);
	if (ok) {
		got[0] = p->authzid, got[1] = p->authcid, got[2] = p->passwd;
		for (int k = 0; k < 3; k++)
			check(bytes_eq(got[k], strlen(got[k]), want.f[k],
				       want.n[k]),
			      "sasl_plain_parse: field %d differs", k);
	}
	free(p);
}

static void
check_decode(const char *text, size_t len, size_t cap)
{
	/* Exactly cap octets: ASan flags a write past them. */
	unsigned char *out = malloc(cap);
	unsigned char *ref = malloc(len / 4 * 3 + 1);
	char *again;
	long n, want;

	check((out != NULL || cap == 0) && ref != NULL, "out of memory");
	n = base64_decode(text, len, out, cap);
	want = ref_base64_decode(text, len, ref, cap);
	check(n == want, "base64_decode(len %zu, cap %zu) = %ld, want %ld", len,
	      cap, n, want);
	if (n >= 0) {
		check(bytes_eq(out, n, ref, n), "base64_decode: wrong octets");
		/* One spelling per octet string: it encodes back. */
		again = malloc(4 * ((n + 2) / 3) + 1);
		check(again != NULL, "out of memory");
		base64_encode(out, n, again);
		check(bytes_eq(again, strlen(again), text, len),
		      "base64 round trip: decoded text does not re-encode "
		      "to itself");
		free(again);
		check_plain(out, n);
	}
	free(out);
	free(ref);
}

static void
check_encode(const unsigned char *data, size_t size)
{
	size_t elen = 4 * ((size + 2) / 3);
	char *text = malloc(elen + 1);
	unsigned char *back = malloc(size > 0 ? size : 1);
	long n;

	check(text != NULL && back != NULL, "out of memory");
	memset(text, 0x5a, elen + 1);
	base64_encode(data, size, text);
	check(text[elen] == '\0' && strlen(text) == elen,
	      "base64_encode: %zu octets gave %zu characters, want %zu", size,
	      strlen(text), elen);
	n = base64_decode(text, elen, back, size);
	check(n == (long)size && bytes_eq(back, n, data, size),
	      "base64 round trip: encode then decode lost the data");
	/* One octet short of room: refused, nothing written past it. */
	if (size > 0)
		check(base64_decode(text, elen, back, size - 1) == -1,
		      "base64_decode wrote past its capacity");
	free(text);
	free(back);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *in;
	size_t len, cap;
	char *text;

	if (size < 1)
		return 0;
	/* The capacities AUTH uses (login_field, auth_plain), an exact
	 * fit, or a small one. */
	switch (data[0] >> 6) {
	case 0:
		cap = SASL_FIELD_MAX;
		break;
	case 1:
		cap = 3 * (SASL_FIELD_MAX + 1);
		break;
	case 2:
		cap = (size - 1) / 4 * 3;
		break;
	default:
		cap = data[0] & 0x3f;
		break;
	}
	in = data + 1;
	len = size - 1;
	/* base64_decode reads exactly len characters: an unterminated
	 * copy lets ASan see a read past them. */
	text = malloc(len > 0 ? len : 1);
	check(text != NULL, "out of memory");
	memcpy(text, in, len);
	check_decode(text, len, cap);
	free(text);
	check_encode(in, len);
	check(utf8_valid(in, len) == ref_utf8_valid(in, len),
	      "utf8_valid says %d, Unicode Table 3-7 says %d",
	      utf8_valid(in, len), ref_utf8_valid(in, len));
	check_plain(in, len);
	return 0;
}
