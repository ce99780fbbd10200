/* libFuzzer: UIDL ids (uidl.c and the header digest of mbox.c) on
 * arbitrary header blocks, wrapped into a message:
 *
 *     From sender@example.org Mon Jan  1 00:00:00 2024
 *     <the header block from the input; a final LF added if missing>
 *     <blank line>
 *     body
 *
 * Input: a flag byte, a parameter byte, then the header block.
 *   flags bits 0-1: both set: a filler message first, so that the fuzzed
 *                one starts the parameter's worth (x2) of octets before
 *                the end of the parser's first SPOOL_CHUNK_SIZE window
 *                (slow: a quarter of the inputs);
 *   flags bit 2: the inserted Status: line ends in CRLF, not LF;
 *   flags bits 3-7: which header line the Status: line goes before.
 *   parameter:      the filler's shortfall; the reader size of the
 *                   re-parse.
 *
 * Checks:
 *   - every id is valid (1-70 octets 0x21-0x7E), all are unique, and a
 *     second maildrop_open gives the same ones;
 *   - maildrop_verify says every message of the untouched spool is
 *     unchanged (it re-parses each from its own From_ line);
 *   - mbox_parse_message gives the same facts, digest and X-UIDL for the
 *     fuzzed message whatever the size of the reader's window (the id
 *     must not depend on where reads are cut);
 *   - inserting a Status: or X-Status: line among the headers, or
 *     changing the value of one, changes no id: MUAs rewrite those. */
#include "fuzz.h"
#include "mbox_ref.h"

#include <strings.h>

#include "log.h"
#include "maildrop.h"
#include "mbox.h"
#include "uidl.h"

static const char from_line[] = "From sender@example.org Mon Jan  1 00:00:00 "
				"2024\n";

static char spool[512];
static struct md_limits limits = {
	.max_messages = MAILDROP_MESSAGES_MAX_DEFAULT,
	.max_size = MAILDROP_SIZE_MAX_DEFAULT,
	.journal_dir = NULL,
};
static struct uidl_hasher *hasher;

/* A message of exactly size octets (separator included) with nothing
 * the digest selects but its Message-ID, and one long body line. */
static void
add_filler(struct fbuf *b, size_t size)
{
	static const char head[] = "From filler@example.org Mon Jan  1 "
				   "00:00:00 2024\n"
				   "Message-ID: <filler@example.org>\n\n";
	size_t at;

	check(size > sizeof(head) + 3, "filler too small");
	fbuf_add(b, head, sizeof(head) - 1);
	at = b->len;
	fbuf_add(b, NULL, size - (sizeof(head) - 1));
	memset(b->p + at, 'x', size - (sizeof(head) - 1) - 2);
	memcpy(b->p + b->len - 2, "\n\n", 2);
}

static char **
spool_uids(size_t *n_r)
{
	struct maildrop *md;
	char **ids;
	size_t n;

	check(maildrop_open(spool, getuid(), &limits, &md) == MD_OK,
	      "maildrop_open failed");
	n = maildrop_count(md);
	ids = calloc(n + 1, sizeof(*ids));
	check(ids != NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *u = maildrop_uid(md, i);

		check(uidl_valid(u, strlen(u)), "message %zu: invalid uid %s",
		      i + 1, u);
		for (size_t j = 0; j < i; j++)
			check(strcmp(ids[j], u) != 0,
			      "messages %zu and %zu share the uid %s", j + 1,
			      i + 1, u);
		ids[i] = strdup(u);
		check(ids[i] != NULL, "out of memory");
		check(maildrop_verify(md, i) == MD_OK,
		      "message %zu: maildrop_verify says the untouched spool "
		      "changed",
		      i + 1);
	}
	maildrop_close(md);
	*n_r = n;
	return ids;
}

static void
free_uids(char **ids)
{
	for (size_t i = 0; ids[i] != NULL; i++)
		free(ids[i]);
	free(ids);
}

static void
same_uids(char **a, size_t na, char **b, size_t nb, const char *what)
{
	check(na == nb, "%s: %zu messages, then %zu", what, na, nb);
	for (size_t i = 0; i < na; i++)
		check(strcmp(a[i], b[i]) == 0,
		      "%s: message %zu: uid %s, then %s", what, i + 1, a[i],
		      b[i]);
}

/* Parse the message at offset through a window of cap octets. */
static void
parse_at(off_t offset, off_t limit, size_t cap, struct message *m,
	 struct uidl_entry *u, char **xuidl)
{
	char *buf = malloc(cap);
	struct reader r;
	int fd;

	check(buf != NULL, "out of memory");
	fd = open(spool, O_RDONLY | O_CLOEXEC);
	check(fd >= 0, "%s: %s", spool, strerror(errno));
	reader_init(&r, fd, buf, cap, offset, limit);
	check(reader_at_from_line(&r), "no From_ line at %lld",
	      (long long)offset);
	memset(u, 0, sizeof(*u));
	check(mbox_parse_message(&r, hasher, m, u, xuidl) == 0,
	      "mbox_parse_message failed");
	close(fd);
	free(buf);
}

