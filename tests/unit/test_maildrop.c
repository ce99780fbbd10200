/* Unit tests for the maildrop's life cycle (maildrop.c), through
 * maildrop.h only: opening the spool safely (docs/design.md §4), its
 * limits, the session lock and the locks MTAs take, sending when another
 * program changed the spool, and UPDATE, on real spool files owned by
 * getuid(). The parser and UIDL have test_mbox.c and test_uidl.c. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "maildrop.h"
#include "spool_helpers.h"

START_TEST(missing_file_is_empty)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct maildrop *md;
	struct stat st;

	new_spool_path(dir, path);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 0);
	maildrop_close(md);
	/* Never O_CREAT (design.md §4). */
	ck_assert_int_eq(stat(path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* --- limits and spool safety -------------------------------------------- */

START_TEST(limits)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct md_limits lim = no_limits;
	int fds = count_fds();

	make_spool(path, spool, sizeof(spool) - 1);
	lim.max_messages = 2;
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_PERMFAIL);
	ck_assert_int_eq(count_fds(), fds);
	lim.max_messages = 3;
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_OK);
	maildrop_close(md);

	lim = no_limits;
	lim.max_size = 20;
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_PERMFAIL);
	ck_assert_int_eq(count_fds(), fds);
	lim.max_size = 100000;
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_OK);
	maildrop_close(md);
	/* A refusal leaves nothing locked. */
	md = open_ok(path);
	maildrop_close(md);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(symlink_refused)
{
	static const char spool[] = THREE;
	char dir[PATH_MAX], path[PATH_MAX], target[PATH_MAX + 8];
	struct maildrop *md;

	new_spool_path(dir, path);
	snprintf(target, sizeof(target), "%s/real", dir);
	write_file(target, spool, sizeof(spool) - 1);
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
	/* A dangling link is no "missing file" either. */
	ck_assert_int_eq(unlink(target), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
}
END_TEST

/* Issue 7: a spool directory anyone may write to (without the sticky
 * bit) lets anyone swap the spool: refused; with the sticky bit, as /tmp
 * or a mail spool with mode 1777, it is fine. */
START_TEST(open_spool_directory_refused)
{
	static const char spool[] = THREE;
	char dir[PATH_MAX], path[PATH_MAX];
	struct maildrop *md;

	new_spool_path(dir, path);
	write_file(path, spool, sizeof(spool) - 1);
	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
	ck_assert_int_eq(chmod(dir, 01777), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_OK);
	maildrop_close(md);
	ck_assert_int_eq(chmod(dir, 0700), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_OK);
	maildrop_close(md);
}
END_TEST

START_TEST(hard_link_refused)
{
	static const char spool[] = THREE;
	char dir[PATH_MAX], path[PATH_MAX], other[PATH_MAX + 8];
	struct maildrop *md;

	new_spool_path(dir, path);
	write_file(path, spool, sizeof(spool) - 1);
	snprintf(other, sizeof(other), "%s/other", dir);
	ck_assert_int_eq(link(path, other), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
	ck_assert_int_eq(unlink(other), 0);
	md = open_ok(path);
	maildrop_close(md);
}
END_TEST

START_TEST(wrong_owner_refused)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;

	make_spool(path, spool, sizeof(spool) - 1);
	ck_assert_int_eq(maildrop_open(path, getuid() + 1, &no_limits, &md),
			 MD_PERMFAIL);
}
END_TEST

START_TEST(not_a_regular_file_refused)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct maildrop *md;
	int fds = count_fds();

	new_spool_path(dir, path);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
	ck_assert_int_eq(rmdir(path), 0);
	/* O_NONBLOCK: a FIFO must not hang the open. */
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_PERMFAIL);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* Without read permission (not testable as root): a temporary failure. */
START_TEST(unreadable_is_tempfail)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;

	if (geteuid() == 0)
		return;
	make_spool(path, spool, sizeof(spool) - 1);
	ck_assert_int_eq(chmod(path, 0), 0);
	ck_assert_int_eq(open_spool(path, &md), MD_TEMPFAIL);
}
END_TEST

/* --- locks ------------------------------------------------------------------
 */

/* A shared spool (--shared-spool, NFS): the session lock is the fcntl
 * lock beside the journal, so a session in another process (another
 * host) gets MD_IN_USE, and none is taken on the spool itself (an MUA's
 * flock and a delivery go through). Without a journal directory to
 * hold it, the login is refused rather than left without exclusion. */
