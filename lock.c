#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <limits.h>
#include <lockfile.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "keeper.h"
#include "log.h"
#include "params.h"
#include "sysutil.h"

enum lock_status
lock_session(int fd, const char *path)
{
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return LOCK_OK;
	if (errno == EWOULDBLOCK) {
		/* Said here, where it is known: the login itself succeeded,
		 * and an admin must not think it failed. */
		log_msg(LOG_NOTICE, "%s: in use by another session", path);
		return LOCK_BUSY;
	}
	log_msg(LOG_ERR, "%s: flock: %m", path);
	return LOCK_ERROR;
}

/* File systems that other hosts mount too. On them flock(2) is emulated
 * with a whole-file fcntl lock (flock(2), "NFS details", "CIFS
 * details") whose owner is the open file, not the process: the server
 * then sees a flock of ours and our own fcntl read lock as two owners
 * and refuses the read lock (a session flock made every login wait out
 * FCNTL_LOCK_WAIT_MS and fail), and every delivery waits for whatever
 * flock we hold. A PID in a dotlock also means nothing there
 * (dotlock_flags). */
bool
lock_fs_shared(unsigned long f_type)
{
	switch (f_type) {
	case NFS_SUPER_MAGIC:
	case CIFS_SUPER_MAGIC:
	case SMB2_SUPER_MAGIC:
		return true;
	default:
		return false;
	}
}

bool
lock_spool_shared(int fd, const char *path, bool forced)
{
	struct statfs fs;

	if (forced)
		return true;
	if (fstatfs(fd, &fs) < 0) {
		/* Taken as shared: age alone judges dotlocks, no flock. */
		log_msg(LOG_WARNING, "%s: fstatfs: %m; taken as shared", path);
		return true;
	}
	return lock_fs_shared((unsigned long)fs.f_type);
}

bool
lock_flock_own(int fd)
{
	struct statfs fs;

	return fstatfs(fd, &fs) == 0 &&
	       !lock_fs_shared((unsigned long)fs.f_type);
}

enum lock_status
lock_session_file(const char *name, const char *path, bool shared, int *fd_r)
{
	/* An open file description lock, like the flock it replaced on a
	 * local spool: owned by this open, so a second open in the same
	 * process is refused too, and no close of another descriptor of
	 * the file drops it (as it would a process-owned F_SETLK lock).
	 * NFS passes it to the server as a lock of its own owner. */
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int fd;

	*fd_r = -1;
	fd = open(name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		/* Only making the file needs room: an open of one that exists
		 * cannot fail so. */
		int err = errno;

		log_msg(LOG_ERR, "%s: session lock %s: %m", path, name);
		return err == ENOSPC || err == EDQUOT ? LOCK_NOROOM
						      : LOCK_ERROR;
	}
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
		*fd_r = fd;
		return LOCK_OK;
	}
	if (errno == EAGAIN || errno == EACCES) {
		if (shared)
			log_msg(LOG_NOTICE,
				"%s: in use by another session (%s, perhaps on "
				"another host)",
				path, name);
		else
			log_msg(LOG_NOTICE, "%s: in use by another session",
				path);
		close(fd);
		return LOCK_BUSY;
	}
	log_msg(LOG_ERR, "%s: session lock %s: fcntl: %m", path, name);
	close(fd);
	return LOCK_ERROR;
}

static int
try_fcntl(int fd, int type)
{
	struct flock fl = {.l_type = (short)type, .l_whence = SEEK_SET};

	return fcntl(fd, F_SETLK, &fl);
}

/* type: LOCK_SH or LOCK_EX. */
static int
try_flock(int fd, int type)
{
	return flock(fd, type | LOCK_NB);
}

/* A lock on the whole file, waiting at most FCNTL_LOCK_WAIT_MS: MTAs and
 * MUAs hold it for one delivery or rewrite. Polling rather than a
 * blocking call keeps the wait bounded without signals. */
static enum lock_status
wait_lock(int fd, const char *path, int (*take)(int fd, int type), int type,
	  const char *kind)
{
	for (int waited = 0;; waited += FCNTL_LOCK_POLL_MS) {
		if (take(fd, type) == 0)
			return LOCK_OK;
		if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
			log_msg(LOG_ERR, "%s: %s: %m", path, kind);
			return LOCK_ERROR;
		}
		if (waited >= FCNTL_LOCK_WAIT_MS) {
			log_msg(LOG_WARNING, "%s: still locked after %d ms%s",
				path, FCNTL_LOCK_WAIT_MS,
				take == try_flock ? " (flock)" : "");
			return LOCK_BUSY;
		}
		sys_sleep_ms(FCNTL_LOCK_POLL_MS);
	}
}

static enum lock_status
fcntl_lock(int fd, const char *path, short type)
{
	return wait_lock(fd, path, try_fcntl, type, "fcntl lock");
}

