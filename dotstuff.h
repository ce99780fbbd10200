/* Encode a message as the body of a POP3 multi-line reply (RFC 1939 §3):
 * every line ends in CRLF (a bare LF becomes CRLF), a line that starts
 * with "." gets another ".", a missing final line end is added, and the
 * terminating ".CRLF" follows. Input may arrive in pieces of any size.
 *
 * The encoding is gathered in a buffer and handed to the writer in large
 * blocks; everything fed is handed on before dotstuff_feed returns, so a
 * failed write is reported by the call that caused it. */
#ifndef POP3D_DOTSTUFF_H
#define POP3D_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>

#include "params.h"

/* Where encoded output goes; returns 0 or -1 to stop. */
typedef int (*dotstuff_write_fn)(void *ctx, const void *data, size_t len);

struct dotstuff {
	dotstuff_write_fn write;
	void *ctx;
	bool line_start; /* the next byte begins a line */
	bool prev_cr;	 /* the last byte fed was CR */
	bool failed;	 /* the writer failed: nothing more is written */
	size_t out_len;
	char out[DOTSTUFF_BUFFER_SIZE];
};

void dotstuff_init(struct dotstuff *ds, dotstuff_write_fn write, void *ctx);

/* Feed raw message bytes. Returns 0, or -1 if the writer failed (now or
 * before). */
int dotstuff_feed(struct dotstuff *ds, const char *data, size_t len);

/* dotstuff_feed with the signature of a maildrop sink (maildrop.h), so
 * that message bytes go from the maildrop to the encoder directly. ds is
 * a struct dotstuff. */
int dotstuff_sink(void *ds, const char *data, size_t len);

/* Close the line if needed and write the terminator. Returns 0 or -1. */
int dotstuff_finish(struct dotstuff *ds);

#endif