START_TEST(shared_spool_session_lock)
{
	static const char spool[] = THREE;
	struct md_limits lim = no_limits;
	char path[PATH_MAX];
	struct maildrop *md;
	int status, fd;
	pid_t pid;

	lim.shared_spool = true;
	make_spool(path, spool, sizeof(spool) - 1);
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_OK);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct maildrop *child_md;

		alarm(5);
		_exit(maildrop_open(path, getuid(), &lim, &child_md) ==
				      MD_IN_USE
			      ? 0
			      : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "a second session on a shared spool not refused");
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	close(fd);
	maildrop_close(md);
	lim.journal_dir = NULL;
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_PERMFAIL);
}
END_TEST

/* Whether a writer that takes flock alone could have the spool now. */
static bool
spool_flock_free(const char *path)
{
	int fd = open(path, O_RDWR);
	bool ok;

	ck_assert_int_ge(fd, 0);
	ok = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return ok;
}

START_TEST(second_session_in_use)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md, *md2;
	int fds, status;
	pid_t pid;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	fds = count_fds();
	/* Another process, as a second pop3d session would be. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct maildrop *child_md;

		alarm(5);
		_exit(open_spool(path, &child_md) == MD_IN_USE ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "second session in another process not refused");
	/* The same process: the lock is per open file description. */
	ck_assert_int_eq(open_spool(path, &md2), MD_IN_USE);
	ck_assert_int_eq(count_fds(), fds);
	/* The session lock is beside the journal, not on the spool: a
	 * writer that takes flock alone delivers during the session. */
	ck_assert(spool_flock_free(path));
	maildrop_close(md);
	md = open_ok(path);
	maildrop_close(md);
}
END_TEST

/* Where no journal directory can hold the session lock, a local spool's
 * session falls back to flock on the spool: sessions still exclude each
 * other (a flock-only writer then waits for the session, as it did for
 * every session before round 15). */
START_TEST(session_flock_without_journal_dir)
{
	static const char spool[] = THREE;
	struct md_limits lim = no_limits;
	char path[PATH_MAX];
	struct maildrop *md, *md2;

	lim.journal_dir = NULL;
	make_spool(path, spool, sizeof(spool) - 1);
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_OK);
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md2), MD_IN_USE);
	ck_assert(!spool_flock_free(path));
	maildrop_close(md);
	ck_assert(spool_flock_free(path));
}
END_TEST

/* design.md §4, guarantee 2: an idle session never holds up delivery. An
 * MTA's fcntl write lock is granted at once while a session is open. */
static void
deliver_locked(const char *path, const char *mail)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
		int fd = open(path, O_WRONLY | O_APPEND);
		size_t len = strlen(mail);

		if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
			_exit(2);
		if (write(fd, mail, len) != (ssize_t)len)
			_exit(3);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "delivery during the session failed (%d)",
		      WEXITSTATUS(status));
}

START_TEST(idle_session_lets_mta_deliver)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct buf out = {0};

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	deliver_locked(path, "\n" F1 "Subject: late\n\nlate\n");
	ck_assert_int_eq(send_msg(md, 2, NULL, &out), MD_OK);
	deliver_locked(path, "\n" F2 "Subject: later\n\nlater\n");
	/* Mail delivered during the session is not listed in it. */
	ck_assert_uint_eq(maildrop_count(md), 3);
	maildrop_close(md);
	buf_free(&out);
}
END_TEST

/* --- send failures ---------------------------------------------------------
 */

static int
sink_fail(void *ctx, const char *data, size_t len)
{
	errno = EPIPE;
	return -1;
}

START_TEST(sink_failure)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	unsigned long zero = 0;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	errno = 0;
	ck_assert_int_eq(maildrop_send(md, 0, NULL, sink_fail, NULL),
			 MD_TEMPFAIL);
	ck_assert_int_eq(errno, EPIPE);
	errno = 0;
	ck_assert_int_eq(maildrop_send(md, 1, &zero, sink_fail, NULL),
			 MD_TEMPFAIL);
	ck_assert_int_eq(errno, EPIPE);
	maildrop_close(md);
}
END_TEST

/* Another program cut the spool short: never send a wrong message as
 * complete (guarantee 4). */
START_TEST(send_after_truncation)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct buf out = {0};
	size_t cut = sizeof(spool) - 1 - 4;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	ck_assert_int_eq(truncate(path, cut), 0);
	ck_assert_int_eq(send_msg(md, 0, NULL, &out), MD_OK);
	ck_assert_int_eq(send_msg(md, 2, NULL, &out), MD_TEMPFAIL);
	maildrop_close(md);
	buf_free(&out);
}
END_TEST

