/* pop3d: serve one POP3 connection on stdin/stdout (inetd, or systemd
 * with Accept=yes and StandardInput=socket), on a connected socket passed
 * by systemd (Accept=yes), or accept connections on a listening socket
 * passed by systemd (Accept=no), authenticating through PAM and working
 * on the user's mbox spool. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "command.h"
#include "config.h"
#include "log.h"
#include "maildrop.h"
#include "lang.h"
#include "monitor.h"
#include "peer.h"
#include "params.h"
#include "recover.h"
#include "sdsock.h"
#include "server.h"
#include "tls.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: pop3d [options]\n"
		"Serve one POP3 session on standard input and output, on a\n"
		"socket passed by systemd, or every connection to a listening\n"
		"socket passed by systemd (Accept=no).\n\n"
		"  --mailbox=PATTERN    spool path; %%u user, %%h home "
		"(default /var/mail/%%u)\n"
		"  --pam-service=NAME   PAM service (default pop3)\n"
		"  --timeout=SECONDS    idle timeout (default %d)\n"
		"  --min-uid=N          lowest uid that may log in "
		"(default %d)\n"
		"  --allow-plaintext    accept USER/PASS on non-local "
		"connections without TLS\n"
		"  --log=syslog|stderr  where log lines go (default syslog)\n"
		"  --max-messages=N     refuse larger maildrops "
		"(default %lu)\n"
		"  --max-size=BYTES     refuse larger spool files "
		"(default %llu)\n"
		"  --max-children=N     Accept=no: sessions at once "
		"(default %d)\n"
		"  --max-per-source=N   Accept=no: sessions per client "
		"address (default %d)\n"
		"  --tls-cert=FILE      certificate chain (PEM): offer STLS\n"
		"  --tls-key=FILE       its private key (default: in the "
		"--tls-cert file)\n"
		"  --tls-implicit       TLS from the first octet (port 995)\n"
		"  --preauth-user=NAME  runs the pre-login process "
		"(default pop3d)\n"
		"  --preauth-dir=DIR    its empty chroot "
		"(default /var/lib/pop3d/empty)\n"
		"  --journal-dir=DIR    UPDATE's crash recovery journals "
		"(default /var/lib/pop3d/journal)\n"
		"  --shared-spool       other hosts serve the spools too "
		"(automatic on NFS and SMB):\n"
		"                       session lock beside the journal, "
		"dotlocks stale by age\n"
		"  --preauth-timeout=S  most seconds before login "
		"(default %d)\n"
		"  --login-delay=S      least seconds between a user's "
		"logins, announced\n"
		"                       as LOGIN-DELAY (default 0: none)\n"
		"  --expire=DAYS|NEVER  the EXPIRE policy CAPA announces "
		"(default: none)\n"
		"  --capa-implementation\n"
		"                       list IMPLEMENTATION pop3d-VERSION in "
		"CAPA\n"
		"  --proxy-from=CIDR[,CIDR...]\n"
		"                       connections from these balancers "
		"start with a PROXY\n"
		"                       header (v1 or v2) naming the client\n"
		"  --language=TAG       the language LANG * picks "
		"(default en)\n"
		"  --recover[=USER]     finish the UPDATEs that a crash "
		"interrupted, for\n"
		"                       every user or one, then exit\n"
		"  --version            print the version and exit\n"
		"  --help               print this help and exit\n",
		IDLE_TIMEOUT_DEFAULT, MIN_UID_DEFAULT,
		MAILDROP_MESSAGES_MAX_DEFAULT,
		(unsigned long long)MAILDROP_SIZE_MAX_DEFAULT,
		MAX_CHILDREN_DEFAULT, MAX_PER_SOURCE_DEFAULT,
		PREAUTH_TIMEOUT_DEFAULT);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
bad_option(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pop3d: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'pop3d --help'.\n");
	exit(2);
}

/* How an option's argument is checked, and the type of its target. */
enum opt_kind {
	OPT_FLAG,   /* no argument; sets a bool */
	OPT_TEXT,   /* any string the row's check accepts */
	OPT_UINT,   /* a number in [min, max], into an unsigned */
	OPT_ULONG,  /* the same, into an unsigned long */
	OPT_U64,    /* the same, into a uint64_t */
	OPT_UID,    /* the same, into a uid_t */
	OPT_LOG,    /* syslog or stderr */
	OPT_MAYBE,  /* an optional argument, into a string ("" without) */
	OPT_EXPIRE, /* NEVER or a number in [min, max], into an int */
	OPT_VERSION,
	OPT_HELP,
};

