/* --login-delay's state: the time of the user's last successful login
 * (design.md §4.10). The session, as the user, checks it before opening
 * the maildrop and records it just before the +OK to the login, which is
 * where RFC 2449 §6.5 starts counting. */
#include "logindelay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define NS_PER_S 1000000000LL

/* The per-uid directory, never through a symlink (it is root's
 * <journal-dir>/<uid>, made by the monitor: journal_prepare). */
static int
open_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd < 0)
		log_msg(LOG_ERR, "login delay: %s: %m", dir);
	return dfd;
}

/* Nanoseconds from then to now, or -1 if then is after now. Saturates
 * at INT64_MAX: a user can set the file's time to anything. */
static int64_t
elapsed_ns(const struct timespec *then, const struct timespec *now)
{
	int64_t s;

	if (then->tv_sec > now->tv_sec ||
	    (then->tv_sec == now->tv_sec && then->tv_nsec > now->tv_nsec))
		return -1;
	if (__builtin_sub_overflow((int64_t)now->tv_sec, (int64_t)then->tv_sec,
				   &s) ||
	    s >= INT64_MAX / NS_PER_S - 1)
		return INT64_MAX;
	return s * NS_PER_S + (now->tv_nsec - then->tv_nsec);
}

bool
logindelay_too_soon(const char *dir, unsigned delay, const struct timespec *now,
		    unsigned *left_r)
{
	int64_t ns, left;
	struct stat st;
	int dfd;

	if ((dfd = open_dir(dir)) < 0)
		return false;
	if (fstatat(dfd, LOGINDELAY_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT) /* ENOENT: no login recorded yet */
			log_msg(LOG_ERR, "login delay: %s/%s: %m", dir,
				LOGINDELAY_FILE);
		close(dfd);
		return false;
	}
	close(dfd);
	if (!S_ISREG(st.st_mode)) {
		log_msg(LOG_ERR, "login delay: %s/%s: not a regular file", dir,
			LOGINDELAY_FILE);
		return false;
	}
	if ((ns = elapsed_ns(&st.st_mtim, now)) < 0) {
		/* Trusted, it could refuse for as long as the clock was set
		 * back; it is replaced at this login. */
		log_msg(LOG_WARNING,
			"login delay: %s/%s: last login in the future (clock "
			"set back?): ignored",
			dir, LOGINDELAY_FILE);
		return false;
	}
	if (ns >= (int64_t)delay * NS_PER_S)
		return false;
	left = (int64_t)delay * NS_PER_S - ns;
	*left_r = (unsigned)((left + NS_PER_S - 1) / NS_PER_S);
	return true;
}

int
logindelay_record(const char *dir, const struct timespec *now)
{
	const struct timespec times[2] = {*now, *now};
	struct stat st;
	int dfd, fd, r = -1;

	if ((dfd = open_dir(dir)) < 0)
		return -1;
	/* O_NONBLOCK: a FIFO planted under the name cannot hang us. */
	fd = openat(dfd, LOGINDELAY_FILE,
		    O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
		    0600);
	if (fd < 0)
		log_msg(LOG_ERR, "login delay: %s/%s: %m", dir,
			LOGINDELAY_FILE);
	else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		log_msg(LOG_ERR, "login delay: %s/%s: not a regular file", dir,
			LOGINDELAY_FILE);
	else if (futimens(fd, times) < 0)
		log_msg(LOG_ERR, "login delay: %s/%s: futimens: %m", dir,
			LOGINDELAY_FILE);
	else
		r = 0;
	if (fd >= 0)
		close(fd);
	close(dfd);
	return r;
}
