#include "mbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hash.h"
#include "params.h"
#include "sysutil.h"

void
reader_init(struct reader *r, int fd, char *buf, size_t cap, off_t offset,
	    off_t limit)
{
	*r = (struct reader){.fd = fd,
			     .buf = buf,
			     .cap = cap,
			     .base = offset,
			     .limit = limit};
}

static off_t
reader_offset(const struct reader *r)
{
	return r->base + (off_t)r->pos;
}

/* Hash what has been consumed since the last call. */
static void
reader_hash(struct reader *r)
{
	if (r->hashing && r->pos > r->hpos)
		hash_update(&r->hash, r->buf + r->hpos, r->pos - r->hpos);
	r->hpos = r->pos;
}

/* Make at least want bytes available at pos (fewer only at the limit or
 * on an error) and return how many there are. Reads a whole buffer's
 * worth at a time. */
static size_t
reader_fill(struct reader *r, size_t want)
{
	off_t left;
	size_t room;
	ssize_t n;

	if (r->len - r->pos >= want)
		return r->len - r->pos;
	if (r->pos > 0) {
		reader_hash(r);
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->base += r->pos;
		r->len -= r->pos;
		r->pos = r->hpos = 0;
	}
	while (r->len < want && !r->short_file && r->error == 0) {
		left = r->limit - (r->base + (off_t)r->len);
		if (left <= 0)
			break;
		room = r->cap - r->len;
		if ((off_t)room > left)
			room = left;
		n = sys_pread_full(r->fd, r->buf + r->len, room,
				   r->base + r->len);
		if (n < 0) {
			r->error = errno;
			break;
		}
		r->len += n;
		if ((size_t)n < room)
			r->short_file = true;
	}
	return r->len - r->pos;
}

bool
reader_at_end(struct reader *r)
{
	return reader_fill(r, 1) == 0;
}

bool
reader_at_from_line(struct reader *r)
{
	return reader_fill(r, 5) >= 5 &&
	       memcmp(r->buf + r->pos, "From ", 5) == 0;
}

typedef void (*segment_fn)(void *ctx, const char *p, size_t n);

/* Consume the rest of the current line, handing each piece to fn.
 * Returns its length; *lf_r tells whether it ended in LF (not so only at
 * the limit), *cr_r whether a CR stood right before that LF. */
static uint64_t
reader_line(struct reader *r, bool *lf_r, bool *cr_r, segment_fn fn, void *ctx)
{
	uint64_t total = 0;
	char last = '\0';
	size_t avail, n;
	char *p, *lf;

	*lf_r = *cr_r = false;
	for (;;) {
		avail = r->len - r->pos;
		if (avail == 0 && (avail = reader_fill(r, 1)) == 0)
			return total;
		p = r->buf + r->pos;
		lf = memchr(p, '\n', avail);
		n = lf != NULL ? (size_t)(lf - p) + 1 : avail;
		if (fn != NULL)
			fn(ctx, p, n);
		r->pos += n;
		total += n;
		if (lf != NULL) {
			*lf_r = true;
			*cr_r = n >= 2 ? lf[-1] == '\r' : last == '\r';
			return total;
		}
		last = p[n - 1];
	}
}

/* Which header fields go into the UIDL digest (design.md §4). */
struct headers {
	struct uidl_hasher *h;
	bool fallback;	    /* all fields but those MUAs rewrite */
	bool include;	    /* the current field is hashed */
	bool received_seen; /* the first Received: is behind us */
	bool selected_any;
	bool held_cr; /* a CR ended the last piece; LF may follow */
	char *xuidl;
};

static bool
name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

static bool
rewritten_by_muas(const char *name, size_t len)
{
	static const char *const fields[] = {
		"Status",	  "X-Status", "X-Keywords", "X-UID",
		"Content-Length", "Lines",    "X-UIDL",
	};

	if (len >= 6 && strncasecmp(name, "X-IMAP", 6) == 0)
		return true;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (name_is(name, len, fields[i]))
			return true;
	return false;
}

static bool
selected(struct headers *hs, const char *name, size_t len)
{
	bool above_received = !hs->received_seen;

	if (name_is(name, len, "Received")) {
		hs->received_seen = true;
		return above_received;
	}
	if (name_is(name, len, "Delivered-To") ||
	    name_is(name, len, "X-Delivery-ID"))
		return true;
	if (name_is(name, len, "Date") || name_is(name, len, "Message-ID"))
		return above_received;
	return false;
}

/* Keep the first X-UIDL value if it is whole in the look-ahead window
 * and valid (a migrated qpopper or Dovecot id, R1939-50). */
static void
take_xuidl(struct headers *hs, const char *p, size_t avail, size_t colon)
{
	const char *v = p + colon + 1, *e = memchr(p, '\n', avail);

	if (hs->xuidl != NULL || e == NULL)
		return;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (uidl_valid(v, e - v))
		hs->xuidl = strndup(v, e - v);
}

/* A header line begins at p: decide whether it is hashed. Only the
 * first LINE_LOOKAHEAD octets count, however many the buffer happens to
 * hold: the verdict (and so the uid) must not depend on where a read
 * started, or a re-parse from another offset would disagree. */
