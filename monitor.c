/* The monitor (design.md §2): the root side of a connection, and the
 * only place that decides who a client is.
 *
 * For each connection, monitor_serve runs as root: it forks the pre-auth
 * process (preauth.c), which parses everything the client sends, and
 * from then on reads nothing but fixed-size records from that child
 * (privsep_msg.h), each judged as hostile (privsep_check_record). It
 * runs PAM for each login (judge), takes the connection at the handoff
 * (await_login), gives the user a journal directory (journal_prepare),
 * and drops to the user for good (auth_become). Past that call the same
 * process is the user's session (run_session): nothing there is root.
 *
 * Everything in pop3d that runs as root, file by file:
 *
 *   pop3d.c        main: parse_options, log_init, monitor_init, and the
 *                  choice of mode (dispatch_mode, sdsock.c's
 *                  sdsock_listen_fds).
 *   command.c      command_number, for numeric options.
 *   maildrop.c     maildrop_path, to check the --mailbox pattern;
 *                  maildrop_check_dir, a stat of its directory (and
 *                  keeper.c's keeper_serves, a getgrnam).
 *   log.c          log_init, log_msg, fatal.
 *   monitor.c      monitor_init (check_preauth_dir, check_journal_dir) at
 *                  startup; then, per connection, everything up to
 *                  auth_become.
 *   auth.c         auth_init; auth_check (PAM and its modules, getpwnam,
 *                  the uid policy); auth_become (initgroups, setresgid,
 *                  setresuid, the proof that root is gone).
 *   keeper.c       keeper_start: a stat of the spool directory,
 *                  getgrnam and getgrouplist, and the fork of the dotlock
 *                  keeper, which drops to the user with group mail alone
 *                  before it reads anything.
 *   pamload.c      loads libpam at auth_check's first PAM call.
 *   tls.c          tls_setup: installs OpenSSL's wiping memory functions,
 *                  reads the certificate and the key into wiped buffers;
 *                  tls_forget, right after the pre-auth fork, frees them
 *                  so that the session never holds the key.
 *   peer.c         peer_from_fd: getpeername for logs and PAM_RHOST;
 *                  peer_in_nets, the --proxy-from match; peer_from_octets
 *                  on the pre-auth process's MSG_PEER record.
 *   sysutil.c      sys_poll, sys_now_ms, sys_sleep_ms: the bounded wait
 *                  for the pre-auth process and the failure delay.
 *   privsep_msg.c  privsep_recv and privsep_send: octets and descriptors
 *                  only; the judging is privsep_check_record, here.
 *   session.c      session_greeting: the greeting's octets, which
 *                  monitor_serve writes before the pre-auth fork.
 *   server.c       the Accept=no listener: accept, fork and exec, each
 *                  connection starting over in main; its answer to a
 *                  proxied connection's source (server_claim_source).
 *   sdsock.c       sdsock_listen_fds, sdsock_is_stream (getenv, fcntl,
 *                  fstat, getsockopt) in main; sdsock_notify in the
 *                  listener (one datagram to NOTIFY_SOCKET).
 *   preauth.c      confine, in the freshly forked child, until it has
 *                  dropped to --preauth-user.
 *
 * Not started as root, the same code runs with the same split, minus the
 * uid changes and the chroot. */
#define POP3D_ROOT_ONLY
#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "keeper.h"
#include "lang.h"
#include "log.h"
#include "maildrop.h"
#include "netio.h"
#include "params.h"
#include "peer.h"
#include "preauth.h"
#include "server.h"
#include "privsep_msg.h"
#include "session.h"
#include "sysutil.h"
#include "test_hooks.h"
#include "tls.h"

struct monitor {
	const struct config *cfg;
	struct peer *peer;
	int sock;
	pid_t preauth;
	int failures;
	int log_lines;	  /* from the pre-auth process */
	bool expect_peer; /* a --proxy-from connection: MSG_PEER first */
	struct auth_user who;
	char method[AUTH_METHOD_SIZE];
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
	    nfds == 2 && m->handoff.tls <= 1 && m->handoff.utf8 <= 1 &&
	    m->handoff.lang < lang_count &&
	    m->handoff.len <= sizeof(m->handoff.input))
		return MSG_HANDOFF;
	if (!logged_in && m->type == MSG_PEER && len == sizeof(m->peer) &&
	    nfds == 0 &&
	    (m->peer.family == AF_INET || m->peer.family == AF_INET6 ||
	     m->peer.family == AF_UNSPEC))
		return MSG_PEER;
	if (m->type == MSG_LOG && len == sizeof(m->log) && nfds == 0 &&
	    m->log.priority >= LOG_CRIT && m->log.priority <= LOG_DEBUG &&
	    memchr(m->log.text, '\0', sizeof(m->log.text)) != NULL)
		return MSG_LOG;
	return 0;
}