/* What an MUA does when it marks the first message read: rewrite the
 * spool in place with a Status: header added to it. The new contents
 * are left in out. */
static void
rewrite_with_status(const char *path, const char *spool, size_t len,
		    struct buf *out)
{
	const char *blank = memmem(spool, len, "\n\n", 2);
	int fd;

	ck_assert_ptr_nonnull(blank);
	out->len = 0;
	buf_add(out, spool, blank + 1 - spool);
	buf_str(out, "Status: RO\n");
	buf_add(out, blank + 1, len - (blank + 1 - spool));
	/* Same inode, as MUAs rewrite mbox files. */
	fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, out->data, out->len), (ssize_t)out->len);
	ck_assert_int_eq(close(fd), 0);
}

/* The spool was rewritten with every message moved: none of them may be
 * sent as if it were the one parsed at login. */
START_TEST(send_after_rewrite)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct buf out = {0}, now = {0};
	unsigned long zero = 0;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	rewrite_with_status(path, spool, sizeof(spool) - 1, &now);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_msg(send_msg(md, i, NULL, &out) == MD_TEMPFAIL,
			      "RETR %zu after a rewrite", i + 1);
		ck_assert_msg(send_msg(md, i, &zero, &out) == MD_TEMPFAIL,
			      "TOP %zu 0 after a rewrite", i + 1);
	}
	maildrop_close(md);
	buf_free(&out);
	buf_free(&now);
}
END_TEST

/* RETR as the session does it: check, then send. */
static enum md_status
retr(struct maildrop *md, size_t i, const unsigned long *top, struct buf *out)
{
	enum md_status st = maildrop_verify(md, i);

	if (st != MD_OK)
		return st;
	return send_msg(md, i, top, out);
}

/* With _i set, let the spool's last change age well past the settling
 * time, so that the session trusts its snapshot of the spool and skips
 * the re-parse (design.md §4.6); without, it re-parses at every check.
 * Both must detect the same changes. */
static void
maybe_settle(int settle)
{
	if (settle)
		usleep(3 * SNAPSHOT_SETTLE_NS / 1000);
}

/* A same-length edit in place, as a broken or malicious program would
 * make it: no offset moves, the spool keeps its length. */
static void
poke(const char *path, const char *spool, size_t len, const char *old,
     const char *new)
{
	const char *at = memmem(spool, len, old, strlen(old));
	int fd;

	ck_assert_ptr_nonnull(at);
	ck_assert_uint_eq(strlen(old), strlen(new));
	fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, new, strlen(new), at - spool),
			 (ssize_t)strlen(new));
	ck_assert_int_eq(close(fd), 0);
}

START_TEST(send_after_same_length_edit)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct buf out = {0};
	unsigned long zero = 0;

	make_spool(path, spool, sizeof(spool) - 1);
	maybe_settle(_i);
	md = open_ok(path);
	ck_assert_int_eq(retr(md, 1, NULL, &out), MD_OK);
	poke(path, spool, sizeof(spool) - 1, "body 2", "BODY 2");
	ck_assert_int_eq(retr(md, 1, NULL, &out), MD_TEMPFAIL);
	ck_assert_int_eq(retr(md, 1, &zero, &out), MD_TEMPFAIL);
	/* The others are as they were, and still served. */
	ck_assert_int_eq(retr(md, 0, NULL, &out), MD_OK);
	ck_assert_int_eq(retr(md, 2, &zero, &out), MD_OK);
	maildrop_close(md);
	buf_free(&out);
}
END_TEST

/* RETR of the first message reads on past it while the spool is as it
 * was at login (maildrop.c, read_ahead); a message edited after that
 * read is still not served from it, and the others still are. */
START_TEST(send_ahead_after_edit)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct buf first = {0}, out = {0};

	make_spool(path, spool, sizeof(spool) - 1);
	maybe_settle(_i);
	md = open_ok(path);
	ck_assert_int_eq(retr(md, 0, NULL, &first), MD_OK);
	poke(path, spool, sizeof(spool) - 1, "body 3", "BODY 3");
	ck_assert_int_eq(retr(md, 2, NULL, &out), MD_TEMPFAIL);
	ck_assert_int_eq(retr(md, 1, NULL, &out), MD_OK);
	ck_assert_int_eq(retr(md, 0, NULL, &out), MD_OK);
	maildrop_close(md);
	buf_free(&first);
	buf_free(&out);
}
END_TEST

