/*
 * faultshim.so: an LD_PRELOAD fault injector for pop3d's tests. Built only
 * by the test targets (make check-faults, make stress); never linked into
 * pop3d and never installed.
 *
 * It acts only on calls that concern the files named by FAULTSHIM_PATHS:
 * a descriptor matches when readlink(/proc/self/fd/N) is one of the
 * colon-separated names there, or starts with one that ends in '*' (so
 * sockets, pipes, the log and the cwrap files are never touched unless a
 * name says so); a path call (open, rename, unlink, link) matches on its
 * path argument. Matching calls are counted per process and per
 * operation; rules decide what happens to the Nth one.
 *
 * Environment:
 *   FAULTSHIM_PATHS  names, e.g. the spool "/tmp/x/mail/alice" and, as a
 *                    prefix, "/tmp/x/journal/1000/" followed by a star
 *   FAULTSHIM        rules separated by ';':  OP[@N[-[M]]]=ACTION
 *                    N is 1-based (default 1); "N-" means N and every
 *                    later call, "N-M" that range.
 *                    OP: read pread (and preadv) write pwrite ftruncate
 *                        fsync fdatasync
 *                        open lock (fcntl F_SETLK/F_SETLKW/F_OFD_*, not
 *                        unlocks) flock (not LOCK_UN)
 *                        rename unlink link fstat
 *                        mut  (a group: write pwrite ftruncate fsync
 *                              fdatasync rename unlink link)
 *                        any  (every matching call)
 *                    ACTION: an errno name (EIO ENOSPC EDQUOT EFBIG ENOLCK
 *                        EMFILE ENFILE EACCES EROFS EINTR EAGAIN ENOMEM
 *                        EPERM): fail without doing anything;
 *                        short[:K]  read/write at most K octets (default:
 *                                   half the request, at least 1);
 *                        eof        reads return 0;
 *                        pause:MS   sleep MS milliseconds, then do the call;
 *                        kill       SIGKILL ourselves before the call;
 *                        killafter  do the call, then SIGKILL ourselves;
 *                        marker     do the call, only log it (a probe);
 *                        touch      first stat the file, then chmod it to
 *                                   its own mode: its ctime moves, as if
 *                                   another program changed it just then
 *                                   (after a stat, so that Linux 6.13 and
 *                                   later stamp it with the fine clock).
 *   FAULTSHIM_MAIN_ONLY  1: rules fire only in the process the shim was
 *                    loaded into (pop3d's first process: the monitor, then
 *                    the user's session), never in one it forked (the
 *                    pre-auth process, the dotlock keeper): a call the
 *                    session cannot make but the keeper, with group mail,
 *                    can. Calls are counted in every process alike.
 *   FAULTSHIM_LOG    file to append one line to for every rule that fired:
 *                    "FIRE pid op n action path"; with FAULTSHIM_TRACE=1
 *                    also every matching call: "CALL pid op n path".
 *
 * Recording (the crash-state explorer, tests/faults/crash_explore.py):
 *   FAULTSHIM_RECORD     file to append a record to for every completed
 *                        call on a matching file that changes the file
 *                        system or orders its changes: open (with its
 *                        flags and whether O_CREAT created the file),
 *                        write, pwrite (with the octets written), ftruncate,
 *                        fsync, fdatasync, close, rename, unlink, link,
 *                        mkdir. One line each,
 *                          "OP pid fd ino off len created flags path[\tpath2]"
 *                        (fd -1 and ino 0 where they do not apply; ino is
 *                        the inode the descriptor or name referred to),
 *                        followed by len raw octets for write and pwrite.
 *                        Failed calls are not recorded.
 *   FAULTSHIM_DROP_SYNC  N: the Nth matching fsync or fdatasync (counted
 *                        together) returns 0 without syncing, recorded as
 *                        "dropsync": a mutant with that sync removed, for
 *                        proving that the explorer notices.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum op {
	OP_READ,
	OP_PREAD,
	OP_WRITE,
	OP_PWRITE,
	OP_FTRUNCATE,
	OP_FSYNC,
	OP_FDATASYNC,
	OP_OPEN,
	OP_LOCK,
	OP_FLOCK,
	OP_RENAME,
	OP_UNLINK,
	OP_LINK,
	OP_FSTAT,
	OP_MUT, /* group */
	OP_ANY, /* group */
	OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"read",	     "pread", "write", "pwrite", "ftruncate", "fsync",
	"fdatasync", "open",  "lock",  "flock",	 "rename",    "unlink",
	"link",	     "fstat", "mut",   "any",
};

