#include "mbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
/* The body scan's AVX2 way, chosen at run time (x86-64 CPUs since 2013;
 * Debian's baseline is SSE2). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MBOX_AVX2
#include <immintrin.h>
#endif

#include "hash.h"
#include "log.h"
#include "params.h"
#include "sysutil.h"

void
reader_init(struct reader *r, int fd, char *buf, size_t cap, off_t offset,
	    off_t limit)
{
	if (cap < READER_MIN_CAP)
		fatal("mbox: a reader of %zu octets", cap);
	*r = (struct reader){.fd = fd,
			     .buf = buf,
			     .cap = cap,
			     .base = offset,
			     .limit = limit,
			     .hash_stop = limit};
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
	size_t to = r->pos;

	if (r->base + (off_t)to > r->hash_stop)
		to = r->hash_stop > r->base + (off_t)r->hpos
			     ? (size_t)(r->hash_stop - r->base)
			     : r->hpos;
	if (r->hashing && to > r->hpos)
		span_update(&r->hash, r->buf + r->hpos, to - r->hpos);
	r->hpos = r->pos;
}

/* Make at least want bytes available at pos (fewer only at the limit or
 * on an error) and return how many there are. Reads a whole buffer's
 * worth at a time. */
static size_t
reader_fill(struct reader *r, size_t want)
{
	size_t room, drop;
	off_t left;
	ssize_t n;

	if (r->len - r->pos >= want)
		return r->len - r->pos;
	if (r->pos > READER_HISTORY) {
		/* The body scan looks back over "\r\n" before pos. */
		drop = r->pos - READER_HISTORY;
		reader_hash(r);
		memmove(r->buf, r->buf + drop, r->len - drop);
		r->base += drop;
		r->len -= drop;
		r->pos = r->hpos = READER_HISTORY;
	}
	while (r->len - r->pos < want && !r->short_file && r->error == 0) {
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
	if (uidl_xuidl_usable(v, e - v))
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

	reader_init(&r, fd, buf, sizeof(buf), m->from, mbox_hdr_end(m));
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
	uidl_hasher_reset(h);
	reader_line(r, &lf, &cr, NULL, NULL);
	m->start = reader_offset(r);
	memset(&r->hash, 0, sizeof(r->hash));
	r->hashing = true;
	r->hpos = r->pos;
	r->hash_stop = m->start + CONTENT_HASH_SPAN;
}

/* At the next From_ line or the limit. A last blank line (at blank_off,
 * or -1 if none) is the separator mbox writers put after every message,
 * not part of it. The headers ended with a blank line at hdr_end, the
 * body starting at body, or (both -1) ran to the end. */
static int
end_message(struct reader *r, struct message *m, off_t blank_off, off_t hdr_end,
	    off_t body)
{
	m->next = reader_offset(r);
	m->end = blank_off >= 0 ? blank_off : m->next;
	reader_hash(r);
	r->hashing = false;
	m->content = (uint32_t)span_final(&r->hash);
	if (body < 0)
		hdr_end = body = m->end;
	if (body - m->start > (off_t)UINT32_MAX)
		return -2;
	m->hdr_len = body - m->start;
	m->blank_len = body - hdr_end;
	return 0;
}

/* Line ends in a stretch of body: LFs, and those with a CR before. */
struct line_ends {
	uint64_t lf, crlf;
};

#ifdef __SSE2__
static uint64_t
sum_bytes(__m128i acc)
{
	__m128i s = _mm_sad_epu8(acc, _mm_setzero_si128());

	return (uint64_t)_mm_cvtsi128_si64(s) +
	       (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s));
}
#endif

/* Count the line ends in p[0..n); p[-1] must be readable (a CR there
 * pairs with an LF at p[0]). 16 octets at a time where SSE2 is there:
 * the body is most of the spool, and this and find_from are all the
 * work it gets. */
static void
count_ends(const char *p, size_t n, struct line_ends *c)
{
	size_t i = 0;

#ifdef __SSE2__
	const __m128i lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');

	while (n - i >= 16) {
		__m128i nl = _mm_setzero_si128(), crnl = _mm_setzero_si128();

		/* Byte counters: at most 255 rounds before they are summed. */
		for (int k = 0; k < 255 && n - i >= 16; k++, i += 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)(p + i));
			__m128i w =
				_mm_loadu_si128((const __m128i *)(p + i - 1));
			__m128i e = _mm_cmpeq_epi8(v, lf);

			nl = _mm_sub_epi8(nl, e);
			crnl = _mm_sub_epi8(
				crnl, _mm_and_si128(e, _mm_cmpeq_epi8(w, cr)));
		}
		c->lf += sum_bytes(nl);
		c->crlf += sum_bytes(crnl);
	}
#endif
	for (; i < n; i++) {
		if (p[i] == '\n') {
			c->lf++;
			c->crlf += p[(ptrdiff_t)i - 1] == '\r';
		}
	}
}

/* The first i in [from, safe) with an LF at p[i] and F after it (a
 * From_ line may start there), or safe. p[safe] must be readable. */