/* One command-line option: everything about it is in its row. */
struct opt_rule {
	const char *name; /* without the leading "--" */
	enum opt_kind kind;
	unsigned long min, max; /* numbers only */
	/* Exits through bad_option if arg will not do; NULL: anything. */
	void (*check)(const char *name, const char *arg);
	/* Typed, so that a row cannot store into a field of another type;
	 * last, so that rows name it (.to.uint = ...) after the rest. */
	union {
		bool *flag;
		const char **text;
		unsigned *uint;
		unsigned long *ulong;
		uint64_t *u64;
		uid_t *uid;
		enum log_target *log;
		int *expire;
	} to;
};

static void
check_mailbox_pattern(const char *name, const char *pattern)
{
	char path[PATH_MAX];

	if (pattern[0] != '/' && strncmp(pattern, "%h/", 3) != 0)
		bad_option("--%s must be an absolute path: %s", name, pattern);
	if (maildrop_path(pattern, "user", "/home/user", path, sizeof(path)) <
	    0)
		bad_option("--%s: only %%u, %%h and %%%% may follow %%: %s",
			   name, pattern);
}

/* The name becomes part of /etc/pam.d/NAME. */
static void
check_pam_service(const char *name, const char *arg)
{
	if (arg[0] == '\0' || strchr(arg, '/') != NULL)
		bad_option("bad PAM service name: %s", arg);
}

static void
check_absolute(const char *name, const char *arg)
{
	if (arg[0] != '/')
		bad_option("--%s must be absolute: %s", name, arg);
}

static void
check_not_empty(const char *name, const char *arg)
{
	if (arg[0] == '\0')
		bad_option("empty --%s", name);
}

/* --language: a tag a catalogue answers to (R6856-15), found the way
 * LANG finds one, so "de-AT" is German. */
static void
check_language(const char *name, const char *arg)
{
	char shipped[64] = "";
	size_t n = 0;

	if (lang_lookup(arg) >= 0)
		return;
	for (unsigned i = 0; i < lang_count && n < sizeof(shipped); i++)
		n += snprintf(shipped + n, sizeof(shipped) - n, "%s%s",
			      i > 0 ? " " : "", lang_tag(i));
	bad_option("--%s=%s: no such language (pop3d has: %s)", name, arg,
		   shipped);
}

/* --recover=USER: a name the passwd lookup will judge; only an empty
 * one ("--recover=") is a mistake worth saying at once. */
static void
check_user_name(const char *name, const char *arg)
{
	if (arg != NULL && arg[0] == '\0')
		bad_option("empty --%s=: give a user, or no '='", name);
}

static unsigned long
number_option(const struct opt_rule *r, const char *arg)
{
	unsigned long v;

	if (command_number(arg, &v) != NUMBER_OK || v > r->max)
		bad_option("bad value for --%s", r->name);
	if (v < r->min)
		bad_option("--%s must be at least %lu", r->name, r->min);
	return v;
}

static enum log_target
log_option(const char *arg)
{
	if (strcmp(arg, "syslog") == 0)
		return LOG_TO_SYSLOG;
	if (strcmp(arg, "stderr") == 0)
		return LOG_TO_STDERR;
	bad_option("--log takes syslog or stderr, not %s", arg);
}

