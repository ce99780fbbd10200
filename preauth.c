/* The pre-auth process (design.md §2): the part of pop3d that parses
 * what an unauthenticated client sends. The monitor (monitor.c) forks it
 * for each connection; it starts as root only long enough to confine
 * itself:
 *
 *   as root     confine(): look up --preauth-user (pop3d, else nobody),
 *               chroot to the empty --preauth-dir, drop to that user
 *               for good, set no_new_privs.
 *   as pop3d    the greeting (unless the monitor wrote it before the
 *               fork: design.md §2), CAPA, STLS or implicit TLS, USER/PASS
 *               and AUTH: session_authorize (session.c, session_auth.c) with
 *               command.c, sasl.c, netio.c and tls.c. Each login goes to
 *               the monitor as a fixed-size record (ask_monitor); only a
 *               verdict comes back. After a login, hand_off gives the
 *               monitor the connection and the input read ahead, and the
 *               process exits; under TLS it stays on as the relay
 *               (relay.c) between the client and the session.
 *
 * It never runs PAM (auth.h cannot be included here), never learns more
 * of a user than the verdict, and never sees the mail. It has no log
 * channel either: the syslog socket and stderr are gone before the
 * chroot (where /dev/log does not exist), and its lines reach the log
 * as records to the monitor (log_to_monitor). Not started as
 * root: the same, minus the chroot and the user change. */
#include "preauth.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "netio.h"
#include "params.h"
#include "privsep_msg.h"
#include "proxyproto.h"
#include "relay.h"
#include "session.h"
#include "sysutil.h"
#include "tls.h"

struct preauth {
	int sock; /* to the monitor; -1 once the relay has closed it */
};

/* design.md §7: this process has no log channel of its own. Its lines
 * go to the monitor, which logs them prefixed: whatever a client makes
 * of this process cannot write a line that passes for the monitor's. */
static void
log_to_monitor(void *ctx, int priority, const char *text)
{
	const struct preauth *pa = ctx;
	static struct msg_log m;

	if (pa->sock < 0)
		return; /* the relay: nobody to log to */
	memset(&m, 0, sizeof(m));
	m.type = MSG_LOG;
	m.priority = priority;
	snprintf(m.text, sizeof(m.text), "%s", text);
	(void)privsep_send(pa->sock, &m, sizeof(m), NULL, 0);
}

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
	n = privsep_send(pa->sock, &m, sizeof(m), NULL, 0);
	explicit_bzero(&m, sizeof(m));
	if (n < 0)
		fatal("pre-auth: monitor gone");
	n = privsep_recv(pa->sock, &v, NULL, &nfds);
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
		/* The uid change reset the flag to fs.suid_dumpable: each
		 * pre-auth process holds a client's password for a while,
		 * and all of them share one uid. */
		if (sys_undumpable() < 0)
			fatal("pre-auth privilege drop: still dumpable");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fatal("no_new_privs: %m");
}

/* design.md §13: a --proxy-from connection starts with a PROXY header,
 * read here, unprivileged, before any POP3 octet (PROXY-01). The client
 * it names goes to the monitor, which may refuse it (--max-per-source);
 * then it is *peer, here and there. A health check (LOCAL, UNKNOWN)
 * stays the balancer's connection, but never local (DEC-24). */
static void
take_header(struct preauth *pa, int fd, struct peer *peer)
{
	struct proxy_header h;
	struct msg_peer m;
	union msg v;
	int nfds;
	ssize_t n;

	if (proxy_read(fd, PROXY_HEADER_TIMEOUT_MS, &h) < 0) {
		log_msg(LOG_WARNING, "PROXY header from %s refused: %s",
			peer->addr, h.why);
		_exit(0);
	}
	memset(&m, 0, sizeof(m));
	m.type = MSG_PEER;
	m.family = h.command == PROXY_CMD_LOCAL ? AF_UNSPEC : h.family;
	memcpy(m.addr, h.src, sizeof(m.addr));
	if (privsep_send(pa->sock, &m, sizeof(m), NULL, 0) < 0)
		fatal("pre-auth: monitor gone");
	n = privsep_recv(pa->sock, &v, NULL, &nfds);
	if (n != sizeof(v.verdict) || v.type != MSG_VERDICT ||
	    v.verdict.verdict != AUTH_OK)
		_exit(0); /* refused, and logged, by the monitor */
	if (h.command == PROXY_CMD_LOCAL)
		peer->local = false;
	else
		peer_from_octets(h.family, h.src, peer);
}

