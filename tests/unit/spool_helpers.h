/* Shared by the unit tests of the maildrop, the mbox parser and UIDL
 * (test_maildrop.c, test_mbox.c, test_uidl.c): real spool files in a
 * temporary directory owned by getuid(), opened through maildrop.h, and
 * models of what the public API must return for given stored bytes.
 *
 * What a message is: the bytes after its From_ line up to, not including,
 * the blank line before the next From_ line (or the end of the file, where
 * one trailing blank line is also a separator). Its size is what RETR
 * sends before dot-stuffing: bare LF counted as CRLF, and CRLF added when
 * the message does not end in a newline (R1939-38, DEC-07, DEC-08). */
#ifndef POP3D_TESTS_SPOOL_HELPERS_H
#define POP3D_TESTS_SPOOL_HELPERS_H

#include <check.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maildrop.h"

struct bytes {
	const char *p;
	size_t n;
};

/* clang-format off */
#define B(lit) {lit, sizeof(lit) - 1}
/* clang-format on */

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* From_ lines and header blocks the spools of several tests are built of. */
#define F1 "From alice@example.org Mon Jan  1 00:00:00 2024\n"
#define F2 "From bob@example.org  Tue Jan  2 10:11:12 2024\n"
#define F3 "From MAILER-DAEMON Wed Jan  3 23:59:59 2024\n"
#define HDRS_RECEIVED                                                          \
	"Received: from mx.example.org by host.example.org; Mon, 1 Jan "       \
	"2024 00:00:00 +0000\n"                                                \
	"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"                               \
	"Message-ID: <1@example.org>\n"                                        \
	"Subject: hello\n"
#define HDRS_PLAIN "From: a@example.org\nTo: b@example.org\nSubject: hi\n"
/* clang-format off */
#define THREE								\
	F1 HDRS_RECEIVED "\nbody 1\n\n"					\
	F2 "Delivered-To: b@example.org\nSubject: two\n\nbody 2\n\n"	\
	F3 HDRS_PLAIN "\nbody 3\n"
/* clang-format on */

/* A growing byte buffer, always NUL-terminated. */
struct buf {
	char *data;
	size_t len, cap;
};

/* Is a library whose path contains name mapped into this process? (The
 * tests of the libraries pop3d loads at their first use.) */
bool lib_mapped(const char *name);

void buf_add(struct buf *b, const void *data, size_t len);
void buf_str(struct buf *b, const char *s);
void buf_free(struct buf *b);

/* The test run's temporary directory, and limits that never refuse (with
 * UPDATE's journals in base_dir). */
extern char base_dir[PATH_MAX / 2];
extern const struct md_limits no_limits;

/* A fresh directory for one test; path gets "<dir>/mbox". */
void new_spool_path(char dir[PATH_MAX], char path[PATH_MAX]);
void write_file(const char *path, const void *data, size_t len);
void append_file(const char *path, const void *data, size_t len);
void read_whole_file(const char *path, struct buf *b);
/* A spool at a new path holding data. */
void make_spool(char path[PATH_MAX], const void *data, size_t len);

/* maildrop_open as getuid() with no_limits; open_ok fails the test
 * unless it succeeds. */
enum md_status open_spool(const char *path, struct maildrop **md);
struct maildrop *open_ok(const char *path);

/* An md_sink_fn appending to a struct buf. */
int sink_collect(void *ctx, const char *data, size_t len);
/* Message i as maildrop_send gives it: whole (top NULL) or TOP *top. */
enum md_status send_msg(struct maildrop *md, size_t i, const unsigned long *top,
			struct buf *out);

/* Open file descriptors of this process (a refusal must not leak one). */
int count_fds(void);

/* Printable form of some bytes for failure messages (4 rotating
 * buffers). */
const char *show(const char *s, size_t len);
/* Fail the test unless got equals want, showing both. */
void expect_bytes(const char *what, const char *got, size_t got_len,
		  const char *want, size_t want_len);

/* R1939-38: the CRLF size, computed from the stored bytes. */
uint64_t size_model(const char *p, size_t n);
/* The octets of a RETR body as a client sees it after unstuffing, with
 * the terminating ".CRLF" removed (R1939-09's test). */
uint64_t retr_unstuffed_len(const char *p, size_t n);
/* TOP (R1939-44/45, DEC-17): the length of the header section, the blank
 * line after it, then at most k body lines; no blank line means headers
 * only. */
size_t top_model(const char *p, size_t n, unsigned long k);
size_t count_lines(const char *p, size_t n);

/* R1939-48: 1-70 characters 0x21-0x7E. */
void expect_valid_uid(const char *uid);
/* A derived uid: 32 lowercase hex digits, optionally "-N" (*suffix_r
 * points at the "-" or the end). */
bool is_digest_uid(const char *uid, const char **suffix_r);
/* Every uid valid and no two alike (R1939-48/49). Copies them to uids_r
 * (malloc'ed strings, NULL-terminated) when that is not NULL. */
void expect_uids_ok(struct maildrop *md, char ***uids_r);
void free_uids(char **uids);

/* Everything the public API says about message i, against its expected
 * stored bytes: content, size, TOP for several line counts. */
void expect_message(struct maildrop *md, size_t i, const char *want, size_t n,
		    const char *name);

/* main() of a spool test: makes base_dir under $TMPDIR (named after
 * name), runs the suite, removes base_dir. Log lines of refusals go to
 * stderr when TEST_LOG is set. */
int spool_test_main(const char *name, Suite *s);

#endif
