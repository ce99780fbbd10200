/* libFuzzer: the multi-line reply encoder (dotstuff.c) against a
 * byte-at-a-time reference written from RFC 1939 §3, on inputs fed in
 * pieces of any size, large ones included.
 *
 * Input: a flag byte, a seed byte, a prefix length byte, then the
 * message bytes: the first (prefix length) of them once, the rest
 * repeated.
 *   flags bits 0-2: the rest is repeated 1 << bits times
 *                   (up to 128: large messages fill the encoder's
 *                   buffer and have runs long enough to go out
 *                   uncopied), but with pieces of up to 16 octets
 *                   only until the message reaches 8 KiB;
 *   flags bits 3-4: piece sizes: 0 one piece, 1 up to 16 octets, 2 up
 *                   to 4 KiB, 3 up to 128 KiB (from the seed byte);
 *   flags bits 5-7: the writer fails at this call (0: never; n: call
 *                   n * 3 - 2, spreading the failures out).
 *
 * Checks:
 *   - the output is exactly the reference's: bare LF -> CRLF, CRLF kept,
 *     a CR elsewhere is content, a leading "." doubled, a missing final
 *     line end added, ".CRLF" last;
 *   - after each feed the writer holds the encoding of everything fed
 *     (nothing held back for a later call);
 *   - the writer gets large blocks: no more calls than one per piece,
 *     three per DOTSTUFF_DIRECT_MIN octets of output, and the
 *     terminator's;
 *   - a failing writer: the call during which it failed returns -1,
 *     every later one too, and the writer is never called again. */
#include "fuzz.h"

#include "dotstuff.h"

struct writer {
	struct fbuf out;
	size_t calls;
	size_t fail_at; /* 0: never */
	bool failed;
	size_t calls_after_failure;
};

static int
writer(void *ctx, const void *data, size_t len)
{
	struct writer *w = ctx;

	if (w->failed) {
		w->calls_after_failure++;
		return -1;
	}
	if (++w->calls == w->fail_at) {
		w->failed = true;
		return -1;
	}
	check(len > 0, "empty write");
	fbuf_add(&w->out, data, len);
	return 0;
}

/* The reference: one octet at a time, from the RFC's rules. Appends
 * the encoding of in[from, to), the octets before from being what came
 * before in the message. */
static void
reference(const char *in, size_t from, size_t to, struct fbuf *out)
{
	for (size_t i = from; i < to; i++) {
		bool line_start = i == 0 || in[i - 1] == '\n';

		if (line_start && in[i] == '.')
			fbuf_add(out, ".", 1);
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			fbuf_add(out, "\r", 1);
		fbuf_add(out, &in[i], 1);
	}
}

/* The end of the reply after len octets of message. */
static void
reference_close(const char *in, size_t len, struct fbuf *out)
{
	if (len > 0 && in[len - 1] != '\n')
		fbuf_add(out, "\r\n", 2);
	fbuf_add(out, ".\r\n", 3);
}

static size_t
next_piece(unsigned *state, int mode, size_t left)
{
	static const size_t max[] = {0, 16, 4096, 128 * 1024};
	size_t n;

	if (mode == 0)
		return left;
	*state = *state * 1103515245u + 12345u;
	n = (*state >> 8) % (max[mode] + 1); /* empty pieces too */
	return n < left ? n : left;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dotstuff ds; /* 64 KiB: not on libFuzzer's stack */
	struct writer w = {0};
	struct fbuf msg = {0}, want = {0};
	unsigned state;
	size_t at = 0, pieces = 0, checked = 0, prefix;
	int mode, r = 0;

	if (size < 3)
		return 0;
	mode = data[0] >> 3 & 3;
	prefix = data[2] < size - 3 ? data[2] : size - 3;
	fbuf_add(&msg, data + 3, prefix);
	/* Tiny pieces of a large message would only make the run slow. */
	for (int i = 0;
	     i < 1 << (data[0] & 7) && (i == 0 || mode != 1 || msg.len < 8192);
	     i++)
		fbuf_add(&msg, data + 3 + prefix, size - 3 - prefix);
	w.fail_at = (data[0] >> 5) == 0 ? 0 : (size_t)(data[0] >> 5) * 3 - 2;
	state = data[1];
	dotstuff_init(&ds, writer, &w);
	while (r == 0 && (at < msg.len || pieces == 0)) {
		size_t n = next_piece(&state, mode, msg.len - at);

		r = dotstuff_feed(&ds, n > 0 ? msg.p + at : "", n);
		reference(msg.p, at, at + n, &want);
		at += n;
		pieces++;
		if (r == 0) {
			/* The encoding is a prefix-stable function of the
			 * input: everything fed must be out, nothing more. */
			check(!w.failed, "a failed write went unreported");
			check(w.out.len == want.len &&
				      (want.len == checked ||
				       memcmp(w.out.p + checked,
					      want.p + checked,
					      want.len - checked) == 0),
			      "after %zu octets in %zu pieces: output differs",
			      at, pieces);
			checked = want.len;
		}
	}
	if (r == 0)
		r = dotstuff_finish(&ds);
	if (w.failed) {
		check(r == -1, "writer failed, encoder returned %d", r);
		check(dotstuff_feed(&ds, "x\n", 2) == -1 &&
			      dotstuff_finish(&ds) == -1,
		      "calls after a failure succeeded");
		check(w.calls_after_failure == 0,
		      "writer called %zu times after it failed",
		      w.calls_after_failure);
	} else {
		check(r == 0, "encoder failed on its own");
		reference_close(msg.p, msg.len, &want);
		check(bytes_eq(w.out.p, w.out.len, want.p, want.len),
		      "final output differs (%zu octets, want %zu)", w.out.len,
		      want.len);
		check(w.calls <=
			      2 * pieces + w.out.len / DOTSTUFF_DIRECT_MIN + 1,
		      "%zu writer calls for %zu pieces and %zu octets", w.calls,
		      pieces, w.out.len);
	}
	fbuf_free(&msg);
	fbuf_free(&want);
	fbuf_free(&w.out);
	return 0;
}