/* The connection ends before a login. The pre-auth process is killed,
 * whether it has exited already or not: once the monitor is gone,
 * nothing would bound a hostile one that stayed. */
__attribute__((noreturn)) static void
end_preauth(const struct monitor *m)
{
	kill(m->preauth, SIGKILL);
	_exit(0);
}

/* Run one login; the verdict goes back to the pre-auth process. A failure
 * costs AUTH_FAIL_DELAY_MS here, where the pre-auth process cannot
 * skip it. */
static enum auth_verdict
judge(struct monitor *m, struct auth_request *req)
{
	struct msg_verdict v = {.type = MSG_VERDICT};
	int64_t deadline = sys_now_ms() + AUTH_FAIL_DELAY_MS;
	enum auth_verdict verdict;
	const char *tls = req->tls ? "yes" : "no";
	char name[USER_NAME_MAX + 4];

	verdict = auth_check(m->cfg, m->peer, req, &m->who);
	if (verdict == AUTH_OK) {
		snprintf(m->method, sizeof(m->method), "%s", req->method);
		log_msg(LOG_INFO, "login: user=%s peer=%s method=%s tls=%s",
			m->who.name, m->peer->addr, req->method, tls);
	} else {
		log_msg(LOG_NOTICE,
			"login failed: user=%s peer=%s method=%s tls=%s",
			verdict == AUTH_UNKNOWN_USER
				? "UNKNOWN USER"
				: auth_log_name(req->user, name, sizeof(name)),
			m->peer->addr, req->method, tls);
		m->failures++;
		/* The delay counts from the attempt, PAM's time included. */
		if (deadline > sys_now_ms())
			sys_sleep_ms((long)(deadline - sys_now_ms()));
	}
	explicit_bzero(req, sizeof(*req));
	v.verdict = verdict;
	if (privsep_send(m->sock, &v, sizeof(v), NULL, 0) < 0)
		end_preauth(m); /* it is gone, or closed its end */
	return verdict;
}

/* Root's own bound on the pre-auth process: its --preauth-timeout is
 * enforced by that process, which may be wedged or hostile. Past the
 * deadline it is killed and the connection ends. */
static void
wait_for_preauth(const struct monitor *m, int64_t deadline)
{
	struct pollfd pfd = {.fd = m->sock, .events = POLLIN};
	int64_t left = deadline - sys_now_ms();

	if (left > 0 && sys_poll(&pfd, 1, (int)left) != 0)
		return; /* a record, EOF or an error: privsep_recv says which */
	log_msg(LOG_WARNING,
		"pre-login process %ld still there %d ms after "
		"--preauth-timeout: killed",
		(long)m->preauth, MONITOR_GRACE_MS);
	kill(m->preauth, SIGKILL);
	_exit(0);
}

/* A line from the pre-auth process (design.md §7), which has no log
 * channel of its own: prefixed, so that nothing it sends passes for a
 * line of ours (fail2ban trusts "login failed" lines), and bounded and
 * sanitised by log_msg like every line. */
static bool
log_preauth_line(struct monitor *m, const struct msg_log *l)
{
	if (++m->log_lines > PREAUTH_LOG_LINES_MAX)
		return false;
	log_msg(l->priority, "preauth: %s", l->text);
	return true;
}

/* The pre-auth process broke the protocol: it is hostile. It goes, and
 * the connection with it. */
static void __attribute__((noreturn))
refuse_preauth(const struct monitor *m, const char *why)
{
	kill(m->preauth, SIGKILL);
	fatal("monitor: refused %s from pre-login process %ld", why,
	      (long)m->preauth);
}

/* The client the balancer's PROXY header named (design.md §13): from
 * here on it is the peer of the logs, PAM_RHOST and the cleartext rule,
 * and the Accept=no listener counts it for --max-per-source. A health
 * check (AF_UNSPEC) keeps the balancer's address but is never local:
 * the balancer's own connection is no reason to allow cleartext. */
