/* libFuzzer: the protocol engine (session.c, session_auth.c,
 * session_trans.c, command.c, netio.c) on arbitrary client byte streams,
 * in every state: AUTHORIZATION as the pre-auth process runs it, with a
 * stub verdict for credentials, then, after a login, the handoff as
 * preauth.c does it and TRANSACTION/UPDATE over a small spool of the
 * awkward kinds.
 *
 * Input: a flag byte, then what the client sends.
 *   flags bit 0: the peer is remote and cleartext is not allowed (USER,
 *                PASS and AUTH PLAIN/LOGIN are refused without TLS);
 *   flags bits 1-2: the spool: 0 the awkward one below, 1 an empty file,
 *                2 none at all, 3 a file that is not mbox (the login is
 *                refused with [SYS/PERM]);
 *   flags bit 3: --login-delay=1, --expire=NEVER and
 *                --capa-implementation (the record left by one input
 *                refuses the next one's login for a second).
 *
 * The client's bytes come from a regular file (poll says readable, read
 * says EOF at the end: nothing ever waits); replies go to another file.
 * The stub verdict: AUTH_OK only for alice / secret (authzid empty or
 * alice), AUTH_TEMPFAIL for user "temp", AUTH_PERMFAIL for "perm",
 * AUTH_FAILED otherwise; no delay (that lives in the monitor).
 *
 * Checks:
 *   - every request the engine sends for a verdict is one the monitor
 *     accepts (privsep_check_record), with the TLS flag as it is, and no
 *     request comes after AUTH_FAILS_MAX failures;
 *   - a login is announced only after an AUTH_OK verdict; the handoff
 *     record (with the UTF8 flag and the LANG chosen) is one the monitor
 *     accepts and its input fits; the pre-auth
 *     input buffer is all zeros after it;
 *   - both input buffers hold nothing but the unread input: every line
 *     handed out (a PASS or AUTH line among them) was wiped;
 *   - every octet written is in CRLF lines of at most REPLY_LINE_MAX
 *     octets (the spool's lines are shorter), starting with the greeting;
 *   - afterwards the spool is still mbox, holds only messages it held
 *     before (same ids, sizes), and UPDATE left no journal or dotlock. */
#include "fuzz.h"

#include <dirent.h>

#include "log.h"
#include "logindelay.h"
#include "maildrop.h"
#include "netio.h"
#include "privsep_msg.h"
#include "session.h"

/* The awkward spool: dot lines, CRLF, a duplicate (uid suffix), an
 * X-UIDL, an empty message, headers only, no final newline. */
static const char spool_text[] =
	"From alice@example.org Mon Jan  1 10:00:00 2024\n"
	"Received: by mx.example.net; Mon, 1 Jan 2024 10:00:00 +0000\n"
	"Message-ID: <one@example.org>\n"
	"Subject: dots\n"
	"\n"
	".hidden\n"
	"..two\n"
	".\n"
	">From the start of a line\n"
	"\n"
	"From bob@example.org Tue Jan  2 11:00:00 2024\r\n"
	"Received: by mx.example.net; Tue, 2 Jan 2024 11:00:00 +0000\r\n"
	"Subject: CRLF\r\n"
	"\r\n"
	"crlf body\r\n"
	".\r\n"
	"\r\n"
	"From alice@example.org Mon Jan  1 10:00:00 2024\n"
	"Received: by mx.example.net; Mon, 1 Jan 2024 10:00:00 +0000\n"
	"Message-ID: <one@example.org>\n"
	"Subject: dots\n"
	"\n"
	".hidden\n"
	"..two\n"
	".\n"
	">From the start of a line\n"
	"\n"
	"From carol@example.org Wed Jan  3 09:15:00 2024\n"
	"X-UIDL: qpopper-0001\n"
	"Status: RO\n"
	"Subject: migrated\n"
	"\n"
	"body\n"
	"\n"
	"From dave@example.org Thu Jan  4 08:00:00 2024\n"
	"\n"
	"From erin@example.org Fri Jan  5 07:45:00 2024\n"
	"Received: by mx.example.net; Fri, 5 Jan 2024 07:45:00 +0000\n"
	"Subject: headers only, no final newline";

#define SPOOL_MESSAGES 6

static const char not_mbox[] = "Received: by mx.example.net\n\nno From_ line\n";

static char dir_in[300], dir_out[300], spool[300], jdir[300], udir[300];
static char pattern[300];
static char *orig_uid[SPOOL_MESSAGES];
static uint64_t orig_size[SPOOL_MESSAGES];

static struct config cfg = {
	.pam_service = "pop3",
	.timeout = 1,
	.preauth_timeout = PREAUTH_TIMEOUT_DEFAULT,
	.min_uid = 0,
	.log = LOG_TO_STDERR,
	.max_messages = MAILDROP_MESSAGES_MAX_DEFAULT,
	.max_size = MAILDROP_SIZE_MAX_DEFAULT,
};
static struct peer peer = {.addr = "fuzz", .local = true};

