#include "maildrop.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "keeper.h"
#include "lock.h"
#include "log.h"
#include "mbox.h"
#include "params.h"
#include "sysutil.h"
#include "uidl.h"

/* What fstat said of the spool at login, under the read lock: while it
 * still says the same, nobody has written the file since (§4.6). */
struct snapshot {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	bool trusted; /* old enough that the next write must move them */
};

/* The start of a message read by maildrop_verify under its lock, for
 * maildrop_send to use: buf holds [off, off + len) of message msg. */
struct prefetch {
	size_t msg; /* SIZE_MAX: none */
	off_t off;
	size_t len;
};

/* What buf holds of the spool, [off, off + len), if it was read under a
 * read lock while the snapshot held (len 0: nothing, or not so read):
 * those bytes were the spool as parsed at login, so while the snapshot
 * still holds they still are, and the next messages are served from
 * them with one fstat (design.md §4.6). */
struct ahead {
	off_t off;
	size_t len;
};

struct maildrop {
	int fd; /* -1: no spool file, an empty maildrop */
	char *path;
	bool shared;	     /* other hosts serve it too (lock_spool_shared) */
	int session_fd;	     /* holds the session lock (session_lock) or -1 */
	bool flocks;	     /* the steps take flock too (session_lock) */
	char *journal;	     /* the recovery journal's path, or NULL */
	bool update_pending; /* UPDATE began, its journal kept (expunge) */
	int io_error;	     /* errno of the last failed check, for the log */
	off_t length;	     /* the spool's length when it was parsed */
	size_t count, cap;
	uint64_t bytes;	       /* of all count messages */
	struct md_totals kept; /* not marked deleted */
	struct snapshot snap;
	/* The spool as check_ahead found it, every message from the first
	 * deleted one on as parsed (trusted false: no such check). */
	struct snapshot checked;
	struct prefetch pre;
	struct ahead ahead;
	/* The messages marked deleted since login or the last RSET (some
	 * perhaps unmarked since): what maildrop_reset walks. */
	size_t *marked;
	size_t nmarked, marked_cap;
	/* No message before it is marked deleted (SIZE_MAX: none marked):
	 * UPDATE starts its search there, not at message 1, which on
	 * 100,000 messages cost 5 ms per QUIT (DELE last, or none). */
	size_t first_marked;
	struct message *msg;
	struct uidl_entry *uid;
	struct uidl_table xuidls;
	struct uidl_hasher *hasher;
	char *buf; /* SPOOL_CHUNK_SIZE */
	char uid_text[UIDL_MAX + 1];
	/* Why there is no journal: "<dir>: <the failed check>", or "". */
	char journal_refused[PATH_MAX + 64];
};

/* --- locks (lock.h) ----------------------------------------------------- */

static enum md_status
lock_result(enum lock_status st)
{
	switch (st) {
	case LOCK_OK:
		return MD_OK;
	case LOCK_BUSY:
		return MD_BUSY;
	case LOCK_REFUSED:
	case LOCK_FOREIGN:
		return MD_PERMFAIL;
	default:
		return MD_TEMPFAIL;
	}
}

/* The session lock is taken without waiting: busy means another
 * session, not a wait that ran out. */
static enum md_status
session_result(enum lock_status st)
{
	return st == LOCK_BUSY ? MD_IN_USE : lock_result(st);
}

static enum md_status
read_lock(struct maildrop *md)
{
	return lock_result(lock_read(md->fd, md->path, md->flocks));
}

static void
read_unlock(struct maildrop *md)
{
	lock_read_end(md->fd, md->path, md->flocks);
}

static enum md_status
update_lock(struct maildrop *md, char *dotlock, size_t size)
{
	return lock_result(lock_update(md->fd, md->path, md->shared, md->flocks,
				       dotlock, size));
}

static void
update_unlock(struct maildrop *md, const char *dotlock)
{
	lock_update_end(md->fd, md->path, md->flocks, dotlock);
}

/* A signal must not stop a rewrite halfway, UPDATE's or recovery's, nor
 * leave the dotlock behind (R1939-22): every signal is held from before
 * the update locks are taken until they are let go, and a SIGTERM or
 * SIGHUP then ends the process. The dotlock keeper ignores them, so it
 * is still there to remove the lock (keeper.c). */
static void
signals_hold(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, old);
}

static void
signals_restore(const sigset_t *old)
{
	sigprocmask(SIG_SETMASK, old, NULL);
}

/* The stamp of the dotlock just taken, for the journal to record
 * (journal_dotlock); NULL if it cannot be had. */
static const struct file_stamp *
held_dotlock(const char *dotlock, struct file_stamp *s)
{
	return sys_lstat_stamp(dotlock, s) == 0 ? s : NULL;
}

/* --- open and parse ----------------------------------------------------- */

/* The spool's directory, opened for openat(): the name is then looked up
 * in the directory we checked, whatever happens to the path meanwhile. A
 * directory others may write to without the sticky bit lets them replace
 * the spool: refused. Returns the descriptor, -2 if the directory does
 * not exist (an empty maildrop), -3 if refused, -1 on other errors. */
static int
open_spool_dir(struct maildrop *md)
{
	const char *slash = strrchr(md->path, '/');
	char dir[PATH_MAX];
	struct stat st;
	int dfd;

	if (slash == NULL || slash[1] == '\0' ||
	    (size_t)(slash - md->path) >= sizeof(dir)) {
		log_msg(LOG_ERR, "%s: not a path to a file", md->path);
		return -3;
	}
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - md->path), md->path);
	dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		if (errno == ENOENT)
			return -2;
		log_msg(LOG_ERR, "%s: %m", dir);
		return -1;
	}
	if (fstat(dfd, &st) < 0) {
		log_msg(LOG_ERR, "%s: fstat: %m", dir);
		close(dfd);
		return -1;
	}
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
		log_msg(LOG_ERR,
			"%s: refused: the spool directory is writable "
			"by others and not sticky",
			dir);
		close(dfd);
		return -3;
	}
	return dfd;
}

/* Under no_new_privs (the units' NoNewPrivileges=yes) the setgid
 * dotlockfile cannot take group mail, so in a directory that the dotlock
 * keeper (keeper.c) does not serve, a user who cannot write it cannot
 * make a dotlock either, and every QUIT that deletes mail fails ("dotlock
 * failed"). Said at start-up, where the admin looks, and not only at each
 * QUIT. Only root serves other users; not started as root, the one user
 * pop3d runs as makes their own locks. */