/* Mail delivered during the session is no change to the messages
 * listed; an edit made together with it still is. */
START_TEST(send_after_append_and_edit)
{
	static const char spool[] = THREE;
	static const char more[] = "\n" F1 "Subject: new\n\nnew\n";
	char path[PATH_MAX];
	struct maildrop *md;
	struct buf before[3] = {{0}}, out = {0};

	make_spool(path, spool, sizeof(spool) - 1);
	maybe_settle(_i);
	md = open_ok(path);
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(retr(md, i, NULL, &before[i]), MD_OK);
	append_file(path, more, sizeof(more) - 1);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(retr(md, i, NULL, &out), MD_OK);
		expect_bytes("after an append", out.data, out.len,
			     before[i].data, before[i].len);
	}
	poke(path, spool, sizeof(spool) - 1, "body 2", "BODY 2");
	ck_assert_int_eq(retr(md, 1, NULL, &out), MD_TEMPFAIL);
	ck_assert_int_eq(retr(md, 0, NULL, &out), MD_OK);
	ck_assert_int_eq(retr(md, 2, NULL, &out), MD_OK);
	maildrop_close(md);
	for (size_t i = 0; i < 3; i++)
		buf_free(&before[i]);
	buf_free(&out);
}
END_TEST

/* A message larger than one read: every byte and every TOP cut right,
 * whichever chunk it falls in. */
static void
big_spool(struct buf *spool, struct buf *body)
{
	char line[32];

	buf_str(spool, F1 HDRS_RECEIVED "\n");
	for (int n = 0; body->len < 3 * SEND_CHUNK_SIZE + 123; n++) {
		snprintf(line, sizeof(line), "line %d\n", n);
		buf_str(body, line);
	}
	buf_add(spool, body->data, body->len);
	buf_str(spool, "\n" F2 "Subject: two\n\nbody 2\n");
}

START_TEST(send_big_message)
{
	char path[PATH_MAX];
	struct maildrop *md;
	struct buf spool = {0}, body = {0}, out = {0};
	const char *msg;
	size_t len, nlines;
	unsigned long k;

	big_spool(&spool, &body);
	make_spool(path, spool.data, spool.len);
	maybe_settle(_i);
	md = open_ok(path);
	msg = strchr(spool.data, '\n') + 1;
	len = (const char *)memmem(spool.data, spool.len, "\n\n" F2,
				   sizeof("\n\n" F2) - 1) +
	      1 - msg;
	ck_assert_int_eq(retr(md, 0, NULL, &out), MD_OK);
	expect_bytes("RETR of a big message", out.data, out.len, msg, len);
	nlines = count_lines(body.data, body.len);
	for (k = 0; k <= nlines + 1; k += k < 5 ? 1 : nlines / 7) {
		ck_assert_int_eq(retr(md, 0, &k, &out), MD_OK);
		expect_bytes("TOP of a big message", out.data, out.len, msg,
			     top_model(msg, len, k));
	}
	maildrop_close(md);
	buf_free(&spool);
	buf_free(&body);
	buf_free(&out);
}
END_TEST

/* A sink that changes the spool in place, same length, while the
 * message is on its way: at the first call, after the first chunk was
 * read, before the later ones. An MUA flipping a flag in a header. */
struct edit_while_sending {
	struct buf *out;
	const char *path;
	off_t at;
	bool done;
};

static int
sink_edit(void *ctx, const char *data, size_t len)
{
	struct edit_while_sending *e = ctx;
	int fd;

	if (!e->done) {
		fd = open(e->path, O_WRONLY);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(pwrite(fd, "X", 1, e->at), 1);
		ck_assert_int_eq(close(fd), 0);
		e->done = true;
	}
	return sink_collect(e->out, data, len);
}

/* The bytes of a message that does not fit in one read are checked
 * again after the last one: a change to its headers made while it was
 * sent is never presented as complete (design.md §4.6 says which
 * changes further on go unseen once the spool has moved). */
START_TEST(edit_while_sending_big_message)
{
	char path[PATH_MAX];
	struct maildrop *md;
	struct buf spool = {0}, body = {0}, out = {0};
	struct edit_while_sending e = {.out = &out, .path = path};

	big_spool(&spool, &body);
	make_spool(path, spool.data, spool.len);
	maybe_settle(_i);
	md = open_ok(path);
	e.at = (const char *)memmem(spool.data, spool.len, "Date: ", 6) + 6 -
	       spool.data;
	ck_assert_int_eq(maildrop_verify(md, 0), MD_OK);
	ck_assert_int_eq(maildrop_send(md, 0, NULL, sink_edit, &e),
			 MD_TEMPFAIL);
	ck_assert(e.done);
	maildrop_close(md);
	buf_free(&spool);
	buf_free(&body);
	buf_free(&out);
}
END_TEST

