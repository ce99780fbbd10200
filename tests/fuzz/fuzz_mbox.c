/* libFuzzer: the mbox parser and the maildrop (maildrop.h, mbox.c) on
 * arbitrary spool contents, against the reference reading of mbox_ref.h.
 *
 * Input: the spool file, as it is; one input in two is parsed with the
 * portable body scan, the others with the one pop3d picks for the CPU
 * (AVX2 where it is there), by a hash of the input. Or, aimed at the end
 * of the parser's first window: a first octet FILLER_PICKED (0x01) or
 * FILLER_PORTABLE (0x02), two octets n (little-endian, modulo 4096), and
 * the spool, which is put after a filler message of SPOOL_CHUNK_SIZE -
 * 1 - n octets. Its octet n + 1 is then the first of the second window,
 * so that a mutation of n moves every octet of the spool across the
 * window's end one place at a time (a hash of the input, as before,
 * could not be aimed: the crash of regressions/fuzz_mbox was found by a
 * driver, not by the fuzzer). 0x01 parses with pop3d's body scan, 0x02
 * with the portable one.
 *
 * Checks, for a spool the reference calls mbox (else maildrop_open must
 * refuse it, MD_PERMFAIL):
 *   - maildrop_open parses it, into as many messages as the reference;
 *   - for every message: the raw octets maildrop_send gives are its
 *     content; maildrop_size is the content's CRLF size and the length of
 *     the dot-stuffed RETR with the stuffing and terminator taken out;
 *     the dot-stuffed RETR is the reference's; TOP with a count past the
 *     body is RETR; TOP 0 is the prefix of RETR up to and including the
 *     blank line after the headers; TOP n is that plus n body lines;
 *     dotstuff gives the same output whatever the piece sizes;
 *     maildrop_verify says the untouched message is unchanged;
 *   - the ids are valid (1-70 octets 0x21-0x7E) and unique, and the same
 *     when the spool is opened again; a second open while the first
 *     holds the spool says MD_IN_USE;
 *   - UPDATE: a subset chosen from the input is deleted (and, for some
 *     inputs, a new message is delivered first, as an MDA appends one);
 *     afterwards the spool holds exactly the other messages with the same
 *     content, the statistics add up, and no journal or dotlock is left. */
#include "fuzz.h"
#include "mbox_ref.h"

#include <dirent.h>

#include "dotstuff.h"
#include "log.h"
#include "maildrop.h"
#include "mbox.h"
#include "uidl.h"

static char spool[512], jdir[300];
static struct md_limits limits = {
	.max_messages = MAILDROP_MESSAGES_MAX_DEFAULT,
	.max_size = MAILDROP_SIZE_MAX_DEFAULT,
	.journal_dir = jdir,
};

static const char delivery[] = "From new@example.org Sat Jan  6 12:00:00 2024\n"
			       "Subject: delivered during the session\n"
			       "\n"
			       "new body\n"
			       "\n";

static int
collect(void *ctx, const void *data, size_t len)
{
	fbuf_add(ctx, data, len);
	return 0;
}

static int
collect_raw(void *ctx, const char *data, size_t len)
{
	fbuf_add(ctx, data, len);
	return 0;
}

static int
refuse(void *ctx, const char *data, size_t len)
{
	return -1;
}

/* Take the stuffing out of a RETR body: its length as content octets.
 * Also checks that it is a well-formed multi-line body. */
static uint64_t
unstuffed_length(const struct fbuf *b, size_t i)
{
	uint64_t n = 0;
	size_t at = 0;

	check(b->len >= 3 && memcmp(b->p + b->len - 3, ".\r\n", 3) == 0,
	      "message %zu: RETR does not end in .CRLF", i + 1);
	while (at < b->len - 3) {
		const char *lf = memchr(b->p + at, '\n', b->len - 3 - at);
		size_t e;

		check(lf != NULL, "message %zu: RETR's last line has no LF",
		      i + 1);
		e = lf - b->p + 1;
		check(e - at >= 2 && lf[-1] == '\r',
		      "message %zu: bare LF in RETR output", i + 1);
		if (b->p[at] == '.') {
			check(e - at > 3,
			      "message %zu: a lone \".\" line before the end",
			      i + 1);
			check(b->p[at + 1] == '.',
			      "message %zu: a line starts with one \".\"",
			      i + 1);
			at++;
		}
		n += e - at;
		at = e;
	}
	return n;
}

