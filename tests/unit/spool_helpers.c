/* The helpers of spool_helpers.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw */
#endif
#include "spool_helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "dotstuff.h"
#include "log.h"

void
buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		b->cap = (b->len + len + 1) * 2;
		b->data = realloc(b->data, b->cap);
		ck_assert_ptr_nonnull(b->data);
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

char base_dir[PATH_MAX / 2];

const struct md_limits no_limits = {
	MAILDROP_MESSAGES_MAX_DEFAULT, MAILDROP_SIZE_MAX_DEFAULT,
	base_dir, /* UPDATE's journals */
	false,	  /* a local spool */
};

/* A fresh directory for one test; path gets "<dir>/mbox". */
void
new_spool_path(char dir[PATH_MAX], char path[PATH_MAX])
{
	snprintf(dir, PATH_MAX, "%s/tXXXXXX", base_dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, PATH_MAX, "%s/mbox", dir);
}

void
write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

void
append_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

void
read_whole_file(const char *path, struct buf *b)
{
	char chunk[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	b->len = 0;
	buf_add(b, "", 0);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(b, chunk, n);
	ck_assert_int_eq(n, 0);
	close(fd);
}

/* A spool at a new path holding data. */
void
make_spool(char path[PATH_MAX], const void *data, size_t len)
{
	char dir[PATH_MAX];

	new_spool_path(dir, path);
	write_file(path, data, len);
}

enum md_status
open_spool(const char *path, struct maildrop **md)
{
	*md = NULL;
	return maildrop_open(path, getuid(), &no_limits, md);
}

struct maildrop *
open_ok(const char *path)
{
	struct maildrop *md;
	enum md_status st = open_spool(path, &md);

	ck_assert_msg(st == MD_OK, "maildrop_open(%s) = %d", path, st);
	ck_assert_ptr_nonnull(md);
	return md;
}

int
sink_collect(void *ctx, const char *data, size_t len)
{
	buf_add(ctx, data, len);
	return 0;
}

/* Message i as maildrop_send gives it: whole (top NULL) or TOP *top. */
enum md_status
send_msg(struct maildrop *md, size_t i, const unsigned long *top,
	 struct buf *out)
{
	out->len = 0;
	buf_add(out, "", 0);
	return maildrop_send(md, i, top, sink_collect, out);
}

int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n++;
	closedir(d);
	return n;
}

/* Printable form of some bytes for failure messages. */
const char *
show(const char *s, size_t len)
{
	static char out[4][600];
	static int which;
	char *o = out[which++ % 4];
	size_t k = 0;

	for (size_t i = 0; i < len && k + 8 < 560; i++) {
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			o[k++] = c;
		else
			k += snprintf(o + k, 8, "\\x%02x", c);
	}
	if (len > 0 && k + 8 >= 560)
		strcpy(o + k, "...");
	else
		o[k] = '\0';
	return o;
}

void
expect_bytes(const char *what, const char *got, size_t got_len,
	     const char *want, size_t want_len)
{
	if (got_len == want_len && memcmp(got, want, want_len) == 0)
		return;
	ck_abort_msg("%s: want %zu bytes \"%s\", got %zu bytes \"%s\"", what,
		     want_len, show(want, want_len), got_len,
		     show(got, got_len));
}

/* R1939-38: the CRLF size, computed from the stored bytes. */
uint64_t
size_model(const char *p, size_t n)
{
	uint64_t size = n;

	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			size++;
	if (n > 0 && p[n - 1] != '\n')
		size += 2;
	return size;
}

static int
ds_collect(void *ctx, const void *data, size_t len)
{
	buf_add(ctx, data, len);
	return 0;
}

/* The octets of a RETR body as a client sees it after unstuffing, with
 * the terminating ".CRLF" removed (R1939-09's test). */
uint64_t
retr_unstuffed_len(const char *p, size_t n)
{
	struct buf enc = {0};
	struct dotstuff ds;
	uint64_t len = 0;
	size_t i = 0;

	dotstuff_init(&ds, ds_collect, &enc);
	ck_assert_int_eq(dotstuff_feed(&ds, p, n), 0);
	ck_assert_int_eq(dotstuff_finish(&ds), 0);
	ck_assert_uint_ge(enc.len, 3);
	ck_assert(memcmp(enc.data + enc.len - 3, ".\r\n", 3) == 0);
	enc.len -= 3;
	while (i < enc.len) {
		const char *lf = memchr(enc.data + i, '\n', enc.len - i);
		size_t end = lf ? (size_t)(lf - enc.data) + 1 : enc.len;

		if (lf == NULL) /* every line ends in CRLF */
			ck_abort_msg("RETR output line without LF");
		len += end - i - (enc.data[i] == '.' ? 1 : 0);
		i = end;
	}
	buf_free(&enc);
	return len;
}

static bool
empty_line(const char *p, size_t n)
{
	return (n == 1 && p[0] == '\n') ||
	       (n == 2 && p[0] == '\r' && p[1] == '\n');
}

/* TOP (R1939-44/45, DEC-17): the header section, the blank line after
 * it, then at most k body lines; no blank line means headers only. */
size_t
top_model(const char *p, size_t n, unsigned long k)
{
	size_t pos = 0;
	bool body = false;

	while (pos < n && !body) {
		const char *lf = memchr(p + pos, '\n', n - pos);
		size_t end = lf ? (size_t)(lf - p) + 1 : n;

		body = empty_line(p + pos, end - pos);
		pos = end;
	}
	for (unsigned long line = 0; body && line < k && pos < n; line++) {
		const char *lf = memchr(p + pos, '\n', n - pos);

		pos = lf ? (size_t)(lf - p) + 1 : n;
	}
	return pos;
}