static void
check_dotlock_maker(const char *dir, const struct stat *st)
{
	if (geteuid() != 0 || prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 ||
	    keeper_serves(st))
		return;
	log_msg(LOG_WARNING,
		"spool directory %s: not writable by group %s (mode %04o): "
		"with no_new_privs set (NoNewPrivileges=), only users who "
		"may write it themselves can have a dotlock made there, and "
		"for every other user each QUIT that deletes mail will fail; "
		"the supported layout is 2775 root:%s, else remove "
		"NoNewPrivileges=",
		dir, KEEPER_GROUP, (unsigned)(st->st_mode & 07777),
		KEEPER_GROUP);
}

/* design.md §4.1 and INSTALL: the supported spool directory is Debian's
 * 2775 root:mail, where only root and group mail (the setgid dotlockfile
 * helper among them) create names. A directory anyone may write to is
 * warned about loudly, not refused: some distributions ship /var/mail
 * as 1777, and with the sticky bit the spool checks still keep each
 * user's mail from the others. What they allow is denial of service,
 * which pop3d can only make visible: another user may pre-create a
 * spool (refused as not the user's, [SYS/PERM]) or plant <user>.lock
 * (a foreign dotlock: every UPDATE refused at once, lock.c), and the
 * same squatter holds up the MDAs' deliveries. Without the sticky bit
 * every login is refused (open_spool_dir); that too is said here. The
 * directory is only known here when --mailbox fixes it (/var/mail/%u);
 * otherwise the per-login log lines name it. */
void
maildrop_check_dir(const char *pattern)
{
	const char *slash = strrchr(pattern, '/');
	char dir[PATH_MAX];
	struct stat st;

	if (slash == NULL || memchr(pattern, '%', slash - pattern) != NULL ||
	    (size_t)(slash - pattern) >= sizeof(dir))
		return;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - pattern), pattern);
	if (stat(dir[0] ? dir : "/", &st) < 0)
		return;
	if (!(st.st_mode & S_IWOTH)) {
		check_dotlock_maker(dir, &st);
		return;
	}
	if (!(st.st_mode & S_ISVTX))
		log_msg(LOG_ERR,
			"spool directory %s: writable by all users and not "
			"sticky (mode %04o): every login will be refused; "
			"the supported layout is 2775 root:mail",
			dir, (unsigned)(st.st_mode & 07777));
	else
		log_msg(LOG_WARNING,
			"spool directory %s: writable by all users (mode "
			"%04o): any of them can plant another's spool or "
			"dotlock and stop that user's logins or deletions; "
			"the supported layout is 2775 root:mail",
			dir, (unsigned)(st.st_mode & 07777));
}

/* The spool must be a plain file of the user's with one name that
 * nobody else may write. Logs the first check that fails, alone, so the
 * admin knows what to fix. Returns true if the spool is refused. In a
 * directory all users may write to, a spool of another's is most likely
 * planted before the user's first delivery (maildrop_check_dir): said. */
static bool
spool_refused(const char *path, const struct stat *st, uid_t owner,
	      bool open_dir)
{
	if (!S_ISREG(st->st_mode))
		log_msg(LOG_ERR, "%s: refused: not a regular file", path);
	else if (st->st_uid != owner)
		log_msg(LOG_ERR, "%s: refused: owned by uid %lu, not %lu%s",
			path, (unsigned long)st->st_uid, (unsigned long)owner,
			open_dir ? "; the spool directory is writable by all "
				   "users, who can do this: the supported "
				   "layout is 2775 root:mail"
				 : "");
	else if (st->st_nlink != 1)
		log_msg(LOG_ERR, "%s: refused: %lu hard links, not 1", path,
			(unsigned long)st->st_nlink);
	else if (st->st_mode & S_IWOTH)
		log_msg(LOG_ERR, "%s: refused: writable by others (mode %04o)",
			path, (unsigned)(st->st_mode & 07777));
	else
		return false;
	return true;
}

/* Reading the spool must not touch its atime. procmail, before it
 * appends, sleeps a whole second with the dotlock and its fcntl write
 * lock held whenever the mailbox was read in the current second (so
 * that its write leaves mtime after atime: "new mail"); with a session
 * reading after every delivery, each delivery held the locks for 1 s
 * (measured: procmail's dotlock held a median of 1,001 ms in make
 * stress-postfix POSTFIX_MDA=procmail, and traced: clock_nanosleep of
 * 1 s between its F_SETLKW and its write). O_NOATIME is allowed to the
 * file's owner, which the session is; elsewhere (a test's real uid, a
 * file system that refuses it) the spool is opened as before. */
static int
open_noatime(int dfd, const char *name)
{
	int flags = O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	int fd = openat(dfd, name, flags | O_NOATIME);

	if (fd < 0 && errno == EPERM)
		fd = openat(dfd, name, flags);
	return fd;
}

/* Which open(2) failures may pass on a retry ([SYS/TEMP]) rather than
 * need the admin ([SYS/PERM]). */
static enum md_status
open_failure(int err)
{
	return err == EACCES || err == EAGAIN || err == EINTR ||
			       err == ENOMEM || err == EMFILE || err == ENFILE
		       ? MD_TEMPFAIL
		       : MD_PERMFAIL;
}

/* design.md §4: never follow a link, never create, never block on a
 * FIFO; the spool must be a plain file of the user's with one name. */
static enum md_status
open_spool(struct maildrop *md, uid_t owner, bool shared)
{
	struct stat sb, ds;
	enum md_status st;
	bool open_dir;
	int dfd;

	if ((dfd = open_spool_dir(md)) < 0)
		return dfd == -2   ? MD_OK
		       : dfd == -3 ? MD_PERMFAIL
				   : MD_TEMPFAIL;
	open_dir = fstat(dfd, &ds) == 0 && (ds.st_mode & S_IWOTH);
	md->fd = open_noatime(dfd, strrchr(md->path, '/') + 1);
	close(dfd);
	if (md->fd < 0) {
		if (errno == ENOENT)
			return MD_OK;
		st = open_failure(errno);
		log_msg(LOG_ERR, "%s: open: %m", md->path);
		return st;
	}
	if (fstat(md->fd, &sb) < 0) {
		log_msg(LOG_ERR, "%s: fstat: %m", md->path);
		return MD_TEMPFAIL;
	}
	if (spool_refused(md->path, &sb, owner, open_dir))
		return MD_PERMFAIL;
	md->shared = lock_spool_shared(md->fd, md->path, shared);
	return MD_OK;
}

