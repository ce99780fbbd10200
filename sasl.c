#include "sasl.h"

#include <stdint.h>
#include <string.h>

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
base64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	size_t pad = 0, n = 0;
	uint32_t quad;
	int v;

	if (len % 4 != 0)
		return -1;
	if (len > 0 && in[len - 1] == '=')
		pad = len > 1 && in[len - 2] == '=' ? 2 : 1;
	if (len / 4 * 3 - pad > cap)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		quad = 0;
		for (size_t j = 0; j < 4; j++) {
			bool last = i + 4 == len;

			if (last && j >= 4 - pad) {
				quad <<= 6;
				continue;
			}
			if ((v = b64_value(in[i + j])) < 0)
				return -1;
			quad = quad << 6 | v;
		}
		out[n++] = quad >> 16;
		if (i + 4 < len || pad < 2)
			out[n++] = quad >> 8;
		if (i + 4 < len || pad < 1)
			out[n++] = quad;
		/* Non-zero pad bits mean the encoder was broken or the
		 * text was tampered with: not canonical, refused. */
		if (i + 4 == len && (pad == 1	? (quad & 0xff) != 0
				     : pad == 2 ? (quad & 0xffff) != 0
						: false))
			return -1;
	}
	return n;
}

void
base64_encode(const unsigned char *in, size_t n, char *out)
{
	static const char a[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789+/";
	uint32_t v;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)in[i] << 16 | in[i + 1] << 8 | in[i + 2];
		*out++ = a[v >> 18];
		*out++ = a[v >> 12 & 63];
		*out++ = a[v >> 6 & 63];
		*out++ = a[v & 63];
	}
	if (i < n) {
		v = (uint32_t)in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0);
		*out++ = a[v >> 18];
		*out++ = a[v >> 12 & 63];
		*out++ = i + 1 < n ? a[v >> 6 & 63] : '=';
		*out++ = '=';
	}
	*out = '\0';
}

bool
utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0, n;
	uint32_t cp, min;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			n = 1, cp = s[i] & 0x1f, min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 2, cp = s[i] & 0x0f, min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 3, cp = s[i] & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n >= len - i)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static bool
take_field(const unsigned char *p, size_t len, bool may_be_empty,
	   char out[SASL_FIELD_MAX + 1])
{
	if ((len == 0 && !may_be_empty) || len > SASL_FIELD_MAX ||
	    !utf8_valid(p, len))
		return false;
	memcpy(out, p, len);
	out[len] = '\0';
	return true;
}

bool
sasl_plain_parse(const unsigned char *msg, size_t len, struct sasl_plain *p)
{
	const unsigned char *nul1, *nul2, *end = msg + len;

	/* Whole fields get copied on: no octet after a terminator may be
	 * left undefined. */
	memset(p, 0, sizeof(*p));
	nul1 = memchr(msg, '\0', len);
	if (nul1 == NULL)
		return false;
	nul2 = memchr(nul1 + 1, '\0', end - nul1 - 1);
	if (nul2 == NULL || memchr(nul2 + 1, '\0', end - nul2 - 1) != NULL)
		return false;
	return take_field(msg, nul1 - msg, true, p->authzid) &&
	       take_field(nul1 + 1, nul2 - nul1 - 1, false, p->authcid) &&
	       take_field(nul2 + 1, end - nul2 - 1, false, p->passwd);
}