enum action {
	A_ERRNO,
	A_SHORT,
	A_EOF,
	A_PAUSE,
	A_KILL,
	A_KILLAFTER,
	A_MARK,
	A_TOUCH
};

struct rule {
	enum op op;
	unsigned long from, to; /* inclusive; to == 0: no upper bound */
	enum action action;
	long arg; /* errno, short length, pause ms */
	char text[128];
};

#define MAX_RULES 16
#define MAX_PREFIXES 8

static struct rule rules[MAX_RULES];
static int n_rules;
static char *prefixes[MAX_PREFIXES];
static int n_prefixes;
static unsigned long counts[OP_COUNT];
static int initialized, active, tracing;
static const char *log_path;
static const char *record_path;
static unsigned long drop_sync, syncs_seen;
static int main_only;
static pid_t main_pid;

/* At load, before any fork: the process FAULTSHIM_MAIN_ONLY means. */
__attribute__((constructor)) static void
note_main_pid(void)
{
	main_pid = (pid_t)syscall(SYS_getpid);
}

static struct {
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*pread)(int, void *, size_t, off_t);
	ssize_t (*preadv)(int, const struct iovec *, int, off_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	int (*ftruncate)(int, off_t);
	int (*fsync)(int);
	int (*fdatasync)(int);
	int (*open)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*fcntl)(int, int, ...);
	int (*flock)(int, int);
	int (*rename)(const char *, const char *);
	int (*unlink)(const char *);
	int (*link)(const char *, const char *);
	int (*fstat)(int, struct stat *);
	int (*close)(int);
	int (*mkdir)(const char *, mode_t);
	int (*mkdirat)(int, const char *, mode_t);
} real;

#define REAL(name)                                                             \
	do {                                                                   \
		if (real.name == NULL)                                         \
			*(void **)&real.name = dlsym(RTLD_NEXT, #name);        \
	} while (0)

static const struct {
	const char *name;
	int value;
} errnos[] = {
	{"EIO", EIO},	    {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT},
	{"EFBIG", EFBIG},   {"ENOLCK", ENOLCK}, {"EMFILE", EMFILE},
	{"ENFILE", ENFILE}, {"EACCES", EACCES}, {"EROFS", EROFS},
	{"EINTR", EINTR},   {"EAGAIN", EAGAIN}, {"ENOMEM", ENOMEM},
	{"EPERM", EPERM},
};

static void
die(const char *what, const char *text)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "faultshim: bad %s: %s\n", what,
			 text);

	if (n > 0)
		syscall(SYS_write, 2, msg, (size_t)n);
	_exit(97);
}

