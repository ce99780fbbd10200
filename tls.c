#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdlib.h>

#include "log.h"
#include "sysutil.h"

struct tls_conn {
	SSL *ssl;
	bool want_write;
};

static SSL_CTX *tls_ctx;

static void
log_openssl(int priority, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	log_msg(priority, "%s: %s", what, e ? buf : "failed");
	ERR_clear_error();
}

int
tls_setup(const char *cert_file, const char *key_file)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		log_openssl(LOG_ERR, "TLS setup");
		return -1;
	}
	/* R8314-05: TLS 1.2 or newer; renegotiation and session resumption
	 * buy nothing for one short session per process. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		log_openssl(LOG_ERR, cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		log_openssl(LOG_ERR, key_file);
		goto fail;
	}
	tls_ctx = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -1;
}

bool
tls_available(void)
{
	return tls_ctx != NULL;
}

static int
wait_fd(int fd, bool for_write, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = for_write ? POLLOUT : POLLIN};

	return sys_poll(&pfd, 1, timeout_ms);
}

struct tls_conn *
tls_accept(int in_fd, int out_fd, int timeout_ms)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	int64_t start;
	int r, err, left;

	/* Separate descriptors work too: inetd may give a pipe pair. */
	if (t == NULL || (t->ssl = SSL_new(tls_ctx)) == NULL ||
	    SSL_set_rfd(t->ssl, in_fd) != 1 ||
	    SSL_set_wfd(t->ssl, out_fd) != 1) {
		log_openssl(LOG_ERR, "TLS connection");
		goto fail;
	}
	/* timeout_ms bounds the whole handshake, not each step: a client
	 * that trickles its ClientHello gets no more time than one that
	 * sends nothing. */
	start = sys_now_ms();
	while ((r = SSL_accept(t->ssl)) != 1) {
		err = SSL_get_error(t->ssl, r);
		if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
			/* Any client can cause this: not an error of ours. */
			log_openssl(LOG_NOTICE, "TLS handshake");
			goto fail;
		}
		left = timeout_ms - (int)(sys_now_ms() - start);
		if (left <= 0 || (err == SSL_ERROR_WANT_WRITE
					  ? wait_fd(out_fd, true, left) <= 0
					  : wait_fd(in_fd, false, left) <= 0)) {
			log_msg(LOG_NOTICE, "TLS handshake timed out");
			goto fail;
		}
	}
	return t;
fail:
	if (t != NULL)
		SSL_free(t->ssl);
	free(t);
	return NULL;
}

/* Map an SSL_read/SSL_write result to read(2)-like conventions. */
static ssize_t
io_result(struct tls_conn *t, int r)
{
	int err;

	if (r > 0)
		return r;
	err = SSL_get_error(t->ssl, r);
	switch (err) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		t->want_write = err == SSL_ERROR_WANT_WRITE;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		/* A peer that closes without close_notify: end of stream. */
		if (ERR_peek_error() == 0 && (r == 0 || errno == 0))
			return 0;
		/* fall through */
	default:
		ERR_clear_error();
		errno = EIO;
		return -1;
	}
}

ssize_t
tls_read(struct tls_conn *t, void *buf, size_t n)
{
	ERR_clear_error();
	return io_result(
		t, SSL_read(t->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n));
}

ssize_t
tls_write(struct tls_conn *t, const void *buf, size_t n)
{
	ERR_clear_error();
	return io_result(
		t, SSL_write(t->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n));
}

bool
tls_wants_write(const struct tls_conn *t)
{
	return t->want_write;
}

bool
tls_pending(const struct tls_conn *t)
{
	return SSL_pending(t->ssl) > 0;
}

const char *
tls_version(const struct tls_conn *t)
{
	return SSL_get_version(t->ssl);
}

void
tls_close(struct tls_conn *t)
{
	if (t == NULL)
		return;
	/* One close_notify; the peer's answer is not waited for. */
	if (SSL_shutdown(t->ssl) < 0)
		ERR_clear_error();
	SSL_free(t->ssl);
	free(t);
}
