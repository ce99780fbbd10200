/* The dotlock keeper (keeper.h, design.md §4.2).
 *
 * Why a process and not a saved group: a session that kept group mail
 * in its saved set (Dovecot's mail_privileged_group) could take it back
 * at any time, and on Debian the spools are 0660 user:mail, so a
 * compromised session would hold every user's mail. The keeper is the
 * only process of the connection with group mail, and it does two
 * things on one name fixed before it was forked: it cannot be told to
 * lock, open or remove anything else. The session can ptrace neither it
 * (its groups differ, and it is not dumpable) nor its memory; it can
 * only send it records or signals, and the worst it can do with either
 * is what the setgid dotlockfile already lets every user do: take or
 * drop the dotlock of their own spool. */
#include "keeper.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <lockfile.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "lock.h"
#include "lockload.h"
#include "log.h"
#include "maildrop.h"
#include "params.h"
#include "sysutil.h"

enum keeper_op { KEEPER_CREATE = 1, KEEPER_REMOVE = 2 };

struct keeper_request {
	int op;
	int flags; /* lockfile_create's: 0 or L_PID (lock.c) */
};

struct keeper_reply {
	int rc;
	int err;
};

/* The session's view; in the keeper, its own name. */
static struct {
	int sock;
	pid_t pid;
	char dotlock[PATH_MAX];
} k = {.sock = -1, .pid = -1};

bool
keeper_serves(const struct stat *dir)
{
	struct group *gr;

	if (!(dir->st_mode & S_IWGRP) || (dir->st_mode & S_IWOTH) ||
	    dir->st_gid == 0)
		return false;
	gr = getgrnam(KEEPER_GROUP);
	return gr != NULL && gr->gr_gid == dir->st_gid;
}

/* The group that may create names in the spool's directory, if the user
 * needs it: a directory keeper_serves, which the user can neither write
 * as its owner nor through a group of theirs. Anything else: no keeper. */
static bool
needed_group(const char *spool, const struct auth_user *who, gid_t *group_r)
{
	const char *slash = strrchr(spool, '/');
	char dir[PATH_MAX];
	gid_t groups[NGROUPS_MAX];
	int n = NGROUPS_MAX;
	struct stat st;

	if (slash == NULL || (size_t)(slash - spool) >= sizeof(dir))
		return false;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - spool), spool);
	if (stat(dir[0] ? dir : "/", &st) < 0 || !keeper_serves(&st) ||
	    st.st_uid == who->uid)
		return false;
	if (getgrouplist(who->name, who->gid, groups, &n) < 0)
		return false; /* more groups than the kernel allows: odd; no */
	for (int i = 0; i < n; i++)
		if (groups[i] == st.st_gid)
			return false;
	*group_r = st.st_gid;
	return true;
}

/* The user with the one group, for good, proven; no descriptor but the
 * socket (0-2 are /dev/null or the log by now). */
static bool
confine(int sock, uid_t uid, gid_t group)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg, list[2];

	closelog();
	if ((sock > 3 && close_range(3, (unsigned)sock - 1, 0) < 0) ||
	    close_range((unsigned)sock + 1, ~0U, 0) < 0)
		return false;
	if (setgroups(1, &group) < 0 || setresgid(group, group, group) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		return false;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != uid || eu != uid || su != uid || rg != group || eg != group ||
	    sg != group || getgroups(2, list) != 1 || list[0] != group)
		return false;
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0)
		return false;
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       sys_undumpable() == 0;
}

static bool
valid(const struct keeper_request *r)
{
	return (r->op == KEEPER_CREATE &&
		(r->flags == 0 || r->flags == L_PID)) ||
	       (r->op == KEEPER_REMOVE && r->flags == 0);
}

/* The session is gone (its end closed, or a reply found no reader): a
 * dotlock the keeper made and was not asked to remove is removed now,
 * for nobody else can (design.md §2). A session goes with it held only
 * if it was killed outright (SIGKILL, a crash): UPDATE and recovery hold
 * every other signal until they have removed it. */
static void __attribute__((noreturn)) keeper_leave(bool held)
{
	if (held)
		(void)lockfile_remove(k.dotlock);
	_exit(0);
}

