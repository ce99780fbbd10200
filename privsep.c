/* One connection as mutually untrusting processes (design.md §2):
 *
 *   pre-auth  the pop3d user, chrooted to an empty directory, with
 *             no_new_privs: greeting, CAPA, STLS/TLS, USER/PASS, AUTH.
 *             Never sees the mail; afterwards, under TLS, the relay.
 *   monitor   root; reads only fixed-size records from its child, runs
 *             PAM, then becomes the user for good and is the session.
 */
#include "privsep.h"
#include "privsep_msg.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "netio.h"
#include "params.h"
#include "peer.h"
#include "relay.h"
#include "session.h"
#include "tls.h"

/* --- both sides ------------------------------------------------------------
 */

static int
send_record(int sock, const void *rec, size_t len, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = {(void *)rec, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;
	ssize_t n;

	if (nfds > 0) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

/* Receive one record into m; returns its length, 0 at EOF, -1 on error
 * or a truncated record. Passed descriptors go to fds (at most 2), the
 * count to *nfds_r; any beyond that are closed. */
static ssize_t
recv_record(int sock, union msg *m, int *fds, int *nfds_r)
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = {m, sizeof(*m)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm;
	int got = 0, fd;
	ssize_t n;

	*nfds_r = 0;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (cm = CMSG_FIRSTHDR(&mh); n >= 0 && cm != NULL;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0;
		     i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(fd));
			if (fds != NULL && got < 2)
				fds[got++] = fd;
			else
				close(fd);
		}
	}
	if (n < 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		while (got > 0)
			close(fds[--got]);
		return -1;
	}
	*nfds_r = got;
	return n;
}

/* --- the pre-auth process ------------------------------------------------ */

struct preauth {
	int sock;
};

static enum auth_verdict
ask_monitor(void *ctx, struct auth_request *req)
{
	struct preauth *pa = ctx;
	struct msg_login m;
	union msg v;
	int nfds;
	ssize_t n;

	/* Every octet defined: no stack garbage (padding) crosses over. */
	memset(&m, 0, sizeof(m));
	m.type = MSG_LOGIN;
	m.req = *req;
	explicit_bzero(req->password, sizeof(req->password));
	n = send_record(pa->sock, &m, sizeof(m), NULL, 0);
	explicit_bzero(&m, sizeof(m));
	if (n < 0)
		fatal("pre-auth: monitor gone");
	n = recv_record(pa->sock, &v, NULL, &nfds);
	if (n != sizeof(v.verdict) || v.type != MSG_VERDICT ||
	    v.verdict.verdict < AUTH_OK || v.verdict.verdict > AUTH_PERMFAIL)
		fatal("pre-auth: no verdict from the monitor");
	return v.verdict.verdict;
}

