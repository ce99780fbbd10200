#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "params.h"
#include "sysutil.h"
#include "tls.h"

/* One direction of the relay: octets read from one side, not yet
 * written to the other. */
struct pipe_buf {
	char data[RELAY_BUFFER_SIZE];
	size_t start, len;
	bool eof; /* the source side is done */
};

struct relay {
	struct tls_conn *tls;
	int in_fd, out_fd, sess_fd;
	struct pipe_buf up;   /* client -> session */
	struct pipe_buf down; /* session -> client */
	bool tls_read_wants_write, tls_write_wants_write;
};

/* Move what can move without waiting. Returns true if anything did. */
static bool
step(struct relay *r)
{
	bool moved = false;
	ssize_t n;

	if (r->up.len == 0 && !r->up.eof) {
		n = tls_read(r->tls, r->up.data, sizeof(r->up.data));
		if (n > 0) {
			r->up.start = 0, r->up.len = n, moved = true;
		} else if (n == 0 || errno != EAGAIN) {
			/* The client is gone: the session sees EOF and ends
			 * without UPDATE. */
			r->up.eof = true, moved = true;
			shutdown(r->sess_fd, SHUT_WR);
		} else {
			r->tls_read_wants_write = tls_wants_write(r->tls);
		}
	}
	if (r->up.len > 0) {
		n = write(r->sess_fd, r->up.data + r->up.start, r->up.len);
		if (n > 0)
			r->up.start += n, r->up.len -= n, moved = true;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			r->up.len = 0, r->up.eof = true, moved = true;
	}
	if (r->down.len == 0 && !r->down.eof) {
		n = read(r->sess_fd, r->down.data, sizeof(r->down.data));
		if (n > 0)
			r->down.start = 0, r->down.len = n, moved = true;
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			r->down.eof = true, moved = true;
	}
	if (r->down.len > 0) {
		n = tls_write(r->tls, r->down.data + r->down.start,
			      r->down.len);
		if (n > 0) {
			r->down.start += n, r->down.len -= n, moved = true;
		} else if (n < 0 && errno == EAGAIN) {
			r->tls_write_wants_write = tls_wants_write(r->tls);
		} else {
			/* The client cannot take more: stop relaying. */
			r->down.len = 0, r->down.eof = true, moved = true;
		}
	}
	return moved;
}

static int
wait_for_io(struct relay *r, int timeout_ms)
{
	struct pollfd pfd[3];
	int nfds = 0, rd = -1;

	if (r->up.len == 0 && !r->up.eof) {
		if (tls_pending(r->tls))
			return 1;
		pfd[nfds++] = (struct pollfd){
			.fd = r->tls_read_wants_write ? r->out_fd : r->in_fd,
			.events = r->tls_read_wants_write ? POLLOUT : POLLIN};
	}
	if (r->down.len > 0)
		pfd[nfds++] = (struct pollfd){
			.fd = r->tls_write_wants_write ? r->out_fd : r->in_fd,
			.events = r->tls_write_wants_write ? POLLOUT : POLLIN};
	if (r->up.len > 0 || (r->down.len == 0 && !r->down.eof)) {
		rd = nfds;
		pfd[nfds++] = (struct pollfd){.fd = r->sess_fd};
		if (r->up.len > 0)
			pfd[rd].events |= POLLOUT;
		if (r->down.len == 0 && !r->down.eof)
			pfd[rd].events |= POLLIN;
	}
	if (nfds == 0)
		return 1;
	return sys_poll(pfd, nfds, timeout_ms);
}

void
relay_run(struct tls_conn *tls, int in_fd, int out_fd, int sess_fd,
	  int timeout_ms)
{
	static struct relay r;
	int flags = fcntl(sess_fd, F_GETFL);

	if (flags >= 0)
		(void)fcntl(sess_fd, F_SETFL, flags | O_NONBLOCK);
	memset(&r, 0, sizeof(r));
	r.tls = tls;
	r.in_fd = in_fd;
	r.out_fd = out_fd;
	r.sess_fd = sess_fd;
	/* Done when the session has said all it will and all of it went
	 * out, or when neither side can be heard any more. While the
	 * session lives, its own timeouts bound the wait: it may be busy
	 * for longer than its idle timeout (lock waits, UPDATE) with
	 * nothing moving, and its reply must still reach the client. Once
	 * it has ended, timeout_ms bounds draining its last output. */
	while (!(r.down.eof && r.down.len == 0)) {
		if (step(&r))
			continue;
		if (wait_for_io(&r, r.down.eof ? timeout_ms : -1) <= 0)
			break;
	}
}
