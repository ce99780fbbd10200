/* pop3d --recover: the journals of UPDATEs that a crash interrupted,
 * finished without a login (design.md §4.9).
 *
 * Root's part is small on purpose: open --journal-dir (root's, writable
 * by root alone, as the monitor requires), read the names in it, and for
 * each <uid> directory that is a directory owned by that uid, a uid that
 * may log in, fork a child that becomes the uid's user for good
 * (auth_become, as a session does) and only then looks inside. The child
 * runs maildrop_open, which takes the session's locks (the session lock
 * beside the journal, then the dotlock, the fcntl write lock and flock)
 * and recovers the journal exactly as a login would, so there is one
 * recovery and one locking protocol. A spool with a live session is left
 * to it (it recovered at its login, or is in its own UPDATE now).
 * Running twice does nothing the second time: recovery removes each
 * journal it completes. */
#define POP3D_ROOT_ONLY
#include "recover.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "command.h"
#include "journal.h"
#include "keeper.h"
#include "log.h"
#include "logindelay.h"
#include "maildrop.h"

/* The journal root, judged on its descriptor: if others could write it
 * they could plant a "journal" for a user's spool (issue 14), so as root
 * nothing in it is acted on unless it is root's and writable by root
 * alone. Returns the descriptor, -2 if it does not exist (nothing can be
 * pending), or -1 (logged). */
static int
open_root(const char *dir)
{
	struct stat st;
	int dfd;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		if (errno == ENOENT)
			return -2;
		log_msg(LOG_ERR, "recover: --journal-dir %s: %m", dir);
		return -1;
	}
	if (geteuid() != 0)
		return dfd;
	if (fstat(dfd, &st) < 0)
		log_msg(LOG_ERR, "recover: --journal-dir %s: fstat: %m", dir);
	else if (st.st_uid != 0)
		log_msg(LOG_ERR,
			"recover: --journal-dir %s: owned by uid %lu, not "
			"root: nothing recovered",
			dir, (unsigned long)st.st_uid);
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		log_msg(LOG_ERR,
			"recover: --journal-dir %s: writable by group or "
			"others (mode %04o): nothing recovered",
			dir, (unsigned)(st.st_mode & 07777));
	else
		return dfd;
	close(dfd);
	return -1;
}

/* How many names a journal directory holds (as the user), besides
 * --login-delay's record, the spools' session lock files (which stay,
 * maildrop.c) and journals set aside as stale (their spool was
 * replaced; the new one is served, logged when it was found): 0 means
 * nothing pending. -1 on an error (logged). */
static int
entries(const char *dir)
{
	struct dirent *e;
	DIR *d;
	int n = 0;

	if ((d = opendir(dir)) == NULL) {
		log_msg(LOG_ERR, "recover: %s: %m", dir);
		return -1;
	}
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0 &&
		    strcmp(e->d_name, LOGINDELAY_FILE) != 0 &&
		    !sys_ends_with(e->d_name, JOURNAL_SESSION_SUFFIX) &&
		    !sys_ends_with(e->d_name, JOURNAL_STALE_SUFFIX))
			n++;
	closedir(d);
	return n;
}

/* Say why n names are still in jdir after maildrop_open(path) gave st.
 * A journal is named after its spool's path (journal_path): when none is
 * there for path, what is left was written for another spool, which
 * this run's --mailbox does not name (recovery must be given the
 * sessions' options) or which was removed since. */
static void
why_left(const struct auth_user *who, enum md_status st, int n,
	 const char *jdir, const char *path)
{
	char jpath[PATH_MAX];

	if (st == MD_BUSY)
		log_msg(LOG_ERR,
			"recover: user=%s: %s stayed locked by another "
			"program: not recovered, still pending in %s",
			who->name, path, jdir);
	else if (journal_path(jdir, path, jpath, sizeof(jpath)) == 0 &&
		 !journal_pending(jpath))
		log_msg(LOG_ERR,
			"recover: user=%s: %d name(s) in %s, none of them the "
			"journal of %s: written for a spool this --mailbox "
			"does not name (give --recover the sessions' options) "
			"or one removed since",
			who->name, n, jdir, path);
	else
		log_msg(LOG_ERR,
			"recover: user=%s: %d name(s) still in %s after "
			"opening %s: not recovered, see the lines above",
			who->name, n, jdir, path);
}