static void
take_peer(struct monitor *m, const struct msg_peer *p)
{
	struct msg_verdict v = {.type = MSG_VERDICT, .verdict = AUTH_OK};
	struct peer real;

	if (p->family == AF_UNSPEC) {
		m->peer->local = false;
		log_msg(LOG_INFO, "proxy: health check from %s", m->peer->addr);
	} else {
		peer_from_octets(p->family, p->addr, &real);
		real.proxied = true; /* it still came through the balancer */
		log_msg(LOG_INFO, "proxy: client %s via %s", real.addr,
			m->peer->addr);
		*m->peer = real;
		if (server_claim_source(m->peer) < 0)
			v.verdict = AUTH_REFUSED;
	}
	m->expect_peer = false;
	if (privsep_send(m->sock, &v, sizeof(v), NULL, 0) < 0 ||
	    v.verdict != AUTH_OK) {
		kill(m->preauth, SIGKILL);
		_exit(0);
	}
}

/* How long the pre-auth process may take from now: its own
 * --preauth-timeout starts when it begins the session, which on a
 * proxied connection is only after the header and the listener's answer
 * to the source claim (design.md §13), so the bound starts again once
 * the client is known. */
static int64_t
login_deadline(const struct monitor *m)
{
	return sys_now_ms() + (int64_t)m->cfg->preauth_timeout * 1000 +
	       MONITOR_GRACE_MS;
}

/* Wait for logins until one succeeds; then take the connection. Returns
 * only with the handoff done; exits when the pre-auth process ends. */
static void
await_login(struct monitor *m, struct msg_handoff *h, int fds[2])
{
	static union msg msg;
	int64_t deadline = login_deadline(m);
	bool accepted = false;
	int nfds;
	ssize_t n;

	for (;;) {
		wait_for_preauth(m, deadline);
		n = privsep_recv(m->sock, &msg, fds, &nfds);
		if (n == 0)
			/* The session ended before a login, or an empty
			 * record, which reads the same: the process must
			 * not outlive root's watch either way. */
			end_preauth(m);
		if (n < 0)
			refuse_preauth(m, "an oversized or unreadable record");
		switch (privsep_check_record(&msg, n, nfds, accepted)) {
		case MSG_PEER:
			if (!m->expect_peer)
				break;
			take_peer(m, &msg.peer);
			deadline = login_deadline(m);
			continue;
		case MSG_LOGIN:
			if (m->failures >= AUTH_FAILS_MAX || m->expect_peer)
				break;
			accepted = judge(m, &msg.login.req) == AUTH_OK;
			continue;
		case MSG_HANDOFF:
			*h = msg.handoff;
			explicit_bzero(&msg, sizeof(msg));
			return;
		case MSG_LOG:
			if (!log_preauth_line(m, &msg.log))
				refuse_preauth(m, "a log line too many");
			continue;
		}
		explicit_bzero(&msg, sizeof(msg));
		while (nfds > 0)
			close(fds[--nfds]);
		refuse_preauth(m, "a malformed or unexpected record");
	}
}

/* <journal-dir> must be root's and writable by root alone (checked at
 * start-up, check_journal_dir, and again here on the open descriptor):
 * then only root can create, rename or replace names in it, and the
 * per-user directory made below cannot be swapped for a symlink or a
 * hard link between mkdirat and fchown. Returns the open directory or
 * -1 (logged). */
static int
open_journal_root(const char *dir)
{
	struct stat st;
	int dfd;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		log_msg(LOG_ERR, "--journal-dir %s: %m", dir);
		return -1;
	}
	if (geteuid() != 0)
		return dfd;
	if (fstat(dfd, &st) < 0)
		log_msg(LOG_ERR, "--journal-dir %s: fstat: %m", dir);
	else if (st.st_uid != 0)
		log_msg(LOG_ERR, "--journal-dir %s: owned by uid %lu, not root",
			dir, (unsigned long)st.st_uid);
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		log_msg(LOG_ERR,
			"--journal-dir %s: writable by group or others "
			"(mode %04o)",
			dir, (unsigned)(st.st_mode & 07777));
	else
		return dfd;
	close(dfd);
	return -1;
}

/* As root, give the user a journal directory of their own for UPDATE:
 * <journal-dir>/<uid>, mode 0700. Made here and handed over through a
 * descriptor: mkdirat, then openat with O_NOFOLLOW | O_DIRECTORY, fstat
 * and fchown that descriptor, so root never chowns by path. One that
 * exists already is left exactly as it is: the session judges it
 * (maildrop.c, journal_dir_refused) and, if it is not the user's own
 * 0700 directory, refuses recovery and any UPDATE that moves mail.
 * A failure here is logged; the session then fails closed the same way. */
