#include "netio.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sysutil.h"
#include "tls.h"

void
net_init(struct netio *io, int in_fd, int out_fd, unsigned timeout_s)
{
	int flags;

	memset(io, 0, offsetof(struct netio, in));
	io->in_fd = in_fd;
	io->out_fd = out_fd;
	io->timeout_ms = timeout_s > 0x7fffffff / 1000
				 ? 0x7fffffff
				 : (int)(timeout_s * 1000);
	io->out_failed = NET_OK;
	/* Nothing may block past the timeout: poll decides when to wait
	 * (OpenSSL, too, must see EAGAIN rather than block). */
	flags = fcntl(out_fd, F_GETFL);
	if (flags >= 0)
		(void)fcntl(out_fd, F_SETFL, flags | O_NONBLOCK);
	flags = fcntl(in_fd, F_GETFL);
	if (flags >= 0)
		(void)fcntl(in_fd, F_SETFL, flags | O_NONBLOCK);
}

static bool
is_stream_socket(int fd)
{
	int type;
	socklen_t len = sizeof(type);

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
	       type == SOCK_STREAM;
}

/* The descriptor turns blocking, so that recv(2) waits, up to the idle
 * timeout; every other read and every write passes MSG_DONTWAIT, and so
 * stays as non-blocking as net_init made it (a client that sends while
 * not reading must not block our writes: wait_writable). */