static int
grow(struct maildrop *md)
{
	size_t cap = md->cap ? md->cap * 2 : 256;
	struct message *m;
	struct uidl_entry *u;

	m = reallocarray(md->msg, cap, sizeof(*m));
	if (m == NULL)
		return -1;
	md->msg = m;
	u = reallocarray(md->uid, cap, sizeof(*u));
	if (u == NULL)
		return -1;
	md->uid = u;
	md->cap = cap;
	return 0;
}

/* Room for one more message, within --max-messages. */
static enum md_status
make_room(struct maildrop *md, const struct md_limits *limits)
{
	if (md->count == limits->max_messages) {
		log_msg(LOG_ERR,
			"%s: refused: more than %lu messages "
			"(--max-messages)",
			md->path, limits->max_messages);
		return MD_PERMFAIL;
	}
	if (md->count == md->cap && grow(md) < 0) {
		log_msg(LOG_ERR, "%s: out of memory", md->path);
		return MD_TEMPFAIL;
	}
	return MD_OK;
}

static enum md_status
read_failed(const struct maildrop *md, const struct reader *r)
{
	if (r->error != 0)
		log_msg(LOG_ERR, "%s: read: %s", md->path, strerror(r->error));
	else
		log_msg(LOG_ERR, "%s: shrank while being read", md->path);
	return MD_TEMPFAIL;
}

static enum md_status
parse_spool(struct maildrop *md, const struct md_limits *limits)
{
	enum md_status st;
	struct reader r;
	char *xuidl;
	int rc;

	reader_init(&r, md->fd, md->buf, SPOOL_CHUNK_SIZE, 0, md->length);
	if (md->length > 0 && !reader_at_from_line(&r)) {
		if (r.error != 0 || r.short_file)
			return read_failed(md, &r);
		log_msg(LOG_ERR,
			"%s: refused: not an mbox file "
			"(does not start with \"From \")",
			md->path);
		return MD_PERMFAIL;
	}
	while (!reader_at_end(&r)) {
		if ((st = make_room(md, limits)) != MD_OK)
			return st;
		md->uid[md->count].xuidl = 0;
		rc = mbox_parse_message(&r, md->hasher, &md->msg[md->count],
					&md->uid[md->count], &xuidl);
		if (rc < 0)
			free(xuidl);
		if (rc == -2) {
			log_msg(LOG_ERR,
				"%s: refused: message %zu has 4 GiB of "
				"headers or more",
				md->path, md->count + 1);
			return MD_PERMFAIL;
		}
		if (rc < 0)
			return read_failed(md, &r);
		if (xuidl != NULL && uidl_table_add(&md->xuidls, xuidl,
						    &md->uid[md->count]) < 0) {
			log_msg(LOG_ERR, "%s: out of memory", md->path);
			return MD_TEMPFAIL;
		}
		md->bytes += md->msg[md->count].size;
		md->count++;
	}
	if (r.error != 0 || r.short_file)
		return read_failed(md, &r);
	return MD_OK;
}

static int64_t
ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* Taken under the read lock, so it describes the bytes parsed. */
static void
take_snapshot(struct snapshot *snap, const struct stat *sb)
{
	*snap = (struct snapshot){.dev = sb->st_dev,
				  .ino = sb->st_ino,
				  .size = sb->st_size,
				  .mtim = sb->st_mtim,
				  .ctim = sb->st_ctim};
}

/* One tick of the coarse clock: how far a file time taken from the fine
 * clock can run ahead of it. */
static int64_t
coarse_tick_ns(void)
{
	struct timespec res;

	if (clock_getres(CLOCK_REALTIME_COARSE, &res) < 0 ||
	    ts_ns(&res) > SNAPSHOT_TICK_MAX_NS)
		return SNAPSHOT_TICK_MAX_NS;
	return ts_ns(&res);
}

/* Still under the read lock, after the parse. Every write, truncate or
 * rename onto the file sets its ctime (which an unprivileged program
 * cannot set back) to the clock's coarse time, cut to the file system's
 * granularity, or, since Linux 6.13 (multigrain timestamps), to the fine
 * clock's time if the old ctime has been read since: up to a tick ahead
 * of the coarse clock, and always after the time read. So once the
 * coarse clock has passed the last change by more than one grain, any
 * later change must show: then the snapshot is trusted. A spool changed
 * just before login is waited for, a few milliseconds with the lock
 * held; where only seconds are kept (no nanoseconds in either time) that
 * would be too long, and a recent change leaves the snapshot untrusted:
 * every check parses again. */
static void
settle_snapshot(struct snapshot *s)
{
	bool coarse = s->ctim.tv_nsec == 0 && s->mtim.tv_nsec == 0;
	int64_t last = ts_ns(&s->ctim) > ts_ns(&s->mtim) ? ts_ns(&s->ctim)
							 : ts_ns(&s->mtim);
	int64_t settled = last + (coarse ? SNAPSHOT_SETTLE_COARSE_NS
					 : SNAPSHOT_SETTLE_NS);
	/* A change stamped by the fine clock is settled up to a tick later
	 * by the coarse one: still waited for. Later than that, the time
	 * is not this host's (a clock set back, a file server's clock) and
	 * is not waited for. */
	int64_t most = SNAPSHOT_SETTLE_NS + coarse_tick_ns();
	struct timespec now, wait;

	if (clock_gettime(CLOCK_REALTIME_COARSE, &now) < 0)
		return;
	/* The coarse clock (the one file times come from) lags the sleep's
	 * clock by up to a tick: wait until it too has passed, a few ticks
	 * at most, so that whether the snapshot is trusted does not depend
	 * on where in a tick the login fell. */
	for (int ticks = 0;
	     !coarse && settled >= ts_ns(&now) &&
	     settled - ts_ns(&now) <= most && ticks < SNAPSHOT_SETTLE_TICKS;
	     ticks++) {
		wait.tv_sec = 0;
		wait.tv_nsec = settled - ts_ns(&now) + 1000L * 1000;
		nanosleep(&wait, NULL);
		if (clock_gettime(CLOCK_REALTIME_COARSE, &now) < 0)
			return;
	}
	s->trusted = settled < ts_ns(&now);
}

