#include "dotstuff.h"

#include <string.h>

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

/* The encoding only ever inserts octets, and only right after an LF (a
 * "." before a line that starts with one) or right before it (a CR, when
 * there is none). Everything between such places is copied as one run:
 * a message stored with CRLF and no leading dots is a single run. */
int
dotstuff_feed(struct dotstuff *ds, const char *data, size_t len)
{
	const char *p = data, *end = data + len, *run = data, *lf;
	bool has_cr, dot_next;

	if (ds->failed)
		return -1;
	if (len == 0)
		return 0;
	if (ds->line_start && *p == '.' && put(ds, ".", 1) < 0)
		return -1;
	while ((lf = memchr(p, '\n', end - p)) != NULL) {
		/* A CR before the LF may end the previous piece. */
		has_cr = lf > data ? lf[-1] == '\r' : ds->prev_cr;
		p = lf + 1;
		dot_next = p < end && *p == '.';
		if (has_cr && !dot_next)
			continue;
		if (put(ds, run, lf - run) < 0 ||
		    put_line_end(ds, has_cr, dot_next) < 0)
			return -1;
		/* The LF is written already; the dot is the line's own. */
		run = p;
	}
	if (put(ds, run, end - run) < 0)
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