int
net_wait_in_recv(struct netio *io)
{
	struct timeval tv = {.tv_sec = io->timeout_ms / 1000,
			     .tv_usec = (suseconds_t)(io->timeout_ms % 1000) *
					1000};
	int flags;

	if (io->tls != NULL || io->deadline_ms != 0 ||
	    !is_stream_socket(io->in_fd) || !is_stream_socket(io->out_fd))
		return -1;
	if (setsockopt(io->in_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) <
		    0 ||
	    (flags = fcntl(io->in_fd, F_GETFL)) < 0 ||
	    fcntl(io->in_fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		return -1;
	io->in_recv = true;
	return 0;
}

/* Make room at the end of the input buffer by moving unread bytes to its
 * start. */
static void
compact_input(struct netio *io)
{
	size_t old_end = io->in_start + io->in_len;

	if (io->in_start == 0)
		return;
	memmove(io->in, io->in + io->in_start, io->in_len);
	/* Leave no stale copy of a line behind: it may hold a password. */
	explicit_bzero(io->in + io->in_len, old_end - io->in_len);
	io->in_start = 0;
}

/* wait: block (in recv, up to SO_RCVTIMEO); only with in_recv. */
static ssize_t
transport_read(struct netio *io, void *buf, size_t n, bool wait)
{
	if (io->tls != NULL)
		return tls_read(io->tls, buf, n);
	if (io->in_recv)
		return recv(io->in_fd, buf, n, wait ? 0 : MSG_DONTWAIT);
	return read(io->in_fd, buf, n);
}

/* One read into the free tail of the input buffer. Without wait, nothing
 * to read is NET_OK; with it, the idle timeout (NET_TIMEOUT). */
static enum net_status
fill_input(struct netio *io, bool wait)
{
	ssize_t n;

	compact_input(io);
	if (io->in_len == sizeof(io->in))
		return NET_OK;
	do
		n = transport_read(io, io->in + io->in_len,
				   sizeof(io->in) - io->in_len, wait);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return wait ? NET_TIMEOUT : NET_OK;
	if (n < 0)
		return NET_ERROR;
	if (n == 0) {
		io->in_eof = true;
		return NET_EOF;
	}
	io->in_len += n;
	return NET_OK;
}

int
net_wait_ms(const struct netio *io)
{
	int64_t left;

	if (io->deadline_ms == 0)
		return io->timeout_ms;
	left = io->deadline_ms - sys_now_ms();
	if (left <= 0)
		return 0;
	return left < io->timeout_ms ? (int)left : io->timeout_ms;
}

void
net_set_deadline(struct netio *io, unsigned seconds)
{
	io->deadline_ms = sys_now_ms() + (int64_t)seconds * 1000;
}

/* Under TLS, wait the way OpenSSL asked. Replies before login are small,
 * so there is no need to read ahead while a write waits. */
static enum net_status
wait_tls(struct netio *io)
{
	bool out = tls_wants_write(io->tls);
	struct pollfd pfd = {
		.fd = out ? io->out_fd : io->in_fd,
		.events = out ? POLLOUT : POLLIN,
	};
	int r = sys_poll(&pfd, 1, net_wait_ms(io));

	if (r < 0)
		return NET_ERROR;
	return r == 0 ? NET_TIMEOUT : NET_OK;
}

/* Wait until out_fd is writable; meanwhile keep reading input while it
 * fits, so a client that is still sending cannot deadlock with us. */
static enum net_status
wait_writable(struct netio *io)
{
	struct pollfd pfd[2];
	int nfds, r;

	if (io->tls != NULL)
		return wait_tls(io);
	for (;;) {
		pfd[0] = (struct pollfd){.fd = io->out_fd, .events = POLLOUT};
		nfds = 1;
		if (!io->in_eof && io->in_len < sizeof(io->in)) {
			pfd[1] = (struct pollfd){.fd = io->in_fd,
						 .events = POLLIN};
			nfds = 2;
		}
		r = sys_poll(pfd, nfds, net_wait_ms(io));
		if (r < 0)
			return NET_ERROR;
		if (r == 0)
			return NET_TIMEOUT;
		if (nfds == 2 && (pfd[1].revents & (POLLIN | POLLHUP)) &&
		    fill_input(io, false) == NET_ERROR)
			return NET_ERROR;
		if (pfd[0].revents & (POLLOUT | POLLERR | POLLHUP))
			return NET_OK;
	}
}

/* What is still to go of the queue followed by len octets of data, once
 * done octets of the two went out: at most two pieces. */
static int
pending_iov(struct netio *io, const char *data, size_t len, size_t done,
	    struct iovec iov[2])
{
	size_t skip = 0;
	int k = 0;

	if (done < io->out_len)
		iov[k++] = (struct iovec){io->out + done, io->out_len - done};
	else
		skip = done - io->out_len;
	if (skip < len)
		iov[k++] = (struct iovec){(char *)data + skip, len - skip};
	return k;
}

/* Write out the queue and then len octets of data (none: NULL, 0), with
 * writev(2) so that data is not copied first, waiting while the kernel
 * takes nothing. Under TLS, data must be empty: OpenSSL writes one
 * buffer at a time. */
static int
write_out(struct netio *io, const char *data, size_t len)
{
	struct iovec iov[2];
	size_t done = 0, total = io->out_len + len;
	ssize_t n;
	enum net_status st;

	if (io->out_failed != NET_OK)
		return -1;
	while (done < total) {
		if (io->tls != NULL)
			n = tls_write(io->tls, io->out + done,
				      io->out_len - done);
		else if (io->in_recv)
			n = sendmsg(io->out_fd,
				    &(struct msghdr){
					    .msg_iov = iov,
					    .msg_iovlen = pending_iov(
						    io, data, len, done, iov)},
				    MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			n = writev(io->out_fd, iov,
				   pending_iov(io, data, len, done, iov));
		if (n > 0) {
			done += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			st = wait_writable(io);
			if (st == NET_OK)
				continue;
			io->out_failed = st;
			return -1;
		}
		io->out_failed = NET_ERROR;
		return -1;
	}
	io->out_len = 0;
	return 0;
}

int
net_flush(struct netio *io)
{
	return write_out(io, NULL, 0);
}

int
net_write(struct netio *io, const void *data, size_t len)
{
	const char *p = data;
	size_t n;

	/* A block that would fill the buffer anyway (an encoded message,
	 * mostly) goes out with the queue in one writev, uncopied. */
	if (io->tls == NULL && len >= NET_DIRECT_WRITE_MIN &&
	    len >= sizeof(io->out) - io->out_len)
		return write_out(io, p, len);
	while (len > 0) {
		if (io->out_failed != NET_OK)
			return -1;
		if (io->out_len == sizeof(io->out) && net_flush(io) < 0)
			return -1;
		n = sizeof(io->out) - io->out_len;
		if (n > len)
			n = len;
		memcpy(io->out + io->out_len, p, n);
		io->out_len += n;
		p += n;
		len -= n;
	}
	return io->out_failed == NET_OK ? 0 : -1;
}

int
net_sink(void *io, const void *data, size_t len)
{
	return net_write(io, data, len);
}

int
net_reply(struct netio *io, const char *fmt, ...)
{
	char line[REPLY_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 3)
		n = sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	return net_write(io, line, n);
}

/* Wait for input; the idle timer restarts with every wait (RFC 1939 §3). */
static enum net_status
wait_readable(struct netio *io)
{
	struct pollfd pfd = {.fd = io->in_fd, .events = POLLIN};
	int r;

	if (io->tls != NULL) {
		if (tls_pending(io->tls))
			return NET_OK;
		return wait_tls(io);
	}
	r = sys_poll(&pfd, 1, net_wait_ms(io));
	if (r < 0)
		return NET_ERROR;
	return r == 0 ? NET_TIMEOUT : NET_OK;
}

/* Take the complete line at the front of the input, ending at lf, into
 * line; or drop it unread if it is the tail of an overlong line. */
static enum net_status
take_line(struct netio *io, char *lf, char *line, size_t max, size_t *len_r)
{
	char *start = io->in + io->in_start;
	size_t len = lf - start, consumed = len + 1;
	enum net_status st;

	io->in_start += consumed;
	io->in_len -= consumed;
	if (io->in_len == 0)
		io->in_start = 0;
	if (len > 0 && start[len - 1] == '\r')
		len--;
	/* max counts CRLF, whatever ending was sent. */
	st = io->discarding ? NET_EOF : len + 2 > max ? NET_TOO_LONG : NET_OK;
	if (st == NET_OK) {
		memcpy(line, start, len);
		line[len] = '\0';
		*len_r = len;
	}
	/* The caller wipes its copy after use; ours goes now: it may be a
	 * PASS line (design.md §3). */
	explicit_bzero(start, consumed);
	io->discarding = false;
	return st;
}

/* DEC-03: one error per overlong line; whatever else it holds is dropped
 * unread, never run. True at the first drop of a line. */
static bool
drop_overlong(struct netio *io)
{
	bool first = !io->discarding;

	explicit_bzero(io->in, io->in_start + io->in_len);
	io->in_start = io->in_len = 0;
	io->discarding = true;
	return first;
}

/* Out of complete lines: the batched replies go out now. While they do,
 * more input may arrive (wait_writable reads ahead); only if none did,
 * wait for more. NET_OK: look at the input again. */
static enum net_status
await_input(struct netio *io)
{
	size_t had = io->in_len;
	enum net_status st;

	if (net_flush(io) < 0)
		return io->out_failed;
	if (io->in_len != had || io->in_eof)
		return NET_OK;
	if (io->in_recv && io->deadline_ms == 0)
		st = fill_input(io, true);
	else if ((st = wait_readable(io)) == NET_OK)
		st = fill_input(io, false);
	/* End of input shows as in_eof, for the lines before it. */
	return st == NET_EOF ? NET_OK : st;
}

enum net_status
net_read_line(struct netio *io, char *line, size_t max, size_t *len_r)
{
	enum net_status st;
	bool tail;
	char *lf;

	/* The pre-login deadline holds however busy the client is: lines
	 * already read ahead, or arriving faster than they are answered,
	 * would otherwise never make a wait time out. */
	if (io->deadline_ms != 0 && sys_now_ms() >= io->deadline_ms)
		return NET_TIMEOUT;
	for (;;) {
		lf = memchr(io->in + io->in_start, '\n', io->in_len);
		if (lf != NULL) {
			tail = io->discarding;
			st = take_line(io, lf, line, max, len_r);
			if (!tail)
				return st;
			continue;
		}
		if ((io->discarding || io->in_len + 1 > max) &&
		    drop_overlong(io))
			return NET_TOO_LONG;
		if (io->in_eof)
			return NET_EOF;
		if ((st = await_input(io)) != NET_OK)
			return st;
	}
}

static void
discard_input(struct netio *io)
{
	explicit_bzero(io->in, sizeof(io->in));
	io->in_start = io->in_len = 0;
	io->discarding = false;
}

int
net_start_tls(struct netio *io)
{
	struct tls_conn *tls;

	discard_input(io);
	tls = tls_accept(io->in_fd, io->out_fd, net_wait_ms(io));
	if (tls == NULL)
		return -1;
	io->tls = tls;
	return 0;
}

size_t
net_take_input(struct netio *io, char *buf, size_t size)
{
	size_t n = io->in_len < size ? io->in_len : size;

	memcpy(buf, io->in + io->in_start, n);
	discard_input(io);
	return n;
}

int
net_preload(struct netio *io, const char *data, size_t len)
{
	if (len > sizeof(io->in) - io->in_start - io->in_len)
		return -1;
	memcpy(io->in + io->in_start + io->in_len, data, len);
	io->in_len += len;
	return 0;
}