/* Under a lock: has nobody written the spool since s was taken? False
 * if s is not trusted, or fstat fails (io_error then says why). */
static bool
unwritten_since(struct maildrop *md, const struct snapshot *s)
{
	struct stat sb;

	if (!s->trusted)
		return false;
	if (fstat(md->fd, &sb) < 0) {
		md->io_error = errno;
		return false;
	}
	return sb.st_dev == s->dev && sb.st_ino == s->ino &&
	       sb.st_size == s->size && ts_ns(&sb.st_mtim) == ts_ns(&s->mtim) &&
	       ts_ns(&sb.st_ctim) == ts_ns(&s->ctim);
}

/* Has nobody written the spool since login? */
static bool
snapshot_holds(struct maildrop *md)
{
	return unwritten_since(md, &md->snap);
}

/* Under a read lock, so no delivery is half-written while we look. */
static enum md_status
load(struct maildrop *md, const struct md_limits *limits)
{
	enum md_status st;
	struct stat sb;

	if ((st = read_lock(md)) != MD_OK)
		return st;
	if (fstat(md->fd, &sb) < 0) {
		log_msg(LOG_ERR, "%s: fstat: %m", md->path);
		st = MD_TEMPFAIL;
	} else if ((uint64_t)sb.st_size > limits->max_size) {
		log_msg(LOG_ERR,
			"%s: refused: %lld bytes is over the limit "
			"of %llu (--max-size)",
			md->path, (long long)sb.st_size,
			(unsigned long long)limits->max_size);
		st = MD_PERMFAIL;
	} else {
		md->length = sb.st_size;
		take_snapshot(&md->snap, &sb);
		if ((st = parse_spool(md, limits)) == MD_OK)
			settle_snapshot(&md->snap);
	}
	read_unlock(md);
	return st;
}

/* A journal is written back into the spool at the next login, so
 * whoever can write one can write the user's mail (issue 14): its
 * directory must be the user's own, mode 0700, and no symlink. Judged by
 * path, as the user: <journal-dir> is root's and writable by root alone
 * (monitor.c refuses anything else at start-up), so no other user can
 * swap <journal-dir>/<uid> between this lstat and the journal's open.
 * Returns true, with the one failed check in why, if it is refused. */
static bool
journal_dir_refused(const char *dir, uid_t owner, char *why, size_t size)
{
	struct stat st;

	if (lstat(dir, &st) < 0)
		snprintf(why, size, "%s: %s", dir, strerror(errno));
	else if (S_ISLNK(st.st_mode))
		snprintf(why, size, "%s: a symlink", dir);
	else if (!S_ISDIR(st.st_mode))
		snprintf(why, size, "%s: not a directory", dir);
	else if (st.st_uid != owner)
		snprintf(why, size, "%s: owned by uid %lu, not %lu", dir,
			 (unsigned long)st.st_uid, (unsigned long)owner);
	else if ((st.st_mode & 07777) != 0700)
		snprintf(why, size, "%s: mode %04o, not 0700", dir,
			 (unsigned)(st.st_mode & 07777));
	else
		return false;
	return true;
}

/* The journal is named after the spool's path (journal_path): a name a
 * reboot that renumbers devices does not change, and nothing a user can
 * steer. An UPDATE that a crash interrupted is finished before the spool
 * is read, under the update locks. In a refused directory nothing is
 * recovered and UPDATE will refuse to move mail; if a journal is pending
 * there, the spool may be half rewritten and the journal cannot be
 * trusted to finish it, so the login is refused ([SYS/PERM]) until the
 * admin looks. So is a login whose journal does not match the spool
 * (journal.h: JOURNAL_REFUSED). */
static enum md_status
recover(struct maildrop *md, const char *dir, uid_t owner)
{
	char dotlock[PATH_MAX], jpath[PATH_MAX];
	struct file_stamp left, held;
	enum md_status st;
	sigset_t old;
	bool pending;
	int r;

	if (journal_path(dir, md->path, jpath, sizeof(jpath)) < 0 ||
	    (md->journal = strdup(jpath)) == NULL) {
		log_msg(LOG_ERR, "%s: no journal path in %s", md->path, dir);
		return MD_TEMPFAIL;
	}
	if (journal_dir_refused(dir, owner, md->journal_refused,
				sizeof(md->journal_refused))) {
		pending = journal_pending(md->journal);
		log_msg(LOG_ERR, "journal directory refused: %s; %s",
			md->journal_refused,
			pending ? "a journal is pending there: login refused"
				: "UPDATE will not delete");
		free(md->journal);
		md->journal = NULL;
		return pending ? MD_PERMFAIL : MD_OK;
	}
	if (!journal_pending(md->journal))
		return MD_OK;
	/* We hold the session lock: the UPDATE that left the journal is
	 * dead, and so is any claim of the dotlock it made. */
	if (!md->shared && journal_dotlock(md->journal, &left))
		lock_clear_left(md->fd, md->path, md->flocks, &left);
	/* As UPDATE (maildrop_update): a SIGTERM in the lock wait or the
	 * rewrite would leave the dotlock, and the spool half rewritten for
	 * every other reader until the next login. */
	signals_hold(&old);
	if ((st = update_lock(md, dotlock, sizeof(dotlock))) != MD_OK) {
		signals_restore(&old);
		return st;
	}
	r = journal_recover(md->fd, md->journal, md->buf, SPOOL_CHUNK_SIZE,
			    held_dotlock(dotlock, &held));
	if (r < 0)
		log_msg(LOG_ERR, "%s: recovery from %s failed: %m", md->path,
			md->journal);
	update_unlock(md, dotlock);
	signals_restore(&old);
	if (r == JOURNAL_REFUSED)
		return MD_PERMFAIL;
	return r < 0 ? MD_TEMPFAIL : MD_OK;
}

/* One POP3 session per maildrop (design.md §4.2): an fcntl lock on
 * <journal>.session in the user's journal directory, never a lock on the
 * spool, which some writer would wait on for the whole session (a flock
 * held there did so to every writer that takes flock alone: Postfix's
 * mailbox_delivery_lock = flock). The journal directory is one every
 * host serving a shared spool must share anyway, for a crash on one to
 * be recovered on the next (§9), so the lock excludes across hosts too.
 * Without a usable one: a shared spool's login is refused (sessions on
 * two hosts could not exclude each other, and flock there is an fcntl
 * lock of another owner, lock.c), a local spool's session holds flock on
 * it instead, which then covers every step. So does one that finds no
 * room on the disk to make the file: it does not exist then, so no
 * session holds it. */