static void
send_raw(struct maildrop *md, size_t i, const unsigned long *lines,
	 struct fbuf *out)
{
	out->len = 0;
	check(maildrop_send(md, i, lines, collect_raw, out) == MD_OK,
	      "message %zu: maildrop_send failed", i + 1);
}

static void
check_message(struct maildrop *md, size_t i, const char *p,
	      const struct ref_msg *m)
{
	struct fbuf raw = {0}, top = {0}, stuffed = {0}, want = {0},
		    pieces = {0};
	unsigned long lines;
	struct dotstuff ds;
	size_t at, k;

	check(maildrop_verify(md, i) == MD_OK,
	      "message %zu: maildrop_verify says the untouched spool changed",
	      i + 1);
	check(maildrop_size(md, i) == m->size,
	      "message %zu: size %llu, want %llu", i + 1,
	      (unsigned long long)maildrop_size(md, i),
	      (unsigned long long)m->size);

	/* RETR, raw and dot-stuffed. */
	send_raw(md, i, NULL, &raw);
	check(bytes_eq(raw.p, raw.len, p + m->start, m->end - m->start),
	      "message %zu: RETR sends %zu octets, not its %zu octets of "
	      "content",
	      i + 1, raw.len, m->end - m->start);
	dotstuff_init(&ds, collect, &stuffed);
	check(maildrop_send(md, i, NULL, dotstuff_sink, &ds) == MD_OK &&
		      dotstuff_finish(&ds) == 0,
	      "message %zu: RETR failed", i + 1);
	ref_stuff(p, m->start, m->end, &want);
	check(bytes_eq(stuffed.p, stuffed.len, want.p, want.len),
	      "message %zu: dot-stuffed RETR differs from the reference",
	      i + 1);
	check(unstuffed_length(&stuffed, i) == maildrop_size(md, i),
	      "message %zu: RETR carries %llu octets, LIST says %llu", i + 1,
	      (unsigned long long)unstuffed_length(&stuffed, i),
	      (unsigned long long)maildrop_size(md, i));

	/* The same through dotstuff in pieces of every size up to 7. */
	for (k = 1; k <= 7 && raw.len <= 65536; k++) {
		pieces.len = 0;
		dotstuff_init(&ds, collect, &pieces);
		for (at = 0; at < raw.len; at += k)
			dotstuff_feed(&ds, raw.p + at,
				      raw.len - at < k ? raw.len - at : k);
		dotstuff_finish(&ds);
		check(bytes_eq(pieces.p, pieces.len, want.p, want.len),
		      "message %zu: dotstuff in %zu-octet pieces differs",
		      i + 1, k);
	}

	/* TOP past the body, and at the largest count there is. */
	lines = m->body_lines;
	send_raw(md, i, &lines, &top);
	check(bytes_eq(top.p, top.len, raw.p, raw.len),
	      "message %zu: TOP %lu (all body lines) differs from RETR", i + 1,
	      lines);
	lines = (unsigned long)-1;
	send_raw(md, i, &lines, &top);
	check(bytes_eq(top.p, top.len, raw.p, raw.len),
	      "message %zu: TOP ULONG_MAX differs from RETR", i + 1);

	/* TOP 0, 1 and one short of the body: prefixes of RETR. */
	for (int t = 0; t < 3; t++) {
		size_t n = t == 0 ? 0 : t == 1 ? 1 : m->body_lines - 1;
		size_t end = m->body;

		if (t > 0 && (m->body_lines == 0 || n >= m->body_lines))
			continue;
		for (size_t l = 0; l < n; l++)
			end = ref_line_end(p, m->end, end);
		if (n == 0 && m->body_lines == 0)
			end = m->end;
		lines = n;
		send_raw(md, i, &lines, &top);
		check(bytes_eq(top.p, top.len, p + m->start, end - m->start),
		      "message %zu: TOP %zu sends %zu octets, want the first "
		      "%zu of RETR",
		      i + 1, n, top.len, end - m->start);
	}

	/* A sink that fails: the send must not claim success. */
	if (m->end > m->start)
		check(maildrop_send(md, i, NULL, refuse, NULL) == MD_TEMPFAIL,
		      "message %zu: a failed sink went unnoticed", i + 1);

	fbuf_free(&raw);
	fbuf_free(&top);
	fbuf_free(&stuffed);
	fbuf_free(&want);
	fbuf_free(&pieces);
}

