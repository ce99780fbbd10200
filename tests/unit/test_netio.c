/* Unit tests for netio.c, the buffered client connection, driven through
 * pipes and child processes: lines bounded at the limit including CRLF
 * (R2449-01), bare LF as a line end (DEC-01), one error per overlong line
 * and its rest never run (DEC-03), replies batched until the input runs
 * dry (R2449-15), input read ahead while a reply is blocked and kept
 * (R2449-16), input dropped after STLS (R2595-10), consumed lines wiped
 * (a PASS line must not stay in memory), and bounded waits. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "netio.h"
#include "params.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* --- helpers ------------------------------------------------------------ */

/* The connection as two pipes: the client writes to in_w and reads
 * out_r; netio reads in_r and writes out_w. */
struct conn {
	int in_r, in_w, out_r, out_w;
	struct netio *io;
};

static void
conn_open(struct conn *c, unsigned timeout_s)
{
	int in[2], out[2];

	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	c->in_r = in[0];
	c->in_w = in[1];
	c->out_r = out[0];
	c->out_w = out[1];
	c->io = malloc(sizeof(*c->io));
	ck_assert_ptr_nonnull(c->io);
	net_init(c->io, c->in_r, c->out_w, timeout_s);
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void
conn_close(struct conn *c)
{
	close_fd(&c->in_r);
	close_fd(&c->in_w);
	close_fd(&c->out_r);
	close_fd(&c->out_w);
	free(c->io);
	c->io = NULL;
}

/* What the client sends (fits in the pipe: written at once). */
static void
client_send(struct conn *c, const void *data, size_t len)
{
	ck_assert_int_eq(write(c->in_w, data, len), (ssize_t)len);
}

static void
client_send_str(struct conn *c, const char *s)
{
	client_send(c, s, strlen(s));
}

/* Whatever netio has written so far, without waiting; NUL-terminated. */
static size_t
client_received(struct conn *c, char *buf, size_t cap)
{
	int flags = fcntl(c->out_r, F_GETFL);
	size_t got = 0;
	ssize_t n;

	ck_assert_int_ge(flags, 0);
	ck_assert_int_eq(fcntl(c->out_r, F_SETFL, flags | O_NONBLOCK), 0);
	while (got + 1 < cap &&
	       (n = read(c->out_r, buf + got, cap - 1 - got)) > 0)
		got += n;
	buf[got] = '\0';
	return got;
}

/* Read one line of at most max octets (CRLF included) and check it. */
static void
expect_line(struct conn *c, size_t max, const char *want, size_t want_len)
{
	char line[AUTH_LINE_MAX];
	size_t len = (size_t)-1;
	enum net_status st;

	ck_assert_uint_le(max, sizeof(line));
	st = net_read_line(c->io, line, max, &len);
	ck_assert_msg(st == NET_OK, "want line \"%s\", got status %d", want,
		      st);
	ck_assert_uint_eq(len, want_len);
	ck_assert(memcmp(line, want, want_len) == 0);
	ck_assert_int_eq(line[len], '\0');
}

static void
expect_str(struct conn *c, const char *want)
{
	expect_line(c, CMD_LINE_MAX, want, strlen(want));
}

static void
expect_status(struct conn *c, size_t max, enum net_status want)
{
	char line[AUTH_LINE_MAX];
	size_t len;
	enum net_status st = net_read_line(c->io, line, max, &len);

	ck_assert_msg(st == want, "status %d, want %d", st, want);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool
contains(const char *hay, size_t n, const char *needle)
{
	return memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* --- line ends and the line limit --------------------------------------- */

/* DEC-01: CRLF and a bare LF both end a line; a CR alone does not. */
START_TEST(line_ends)
{
	struct conn c;

	conn_open(&c, 5);
	client_send_str(&c, "STAT\r\nLIST\nNOOP\r\n\r\n\nA\rB\r\n");
	close_fd(&c.in_w);
	expect_str(&c, "STAT");
	expect_str(&c, "LIST");
	expect_str(&c, "NOOP");
	expect_str(&c, "");
	expect_str(&c, "");
	expect_str(&c, "A\rB");
	expect_status(&c, CMD_LINE_MAX, NET_EOF);
	/* EOF is sticky. */
	expect_status(&c, CMD_LINE_MAX, NET_EOF);
	conn_close(&c);
}
END_TEST

/* NUL bytes are data: the length is explicit (DEC-04 refuses them one
 * level up, in command.c). */
START_TEST(nul_bytes_kept)
{
	struct conn c;

	conn_open(&c, 5);
	client_send(&c, "US\0ER\r\nNOOP\r\n", 13);
	expect_line(&c, CMD_LINE_MAX, "US\0ER", 5);
	expect_str(&c, "NOOP");
	conn_close(&c);
}
END_TEST

/* A line that arrives in pieces is handed out whole, once. */
START_TEST(line_in_pieces)
{
	struct conn c;
	pid_t pid;
	int status;

	conn_open(&c, 5);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		static const char *const parts[] = {"US", "ER al", "ice\r",
						    "\nNO", "OP\r\n"};

		for (int i = 0; i < N(parts); i++) {
			if (write(c.in_w, parts[i], strlen(parts[i])) < 0)
				_exit(1);
			usleep(20000);
		}
		_exit(0);
	}
	close_fd(&c.in_w);
	expect_str(&c, "USER alice");
	expect_str(&c, "NOOP");
	expect_status(&c, CMD_LINE_MAX, NET_EOF);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	conn_close(&c);
}
END_TEST

/* R2449-01: the limit counts the line with its CRLF, whichever ending
 * the client used; a line one octet longer is refused (DEC-03). */
struct limit_case {
	size_t max;
	size_t content; /* octets before the line end */
	const char *eol;
	enum net_status want;
};

static const struct limit_case limit_cases[] = {
	{CMD_LINE_MAX, CMD_LINE_MAX - 2, "\r\n", NET_OK},
	{CMD_LINE_MAX, CMD_LINE_MAX - 2, "\n", NET_OK},
	{CMD_LINE_MAX, CMD_LINE_MAX - 1, "\r\n", NET_TOO_LONG},
	{CMD_LINE_MAX, CMD_LINE_MAX - 1, "\n", NET_TOO_LONG},
	{CMD_LINE_MAX, CMD_LINE_MAX + 100, "\r\n", NET_TOO_LONG},
	/* DEC-13: AUTH lines have their own, larger bound. */
	{AUTH_LINE_MAX, AUTH_LINE_MAX - 2, "\r\n", NET_OK},
	{AUTH_LINE_MAX, AUTH_LINE_MAX - 1, "\r\n", NET_TOO_LONG},
	{AUTH_LINE_MAX, CMD_LINE_MAX * 4, "\n", NET_OK},
};

START_TEST(line_limit)
{
	const struct limit_case *lc = &limit_cases[_i];
	char *data = malloc(lc->content + 2);
	struct conn c;

	ck_assert_ptr_nonnull(data);
	memset(data, 'a', lc->content);
	memcpy(data + lc->content, lc->eol, strlen(lc->eol));
	conn_open(&c, 5);
	client_send(&c, data, lc->content + strlen(lc->eol));
	client_send_str(&c, "NOOP\r\n");
	close_fd(&c.in_w);
	if (lc->want == NET_OK)
		expect_line(&c, lc->max, data, lc->content);
	else
		expect_status(&c, lc->max, NET_TOO_LONG);
	/* Either way the next line is read as it was sent. */
	expect_str(&c, "NOOP");
	expect_status(&c, lc->max, NET_EOF);
	conn_close(&c);
	free(data);
}
END_TEST

/* --- DEC-03: overlong lines --------------------------------------------- */

/* 10 KiB without a line end: one error as soon as the limit is passed;
 * the rest of that line, arriving later, is dropped up to its LF and never
 * handed out, even when it looks like a command. */
START_TEST(overlong_line_one_error)
{
	static char junk[10 * 1024];
	struct conn c;

	conn_open(&c, 5);
	memset(junk, 'A', sizeof(junk));
	client_send(&c, junk, sizeof(junk));
	expect_status(&c, CMD_LINE_MAX, NET_TOO_LONG);
	client_send_str(&c, "DELE 1\r\nNOOP\r\n");
	expect_str(&c, "NOOP");
	/* The same with the whole line already read ahead. */
	memcpy(junk + 300, "\rDELE 1", 7); /* no LF: still the same line */
	client_send(&c, junk, sizeof(junk));
	client_send_str(&c, "\r\nQUIT\r\n");
	close_fd(&c.in_w);
	expect_status(&c, CMD_LINE_MAX, NET_TOO_LONG);
	expect_str(&c, "QUIT");
	expect_status(&c, CMD_LINE_MAX, NET_EOF);
	conn_close(&c);
}
END_TEST

/* A line far larger than the input buffer, sent by a client that keeps
 * writing: still one error, and the line after it comes through. */
START_TEST(overlong_line_larger_than_buffer)
{
	size_t total = INPUT_BUFFER_SIZE * 8 + 17;
	struct conn c;
	pid_t pid;
	int status;

	conn_open(&c, 5);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char chunk[4096];

		memset(chunk, 'B', sizeof(chunk));
		for (size_t sent = 0; sent < total;) {
			size_t n = total - sent < sizeof(chunk) ? total - sent
								: sizeof(chunk);
			ssize_t w = write(c.in_w, chunk, n);

			if (w <= 0)
				_exit(1);
			sent += w;
		}
		if (write(c.in_w, "\nSTAT\r\n", 7) != 7)
			_exit(1);
		_exit(0);
	}
	close_fd(&c.in_w);
	expect_status(&c, CMD_LINE_MAX, NET_TOO_LONG);
	expect_str(&c, "STAT");
	expect_status(&c, CMD_LINE_MAX, NET_EOF);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	conn_close(&c);
}
END_TEST

/* An overlong line cut off by EOF: its error, then EOF, nothing else. */
START_TEST(overlong_line_then_eof)
{
	char junk[1000];
	struct conn c;

	memset(junk, 'C', sizeof(junk));
	conn_open(&c, 5);
	client_send(&c, junk, sizeof(junk));
	close_fd(&c.in_w);
	expect_status(&c, CMD_LINE_MAX, NET_TOO_LONG);
	expect_status(&c, CMD_LINE_MAX, NET_EOF);
	conn_close(&c);
}
END_TEST

/* --- output: batching, bounds, failures ---------------------------------- */

/* R2449-15: replies to pipelined commands go out when no complete line
 * is left, not one write per reply; and in order. */
START_TEST(replies_batched_until_input_runs_dry)
{
	char out[256];
	struct conn c;

	conn_open(&c, 5);
	client_send_str(&c, "STAT\r\nLIST 1\r\nNOOP\r\n");
	expect_str(&c, "STAT");
	ck_assert_int_eq(net_reply(c.io, "+OK %d %d", 2, 320), 0);
	expect_str(&c, "LIST 1");
	ck_assert_int_eq(net_reply(c.io, "+OK 1 120"), 0);
	expect_str(&c, "NOOP");
	ck_assert_int_eq(net_reply(c.io, "+OK"), 0);
	/* Lines were still waiting at every read: nothing written yet. */
	ck_assert_uint_eq(client_received(&c, out, sizeof(out)), 0);
	/* Out of lines: the reader flushes before it waits. */
	close_fd(&c.in_w);
	expect_status(&c, CMD_LINE_MAX, NET_EOF);
	client_received(&c, out, sizeof(out));
	ck_assert_str_eq(out, "+OK 2 320\r\n+OK 1 120\r\n+OK\r\n");
	conn_close(&c);
}
END_TEST

/* The reader flushes before it blocks: a client waiting for a reply gets
 * it without sending anything more. */
START_TEST(flush_before_waiting)
{
	char out[64];
	struct conn c;

	conn_open(&c, 1);
	client_send_str(&c, "NOOP\r\n");
	expect_str(&c, "NOOP");
	ck_assert_int_eq(net_reply(c.io, "+OK"), 0);
	expect_status(&c, CMD_LINE_MAX, NET_TIMEOUT);
	client_received(&c, out, sizeof(out));
	ck_assert_str_eq(out, "+OK\r\n");
	conn_close(&c);
}
END_TEST

/* R1939-06: a reply line is at most 512 octets with its CRLF, however
 * long the text (client input echoed, a long path). */
START_TEST(reply_line_bounded)
{
	char big[2000], out[4096];
	struct conn c;
	size_t n;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	conn_open(&c, 5);
	ck_assert_int_eq(net_reply(c.io, "-ERR %s", big), 0);
	ck_assert_int_eq(net_reply(c.io, "+OK"), 0);
	ck_assert_int_eq(net_flush(c.io), 0);
	n = client_received(&c, out, sizeof(out));
	ck_assert_ptr_nonnull(memchr(out, '\n', n));
	{
		size_t first = (size_t)((char *)memchr(out, '\n', n) - out) + 1;

		ck_assert_uint_le(first, REPLY_LINE_MAX);
		ck_assert_uint_ge(first, REPLY_LINE_MAX - 8);
		ck_assert(memcmp(out, "-ERR xxx", 8) == 0);
		ck_assert(memcmp(out + first - 2, "\r\n", 2) == 0);
		ck_assert_ptr_null(memchr(out, '\r', first - 2));
		/* The next reply is intact, not glued to the cut one. */
		ck_assert_uint_eq(n - first, 5);
		ck_assert(memcmp(out + first, "+OK\r\n", 5) == 0);
	}
	conn_close(&c);
}
END_TEST

/* Output larger than the output buffer arrives whole and in order. */
/* Piece sizes for large_output_intact, cycled through: small ones are
 * queued; blocks of NET_DIRECT_WRITE_MIN and more that do not fit go out
 * straight from the caller's memory behind the queue. Either way the
 * client must get every octet once, in order. */
static const size_t piece_sizes[][4] = {
	{7919, 7919, 7919, 7919},
	{NET_DIRECT_WRITE_MIN, 1, OUTPUT_BUFFER_SIZE - 1, 3},
	{100, 200 * 1024 + 7, 1000, 70000},
	{OUTPUT_BUFFER_SIZE, OUTPUT_BUFFER_SIZE + 1, 5, 3 * OUTPUT_BUFFER_SIZE},
};

START_TEST(large_output_intact)
{
	size_t total = OUTPUT_BUFFER_SIZE * 9 + 1234, k = 0;
	struct conn c;
	pid_t pid;
	int status;
	char *data = malloc(total);

	ck_assert_ptr_nonnull(data);
	for (size_t i = 0; i < total; i++)
		data[i] = (char)('a' + i % 23 + i / 65521 % 3);
	conn_open(&c, 5);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* The client: read it all, compare. */
		char chunk[8192];
		size_t got = 0;
		ssize_t n;

		close(c.out_w);
		while ((n = read(c.out_r, chunk, sizeof(chunk))) > 0) {
			if (got + n > total ||
			    memcmp(chunk, data + got, n) != 0)
				_exit(1);
			got += n;
		}
		_exit(got == total ? 0 : 2);
	}
	close_fd(&c.out_r);
	/* In uneven pieces, so copies straddle the buffer's end. */
	for (size_t off = 0; off < total; k++) {
		size_t want = piece_sizes[_i][k % 4];
		size_t n = total - off < want ? total - off : want;

		ck_assert_int_eq(net_write(c.io, data + off, n), 0);
		off += n;
	}
	ck_assert_int_eq(net_flush(c.io), 0);
	close_fd(&c.out_w);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "client saw wrong output (status %d)", status);
	conn_close(&c);
	free(data);
}
END_TEST