static enum md_status
session_lock(struct maildrop *md, const char *dir, uid_t owner)
{
	char jpath[PATH_MAX], name[PATH_MAX], refused[PATH_MAX + 64];
	char why[PATH_MAX + 128];

	if (dir == NULL)
		snprintf(why, sizeof(why), "no journal directory");
	else if (journal_path(dir, md->path, jpath, sizeof(jpath)) < 0 ||
		 (size_t)snprintf(name, sizeof(name), "%s%s", jpath,
				  JOURNAL_SESSION_SUFFIX) >= sizeof(name))
		snprintf(why, sizeof(why), "no path for it in %s", dir);
	else if (journal_dir_refused(dir, owner, refused, sizeof(refused)))
		snprintf(why, sizeof(why), "journal directory refused: %s",
			 refused);
	else {
		enum lock_status st = lock_session_file(
			name, md->path, md->shared, &md->session_fd);

		/* A full disk must not stop logins that need no room. */
		if (st != LOCK_NOROOM || md->shared) {
			md->flocks = lock_flock_own(md->fd);
			return session_result(st);
		}
		snprintf(why, sizeof(why), "no room to make it");
	}
	if (md->shared) {
		log_msg(LOG_ERR, "%s: shared spool: no session lock, %s",
			md->path, why);
		return MD_PERMFAIL;
	}
	log_msg(LOG_WARNING,
		"%s: no session lock file (%s): flock on the spool instead, "
		"which holds off a writer that takes flock alone until the "
		"session ends",
		md->path, why);
	return session_result(lock_session(md->fd, md->path));
}

enum md_status
maildrop_open(const char *path, uid_t owner, const struct md_limits *limits,
	      struct maildrop **md_r)
{
	struct maildrop *md;
	enum md_status st;

	*md_r = NULL;
	md = calloc(1, sizeof(*md));
	if (md == NULL)
		return MD_TEMPFAIL;
	md->fd = -1;
	md->session_fd = -1;
	md->first_marked = SIZE_MAX;
	md->pre.msg = SIZE_MAX;
	md->path = strdup(path);
	md->buf = malloc(SPOOL_CHUNK_SIZE);
	md->hasher = uidl_hasher_new();
	if (md->path == NULL || md->buf == NULL || md->hasher == NULL) {
		st = MD_TEMPFAIL;
		goto fail;
	}
	if ((st = open_spool(md, owner, limits->shared_spool)) != MD_OK)
		goto fail;
	if (md->fd >= 0 &&
	    (st = session_lock(md, limits->journal_dir, owner)) != MD_OK)
		goto fail;
	if (md->fd >= 0 && limits->journal_dir != NULL &&
	    (st = recover(md, limits->journal_dir, owner)) != MD_OK)
		goto fail;
	if (md->fd >= 0 && (st = load(md, limits)) != MD_OK)
		goto fail;
	if (uidl_assign(md->uid, md->count, &md->xuidls) < 0) {
		st = MD_TEMPFAIL;
		goto fail;
	}
	md->kept = (struct md_totals){md->count, md->bytes};
	*md_r = md;
	return MD_OK;
fail:
	maildrop_close(md);
	return st;
}

void
maildrop_close(struct maildrop *md)
{
	if (md == NULL)
		return;
	/* Closing the descriptors drops the session lock, any flock and
	 * any fcntl lock. */
	if (md->fd >= 0)
		close(md->fd);
	if (md->session_fd >= 0)
		close(md->session_fd);
	journal_release();
	uidl_table_free(&md->xuidls);
	free(md->uid);
	free(md->msg);
	free(md->marked);
	uidl_hasher_free(md->hasher);
	free(md->buf);
	free(md->journal);
	free(md->path);
	free(md);
}

/* --- queries ------------------------------------------------------------ */

size_t
maildrop_count(const struct maildrop *md)
{
	return md->count;
}

uint64_t
maildrop_size(const struct maildrop *md, size_t i)
{
	return md->msg[i].size;
}

const char *
maildrop_uid(const struct maildrop *md, size_t i)
{
	/* The text lives in md; uid_text is scratch, not state. */
	struct maildrop *m = (struct maildrop *)md;

	uidl_format(&md->uid[i], &md->xuidls, m->uid_text);
	return m->uid_text;
}

bool
maildrop_deleted(const struct maildrop *md, size_t i)
{
	return md->msg[i].deleted;
}

/* Remember i for maildrop_reset. Returns -1 when out of memory. */
static int
remember_marked(struct maildrop *md, size_t i)
{
	size_t cap;
	size_t *m;

	if (md->nmarked == md->marked_cap) {
		cap = md->marked_cap ? md->marked_cap * 2 : 64;
		m = reallocarray(md->marked, cap, sizeof(*m));
		if (m == NULL)
			return -1;
		md->marked = m;
		md->marked_cap = cap;
	}
	md->marked[md->nmarked++] = i;
	return 0;
}

int
maildrop_set_deleted(struct maildrop *md, size_t i, bool deleted)
{
	if (md->msg[i].deleted == deleted)
		return 0;
	if (deleted && remember_marked(md, i) < 0)
		return -1;
	md->msg[i].deleted = deleted;
	if (deleted) {
		if (i < md->first_marked)
			md->first_marked = i;
		md->kept.count--;
		md->kept.bytes -= md->msg[i].size;
	} else {
		md->kept.count++;
		md->kept.bytes += md->msg[i].size;
	}
	return 0;
}

void
maildrop_reset(struct maildrop *md)
{
	for (size_t k = 0; k < md->nmarked; k++)
		maildrop_set_deleted(md, md->marked[k], false);
	md->nmarked = 0;
	md->first_marked = SIZE_MAX;
}

struct md_totals
maildrop_totals(const struct maildrop *md)
{
	return md->kept;
}

/* --- change detection ----------------------------------------------------- */

static bool
from_line_at(struct maildrop *md, off_t offset)
{
	char from[5];
	ssize_t n = sys_pread_full(md->fd, from, 5, offset);

	if (n < 0)
		md->io_error = errno;
	return n == 5 && memcmp(from, "From ", 5) == 0;
}

