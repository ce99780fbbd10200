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
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "command.h"
#include "config.h"
#include "log.h"
#include "maildrop.h"
#include "monitor.h"
#include "params.h"
#include "server.h"

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
		"  --preauth-timeout=S  most seconds before login "
		"(default %d)\n"
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

static unsigned long
number_option(const char *name, const char *arg, unsigned long max)
{
	unsigned long v;

	if (command_number(arg, &v) != NUMBER_OK || v > max)
		bad_option("bad value for %s", name);
	return v;
}

static void
check_mailbox_pattern(const char *pattern)
{
	char path[PATH_MAX];

	if (pattern[0] != '/' && strncmp(pattern, "%h/", 3) != 0)
		bad_option("--mailbox must be an absolute path: %s", pattern);
	if (maildrop_path(pattern, "user", "/home/user", path, sizeof(path)) <
	    0)
		bad_option("--mailbox: only %%u, %%h and %%%% may follow %%: "
			   "%s",
			   pattern);
}

static void
parse_options(int argc, char **argv, struct config *cfg)
{
	enum {
		O_MAILBOX = 256,
		O_PAM,
		O_TIMEOUT,
		O_MINUID,
		O_PLAIN,
		O_LOG,
		O_MAXMSG,
		O_MAXSIZE,
		O_MAXCHILD,
		O_MAXSRC,
		O_TLSCERT,
		O_TLSKEY,
		O_TLSIMPL,
		O_PAUSER,
		O_PADIR,
		O_JDIR,
		O_PATIME,
		O_VERSION,
		O_HELP
	};
	static const struct option opts[] = {
		{"mailbox", required_argument, NULL, O_MAILBOX},
		{"pam-service", required_argument, NULL, O_PAM},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"min-uid", required_argument, NULL, O_MINUID},
		{"allow-plaintext", no_argument, NULL, O_PLAIN},
		{"log", required_argument, NULL, O_LOG},
		{"max-messages", required_argument, NULL, O_MAXMSG},
		{"max-size", required_argument, NULL, O_MAXSIZE},
		{"max-children", required_argument, NULL, O_MAXCHILD},
		{"max-per-source", required_argument, NULL, O_MAXSRC},
		{"tls-cert", required_argument, NULL, O_TLSCERT},
		{"tls-key", required_argument, NULL, O_TLSKEY},
		{"tls-implicit", no_argument, NULL, O_TLSIMPL},
		{"preauth-user", required_argument, NULL, O_PAUSER},
		{"preauth-dir", required_argument, NULL, O_PADIR},
		{"journal-dir", required_argument, NULL, O_JDIR},
		{"preauth-timeout", required_argument, NULL, O_PATIME},
		{"version", no_argument, NULL, O_VERSION},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	int o;

	opterr = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_MAILBOX:
			check_mailbox_pattern(optarg);
			cfg->mailbox = optarg;
			break;
		case O_PAM:
			if (optarg[0] == '\0' || strchr(optarg, '/') != NULL)
				bad_option("bad PAM service name: %s", optarg);
			cfg->pam_service = optarg;
			break;
		case O_TIMEOUT:
			cfg->timeout =
				number_option("--timeout", optarg, 24UL * 3600);
			if (cfg->timeout == 0)
				bad_option("%s must be at least 1",
					   "--timeout");
			break;
		case O_MINUID:
			cfg->min_uid = number_option("--min-uid", optarg,
						     UINT32_MAX - 1);
			break;
		case O_PLAIN:
			cfg->allow_plaintext = true;
			break;
		case O_LOG:
			if (strcmp(optarg, "syslog") == 0)
				cfg->log = LOG_TO_SYSLOG;
			else if (strcmp(optarg, "stderr") == 0)
				cfg->log = LOG_TO_STDERR;
			else
				bad_option("--log takes syslog or stderr, not "
					   "%s",
					   optarg);
			break;
		case O_MAXMSG:
			cfg->max_messages = number_option("--max-messages",
							  optarg, ULONG_MAX);
			break;
		case O_MAXSIZE:
			cfg->max_size =
				number_option("--max-size", optarg, ULONG_MAX);
			break;
		case O_MAXCHILD:
			cfg->max_children =
				number_option("--max-children", optarg, 100000);
			if (cfg->max_children == 0)
				bad_option("%s must be at least 1",
					   "--max-children");
			break;
		case O_MAXSRC:
			cfg->max_per_source = number_option("--max-per-source",
							    optarg, 100000);
			if (cfg->max_per_source == 0)
				bad_option("%s must be at least 1",
					   "--max-per-source");
			break;
		case O_TLSCERT:
			cfg->tls_cert = optarg;
			break;
		case O_TLSKEY:
			cfg->tls_key = optarg;
			break;
		case O_TLSIMPL:
			cfg->tls_implicit = true;
			break;
		case O_PAUSER:
			if (optarg[0] == '\0')
				bad_option("%s", "empty --preauth-user");
			cfg->preauth_user = optarg;
			break;
		case O_PADIR:
			if (optarg[0] != '/')
				bad_option("--preauth-dir must be absolute: %s",
					   optarg);
			cfg->preauth_dir = optarg;
			break;
		case O_JDIR:
			if (optarg[0] != '/')
				bad_option("--journal-dir must be absolute: %s",
					   optarg);
			cfg->journal_dir = optarg;
			break;
		case O_PATIME:
			cfg->preauth_timeout = number_option(
				"--preauth-timeout", optarg, 24UL * 3600);
			if (cfg->preauth_timeout == 0)
				bad_option("%s must be at least 1",
					   "--preauth-timeout");
			break;
		case O_VERSION:
			printf("pop3d %s\n", POP3D_VERSION);
			exit(0);
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			bad_option("unknown or incomplete option: %s",
				   argv[optind - 1]);
		}
	}
	if (optind < argc)
		bad_option("unexpected argument: %s", argv[optind]);
	if (cfg->tls_key != NULL && cfg->tls_cert == NULL)
		bad_option("%s", "--tls-key needs --tls-cert");
	if (cfg->tls_implicit && cfg->tls_cert == NULL)
		bad_option("%s", "--tls-implicit needs --tls-cert");
	if (cfg->tls_cert != NULL && cfg->tls_key == NULL)
		cfg->tls_key = cfg->tls_cert; /* one PEM file with both */
}

