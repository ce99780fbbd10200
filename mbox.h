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
#include "params.h"
#include "uidl.h"

/* Offsets are off_t throughout: built without -D_FILE_OFFSET_BITS=64 on
 * a 32-bit system, spools past 2 GiB would fail with EOVERFLOW. */
_Static_assert(sizeof(off_t) == 8, "off_t must be 64 bits");

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
	struct span_hash hash;
	size_t hpos;
	off_t hash_stop; /* nothing at or past this offset is hashed */
};

/* What the parse keeps of each message: 56 octets (issue 12: at most 100
 * per message at the peak of a login, UIDL included). Offsets are 64-bit
 * wherever a spool may need them; what lies within the header section
 * or counts lines is 32-bit. */
struct message {
	off_t from;	     /* the From_ line */
	off_t start;	     /* first octet of the message proper */
	off_t end;	     /* one past the message (separator excluded) */
	off_t next;	     /* the next From_ line, or the parse limit */
	uint64_t size;	     /* octets in CRLF form (R1939-38) */
	uint32_t hdr_len;    /* the header section and its blank line */
	uint32_t body_lines; /* for TOP; MBOX_LINES_MANY: that many or more */
	uint32_t content;    /* span_hash of [start, next), its first
				CONTENT_HASH_SPAN octets */
	uint8_t blank_len;   /* the blank line after the headers: 0, 1 or 2 */
	bool deleted;
};

#define MBOX_LINES_MANY UINT32_MAX

/* The window a reader is given must hold a line's look-ahead and the
 * octets the body scan looks back at. */
#define READER_HISTORY 8
#define READER_MIN_CAP (LINE_LOOKAHEAD + READER_HISTORY)

/* First body octet, or end if there is no blank line. */
static inline off_t
mbox_body(const struct message *m)
{
	return m->start + m->hdr_len;
}

/* The blank line ending the headers, or end. */
static inline off_t
mbox_hdr_end(const struct message *m)
{
	return mbox_body(m) - m->blank_len;
}

/* Start reading fd at offset, never at or past limit, through buf. */
void reader_init(struct reader *r, int fd, char *buf, size_t cap, off_t offset,
		 off_t limit);

/* True if the reader is at limit (or the file ended early). */
bool reader_at_end(struct reader *r);

/* Does the data at the reader's position start with "From "? */
bool reader_at_from_line(struct reader *r);

/* Parse the message whose From_ line is at the reader's position,
 * leaving the reader at the next From_ line or at its limit. Fills m,
 * the digest of u, and *xuidl_r (its X-UIDL value malloc'ed, or NULL).
 * Returns 0, -1 on a read error (r->error), or -2 if the header section
 * is 4 GiB or more (struct message has no room for it). */
int mbox_parse_message(struct reader *r, struct uidl_hasher *h,
		       struct message *m, struct uidl_entry *u, char **xuidl_r);

/* Where the mail an MDA appended at p[0..n) starts: past the blank lines
 * (LF or CRLF) it may write first, when the message before lacked its
 * own. Their length if a From_ line follows within n octets, else -1
 * (not the start of a new message). UPDATE (tail_start) and recovery
 * (journal.c, later_start) drop those lines with a deleted last message. */
ssize_t mbox_appended_from(const char *p, size_t n);

/* Scan bodies the portable way even where the CPU has AVX2 (the tests
 * and the fuzzer compare the two ways; pop3d never calls it). */
void mbox_portable_scan(bool on);

#endif