/* Is message i still what we parsed at login? Re-parse it from its From_
 * line and compare every fact, the header digest included. Parsing up to
 * where the next From_ line was gives the same facts as the first parse
 * did (a blank line at the limit is the separator either way), and reads
 * only this message. Call with a lock held. */
static bool
unchanged(struct maildrop *md, size_t i)
{
	const struct message *m = &md->msg[i];
	const char *was = uidl_xuidl(&md->xuidls, &md->uid[i]);
	struct uidl_entry u = {0};
	char *xuidl = NULL;
	struct message now;
	struct reader r;
	bool same;

	md->ahead.len = 0; /* buf is the reader's now */
	if (m->next < md->length && !from_line_at(md, m->next))
		return false;
	reader_init(&r, md->fd, md->buf, SPOOL_CHUNK_SIZE, m->from, m->next);
	if (!reader_at_from_line(&r)) {
		md->io_error = r.error;
		return false;
	}
	if (mbox_parse_message(&r, md->hasher, &now, &u, &xuidl) < 0 ||
	    r.short_file) {
		md->io_error = r.error;
		free(xuidl);
		return false;
	}
	same = now.start == m->start && now.hdr_len == m->hdr_len &&
	       now.blank_len == m->blank_len && now.end == m->end &&
	       now.next == m->next && now.size == m->size &&
	       now.body_lines == m->body_lines && now.content == m->content &&
	       memcmp(u.digest, md->uid[i].digest, sizeof(u.digest)) == 0 &&
	       (xuidl == NULL) == (was == NULL) &&
	       (xuidl == NULL || strcmp(xuidl, was) == 0);
	free(xuidl);
	return same;
}

static enum md_status
changed(struct maildrop *md, size_t i)
{
	if (md->io_error != 0)
		log_msg(LOG_ERR,
			"%s: read error checking message %zu: %s; not "
			"served, nothing deleted",
			md->path, i + 1, strerror(md->io_error));
	else
		log_msg(LOG_ERR,
			"%s: message %zu changed by another program; "
			"not served, nothing deleted",
			md->path, i + 1);
	md->io_error = 0;
	return MD_TEMPFAIL;
}

/* --- reading ------------------------------------------------------------- */

/* Is message i still what was parsed at login? If the snapshot holds,
 * nothing was written since; otherwise (mail arrived, or the spool
 * changed just before login) it is parsed again and compared. */
static bool
as_parsed(struct maildrop *md, size_t i)
{
	return snapshot_holds(md) || unchanged(md, i);
}

/* Run a check of message i under a read lock; log if it fails. */
static enum md_status
check_locked(struct maildrop *md, size_t i,
	     bool (*check)(struct maildrop *md, size_t i))
{
	enum md_status st;
	bool same;

	if ((st = read_lock(md)) != MD_OK)
		return st;
	same = check(md, i);
	read_unlock(md);
	return same ? MD_OK : changed(md, i);
}

/* Read [off, off + want) of the spool into buf, with a lock held. */
static enum md_status
read_chunk(struct maildrop *md, off_t off, size_t want)
{
	ssize_t got = sys_pread_full(md->fd, md->buf, want, off);

	if (got < 0 || (size_t)got < want) {
		log_msg(LOG_ERR, "%s: read: %s", md->path,
			got < 0 ? strerror(errno) : "file shrank");
		return MD_TEMPFAIL;
	}
	return MD_OK;
}

static size_t
first_chunk(const struct message *m)
{
	return m->end - m->start < (off_t)SEND_CHUNK_SIZE
		       ? (size_t)(m->end - m->start)
		       : SEND_CHUNK_SIZE;
}

/* Under the lock, with the snapshot holding: read from message i's start
 * as far as SEND_READ_AHEAD (at least want), for the messages after it. */
static enum md_status
read_ahead(struct maildrop *md, size_t i, size_t want)
{
	const struct message *m = &md->msg[i];
	size_t n = md->length - m->start < (off_t)SEND_READ_AHEAD
			   ? (size_t)(md->length - m->start)
			   : SEND_READ_AHEAD;
	enum md_status st;

	if (n < want)
		n = want;
	if ((st = read_chunk(md, m->start, n)) == MD_OK)
		md->ahead = (struct ahead){m->start, n};
	return st;
}

/* Are [off, off + n) of the spool in buf, read while the snapshot held,
 * and does it still hold? Then they are what was parsed at login, now.
 * No lock: a writer changes the size or the times with its first write,
 * and until then the bytes are unchanged; nothing is read here, so a
 * half-written delivery cannot be seen either. */
static bool
ahead_holds(struct maildrop *md, off_t off, size_t n)
{
	const struct ahead *a = &md->ahead;

	return a->len > 0 && off >= a->off &&
	       off + (off_t)n <= a->off + (off_t)a->len && snapshot_holds(md);
}

/* One lock for the check and the message's first chunk: most messages
 * are sent whole from it, with no lock taken again. While the snapshot
 * holds, the read goes on past the message (read_ahead), and the next
 * messages are checked with one fstat and sent from it. */
enum md_status
maildrop_verify(struct maildrop *md, size_t i)
{
	const struct message *m = &md->msg[i];
	size_t want = first_chunk(m);
	enum md_status st;
	bool holds;

	md->pre.msg = SIZE_MAX;
	if (ahead_holds(md, m->start, want)) {
		md->pre = (struct prefetch){i, md->ahead.off, md->ahead.len};
		return MD_OK;
	}
	md->ahead.len = 0;
	md->io_error = 0; /* an fstat that failed there is tried again */
	if ((st = read_lock(md)) != MD_OK)
		return st;
	holds = snapshot_holds(md);
	if (!holds && !unchanged(md, i)) {
		read_unlock(md);
		return changed(md, i);
	}
	st = holds ? read_ahead(md, i, want) : read_chunk(md, m->start, want);
	read_unlock(md);
	if (st == MD_OK)
		md->pre = holds ? (struct prefetch){i, md->ahead.off,
						    md->ahead.len}
				: (struct prefetch){i, m->start, want};
	return st;
}

/* How much of p[0..n) to send to end after *lines more lines; counts
 * them down. */