/* A client that hung up: the write fails, and every later write fails
 * too rather than being queued (no reply to a dead connection). */
START_TEST(write_failure_sticks)
{
	struct conn c;

	signal(SIGPIPE, SIG_IGN);
	conn_open(&c, 5);
	close_fd(&c.out_r);
	ck_assert_int_eq(net_reply(c.io, "+OK"), 0); /* only queued */
	ck_assert_int_eq(net_flush(c.io), -1);
	ck_assert_int_eq(c.io->out_failed, NET_ERROR);
	ck_assert_int_eq(net_reply(c.io, "+OK"), -1);
	ck_assert_int_eq(net_flush(c.io), -1);
	/* The reader reports the failed connection rather than run more
	 * commands for a client that cannot hear the replies. */
	client_send_str(&c, "DELE 1\r\n");
	expect_status(&c, CMD_LINE_MAX, NET_ERROR);
	conn_close(&c);
}
END_TEST

/* --- R2449-16: read-ahead while a reply is blocked ---------------------- */

/* The client writes 1,200 commands (more than the pipe holds, less than
 * netio's input buffer) before it reads any reply, and the reply is
 * larger than the output pipe. Unless
 * netio keeps reading while its write waits, both sides block for good
 * (here: the 3 s timeout). The input read meanwhile is kept, in order. */