struct stub {
	int calls, failures;
	bool ok;
	char method[AUTH_METHOD_SIZE];
};

static enum auth_verdict
stub_login(void *ctx, struct auth_request *req)
{
	struct stub *st = ctx;
	struct msg_login m = {.type = MSG_LOGIN, .req = *req};

	st->calls++;
	check(st->failures < AUTH_FAILS_MAX,
	      "a login after %d failed ones reached the monitor", st->failures);
	check(!st->ok, "a login after a successful one");
	check(privsep_check_record((const union msg *)&m, sizeof(m), 0,
				   false) == MSG_LOGIN,
	      "the monitor would refuse the engine's request (user \"%.20s\" "
	      "method \"%.7s\")",
	      memchr(req->user, 0, sizeof(req->user)) ? req->user : "?",
	      memchr(req->method, 0, sizeof(req->method)) ? req->method : "?");
	check(req->tls == 0, "tls flag %u without TLS", req->tls);
	explicit_bzero(&m, sizeof(m));
	snprintf(st->method, sizeof(st->method), "%s", req->method);
	if (strcmp(req->user, "temp") == 0)
		return st->failures++, AUTH_TEMPFAIL;
	if (strcmp(req->user, "perm") == 0)
		return st->failures++, AUTH_PERMFAIL;
	if (strcmp(req->user, "alice") == 0 &&
	    strcmp(req->password, "secret") == 0 &&
	    (req->authzid[0] == '\0' || strcmp(req->authzid, "alice") == 0)) {
		st->ok = true;
		return AUTH_OK;
	}
	st->failures++;
	return AUTH_FAILED;
}

/* netio wipes every line it hands out (it may be a PASS or AUTH line):
 * nothing but the unread input may be left in the buffer. */
static void
check_wiped(const struct netio *io, const char *which)
{
	for (size_t i = 0; i < sizeof(io->in); i++)
		if (i < io->in_start || i >= io->in_start + io->in_len)
			check(io->in[i] == '\0',
			      "%s input buffer: octet %zu (%#x) not wiped, "
			      "unread input is [%zu, %zu)",
			      which, i, (unsigned char)io->in[i], io->in_start,
			      io->in_start + io->in_len);
}

static void
check_output(void)
{
	struct fbuf out = {0};
	size_t at = 0;

	read_file(dir_out, &out);
	check(out.len >= 17 && memcmp(out.p, "+OK pop3d ready\r\n", 17) == 0,
	      "no greeting");
	while (at < out.len) {
		const char *lf = memchr(out.p + at, '\n', out.len - at);
		size_t e;

		check(lf != NULL, "output ends inside a line");
		e = lf - out.p + 1;
		check(e - at >= 2 && lf[-1] == '\r', "bare LF in the output");
		check(e - at <= REPLY_LINE_MAX, "a %zu-octet output line",
		      e - at);
		at = e;
	}
	fbuf_free(&out);
}

