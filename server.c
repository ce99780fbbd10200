#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sdsock.h"
#include "sysutil.h"

/* What counts as one source for --max-per-source. */
typedef char source_key[48];

struct child {
	pid_t pid;
	/* "" while a proxied connection's client is not known yet. */
	source_key source;
	int chan; /* to a proxied session until it names its client; else -1 */
};

/* What a proxied session's monitor sends the listener (design.md §13):
 * the client its PROXY header named. One record, one octet back. */
struct source_claim {
	int32_t family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
};

/* The environment variable naming the session's end of that channel. */
#define SOURCE_FD_ENV "POP3D_SOURCE_FD"
#define SOURCE_CLAIM_WAIT_MS 5000

static int source_channel = -1; /* in a proxied session: to the listener */

struct server {
	const struct server_limits *limits;
	char **argv;
	/* This program's argv with --recover added, run after a session
	 * that did not end well (start_recovery); the pid of that run while
	 * it lasts, and whether another session ended so meanwhile. */
	char **recover_argv;
	pid_t recovery;
	bool recover_again;
	struct child *child; /* limits->max_children slots */
	/* What ppoll watches: the listening socket, then the open claim
	 * channels, slot[k] the child of pfd[k + 1]. */
	struct pollfd *pfd;
	unsigned *slot;
	unsigned running;
	sigset_t wait_mask; /* the mask while waiting: signals get in */
};

static volatile sig_atomic_t got_child, got_stop;

static void
on_signal(int sig)
{
	if (sig == SIGCHLD)
		got_child = 1;
	else
		got_stop = 1;
}

/* The whole IPv4 address; the /64 of an IPv6 one; one key for the rest. */
static void
source_of(const struct sockaddr_storage *ss, source_key key)
{
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	const struct sockaddr_in *sin = (const void *)ss;
	struct in6_addr net;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, key, sizeof(source_key));
	} else if (ss->ss_family == AF_INET6 &&
		   IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], key,
			  sizeof(source_key));
	} else if (ss->ss_family == AF_INET6) {
		net = sin6->sin6_addr;
		memset(&net.s6_addr[8], 0, 8);
		inet_ntop(AF_INET6, &net, key, sizeof(source_key));
	} else {
		snprintf(key, sizeof(source_key), "local");
	}
}

static void
source_of_claim(const struct source_claim *c, source_key key)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (void *)&ss;
	struct sockaddr_in6 *sin6 = (void *)&ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)c->family;
	if (c->family == AF_INET)
		memcpy(&sin->sin_addr, c->addr, 4);
	else
		memcpy(&sin6->sin6_addr, c->addr, 16);
	source_of(&ss, key);
}

static unsigned
count_source(const struct server *srv, const source_key key)
{
	unsigned n = 0;

	for (unsigned i = 0; i < srv->limits->max_children; i++)
		if (srv->child[i].pid != 0 &&
		    strcmp(srv->child[i].source, key) == 0)
			n++;
	return n;
}

/* Start the program afresh in the child, as the session is: the same
 * options, the signals as they were at start. */
static void
child_defaults(void)
{
	sigset_t none;

	signal(SIGCHLD, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Neither a session nor a recovery is the service: it must neither
	 * notify systemd nor think it was passed a listening socket. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	unsetenv(SOURCE_FD_ENV);
}

/* A session that was killed (or crashed) inside UPDATE leaves a journal,
 * and every other reader of the spool sees it half rewritten until its
 * user logs in again. The socket units' services run pop3d --recover
 * from ExecStopPost= for that (design.md §4.9); under this listener a
 * session's end stops no unit, so the listener runs it: one at a time,
 * and once more if another session ended so while it ran (its scan may
 * have passed that user already). */
static void
start_recovery(struct server *srv)
{
	pid_t pid;
	int null;

	pid = fork();
	if (pid < 0) {
		log_msg(LOG_ERR, "fork for pop3d --recover: %m");
		return; /* tried again when the next child ends */
	}
	if (pid == 0) {
		child_defaults();
		/* stdin is the listening socket under inetd "wait" */
		null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null < 0 || dup2(null, STDIN_FILENO) < 0 ||
		    dup2(null, STDOUT_FILENO) < 0)
			_exit(127);
		execv("/proc/self/exe", srv->recover_argv);
		log_msg(LOG_ERR, "exec /proc/self/exe --recover: %m");
		_exit(127);
	}
	srv->recovery = pid;
	srv->recover_again = false;
}

static void
session_ended(struct server *srv, unsigned i, int status)
{
	struct child *c = &srv->child[i];

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (WIFSIGNALED(status))
			log_msg(LOG_WARNING,
				"session %ld killed by signal %d: running %s",
				(long)c->pid, WTERMSIG(status),
				"pop3d --recover");
		else
			log_msg(LOG_WARNING,
				"session %ld exited with status %d: running %s",
				(long)c->pid, WEXITSTATUS(status),
				"pop3d --recover");
		srv->recover_again = true;
	}
	c->pid = 0;
	if (c->chan >= 0)
		close(c->chan);
	c->chan = -1;
	srv->running--;
}