static void
check_windows(off_t offset, off_t limit, uint8_t param)
{
	static const size_t caps[] = {READER_MIN_CAP, READER_MIN_CAP + 1,
				      READER_MIN_CAP + 73, 1000, 4096};
	struct message m0, m1;
	struct uidl_entry u0, u1;
	size_t cap = caps[param % 5];
	char *x0, *x1;

	parse_at(offset, limit, SPOOL_CHUNK_SIZE, &m0, &u0, &x0);
	parse_at(offset, limit, cap, &m1, &u1, &x1);
	check(m0.start == m1.start && m0.hdr_len == m1.hdr_len &&
		      m0.blank_len == m1.blank_len && m0.end == m1.end &&
		      m0.next == m1.next && m0.size == m1.size &&
		      m0.body_lines == m1.body_lines &&
		      m0.content == m1.content,
	      "a %zu-octet window parses the message differently", cap);
	check((x0 == NULL) == (x1 == NULL) &&
		      (x0 == NULL || strcmp(x0, x1) == 0),
	      "a %zu-octet window finds X-UIDL %s, the whole one %s", cap,
	      x1 ? x1 : "(none)", x0 ? x0 : "(none)");
	check(memcmp(u0.digest, u1.digest, sizeof(u0.digest)) == 0,
	      "a %zu-octet window gives another header digest", cap);
	free(x0);
	free(x1);
}

/* Where a Status: line may go in the message at [from, ...): before any
 * header line that is not a continuation, or before the blank line. */
static size_t
insert_points(const char *p, const struct ref_msg *m, size_t *at, size_t max)
{
	size_t n = 0, e;

	for (size_t l = m->start; l < m->end && n < max; l = e) {
		e = ref_line_end(p, m->end, l);
		if (ref_blank(p, l, e)) {
			at[n++] = l;
			break;
		}
		if (p[l] != ' ' && p[l] != '\t')
			at[n++] = l;
	}
	return n;
}

/* The first Status:/X-Status: line of the headers: [*v, *ve) is its
 * value. */
static bool
find_status(const char *p, const struct ref_msg *m, size_t *v, size_t *ve)
{
	for (size_t l = m->start, e; l < m->end; l = e) {
		size_t k;

		e = ref_line_end(p, m->end, l);
		if (ref_blank(p, l, e))
			return false;
		if (e - l >= 7 && strncasecmp(p + l, "Status:", 7) == 0)
			k = 7;
		else if (e - l >= 9 && strncasecmp(p + l, "X-Status:", 9) == 0)
			k = 9;
		else
			continue;
		*v = l + k;
		*ve = e;
		if (*ve > *v && p[*ve - 1] == '\n')
			(*ve)--;
		if (*ve > *v && p[*ve - 1] == '\r')
			(*ve)--;
		return true;
	}
	return false;
}

static void
rewrite_and_compare(const struct fbuf *file, size_t at, size_t cut,
		    const char *text, char **ids, size_t n, const char *what)
{
	struct fbuf b = {0};
	char **ids2;
	size_t n2;

	fbuf_add(&b, file->p, at);
	fbuf_str(&b, text);
	fbuf_add(&b, file->p + cut, file->len - cut);
	write_file(spool, b.p, b.len);
	ids2 = spool_uids(&n2);
	same_uids(ids, n, ids2, n2, what);
	free_uids(ids2);
	fbuf_free(&b);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_dir_init("uidl");

	log_init(LOG_TO_STDERR);
	snprintf(spool, sizeof(spool), "%s/mbox", dir);
	hasher = uidl_hasher_new();
	check(hasher != NULL, "out of memory");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fbuf file = {0};
	struct ref_mbox ref;
	const struct ref_msg *m;
	size_t offset = 0, n, n2, points[64], np, v, ve;
	char **ids, **ids2;
	uint8_t flags, param;
	bool padded;

	if (size < 2)
		return 0;
	flags = data[0];
	param = data[1];
	data += 2;
	size -= 2;
	padded = (flags & 3) == 3;
	if (padded) {
		offset = SPOOL_CHUNK_SIZE - 2 * (size_t)param - 1;
		add_filler(&file, offset);
	}
	fbuf_str(&file, from_line);
	fbuf_add(&file, data, size);
	if (size > 0 && data[size - 1] != '\n')
		fbuf_add(&file, "\n", 1);
	fbuf_str(&file, "\nbody\n");
	write_file(spool, file.p, file.len);
	ref_parse(file.p, file.len, &ref);
	check(ref.is_mbox && ref.n >= 1u + padded, "reference: no mbox");
	m = &ref.msg[padded];
	check(m->from == offset, "reference: the message is not at %zu",
	      offset);

	ids = spool_uids(&n);
	check(n == ref.n, "%zu messages, want %zu", n, ref.n);
	ids2 = spool_uids(&n2);
	same_uids(ids, n, ids2, n2, "opened twice");
	free_uids(ids2);

	check_windows(m->from, m->next, param);

	/* A Status: line inserted. */
	np = insert_points(file.p, m, points, 64);
	if (np > 0) {
		size_t at = points[(flags >> 3) % np];

		rewrite_and_compare(&file, at, at,
				    flags & 4 ? "Status: RO\r\n"
					      : "Status: RO\n",
				    ids, n, "Status: inserted");
		rewrite_and_compare(&file, at, at,
				    flags & 4 ? "X-Status: A\r\n"
					      : "X-Status: A\n",
				    ids, n, "X-Status: inserted");
	}
	/* One changed. */
	if (find_status(file.p, m, &v, &ve)) {
		bool was_o = ve - v == 2 && memcmp(file.p + v, " O", 2) == 0;

		rewrite_and_compare(&file, v, ve, was_o ? " RO" : " O", ids, n,
				    "Status: changed");
	}
	free_uids(ids);
	ref_free(&ref);
	fbuf_free(&file);
	return 0;
}