size_t
count_lines(const char *p, size_t n)
{
	size_t lines = 0;

	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n')
			lines++;
	return lines + (n > 0 && p[n - 1] != '\n');
}

/* R1939-48: 1-70 characters 0x21-0x7E. */
void
expect_valid_uid(const char *uid)
{
	size_t len;

	ck_assert_ptr_nonnull(uid);
	len = strlen(uid);
	ck_assert_msg(len >= 1 && len <= 70, "uid \"%s\" length %zu", uid, len);
	for (size_t i = 0; i < len; i++)
		if (uid[i] < 0x21 || uid[i] > 0x7e)
			ck_abort_msg("uid \"%s\": octet 0x%02x", show(uid, len),
				     (unsigned char)uid[i]);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A derived uid: 32 lowercase hex digits, optionally "-N". */
bool
is_digest_uid(const char *uid, const char **suffix_r)
{
	for (int i = 0; i < 32; i++)
		if (!((uid[i] >= '0' && uid[i] <= '9') ||
		      (uid[i] >= 'a' && uid[i] <= 'f')))
			return false;
	if (suffix_r != NULL)
		*suffix_r = uid + 32;
	return uid[32] == '\0' || uid[32] == '-';
}

/* Every uid valid and no two alike (R1939-48/49). Copies them to uids_r
 * (malloc'ed strings) when that is not NULL. */
void
expect_uids_ok(struct maildrop *md, char ***uids_r)
{
	size_t n = maildrop_count(md);
	char **uids = calloc(n + 1, sizeof(*uids));

	ck_assert_ptr_nonnull(uids);
	for (size_t i = 0; i < n; i++) {
		const char *uid = maildrop_uid(md, i);

		expect_valid_uid(uid);
		uids[i] = strdup(uid);
		ck_assert_ptr_nonnull(uids[i]);
	}
	/* Sorted copies: equal ids end up next to each other. */
	{
		char **sorted = malloc((n + 1) * sizeof(*sorted));

		ck_assert_ptr_nonnull(sorted);
		memcpy(sorted, uids, (n + 1) * sizeof(*sorted));
		qsort(sorted, n, sizeof(*sorted), cmp_str);
		for (size_t i = 1; i < n; i++)
			if (strcmp(sorted[i - 1], sorted[i]) == 0)
				ck_abort_msg("two messages share uid %s",
					     sorted[i]);
		free(sorted);
	}
	if (uids_r != NULL) {
		*uids_r = uids;
		return;
	}
	for (size_t i = 0; i < n; i++)
		free(uids[i]);
	free(uids);
}

void
free_uids(char **uids)
{
	for (size_t i = 0; uids[i] != NULL; i++)
		free(uids[i]);
	free(uids);
}

/* Everything the public API says about message i, against its expected
 * stored bytes: content, size, TOP for several line counts. */
void
expect_message(struct maildrop *md, size_t i, const char *want, size_t n,
	       const char *name)
{
	struct buf out = {0};
	char what[128];
	size_t lines = count_lines(want, n);
	unsigned long tops[] = {0, 1, 2, 3, lines, lines + 1, ULONG_MAX};

	snprintf(what, sizeof(what), "%s: message %zu", name, i);
	ck_assert_msg(!maildrop_deleted(md, i), "%s: deleted at open", what);
	ck_assert_int_eq(send_msg(md, i, NULL, &out), MD_OK);
	expect_bytes(what, out.data, out.len, want, n);
	ck_assert_msg(maildrop_size(md, i) == size_model(want, n),
		      "%s: size %llu, want %llu", what,
		      (unsigned long long)maildrop_size(md, i),
		      (unsigned long long)size_model(want, n));
	ck_assert_msg(maildrop_size(md, i) == retr_unstuffed_len(want, n),
		      "%s: size %llu, unstuffed RETR has %llu", what,
		      (unsigned long long)maildrop_size(md, i),
		      (unsigned long long)retr_unstuffed_len(want, n));
	for (size_t t = 0; t < sizeof(tops) / sizeof(tops[0]); t++) {
		size_t top_len = top_model(want, n, tops[t]);

		snprintf(what, sizeof(what), "%s: message %zu, TOP %lu", name,
			 i, tops[t]);
		ck_assert_int_eq(send_msg(md, i, &tops[t], &out), MD_OK);
		expect_bytes(what, out.data, out.len, want, top_len);
	}
	buf_free(&out);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path);
}

int
spool_test_main(const char *name, Suite *s)
{
	const char *tmp = getenv("TMPDIR");
	SRunner *sr;
	int failed;

	/* Log lines of refusals go to stderr only when asked for. */
	if (getenv("TEST_LOG") != NULL)
		log_init(LOG_TO_STDERR);
	snprintf(base_dir, sizeof(base_dir), "%s/%s.XXXXXX",
		 tmp != NULL && *tmp != '\0' ? tmp : "/tmp", name);
	if (mkdtemp(base_dir) == NULL) {
		perror(base_dir);
		return EXIT_FAILURE;
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	nftw(base_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

bool
lib_mapped(const char *name)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool found = false;

	ck_assert_ptr_nonnull(f);
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, name) != NULL;
	fclose(f);
	return found;
}