/* The ids, valid and unique, kept as one string each in ids. */
static char **
get_uids(struct maildrop *md)
{
	size_t n = maildrop_count(md);
	char **ids = calloc(n + 1, sizeof(*ids));

	check(ids != NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *u = maildrop_uid(md, i);

		check(uidl_valid(u, strlen(u)), "message %zu: invalid uid %s",
		      i + 1, u);
		ids[i] = strdup(u);
		check(ids[i] != NULL, "out of memory");
		for (size_t j = 0; j < i; j++)
			check(strcmp(ids[j], u) != 0,
			      "messages %zu and %zu share the uid %s", j + 1,
			      i + 1, u);
	}
	return ids;
}

static void
free_uids(char **ids)
{
	for (size_t i = 0; ids[i] != NULL; i++)
		free(ids[i]);
	free(ids);
}

static uint64_t
fnv(const uint8_t *data, size_t size)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ULL;
	return h;
}

/* What an MDA appends: a blank line first if the spool does not end in
 * one (and a line end first if it lacks one). */
static void
deliver(struct fbuf *file)
{
	int fd;

	if (file->len > 0 && file->p[file->len - 1] != '\n')
		fbuf_add(file, "\n", 1);
	if (file->len > 0 &&
	    !(file->len >= 2 && file->p[file->len - 2] == '\n'))
		fbuf_add(file, "\n", 1);
	fbuf_add(file, delivery, sizeof(delivery) - 1);
	/* Appended in place, as an MDA does (the inode must stay). */
	fd = open(spool, O_WRONLY | O_CLOEXEC);
	check(fd >= 0, "%s: %s", spool, strerror(errno));
	check(ftruncate(fd, 0) == 0 &&
		      pwrite(fd, file->p, file->len, 0) == (ssize_t)file->len,
	      "%s: write: %s", spool, strerror(errno));
	close(fd);
}

static void
check_dir_clean(void)
{
	char lock[600];
	DIR *d;
	struct dirent *e;

	snprintf(lock, sizeof(lock), "%s.lock", spool);
	check(access(lock, F_OK) < 0, "dotlock %s left behind", lock);
	d = opendir(jdir);
	check(d != NULL, "%s: %s", jdir, strerror(errno));
	while ((e = readdir(d)) != NULL)
		check(e->d_name[0] == '.' || fuzz_session_lock_file(e->d_name),
		      "journal %s/%s left behind", jdir, e->d_name);
	closedir(d);
}

static void
check_update(struct maildrop *md, const uint8_t *data, size_t size, uint64_t h)
{
	size_t n = maildrop_count(md), kept = 0;
	struct fbuf file = {0}, after = {0};
	struct ref_mbox before, now;
	struct md_update_stats st;
	uint64_t left_bytes = 0, deleted_bytes = 0;
	bool *del;
	bool delivered = h >> 63;

	del = calloc(n + 1, sizeof(*del));
	check(del != NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		/* Every message, none, or by the hash's bits. */
		del[i] = (h & 3) == 0	? true
			 : (h & 3) == 1 ? false
					: (h >> (2 + i % 60) & 1);
		maildrop_set_deleted(md, i, del[i]);
		if (del[i])
			deleted_bytes += maildrop_size(md, i);
		else
			left_bytes += maildrop_size(md, i), kept++;
	}
	fbuf_add(&file, data, size);
	if (delivered)
		deliver(&file);
	/* The messages as the spool holds them now: the old ones keep their
	 * places (a delivery may give the last one its line end). */
	ref_parse(file.p, file.len, &before);
	check(before.n == n + delivered, "delivery merged messages");

	check(maildrop_update(md, &st) == MD_OK, "UPDATE failed");
	check(st.deleted == n - kept && st.left == kept &&
		      st.deleted_bytes == deleted_bytes &&
		      st.left_bytes == left_bytes,
	      "UPDATE statistics: deleted %zu/%llu left %zu/%llu, want "
	      "%zu/%llu %zu/%llu",
	      st.deleted, (unsigned long long)st.deleted_bytes, st.left,
	      (unsigned long long)st.left_bytes, n - kept,
	      (unsigned long long)deleted_bytes, kept,
	      (unsigned long long)left_bytes);
	maildrop_close(md);
	check_dir_clean();

	read_file(spool, &after);
	ref_parse(after.p, after.len, &now);
	check(now.is_mbox, "UPDATE left a spool that is not mbox");
	check(now.n == kept + delivered,
	      "UPDATE left %zu messages, want %zu (%zu of %zu kept%s)", now.n,
	      kept + delivered, kept, n, delivered ? ", 1 delivered" : "");
	for (size_t i = 0, j = 0; i < before.n; i++) {
		const struct ref_msg *a, *b;

		if (i < n && del[i])
			continue;
		a = &before.msg[i];
		b = &now.msg[j];
		check(bytes_eq(file.p + a->start, a->end - a->start,
			       after.p + b->start, b->end - b->start),
		      "UPDATE changed message %zu (now %zu)", i + 1, j + 1);
		j++;
	}
	ref_free(&before);
	ref_free(&now);
	fbuf_free(&file);
	fbuf_free(&after);
	free(del);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_dir_init("mbox");

	log_init(LOG_TO_STDERR);
	snprintf(spool, sizeof(spool), "%s/mbox", dir);
	snprintf(jdir, sizeof(jdir), "%s/journal", dir);
	check(mkdir(jdir, 0700) == 0, "%s: %s", jdir, strerror(errno));
	return 0;
}