static void
reap(struct server *srv)
{
	int status;
	pid_t pid;

	got_child = 0;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == srv->recovery) {
			srv->recovery = 0;
			continue;
		}
		for (unsigned i = 0; i < srv->limits->max_children; i++)
			if (srv->child[i].pid == pid) {
				session_ended(srv, i, status);
				break;
			}
	}
	if (srv->recover_again && srv->recovery == 0)
		start_recovery(srv);
}

/* In the child: become an inetd-style pop3d on this connection. */
static void __attribute__((noreturn))
exec_session(struct server *srv, int conn, int chan)
{
	char num[16];

	child_defaults();
	if (dup2(conn, STDIN_FILENO) < 0 || dup2(conn, STDOUT_FILENO) < 0)
		_exit(127);
	if (conn > STDOUT_FILENO)
		close(conn);
	if (chan >= 0) {
		/* Kept across exec: the session's monitor answers on it. */
		if (fcntl(chan, F_SETFD, 0) < 0)
			_exit(127);
		snprintf(num, sizeof(num), "%d", chan);
		setenv(SOURCE_FD_ENV, num, 1);
	}
	execv("/proc/self/exe", srv->argv);
	log_msg(LOG_ERR, "exec /proc/self/exe: %m");
	_exit(127);
}

/* proxied: a --proxy-from connection, whose source is not known yet. */
static void
start_session(struct server *srv, int conn, const source_key source,
	      bool proxied)
{
	unsigned slot = 0;
	int sv[2] = {-1, -1};
	pid_t pid;

	while (srv->child[slot].pid != 0)
		slot++; /* a free slot exists: running < max_children */
	if (proxied &&
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_msg(LOG_ERR, "socketpair: %m");
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_msg(LOG_ERR, "fork: %m");
		if (proxied) {
			close(sv[0]);
			close(sv[1]);
		}
		return;
	}
	if (pid == 0) {
		if (proxied)
			close(sv[0]);
		exec_session(srv, conn, sv[1]);
	}
	if (proxied)
		close(sv[1]);
	srv->child[slot].pid = pid;
	srv->child[slot].chan = sv[0];
	snprintf(srv->child[slot].source, sizeof(source_key), "%s", source);
	srv->running++;
}

/* A proxied session names its client: count it there, or refuse it if
 * that client has --max-per-source sessions already. One claim per
 * session; then the channel closes. */
static void
answer_claim(struct server *srv, struct child *c)
{
	struct source_claim claim;
	source_key key;
	unsigned char yes = 0;
	ssize_t n;

	n = recv(c->chan, &claim, sizeof(claim), MSG_DONTWAIT | MSG_TRUNC);
	if (n == sizeof(claim) &&
	    (claim.family == AF_INET || claim.family == AF_INET6)) {
		source_of_claim(&claim, key);
		if (count_source(srv, key) >= srv->limits->max_per_source) {
			log_msg(LOG_WARNING,
				"connection from %s refused: %u sessions "
				"already (--max-per-source)",
				key, srv->limits->max_per_source);
		} else {
			snprintf(c->source, sizeof(source_key), "%s", key);
			yes = 1;
		}
		(void)send(c->chan, &yes, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	} else if (n < 0 && errno == EAGAIN) {
		return;
	}
	close(c->chan);
	c->chan = -1;
}

static void
accept_one(struct server *srv, int listen_fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	source_key source;
	struct peer p;
	int conn;

	memset(&ss, 0, sizeof(ss));
	conn = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	if (conn < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_msg(LOG_ERR, "accept: %m");
			/* Back off instead of spinning on the same error. */
			sys_sleep_ms(100);
		}
		return;
	}
	source_of(&ss, source);
	/* An address it cannot classify stays AF_UNSPEC: never listed. */
	(void)peer_classify((const struct sockaddr *)&ss, len, &p);
	if (peer_in_nets(&p, srv->limits->proxy_from,
			 srv->limits->n_proxy_from)) {
		/* Counted once its header names the client. */
		source[0] = '\0';
		start_session(srv, conn, source, true);
	} else if (count_source(srv, source) >= srv->limits->max_per_source) {
		log_msg(LOG_WARNING,
			"connection from %s refused: %u sessions already "
			"(--max-per-source)",
			source, srv->limits->max_per_source);
	} else {
		start_session(srv, conn, source, false);
	}
	close(conn);
}

/* Fill srv->pfd; returns how many entries. At the limit the listening
 * socket is left out (fd -1): new connections wait in the kernel's
 * backlog until a session ends. Only proxied sessions that have not
 * named their client yet have a channel open, so this stays short. */
