/* The mbox format, read in bounded chunks: where messages begin and end,
 * their CRLF sizes, the facts TOP needs, and the header digest for UIDL.
 * Lines are never held whole (no line length limit; NUL bytes are data). */
#ifndef POP3D_MBOX_H
#define POP3D_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hash.h"
#include "uidl.h"

/* A window on the file, refilled with pread as parsing moves on. */
struct reader {
	int fd;
	char *buf;
	size_t cap;
	off_t base;	 /* file offset of buf[0] */
	size_t pos, len; /* parse position and valid bytes in buf */
	off_t limit;	 /* never read at or past this offset */
	bool short_file; /* the file ended before limit */
	int error;	 /* errno of a failed read, or 0 */
	bool hashing;	 /* consumed octets go into hash, from hpos */
	struct content_hash hash;
	size_t hpos;
	off_t hash_stop; /* nothing at or past this offset is hashed */
};

struct message {
	off_t from;    /* the From_ line */
	off_t start;   /* first octet of the message proper */
	off_t hdr_end; /* the blank line ending the headers, or end */
	off_t body;    /* first body octet, or end if no blank line */
	off_t end;     /* one past the message (separator excluded) */
	off_t next;    /* the next From_ line, or the parse limit */
	uint64_t size; /* octets in CRLF form (R1939-38) */
	uint64_t body_lines;
	uint64_t content; /* content_hash of [start, next) */
	bool deleted;
};

/* Start reading fd at offset, never at or past limit, through buf. */
void reader_init(struct reader *r, int fd, char *buf, size_t cap, off_t offset,
		 off_t limit);

/* True if the reader is at limit (or the file ended early). */
bool reader_at_end(struct reader *r);

/* Does the data at the reader's position start with "From "? */
bool reader_at_from_line(struct reader *r);

/* Parse the message whose From_ line is at the reader's position,
 * leaving the reader at the next From_ line or at its limit. Fills m and
 * the digest and X-UIDL of u (the X-UIDL value malloc'ed, or NULL).
 * Returns 0, or -1 on a read error (r->error) or out of memory. */
int mbox_parse_message(struct reader *r, struct uidl_hasher *h,
		       struct message *m, struct uidl_entry *u);

#endif