START_TEST(read_ahead_while_writing)
{
	enum { COMMANDS = 1200 };
	size_t reply_len = OUTPUT_BUFFER_SIZE * 2;
	char *reply = malloc(reply_len);
	struct conn c;
	pid_t pid;
	int status;

	ck_assert_ptr_nonnull(reply);
	memset(reply, 'r', reply_len);
	conn_open(&c, 3);
	/* Small pipes: 1,200 "NOOP nnnn" lines (13 KiB) do not fit. */
	ck_assert_int_eq(fcntl(c.in_w, F_SETPIPE_SZ, 4096), 4096);
	ck_assert_int_eq(fcntl(c.out_w, F_SETPIPE_SZ, 4096), 4096);
	ck_assert_uint_gt(COMMANDS * 11, 2 * 4096);
	ck_assert_uint_lt(COMMANDS * 11, INPUT_BUFFER_SIZE);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char line[32], chunk[8192];
		size_t got = 0;
		ssize_t n;

		close(c.out_w);
		close(c.in_r);
		for (int i = 0; i < COMMANDS; i++) {
			int len = snprintf(line, sizeof(line), "NOOP %04d\r\n",
					   i);

			if (write(c.in_w, line, len) != len)
				_exit(1);
		}
		close(c.in_w);
		while ((n = read(c.out_r, chunk, sizeof(chunk))) > 0)
			got += n;
		_exit(got == reply_len ? 0 : 2);
	}
	close_fd(&c.in_w);
	close_fd(&c.out_r);
	ck_assert_int_eq(net_write(c.io, reply, reply_len), 0);
	ck_assert_msg(net_flush(c.io) == 0, "flush failed: %d",
		      c.io->out_failed);
	close_fd(&c.out_w);
	/* Every command, in order, then EOF. */
	for (int i = 0; i < COMMANDS; i++) {
		char want[16];

		snprintf(want, sizeof(want), "NOOP %04d", i);
		expect_str(&c, want);
	}
	expect_status(&c, CMD_LINE_MAX, NET_EOF);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "client status %d", status);
	conn_close(&c);
	free(reply);
}
END_TEST