static void
check_spool_after(int variant)
{
	struct md_limits limits = {
		.max_messages = MAILDROP_MESSAGES_MAX_DEFAULT,
		.max_size = MAILDROP_SIZE_MAX_DEFAULT,
		.journal_dir = NULL,
	};
	struct maildrop *md;
	char lock[400];
	struct dirent *e;
	size_t j = 0;
	DIR *d;

	snprintf(lock, sizeof(lock), "%s.lock", spool);
	check(access(lock, F_OK) < 0, "dotlock left behind");
	d = opendir(udir);
	check(d != NULL, "%s: %s", udir, strerror(errno));
	while ((e = readdir(d)) != NULL)
		check(e->d_name[0] == '.' ||
			      strcmp(e->d_name, LOGINDELAY_FILE) == 0 ||
			      fuzz_session_lock_file(e->d_name),
		      "journal %s left behind", e->d_name);
	closedir(d);
	if (variant == 2) {
		check(access(spool, F_OK) < 0, "a missing spool was created");
		return;
	}
	if (variant == 3) {
		struct fbuf b = {0};

		read_file(spool, &b);
		check(bytes_eq(b.p, b.len, not_mbox, sizeof(not_mbox) - 1),
		      "a spool that is not mbox was changed");
		fbuf_free(&b);
		return;
	}
	check(maildrop_open(spool, getuid(), &limits, &md) == MD_OK,
	      "the spool is no longer a maildrop");
	if (variant == 1)
		check(maildrop_count(md) == 0, "the empty spool grew");
	/* The messages left are some of the old ones, in order. */
	for (size_t i = 0; i < maildrop_count(md); i++) {
		const char *u = maildrop_uid(md, i);

		/* A suffix may go when its duplicate was deleted. */
		while (j < SPOOL_MESSAGES &&
		       strncmp(orig_uid[j], u, strlen(u)) != 0)
			j++;
		check(j < SPOOL_MESSAGES,
		      "message %zu (uid %s) was not in the spool", i + 1, u);
		check(maildrop_size(md, i) == orig_size[j],
		      "message %zu changed size", i + 1);
		j++;
	}
	maildrop_close(md);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct md_limits limits = {
		.max_messages = MAILDROP_MESSAGES_MAX_DEFAULT,
		.max_size = MAILDROP_SIZE_MAX_DEFAULT,
		.journal_dir = NULL,
	};
	const char *dir = fuzz_dir_init("session");
	struct maildrop *md;

	log_init(LOG_TO_STDERR);
	snprintf(dir_in, sizeof(dir_in), "%s/input", dir);
	snprintf(dir_out, sizeof(dir_out), "%s/output", dir);
	snprintf(spool, sizeof(spool), "%s/alice.mbox", dir);
	snprintf(pattern, sizeof(pattern), "%s/%%u.mbox", dir);
	snprintf(jdir, sizeof(jdir), "%s/journal", dir);
	snprintf(udir, sizeof(udir), "%s/%lu", jdir, (unsigned long)getuid());
	check(mkdir(jdir, 0711) == 0 && mkdir(udir, 0700) == 0, "%s: %s", udir,
	      strerror(errno));
	cfg.mailbox = pattern;
	cfg.journal_dir = jdir;

	write_file(spool, spool_text, sizeof(spool_text) - 1);
	check(maildrop_open(spool, getuid(), &limits, &md) == MD_OK &&
		      maildrop_count(md) == SPOOL_MESSAGES,
	      "the spool does not parse");
	for (size_t i = 0; i < SPOOL_MESSAGES; i++) {
		orig_uid[i] = strdup(maildrop_uid(md, i));
		orig_size[i] = maildrop_size(md, i);
		check(orig_uid[i] != NULL, "out of memory");
	}
	maildrop_close(md);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct netio io, io2;
	static struct msg_handoff h;
	struct stub st = {0};
	struct session_hooks hooks = {stub_login, &st};
	struct auth_user who = {.name = "alice"};
	enum session_end end;
	struct session_mode mode;
	int in_fd, out_fd, variant;

	if (size < 1)
		return 0;
	variant = data[0] >> 1 & 3;
	peer.local = !(data[0] & 1);
	cfg.allow_plaintext = false;
	cfg.login_delay = data[0] & 8 ? 1 : 0;
	cfg.expire = data[0] & 8 ? EXPIRE_NEVER : EXPIRE_UNSET;
	cfg.capa_implementation = data[0] & 8;

	(void)unlink(spool);
	if (variant == 0)
		write_file(spool, spool_text, sizeof(spool_text) - 1);
	else if (variant == 1)
		write_file(spool, "", 0);
	else if (variant == 3)
		write_file(spool, not_mbox, sizeof(not_mbox) - 1);
	write_file(dir_in, data + 1, size - 1);
	in_fd = open(dir_in, O_RDONLY | O_CLOEXEC);
	out_fd = open(dir_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	check(in_fd >= 0 && out_fd >= 0, "open: %s", strerror(errno));

	/* Fresh buffers, as in a new process (net_init keeps them). */
	memset(&io, 0, sizeof(io));
	memset(&io2, 0, sizeof(io2));
	net_init(&io, in_fd, out_fd, cfg.timeout);
	end = session_authorize(&cfg, &peer, &io, &hooks, false, &mode);
	check(end == SESSION_ENDED || end == SESSION_LOGGED_IN,
	      "session_authorize returned %d", end);
	check((end == SESSION_LOGGED_IN) == st.ok,
	      "logged in: %d, verdict AUTH_OK: %d", end == SESSION_LOGGED_IN,
	      st.ok);
	check(!mode.tls, "TLS active without TLS");
	check_wiped(&io, "pre-auth");
	if (end == SESSION_LOGGED_IN) {
		/* preauth.c: hand_off, then monitor.c: run_session. */
		h.type = MSG_HANDOFF;
		h.tls = mode.tls;
		h.utf8 = mode.utf8;
		h.lang = mode.lang;
		h.len = net_take_input(&io, h.input, sizeof(h.input));
		check(io.in_len == 0, "input left after the handoff");
		check_wiped(&io, "pre-auth, after the handoff,");
		check(privsep_check_record((const union msg *)&h, sizeof(h), 2,
					   true) == MSG_HANDOFF,
		      "the monitor would refuse the handoff");
		who.uid = getuid();
		who.gid = getgid();
		snprintf(who.home, sizeof(who.home), "%s", fuzz_dir);
		net_init(&io2, in_fd, out_fd, cfg.timeout);
		check(net_preload(&io2, h.input, h.len) == 0,
		      "handoff: input does not fit");
		/* monitor.c: run_session takes the mode from the record. */
		mode = (struct session_mode){h.tls, h.utf8, h.lang};
		explicit_bzero(&h, sizeof(h));
		session_transact(&cfg, &peer, &io2, &who, st.method, &mode);
		check_wiped(&io2, "session");
	}
	close(in_fd);
	close(out_fd);
	check_output();
	check_spool_after(variant);
	return 0;
}