/* One record in, one out, until the session closes its end. A record
 * that is not one of the two ends the keeper: only a broken or hostile
 * session sends one, and it then falls back to dotlockfile.
 *
 * The signals that stop a unit (systemd's KillMode=control-group sends
 * SIGTERM, and SIGHUP with SendSIGHUP=, to every process of the
 * session's cgroup), a ^C and SIGPIPE are ignored: the session blocks
 * them inside UPDATE and recovery and still needs the keeper to remove
 * the dotlock before it exits. Without it, liblockfile's fallback is
 * the setgid dotlockfile, which under NoNewPrivileges= (the shipped
 * units) runs without group mail and cannot remove a lock in a 2775
 * root:mail directory: a stale lock that procmail honours for 1024 s
 * and Postfix local(8) for 500 s. The keeper still ends with its
 * session: at the end of file on its socket (keeper_leave). */
static void __attribute__((noreturn))
keeper_main(int sock, uid_t uid, gid_t group)
{
	static const int ignored[] = {SIGTERM, SIGHUP, SIGINT, SIGPIPE};
	struct keeper_request rq;
	struct keeper_reply rp;
	bool held = false;
	ssize_t n;

	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		signal(ignored[i], SIG_IGN);
	if (!confine(sock, uid, group))
		_exit(1);
	/* Now, on the other core, while the session parses the spool: not
	 * 1.5 ms of dlopen inside UPDATE. A failure is answered at the
	 * first request (liblockfile's L_ERROR, errno ELIBACC). */
	(void)lockload_load();
	for (;;) {
		n = recv(sock, &rq, sizeof(rq), MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			keeper_leave(held);
		if ((size_t)n != sizeof(rq) || !valid(&rq))
			_exit(1);
		errno = 0;
		if (rq.op == KEEPER_CREATE) {
			rp.rc = lockfile_create(k.dotlock, 0, rq.flags);
			held = held || rp.rc == L_SUCCESS;
		} else {
			rp.rc = lockfile_remove(k.dotlock);
			held = held && rp.rc != 0;
		}
		rp.err = errno;
		if (send(sock, &rp, sizeof(rp), MSG_NOSIGNAL) != sizeof(rp))
			keeper_leave(held);
	}
}

void
keeper_start(const char *mailbox, const struct auth_user *who)
{
	char spool[PATH_MAX];
	gid_t group;
	int sv[2];
	pid_t pid;

	if (geteuid() != 0 ||
	    maildrop_path(mailbox, who->name, who->home, spool, sizeof(spool)) <
		    0 ||
	    !lock_dotlock_name(spool, k.dotlock, sizeof(k.dotlock)) ||
	    !needed_group(spool, who, &group))
		return;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_msg(LOG_WARNING, "dotlock keeper: socketpair: %m");
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_msg(LOG_WARNING, "dotlock keeper: fork: %m");
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		keeper_main(sv[1], who->uid, group);
	}
	close(sv[1]);
	k.sock = sv[0];
	k.pid = pid;
}

/* Returns false if the keeper did not answer: it is then let go, and
 * liblockfile does the rest of the session's dotlocking. */
static bool
ask(enum keeper_op op, int flags, int *rc_r)
{
	struct keeper_request rq = {.op = op, .flags = flags};
	struct keeper_reply rp;
	ssize_t n;

	if (send(k.sock, &rq, sizeof(rq), MSG_NOSIGNAL) == sizeof(rq)) {
		do
			n = recv(k.sock, &rp, sizeof(rp), MSG_TRUNC);
		while (n < 0 && errno == EINTR);
		if (n == sizeof(rp)) {
			*rc_r = rp.rc;
			errno = rp.err;
			return true;
		}
	}
	log_msg(LOG_ERR, "%s: the dotlock keeper is gone; using dotlockfile",
		k.dotlock);
	keeper_stop();
	return false;
}

static bool
kept(const char *dotlock)
{
	return k.sock >= 0 && strcmp(dotlock, k.dotlock) == 0;
}

int
keeper_lockfile_create(const char *dotlock, int flags)
{
	int rc;

	if (kept(dotlock) && ask(KEEPER_CREATE, flags, &rc))
		return rc;
	return lockfile_create(dotlock, 0, flags);
}

int
keeper_lockfile_remove(const char *dotlock)
{
	int rc;

	if (kept(dotlock) && ask(KEEPER_REMOVE, 0, &rc))
		return rc;
	return lockfile_remove(dotlock);
}

void
keeper_stop(void)
{
	if (k.sock < 0)
		return;
	close(k.sock);
	k.sock = -1;
	/* It exits at the end of file; it may have died already. */
	while (waitpid(k.pid, NULL, 0) < 0 && errno == EINTR)
		;
	k.pid = -1;
}