static void
journal_prepare(const struct config *cfg, const struct auth_user *who)
{
	char name[32];
	struct stat st;
	int dfd, fd;

	if ((dfd = open_journal_root(cfg->journal_dir)) < 0)
		return;
	snprintf(name, sizeof(name), "%lu", (unsigned long)who->uid);
	if (mkdirat(dfd, name, 0700) < 0) {
		if (errno != EEXIST)
			log_msg(LOG_ERR, "%s/%s: mkdir: %m", cfg->journal_dir,
				name);
		close(dfd);
		return;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		log_msg(LOG_ERR, "%s/%s: %m", cfg->journal_dir, name);
	else if (fstat(fd, &st) < 0)
		log_msg(LOG_ERR, "%s/%s: fstat: %m", cfg->journal_dir, name);
	else if (geteuid() == 0 && st.st_uid != 0)
		/* Not the directory we just made: nobody else can write
		 * <journal-dir>, so this is never expected. */
		log_msg(LOG_ERR, "%s/%s: owned by uid %lu after mkdir",
			cfg->journal_dir, name, (unsigned long)st.st_uid);
	/* fchmod while it is still ours: the units give no CAP_FOWNER. */
	else if (fchmod(fd, 0700) < 0) /* whatever the umask took */
		log_msg(LOG_ERR, "%s/%s: fchmod: %m", cfg->journal_dir, name);
	else if (geteuid() == 0 && fchown(fd, who->uid, who->gid) < 0)
		log_msg(LOG_ERR, "%s/%s: fchown: %m", cfg->journal_dir, name);
	/* A journal written in it must not vanish with the directory at a
	 * power cut: its name in <journal-dir> is made durable before the
	 * session can use it (the session's own fsync of the directory,
	 * before a journal is relied on, covers its owner and mode). */
	else if (fsync(dfd) < 0)
		log_msg(LOG_ERR, "%s/%s: fsync: %m", cfg->journal_dir, name);
	if (fd >= 0)
		close(fd);
	close(dfd);
}

/* Sockets only: a terminal on 0, 1 and 2 (pop3d run by hand) keeps its
 * stderr. */
static bool
same_socket(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	       S_ISSOCK(sa.st_mode) && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* Our copies of the client's descriptors point at /dev/null while the
 * pre-auth process has the connection: the monitor never reads it. So
 * do standard descriptors that are further copies of it: systemd passes
 * the connection on 0 and 1 besides LISTEN_FDS's 3 when a unit has
 * StandardInput=socket, inetd on 2 as well. Left open, they would follow
 * root, the keeper and the user's session, which holds the raw TLS
 * socket then, and stderr would write to the client. */
static void
release_client(int in_fd, int out_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0)
		fatal("/dev/null: %m");
	for (int fd = 0; fd <= 2; fd++)
		if (fd != in_fd && fd != out_fd && fd != null &&
		    (same_socket(fd, in_fd) || same_socket(fd, out_fd)) &&
		    dup2(null, fd) < 0)
			fatal("dup2: %m");
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

/* Issue 12: the greeting is a constant (session_greeting), so it need
 * not wait for the pre-auth process's fork, getpwnam, chroot and
 * privilege drop; root writes it before forking, and reads nothing to do
 * so. Not where something must come first: the TLS handshake with
 * --tls-implicit (RFC 8314 §3.3: the greeting is the first octet inside
 * TLS), or the PROXY header of a --proxy-from balancer (PROXY-01). A
 * plain write, with no timeout: 17 octets to a connection nobody has
 * written to yet go into an empty socket send buffer (a pipe, in the
 * tests, takes up to PIPE_BUF octets whole), so it cannot block even if
 * the client never reads. Returns whether the greeting went out; if
 * nothing did (the client is gone already), the pre-auth process tries
 * again and ends the session as it always has. */
static bool
greet_first(const struct config *cfg, const struct peer *peer, int out_fd)
{
	char line[REPLY_LINE_MAX];
	size_t len, done = 0;
	ssize_t n;

	if (cfg->tls_implicit || peer->proxied)
		return false;
	len = session_greeting(line, sizeof(line));
	while (done < len) {
		n = write(out_fd, line + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			/* With part of it out, the pre-auth process must
			 * not start over: it finds the connection broken. */
			return done > 0;
		done += (size_t)n;
	}
	return len > 0;
}

/* Fork the pre-auth process, which keeps the connection until a login.
 * Returns its pid; *sock_r is our end of the socketpair to it. */
static pid_t
start_preauth(const struct config *cfg, const struct peer *peer, int in_fd,
	      int out_fd, bool greeted, int *sock_r)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		fatal("socketpair: %m");
	pid = fork();
	if (pid < 0)
		fatal("fork: %m");
	if (pid == 0) {
		close(sv[0]);
		server_forget_channel();  /* the listener trusts its records */
		test_hook_preauth(sv[1]); /* only in build/pop3d-test */
		preauth_run(cfg, peer, in_fd, out_fd, sv[1], greeted);
	}
	close(sv[1]);
	*sock_r = sv[0];
	return pid;
}

/* The relay ends once it has sent what the session wrote and TLS's
 * close_notify: it reads EOF on its socketpair. We are the user now and
 * cannot kill it (it runs as the pre-auth user), so a relay that stays
 * is not waited for beyond the grace: under systemd our exit ends the
 * unit, which kills it. */
static void
reap_relay(pid_t pid)
{
	int64_t end = sys_now_ms() + MONITOR_GRACE_MS;
	pid_t r;

	for (;;) {
		r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return;
		if (sys_now_ms() >= end) {
			log_msg(LOG_WARNING,
				"TLS relay %ld still there %d ms after the "
				"session ended: not waited for",
				(long)pid, MONITOR_GRACE_MS);
			return;
		}
		sys_sleep_ms(RELAY_REAP_POLL_MS);
	}
}

/* After auth_become, as the user: the session proper, on the connection
 * (or the relay's socketpair) and the input the pre-auth process had
 * read ahead. */
static void
run_session(const struct config *cfg, const struct peer *peer,
	    const struct monitor *m, struct msg_handoff *h, const int fds[2])
{
	static struct netio io;
	struct session_mode mode = {h->tls, h->utf8, h->lang};

	net_init(&io, fds[0], fds[1], cfg->timeout);
	if (net_preload(&io, h->input, h->len) < 0)
		fatal("handoff: input does not fit");
	(void)net_wait_in_recv(&io); /* on a pipe it polls, as before */
	explicit_bzero(h, sizeof(*h));
	session_transact(cfg, peer, &io, &m->who, m->method, &mode);
}

int
monitor_serve(const struct config *cfg, int in_fd, int out_fd)
{
	static struct msg_handoff h;
	struct peer peer;
	struct monitor m = {.cfg = cfg, .peer = &peer};
	int fds[2] = {-1, -1};
	bool greeted, tls;
	pid_t pid;

	peer_from_fd(in_fd, &peer);
	log_msg(LOG_INFO, "connect from %s", peer.addr);
	/* Root only matches the socket's address; the header itself is
	 * read and parsed in the pre-auth process (design.md §13). */
	peer.proxied = peer_in_nets(&peer, cfg->proxy_from, cfg->n_proxy_from);
	m.expect_peer = peer.proxied;
	tune_socket(out_fd);
	greeted = greet_first(cfg, &peer, out_fd);
	pid = start_preauth(cfg, &peer, in_fd, out_fd, greeted, &m.sock);
	m.preauth = pid;
	/* TLS is the pre-auth process's alone (then the relay's): the key
	 * goes before it can reach the user's session. */
	tls_forget();
	release_client(in_fd, out_fd);
	await_login(&m, &h, fds);
	server_forget_channel();
	close(m.sock);
	tls = h.tls;
	if (!tls) {
		/* Its part is over: a well-behaved one exits right after
		 * the handoff, a hostile one must not hold root here. */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	/* The user's session gets the connection and nothing root (PAM,
	 * NSS) or a parent left open. The syslog socket is made again. */
	log_close();
	if (sys_close_others(fds, 2) < 0)
		fatal("close_range: %m");
	/* An NSS module that keeps its database open across calls
	 * (nss_wrapper, under which the tests run, does) has just lost it.
	 * One lookup of each database now, while those numbers are free, lets
	 * it notice; later, a file of ours (the journal directory, the
	 * keeper's socket, the spool, its session lock) would have taken the
	 * number and been read as the database: a dotlock's owner became
	 * "no such user" (round 15). */
	(void)getpwuid(0);
	(void)getgrgid(0);
	log_init(cfg->log);
	journal_prepare(cfg, &m.who);
	keeper_start(cfg->mailbox, &m.who); /* where the user needs one */
	auth_become(&m.who);		    /* root ends here, for good */
	test_hook_session();		    /* only in build/pop3d-test */
	run_session(cfg, &peer, &m, &h, fds);
	keeper_stop();
	if (tls) {
		/* Let the relay send the last reply and close_notify
		 * before we exit: under systemd our exit ends the unit,
		 * and every process left in it is killed. */
		close(fds[0]);
		if (fds[1] != fds[0])
			close(fds[1]);
		reap_relay(pid);
	}
	return 0;
}

/* Every directory above a root-only directory must be root's and
 * writable by root alone as well: whoever can write one of them can
 * rename the subtree away and put one of their own in its place. The
 * exception is a sticky directory of root's (/tmp, /var/tmp), where
 * nobody but root may rename or remove an entry of root's. Checked with
 * lstat from the directory up to /, so no component is a symlink. */
static void
check_parents(const char *what, const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	char *slash;

	if ((size_t)snprintf(path, sizeof(path), "%s", dir) >= sizeof(path))
		fatal("%s %s: path too long", what, dir);
	while ((slash = strrchr(path, '/')) != NULL) {
		if (slash == path)
			path[1] = '\0'; /* the root directory itself */
		else
			*slash = '\0';
		if (lstat(path, &st) < 0)
			fatal("%s %s: parent %s: %m", what, dir, path);
		if (S_ISLNK(st.st_mode))
			fatal("%s %s: parent %s is a symlink", what, dir, path);
		if (!S_ISDIR(st.st_mode))
			fatal("%s %s: parent %s is not a directory", what, dir,
			      path);
		if (st.st_uid != 0)
			fatal("%s %s: parent %s owned by uid %lu, not root",
			      what, dir, path, (unsigned long)st.st_uid);
		if ((st.st_mode & (S_IWGRP | S_IWOTH)) &&
		    !(st.st_mode & S_ISVTX))
			fatal("%s %s: parent %s writable by group or others "
			      "(mode %04o)",
			      what, dir, path, (unsigned)(st.st_mode & 07777));
		if (slash == path)
			break;
	}
}

/* The pre-auth chroot must be root's and unwritable by anyone else, or
 * the confined process could find (or plant) something in it. */
static void
check_preauth_dir(const struct config *cfg)
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
	check_parents("--preauth-dir", cfg->preauth_dir);
}

/* The same for the journal directory: anyone who can write it could
 * plant a per-user directory, and in it a "journal" that the victim's
 * next login would write into the victim's spool (issue 14). */
static void
check_journal_dir(const struct config *cfg)
{
	struct stat st;

	if (geteuid() != 0) {
		/* The user's own journals, in a directory of theirs; without
		 * one the session refuses UPDATE (maildrop.c), as before. */
		if (mkdir(cfg->journal_dir, 0700) < 0 && errno != EEXIST)
			log_msg(LOG_ERR, "--journal-dir %s: %m",
				cfg->journal_dir);
		return;
	}
	if (mkdir(cfg->journal_dir, 0711) < 0 && errno != EEXIST)
		fatal("--journal-dir %s: %m", cfg->journal_dir);
	if (lstat(cfg->journal_dir, &st) < 0)
		fatal("--journal-dir %s: %m", cfg->journal_dir);
	if (!S_ISDIR(st.st_mode))
		fatal("--journal-dir %s: not a directory", cfg->journal_dir);
	if (st.st_uid != 0)
		fatal("--journal-dir %s: owned by uid %lu, not root",
		      cfg->journal_dir, (unsigned long)st.st_uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		fatal("--journal-dir %s: writable by group or others "
		      "(mode %04o)",
		      cfg->journal_dir, (unsigned)(st.st_mode & 07777));
	check_parents("--journal-dir", cfg->journal_dir);
}

void
monitor_init(const struct config *cfg)
{
	auth_init();
	/* As root, before anything else: the key may be root's alone. */
	if (cfg->tls_cert != NULL && tls_setup(cfg->tls_cert, cfg->tls_key) < 0)
		fatal("TLS is configured but cannot be set up");
	check_preauth_dir(cfg);
	check_journal_dir(cfg);
	maildrop_check_dir(cfg->mailbox);
}