enum { FILLER_PICKED = 1, FILLER_PORTABLE = 2, FILLER_AIM = 4096 };

/* A message of size octets, its separator included, with one long body
 * line: what comes after it starts near the end of the parser's first
 * SPOOL_CHUNK_SIZE window. */
static void
add_filler(struct fbuf *b, size_t size)
{
	static const char head[] = "From filler@example.org Mon Jan  1 "
				   "00:00:00 2024\n"
				   "Message-ID: <filler@example.org>\n\n";
	size_t at;

	fbuf_add(b, head, sizeof(head) - 1);
	at = b->len;
	fbuf_add(b, NULL, size - (sizeof(head) - 1));
	memset(b->p + at, 'x', size - (sizeof(head) - 1) - 2);
	memcpy(b->p + b->len - 2, "\n\n", 2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fbuf file = {0};
	struct maildrop *md, *md2;
	struct ref_mbox ref;
	enum md_status st;
	char **ids, **ids2;
	uint64_t h = fnv(data, size);
	uint64_t f = (h ^ h >> 29) * 0xbf58476d1ce4e5b9ULL; /* mixed again */
	const char *p;

	if (size >= 3 &&
	    (data[0] == FILLER_PICKED || data[0] == FILLER_PORTABLE)) {
		size_t n = (data[1] | (size_t)data[2] << 8) % FILLER_AIM;

		add_filler(&file, SPOOL_CHUNK_SIZE - 1 - n);
		mbox_portable_scan(data[0] == FILLER_PORTABLE);
		fbuf_add(&file, data + 3, size - 3);
	} else {
		mbox_portable_scan((f >> 40) & 1);
		fbuf_add(&file, data, size);
	}
	p = file.p;
	write_file(spool, file.p, file.len);
	ref_parse(p, file.len, &ref);
	st = maildrop_open(spool, getuid(), &limits, &md);
	if (!ref.is_mbox) {
		check(st == MD_PERMFAIL, "no mbox, but maildrop_open says %d",
		      st);
		ref_free(&ref);
		fbuf_free(&file);
		return 0;
	}
	check(st == MD_OK, "maildrop_open says %d", st);
	check(maildrop_count(md) == ref.n, "%zu messages, want %zu",
	      maildrop_count(md), ref.n);
	for (size_t i = 0; i < ref.n; i++)
		check_message(md, i, p, &ref.msg[i]);
	ids = get_uids(md);

	/* One session per maildrop. */
	check(maildrop_open(spool, getuid(), &limits, &md2) == MD_IN_USE,
	      "a second open of a held spool was not refused");
	maildrop_close(md);

	/* The same ids the second time. */
	check(maildrop_open(spool, getuid(), &limits, &md) == MD_OK,
	      "maildrop_open failed the second time");
	ids2 = get_uids(md);
	for (size_t i = 0; i < ref.n; i++)
		check(strcmp(ids[i], ids2[i]) == 0,
		      "message %zu: uid %s, then %s", i + 1, ids[i], ids2[i]);
	free_uids(ids);
	free_uids(ids2);

	check_update(md, (const uint8_t *)file.p, file.len, h);
	ref_free(&ref);
	fbuf_free(&file);
	return 0;
}
