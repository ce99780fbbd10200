#include "dotstuff.h"

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) && !defined(DOTSTUFF_NO_SIMD)
#include <emmintrin.h>

/* Which of the 16 octets at p are LFs, as the low 16 bits. */
static inline uint64_t
lf_bits(const char *p, __m128i nl)
{
	__m128i v = _mm_loadu_si128((const __m128i *)p);

	return (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl));
}
#endif

void
dotstuff_init(struct dotstuff *ds, dotstuff_write_fn write, void *ctx)
{
	ds->write = write;
	ds->ctx = ctx;
	ds->line_start = true;
	ds->prev_cr = false;
	ds->failed = false;
	ds->out_len = 0;
}

/* Hand the gathered output to the writer. */
static int
flush(struct dotstuff *ds)
{
	size_t n = ds->out_len;

	ds->out_len = 0;
	if (ds->failed || (n > 0 && ds->write(ds->ctx, ds->out, n) < 0)) {
		ds->failed = true;
		return -1;
	}
	return 0;
}

/* Append len octets to the output; a long run goes to the writer as it
 * lies, after what was gathered before it. */
static int
put(struct dotstuff *ds, const char *data, size_t len)
{
	if (len >= DOTSTUFF_DIRECT_MIN) {
		if (flush(ds) < 0 || ds->write(ds->ctx, data, len) < 0) {
			ds->failed = true;
			return -1;
		}
		return 0;
	}
	if (len > sizeof(ds->out) - ds->out_len && flush(ds) < 0)
		return -1;
	memcpy(ds->out + ds->out_len, data, len);
	ds->out_len += len;
	return 0;
}

#if defined(__SSE2__) && !defined(DOTSTUFF_NO_SIMD)
/* Mail lines are mostly shorter (text wrapped at 72-78, base64 at 76):
 * those are copied inline; for a longer run memcpy's call costs little
 * next to the copy (256 measured the same as 128: bench/RESULTS.md). */
#define SHORT_RUN 128

/* n octets, n <= SHORT_RUN, from src to dst, in 16-octet moves (the
 * last one overlapping; 8 or 4 where shorter): no call, and nothing
 * read past src + n. */
static inline void
copy_short(char *dst, const char *src, size_t n)
{
	uint64_t a, b;
	uint32_t c, d;

	if (n < 16) {
		if (n >= 8) {
			memcpy(&a, src, 8);
			memcpy(&b, src + n - 8, 8);
			memcpy(dst, &a, 8);
			memcpy(dst + n - 8, &b, 8);
		} else if (n >= 4) {
			memcpy(&c, src, 4);
			memcpy(&d, src + n - 4, 4);
			memcpy(dst, &c, 4);
			memcpy(dst + n - 4, &d, 4);
		} else {
			for (size_t k = 0; k < n; k++)
				dst[k] = src[k];
		}
		return;
	}
	for (size_t k = 0; k + 16 < n; k += 16)
		_mm_storeu_si128((__m128i *)(dst + k),
				 _mm_loadu_si128((const __m128i *)(src + k)));
	_mm_storeu_si128((__m128i *)(dst + n - 16),
			 _mm_loadu_si128((const __m128i *)(src + n - 16)));
}

/* put for the run before a line end: most are one short line. */
static inline int
put_run(struct dotstuff *ds, const char *data, size_t len)
{
	if (len > SHORT_RUN || sizeof(ds->out) - ds->out_len < len)
		return put(ds, data, len);
	copy_short(ds->out + ds->out_len, data, len);
	ds->out_len += len;
	return 0;
}
#else
#define put_run put
#endif

/* The octets inserted after the content of a line: its CR (unless it
 * has one), the LF, and a "." if the next line starts with one. At most
 * three octets, so the room check is one comparison. */
static int
put_line_end(struct dotstuff *ds, bool has_cr, bool dot_next)
{
	char *o;

	if (sizeof(ds->out) - ds->out_len < 3 && flush(ds) < 0)
		return -1;
	o = ds->out + ds->out_len;
	if (!has_cr)
		*o++ = '\r';
	*o++ = '\n';
	if (dot_next)
		*o++ = '.';
	ds->out_len = o - ds->out;
	return 0;
}

