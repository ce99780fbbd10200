/* bench/genspool: write a deterministic, realistic mbox spool.
 *
 *   genspool [-s SEED] [-o UID:GID] [-m MODE] MESSAGES BYTES FILE
 *
 * MESSAGES messages of log-normal sizes (sigma 1.3, scaled so that they
 * add up to about BYTES), as an MTA delivers them: a From_ line, 10-20
 * header fields (folded Received: and DKIM-Signature: fields), then one of
 *   - text/plain: wrapped paragraphs, quoted ">From " lines (as mbox
 *     writers escape them), lines starting with a dot ("..", ".sig", a
 *     lone ".") and now and then one very long line (1-20 KB);
 *   - multipart/alternative: the text and an HTML part with long lines;
 *   - multipart/mixed: a text part and one or more base64 attachments in
 *     76-column lines (what most of the bytes of a real spool are).
 * About 3 % of the messages are stored with CRLF line ends (as some
 * Windows-fed MDAs leave them). Every message ends with the empty
 * separator line. No body line starts with "From ".
 *
 * The same SEED, MESSAGES and BYTES give the same file, byte for byte.
 * The file is created with MODE (default 0600) and, with -o, given to
 * UID:GID, as a spool must be (pop3d serves only the owner's own file).
 * A summary goes to standard error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t rng_state;

static uint64_t
rnd(void)
{
	/* splitmix64: tiny, fast, the same everywhere. */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned
rndn(unsigned n)
{
	return (unsigned)(((rnd() >> 32) * (uint64_t)n) >> 32);
}

static double
rndf(void)
{
	return (double)(rnd() >> 11) / 9007199254740992.0;
}