/* Become the unprivileged pre-auth user in an empty chroot, for good. */
static void
confine(const struct config *cfg)
{
	struct passwd *pw = NULL;
	uid_t uid;
	gid_t gid;

	if (geteuid() == 0) {
		pw = getpwnam(cfg->preauth_user);
		if (pw == NULL) {
			log_msg(LOG_WARNING,
				"no user %s; pre-auth runs as "
				"nobody",
				cfg->preauth_user);
			pw = getpwnam("nobody");
		}
		if (pw == NULL || pw->pw_uid == 0)
			fatal("no unprivileged user for the pre-auth process");
		uid = pw->pw_uid;
		gid = pw->pw_gid;
		if (chroot(cfg->preauth_dir) < 0 || chdir("/") < 0)
			fatal("chroot %s: %m", cfg->preauth_dir);
		if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			fatal("pre-auth privilege drop: %m");
		if (setuid(0) == 0 || seteuid(0) == 0)
			fatal("pre-auth privilege drop: root regained");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fatal("no_new_privs: %m");
}

/* Give the monitor the connection and the input read ahead. Without TLS
 * that is the client's descriptors, and we are done; under TLS, one end
 * of a socketpair, and we relay. */
static void __attribute__((noreturn))
hand_off(const struct config *cfg, struct preauth *pa, struct netio *io,
	 bool tls)
{
	static struct msg_handoff h;
	int fds[2], sp[2];

	h.type = MSG_HANDOFF;
	h.tls = tls;
	h.len = net_take_input(io, h.input, sizeof(h.input));
	if (!tls) {
		fds[0] = io->in_fd;
		fds[1] = io->out_fd;
		if (send_record(pa->sock, &h, sizeof(h), fds, 2) < 0)
			fatal("pre-auth: handoff failed: %m");
		explicit_bzero(&h, sizeof(h));
		_exit(0);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		fatal("socketpair: %m");
	fds[0] = fds[1] = sp[1];
	if (send_record(pa->sock, &h, sizeof(h), fds, 2) < 0)
		fatal("pre-auth: handoff failed: %m");
	explicit_bzero(&h, sizeof(h));
	close(sp[1]);
	close(pa->sock);
	/* The session times out first and closes its end; the relay's own
	 * limit is a backstop, later, so that the session logs why. */
	relay_run(io->tls, io->in_fd, io->out_fd, sp[0],
		  io->timeout_ms + RELAY_GRACE_MS);
	tls_close(io->tls);
	_exit(0);
}

static void __attribute__((noreturn))
preauth_main(const struct config *cfg, const struct peer *peer, int in_fd,
	     int out_fd, int sock)
{
	static struct netio io;
	struct preauth pa = {sock};
	struct session_hooks hooks = {ask_monitor, &pa};
	bool tls;

	confine(cfg);
	net_init(&io, in_fd, out_fd, cfg->timeout);
	if (session_authorize(cfg, peer, &io, &hooks, &tls) ==
	    SESSION_LOGGED_IN)
		hand_off(cfg, &pa, &io, tls);
	if (io.tls != NULL)
		tls_close(io.tls); /* close_notify after QUIT (R8314-04) */
	_exit(0);
}

/* --- the monitor -----------------------------------------------------------
 */

struct monitor {
	const struct config *cfg;
	const struct peer *peer;
	int sock;
	int failures;
	struct auth_user who;
	char method[8];
};

/* Every field must end inside its array; the method must be ours. The
 * record is hostile until this says otherwise. */
static bool
valid_request(const struct auth_request *r)
{
	return memchr(r->user, '\0', sizeof(r->user)) != NULL &&
	       memchr(r->authzid, '\0', sizeof(r->authzid)) != NULL &&
	       memchr(r->password, '\0', sizeof(r->password)) != NULL &&
	       memchr(r->method, '\0', sizeof(r->method)) != NULL &&
	       r->user[0] != '\0' && r->tls <= 1 &&
	       (strcmp(r->method, "USER") == 0 ||
		strcmp(r->method, "PLAIN") == 0 ||
		strcmp(r->method, "LOGIN") == 0);
}

int
privsep_check_record(const union msg *m, ssize_t len, int nfds, bool logged_in)
{
	if (len < (ssize_t)sizeof(m->type))
		return 0;
	if (!logged_in && m->type == MSG_LOGIN && len == sizeof(m->login) &&
	    nfds == 0 && valid_request(&m->login.req))
		return MSG_LOGIN;
	if (logged_in && m->type == MSG_HANDOFF && len == sizeof(m->handoff) &&
	    nfds == 2 && m->handoff.tls <= 1 &&
	    m->handoff.len <= sizeof(m->handoff.input))
		return MSG_HANDOFF;
	return 0;
}

static void
deadline_in(struct timespec *t, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

/* Run one login; the verdict goes back to the pre-auth process. A failure
 * costs AUTH_FAIL_DELAY_MS here, where the pre-auth process cannot
 * skip it. */
static enum auth_verdict
judge(struct monitor *m, struct auth_request *req)
{
	struct msg_verdict v = {.type = MSG_VERDICT};
	struct timespec deadline;
	enum auth_verdict verdict;
	const char *tls = req->tls ? "yes" : "no";

	deadline_in(&deadline, AUTH_FAIL_DELAY_MS);
	verdict = auth_check(m->cfg, m->peer, req, &m->who);
	if (verdict == AUTH_OK) {
		snprintf(m->method, sizeof(m->method), "%s", req->method);
		log_msg(LOG_INFO, "login: user=%s peer=%s method=%s tls=%s",
			m->who.name, m->peer->addr, req->method, tls);
	} else {
		/* design.md §3: never echo a name PAM did not know; it
		 * may be a password typed into the wrong field. */
		log_msg(LOG_NOTICE,
			"login failed: user=%s peer=%s method=%s tls=%s",
			verdict == AUTH_UNKNOWN_USER ? "UNKNOWN USER"
						     : req->user,
			m->peer->addr, req->method, tls);
		m->failures++;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
				       &deadline, NULL) == EINTR)
			;
	}
	explicit_bzero(req, sizeof(*req));
	v.verdict = verdict;
	if (send_record(m->sock, &v, sizeof(v), NULL, 0) < 0)
		_exit(0); /* the pre-auth process is gone */
	return verdict;
}

/* Wait for logins until one succeeds; then take the connection. Returns
 * only with the handoff done; exits when the pre-auth process ends. */
static void
await_login(struct monitor *m, struct msg_handoff *h, int fds[2])
{
	static union msg msg;
	bool accepted = false;
	int nfds;
	ssize_t n;

	for (;;) {
		n = recv_record(m->sock, &msg, fds, &nfds);
		if (n <= 0)
			_exit(0); /* the session ended before a login */
		switch (privsep_check_record(&msg, n, nfds, accepted)) {
		case MSG_LOGIN:
			if (m->failures >= AUTH_FAILS_MAX)
				break;
			accepted = judge(m, &msg.login.req) == AUTH_OK;
			continue;
		case MSG_HANDOFF:
			*h = msg.handoff;
			explicit_bzero(&msg, sizeof(msg));
			return;
		}
		explicit_bzero(&msg, sizeof(msg));
		while (nfds > 0)
			close(fds[--nfds]);
		fatal("monitor: refused a malformed or unexpected record");
	}
}

/* As root, give the user a journal directory of their own for UPDATE:
 * <journal-dir>/<uid>, mode 0700. Nobody else can write <journal-dir>,
 * so nobody can plant anything there. A failure is logged; the session
 * then refuses UPDATE rather than risk mail. */
static void
journal_prepare(const struct config *cfg, const struct auth_user *who)
{
	char name[32];
	struct stat st;
	int dfd;

	if (mkdir(cfg->journal_dir, 0711) < 0 && errno != EEXIST) {
		log_msg(LOG_ERR, "--journal-dir %s: %m", cfg->journal_dir);
		return;
	}
	dfd = open(cfg->journal_dir,
		   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		log_msg(LOG_ERR, "--journal-dir %s: %m", cfg->journal_dir);
		return;
	}
	snprintf(name, sizeof(name), "%lu", (unsigned long)who->uid);
	if (mkdirat(dfd, name, 0700) == 0 && geteuid() == 0 &&
	    fchownat(dfd, name, who->uid, who->gid, AT_SYMLINK_NOFOLLOW) < 0)
		log_msg(LOG_ERR, "%s/%s: chown: %m", cfg->journal_dir, name);
	/* The one check that failed, so that the admin knows what to fix. */
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		log_msg(LOG_ERR, "%s/%s: %m", cfg->journal_dir, name);
	else if (!S_ISDIR(st.st_mode))
		log_msg(LOG_ERR, "%s/%s: not a directory", cfg->journal_dir,
			name);
	else if (st.st_uid != who->uid)
		log_msg(LOG_ERR, "%s/%s: owned by uid %lu, not %lu",
			cfg->journal_dir, name, (unsigned long)st.st_uid,
			(unsigned long)who->uid);
	else if ((st.st_mode & 077) != 0)
		log_msg(LOG_ERR, "%s/%s: open to others (mode %04o, not 0700)",
			cfg->journal_dir, name, (unsigned)(st.st_mode & 07777));
	close(dfd);
}

/* Our copies of the client's descriptors point at /dev/null while the
 * pre-auth process has the connection: the monitor never reads it. */
static void
release_client(int in_fd, int out_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0)
		fatal("/dev/null: %m");
	if (dup2(null, in_fd) < 0 || dup2(null, out_fd) < 0)
		fatal("dup2: %m");
	close(null);
}

