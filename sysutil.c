#include "sysutil.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t
sys_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
sys_undumpable(void)
{
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : -1;
}

int
sys_close_others(const int *keep, size_t n)
{
	int sorted[8], t;
	unsigned lo = 3;

	if (n > sizeof(sorted) / sizeof(sorted[0])) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sorted, keep, n * sizeof(*keep));
	for (size_t i = 1; i < n; i++) {
		size_t j = i;

		for (t = sorted[i]; j > 0 && sorted[j - 1] > t; j--)
			sorted[j] = sorted[j - 1];
		sorted[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		if (sorted[i] < (int)lo)
			continue;
		if ((unsigned)sorted[i] > lo &&
		    close_range(lo, (unsigned)sorted[i] - 1, 0) < 0)
			return -1;
		lo = (unsigned)sorted[i] + 1;
	}
	return close_range(lo, ~0U, 0);
}

int
sys_poll(struct pollfd *pfd, nfds_t nfds, int timeout_ms)
{
	int64_t end = timeout_ms < 0 ? 0 : sys_now_ms() + timeout_ms;
	int64_t left;
	int r;

	while ((r = poll(pfd, nfds, timeout_ms)) < 0 && errno == EINTR) {
		if (timeout_ms < 0)
			continue;
		left = end - sys_now_ms();
		timeout_ms = left > 0 ? (int)left : 0;
	}
	return r;
}

void
sys_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

ssize_t
sys_pread_full(int fd, void *buf, size_t n, off_t at)
{
	char *p = buf;
	size_t done = 0;
	ssize_t r;

	while (done < n) {
		r = pread(fd, p + done, n - done, at + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += r;
	}
	return done;
}

int
sys_lstat_stamp(const char *path, struct file_stamp *s)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return -1;
	s->ino = (uint64_t)st.st_ino;
	s->ctime_sec = (int64_t)st.st_ctim.tv_sec;
	s->ctime_nsec = (uint32_t)st.st_ctim.tv_nsec;
	return 0;
}

bool
sys_same_stamp(const struct file_stamp *a, const struct file_stamp *b)
{
	return a->ino == b->ino && a->ctime_sec == b->ctime_sec &&
	       a->ctime_nsec == b->ctime_nsec;
}

bool
sys_ends_with(const char *name, const char *suffix)
{
	size_t n = strlen(name), k = strlen(suffix);

	return n > k && strcmp(name + n - k, suffix) == 0;
}

const char *
sys_dlbind(void *lib, const struct sys_dlsym *syms, size_t n)
{
	void *sym;

	for (size_t i = 0; i < n; i++) {
		if ((sym = dlsym(lib, syms[i].name)) == NULL)
			return syms[i].name;
		*syms[i].slot = sym;
	}
	return NULL;
}