/* RFC 2449 §6.7 spells it NEVER; any case is the same word. */
static int
expire_option(const struct opt_rule *r, const char *arg)
{
	unsigned long v;

	if (strcasecmp(arg, "NEVER") == 0)
		return EXPIRE_NEVER;
	if (command_number(arg, &v) != NUMBER_OK || v > r->max)
		bad_option(
			"--%s takes a number of days from 0 to %lu, or NEVER, "
			"not %s",
			r->name, r->max, arg);
	return (int)v;
}

static void
apply_option(const struct opt_rule *r, const char *arg)
{
	if (r->check != NULL)
		r->check(r->name, arg);
	switch (r->kind) {
	case OPT_FLAG:
		*r->to.flag = true;
		break;
	case OPT_TEXT:
		*r->to.text = arg;
		break;
	case OPT_UINT:
		*r->to.uint = number_option(r, arg);
		break;
	case OPT_ULONG:
		*r->to.ulong = number_option(r, arg);
		break;
	case OPT_U64:
		*r->to.u64 = number_option(r, arg);
		break;
	case OPT_UID:
		*r->to.uid = number_option(r, arg);
		break;
	case OPT_LOG:
		*r->to.log = log_option(arg);
		break;
	case OPT_MAYBE:
		*r->to.text = arg != NULL ? arg : "";
		break;
	case OPT_EXPIRE:
		*r->to.expire = expire_option(r, arg);
		break;
	case OPT_VERSION:
		printf("pop3d %s\n", POP3D_VERSION);
		exit(0);
	case OPT_HELP:
		usage(stdout);
		exit(0);
	}
}

/* --proxy-from=CIDR[,CIDR...]: checked whole at start-up, so that a typo
 * stops pop3d instead of refusing every client behind the balancer. */
static void
proxy_from_option(struct config *cfg)
{
	static struct peer_net nets[PROXY_FROM_MAX];
	const char *why;
	int n;

	n = peer_parse_nets(cfg->proxy_from_text, nets, PROXY_FROM_MAX, &why);
	if (n < 0)
		bad_option("--proxy-from=%s: %s (at most %d networks, each "
			   "an address or address/bits)",
			   cfg->proxy_from_text, why, PROXY_FROM_MAX);
	cfg->proxy_from = nets;
	cfg->n_proxy_from = (unsigned)n;
}

/* getopt_long's view of the table (n rows, opts has room for n + 1).
 * Each row gets a value of its own, above any character: glibc takes an
 * abbreviation that fits several options with the same value as the
 * first of them, where it must be refused as ambiguous. */
enum { OPT_VAL_FIRST = 256 };

static void
getopt_table(const struct opt_rule *rules, int n, struct option *opts)
{
	bool takes_arg;

	memset(opts, 0, (n + 1) * sizeof(*opts));
	for (int i = 0; i < n; i++) {
		takes_arg = rules[i].kind != OPT_FLAG &&
			    rules[i].kind != OPT_VERSION &&
			    rules[i].kind != OPT_HELP;
		opts[i].name = rules[i].name;
		opts[i].has_arg = rules[i].kind == OPT_MAYBE ? optional_argument
				  : takes_arg		     ? required_argument
							     : no_argument;
		opts[i].val = OPT_VAL_FIRST + i;
	}
}