/* RSET unmarks every message marked since login or the last RSET, and
 * the totals come back exactly. */
START_TEST(reset_unmarks)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct md_totals all, t;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	all = maildrop_totals(md);
	ck_assert_int_eq(maildrop_set_deleted(md, 0, true), 0);
	ck_assert_int_eq(maildrop_set_deleted(md, 2, true), 0);
	t = maildrop_totals(md);
	ck_assert_uint_eq(t.count, 1);
	ck_assert_uint_eq(t.bytes, maildrop_size(md, 1));
	maildrop_reset(md);
	for (size_t i = 0; i < 3; i++)
		ck_assert(!maildrop_deleted(md, i));
	t = maildrop_totals(md);
	ck_assert_uint_eq(t.count, all.count);
	ck_assert_uint_eq(t.bytes, all.bytes);
	/* Marked, unmarked, marked again: still one message, once. */
	maildrop_set_deleted(md, 1, true);
	maildrop_set_deleted(md, 1, false);
	maildrop_set_deleted(md, 1, true);
	ck_assert_uint_eq(maildrop_totals(md).count, 2);
	maildrop_reset(md);
	ck_assert(!maildrop_deleted(md, 1));
	t = maildrop_totals(md);
	ck_assert_uint_eq(t.count, all.count);
	ck_assert_uint_eq(t.bytes, all.bytes);
	maildrop_reset(md);
	ck_assert_uint_eq(maildrop_totals(md).count, all.count);
	maildrop_close(md);
}
END_TEST

START_TEST(deleted_flags)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	for (size_t i = 0; i < 3; i++)
		ck_assert(!maildrop_deleted(md, i));
	maildrop_set_deleted(md, 1, true);
	ck_assert(!maildrop_deleted(md, 0));
	ck_assert(maildrop_deleted(md, 1));
	ck_assert(!maildrop_deleted(md, 2));
	maildrop_set_deleted(md, 1, false);
	ck_assert(!maildrop_deleted(md, 1));
	maildrop_close(md);
}
END_TEST

/* --- UPDATE ------------------------------------------------------------- */

/* Three stored messages, each with its From_ line and separator, the last
 * without a final newline in the odd variants. */
static const struct bytes pieces[2][3] = {
	{
		B(F1 HDRS_RECEIVED "\nbody 1\n\n"),
		B(F2 "Subject: two\n\n>From quoted\n.dot\n\n"),
		B(F3 HDRS_PLAIN "\nbody 3\n\n"),
	},
	{
		B(F1 "S: 1\r\n\r\nbody 1\r\n\n"),
		B(F2 "S: 2\nX: \0\n\nb\0dy 2\n\n"),
		B(F3 "S: 3\n\nno newline"),
	},
};
/* What an MTA appends: a message and its separator. */
#define APPENDED F1 "Subject: appended\n\nnew mail\n\n"

/* UPDATE's "<spool>.lock" is gone when it returns. */
static void
expect_no_dotlock(const char *path)
{
	char lock[PATH_MAX + 8];
	struct stat st;

	snprintf(lock, sizeof(lock), "%s.lock", path);
	ck_assert_msg(lstat(lock, &st) < 0 && errno == ENOENT, "%s left behind",
		      lock);
}

/* _i: bits 0-2 the messages to delete, bit 3 the spool variant, bit 4
 * whether an MTA appends mail after login, bit 5 whether every message
 * is marked and RSET first, then the ones to delete marked last to
 * first (UPDATE must find the first marked one whatever the order). */
