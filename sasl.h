/* SASL pieces for AUTH (RFC 5034): strict base64 (RFC 4648 as RFC 4954
 * §4 uses it) and the PLAIN message (RFC 4616). */
#ifndef POP3D_SASL_H
#define POP3D_SASL_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 4616 §2: each field up to 255 octets. */
#define SASL_FIELD_MAX 255

/* Decode base64 strictly (R5034-11): length a multiple of 4, only
 * A-Z a-z 0-9 + /, "=" only as one or two final pad characters, and
 * zero pad bits. Returns the decoded length, or -1 if in is not such
 * base64 or the result would not fit in cap octets. */
long base64_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* Encode n octets; out must hold 4 * ((n + 2) / 3) + 1 characters. */
void base64_encode(const unsigned char *in, size_t n, char *out);

/* True if s[0..len) is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
bool utf8_valid(const unsigned char *s, size_t len);

struct sasl_plain {
	char authzid[SASL_FIELD_MAX + 1];
	char authcid[SASL_FIELD_MAX + 1];
	char passwd[SASL_FIELD_MAX + 1];
};

/* Split a decoded PLAIN message "[authzid] NUL authcid NUL passwd"
 * (R4616-01..03): exactly two NULs, authcid and passwd not empty, each
 * field at most 255 octets of valid UTF-8. Returns false otherwise. */
bool sasl_plain_parse(const unsigned char *msg, size_t len,
		      struct sasl_plain *p);

#endif