static size_t
find_from(const char *p, size_t from, size_t safe)
{
	size_t i = from;

#ifdef __SSE2__
	const __m128i lf = _mm_set1_epi8('\n'), f = _mm_set1_epi8('F');

	for (; safe - i >= 16; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(p + i));
		__m128i w = _mm_loadu_si128((const __m128i *)(p + i + 1));
		int hits = _mm_movemask_epi8(_mm_and_si128(
			_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(w, f)));

		if (hits != 0)
			return i + __builtin_ctz(hits);
	}
#endif
	for (; i < safe; i++)
		if (p[i] == '\n' && p[i + 1] == 'F')
			return i;
	return safe;
}

/* With an LF at p[i] and p[i + 1 .. i + 6) present: is the line that LF
 * ends blank, and a From_ line next? Then *blank_r is where the blank
 * line starts: -1 when i is 0 and the blank line's CR ended the window
 * before. p[-2] must be readable. */
static bool
separator_at(const char *p, size_t i, ptrdiff_t *blank_r)
{
	if (memcmp(p + i + 1, "From ", 5) != 0)
		return false;
	if (p[(ptrdiff_t)i - 1] == '\n')
		*blank_r = (ptrdiff_t)i;
	else if (p[(ptrdiff_t)i - 1] == '\r' && p[(ptrdiff_t)i - 2] == '\n')
		*blank_r = (ptrdiff_t)i - 1;
	else
		return false;
	return true;
}

/* The body scan proper, over p[0..search): count the line ends up to the
 * first separator (the blank line before a From_ line) and return the
 * index of the LF before its "From ", with *blank_r where the blank line
 * starts; or count them all and return search. p[-2] .. p[search + 4]
 * must be readable. Two ways, with the same answers (test_mbox runs
 * every parse test both ways, and fuzz_mbox alternates them). */
static size_t
scan_portable(const char *p, size_t search, struct line_ends *c,
	      ptrdiff_t *blank_r)
{
	size_t i;

	for (i = find_from(p, 0, search); i < search;
	     i = find_from(p, i + 1, search)) {
		if (separator_at(p, i, blank_r)) {
			/* The ends before a blank line that began in the
			 * window before are counted. */
			count_ends(p, *blank_r > 0 ? (size_t)*blank_r : 0, c);
			return i;
		}
	}
	count_ends(p, search, c);
	return search;
}

#ifdef MBOX_AVX2
/* Where p[0..64) holds the octet want, as a bit mask (bit k: p[k]). */
__attribute__((target("avx2"))) static inline uint64_t
octets_at(const char *p, __m256i want)
{
	__m256i lo = _mm256_loadu_si256((const __m256i *)p);
	__m256i hi = _mm256_loadu_si256((const __m256i *)(p + 32));

	return (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, want)) |
	       (uint64_t)(uint32_t)_mm256_movemask_epi8(
		       _mm256_cmpeq_epi8(hi, want))
		       << 32;
}

/* One pass where the portable way makes two (find_from, then count_ends
 * over the same octets): 64 octets a step, each turned into three bit
 * masks (LF; CR before it; 'F' after it) that are counted and searched
 * as words. On a warm 1 GB spool the body scan went from 105 to 55 ms,
 * the whole login parse from 233 to 167 ms (bench/RESULTS.md, round 6). */
__attribute__((target("avx2,popcnt"))) static size_t
scan_avx2(const char *p, size_t search, struct line_ends *c, ptrdiff_t *blank_r)
{
	const __m256i lf = _mm256_set1_epi8('\n'), cr = _mm256_set1_epi8('\r'),
		      f = _mm256_set1_epi8('F');
	uint64_t lfs = 0, crlfs = 0; /* in registers, not in *c */
	size_t i, at, rest;
	ptrdiff_t k;

	for (i = 0; search - i >= 64; i += 64) {
		uint64_t ends = octets_at(p + i, lf);
		uint64_t crlf = ends & octets_at(p + i - 1, cr);
		uint64_t from = ends & octets_at(p + i + 1, f);

		for (; from != 0; from &= from - 1) {
			at = i + (size_t)__builtin_ctzll(from);
			if (!separator_at(p, at, blank_r))
				continue;
			/* Only the ends before the blank line count; it may
			 * start in the step before (CR LF). */
			k = *blank_r - (ptrdiff_t)i;
			ends &= k > 0 ? (1ULL << k) - 1 : 0;
			crlf &= ends;
			c->lf += lfs + (uint64_t)__builtin_popcountll(ends);
			c->crlf += crlfs + (uint64_t)__builtin_popcountll(crlf);
			return at;
		}
		lfs += (uint64_t)__builtin_popcountll(ends);
		crlfs += (uint64_t)__builtin_popcountll(crlf);
	}
	c->lf += lfs;
	c->crlf += crlfs;
	rest = scan_portable(p + i, search - i, c, blank_r);
	if (rest < search - i)
		*blank_r += (ptrdiff_t)i;
	return i + rest;
}
#endif

static bool portable_only;