/* --- input handed over, dropped, wiped ----------------------------------- */

/* R2595-10: at STLS, what the client sent before the handshake is
 * dropped and wiped, never run, whether or not the handshake then
 * succeeds (here no TLS is set up, so it fails at once). */
START_TEST(discard_input_after_stls)
{
	struct conn c;

	conn_open(&c, 5);
	client_send_str(&c, "STLS\r\nCAPA\r\nUSER alice\r\n");
	expect_str(&c, "STLS");
	ck_assert_uint_gt(c.io->in_len, 0);
	ck_assert_int_eq(net_start_tls(c.io), -1);
	ck_assert_uint_eq(c.io->in_len, 0);
	ck_assert(!contains(c.io->in, sizeof(c.io->in), "USER alice"));
	conn_close(&c);
}
END_TEST

/* Pipelined commands after a login move to the session process:
 * net_take_input hands over what was read ahead and keeps no copy;
 * net_preload puts it in front of what the next process reads. */
START_TEST(take_and_preload)
{
	char moved[INPUT_BUFFER_SIZE];
	struct conn a, b;
	size_t n;

	conn_open(&a, 5);
	client_send_str(&a, "USER alice\r\nPASS secret\r\nSTAT\r\nLI");
	expect_str(&a, "USER alice");
	expect_str(&a, "PASS secret");
	n = net_take_input(a.io, moved, sizeof(moved));
	ck_assert_uint_eq(n, 8);
	ck_assert(memcmp(moved, "STAT\r\nLI", 8) == 0);
	ck_assert_uint_eq(a.io->in_len, 0);
	ck_assert(!contains(a.io->in, sizeof(a.io->in), "STAT"));

	conn_open(&b, 5);
	ck_assert_int_eq(net_preload(b.io, moved, n), 0);
	client_send_str(&b, "ST\r\nQUIT\r\n");
	expect_str(&b, "STAT");
	expect_str(&b, "LIST");
	expect_str(&b, "QUIT");
	conn_close(&a);
	conn_close(&b);
}
END_TEST