static nfds_t
watch(struct server *srv, int listen_fd)
{
	nfds_t n = 1;

	srv->pfd[0].fd =
		srv->running < srv->limits->max_children ? listen_fd : -1;
	srv->pfd[0].events = POLLIN;
	for (unsigned i = 0; i < srv->limits->max_children; i++) {
		if (srv->child[i].pid == 0 || srv->child[i].chan < 0)
			continue;
		srv->pfd[n].fd = srv->child[i].chan;
		srv->pfd[n].events = POLLIN;
		srv->slot[n - 1] = i;
		n++;
	}
	return n;
}

static void
install_handlers(struct server *srv)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* Signals are only let in while waiting in ppoll, so none is lost
	 * between a check of the flags and the wait. */
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &srv->wait_mask);
	sigdelset(&srv->wait_mask, SIGCHLD);
	sigdelset(&srv->wait_mask, SIGTERM);
	sigdelset(&srv->wait_mask, SIGINT);
	sigdelset(&srv->wait_mask, SIGHUP);
}

int
server_run(int listen_fd, const struct server_limits *limits, char **argv)
{
	struct server srv = {.limits = limits, .argv = argv};
	int argc = 0, flags, r;
	nfds_t n;

	while (argv[argc] != NULL)
		argc++;
	srv.child = calloc(limits->max_children, sizeof(*srv.child));
	srv.pfd = calloc(limits->max_children + 1, sizeof(*srv.pfd));
	srv.slot = calloc(limits->max_children, sizeof(*srv.slot));
	srv.recover_argv = calloc((size_t)argc + 2, sizeof(char *));
	if (srv.child == NULL || srv.pfd == NULL || srv.slot == NULL ||
	    srv.recover_argv == NULL)
		fatal("out of memory");
	memcpy(srv.recover_argv, argv, (size_t)argc * sizeof(char *));
	srv.recover_argv[argc] = "--recover";
	for (unsigned i = 0; i < limits->max_children; i++)
		srv.child[i].chan = -1;
	/* poll said readable, but the client may be gone by accept(). */
	flags = fcntl(listen_fd, F_GETFL);
	if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) < 0)
		fatal("listening socket: %m");
	install_handlers(&srv);
	log_msg(LOG_INFO, "accepting connections (at most %u, %u per source)",
		limits->max_children, limits->max_per_source);
	(void)sdsock_notify("READY=1\nSTATUS=accepting connections");
	while (!got_stop) {
		if (got_child)
			reap(&srv);
		n = watch(&srv, listen_fd);
		r = ppoll(srv.pfd, n, NULL, &srv.wait_mask);
		if (r < 0 && errno != EINTR)
			fatal("ppoll: %m");
		if (r <= 0)
			continue;
		for (nfds_t k = 1; k < n; k++)
			if (srv.pfd[k].revents != 0)
				answer_claim(&srv, &srv.child[srv.slot[k - 1]]);
		if (srv.pfd[0].revents & POLLIN)
			accept_one(&srv, listen_fd);
	}
	(void)sdsock_notify("STOPPING=1");
	log_msg(LOG_INFO, "stopping; %u sessions still running", srv.running);
	free(srv.child);
	free(srv.pfd);
	free(srv.slot);
	free(srv.recover_argv);
	return 0;
}

void
server_take_channel(void)
{
	const char *v = getenv(SOURCE_FD_ENV);
	struct stat st;
	char *end;
	long fd;

	if (v == NULL)
		return;
	errno = 0;
	fd = strtol(v, &end, 10);
	/* Only ever set by our own listener; anything else is ignored
	 * rather than trusted as a descriptor. */
	if (errno == 0 && *v >= '0' && *v <= '9' && *end == '\0' &&
	    fd > STDERR_FILENO && fd < INT_MAX && fstat((int)fd, &st) == 0 &&
	    S_ISSOCK(st.st_mode) && fcntl((int)fd, F_SETFD, FD_CLOEXEC) == 0)
		source_channel = (int)fd;
	unsetenv(SOURCE_FD_ENV);
}

void
server_forget_channel(void)
{
	if (source_channel >= 0)
		close(source_channel);
	source_channel = -1;
}

int
server_claim_source(const struct peer *p)
{
	struct source_claim claim;
	struct pollfd pfd;
	unsigned char yes = 0;
	int ok;

	if (source_channel < 0)
		return 0; /* inetd, Accept=yes: no per-source limit here */
	memset(&claim, 0, sizeof(claim));
	claim.family = p->family;
	memcpy(claim.addr, p->bin, sizeof(claim.addr));
	pfd.fd = source_channel;
	pfd.events = POLLIN;
	ok = send(source_channel, &claim, sizeof(claim), MSG_NOSIGNAL) ==
		     (ssize_t)sizeof(claim) &&
	     sys_poll(&pfd, 1, SOURCE_CLAIM_WAIT_MS) > 0 &&
	     recv(source_channel, &yes, 1, MSG_DONTWAIT) == 1 && yes == 1;
	server_forget_channel();
	return ok ? 0 : -1;
}