/* An LF at lf, within [data, end): if the encoding inserts octets
 * there (a CR before it, when there is none; a "." after it, before a
 * line that starts with one), copy the run up to it and insert them.
 * *run is where the octets not yet handed on begin. */
static int
line_end(struct dotstuff *ds, const char *data, const char *end,
	 const char **run, const char *lf)
{
	/* A CR before the LF may end the previous piece. */
	bool has_cr = lf > data ? lf[-1] == '\r' : ds->prev_cr;
	bool dot_next = lf + 1 < end && lf[1] == '.';

	if (has_cr && !dot_next)
		return 0;
	if (put_run(ds, *run, lf - *run) < 0 ||
	    put_line_end(ds, has_cr, dot_next) < 0)
		return -1;
	/* The LF is written already; the dot is the line's own. */
	*run = lf + 1;
	return 0;
}

/* The LFs in [p, end), one memchr each. Returns where the run not yet
 * handed on begins, or NULL if the writer failed. */
static const char *
each_lf(struct dotstuff *ds, const char *data, const char *p, const char *end,
	const char *run)
{
	const char *lf;

	while ((lf = memchr(p, '\n', end - p)) != NULL) {
		if (line_end(ds, data, end, &run, lf) < 0)
			return NULL;
		p = lf + 1;
	}
	return run;
}

#if defined(__SSE2__) && !defined(DOTSTUFF_NO_SIMD)
/* The same, 64 octets a step: the LFs' positions as the bits of one
 * mask, so a spool of short lines costs no call per line. SSE2 is part
 * of x86-64 itself; elsewhere (or built with DOTSTUFF_NO_SIMD) each_lf
 * alone does the work, with the same output. */
static const char *
scan_lfs(struct dotstuff *ds, const char *data, const char *end)
{
	const __m128i nl = _mm_set1_epi8('\n');
	const char *p = data, *run = data;
	uint64_t mask;

	for (; end - p >= 64; p += 64) {
		mask = lf_bits(p, nl) | lf_bits(p + 16, nl) << 16 |
		       lf_bits(p + 32, nl) << 32 | lf_bits(p + 48, nl) << 48;
		for (; mask != 0; mask &= mask - 1)
			if (line_end(ds, data, end, &run,
				     p + __builtin_ctzll(mask)) < 0)
				return NULL;
	}
	return each_lf(ds, data, p, end, run);
}
#else
static const char *
scan_lfs(struct dotstuff *ds, const char *data, const char *end)
{
	return each_lf(ds, data, data, end, data);
}
#endif

/* The encoding only ever inserts octets, and only right after an LF (a
 * "." before a line that starts with one) or right before it (a CR, when
 * there is none). Everything between such places is copied as one run:
 * a message stored with CRLF and no leading dots is a single run. */
int
dotstuff_feed(struct dotstuff *ds, const char *data, size_t len)
{
	const char *end = data + len, *run;

	if (ds->failed)
		return -1;
	if (len == 0)
		return 0;
	if (ds->line_start && *data == '.' && put(ds, ".", 1) < 0)
		return -1;
	if ((run = scan_lfs(ds, data, end)) == NULL ||
	    put(ds, run, end - run) < 0)
		return -1;
	ds->line_start = end[-1] == '\n';
	ds->prev_cr = end[-1] == '\r';
	return flush(ds);
}

int
dotstuff_sink(void *ds, const char *data, size_t len)
{
	return dotstuff_feed(ds, data, len);
}

int
dotstuff_finish(struct dotstuff *ds)
{
	/* R1939-08: the content always ends in CRLF before the ".". A
	 * stray CR at the very end stays content, as maildrop's sizes
	 * count it. */
	if (!ds->line_start && put(ds, "\r\n", 2) < 0)
		return -1;
	ds->line_start = true;
	ds->prev_cr = false;
	if (put(ds, ".\r\n", 3) < 0)
		return -1;
	return flush(ds);
}