/* Give the monitor the connection and the input read ahead. Without TLS
 * that is the client's descriptors, and we are done; under TLS, one end
 * of a socketpair, and we relay. */
static void __attribute__((noreturn))
hand_off(const struct config *cfg, struct preauth *pa, struct netio *io,
	 const struct session_mode *mode)
{
	static struct msg_handoff h;
	bool tls = mode->tls;
	int fds[2], sp[2];

	h.type = MSG_HANDOFF;
	h.tls = tls;
	h.utf8 = mode->utf8;
	h.lang = mode->lang;
	h.len = net_take_input(io, h.input, sizeof(h.input));
	if (!tls) {
		fds[0] = io->in_fd;
		fds[1] = io->out_fd;
		if (privsep_send(pa->sock, &h, sizeof(h), fds, 2) < 0)
			fatal("pre-auth: handoff failed: %m");
		explicit_bzero(&h, sizeof(h));
		_exit(0);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		fatal("socketpair: %m");
	fds[0] = fds[1] = sp[1];
	if (privsep_send(pa->sock, &h, sizeof(h), fds, 2) < 0)
		fatal("pre-auth: handoff failed: %m");
	explicit_bzero(&h, sizeof(h));
	close(sp[1]);
	close(pa->sock);
	pa->sock = -1;
	/* The session's own timeouts end it, and it closes its end; the
	 * relay's limit then bounds the draining of its last output to a
	 * client that stopped reading. */
	relay_run(io->tls, io->in_fd, io->out_fd, sp[0],
		  io->timeout_ms + RELAY_GRACE_MS);
	tls_close(io->tls);
	_exit(0);
}

void
preauth_run(const struct config *cfg, const struct peer *peer, int in_fd,
	    int out_fd, int sock, bool greeted)
{
	static struct netio io;
	struct preauth pa = {sock};
	struct session_hooks hooks = {ask_monitor, &pa};
	struct peer client = *peer;
	struct session_mode mode;

	/* Before the chroot: /dev/null is not there. */
	if (log_detach(log_to_monitor, &pa) < 0)
		fatal("pre-auth: /dev/null: %m");
	confine(cfg);
	/* Nothing but the client and the monitor's socket: not what NSS
	 * opened for the getpwnam above, nor anything inherited. */
	if (sys_close_others((int[]){in_fd, out_fd, sock}, 3) < 0)
		fatal("pre-auth: close_range: %m");
	if (peer->proxied) {
		take_header(&pa, in_fd, &client);
	} else if (peer->family != AF_UNSPEC && proxy_sniff(in_fd)) {
		/* PROXY-11: a balancer not in --proxy-from (or pop3d
		 * without it): its clients must not pass for it. Only IP
		 * peers are judged: a peer already gone (HAProxy's layer-4
		 * check resets right after its header) has no address to
		 * name, and --proxy-from lists IP balancers only. The
		 * monitor has greeted such a connection already (it reads
		 * nothing, so it cannot know): the refusal is the close
		 * that follows, before any reply (design.md §13). */
		log_msg(LOG_WARNING,
			"PROXY header from %s refused: not in --proxy-from",
			peer->addr);
		_exit(0);
	}
	net_init(&io, in_fd, out_fd, cfg->timeout);
	if (session_authorize(cfg, &client, &io, &hooks, greeted, &mode) ==
	    SESSION_LOGGED_IN)
		hand_off(cfg, &pa, &io, &mode);
	if (io.tls != NULL)
		tls_close(io.tls); /* close_notify after QUIT (R8314-04) */
	_exit(0);
}
