/* Buffered, bounded I/O on the client connection.
 *
 * Input is read ahead into a fixed buffer and handed out a line at a time
 * (pipelining, RFC 2449 §6.6). Output is batched and written only when the
 * buffer fills or the reader runs out of complete lines, so a burst of
 * pipelined commands costs one write. Every wait is bounded by the idle
 * timeout, and while output is blocked, input keeps being drained so a
 * client that writes before it reads cannot deadlock us (R2449-16). */
#ifndef POP3D_NETIO_H
#define POP3D_NETIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "params.h"

enum net_status {
	NET_OK,
	NET_TOO_LONG, /* line over the limit; the rest of it is dropped */
	NET_EOF,
	NET_TIMEOUT,
	NET_ERROR,
};

struct tls_conn;

struct netio {
	int in_fd, out_fd;
	struct tls_conn *tls; /* NULL: plain read(2)/write(2) */
	int timeout_ms;
	int64_t deadline_ms; /* monotonic; 0: none */
	bool in_eof;
	bool in_recv;	 /* sockets, waiting in recv(2): net_wait_in_recv */
	bool discarding; /* inside an overlong line, up to its LF */
	enum net_status out_failed; /* NET_OK until a write fails */
	size_t in_start, in_len;
	size_t out_len;
	char in[INPUT_BUFFER_SIZE];
	char out[OUTPUT_BUFFER_SIZE];
};

void net_init(struct netio *io, int in_fd, int out_fd, unsigned timeout_s);

/* For a session past login (no TLS in this process, no deadline): if
 * both descriptors are stream sockets, wait for each command inside
 * recv(2), bounded by SO_RCVTIMEO, instead of in poll(2) before a read:
 * one system call fewer per command. Returns 0 if it now does, -1 if it
 * keeps polling (pipes; anything refused). */
int net_wait_in_recv(struct netio *io);

/* Read one line. On NET_OK, line holds it without CR LF (a bare LF also
 * ends a line, DEC-01), NUL-terminated, and *len_r its length (it may
 * contain NULs). max counts the octets of the line including CRLF. */
enum net_status net_read_line(struct netio *io, char *line, size_t max,
			      size_t *len_r);

/* Queue output. Returns 0, or -1 once the connection has failed (the
 * cause is in io->out_failed); later calls keep failing. */
int net_write(struct netio *io, const void *data, size_t len);

/* Queue one reply line, CRLF added, cut to REPLY_LINE_MAX octets. */
int net_reply(struct netio *io, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* net_write with the signature of a dotstuff writer (dotstuff.h), so that
 * an encoded message goes to the client without a detour. io is a
 * struct netio. */
int net_sink(void *io, const void *data, size_t len);

/* Write out everything queued. Returns 0 or -1 as net_write. */
int net_flush(struct netio *io);

/* Give up waiting altogether after this many seconds from now (the
 * pre-login time limit), whatever the idle timer says. */
void net_set_deadline(struct netio *io, unsigned seconds);

/* How long the next wait may take, in ms: the idle timeout, or less if
 * the deadline is nearer. */
int net_wait_ms(const struct netio *io);

/* Run the TLS server handshake (STLS, or implicit TLS before the
 * greeting), bounded by net_wait_ms, and talk through TLS from then on.
 * Input read ahead is wiped unread first: octets sent before the
 * handshake are never run (R2595-10). Returns 0, or -1 after logging why;
 * the caller ends the session, never falling back to plaintext
 * (R2595-13). */
int net_start_tls(struct netio *io);

/* Hand over the input read ahead (pipelined commands after a login):
 * copy at most size octets to buf, wipe our copy, return the count. */
size_t net_take_input(struct netio *io, char *buf, size_t size);

/* Put input read by another process in front of what we read next.
 * Returns 0, or -1 if it does not fit. */
int net_preload(struct netio *io, const char *data, size_t len);

#endif
