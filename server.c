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
#include <sys/socket.h>
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
	source_key source;
};

struct server {
	const struct server_limits *limits;
	char **argv;
	struct child *child; /* limits->max_children slots */
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

static void
reap(struct server *srv)
{
	pid_t pid;

	got_child = 0;
	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
		for (unsigned i = 0; i < srv->limits->max_children; i++)
			if (srv->child[i].pid == pid) {
				srv->child[i].pid = 0;
				srv->running--;
				break;
			}
}

/* In the child: become an inetd-style pop3d on this connection. */
static void __attribute__((noreturn)) exec_session(struct server *srv, int conn)
{
	sigset_t none;

	signal(SIGCHLD, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(conn, STDIN_FILENO) < 0 || dup2(conn, STDOUT_FILENO) < 0)
		_exit(127);
	if (conn > STDOUT_FILENO)
		close(conn);
	/* The session is not the service: it must neither notify systemd
	 * nor think it was passed a listening socket. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	execv("/proc/self/exe", srv->argv);
	log_msg(LOG_ERR, "exec /proc/self/exe: %m");
	_exit(127);
}

static void
start_session(struct server *srv, int conn, const source_key source)
{
	unsigned slot = 0;
	pid_t pid;

	while (srv->child[slot].pid != 0)
		slot++; /* a free slot exists: running < max_children */
	pid = fork();
	if (pid < 0) {
		log_msg(LOG_ERR, "fork: %m");
		return;
	}
	if (pid == 0)
		exec_session(srv, conn);
	srv->child[slot].pid = pid;
	snprintf(srv->child[slot].source, sizeof(source_key), "%s", source);
	srv->running++;
}

static void
accept_one(struct server *srv, int listen_fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	source_key source;
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
	if (count_source(srv, source) >= srv->limits->max_per_source) {
		log_msg(LOG_WARNING,
			"connection from %s refused: %u sessions already "
			"(--max-per-source)",
			source, srv->limits->max_per_source);
	} else {
		start_session(srv, conn, source);
	}
	close(conn);
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
	struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
	int flags, r;

	srv.child = calloc(limits->max_children, sizeof(*srv.child));
	if (srv.child == NULL)
		fatal("out of memory");
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
		/* At the limit, wait for a session to end before accepting:
		 * new connections queue in the kernel's backlog. */
		r = ppoll(&pfd, srv.running < limits->max_children ? 1 : 0,
			  NULL, &srv.wait_mask);
		if (r > 0 && (pfd.revents & POLLIN))
			accept_one(&srv, listen_fd);
		else if (r < 0 && errno != EINTR)
			fatal("ppoll: %m");
	}
	(void)sdsock_notify("STOPPING=1");
	log_msg(LOG_INFO, "stopping; %u sessions still running", srv.running);
	free(srv.child);
	return 0;
}