START_TEST(update_table)
{
	unsigned mask = _i & 7, variant = (_i >> 3) & 1;
	bool append = (_i >> 4) & 1, backwards = (_i >> 5) & 1;
	struct buf spool = {0}, want = {0}, got = {0};
	char path[PATH_MAX];
	struct maildrop *md;
	struct md_update_stats stats;
	struct stat before, after;
	uint64_t sizes[3], del_bytes = 0, left_bytes = 0;
	char **uids;
	size_t deleted = 0, kept = 0;

	if (append && variant == 1)
		return; /* no MTA appends after a missing final newline */
	for (size_t i = 0; i < 3; i++)
		buf_add(&spool, pieces[variant][i].p, pieces[variant][i].n);
	make_spool(path, spool.data, spool.len);
	ck_assert_int_eq(stat(path, &before), 0);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 3);
	expect_uids_ok(md, &uids);
	if (append)
		deliver_locked(path, APPENDED);
	buf_add(&want, "", 0);
	for (size_t i = 0; i < 3; i++) {
		sizes[i] = maildrop_size(md, i);
		if (mask & (1u << i)) {
			deleted++;
			del_bytes += sizes[i];
		} else {
			buf_add(&want, pieces[variant][i].p,
				pieces[variant][i].n);
			kept++;
			left_bytes += sizes[i];
		}
	}
	if (append)
		buf_str(&want, APPENDED); /* after the kept messages */
	if (backwards) {
		for (size_t i = 0; i < 3; i++)
			maildrop_set_deleted(md, i, true);
		maildrop_reset(md);
	}
	for (size_t k = 0; k < 3; k++) {
		size_t i = backwards ? 2 - k : k;

		if (mask & (1u << i))
			maildrop_set_deleted(md, i, true);
	}
	memset(&stats, 0xff, sizeof(stats));
	ck_assert_int_eq(maildrop_update(md, &stats), MD_OK);
	maildrop_close(md);

	read_whole_file(path, &got);
	{
		char what[64];

		snprintf(what, sizeof(what), "spool after deleting mask %u%s",
			 mask, append ? " with appended mail" : "");
		expect_bytes(what, got.data, got.len, want.data, want.len);
	}
	ck_assert_uint_eq(stats.deleted, deleted);
	ck_assert_uint_eq(stats.deleted_bytes, del_bytes);
	if (!append) {
		ck_assert_uint_eq(stats.left, kept);
		ck_assert_uint_eq(stats.left_bytes, left_bytes);
	}
	ck_assert_int_eq(stat(path, &after), 0);
	ck_assert_uint_eq(after.st_ino, before.st_ino);
	ck_assert_uint_eq(after.st_dev, before.st_dev);
	ck_assert_uint_eq(after.st_mode, before.st_mode);
	ck_assert_uint_eq(after.st_uid, before.st_uid);
	ck_assert_uint_eq(after.st_gid, before.st_gid);
	ck_assert_uint_eq(after.st_nlink, 1);
	expect_no_dotlock(path);

	/* The lock is gone, and the kept messages keep their ids. */
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), kept + (append ? 1 : 0));
	for (size_t i = 0, k = 0; i < 3; i++)
		if (!(mask & (1u << i)))
			ck_assert_str_eq(maildrop_uid(md, k++), uids[i]);
	maildrop_close(md);
	free_uids(uids);
	buf_free(&spool);
	buf_free(&want);
	buf_free(&got);
}
END_TEST

/* The spool's last message had no separator blank line, and the MTA
 * delivering during the session wrote one before its From_ line (as MDAs
 * do that keep messages apart). Whatever was deleted, the spool must
 * still parse, into the kept messages unchanged and the new mail. */
START_TEST(update_tail_after_unseparated_last)
{
	static const struct bytes msgs[3] = {
		B("S: 1\n\nb1\n"),
		B("S: 2\n\nb2\n"),
		B("S: 3\n\nb3\n"),
	};
	static const char spool[] =
		F1 "S: 1\n\nb1\n\n" F2 "S: 2\n\nb2\n\n" F3 "S: 3\n\nb3\n";
	unsigned mask = _i;
	char path[PATH_MAX], name[64];
	struct maildrop *md;
	struct md_update_stats stats;
	size_t k = 0;

	make_spool(path, spool, sizeof(spool) - 1);
	md = open_ok(path);
	ck_assert_uint_eq(maildrop_count(md), 3);
	deliver_locked(path, "\n" F1 "S: 4\n\nb4\n\n");
	for (size_t i = 0; i < 3; i++)
		maildrop_set_deleted(md, i, mask & (1u << i));
	ck_assert_int_eq(maildrop_update(md, &stats), MD_OK);
	maildrop_close(md);

	snprintf(name, sizeof(name), "after deleting mask %u", mask);
	ck_assert_msg(open_spool(path, &md) == MD_OK,
		      "%s: spool no longer opens", name);
	ck_assert_uint_eq(maildrop_count(md),
			  1 + !(mask & 1) + !(mask & 2) + !(mask & 4));
	for (size_t i = 0; i < 3; i++)
		if (!(mask & (1u << i)))
			expect_message(md, k++, msgs[i].p, msgs[i].n, name);
	expect_message(md, k, "S: 4\n\nb4\n", 9, name);
	maildrop_close(md);
}
END_TEST