static void
parse_rule(const char *text, size_t len)
{
	char buf[128], *eq, *at, *act, *end;
	struct rule *r;
	int i;

	if (len == 0)
		return;
	if (len >= sizeof(buf) || n_rules == MAX_RULES)
		die("rule", text);
	memcpy(buf, text, len);
	buf[len] = '\0';
	r = &rules[n_rules];
	snprintf(r->text, sizeof(r->text), "%s", buf);
	eq = strchr(buf, '=');
	if (eq == NULL)
		die("rule (no '=')", buf);
	*eq = '\0';
	act = eq + 1;
	r->from = 1;
	r->to = 1;
	at = strchr(buf, '@');
	if (at != NULL) {
		*at++ = '\0';
		r->from = strtoul(at, &end, 10);
		if (end == at || r->from == 0)
			die("count", at);
		r->to = r->from;
		if (*end == '-') {
			at = end + 1;
			r->to = *at ? strtoul(at, &end, 10) : 0;
			if (*at && (end == at || r->to < r->from))
				die("count range", at);
			if (!*at)
				end = at;
		}
		if (*end != '\0')
			die("count", at);
	}
	for (i = 0; i < OP_COUNT; i++)
		if (strcmp(buf, op_names[i]) == 0)
			break;
	if (i == OP_COUNT)
		die("operation", buf);
	r->op = (enum op)i;
	if (strncmp(act, "short", 5) == 0) {
		r->action = A_SHORT;
		r->arg = act[5] == ':' ? strtol(act + 6, NULL, 10) : 0;
	} else if (strcmp(act, "eof") == 0) {
		r->action = A_EOF;
	} else if (strncmp(act, "pause:", 6) == 0) {
		r->action = A_PAUSE;
		r->arg = strtol(act + 6, NULL, 10);
	} else if (strcmp(act, "kill") == 0) {
		r->action = A_KILL;
	} else if (strcmp(act, "killafter") == 0) {
		r->action = A_KILLAFTER;
	} else if (strcmp(act, "marker") == 0) {
		r->action = A_MARK;
	} else if (strcmp(act, "touch") == 0) {
		r->action = A_TOUCH;
	} else {
		for (i = 0; i < (int)(sizeof(errnos) / sizeof(errnos[0])); i++)
			if (strcmp(act, errnos[i].name) == 0)
				break;
		if (i == (int)(sizeof(errnos) / sizeof(errnos[0])))
			die("action", act);
		r->action = A_ERRNO;
		r->arg = errnos[i].value;
	}
	n_rules++;
}

static void
init(void)
{
	const char *p, *s;

	if (initialized)
		return;
	initialized = 1;
	p = getenv("FAULTSHIM_PATHS");
	if (p == NULL || *p == '\0')
		return;
	while (*p && n_prefixes < MAX_PREFIXES) {
		s = strchr(p, ':');
		size_t n = s ? (size_t)(s - p) : strlen(p);
		if (n > 0)
			prefixes[n_prefixes++] = strndup(p, n);
		p += n;
		if (*p == ':')
			p++;
	}
	p = getenv("FAULTSHIM");
	while (p != NULL && *p) {
		s = strchr(p, ';');
		size_t n = s ? (size_t)(s - p) : strlen(p);
		parse_rule(p, n);
		p += n;
		if (*p == ';')
			p++;
	}
	log_path = getenv("FAULTSHIM_LOG");
	p = getenv("FAULTSHIM_TRACE");
	tracing = p != NULL && *p == '1';
	record_path = getenv("FAULTSHIM_RECORD");
	p = getenv("FAULTSHIM_DROP_SYNC");
	drop_sync = p != NULL ? strtoul(p, NULL, 10) : 0;
	p = getenv("FAULTSHIM_MAIN_ONLY");
	main_only = p != NULL && *p == '1';
	active = n_prefixes > 0;
}

static int
path_matches(const char *path)
{
	for (int i = 0; i < n_prefixes; i++) {
		size_t n = strlen(prefixes[i]);

		if (n > 0 && prefixes[i][n - 1] == '*'
			    ? strncmp(path, prefixes[i], n - 1) == 0
			    : strcmp(path, prefixes[i]) == 0)
			return 1;
	}
	return 0;
}

/* The name of fd in target[] if it is one of ours, else NULL. */
static const char *
fd_target(int fd, char *target, size_t size)
{
	char link[64];
	ssize_t n;

	if (fd < 0)
		return NULL;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, size - 1);
	if (n <= 0)
		return NULL;
	target[n] = '\0';
	return path_matches(target) ? target : NULL;
}

