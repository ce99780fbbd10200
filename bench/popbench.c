/* bench/popbench: a POP3 client for benchmarks, fast enough not to be
 * what is measured.
 *
 *   popbench [options] SCENARIO -t HOST:PORT
 *   popbench [options] SCENARIO -- COMMAND [ARG...]
 *   popbench wrap FILE [-E NAME=VALUE]... -- COMMAND [ARG...]
 *
 * With -t it connects over TCP; with a COMMAND it starts that command on
 * two pipes (its standard input and output), as inetd would with a pipe,
 * and reports its resource usage from wait4(2): peak resident memory and
 * user/system CPU of the process and of the children it reaped.
 *
 * Scenarios (each one whole session; every one but "sink" logs in with
 * USER/PASS and ends with QUIT, waiting for the server to close):
 *   stat        STAT
 *   list        LIST, then UIDL
 *   top         TOP n 0 for every message
 *   retr        RETR of every message
 *   dele-first  DELE 1
 *   dele-half   DELE of every other message (1, 3, 5, ...)
 *   dele-all    DELE of every message
 *   dele-last   DELE of the last message
 *   greet       no login: the greeting, then QUIT (start-up cost)
 *   sink        no POP3: read until EOF (the client's own ceiling, e.g.
 *               with "cat SPOOL" as the command)
 * All but greet, stat and sink send STAT first to learn the message count.
 *
 * Replies are not parsed line by line: a multi-line reply is read in
 * large blocks and only its last five octets are looked at (commands go
 * one at a time, so the reply ends where the data ends). With -P N, up
 * to N commands are in flight (pipelining, RFC 2449) and the end of each
 * reply is found with memmem.
 *
 * Options:
 *   -u USER -p PASS   login (default alice / secret)
 *   -S                STLS after the greeting, then log in under TLS
 *   -q                TCP_QUICKACK after every read (no delayed ACKs)
 *   -P N              pipeline up to N commands (default 1: lockstep)
 *   -r N              run the session N times in a row; report the total
 *   -E NAME=VALUE     set in the started command's environment only
 *   -L FILE           the started command's standard error (default
 *                     /dev/null)
 *   -e N              expect N messages (STAT); fail otherwise
 *   -m N              top and retr: only the first N messages
 *
 * Output, one line: scenario=... wall=SECONDS greet=SECONDS (start to
 * greeting) auth=SECONDS (PASS sent to its +OK) quit=SECONDS (QUIT sent
 * to its +OK: UPDATE) msgs=N rx=OCTETS (all received), and
 * with a COMMAND utime=SECONDS stime=SECONDS maxrss=KB. With -r N the
 * times are the median per session and wall is the total.
 *
 * "wrap FILE [-E NAME=VALUE]... -- COMMAND" runs COMMAND as its child with the
 * same standard input and output, closes its own copies (so the peer sees EOF
 * when the child is done), waits and appends "utime=.. stime=.. maxrss=.." to
 * FILE: the same figures for a server started by systemd-socket-activate. The
 * -E variables are set for COMMAND only (LD_PRELOAD for the cwrap
 * libraries, which the wrapper itself had better not load).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (1 << 20)

struct opts {
	const char *scenario;
	const char *user, *pass;
	const char *host, *port;
	char **cmd;
	char **env; /* NAME=VALUE for the command */
	int nenv;
	const char *log;
	bool stls, quickack;
	int pipeline, repeat;
	long expect, max_msgs;
};

struct conn {
	int rfd, wfd;
	pid_t pid;
	SSL *ssl;
	bool quickack;
	char *buf;
	uint64_t rx;
	/* pipelined parsing */
	size_t have, off; /* unparsed data in buf: [off, have) */
};

struct result {
	double wall, greet, auth, quit;
	long msgs;
	uint64_t rx;
	struct rusage ru;
	bool have_ru;
};

static SSL_CTX *ssl_ctx;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("popbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- transport ------------------------------------------------------------ */

static void
tcp_connect(struct conn *c, const struct opts *o)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	int fd, r;

	r = getaddrinfo(o->host, o->port, &hints, &res);
	if (r != 0)
		die("%s:%s: %s", o->host, o->port, gai_strerror(r));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	while (connect(fd, res->ai_addr, res->ai_addrlen) < 0)
		if (errno != EINTR)
			die("connect %s:%s: %s", o->host, o->port,
			    strerror(errno));
	freeaddrinfo(res);
	c->rfd = c->wfd = fd;
	c->pid = -1;
}