/* In the child, as the user for good: recover as a login would. */
static int
recover_as_user(const struct config *cfg, const struct auth_user *who)
{
	char jdir[PATH_MAX], path[PATH_MAX];
	struct md_limits limits = {cfg->max_messages, cfg->max_size, jdir,
				   cfg->shared_spool};
	struct maildrop *md;
	enum md_status st;
	int n;

	if ((size_t)snprintf(jdir, sizeof(jdir), "%s/%lu", cfg->journal_dir,
			     (unsigned long)who->uid) >= sizeof(jdir) ||
	    maildrop_path(cfg->mailbox, who->name, who->home, path,
			  sizeof(path)) < 0) {
		log_msg(LOG_ERR, "recover: user=%s: path too long", who->name);
		return 1;
	}
	if ((n = entries(jdir)) <= 0)
		return n < 0;
	st = maildrop_open(path, who->uid, &limits, &md);
	maildrop_close(md);
	if (st == MD_IN_USE) {
		log_msg(LOG_NOTICE,
			"recover: user=%s: %s in use by a session; left to it",
			who->name, path);
		return 0;
	}
	/* Done means nothing left: the maildrop may still be refused for
	 * serving (over a limit, not mbox) after its journal was applied. */
	if ((n = entries(jdir)) == 0) {
		log_msg(LOG_INFO, "recover: user=%s: %s recovered", who->name,
			path);
		return 0;
	}
	if (n > 0)
		why_left(who, st, n, jdir, path);
	return 1;
}

/* Fork, become the user for good, recover; the parent only waits. The
 * child first closes root's descriptors of --journal-dir (fds, -1 for
 * none): as the user it has no business listing the other uids. */