static void
header_line(struct headers *hs, const char *p, size_t avail)
{
	const char *colon, *eol;
	size_t len;

	hs->held_cr = false;
	if (avail > LINE_LOOKAHEAD)
		avail = LINE_LOOKAHEAD;
	if (p[0] == ' ' || p[0] == '\t')
		return; /* a folded line belongs to the field above */
	/* Look no further than this line: what follows it must not change
	 * the verdict, or a re-parse that sees less could disagree. */
	eol = memchr(p, '\n', avail);
	colon = memchr(p, ':', eol != NULL ? (size_t)(eol - p) : avail);
	if (colon == NULL) {
		hs->include = hs->fallback;
		return;
	}
	len = colon - p;
	if (hs->fallback) {
		hs->include = !rewritten_by_muas(p, len);
		return;
	}
	hs->include = selected(hs, p, len);
	hs->selected_any |= hs->include;
	if (name_is(p, len, "X-UIDL"))
		take_xuidl(hs, p, avail, len);
}

/* Hash a piece of an included line, with CRLF read as LF so that the id
 * does not depend on how the spool stores line ends. A CR at the end of
 * a piece waits to see what follows, so the result does not depend on
 * where pieces are cut either. */
static void
header_piece(void *ctx, const char *p, size_t n)
{
	struct headers *hs = ctx;

	if (!hs->include || n == 0)
		return;
	if (hs->held_cr && p[0] != '\n')
		uidl_hasher_update(hs->h, "\r", 1);
	hs->held_cr = false;
	if (n >= 2 && p[n - 1] == '\n' && p[n - 2] == '\r') {
		uidl_hasher_update(hs->h, p, n - 2);
		uidl_hasher_update(hs->h, "\n", 1);
	} else if (p[n - 1] == '\r') {
		uidl_hasher_update(hs->h, p, n - 1);
		hs->held_cr = true;
	} else {
		uidl_hasher_update(hs->h, p, n);
	}
}

/* No selected field: hash the From_ line and every header MUAs leave
 * alone. Rare (mail that never passed an MTA), so a second read of the
 * headers is cheaper than hashing everything for every message. */
static int
digest_fallback(int fd, const struct message *m, struct uidl_hasher *h)
{
	struct headers hs = {.h = h, .fallback = true, .include = true};
	char buf[HEADER_REREAD_SIZE];
	struct reader r;
	bool lf, cr;
	size_t avail;

	reader_init(&r, fd, buf, sizeof(buf), m->from, m->hdr_end);
	uidl_hasher_reset(h);
	reader_line(&r, &lf, &cr, header_piece, &hs);
	while ((avail = reader_fill(&r, LINE_LOOKAHEAD)) > 0) {
		header_line(&hs, r.buf + r.pos, avail);
		reader_line(&r, &lf, &cr, header_piece, &hs);
	}
	return r.error != 0 || r.short_file ? -1 : 0;
}

static bool
blank_line(const char *p, size_t avail)
{
	return p[0] == '\n' || (avail >= 2 && p[0] == '\r' && p[1] == '\n');
}

/* Skip the From_ line and start the content hash at the message. */
static void
begin_message(struct reader *r, struct uidl_hasher *h, struct message *m)
{
	bool lf, cr;

	memset(m, 0, sizeof(*m));
	m->from = reader_offset(r);
	m->hdr_end = -1;
	uidl_hasher_reset(h);
	reader_line(r, &lf, &cr, NULL, NULL);
	m->start = reader_offset(r);
	memset(&r->hash, 0, sizeof(r->hash));
	r->hashing = true;
	r->hpos = r->pos;
}

/* At the next From_ line or the limit. A last blank line (at blank_off,
 * or -1 if none) is the separator mbox writers put after every message,
 * not part of it. */
static void
end_message(struct reader *r, struct message *m, off_t blank_off)
{
	m->next = reader_offset(r);
	m->end = blank_off >= 0 ? blank_off : m->next;
	reader_hash(r);
	r->hashing = false;
	m->content = hash_final(&r->hash);
	if (m->hdr_end < 0)
		m->hdr_end = m->body = m->end;
}

int
mbox_parse_message(struct reader *r, struct uidl_hasher *h, struct message *m,
		   struct uidl_entry *u)
{
	struct headers hs = {.h = h};
	bool in_headers = true, blank = false, lf, cr;
	off_t blank_off = 0;
	uint64_t len;
	size_t avail;
	const char *p;

	begin_message(r, h, m);
	while ((avail = reader_fill(r, LINE_LOOKAHEAD)) > 0) {
		p = r->buf + r->pos;
		if (blank) {
			/* A blank line before a From_ line separates
			 * messages; anywhere else it is content. */
			if (avail >= 5 && memcmp(p, "From ", 5) == 0)
				break;
			blank = false;
			m->size += 2;
			if (in_headers) {
				in_headers = false;
				m->hdr_end = blank_off;
				m->body = reader_offset(r);
			} else {
				m->body_lines++;
			}
		}
		if (blank_line(p, avail)) {
			blank = true;
			blank_off = reader_offset(r);
			r->pos += p[0] == '\n' ? 1 : 2;
			continue;
		}
		if (in_headers)
			header_line(&hs, p, avail);
		else
			m->body_lines++;
		len = reader_line(r, &lf, &cr, in_headers ? header_piece : NULL,
				  &hs);
		/* R1939-38: a bare LF goes out as CRLF, and a missing
		 * final line end is added. */
		m->size += len + (lf && !cr) + (lf ? 0 : 2);
	}
	end_message(r, m, blank ? blank_off : -1);
	u->xuidl = hs.xuidl;
	if (r->error != 0)
		return -1;
	if (!hs.selected_any && digest_fallback(r->fd, m, h) < 0) {
		r->error = EIO;
		return -1;
	}
	uidl_hasher_final(h, u->digest);
	return 0;
}