static size_t
take_lines(const char *p, size_t n, uint64_t *lines)
{
	const char *lf;

	for (size_t i = 0; i<n && * lines> 0; i = lf - p + 1) {
		lf = memchr(p + i, '\n', n - i);
		if (lf == NULL)
			break;
		if (--*lines == 0)
			return lf - p + 1;
	}
	return n;
}

/* Send [from, to) of message i: from what maildrop_verify read, else in
 * chunks each read under its own short read lock, so a slow client
 * never holds up a delivery for long (*fresh_r is then set). With lines
 * set, stop after that many lines and count them down. */
static enum md_status
send_range(struct maildrop *md, size_t i, off_t from, off_t to, uint64_t *lines,
	   md_sink_fn sink, void *ctx, bool *fresh_r)
{
	const struct prefetch *pre = &md->pre;
	enum md_status st;
	const char *p;
	size_t n;

	while (from < to && (lines == NULL || *lines > 0)) {
		if (pre->msg == i && from >= pre->off &&
		    from < pre->off + (off_t)pre->len) {
			p = md->buf + (from - pre->off);
			n = pre->off + pre->len - from;
		} else {
			n = to - from < (off_t)SEND_CHUNK_SIZE
				    ? (size_t)(to - from)
				    : SEND_CHUNK_SIZE;
			if ((st = read_lock(md)) != MD_OK)
				return st;
			md->ahead.len = 0;
			st = read_chunk(md, from, n);
			read_unlock(md);
			if (st != MD_OK)
				return st;
			md->pre = (struct prefetch){i, from, n};
			p = md->buf;
			*fresh_r = true;
		}
		if ((off_t)n > to - from)
			n = to - from;
		if (lines != NULL)
			n = take_lines(p, n, lines);
		if (sink(ctx, p, n) < 0)
			return MD_TEMPFAIL;
		from += n;
	}
	return MD_OK;
}

static enum md_status
send_parts(struct maildrop *md, size_t i, const unsigned long *body_lines,
	   md_sink_fn sink, void *ctx, bool *fresh_r)
{
	const struct message *m = &md->msg[i];
	enum md_status st;
	uint64_t lines;

	if (body_lines == NULL ||
	    (m->body_lines != MBOX_LINES_MANY && *body_lines >= m->body_lines))
		return send_range(md, i, m->start, m->end, NULL, sink, ctx,
				  fresh_r);
	/* TOP: the headers and the blank line, then the lines. */
	lines = *body_lines;
	st = send_range(md, i, m->start, mbox_body(m), NULL, sink, ctx,
			fresh_r);
	if (st == MD_OK && lines > 0)
		st = send_range(md, i, mbox_body(m), m->end, &lines, sink, ctx,
				fresh_r);
	return st;
}

/* Bytes that came from maildrop_verify's read were checked under the
 * same lock; if anything was read later, the message is checked again
 * after the last byte, in full unless the spool is untouched. */
enum md_status
maildrop_send(struct maildrop *md, size_t i, const unsigned long *body_lines,
	      md_sink_fn sink, void *ctx)
{
	bool fresh = md->pre.msg != i;
	enum md_status st;

	st = send_parts(md, i, body_lines, sink, ctx, &fresh);
	md->pre.msg = SIZE_MAX;
	if (st != MD_OK)
		return st;
	return fresh ? check_locked(md, i, as_parsed) : MD_OK;
}

/* --- UPDATE ----------------------------------------------------------- */

static void
update_stats(const struct maildrop *md, bool done, struct md_update_stats *s)
{
	struct md_totals left =
		done ? md->kept : (struct md_totals){md->count, md->bytes};

	*s = (struct md_update_stats){
		.deleted = md->count - left.count,
		.deleted_bytes = md->bytes - left.bytes,
		.left = left.count,
		.left_bytes = left.bytes,
	};
}

/* Where the mail delivered since login starts, when the last message
 * is deleted (kept, it moves along with that mail, in one piece). An MDA
 * that finds the last message without its separating blank line writes
 * one before the new From_ line; that blank line belongs to the old last
 * message, and goes with it when it is deleted, or the message before
 * would grow a line (or the spool would start with a blank line: not
 * mbox). Returns -1 on a read error (UPDATE must not guess), TAIL_TORN
 * if what follows is not a new message. */
#define TAIL_TORN (-2)

static off_t
tail_start(const struct maildrop *md)
{
	char buf[1 + APPEND_PEEK_SIZE];
	ssize_t got, i;

	if (md->count == 0 || !md->msg[md->count - 1].deleted)
		return md->length;
	/* From the last octet at login: a new From_ line must start a
	 * line. */
	got = sys_pread_full(md->fd, buf, sizeof(buf), md->length - 1);
	if (got < 1)
		return -1;
	if (got == 1)
		return md->length; /* nothing delivered */
	i = mbox_appended_from(buf + 1, (size_t)got - 1);
	/* Anything else continues the last message: it was still being
	 * written when the session parsed it, by a writer that takes only
	 * the dotlock (design.md §4.2), and deleting what was listed would
	 * leave the rest of it glued to the message before. */
	if (i < 0 || (i == 0 && buf[0] != '\n'))
		return TAIL_TORN;
	return md->length + (off_t)i;
}

/* What stays from message first on: the kept messages, adjacent ones as
 * one region, then the tail delivered since login (length -1: to the
 * end). Returns the count; reg has room for one per message and one. */
static size_t
kept_regions(const struct maildrop *md, size_t first, off_t tail,
	     struct region *reg)
{
	size_t n = 0;

	for (size_t i = first; i < md->count; i++) {
		const struct message *m = &md->msg[i];

		if (m->deleted)
			continue;
		if (n > 0 && reg[n - 1].start + reg[n - 1].len == m->from)
			reg[n - 1].len += m->next - m->from;
		else
			reg[n++] = (struct region){m->from, m->next - m->from};
	}
	reg[n++] = (struct region){tail, -1};
	return n;
}

/* Compact from the first deleted message on: kept messages, then mail
 * delivered since login, move down over the gaps; then truncate. Once
 * the journal is written UPDATE has begun, and a failure is finished
 * from the journal at once, still under the locks, so that mail readers
 * and the MTA never see the spool half rewritten; if even that fails,
 * the next login (or pop3d --recover) finishes it. */