static void
note(const char *kind, enum op op, unsigned long n, const char *what,
     const char *path)
{
	char line[600];
	int len, fd;

	if (log_path == NULL)
		return;
	len = snprintf(line, sizeof(line), "%s %ld %s %lu %s %s\n", kind,
		       (long)getpid(), op_names[op], n, what, path);
	if (len <= 0)
		return;
	if (len >= (int)sizeof(line))
		len = sizeof(line) - 1;
	fd = (int)syscall(SYS_openat, AT_FDCWD, log_path,
			  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		return;
	syscall(SYS_write, fd, line, (size_t)len);
	syscall(SYS_close, fd);
}

/* --- recording (FAULTSHIM_RECORD) -------------------------------------- */

static unsigned long long
ino_of_fd(int fd)
{
	struct stat st;

	REAL(fstat);
	return real.fstat(fd, &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

static unsigned long long
ino_of_path(int dirfd, const char *path)
{
	struct stat st;

	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0
		       ? (unsigned long long)st.st_ino
		       : 0;
}

/* One record: a header line and, for writes, the octets written. One
 * writev on an O_APPEND descriptor, so records of two processes never
 * interleave. */
static void
record(const char *op, int fd, unsigned long long ino, long long off,
       size_t len, int created, int flags, const char *path, const char *path2,
       const void *data)
{
	char line[1200];
	struct iovec iov[2];
	int n, rfd;

	if (record_path == NULL)
		return;
	n = snprintf(
		line, sizeof(line), "%s %ld %d %llu %lld %zu %d %x %s%s%s\n",
		op, (long)getpid(), fd, ino, off, len, created, (unsigned)flags,
		path, path2 ? "\t" : "", path2 ? path2 : "");
	if (n <= 0 || n >= (int)sizeof(line))
		die("record", path);
	rfd = (int)syscall(SYS_openat, AT_FDCWD, record_path,
			   O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (rfd < 0)
		die("FAULTSHIM_RECORD", record_path);
	iov[0] = (struct iovec){line, (size_t)n};
	iov[1] = (struct iovec){(void *)(uintptr_t)data, data ? len : 0};
	if (syscall(SYS_writev, rfd, iov, data ? 2 : 1) !=
	    (long)(n + (data ? len : 0)))
		die("record write", record_path);
	syscall(SYS_close, rfd);
}

/* Are calls on these names recorded? */
static int
recording(const char *a, const char *b)
{
	init();
	return active && record_path != NULL &&
	       ((a != NULL && path_matches(a)) ||
		(b != NULL && path_matches(b)));
}

/* Is this the sync that FAULTSHIM_DROP_SYNC removes? */
static int
drop_this_sync(const char *op, int fd, const char *path)
{
	if (drop_sync == 0 || ++syncs_seen != drop_sync)
		return 0;
	record("dropsync", fd, ino_of_fd(fd), -1, 0, 0, 0, path, op, NULL);
	return 1;
}

static int
in_group(enum op group, enum op op)
{
	if (group == OP_ANY)
		return 1;
	if (group == OP_MUT)
		return op == OP_WRITE || op == OP_PWRITE ||
		       op == OP_FTRUNCATE || op == OP_FSYNC ||
		       op == OP_FDATASYNC || op == OP_RENAME ||
		       op == OP_UNLINK || op == OP_LINK;
	return group == op;
}

/* The "touch" action, by raw system calls: the shim's own wrappers must
 * not count these. */
static void
touch(const char *path)
{
	struct stat st;

	if (path != NULL &&
	    syscall(SYS_newfstatat, AT_FDCWD, path, &st, 0) == 0)
		syscall(SYS_fchmodat, AT_FDCWD, path, st.st_mode & 07777);
}

/* Count a matching call and find the rule that applies, if any. */
static const struct rule *
decide(enum op op, const char *path)
{
	const struct rule *hit = NULL;
	unsigned long n;

	counts[op]++;
	if (in_group(OP_MUT, op))
		counts[OP_MUT]++;
	counts[OP_ANY]++;
	if (tracing)
		note("CALL", op, counts[op], "-", path);
	if (main_only && (pid_t)syscall(SYS_getpid) != main_pid)
		return NULL;
	for (int i = 0; i < n_rules && hit == NULL; i++) {
		const struct rule *r = &rules[i];

		if (!in_group(r->op, op))
			continue;
		n = counts[r->op];
		if (n >= r->from && (r->to == 0 || n <= r->to))
			hit = r;
	}
	if (hit != NULL)
		note("FIRE", hit->op, counts[hit->op], hit->text, path);
	if (hit != NULL && hit->action == A_TOUCH)
		touch(path);
	return hit;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void
self_kill(void)
{
	syscall(SYS_kill, getpid(), SIGKILL);
	for (;;)
		pause();
}

/* Before the call. Returns 1 if the call must fail with errno set, else
 * 0; adjusts *len for short transfers. */
static int
before(const struct rule *r, size_t *len)
{
	if (r == NULL)
		return 0;
	switch (r->action) {
	case A_ERRNO:
		errno = (int)r->arg;
		return 1;
	case A_SHORT:
		if (len != NULL && *len > 1) {
			size_t k = r->arg > 0 ? (size_t)r->arg : *len / 2;
			if (k == 0)
				k = 1;
			if (k < *len)
				*len = k;
		}
		return 0;
	case A_PAUSE:
		sleep_ms(r->arg);
		return 0;
	case A_KILL:
		self_kill();
		return 0;
	default:
		return 0;
	}
}

static void
after(const struct rule *r)
{
	if (r != NULL && r->action == A_KILLAFTER)
		self_kill();
}

#define FD_PROLOGUE(OPNAME, fd)                                                \
	char path_[512];                                                       \
	const struct rule *rule_ = NULL;                                       \
	const char *p_ = NULL;                                                 \
	init();                                                                \
	if (active && (p_ = fd_target((fd), path_, sizeof(path_))) != NULL)    \
	rule_ = decide((OPNAME), p_)

/* --- reads and writes ---------------------------------------------------- */

ssize_t
read(int fd, void *buf, size_t len)
{
	ssize_t r;

	REAL(read);
	FD_PROLOGUE(OP_READ, fd);
	if (before(rule_, &len))
		return -1;
	if (rule_ != NULL && rule_->action == A_EOF)
		return 0;
	r = real.read(fd, buf, len);
	after(rule_);
	return r;
}

ssize_t
pread(int fd, void *buf, size_t len, off_t off)
{
	ssize_t r;

	REAL(pread);
	FD_PROLOGUE(OP_PREAD, fd);
	if (before(rule_, &len))
		return -1;
	if (rule_ != NULL && rule_->action == A_EOF)
		return 0;
	r = real.pread(fd, buf, len, off);
	after(rule_);
	return r;
}
ssize_t pread64(int fd, void *buf, size_t len, off_t off)
	__attribute__((alias("pread")));

/* A gathering read (journal.c reads UPDATE's sources so) counts as one
 * pread; a short rule cuts it after that many octets in all. */
ssize_t
preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	struct iovec cut[IOV_MAX];
	size_t len = 0, left;
	int n;
	ssize_t r;

	REAL(preadv);
	FD_PROLOGUE(OP_PREAD, fd);
	if (cnt < 0 || cnt > IOV_MAX)
		return real.preadv(fd, iov, cnt, off); /* its EINVAL */
	for (int i = 0; i < cnt; i++)
		len += iov[i].iov_len;
	if (before(rule_, &len))
		return -1;
	if (rule_ != NULL && rule_->action == A_EOF)
		return 0;
	for (n = 0, left = len; n < cnt && left > 0; n++) {
		cut[n] = iov[n];
		if (cut[n].iov_len > left)
			cut[n].iov_len = left;
		left -= cut[n].iov_len;
	}
	r = real.preadv(fd, cut, n, off);
	after(rule_);
	return r;
}
ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off_t off)
	__attribute__((alias("preadv")));

ssize_t
write(int fd, const void *buf, size_t len)
{
	ssize_t r;

	REAL(write);
	FD_PROLOGUE(OP_WRITE, fd);
	if (before(rule_, &len))
		return -1;
	r = real.write(fd, buf, len);
	if (p_ != NULL && r > 0)
		record("write", fd, ino_of_fd(fd),
		       (long long)lseek(fd, 0, SEEK_CUR) - r, (size_t)r, 0, 0,
		       p_, NULL, buf);
	after(rule_);
	return r;
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t r;

	REAL(pwrite);
	FD_PROLOGUE(OP_PWRITE, fd);
	if (before(rule_, &len))
		return -1;
	r = real.pwrite(fd, buf, len, off);
	if (p_ != NULL && r > 0)
		record("pwrite", fd, ino_of_fd(fd), (long long)off, (size_t)r,
		       0, 0, p_, NULL, buf);
	after(rule_);
	return r;
}
ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
	__attribute__((alias("pwrite")));

int
ftruncate(int fd, off_t len)
{
	int r;

	REAL(ftruncate);
	FD_PROLOGUE(OP_FTRUNCATE, fd);
	if (before(rule_, NULL))
		return -1;
	r = real.ftruncate(fd, len);
	if (p_ != NULL && r == 0)
		record("ftruncate", fd, ino_of_fd(fd), (long long)len, 0, 0, 0,
		       p_, NULL, NULL);
	after(rule_);
	return r;
}
int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));

int
fsync(int fd)
{
	int r;

	REAL(fsync);
	FD_PROLOGUE(OP_FSYNC, fd);
	if (before(rule_, NULL))
		return -1;
	if (p_ != NULL && drop_this_sync("fsync", fd, p_))
		return 0;
	r = real.fsync(fd);
	if (p_ != NULL && r == 0)
		record("fsync", fd, ino_of_fd(fd), -1, 0, 0, 0, p_, NULL, NULL);
	after(rule_);
	return r;
}

int
fdatasync(int fd)
{
	int r;

	REAL(fdatasync);
	FD_PROLOGUE(OP_FDATASYNC, fd);
	if (before(rule_, NULL))
		return -1;
	if (p_ != NULL && drop_this_sync("fdatasync", fd, p_))
		return 0;
	r = real.fdatasync(fd);
	if (p_ != NULL && r == 0)
		record("fdatasync", fd, ino_of_fd(fd), -1, 0, 0, 0, p_, NULL,
		       NULL);
	after(rule_);
	return r;
}

int
fstat(int fd, struct stat *st)
{
	int r;

	REAL(fstat);
	FD_PROLOGUE(OP_FSTAT, fd);
	if (before(rule_, NULL))
		return -1;
	r = real.fstat(fd, st);
	after(rule_);
	return r;
}

/* --- locks ---------------------------------------------------------------- */

int
fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;
	int r;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	REAL(fcntl);
	if (cmd != F_SETLK && cmd != F_SETLKW && cmd != F_OFD_SETLK &&
	    cmd != F_OFD_SETLKW)
		return real.fcntl(fd, cmd, arg);
	/* Unlocks are neither counted nor failed: only taking a lock is. */
	if (((struct flock *)arg)->l_type == F_UNLCK)
		return real.fcntl(fd, cmd, arg);
	FD_PROLOGUE(OP_LOCK, fd);
	if (before(rule_, NULL))
		return -1;
	r = real.fcntl(fd, cmd, arg);
	after(rule_);
	return r;
}
int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

