#include "dotstuff.h"

#include <string.h>

void
dotstuff_init(struct dotstuff *ds, dotstuff_write_fn write, void *ctx)
{
	ds->write = write;
	ds->ctx = ctx;
	ds->line_start = true;
	ds->prev_cr = false;
}

int
dotstuff_feed(struct dotstuff *ds, const char *data, size_t len)
{
	const char *end = data + len, *lf;
	size_t n;

	while (data < end) {
		if (ds->line_start && *data == '.' &&
		    ds->write(ds->ctx, ".", 1) < 0)
			return -1;
		lf = memchr(data, '\n', end - data);
		if (lf == NULL) {
			if (ds->write(ds->ctx, data, end - data) < 0)
				return -1;
			ds->prev_cr = end[-1] == '\r';
			ds->line_start = false;
			return 0;
		}
		/* Write up to the LF; a CR before it (here or at the end of
		 * the previous piece) makes it a proper CRLF already. */
		n = lf - data;
		if (n > 0 && ds->write(ds->ctx, data, n) < 0)
			return -1;
		if ((n > 0 ? lf[-1] == '\r' : ds->prev_cr)
			    ? ds->write(ds->ctx, "\n", 1) < 0
			    : ds->write(ds->ctx, "\r\n", 2) < 0)
			return -1;
		ds->prev_cr = false;
		ds->line_start = true;
		data = lf + 1;
	}
	return 0;
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
	if (!ds->line_start && ds->write(ds->ctx, "\r\n", 2) < 0)
		return -1;
	ds->line_start = true;
	ds->prev_cr = false;
	return ds->write(ds->ctx, ".\r\n", 3);
}