static void
flock_release(int fd, const char *path)
{
	if (flock(fd, LOCK_UN) < 0)
		log_msg(LOG_ERR, "%s: flock unlock: %m", path);
}

/* The session lock is not on the spool, so a writer that takes flock
 * alone (Postfix's mailbox_delivery_lock = flock, Dovecot's
 * mbox_write_locks = flock) is held off by the steps' own flocks, where
 * flock is the file system's own (lock_flock_own), and by nothing
 * longer. On NFS and SMB it is an fcntl lock of another owner
 * (lock_fs_shared), which our own fcntl lock would refuse: not taken
 * there. */
enum lock_status
lock_read(int fd, const char *path, bool flocks)
{
	enum lock_status st;

	if ((st = fcntl_lock(fd, path, F_RDLCK)) != LOCK_OK || !flocks)
		return st;
	if ((st = wait_lock(fd, path, try_flock, LOCK_SH, "flock")) != LOCK_OK)
		lock_release(fd, path);
	return st;
}

void
lock_read_end(int fd, const char *path, bool flocks)
{
	if (flocks)
		flock_release(fd, path);
	lock_release(fd, path);
}

void
lock_release(int fd, const char *path)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};

	if (fcntl(fd, F_SETLK, &fl) < 0)
		log_msg(LOG_ERR, "%s: fcntl unlock: %m", path);
}

/* On a local file system our PID goes into the dotlock, so a lock left
 * by a session that was killed inside UPDATE is stale at once (for us,
 * and for dotlockfile -p), not only after five minutes of blocked
 * deliveries. On a spool other hosts share, a PID means nothing: with
 * L_PID liblockfile takes a lock whose PID does not exist here as stale
 * at once (measured, liblockfile 1.17), so a live UPDATE or delivery on
 * another host would be broken. There age alone decides, and ours holds
 * no PID either (design.md §9). */
static int
dotlock_flags(bool shared)
{
	return shared ? 0 : L_PID;
}

/* Remove the dotlock; false, logged with its path and what, if it
 * stays. Any result but 0 is a failure (keeper.h): -1 with errno, or the
 * exit status of liblockfile's helper, which under NoNewPrivileges= (the
 * shipped units) has no group mail and cannot unlink in a 2775 root:mail
 * directory; taken as success, that left a stale lock and no word. */
static bool
dotlock_unlink(const char *dotlock, const char *what)
{
	int r, err;

	errno = 0;
	r = keeper_lockfile_remove(dotlock);
	if (r == 0)
		return true;
	err = errno;
	log_msg(LOG_ERR, "%s: cannot remove %s (liblockfile result %d)%s%s",
		dotlock, what, r, err != 0 ? ": " : "",
		err != 0 ? strerror(err) : "");
	return false;
}

static void
dotlock_remove(const char *dotlock)
{
	(void)dotlock_unlink(dotlock, "dotlock");
}

/* Who made the dotlock. On Debian every program that dotlocks a spool
 * makes it as the spool's owner: liblockfile and its setgid helper
 * dotlockfile (measured: a lock dotlockfile made for uid 65534 in a
 * 2775 root:mail directory is 65534:mail), procmail, Postfix local(8)
 * and Exim's appendfile, which deliver as the recipient; or as root.
 * Anyone else can only have planted it, which only a directory others
 * may write to allows (2775 root:mail lets only root and group mail
 * create names in it). In a sticky directory the user cannot remove
 * it, and a lock naming PID 1 is never stale for liblockfile: waiting
 * on it would only fail every UPDATE after 15 s, for good, in silence.
 * So it is not waited for; the log names it and its owner, and a
 * world-writable directory, for the admin who must remove it. */
static bool
dotlock_foreign(int fd, const char *dotlock)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(dotlock, '/');
	struct stat lk, sp, ds;
	struct passwd *pw;

	if (lstat(dotlock, &lk) < 0 || fstat(fd, &sp) < 0 ||
	    lk.st_uid == sp.st_uid || lk.st_uid == 0)
		return false;
	pw = getpwuid(lk.st_uid);
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s",
			 slash == dotlock ? 1 : (int)(slash - dotlock),
			 dotlock);
	log_msg(LOG_ERR,
		"%s: refused: a foreign dotlock, owned by uid %lu (%s), not "
		"by the spool's owner (uid %lu) or root; nothing is deleted "
		"until it is removed%s",
		dotlock, (unsigned long)lk.st_uid,
		pw != NULL ? pw->pw_name : "no such user",
		(unsigned long)sp.st_uid,
		lstat(dir, &ds) == 0 && (ds.st_mode & S_IWOTH)
			? "; the spool directory is writable by all users, "
			  "who can do this: the supported layout is 2775 "
			  "root:mail"
			: "");
	return true;
}