static int
recover_user(const struct config *cfg, const struct auth_user *who,
	     const int fds[2])
{
	int status;
	pid_t pid;

	if ((pid = fork()) < 0) {
		log_msg(LOG_ERR, "recover: fork: %m");
		return 1;
	}
	if (pid == 0) {
		for (int i = 0; i < 2; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		/* Recovery takes the dotlock too: with a keeper, no
		 * setgid dotlockfile (NoNewPrivileges= in the unit). */
		keeper_start(cfg->mailbox, who);
		auth_become(who); /* exits if the drop fails */
		status = recover_as_user(cfg, who);
		keeper_stop();
		_exit(status);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status) != 0;
	log_msg(LOG_ERR, "recover: user=%s: the recovery died of signal %d",
		who->name, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return 1;
}

/* A <uid> directory still root's: the monitor made it but could not hand
 * it over (a failed fchown), so no session ever wrote in it (sessions
 * refuse it). Root may look into its own directory; empty, there is
 * nothing to recover and nothing to refuse. */
static bool
root_dir_empty(const struct config *cfg, int root, const char *name)
{
	struct dirent *e;
	bool empty = true;
	DIR *d;
	int fd;

	fd = openat(root, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while (empty && (e = readdir(d)) != NULL)
		empty = strcmp(e->d_name, ".") == 0 ||
			strcmp(e->d_name, "..") == 0;
	closedir(d);
	if (empty)
		log_msg(LOG_NOTICE,
			"recover: %s/%s: still root's (not handed to the "
			"user at a login) and empty: nothing to recover",
			cfg->journal_dir, name);
	return empty;
}

/* Who <journal-dir>/<name> belongs to, judged before anything is done
 * as that user: a directory (no symlink) owned by the uid it is named
 * after, a uid that may log in. Fills who. Returns 0, 1 if refused
 * (logged), 2 if it is missing or not ours to look at (not root). */
static int
judge_dir(const struct config *cfg, int root, const char *name, uid_t uid,
	  struct auth_user *who)
{
	struct passwd *pw;
	struct stat st;

	if (fstatat(root, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 2;
		log_msg(LOG_ERR, "recover: %s/%s: %m", cfg->journal_dir, name);
		return 1;
	}
	if (geteuid() != 0 && uid != geteuid())
		return 2; /* not root: only our own */
	if (S_ISDIR(st.st_mode) && st.st_uid == 0 && uid != 0 &&
	    root_dir_empty(cfg, root, name))
		return 2;
	if (!S_ISDIR(st.st_mode) || st.st_uid != uid) {
		log_msg(LOG_ERR,
			"recover: %s/%s: refused: %s owned by uid %lu, not "
			"%lu; "
			"left alone",
			cfg->journal_dir, name,
			S_ISDIR(st.st_mode) ? "a directory"
					    : "not a directory,",
			(unsigned long)st.st_uid, (unsigned long)uid);
		return 1;
	}
	if (geteuid() == 0 && (uid == 0 || uid < cfg->min_uid)) {
		log_msg(LOG_ERR,
			"recover: %s/%s: refused: uid %lu never logs in "
			"(--min-uid=%lu); left alone",
			cfg->journal_dir, name, (unsigned long)uid,
			(unsigned long)cfg->min_uid);
		return 1;
	}
	errno = 0;
	if ((pw = getpwuid(uid)) == NULL ||
	    (size_t)snprintf(who->name, sizeof(who->name), "%s", pw->pw_name) >=
		    sizeof(who->name) ||
	    (size_t)snprintf(who->home, sizeof(who->home), "%s", pw->pw_dir) >=
		    sizeof(who->home)) {
		log_msg(LOG_ERR, "recover: %s/%s: no usable passwd entry%s%s",
			cfg->journal_dir, name, errno ? ": " : "",
			errno ? strerror(errno) : "");
		return 1;
	}
	who->uid = uid;
	who->gid = pw->pw_gid;
	return 0;
}

/* fds: root's open descriptors of --journal-dir, fds[0] the one names
 * are looked up in. */
static int
recover_dir(const struct config *cfg, const int fds[2], const char *name,
	    uid_t uid)
{
	struct auth_user who;
	int r;

	if ((r = judge_dir(cfg, fds[0], name, uid, &who)) != 0)
		return r == 1;
	return recover_user(cfg, &who, fds);
}

/* A <uid> name: decimal digits only, a uid that fits. */
static int
uid_name(const char *name, uid_t *uid_r)
{
	unsigned long v;

	if (command_number(name, &v) != NUMBER_OK || v >= (uid_t)-1 ||
	    (name[0] == '0' && name[1] != '\0'))
		return -1;
	*uid_r = (uid_t)v;
	return 0;
}

static int
recover_all(const struct config *cfg, int root)
{
	struct dirent *e;
	int failed = 0, fd;
	uid_t uid;
	DIR *d;

	if ((fd = dup(root)) < 0 || (d = fdopendir(fd)) == NULL) {
		log_msg(LOG_ERR, "recover: --journal-dir %s: %m",
			cfg->journal_dir);
		if (fd >= 0)
			close(fd);
		return 1;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (uid_name(e->d_name, &uid) < 0) {
			log_msg(LOG_WARNING,
				"recover: %s/%s: not a uid; left alone",
				cfg->journal_dir, e->d_name);
			continue;
		}
		failed |= recover_dir(cfg, (const int[2]){root, dirfd(d)},
				      e->d_name, uid);
	}
	closedir(d);
	return failed;
}

static int
recover_one(const struct config *cfg, int root)
{
	struct passwd *pw;
	char name[32];

	errno = 0;
	if ((pw = getpwnam(cfg->recover)) == NULL) {
		log_msg(LOG_ERR, "recover: user %s: no passwd entry%s%s",
			cfg->recover, errno ? ": " : "",
			errno ? strerror(errno) : "");
		return 1;
	}
	snprintf(name, sizeof(name), "%lu", (unsigned long)pw->pw_uid);
	return recover_dir(cfg, (const int[2]){root, -1}, name, pw->pw_uid);
}

int
recover_run(const struct config *cfg)
{
	int root, failed;

	if ((root = open_root(cfg->journal_dir)) < 0)
		return root == -2 ? 0 : 1;
	failed = cfg->recover[0] != '\0' ? recover_one(cfg, root)
					 : recover_all(cfg, root);
	close(root);
	return failed;
}