static void
parse_options(int argc, char **argv, struct config *cfg)
{
	/* name, kind, min, max, check, target */
	const struct opt_rule rules[] = {
		{"mailbox", OPT_TEXT, 0, 0, check_mailbox_pattern,
		 .to.text = &cfg->mailbox},
		{"pam-service", OPT_TEXT, 0, 0, check_pam_service,
		 .to.text = &cfg->pam_service},
		{"timeout", OPT_UINT, 1, OPTION_SECONDS_MAX, NULL,
		 .to.uint = &cfg->timeout},
		{"min-uid", OPT_UID, 0, UINT32_MAX - 1, NULL,
		 .to.uid = &cfg->min_uid},
		{"allow-plaintext", OPT_FLAG, 0, 0, NULL,
		 .to.flag = &cfg->allow_plaintext},
		{"log", OPT_LOG, 0, 0, NULL, .to.log = &cfg->log},
		/* No more than the default: UPDATE's journal bounds its
		 * regions by it (JOURNAL_REGIONS_MAX), and a larger maildrop
		 * could never be compacted. */
		{"max-messages", OPT_ULONG, 0, MAILDROP_MESSAGES_MAX_DEFAULT,
		 NULL, .to.ulong = &cfg->max_messages},
		{"max-size", OPT_U64, 0, ULONG_MAX, NULL,
		 .to.u64 = &cfg->max_size},
		{"max-children", OPT_UINT, 1, OPTION_SESSIONS_MAX, NULL,
		 .to.uint = &cfg->max_children},
		{"max-per-source", OPT_UINT, 1, OPTION_SESSIONS_MAX, NULL,
		 .to.uint = &cfg->max_per_source},
		{"tls-cert", OPT_TEXT, 0, 0, NULL, .to.text = &cfg->tls_cert},
		{"tls-key", OPT_TEXT, 0, 0, NULL, .to.text = &cfg->tls_key},
		{"tls-implicit", OPT_FLAG, 0, 0, NULL,
		 .to.flag = &cfg->tls_implicit},
		{"preauth-user", OPT_TEXT, 0, 0, check_not_empty,
		 .to.text = &cfg->preauth_user},
		{"preauth-dir", OPT_TEXT, 0, 0, check_absolute,
		 .to.text = &cfg->preauth_dir},
		{"journal-dir", OPT_TEXT, 0, 0, check_absolute,
		 .to.text = &cfg->journal_dir},
		{"shared-spool", OPT_FLAG, 0, 0, NULL,
		 .to.flag = &cfg->shared_spool},
		{"preauth-timeout", OPT_UINT, 1, OPTION_SECONDS_MAX, NULL,
		 .to.uint = &cfg->preauth_timeout},
		{"proxy-from", OPT_TEXT, 0, 0, check_not_empty,
		 .to.text = &cfg->proxy_from_text},
		{"language", OPT_TEXT, 0, 0, check_language,
		 .to.text = &cfg->language},
		{"recover", OPT_MAYBE, 0, 0, check_user_name,
		 .to.text = &cfg->recover},
		{"login-delay", OPT_UINT, 0, LOGIN_DELAY_MAX, NULL,
		 .to.uint = &cfg->login_delay},
		{"expire", OPT_EXPIRE, 0, EXPIRE_DAYS_MAX, NULL,
		 .to.expire = &cfg->expire},
		{"capa-implementation", OPT_FLAG, 0, 0, NULL,
		 .to.flag = &cfg->capa_implementation},
		{"version", OPT_VERSION, 0, 0, NULL, .to.flag = NULL},
		{"help", OPT_HELP, 0, 0, NULL, .to.flag = NULL},
	};
	enum { N_RULES = sizeof(rules) / sizeof(rules[0]) };
	struct option opts[N_RULES + 1];
	int o;

	getopt_table(rules, N_RULES, opts);
	opterr = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o < OPT_VAL_FIRST || o >= OPT_VAL_FIRST + N_RULES)
			bad_option("unknown or incomplete option: %s",
				   argv[optind - 1]);
		apply_option(&rules[o - OPT_VAL_FIRST], optarg);
	}
	if (optind < argc)
		bad_option("unexpected argument: %s", argv[optind]);
	if (cfg->tls_key != NULL && cfg->tls_cert == NULL)
		bad_option("%s", "--tls-key needs --tls-cert");
	if (cfg->tls_implicit && cfg->tls_cert == NULL)
		bad_option("%s", "--tls-implicit needs --tls-cert");
	if (cfg->tls_cert != NULL && cfg->tls_key == NULL)
		cfg->tls_key = cfg->tls_cert; /* one PEM file with both */
	if (cfg->proxy_from_text != NULL)
		proxy_from_option(cfg);
}