int
flock(int fd, int how)
{
	int r;

	REAL(flock);
	if (how & LOCK_UN)
		return real.flock(fd, how);
	FD_PROLOGUE(OP_FLOCK, fd);
	if (before(rule_, NULL))
		return -1;
	r = real.flock(fd, how);
	after(rule_);
	return r;
}

/* --- path calls ------------------------------------------------------------
 */

static const struct rule *
path_decide(enum op op, const char *a, const char *b)
{
	init();
	if (!active)
		return NULL;
	if (a != NULL && path_matches(a))
		return decide(op, a);
	if (b != NULL && path_matches(b))
		return decide(op, b);
	return NULL;
}

/* The absolute path that path names relative to dirfd, in full[]; NULL if
 * it cannot be told. */
static const char *
resolve_at(int dirfd, const char *path, char *full, size_t size)
{
	char link[64];
	ssize_t n;

	if (path[0] == '/')
		return path;
	if (dirfd == AT_FDCWD)
		return NULL;
	/* pop3d opens the spool by name relative to its directory: match
	 * the whole path the name resolves to. */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
	n = readlink(link, full, size - 1);
	if (n <= 0 || (size_t)n + 1 + strlen(path) >= size)
		return NULL;
	full[n] = '/';
	strcpy(full + n + 1, path);
	return full;
}