ssize_t
mbox_appended_from(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && (p[i] == '\n' ||
			 (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')))
		i += p[i] == '\n' ? 1 : 2;
	return n - i >= 5 && memcmp(p + i, "From ", 5) == 0 ? (ssize_t)i : -1;
}

void
mbox_portable_scan(bool on)
{
	portable_only = on;
}

static size_t
scan_window(const char *p, size_t search, struct line_ends *c,
	    ptrdiff_t *blank_r)
{
#ifdef MBOX_AVX2
	static int avx2 = -1;

	if (avx2 < 0)
		avx2 = __builtin_cpu_supports("avx2") &&
		       __builtin_cpu_supports("popcnt");
	if (avx2 && !portable_only)
		return scan_avx2(p, search, c, blank_r);
#endif
	return scan_portable(p, search, c, blank_r);
}

/* Has the reader's window reached the limit (or the end of the file)? */
static bool
window_is_last(const struct reader *r)
{
	return r->base + (off_t)r->len >= r->limit || r->short_file ||
	       r->error != 0;
}

/* Consume the body from the reader's position (a line start, whose
 * previous octet is the LF of the blank line ending the headers) up to
 * the separator before the next From_ line, or to the limit. Only line
 * ends are counted: no line is looked at on its own. Returns the
 * offset of the separating blank line, or -1; the reader is left at
 * the next From_ line or at the limit. */
static off_t
scan_body(struct reader *r, struct line_ends *c)
{
	size_t avail, search, used, i;
	ptrdiff_t blank;
	const char *p;
	off_t at;

	while ((avail = reader_fill(r, 16)) > 0) {
		p = r->buf + r->pos;
		/* An LF at i < search has its 5 octets after it here; the
		 * rest waits for the next window, unless this is the last. */
		search = avail >= 5 ? avail - 5 : 0;
		i = scan_window(p, search, c, &blank);
		if (i < search) {
			at = reader_offset(r) + blank;
			r->pos += i + 1;
			return at;
		}
		used = search;
		if (window_is_last(r)) {
			count_ends(p + search, avail - search, c);
			used = avail;
		}
		r->pos += used;
	}
	/* A blank line at the limit is a separator too. */
	p = r->buf + r->pos;
	if (r->pos >= 2 && p[-1] == '\n' && p[-2] == '\n') {
		c->lf--;
		return reader_offset(r) - 1;
	}
	if (r->pos >= 3 && p[-1] == '\n' && p[-2] == '\r' && p[-3] == '\n') {
		c->lf--;
		c->crlf--;
		return reader_offset(r) - 2;
	}
	return -1;
}

/* The sizes of the body [body, end) from its line ends: each LF without
 * a CR goes out as CRLF, and a missing final line end is added
 * (R1939-38, DEC-17). */
static void
body_facts(struct reader *r, struct message *m, const struct line_ends *c,
	   off_t body, off_t end)
{
	bool unended = end > body && end == reader_offset(r) &&
		       r->buf[r->pos - 1] != '\n';
	uint64_t lines = c->lf + unended;

	m->body_lines = lines < MBOX_LINES_MANY ? lines : MBOX_LINES_MANY;
	m->size += (uint64_t)(end - body) + c->lf - c->crlf + (unended ? 2 : 0);
}

int
mbox_parse_message(struct reader *r, struct uidl_hasher *h, struct message *m,
		   struct uidl_entry *u, char **xuidl_r)
{
	struct headers hs = {.h = h};
	struct line_ends c = {0, 0};
	off_t blank_off = -1, hdr_end = -1, body = -1;
	bool blank = false, lf, cr;
	uint64_t len;
	size_t avail;
	const char *p;
	int st;

	begin_message(r, h, m);
	while ((avail = reader_fill(r, LINE_LOOKAHEAD)) > 0) {
		p = r->buf + r->pos;
		if (blank) {
			/* A blank line before a From_ line separates
			 * messages; anywhere else it ends the headers. */
			if (avail >= 5 && memcmp(p, "From ", 5) == 0)
				break;
			m->size += 2;
			hdr_end = blank_off;
			body = reader_offset(r);
			blank_off = scan_body(r, &c);
			body_facts(r, m, &c, body,
				   blank_off >= 0 ? blank_off
						  : reader_offset(r));
			blank = blank_off >= 0;
			break;
		}
		if (blank_line(p, avail)) {
			blank = true;
			blank_off = reader_offset(r);
			r->pos += p[0] == '\n' ? 1 : 2;
			continue;
		}
		header_line(&hs, p, avail);
		len = reader_line(r, &lf, &cr, header_piece, &hs);
		m->size += len + (lf && !cr) + (lf ? 0 : 2);
	}
	st = end_message(r, m, blank ? blank_off : -1, hdr_end, body);
	*xuidl_r = hs.xuidl;
	if (r->error != 0)
		return -1;
	if (st < 0)
		return st;
	if (!hs.selected_any && digest_fallback(r->fd, m, h) < 0) {
		r->error = EIO;
		return -1;
	}
	uidl_hasher_final(h, u->digest);
	return 0;
}