/* What systemd or inetd passed: a connection on stdin/stdout (inetd
 * "nowait", StandardInput=socket, a pipe), a listening socket on stdin
 * (inetd "wait"), one connected socket (Accept=yes), or one listening
 * socket (Accept=no). */
static int
dispatch_mode(const struct config *cfg, char **argv)
{
	struct server_limits limits = {cfg->max_children, cfg->max_per_source,
				       cfg->proxy_from, cfg->n_proxy_from};
	int n, fd = SDSOCK_FDS_START;

	n = sdsock_listen_fds();
	if (n < 0)
		fatal("bad LISTEN_PID or LISTEN_FDS (not a number, or a "
		      "descriptor that is not open)");
	if (n == 0 && sdsock_is_stream(STDIN_FILENO, true) > 0) {
		/* inetd's "wait" mode: the listening socket on stdin. The
		 * listener execs pop3d for each connection and never does
		 * TLS: it loaded the key only to refuse a bad one now. */
		tls_forget();
		return server_run(STDIN_FILENO, &limits, argv);
	}
	if (n == 0)
		return monitor_serve(cfg, STDIN_FILENO, STDOUT_FILENO);
	if (n > 1)
		fatal("passed %d sockets; pop3d takes one per service", n);
	if (sdsock_is_stream(fd, true) > 0) {
		tls_forget(); /* as above */
		return server_run(fd, &limits, argv);
	}
	if (sdsock_is_stream(fd, false) > 0)
		return monitor_serve(cfg, fd, fd);
	fatal("the passed descriptor is not a stream socket");
}

/* Ignored or blocked signals survive exec: started under nohup, or by a
 * supervisor that blocks SIGTERM, a session would outlive a hangup or a
 * stop that RFC 1939 ends without UPDATE (R1939-22). Start from the
 * defaults; the modes install their own handlers. */
static void
default_signals(void)
{
	static const int ending[] = {SIGHUP, SIGINT, SIGTERM, SIGQUIT};
	sigset_t none;

	for (size_t i = 0; i < sizeof(ending) / sizeof(ending[0]); i++)
		signal(ending[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

int
main(int argc, char **argv)
{
	struct config cfg = {
		.mailbox = "/var/mail/%u",
		.pam_service = "pop3",
		.timeout = IDLE_TIMEOUT_DEFAULT,
		.min_uid = MIN_UID_DEFAULT,
		.log = LOG_TO_SYSLOG,
		.max_messages = MAILDROP_MESSAGES_MAX_DEFAULT,
		.max_size = MAILDROP_SIZE_MAX_DEFAULT,
		.max_children = MAX_CHILDREN_DEFAULT,
		.max_per_source = MAX_PER_SOURCE_DEFAULT,
		.preauth_user = "pop3d",
		.preauth_dir = "/var/lib/pop3d/empty",
		.journal_dir = "/var/lib/pop3d/journal",
		.preauth_timeout = PREAUTH_TIMEOUT_DEFAULT,
		.expire = EXPIRE_UNSET,
	};

	/* Sessions started by the Accept=no listener are exec'ed through
	 * /proc/self/exe; keep the name ps, pgrep and journald show. */
	(void)prctl(PR_SET_NAME, "pop3d", 0, 0, 0);
	default_signals();
	parse_options(argc, argv, &cfg);
	log_init(cfg.log);
	server_take_channel(); /* a proxied session of the listener's */
	if (cfg.recover != NULL)
		return recover_run(&cfg);
	monitor_init(&cfg);
	/* A client that goes away must show up as a failed write, not
	 * kill us in the middle of something. */
	signal(SIGPIPE, SIG_IGN);
	if (cfg.timeout < IDLE_TIMEOUT_DEFAULT)
		log_msg(LOG_WARNING,
			"--timeout=%u is below RFC 1939's 10 minute minimum",
			cfg.timeout);
	return dispatch_mode(&cfg, argv);
}