static void
spawn(struct conn *c, const struct opts *o)
{
	int in[2], out[2];
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int err = open(o->log != NULL ? o->log : "/dev/null",
			       O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 ||
		    (err >= 0 && dup2(err, 2) < 0))
			_exit(127);
		for (int i = 0; i < o->nenv; i++)
			putenv(o->env[i]);
		execvp(o->cmd[0], o->cmd);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->wfd = in[1];
	c->rfd = out[0];
	c->pid = pid;
}

static ssize_t
conn_read(struct conn *c, char *buf, size_t n)
{
	ssize_t r;

	if (c->ssl != NULL) {
		r = SSL_read(c->ssl, buf, (int)n);
		if (r <= 0) {
			int e = SSL_get_error(c->ssl, (int)r);

			if (e == SSL_ERROR_ZERO_RETURN ||
			    e == SSL_ERROR_SYSCALL)
				return 0;
			die("SSL_read: error %d", e);
		}
	} else {
		do
			r = read(c->rfd, buf, n);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			if (errno == ECONNRESET)
				return 0;
			die("read: %s", strerror(errno));
		}
	}
	if (c->quickack) {
		int one = 1;

		(void)setsockopt(c->rfd, IPPROTO_TCP, TCP_QUICKACK, &one,
				 sizeof(one));
	}
	c->rx += (uint64_t)r;
	return r;
}