START_TEST(preload_bounded)
{
	static char big[INPUT_BUFFER_SIZE + 1];
	struct conn c;

	conn_open(&c, 5);
	ck_assert_int_eq(net_preload(c.io, big, sizeof(big)), -1);
	ck_assert_int_eq(net_preload(c.io, big, INPUT_BUFFER_SIZE), 0);
	ck_assert_int_eq(net_preload(c.io, "x", 1), -1);
	conn_close(&c);
}
END_TEST

/* docs/design.md §3: no copy of a password stays in netio's buffer once
 * its line was handed out, nor of an overlong line that was dropped. */
START_TEST(consumed_input_wiped)
{
	char junk[600];
	struct conn c;

	conn_open(&c, 5);
	client_send_str(&c, "PASS hunter2-secret\r\nNOOP\r\n");
	expect_str(&c, "PASS hunter2-secret");
	ck_assert(!contains(c.io->in, sizeof(c.io->in), "hunter2"));
	expect_str(&c, "NOOP");

	memset(junk, 'z', sizeof(junk));
	memcpy(junk, "PASS longsecret-", 16);
	client_send(&c, junk, sizeof(junk));
	client_send_str(&c, "\r\nQUIT\r\n");
	expect_status(&c, CMD_LINE_MAX, NET_TOO_LONG);
	expect_str(&c, "QUIT");
	ck_assert(!contains(c.io->in, sizeof(c.io->in), "longsecret"));
	conn_close(&c);
}
END_TEST