/* Another MUA changed the spool after login: UPDATE deletes nothing. */
START_TEST(update_after_foreign_change)
{
	static const char spool[] = THREE;
	char path[PATH_MAX];
	struct maildrop *md;
	struct md_update_stats stats;
	struct buf got = {0};
	size_t len = sizeof(spool) - 1;
	size_t p1 = sizeof(F1 HDRS_RECEIVED "\nbody 1\n\n") - 1;

	/* (a) Cut short: the last message lost its tail. */
	make_spool(path, spool, len);
	md = open_ok(path);
	maildrop_set_deleted(md, 0, true);
	ck_assert_int_eq(truncate(path, len - 3), 0);
	ck_assert_int_eq(maildrop_update(md, &stats), MD_TEMPFAIL);
	maildrop_close(md);
	read_whole_file(path, &got);
	expect_bytes("spool cut short, after UPDATE", got.data, got.len, spool,
		     len - 3);
	expect_no_dotlock(path);
	md = open_ok(path); /* the lock was released */
	maildrop_close(md);

	/* (b) Rewritten: an MUA expunged the first message. */
	make_spool(path, spool, len);
	md = open_ok(path);
	maildrop_set_deleted(md, 1, true);
	write_file(path, spool + p1, len - p1);
	ck_assert_int_eq(maildrop_update(md, &stats), MD_TEMPFAIL);
	maildrop_close(md);
	read_whole_file(path, &got);
	expect_bytes("spool rewritten, after UPDATE", got.data, got.len,
		     spool + p1, len - p1);
	expect_no_dotlock(path);

	/* (c) Rewritten longer: an MUA added a Status: header to the
	 * first message, moving the others up. */
	make_spool(path, spool, len);
	md = open_ok(path);
	maildrop_set_deleted(md, 1, true);
	rewrite_with_status(path, spool, len, &got);
	ck_assert_int_eq(maildrop_update(md, &stats), MD_TEMPFAIL);
	maildrop_close(md);
	{
		struct buf now = {0};

		read_whole_file(path, &now);
		expect_bytes("spool with Status: added, after UPDATE", now.data,
			     now.len, got.data, got.len);
		buf_free(&now);
	}
	expect_no_dotlock(path);
	buf_free(&got);
}
END_TEST

/* UPDATE on an empty or missing maildrop changes nothing. */
/* Issue 14: a journal is written back into the spool, so its directory
 * must be the user's own, 0700, no symlink. Otherwise nothing is
 * recovered, UPDATE refuses to move mail (MD_PERMFAIL, [SYS/PERM]) and
 * the spool stays as it was; a journal pending there refuses the open. */
enum bad_jdir { JD_MODE, JD_SYMLINK, JD_FILE, JD_MISSING, JD_OWNER, JD_N };

static void
make_bad_jdir(enum bad_jdir kind, const char *dir, const char *jdir)
{
	char real[PATH_MAX];

	switch (kind) {
	case JD_MODE:
		ck_assert_int_eq(mkdir(jdir, 0700), 0);
		ck_assert_int_eq(chmod(jdir, 0750), 0);
		break;
	case JD_SYMLINK:
		ck_assert((size_t)snprintf(real, sizeof(real), "%s/real", dir) <
			  sizeof(real));
		ck_assert_int_eq(mkdir(real, 0700), 0);
		ck_assert_int_eq(symlink(real, jdir), 0);
		break;
	case JD_FILE:
		write_file(jdir, "", 0);
		break;
	case JD_MISSING:
		break;
	case JD_OWNER:
		ck_assert_int_eq(mkdir(jdir, 0700), 0);
		ck_assert_int_eq(chown(jdir, getuid() + 1, getgid()), 0);
		break;
	default:
		ck_abort();
	}
}