static int
open_common(const char *path, int flags, mode_t mode, int dirfd, int at)
{
	const struct rule *r = NULL;
	const char *name;
	char full[PATH_MAX];
	int fd, existed = 1, ours;

	init();
	name = resolve_at(at ? dirfd : AT_FDCWD, path, full, sizeof(full));
	ours = active && name != NULL && path_matches(name);
	if (ours)
		r = path_decide(OP_OPEN, name, NULL);
	if (ours && record_path != NULL && (flags & O_CREAT))
		existed = ino_of_path(at ? dirfd : AT_FDCWD, path) != 0;
	if (before(r, NULL))
		return -1;
	if (at) {
		REAL(openat);
		fd = real.openat(dirfd, path, flags, mode);
	} else {
		REAL(open);
		fd = real.open(path, flags, mode);
	}
	if (ours && fd >= 0)
		record("open", fd, ino_of_fd(fd), -1, 0, !existed, flags, name,
		       NULL, NULL);
	after(r);
	return fd;
}

static mode_t
mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE
		       ? (mode_t)va_arg(ap, int)
		       : 0;
}

int
open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return open_common(path, flags, mode, AT_FDCWD, 0);
}
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int
openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return open_common(path, flags, mode, dirfd, 1);
}
int openat64(int dirfd, const char *path, int flags, ...)
	__attribute__((alias("openat")));