/* --- bounded waits ------------------------------------------------------ */

/* R1939-20: a silent client times out after the idle timeout. */
START_TEST(idle_timeout)
{
	struct conn c;
	double start;

	conn_open(&c, 1);
	start = now_s();
	expect_status(&c, CMD_LINE_MAX, NET_TIMEOUT);
	ck_assert_double_ge(now_s() - start, 0.9);
	ck_assert_double_lt(now_s() - start, 3.0);
	conn_close(&c);
}
END_TEST

/* A client that trickles one octet a second resets the idle timer each
 * time, but not the pre-login deadline. */
START_TEST(deadline_beats_trickle)
{
	struct conn c;
	double start;
	pid_t pid;
	int status;

	conn_open(&c, 600);
	/* Measured from before the deadline is set: a slow fork on a
	 * loaded machine must not count against it. */
	start = now_s();
	net_set_deadline(c.io, 1);
	ck_assert_int_le(net_wait_ms(c.io), 1000);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (int i = 0; i < 8; i++) {
			if (write(c.in_w, "U", 1) != 1)
				_exit(0);
			usleep(300000);
		}
		_exit(0);
	}
	expect_status(&c, CMD_LINE_MAX, NET_TIMEOUT);
	ck_assert_double_ge(now_s() - start, 0.9);
	ck_assert_double_lt(now_s() - start, 2.0);
	ck_assert_int_eq(net_wait_ms(c.io), 0);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	conn_close(&c);
}
END_TEST

/* The pre-login deadline is checked on every line, not only when a wait
 * times out: lines read ahead (a pipelining or fast client) are not run
 * once it has passed. */