static double
gauss(void)
{
	double u = rndf(), v = rndf();

	if (u < 1e-300)
		u = 1e-300;
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* --- output: one big buffer, line ends converted for CRLF messages ----- */

static char *out;
static size_t out_len, out_cap;
static int out_fd;
static uint64_t total_written;
static int crlf; /* the message being written uses CRLF */

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("genspool: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void
flush_out(void)
{
	size_t done = 0;
	ssize_t n;

	while (done < out_len) {
		n = write(out_fd, out + done, out_len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write: %s", strerror(errno));
		done += n;
	}
	total_written += out_len;
	out_len = 0;
}

static void
put(const char *p, size_t n)
{
	if (out_len + 2 * n + 2 > out_cap) {
		flush_out();
		if (2 * n + 2 > out_cap)
			die("piece too large");
	}
	if (!crlf) {
		memcpy(out + out_len, p, n);
		out_len += n;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			out[out_len++] = '\r';
		out[out_len++] = p[i];
	}
}

static void
puts_(const char *s)
{
	put(s, strlen(s));
}

static void __attribute__((format(printf, 1, 2))) putf(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		die("putf overflow");
	put(buf, n);
}

/* --- content ------------------------------------------------------------ */

static const char *const words[] = {
	"the",	    "of",      "and",	   "to",       "in",	    "is",
	"that",	    "for",     "it",	   "as",       "was",	    "with",
	"be",	    "by",      "on",	   "not",      "he",	    "this",
	"are",	    "or",      "his",	   "at",       "which",	    "but",
	"have",	    "an",      "had",	   "they",     "you",	    "were",
	"their",    "one",     "all",	   "we",       "can",	    "her",
	"has",	    "there",   "been",	   "if",       "more",	    "when",
	"will",	    "would",   "who",	   "so",       "no",	    "mailbox",
	"server",   "message", "delivery", "attached", "report",    "meeting",
	"schedule", "please",  "review",   "thanks",   "regards",   "update",
	"project",  "budget",  "quarter",  "invoice",  "customer",  "release",
	"version",  "patch",   "kernel",   "network",  "storage",   "backup",
	"monday",   "tuesday", "friday",   "tomorrow", "yesterday", "office",
	"question", "answer",  "problem",  "solution", "document",  "draft",
	"final",    "urgent",  "minutes",  "agenda",   "travel",    "expense",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static const char *const names[] = {
	"alice",  "bob",   "carol", "dave",    "erin",	 "frank",  "grace",
	"heidi",  "ivan",  "judy",  "mallory", "niaj",	 "olivia", "peggy",
	"rupert", "sybil", "trent", "victor",  "walter", "zoe",
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static const char *const domains[] = {
	"example.org",	    "example.net",	 "example.com",
	"mail.example.org", "lists.example.net", "corp.example.com",
};
#define NDOMAINS (sizeof(domains) / sizeof(domains[0]))

static const char *const days[] = {"Mon", "Tue", "Wed", "Thu",
				   "Fri", "Sat", "Sun"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* A line of prose, about width columns; first word capitalised. */
static size_t
prose_line(char *buf, size_t width)
{
	size_t n = 0;
	int first = 1;

	while (n < width) {
		const char *w = words[rndn(NWORDS)];
		size_t l = strlen(w);

		if (!first)
			buf[n++] = ' ';
		memcpy(buf + n, w, l);
		if (first)
			buf[n] = (char)(buf[n] - 'a' + 'A');
		n += l;
		first = 0;
		if (rndn(12) == 0 && n < width)
			buf[n++] = rndn(3) == 0 ? ',' : '.';
	}
	buf[n++] = '\n';
	return n;
}

/* Text of about `bytes`, in paragraphs, with the lines that test a POP3
 * server's care: dot lines, ">From " lines, a rare very long line. */
static void
text_body(long bytes)
{
	char line[32768];
	long done = 0;
	size_t n;

	while (done < bytes) {
		unsigned kind = rndn(1000);

		if (kind < 6) {
			static const char *const dots[] = {
				".\n",
				"..\n",
				".signature follows below\n",
				"...and then the second part\n",
				". \n",
				".hidden line\n"};
			const char *d = dots[rndn(6)];

			n = strlen(d);
			memcpy(line, d, n);
		} else if (kind < 10) {
			n = (size_t)snprintf(
				line, sizeof(line),
				">From %s's note: ", names[rndn(NNAMES)]);
			n += prose_line(line + n, 50);
		} else if (kind < 12) {
			/* One long unwrapped line (1-20 KB). */
			size_t want = 1000 + rndn(19000);

			n = prose_line(line, want);
		} else if (kind < 90) {
			line[0] = '\n'; /* paragraph break */
			n = 1;
		} else if (kind < 110) {
			line[0] = '>';
			line[1] = ' ';
			n = 2 + prose_line(line + 2, 40 + rndn(30));
		} else {
			n = prose_line(line, 50 + rndn(22));
		}
		put(line, n);
		done += (long)n;
	}
}

static void
html_body(long bytes)
{
	char line[32768];
	long done = 0;
	size_t n;

	puts_("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
	      "<style>p{margin:0 0 1em 0}</style></head><body>\n");
	while (done < bytes) {
		/* HTML mailers write long lines: 200 B to 8 KB. */
		n = (size_t)snprintf(line, sizeof(line),
				     "<p style=\"font-family:Arial,sans-serif;"
				     "font-size:14px\">");
		n += prose_line(line + n, 200 + rndn(8000)) - 1;
		n += (size_t)snprintf(line + n, sizeof(line) - n, "</p>\n");
		put(line, n);
		done += (long)n;
	}
	puts_("</body></html>\n");
}

/* Base64 of `bytes` pseudo-random octets, 76 columns. */
static void
base64_body(long bytes)
{
	char line[80];
	long groups = (bytes + 2) / 3, col = 0;
	size_t n = 0;

	for (long g = 0; g < groups; g++) {
		uint64_t r = rnd();

		line[n++] = b64[r & 63];
		line[n++] = b64[(r >> 6) & 63];
		line[n++] = b64[(r >> 12) & 63];
		line[n++] = b64[(r >> 18) & 63];
		col += 4;
		if (col == 76 || g == groups - 1) {
			line[n++] = '\n';
			put(line, n);
			n = 0;
			col = 0;
		}
	}
}

static void
date_line(char *buf, size_t size, unsigned i)
{
	/* A date that moves forward through the spool. */
	unsigned d = i / 97, day = 1 + d % 28, mon = (d / 28) % 12;

	snprintf(buf, size, "%s, %u %s %u %02u:%02u:%02u +0000",
		 days[(day + mon) % 7], day, months[mon], 2020 + (d / 336) % 6,
		 rndn(24), rndn(60), rndn(60));
}

static void
headers(unsigned i, const char *user, const char *ctype)
{
	const char *from = names[rndn(NNAMES)];
	const char *dom = domains[rndn(NDOMAINS)];
	char date[64], id[32];

	date_line(date, sizeof(date), i);
	for (int k = 0; k < 16; k++)
		id[k] = b64[rndn(62)];
	id[16] = '\0';
	putf("Return-Path: <%s@%s>\n", from, dom);
	putf("X-Original-To: %s@localhost\n", user);
	putf("Delivered-To: %s@localhost\n", user);
	putf("Received: from mx%u.%s (mx%u.%s [192.0.2.%u])\n"
	     "\tby localhost (Postfix) with ESMTPS id %.12s\n"
	     "\tfor <%s@localhost>; %s\n",
	     rndn(9), dom, rndn(9), dom, 1 + rndn(250), id, user, date);
	if (rndn(2) == 0)
		putf("Received: from [10.%u.%u.%u] (unknown [198.51.100.%u])\n"
		     "\tby mx.%s (Postfix) with ESMTPSA id %.10s;\n"
		     "\t%s\n",
		     rndn(256), rndn(256), rndn(256), 1 + rndn(250), dom,
		     id + 6, date);
	if (rndn(3) != 0) {
		char sig[400];

		for (size_t k = 0; k < sizeof(sig) - 1; k++)
			sig[k] = b64[rndn(64)];
		sig[sizeof(sig) - 1] = '\0';
		putf("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; "
		     "d=%s;\n\ts=2024; t=17%08u; bh=%.43s=;\n"
		     "\th=From:To:Subject:Date:Message-ID;\n"
		     "\tb=%.76s\n\t %.76s\n\t %.76s\n\t %.76s\n",
		     dom, rndn(100000000), sig, sig + 50, sig + 126, sig + 202,
		     sig + 278);
	}
	putf("Date: %s\n", date);
	putf("From: %c%s <%s@%s>\n", from[0] - 'a' + 'A', from + 1, from, dom);
	putf("To: %s@localhost\n", user);
	putf("Subject: %s %s %s #%u\n", words[rndn(NWORDS)],
	     words[rndn(NWORDS)], words[rndn(NWORDS)], i + 1);
	putf("Message-ID: <%u.%s@%s>\n", i + 1, id, dom);
	if (rndn(4) == 0)
		putf("X-Mailer: Thunderbird %u.%u\n", 60 + rndn(70), rndn(10));
	puts_("MIME-Version: 1.0\n");
	putf("Content-Type: %s\n", ctype);
	puts_("\n");
}

static void
message(unsigned i, long size, const char *user)
{
	long body = size - 900; /* about what headers take */
	unsigned kind = rndn(100);
	char ctype[160], bnd[40];

	crlf = 0;
	putf("From %s@%s %s %s %2u %02u:%02u:%02u %u\n", names[rndn(NNAMES)],
	     domains[rndn(NDOMAINS)], days[rndn(7)], months[rndn(12)],
	     1 + rndn(28), rndn(24), rndn(60), rndn(60), 2020 + rndn(6));
	crlf = rndn(100) < 3;
	if (body < 100)
		body = 100;
	snprintf(bnd, sizeof(bnd), "=_bnd_%08x%08x", (unsigned)rnd(),
		 (unsigned)rnd());
	if (body < 6000 || kind < 45) {
		headers(i, user, "text/plain; charset=utf-8");
		text_body(body);
	} else if (kind < 60 && body < 200000) {
		snprintf(ctype, sizeof(ctype),
			 "multipart/alternative; boundary=\"%s\"", bnd);
		headers(i, user, ctype);
		putf("This is a multi-part message in MIME format.\n\n--%s\n"
		     "Content-Type: text/plain; charset=utf-8\n\n",
		     bnd);
		text_body(body / 3);
		putf("\n--%s\nContent-Type: text/html; charset=utf-8\n"
		     "Content-Transfer-Encoding: 8bit\n\n",
		     bnd);
		html_body(body - body / 3 - 300);
		putf("\n--%s--\n", bnd);
	} else {
		long text = 300 + rndn(3000), rest = body - text - 400;
		int parts = 1 + (rndn(4) == 0);

		snprintf(ctype, sizeof(ctype),
			 "multipart/mixed; boundary=\"%s\"", bnd);
		headers(i, user, ctype);
		putf("This is a multi-part message in MIME format.\n\n--%s\n"
		     "Content-Type: text/plain; charset=utf-8\n\n",
		     bnd);
		text_body(text);
		for (int p = 0; p < parts; p++) {
			long part = rest / parts;

			putf("\n--%s\nContent-Type: application/octet-stream;"
			     " name=\"file%d.bin\"\n"
			     "Content-Transfer-Encoding: base64\n"
			     "Content-Disposition: attachment;"
			     " filename=\"file%d.bin\"\n\n",
			     bnd, p, p);
			/* 4 characters of base64 for every 3 octets, +LF. */
			base64_body(part * 3 / 4 * 76 / 77);
		}
		putf("\n--%s--\n", bnd);
	}
	/* The separator before the next From_ line: LF even after a CRLF
	 * message, as every mbox reader recognises it. */
	crlf = 0;
	puts_("\n");
}

int
main(int argc, char **argv)
{
	uint64_t seed = 1;
	long uid = -1, gid = -1;
	unsigned mode = 0600;
	const char *user = "alice";
	int c;

	while ((c = getopt(argc, argv, "s:o:m:u:")) != -1) {
		switch (c) {
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'o':
			if (sscanf(optarg, "%ld:%ld", &uid, &gid) != 2)
				die("-o takes UID:GID");
			break;
		case 'm':
			mode = (unsigned)strtoul(optarg, NULL, 8);
			break;
		case 'u':
			user = optarg;
			break;
		default:
			die("usage: genspool [-s SEED] [-o UID:GID] [-m MODE] "
			    "[-u USER] MESSAGES BYTES FILE");
		}
	}
	if (argc - optind != 3)
		die("usage: genspool [-s SEED] [-o UID:GID] [-m MODE] "
		    "[-u USER] MESSAGES BYTES FILE");
	unsigned n = (unsigned)strtoul(argv[optind], NULL, 0);
	double total = strtod(argv[optind + 1], NULL);
	const char *path = argv[optind + 2];

	if (n == 0 || total < n * 1000.0)
		die("need at least one message and 1000 bytes per message");
	rng_state = seed * 0x2545f4914f6cdd1dULL + n;

	/* Log-normal sizes, scaled to the total; the scale also moves the
	 * floor and the cap, so scale first, then clamp. */
	double *size = malloc(n * sizeof(*size)), sum = 0;
	double cap = total / 20 > 8e6 ? 8e6 : total / 20;

	if (size == NULL)
		die("out of memory");
	for (unsigned i = 0; i < n; i++) {
		size[i] = exp(8.3 + 1.3 * gauss());
		sum += size[i];
	}
	for (unsigned i = 0; i < n; i++) {
		size[i] *= total / sum;
		if (size[i] > cap)
			size[i] = cap;
		if (size[i] < 1000)
			size[i] = 1000;
	}
	/* The clamp lost some bytes: give them back evenly. */
	sum = 0;
	for (unsigned i = 0; i < n; i++)
		sum += size[i];
	for (unsigned i = 0; i < n; i++)
		size[i] *= total / sum;

	out_cap = 4 << 20;
	out = malloc(out_cap);
	if (out == NULL)
		die("out of memory");
	(void)unlink(path);
	out_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out_fd < 0)
		die("%s: %s", path, strerror(errno));
	/* Each message aims at where the sizes so far say it should end, so
	 * the header estimate's error does not pile up. */
	double end = 0;
	for (unsigned i = 0; i < n; i++) {
		double at = (double)(total_written + out_len);

		end += size[i];
		message(i, end - at < 1000 ? 1000 : (long)(end - at), user);
	}
	flush_out();
	if (fchmod(out_fd, mode) < 0)
		die("chmod %s: %s", path, strerror(errno));
	if (uid >= 0 && fchown(out_fd, (uid_t)uid, (gid_t)gid) < 0)
		die("chown %s: %s", path, strerror(errno));
	if (close(out_fd) < 0)
		die("close %s: %s", path, strerror(errno));
	fprintf(stderr, "genspool: %s: %u messages, %llu bytes\n", path, n,
		(unsigned long long)total_written);
	free(size);
	free(out);
	return 0;
}