static enum md_status
expunge(struct maildrop *md, size_t first, const char *dotlock)
{
	const struct file_stamp *held;
	struct file_stamp stamp;
	struct region *reg;
	off_t tail;
	size_t n;
	int r;

	if (md->journal == NULL) {
		log_msg(LOG_ERR, "%s: UPDATE refused: journal directory %s",
			md->path,
			md->journal_refused[0] != '\0' ? md->journal_refused
						       : "not usable");
		return MD_PERMFAIL;
	}
	if ((tail = tail_start(md)) == TAIL_TORN) {
		log_msg(LOG_ERR,
			"%s: message %zu was still being written at login "
			"(more of it follows); nothing deleted",
			md->path, md->count);
		return MD_TEMPFAIL;
	}
	if (tail < 0) {
		log_msg(LOG_ERR, "%s: update failed: %m", md->path);
		return MD_TEMPFAIL;
	}
	reg = calloc(md->count - first + 1, sizeof(*reg));
	if (reg == NULL)
		return MD_TEMPFAIL;
	n = kept_regions(md, first, tail, reg);
	held = held_dotlock(dotlock, &stamp);
	r = journal_compact(md->fd, md->journal, md->msg[first].from, reg, n,
			    md->buf, SPOOL_CHUNK_SIZE, held, NULL);
	free(reg);
	if (r == 0)
		return MD_OK;
	if (r == JOURNAL_UNSYNCED) {
		log_msg(LOG_ERR,
			"%s: truncated, but its sync failed: %m; a crash may "
			"bring the deleted messages back",
			md->path);
		return MD_OK;
	}
	log_msg(LOG_ERR, "%s: update failed: %m", md->path);
	if (!journal_pending(md->journal))
		return MD_TEMPFAIL; /* it did not begin: nothing deleted */
	r = journal_recover(md->fd, md->journal, md->buf, SPOOL_CHUNK_SIZE,
			    held);
	if (r == JOURNAL_FINISHED) {
		log_msg(LOG_NOTICE, "%s: update finished from %s", md->path,
			md->journal);
		return MD_OK;
	}
	log_msg(LOG_ERR,
		"%s: %s kept: the deletions will be finished at the next "
		"login%s%s",
		md->path, md->journal, r < 0 ? ": " : "",
		r < 0 ? strerror(errno) : "");
	md->update_pending = true;
	return MD_TEMPFAIL;
}

/* Is path still the file we have open? A spool renamed over, or turned
 * into a symlink, during the session must not be compacted: deleting
 * from a file nobody reads any more would lose the deletion silently,
 * and the new one is not what the session listed. */
static bool
same_file(const char *path, const struct stat *open_st)
{
	struct stat st;

	return lstat(path, &st) == 0 && st.st_dev == open_st->st_dev &&
	       st.st_ino == open_st->st_ino;
}

/* design.md §4, guarantee 4: under the update locks, the file is still
 * the one we opened, no shorter, and every message from first on is as
 * parsed. Else nothing may be deleted. */
static enum md_status
still_as_parsed(struct maildrop *md, size_t first)
{
	struct stat sb;

	if (fstat(md->fd, &sb) < 0 || sb.st_size < md->length ||
	    !same_file(md->path, &sb))
		return changed(md, first);
	/* Nothing has written to the file since login (§4.6), or since
	 * check_ahead found every message from first on as parsed: no
	 * message can differ, and no byte needs reading again. */
	if (snapshot_holds(md) || unwritten_since(md, &md->checked))
		return MD_OK;
	for (size_t i = first; i < md->count; i++)
		if (!unchanged(md, i))
			return changed(md, i);
	return MD_OK;
}

/* design.md §4.7: the spool was written since login (mail arrived: the
 * usual case at QUIT under delivery load), so every message from first
 * on must be read again before any is deleted. Done here, under a read
 * lock, before the dotlock: an MDA that retries a held dotlock only
 * every few seconds (procmail's LOCKSLEEP, 8 s) would otherwise lose a
 * whole interval to a check that may read most of the spool. It leaves
 * a snapshot of the file as checked; under the update locks, if that
 * still holds, nothing was written since the check and it stands (the
 * argument of §4.6). Anything else, and still_as_parsed checks again
 * under the locks, as it always did. */
static void
check_ahead(struct maildrop *md, size_t first)
{
	struct stat sb;
	size_t i = first;

	md->checked.trusted = false;
	if (snapshot_holds(md) || read_lock(md) != MD_OK)
		return;
	if (fstat(md->fd, &sb) == 0 && sb.st_size >= md->length &&
	    same_file(md->path, &sb)) {
		while (i < md->count && unchanged(md, i))
			i++;
		if (i == md->count) {
			take_snapshot(&md->checked, &sb);
			settle_snapshot(&md->checked);
		}
	}
	/* Said, if it matters, by the check under the locks. */
	md->io_error = 0;
	read_unlock(md);
}

enum md_status
maildrop_update(struct maildrop *md, struct md_update_stats *stats)
{
	char dotlock[PATH_MAX];
	sigset_t old;
	enum md_status st;
	size_t first = md->first_marked;

	update_stats(md, true, stats);
	md->ahead.len = 0; /* buf is the rewrite's now */
	while (first < md->count && !md->msg[first].deleted)
		first++;
	if (md->fd < 0 || first >= md->count)
		return MD_OK;
	check_ahead(md, first);
	signals_hold(&old);
	if ((st = update_lock(md, dotlock, sizeof(dotlock))) == MD_OK) {
		if ((st = still_as_parsed(md, first)) == MD_OK)
			st = expunge(md, first, dotlock);
		update_unlock(md, dotlock);
	}
	signals_restore(&old);
	if (st != MD_OK && !md->update_pending)
		update_stats(md, false, stats);
	stats->pending = md->update_pending;
	return st;
}

int
maildrop_path(const char *pattern, const char *user, const char *home,
	      char *out, size_t size)
{
	size_t len = 0, n;
	const char *add;

	for (const char *p = pattern; *p != '\0'; p++) {
		if (*p != '%') {
			add = p;
			n = 1;
		} else {
			switch (*++p) {
			case 'u':
				add = user;
				break;
			case 'h':
				add = home;
				break;
			case '%':
				add = "%";
				break;
			default:
				return -1;
			}
			n = strlen(add);
		}
		if (n >= size - len)
			return -1;
		memcpy(out + len, add, n);
		len += n;
	}
	out[len] = '\0';
	return 0;
}