/* The _FORTIFY_SOURCE entry points of open(). */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);

int
__open_2(const char *path, int flags)
{
	return open_common(path, flags, 0, AT_FDCWD, 0);
}
int __open64_2(const char *path, int flags) __attribute__((alias("__open_2")));

int
rename(const char *from, const char *to)
{
	const struct rule *r = path_decide(OP_RENAME, from, to);
	unsigned long long ino = 0;
	int ret, ours = recording(from, to);

	if (ours)
		ino = ino_of_path(AT_FDCWD, from);
	if (before(r, NULL))
		return -1;
	REAL(rename);
	ret = real.rename(from, to);
	if (ours && ret == 0)
		record("rename", -1, ino, -1, 0, 0, 0, from, to, NULL);
	after(r);
	return ret;
}

int
unlink(const char *path)
{
	const struct rule *r = path_decide(OP_UNLINK, path, NULL);
	unsigned long long ino = 0;
	int ret, ours = recording(path, NULL);

	if (ours)
		ino = ino_of_path(AT_FDCWD, path);
	if (before(r, NULL))
		return -1;
	REAL(unlink);
	ret = real.unlink(path);
	if (ours && ret == 0)
		record("unlink", -1, ino, -1, 0, 0, 0, path, NULL, NULL);
	after(r);
	return ret;
}

int
link(const char *from, const char *to)
{
	const struct rule *r = path_decide(OP_LINK, from, to);
	int ret, ours = recording(from, to);

	if (before(r, NULL))
		return -1;
	REAL(link);
	ret = real.link(from, to);
	if (ours && ret == 0)
		record("link", -1, ino_of_path(AT_FDCWD, to), -1, 0, 1, 0, from,
		       to, NULL);
	after(r);
	return ret;
}

/* Neither counted nor failed: only recorded, with the descriptor's last
 * name, so that the explorer knows which descriptor numbers are reused. */
int
close(int fd)
{
	char target[512];
	const char *p = NULL;
	unsigned long long ino = 0;

	init();
	REAL(close);
	if (active && record_path != NULL &&
	    (p = fd_target(fd, target, sizeof(target))) != NULL)
		ino = ino_of_fd(fd);
	if (real.close(fd) < 0)
		return -1;
	if (p != NULL)
		record("close", fd, ino, -1, 0, 0, 0, p, NULL, NULL);
	return 0;
}

static int
mkdir_common(int dirfd, const char *path, mode_t mode, int at)
{
	char full[PATH_MAX];
	const char *name;
	int r;

	init();
	name = resolve_at(at ? dirfd : AT_FDCWD, path, full, sizeof(full));
	if (at) {
		REAL(mkdirat);
		r = real.mkdirat(dirfd, path, mode);
	} else {
		REAL(mkdir);
		r = real.mkdir(path, mode);
	}
	if (r == 0 && active && record_path != NULL && name != NULL &&
	    path_matches(name))
		record("mkdir", -1, ino_of_path(at ? dirfd : AT_FDCWD, path),
		       -1, 0, 1, 0, name, NULL, NULL);
	return r;
}

int
mkdir(const char *path, mode_t mode)
{
	return mkdir_common(AT_FDCWD, path, mode, 0);
}

int
mkdirat(int dirfd, const char *path, mode_t mode)
{
	return mkdir_common(dirfd, path, mode, 1);
}