long
lock_dotlock_poll_ms(int tries)
{
	int doublings = tries / DOTLOCK_POLL_DOUBLE_EVERY;
	long ms = DOTLOCK_POLL_MIN_MS;

	while (doublings-- > 0 && ms < DOTLOCK_POLL_MAX_MS)
		ms *= 2;
	return ms < DOTLOCK_POLL_MAX_MS ? ms : DOTLOCK_POLL_MAX_MS;
}

/* What a lockfile_create result other than success or "held" means, for
 * the log line that also gives errno: a full disk, say, fails at the
 * temporary file (on XFS, which then has no room for a new inode). */
static const char *
lockfile_error(int r)
{
	switch (r) {
	case L_NAMELEN:
		return "name too long";
	case L_TMPLOCK:
		return "cannot create its temporary file";
	case L_TMPWRITE:
		return "cannot write its temporary file";
	case L_RMSTALE:
		return "cannot remove a stale lock";
	default:
		return "error";
	}
}

/* The dotlock, tried with no sleep of liblockfile's (retries 0: one
 * link, a stale lock removed and tried again at once), on our own
 * schedule: liblockfile's first sleep is 5 s, which every QUIT that met
 * a delivery's lock paid in full. A foreign dotlock planted while we
 * wait ends the wait. */
static enum lock_status
dotlock_take(int fd, const char *dotlock, bool shared)
{
	int64_t deadline = sys_now_ms() + DOTLOCK_WAIT_MS;
	int r;

	for (int tries = 0;; tries++) {
		errno = 0;
		r = keeper_lockfile_create(dotlock, dotlock_flags(shared));
		if (r == L_SUCCESS)
			return LOCK_OK;
		if (r != L_MAXTRYS) {
			/* errno as liblockfile (or the keeper) left it; a
			 * result such as L_NAMELEN may come without one. */
			int err = errno;

			log_msg(LOG_WARNING,
				"%s: dotlock failed: %s (liblockfile error "
				"%d)%s%s",
				dotlock, lockfile_error(r), r,
				err != 0 ? ": " : "",
				err != 0 ? strerror(err) : "");
			return LOCK_ERROR;
		}
		if (dotlock_foreign(fd, dotlock))
			return LOCK_FOREIGN;
		if (sys_now_ms() >= deadline) {
			log_msg(LOG_WARNING,
				"%s: still held by another program", dotlock);
			return LOCK_BUSY;
		}
		sys_sleep_ms(lock_dotlock_poll_ms(tries));
	}
}

bool
lock_dotlock_name(const char *path, char *out, size_t size)
{
	return (size_t)snprintf(out, size, "%s.lock", path) < size;
}

/* The dotlock first: the other order has each side hold one lock while
 * it waits for the other, and every delivery stalls for the whole wait.
 * Neither wait happens while we hold the other lock for long. */
enum lock_status
lock_update(int fd, const char *path, bool shared, bool flocks, char *dotlock,
	    size_t size)
{
	enum lock_status st;

	if (!lock_dotlock_name(path, dotlock, size))
		return LOCK_REFUSED;
	if (dotlock_foreign(fd, dotlock))
		return LOCK_FOREIGN;
	if ((st = dotlock_take(fd, dotlock, shared)) != LOCK_OK)
		return st;
	if ((st = fcntl_lock(fd, path, F_WRLCK)) != LOCK_OK) {
		dotlock_remove(dotlock);
		return st;
	}
	if (flocks && (st = wait_lock(fd, path, try_flock, LOCK_EX, "flock")) !=
			      LOCK_OK) {
		lock_release(fd, path);
		dotlock_remove(dotlock);
	}
	return st;
}

bool
lock_clear_left(int fd, const char *path, bool flocks,
		const struct file_stamp *left)
{
	char dotlock[PATH_MAX];
	struct file_stamp now;

	/* The session lock excludes only sessions that take it. One of a
	 * pop3d from before it moved off the spool (round 15 of issue 13),
	 * still running across an upgrade, holds flock there instead, and may
	 * be inside the very UPDATE that left the journal. */
	if (flocks && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		log_msg(LOG_NOTICE,
			"%s: flock held (a session of an older pop3d?): the "
			"dotlock is left to liblockfile's judgement",
			path);
		return false;
	}
	if (flocks)
		flock_release(fd, path);
	if (!lock_dotlock_name(path, dotlock, sizeof(dotlock)) ||
	    sys_lstat_stamp(dotlock, &now) < 0 || !sys_same_stamp(&now, left))
		return false;
	if (!dotlock_unlink(dotlock, "the dotlock an interrupted UPDATE left"))
		return false;
	log_msg(LOG_NOTICE,
		"%s: removed the dotlock the interrupted UPDATE left", dotlock);
	return true;
}

void
lock_update_end(int fd, const char *path, bool flocks, const char *dotlock)
{
	if (flocks)
		flock_release(fd, path);
	dotlock_remove(dotlock);
	lock_release(fd, path);
}
