/* Shared by the libFuzzer harnesses (make fuzz): a scratch directory,
 * files, a growable buffer, and check(), which abort()s with a message so
 * that libFuzzer keeps the input as a crash. Header-only: each harness is
 * one translation unit linked with the module objects. */
#ifndef POP3D_FUZZ_H
#define POP3D_FUZZ_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "sysutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* --- scratch files ------------------------------------------------------ */

static char fuzz_dir[256];

static inline int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static inline void
fuzz_dir_remove(void)
{
	if (fuzz_dir[0] != '\0')
		nftw(fuzz_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Sanitizer runtime: prints a line on the report descriptor, which
 * libFuzzer keeps open when -close_fd_mask=2 silences stderr (and with it
 * pop3d's log lines). */
void __sanitizer_report_error_summary(const char *error_summary);

static inline void __attribute__((format(printf, 1, 2), noreturn))
fuzz_fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "fuzz check failed: ");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	va_end(ap);
	__sanitizer_report_error_summary(msg);
	/* libFuzzer leaves by _Exit after a deadly signal: no atexit. */
	fuzz_dir_remove();
	abort();
}

#define check(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond))                                                   \
			fuzz_fail(__VA_ARGS__);                                \
	} while (0)

/* Is a name in a journal directory a spool's session lock file? Every
 * login makes one and it stays: no journal left behind. */
static inline bool
fuzz_session_lock_file(const char *name)
{
	return sys_ends_with(name, JOURNAL_SESSION_SUFFIX);
}

/* Equal octet strings; either may be empty (and its pointer NULL). */
static inline bool
bytes_eq(const void *a, size_t an, const void *b, size_t bn)
{
	return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* --- a growable buffer ------------------------------------------------ */

struct fbuf {
	char *p;
	size_t len, cap;
};

static inline void
fbuf_add(struct fbuf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + len)
			cap *= 2;
		b->p = realloc(b->p, cap);
		check(b->p != NULL, "out of memory");
		b->cap = cap;
	}
	if (len > 0 && data != NULL) /* NULL: room only, left unset */
		memcpy(b->p + b->len, data, len);
	b->len += len;
}

static inline void
fbuf_str(struct fbuf *b, const char *s)
{
	fbuf_add(b, s, strlen(s));
}

static inline void
fbuf_free(struct fbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* A private directory for this process, removed at exit: under $TMPDIR,
 * else /dev/shm (UPDATE fsyncs; tmpfs makes that free), else /tmp. */
static inline const char *
fuzz_dir_init(const char *name)
{
	const char *base = getenv("TMPDIR");
	struct stat st;

	if (fuzz_dir[0] != '\0')
		return fuzz_dir;
	if (base == NULL || *base == '\0')
		base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode)
			       ? "/dev/shm"
			       : "/tmp";
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/pop3d-%s.XXXXXX", base, name);
	check(mkdtemp(fuzz_dir) != NULL, "mkdtemp %s: %s", fuzz_dir,
	      strerror(errno));
	atexit(fuzz_dir_remove);
	return fuzz_dir;
}

/* Replace path with exactly these bytes (a fresh inode each time, mode
 * 0600, owned by us, one link). */
static inline void
write_file(const char *path, const void *data, size_t len)
{
	const char *p = data;
	ssize_t n;
	int fd;

	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	check(fd >= 0, "%s: %s", path, strerror(errno));
	while (len > 0) {
		n = write(fd, p, len);
		check(n > 0, "%s: write: %s", path, strerror(errno));
		p += n;
		len -= n;
	}
	close(fd);
}

static inline void
read_file(const char *path, struct fbuf *b)
{
	char chunk[65536];
	ssize_t n;
	int fd;

	b->len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	check(fd >= 0, "%s: %s", path, strerror(errno));
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		fbuf_add(b, chunk, n);
	check(n == 0, "%s: read: %s", path, strerror(errno));
	close(fd);
}

#endif