START_TEST(update_refused_without_trusted_journal_dir)
{
	static const char mail[] = "From a\n\none\n\nFrom b\n\ntwo\n";
	char dir[PATH_MAX], path[PATH_MAX], jdir[PATH_MAX];
	struct md_limits lim = no_limits;
	struct md_update_stats stats;
	struct maildrop *md;
	struct buf got = {0};

	if (_i == JD_OWNER && getuid() != 0)
		return; /* only root can give a directory away */
	new_spool_path(dir, path);
	write_file(path, mail, sizeof(mail) - 1);
	ck_assert((size_t)snprintf(jdir, sizeof(jdir), "%s/journal", dir) <
		  sizeof(jdir));
	make_bad_jdir((enum bad_jdir)_i, dir, jdir);
	lim.journal_dir = jdir;
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_OK);
	ck_assert_uint_eq(maildrop_count(md), 2);
	maildrop_set_deleted(md, 0, true);
	ck_assert_int_eq(maildrop_update(md, &stats), MD_PERMFAIL);
	maildrop_close(md);
	read_whole_file(path, &got);
	ck_assert_uint_eq(got.len, sizeof(mail) - 1);
	ck_assert_mem_eq(got.data, mail, got.len);
	free(got.data);
}
END_TEST

START_TEST(pending_journal_in_untrusted_dir_refuses_open)
{
	char dir[PATH_MAX], path[PATH_MAX], jdir[PATH_MAX], jpath[PATH_MAX];
	struct md_limits lim = no_limits;
	struct maildrop *md;
	struct stat st;

	new_spool_path(dir, path);
	write_file(path, "From a\n\none\n", 12);
	ck_assert((size_t)snprintf(jdir, sizeof(jdir), "%s/journal", dir) <
		  sizeof(jdir));
	ck_assert_int_eq(mkdir(jdir, 0755), 0);
	ck_assert_int_eq(chmod(jdir, 0755), 0);
	ck_assert_int_eq(journal_path(jdir, path, jpath, sizeof(jpath)), 0);
	write_file(jpath, "forged", 6);
	lim.journal_dir = jdir;
	ck_assert_int_eq(maildrop_open(path, getuid(), &lim, &md), MD_PERMFAIL);
	ck_assert_ptr_null(md);
	/* Left for the admin to judge. */
	ck_assert_int_eq(stat(jpath, &st), 0);
}
END_TEST

START_TEST(update_empty)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct maildrop *md;
	struct md_update_stats stats;
	struct stat st;

	new_spool_path(dir, path);
	md = open_ok(path);
	ck_assert_int_eq(maildrop_update(md, &stats), MD_OK);
	maildrop_close(md);
	ck_assert_int_eq(stat(path, &st), -1);

	write_file(path, "", 0);
	md = open_ok(path);
	ck_assert_int_eq(maildrop_update(md, &stats), MD_OK);
	maildrop_close(md);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
}
END_TEST

/* --- runner ------------------------------------------------------------- */

static Suite *
maildrop_suite(void)
{
	Suite *s = suite_create("maildrop");
	TCase *tc;

	tc = tcase_create("safety");
	tcase_add_test(tc, missing_file_is_empty);
	tcase_add_test(tc, limits);
	tcase_add_test(tc, symlink_refused);
	tcase_add_test(tc, open_spool_directory_refused);
	tcase_add_test(tc, hard_link_refused);
	tcase_add_test(tc, wrong_owner_refused);
	tcase_add_test(tc, not_a_regular_file_refused);
	tcase_add_test(tc, unreadable_is_tempfail);
	tcase_add_test(tc, second_session_in_use);
	tcase_add_test(tc, shared_spool_session_lock);
	tcase_add_test(tc, session_flock_without_journal_dir);
	tcase_add_test(tc, idle_session_lets_mta_deliver);
	tcase_add_test(tc, sink_failure);
	tcase_add_test(tc, send_after_truncation);
	tcase_add_test(tc, send_after_rewrite);
	tcase_add_test(tc, deleted_flags);
	tcase_add_test(tc, reset_unmarks);
	suite_add_tcase(s, tc);

	tc = tcase_create("change detection");
	tcase_add_loop_test(tc, send_after_same_length_edit, 0, 2);
	tcase_add_loop_test(tc, send_ahead_after_edit, 0, 2);
	tcase_add_loop_test(tc, send_after_append_and_edit, 0, 2);
	tcase_add_loop_test(tc, send_big_message, 0, 2);
	tcase_add_loop_test(tc, edit_while_sending_big_message, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("update");
	tcase_add_loop_test(tc, update_table, 0, 64);
	tcase_add_loop_test(tc, update_tail_after_unseparated_last, 0, 8);
	tcase_add_test(tc, update_after_foreign_change);
	tcase_add_test(tc, update_empty);
	tcase_add_loop_test(tc, update_refused_without_trusted_journal_dir, 0,
			    JD_N);
	tcase_add_test(tc, pending_journal_in_untrusted_dir_refuses_open);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return spool_test_main("test_maildrop", maildrop_suite());
}