/* Replies go out in whole bursts (netio batches them), so Nagle's
 * algorithm only adds a delayed-ACK round trip to the last segment of
 * each one: about 40 ms per command with ordinary clients. */
static void
tune_socket(int fd)
{
	int one = 1;

	/* Fails harmlessly on pipes and Unix sockets. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int
privsep_serve(const struct config *cfg, int in_fd, int out_fd)
{
	static struct msg_handoff h;
	static struct netio io;
	struct peer peer;
	struct monitor m = {.cfg = cfg, .peer = &peer};
	int sv[2], fds[2] = {-1, -1};
	bool tls;
	pid_t pid;

	peer_from_fd(in_fd, &peer);
	log_msg(LOG_INFO, "connect from %s", peer.addr);
	tune_socket(out_fd);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		fatal("socketpair: %m");
	pid = fork();
	if (pid < 0)
		fatal("fork: %m");
	if (pid == 0) {
		close(sv[0]);
		preauth_main(cfg, &peer, in_fd, out_fd, sv[1]);
	}
	close(sv[1]);
	m.sock = sv[0];
	release_client(in_fd, out_fd);
	await_login(&m, &h, fds);
	close(m.sock);
	tls = h.tls;
	if (!tls)
		waitpid(pid, NULL, 0); /* it exits right after the handoff */
	journal_prepare(cfg, &m.who);
	auth_become(&m.who);
	net_init(&io, fds[0], fds[1], cfg->timeout);
	if (net_preload(&io, h.input, h.len) < 0)
		fatal("handoff: input does not fit");
	explicit_bzero(&h, sizeof(h));
	session_transact(cfg, &peer, &io, &m.who, m.method, tls);
	if (tls) {
		/* Let the relay send the last reply and close_notify
		 * before we exit: under systemd our exit ends the unit,
		 * and every process left in it is killed. */
		close(fds[0]);
		if (fds[1] != fds[0])
			close(fds[1]);
		waitpid(pid, NULL, 0);
	}
	return 0;
}

void
privsep_check_dir(const struct config *cfg)
{
	struct stat st;

	if (geteuid() != 0)
		return; /* no chroot without root */
	if (mkdir(cfg->preauth_dir, 0555) < 0 && errno != EEXIST)
		fatal("--preauth-dir %s: %m", cfg->preauth_dir);
	if (lstat(cfg->preauth_dir, &st) < 0)
		fatal("--preauth-dir %s: %m", cfg->preauth_dir);
	if (!S_ISDIR(st.st_mode))
		fatal("--preauth-dir %s: not a directory", cfg->preauth_dir);
	if (st.st_uid != 0)
		fatal("--preauth-dir %s: owned by uid %lu, not root",
		      cfg->preauth_dir, (unsigned long)st.st_uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		fatal("--preauth-dir %s: writable by group or others "
		      "(mode %04o)",
		      cfg->preauth_dir, (unsigned)(st.st_mode & 07777));
}