START_TEST(deadline_beats_read_ahead)
{
	struct conn c;

	conn_open(&c, 600);
	client_send_str(&c, "CAPA\r\nCAPA\r\nCAPA\r\n");
	net_set_deadline(c.io, 1);
	expect_str(&c, "CAPA");
	ck_assert_uint_gt(c.io->in_len, 0); /* two lines read ahead */
	usleep(1100000);
	expect_status(&c, CMD_LINE_MAX, NET_TIMEOUT);
	conn_close(&c);
}
END_TEST

/* A client that never reads: the write gives up after the idle timeout
 * instead of blocking the session for ever. */
START_TEST(write_timeout)
{
	/* Queued whole (a block that fills the buffer would go out at
	 * once: write_timeout_direct). */
	size_t len = OUTPUT_BUFFER_SIZE - 1;
	char *data = calloc(1, len);
	struct conn c;
	double start;

	ck_assert_ptr_nonnull(data);
	conn_open(&c, 1);
	ck_assert_int_ge(fcntl(c.out_w, F_SETPIPE_SZ, 4096), 4096);
	ck_assert_int_eq(net_write(c.io, data, len), 0);
	start = now_s();
	ck_assert_int_eq(net_flush(c.io), -1);
	ck_assert_int_eq(c.io->out_failed, NET_TIMEOUT);
	ck_assert_double_ge(now_s() - start, 0.9);
	ck_assert_double_lt(now_s() - start, 3.0);
	conn_close(&c);
	free(data);
}
END_TEST

/* The same for a block written straight from the caller's memory: the
 * wait is bounded too, and the failure sticks. */
START_TEST(write_timeout_direct)
{
	size_t len = 4 * OUTPUT_BUFFER_SIZE;
	char *data = calloc(1, len);
	struct conn c;
	double start;

	ck_assert_ptr_nonnull(data);
	conn_open(&c, 1);
	ck_assert_int_ge(fcntl(c.out_w, F_SETPIPE_SZ, 4096), 4096);
	ck_assert_int_eq(net_reply(c.io, "+OK"), 0);
	start = now_s();
	ck_assert_int_eq(net_write(c.io, data, len), -1);
	ck_assert_int_eq(c.io->out_failed, NET_TIMEOUT);
	ck_assert_double_ge(now_s() - start, 0.9);
	ck_assert_double_lt(now_s() - start, 3.0);
	ck_assert_int_eq(net_write(c.io, data, 10), -1);
	conn_close(&c);
	free(data);
}
END_TEST

/* --- runner ------------------------------------------------------------- */

static Suite *
netio_suite(void)
{
	Suite *s = suite_create("netio");
	TCase *tc;

	tc = tcase_create("lines");
	tcase_add_test(tc, line_ends);
	tcase_add_test(tc, nul_bytes_kept);
	tcase_add_test(tc, line_in_pieces);
	tcase_add_loop_test(tc, line_limit, 0, N(limit_cases));
	tcase_add_test(tc, overlong_line_one_error);
	tcase_add_test(tc, overlong_line_larger_than_buffer);
	tcase_add_test(tc, overlong_line_then_eof);
	suite_add_tcase(s, tc);

	tc = tcase_create("output");
	tcase_add_test(tc, replies_batched_until_input_runs_dry);
	tcase_add_test(tc, flush_before_waiting);
	tcase_add_test(tc, reply_line_bounded);
	tcase_add_loop_test(tc, large_output_intact, 0, N(piece_sizes));
	tcase_add_test(tc, write_failure_sticks);
	tcase_add_test(tc, read_ahead_while_writing);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);

	tc = tcase_create("handover");
	tcase_add_test(tc, discard_input_after_stls);
	tcase_add_test(tc, take_and_preload);
	tcase_add_test(tc, preload_bounded);
	tcase_add_test(tc, consumed_input_wiped);
	suite_add_tcase(s, tc);

	tc = tcase_create("timeouts");
	tcase_add_test(tc, idle_timeout);
	tcase_add_test(tc, deadline_beats_trickle);
	tcase_add_test(tc, deadline_beats_read_ahead);
	tcase_add_test(tc, write_timeout);
	tcase_add_test(tc, write_timeout_direct);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(netio_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