/* What systemd or inetd passed: a connection on stdin/stdout (inetd
 * "nowait", StandardInput=socket, a pipe), a listening socket on stdin
 * (inetd "wait"), one connected socket (Accept=yes), or one listening
 * socket (Accept=no). */
static int
dispatch_mode(const struct config *cfg, char **argv)
{
	struct server_limits limits = {cfg->max_children, cfg->max_per_source};
	int n, fd = SD_LISTEN_FDS_START;

	n = sd_listen_fds(1);
	if (n < 0)
		fatal("sd_listen_fds: %s", strerror(-n));
	if (n == 0 && sd_is_socket(STDIN_FILENO, AF_UNSPEC, SOCK_STREAM, 1) > 0)
		/* inetd's "wait" mode: the listening socket on stdin. */
		return server_run(STDIN_FILENO, &limits, argv);
	if (n == 0)
		return monitor_serve(cfg, STDIN_FILENO, STDOUT_FILENO);
	if (n > 1)
		fatal("passed %d sockets; pop3d takes one per service", n);
	if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0)
		return server_run(fd, &limits, argv);
	if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 0) > 0)
		return monitor_serve(cfg, fd, fd);
	fatal("the passed descriptor is not a stream socket");
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
	};

	/* Sessions started by the Accept=no listener are exec'ed through
	 * /proc/self/exe; keep the name ps, pgrep and journald show. */
	(void)prctl(PR_SET_NAME, "pop3d", 0, 0, 0);
	parse_options(argc, argv, &cfg);
	log_init(cfg.log);
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
