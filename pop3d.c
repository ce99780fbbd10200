/* pop3d: serve one POP3 connection on stdin/stdout (inetd, or systemd
 * with Accept=yes), authenticating through PAM and working on the user's
 * mbox spool. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "command.h"
#include "log.h"
#include "maildrop.h"
#include "netio.h"
#include "params.h"
#include "peer.h"
#include "pop3d.h"
#include "session.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: pop3d [options]\n"
		"Serve one POP3 session on standard input and output.\n\n"
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
		"  --version            print the version and exit\n"
		"  --help               print this help and exit\n",
		IDLE_TIMEOUT_DEFAULT, MIN_UID_DEFAULT,
		MAILDROP_MESSAGES_MAX_DEFAULT,
		(unsigned long long)MAILDROP_SIZE_MAX_DEFAULT);
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
				number_option("--timeout", optarg, 24 * 3600);
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
	};
	static struct netio io;
	struct peer peer;

	parse_options(argc, argv, &cfg);
	log_init(cfg.log);
	auth_init();
	/* A client that goes away must show up as a failed write, not
	 * kill us in the middle of something. */
	signal(SIGPIPE, SIG_IGN);
	if (cfg.timeout < IDLE_TIMEOUT_DEFAULT)
		log_msg(LOG_WARNING,
			"--timeout=%u is below RFC 1939's 10 minute minimum",
			cfg.timeout);
	peer_from_fd(STDIN_FILENO, &peer);
	net_init(&io, STDIN_FILENO, STDOUT_FILENO, cfg.timeout);
	session_run(&cfg, &peer, &io);
	return 0;
}