static void
conn_write(struct conn *c, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if (c->ssl != NULL) {
			w = SSL_write(c->ssl, p, (int)n);
			if (w <= 0)
				die("SSL_write: error %d",
				    SSL_get_error(c->ssl, (int)w));
		} else {
			w = write(c->wfd, p, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				die("write: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
}

/* --- replies --------------------------------------------------------------
 *
 * Lockstep: one command out, its whole reply in. The status line is read
 * into buf; for a multi-line +OK reply the rest is read in blocks and
 * only the last five octets of the stream are kept. */

static const char TERM[] = "\r\n.\r\n";

/* Returns 1 for +OK, 0 for -ERR; the status line (without CRLF) is
 * copied to line if that is not NULL. */
static int
reply(struct conn *c, bool multi, char *line, size_t max)
{
	size_t have = 0, eol;
	char tail[5];
	char *lf = NULL;
	ssize_t n;
	int ok;

	while (lf == NULL) {
		n = conn_read(c, c->buf + have, BUF_SIZE - have);
		if (n == 0)
			die("connection closed while waiting for a reply");
		lf = memchr(c->buf + have, '\n', (size_t)n);
		have += (size_t)n;
	}
	eol = (size_t)(lf - c->buf);
	ok = have >= 3 && memcmp(c->buf, "+OK", 3) == 0;
	if (!ok && (have < 4 || memcmp(c->buf, "-ERR", 4) != 0))
		die("not a POP3 status line: %.60s", c->buf);
	if (line != NULL) {
		size_t l = eol > 0 && c->buf[eol - 1] == '\r' ? eol - 1 : eol;

		if (l >= max)
			l = max - 1;
		memcpy(line, c->buf, l);
		line[l] = '\0';
	}
	if (!ok || !multi) {
		if (have != eol + 1)
			die("unexpected data after a single-line reply");
		return ok;
	}
	/* The stream's last five octets; the status line's CRLF counts. */
	if (have >= 5) {
		memcpy(tail, c->buf + have - 5, 5);
	} else {
		memset(tail, 0, 5);
		memcpy(tail + 5 - have, c->buf, have);
	}
	while (memcmp(tail, TERM, 5) != 0) {
		n = conn_read(c, c->buf, BUF_SIZE);
		if (n == 0)
			die("connection closed inside a multi-line reply");
		if (n >= 5) {
			memcpy(tail, c->buf + n - 5, 5);
		} else {
			memmove(tail, tail + n, 5 - (size_t)n);
			memcpy(tail + 5 - n, c->buf, (size_t)n);
		}
	}
	return ok;
}

static void
command(struct conn *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	line[n++] = '\r';
	line[n++] = '\n';
	conn_write(c, line, (size_t)n);
}

static void
expect_ok(struct conn *c, bool multi, const char *what)
{
	char line[512];

	if (!reply(c, multi, line, sizeof(line)))
		die("%s: %s", what, line);
}

/* Pipelined: commands i = 1..n go out with at most `window` in flight;
 * replies are parsed out of the stream. */
struct pstate {
	int phase; /* 0: status line, 1: multi-line body */
	bool ok;
	char win[4]; /* the last octets of the body so far */
	int nwin;
};

/* Consume what buf holds of the current reply; return true when it is
 * complete. */
static bool
parse_some(struct conn *c, struct pstate *st, bool multi)
{
	char *p = c->buf + c->off, *e = c->buf + c->have, *lf, *hit;

	if (st->phase == 0) {
		lf = memchr(p, '\n', (size_t)(e - p));
		if (lf == NULL) {
			/* The status line is short: keep its start. */
			if (p == c->buf && e - p > 512)
				die("status line too long");
			return false;
		}
		if (e - p < 3)
			die("short status line");
		st->ok = memcmp(p, "+OK", 3) == 0;
		c->off = (size_t)(lf + 1 - c->buf);
		if (!st->ok || !multi)
			return true;
		st->phase = 1;
		memcpy(st->win, "\r\n", 2);
		st->nwin = 2;
		p = lf + 1;
	}
	/* A terminator that straddles what we saw before and this data. */
	{
		char tmp[9];
		size_t k = (size_t)(e - p) < 5 ? (size_t)(e - p) : 5;

		memcpy(tmp, st->win, (size_t)st->nwin);
		memcpy(tmp + st->nwin, p, k);
		hit = memmem(tmp, (size_t)st->nwin + k, TERM, 5);
		if (hit != NULL) {
			c->off = (size_t)(p - c->buf) +
				 (size_t)(hit - tmp + 5 - st->nwin);
			return true;
		}
	}
	hit = memmem(p, (size_t)(e - p), TERM, 5);
	if (hit != NULL) {
		c->off = (size_t)(hit + 5 - c->buf);
		return true;
	}
	if (e - p >= 4) {
		memcpy(st->win, e - 4, 4);
		st->nwin = 4;
	} else {
		/* Rare: a tiny read; keep older octets too. */
		char tmp[8];
		size_t k = (size_t)(e - p), all = (size_t)st->nwin + k;
		size_t keep = all < 4 ? all : 4;

		memcpy(tmp, st->win, (size_t)st->nwin);
		memcpy(tmp + st->nwin, p, k);
		memcpy(st->win, tmp + all - keep, keep);
		st->nwin = (int)keep;
	}
	c->off = c->have;
	return false;
}

static void
pipelined(struct conn *c, const char *verb, const char *suffix, long n,
	  long step, bool multi, int window)
{
	long next = 1, done = 0, sent = 0, total = (n + step - 1) / step;
	char out[65536];
	struct pstate st = {0};
	ssize_t r;

	c->have = c->off = 0;
	while (done < total) {
		if (sent - done <= window / 2 && sent < total) {
			size_t len = 0;

			while (sent < total && sent - done < window &&
			       len < sizeof(out) - 64) {
				len += (size_t)snprintf(out + len, 64,
							"%s %ld%s\r\n", verb,
							next, suffix);
				next += step;
				sent++;
			}
			conn_write(c, out, len);
		}
		while (done < sent && c->off < c->have &&
		       parse_some(c, &st, multi)) {
			if (!st.ok)
				die("%s failed", verb);
			memset(&st, 0, sizeof(st));
			done++;
		}
		if (done == total ||
		    (sent - done <= window / 2 && sent < total))
			continue;
		/* Keep an unfinished status line; drop consumed data. */
		if (c->off < c->have && st.phase == 0) {
			memmove(c->buf, c->buf + c->off, c->have - c->off);
			c->have -= c->off;
		} else {
			c->have = 0;
		}
		c->off = 0;
		r = conn_read(c, c->buf + c->have, BUF_SIZE - c->have);
		if (r == 0)
			die("connection closed with replies outstanding");
		c->have += (size_t)r;
	}
	if (c->off != c->have)
		die("unexpected data after the last reply");
}

/* --- one session -----------------------------------------------------------
 */

static void
start_tls(struct conn *c)
{
	if (ssl_ctx == NULL) {
		ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (ssl_ctx == NULL)
			die("SSL_CTX_new failed");
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
	}
	c->ssl = SSL_new(ssl_ctx);
	if (c->ssl == NULL || SSL_set_rfd(c->ssl, c->rfd) != 1 ||
	    SSL_set_wfd(c->ssl, c->wfd) != 1)
		die("SSL setup failed");
	if (SSL_connect(c->ssl) != 1) {
		ERR_print_errors_fp(stderr);
		die("TLS handshake failed");
	}
}

static void
each(struct conn *c, const struct opts *o, const char *verb, const char *suffix,
     long n, long step, bool multi)
{
	if (o->pipeline > 1) {
		pipelined(c, verb, suffix, n, step, multi, o->pipeline);
		return;
	}
	for (long i = 1; i <= n; i += step) {
		command(c, "%s %ld%s", verb, i, suffix);
		expect_ok(c, multi, verb);
	}
}

static void
session(const struct opts *o, struct result *res)
{
	struct conn c = {.quickack = o->quickack};
	double t0 = now(), t;
	char line[512];
	long n = -1, m;
	int status;

	c.buf = malloc(BUF_SIZE);
	if (c.buf == NULL)
		die("out of memory");
	if (o->cmd != NULL)
		spawn(&c, o);
	else
		tcp_connect(&c, o);

	if (strcmp(o->scenario, "sink") == 0) {
		while (conn_read(&c, c.buf, BUF_SIZE) > 0)
			;
		res->greet = res->auth = 0;
		goto done;
	}
	expect_ok(&c, false, "greeting");
	res->greet = now() - t0;
	if (strcmp(o->scenario, "greet") == 0) {
		res->auth = 0;
		goto quit;
	}
	if (o->stls) {
		command(&c, "STLS");
		expect_ok(&c, false, "STLS");
		start_tls(&c);
	}
	command(&c, "USER %s", o->user);
	expect_ok(&c, false, "USER");
	command(&c, "PASS %s", o->pass);
	t = now();
	expect_ok(&c, false, "PASS");
	res->auth = now() - t;

	command(&c, "STAT");
	if (!reply(&c, false, line, sizeof(line)) ||
	    sscanf(line, "+OK %ld", &n) != 1)
		die("STAT: %s", line);
	if (o->expect >= 0 && n != o->expect)
		die("STAT says %ld messages, expected %ld", n, o->expect);
	res->msgs = n;
	m = o->max_msgs >= 0 && o->max_msgs < n ? o->max_msgs : n;

	if (strcmp(o->scenario, "stat") == 0) {
	} else if (strcmp(o->scenario, "list") == 0) {
		command(&c, "LIST");
		expect_ok(&c, true, "LIST");
		command(&c, "UIDL");
		expect_ok(&c, true, "UIDL");
	} else if (strcmp(o->scenario, "top") == 0) {
		each(&c, o, "TOP", " 0", m, 1, true);
	} else if (strcmp(o->scenario, "retr") == 0) {
		each(&c, o, "RETR", "", m, 1, true);
	} else if (strcmp(o->scenario, "dele-first") == 0) {
		each(&c, o, "DELE", "", n > 0 ? 1 : 0, 1, false);
	} else if (strcmp(o->scenario, "dele-half") == 0) {
		each(&c, o, "DELE", "", n, 2, false);
	} else if (strcmp(o->scenario, "dele-all") == 0) {
		each(&c, o, "DELE", "", n, 1, false);
	} else if (strcmp(o->scenario, "dele-last") == 0) {
		if (n > 0) {
			command(&c, "DELE %ld", n);
			expect_ok(&c, false, "DELE");
		}
	} else {
		die("unknown scenario %s", o->scenario);
	}
quit:
	t = now();
	command(&c, "QUIT");
	expect_ok(&c, false, "QUIT");
	res->quit = now() - t;
	/* The server closes the connection; under TLS after close_notify. */
	while (conn_read(&c, c.buf, BUF_SIZE) > 0)
		;
done:
	if (c.ssl != NULL) {
		SSL_free(c.ssl);
		c.ssl = NULL;
	}
	if (c.pid > 0) {
		close(c.wfd);
		close(c.rfd);
		while (wait4(c.pid, &status, 0, &res->ru) < 0)
			if (errno != EINTR)
				die("wait4: %s", strerror(errno));
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			die("the server exited with status 0x%x", status);
		res->have_ru = true;
	} else {
		close(c.rfd);
	}
	res->wall = now() - t0;
	res->rx = c.rx;
	free(c.buf);
}

/* --- wrap -------------------------------------------------------------------
 */

static int
wrap(const char *file, char **env, int nenv, char **cmd)
{
	struct rusage ru;
	int status, fd;
	char line[160];
	pid_t pid;

	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		for (int i = 0; i < nenv; i++)
			putenv(env[i]);
		execvp(cmd[0], cmd);
		_exit(127);
	}
	/* The connection is the child's now: the client must see EOF as
	 * soon as the child closes it. */
	fd = open("/dev/null", O_RDWR);
	dup2(fd, 0);
	dup2(fd, 1);
	while (wait4(pid, &status, 0, &ru) < 0)
		if (errno != EINTR)
			die("wait4: %s", strerror(errno));
	snprintf(line, sizeof(line),
		 "pid=%d status=%d utime=%.6f stime=%.6f maxrss=%ld\n",
		 (int)pid, status,
		 ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
		 ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss);
	fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		(void)!write(fd, line, strlen(line));
		close(fd);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
	struct opts o = {.user = "alice",
			 .pass = "secret",
			 .pipeline = 1,
			 .repeat = 1,
			 .expect = -1,
			 .max_msgs = -1};
	int c;

	signal(SIGPIPE, SIG_IGN);
	if (argc >= 3 && strcmp(argv[1], "wrap") == 0) {
		int i = 3, nenv = 0;

		while (i + 1 < argc && strcmp(argv[i], "-E") == 0) {
			argv[3 + nenv++] = argv[i + 1];
			i += 2;
		}
		if (i + 1 >= argc || strcmp(argv[i], "--") != 0)
			die("usage: popbench wrap FILE [-E NAME=VALUE]... -- "
			    "COMMAND [ARG...]");
		return wrap(argv[2], argv + 3, nenv, argv + i + 1);
	}
	o.env = calloc((size_t)argc, sizeof(char *));
	/* Options may come before and after the scenario. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (optind >= argc)
				die("no scenario");
			o.scenario = argv[optind++];
		}
		while ((c = getopt(argc, argv, "+u:p:t:SqP:r:E:L:e:m:")) !=
		       -1) {
			switch (c) {
			case 'u':
				o.user = optarg;
				break;
			case 'p':
				o.pass = optarg;
				break;
			case 't': {
				char *colon = strrchr(optarg, ':');

				if (colon == NULL)
					die("-t takes HOST:PORT");
				*colon = '\0';
				o.host = optarg;
				o.port = colon + 1;
				break;
			}
			case 'S':
				o.stls = true;
				break;
			case 'q':
				o.quickack = true;
				break;
			case 'P':
				o.pipeline = atoi(optarg);
				break;
			case 'r':
				o.repeat = atoi(optarg);
				break;
			case 'E':
				o.env[o.nenv++] = optarg;
				break;
			case 'L':
				o.log = optarg;
				break;
			case 'e':
				o.expect = atol(optarg);
				break;
			case 'm':
				o.max_msgs = atol(optarg);
				break;
			default:
				die("bad option (see the comment at the top of "
				    "bench/popbench.c)");
			}
		}
	}
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (optind < argc)
		o.cmd = argv + optind;
	if ((o.cmd == NULL) == (o.host == NULL))
		die("give either -t HOST:PORT or -- COMMAND");
	if (o.repeat < 1 || o.pipeline < 1)
		die("-r and -P take a positive number");

	struct result res = {0};
	double *greet = calloc((size_t)o.repeat, sizeof(double));
	double *auth = calloc((size_t)o.repeat, sizeof(double));
	double *wall = calloc((size_t)o.repeat, sizeof(double));
	double *quit = calloc((size_t)o.repeat, sizeof(double));
	double t0 = now(), ut = 0, st = 0;
	long maxrss = 0;

	for (int i = 0; i < o.repeat; i++) {
		memset(&res, 0, sizeof(res));
		res.msgs = -1;
		session(&o, &res);
		greet[i] = res.greet;
		auth[i] = res.auth;
		wall[i] = res.wall;
		quit[i] = res.quit;
		if (res.have_ru) {
			ut += res.ru.ru_utime.tv_sec +
			      res.ru.ru_utime.tv_usec / 1e6;
			st += res.ru.ru_stime.tv_sec +
			      res.ru.ru_stime.tv_usec / 1e6;
			if (res.ru.ru_maxrss > maxrss)
				maxrss = res.ru.ru_maxrss;
		}
	}
	double total = now() - t0;

	printf("scenario=%s wall=%.6f greet=%.6f auth=%.6f quit=%.6f msgs=%ld "
	       "rx=%llu",
	       o.scenario, o.repeat > 1 ? total : wall[0],
	       median(greet, o.repeat), median(auth, o.repeat),
	       median(quit, o.repeat), res.msgs, (unsigned long long)res.rx);
	if (o.repeat > 1)
		printf(" session=%.6f", median(wall, o.repeat));
	if (res.have_ru)
		printf(" utime=%.6f stime=%.6f maxrss=%ld", ut / o.repeat,
		       st / o.repeat, maxrss);
	printf("\n");
	return 0;
}
