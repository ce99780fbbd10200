#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "params.h"
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

/* OpenSSL frees the DER of the key it parsed, its temporaries and its
 * record buffers without wiping them all: every process forked from the
 * monitor would find them in its heap. So every block OpenSSL frees is
 * wiped first, whatever it held. */
static void *
wiping_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return malloc(n);
}

static void
wiping_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

/* realloc(3) may free the old block unwiped: copy by hand instead. */
static void *
wiping_realloc(void *p, size_t n, const char *file, int line)
{
	size_t old;
	void *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		wiping_free(p, file, line);
		return NULL;
	}
	old = malloc_usable_size(p);
	if ((q = malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	wiping_free(p, file, line);
	return q;
}

/* Read a whole PEM file into memory from malloc; the caller wipes and
 * frees it (wipe_pem). Ours rather than OpenSSL's file BIO, whose stdio
 * buffer fclose frees unwiped, leaving the key's PEM in the heap of every
 * process forked later. Returns the length, or -1 after logging why. */
static ssize_t
read_pem(const char *path, char **buf_r)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0 || fstat(fd, &st) < 0) {
		log_msg(LOG_ERR, "%s: %m", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > TLS_PEM_FILE_MAX) {
		log_msg(LOG_ERR, "%s: not a regular file of at most %zu octets",
			path, TLS_PEM_FILE_MAX);
		goto fail;
	}
	/* One octet more than the size: a file that grew is seen. */
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		log_msg(LOG_ERR, "%s: out of memory", path);
		goto fail;
	}
	while (len <= (size_t)st.st_size &&
	       (n = read(fd, buf + len, (size_t)st.st_size + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_msg(LOG_ERR, "%s: %m", path);
			goto fail;
		}
		len += (size_t)n;
	}
	if (len != (size_t)st.st_size) {
		log_msg(LOG_ERR, "%s: changed while read", path);
		goto fail;
	}
	close(fd);
	*buf_r = buf;
	return (ssize_t)len;
fail:
	if (buf != NULL) {
		explicit_bzero(buf, (size_t)st.st_size + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

static void
wipe_pem(char *buf, size_t len)
{
	explicit_bzero(buf, len);
	free(buf);
}

/* The certificate, then its chain, as SSL_CTX_use_certificate_chain_file
 * does, from memory. */
static int
use_chain(SSL_CTX *ctx, const char *buf, size_t len)
{
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	X509 *x;
	int ok = 0;

	if (bio == NULL)
		return 0;
	x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
	if (x == NULL || SSL_CTX_use_certificate(ctx, x) != 1)
		goto done;
	X509_free(x);
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1)
			goto done;
	}
	/* The end of the file is the only way out of the loop that is
	 * not an error. */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE)
		goto done;
	ERR_clear_error();
	ok = 1;
	x = NULL;
done:
	X509_free(x);
	BIO_free(bio);
	return ok;
}

static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	log_msg(LOG_ERR, "TLS setup: the key is encrypted; pop3d needs it "
			 "without a passphrase (readable by root only)");
	return -1;
}

static int
use_key(SSL_CTX *ctx, const char *buf, size_t len)
{
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	EVP_PKEY *key;
	int ok = 0;

	if (bio == NULL)
		return 0;
	/* No passphrase callback of OpenSSL's: it would prompt on the
	 * terminal, and a daemon (or every exec'd session) would hang. */
	key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	/* The context holds its own reference from here on. */
	if (key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
	    SSL_CTX_check_private_key(ctx) == 1)
		ok = 1;
	EVP_PKEY_free(key);
	BIO_free(bio);
	return ok;
}

int
tls_setup(const char *cert_file, const char *key_file)
{
	static bool wiping;
	SSL_CTX *ctx;
	char *pem = NULL;
	ssize_t len;

	/* Only possible before OpenSSL's first allocation. */
	if (!wiping && CRYPTO_set_mem_functions(wiping_malloc, wiping_realloc,
						wiping_free) != 1) {
		log_msg(LOG_ERR, "TLS setup: OpenSSL's memory functions "
				 "cannot be set");
		return -1;
	}
	wiping = true;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		log_openssl(LOG_ERR, "TLS setup");
		return -1;
	}
	/* R8314-05: TLS 1.2 or newer; renegotiation and session resumption
	 * buy nothing for one short session per process. Decrypted records
	 * are wiped once read (USER and PASS arrive in one: the relay would
	 * keep it for the whole session), and idle buffers given back. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
					 SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* TLS 1.3 sends tickets despite SSL_OP_NO_TICKET: none could be
	 * used here, each connection being a new process. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	/* The certificate file may hold the key too: wiped all the same. */
	if ((len = read_pem(cert_file, &pem)) < 0)
		goto fail;
	if (!use_chain(ctx, pem, (size_t)len)) {
		wipe_pem(pem, (size_t)len);
		log_openssl(LOG_ERR, cert_file);
		goto fail;
	}
	wipe_pem(pem, (size_t)len);
	if ((len = read_pem(key_file, &pem)) < 0)
		goto fail;
	if (!use_key(ctx, pem, (size_t)len)) {
		wipe_pem(pem, (size_t)len);
		log_openssl(LOG_ERR, key_file);
		goto fail;
	}
	wipe_pem(pem, (size_t)len);
	tls_ctx = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -1;
}

void
tls_forget(void)
{
	/* Without TLS, OpenSSL is not even loaded (ossl.h): keep it so. */
	if (tls_ctx == NULL)
		return;
	/* The key's BIGNUMs are wiped as they are freed (BN_clear_free in
	 * RSA_free and EC_KEY_free) when the last reference goes. */
	SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
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

/* After the handshake the private key has no more use (no renegotiation,
 * no resumption, and TLS 1.3 signs nothing later), but the connection
 * and the context it holds would keep it for the whole session: in the
 * relay, beside whatever a client might make of it. Documented for
 * keys held in hardware, a NULL key puts the certificate's public key in
 * its place; the last reference going wipes the private one. Returns
 * 0, or -1 after logging why. */
static int
forget_key(SSL *ssl)
{
	SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
	X509 *x = SSL_get_certificate(ssl);
	X509 *cx = SSL_CTX_get0_certificate(ctx);
	int ok;

	if (x == NULL || cx == NULL)
		return 0;
	/* Our own references: each call frees the one it replaces. */
	X509_up_ref(x);
	X509_up_ref(cx);
	ok = SSL_use_cert_and_key(ssl, x, NULL, NULL, 1) == 1 &&
	     SSL_CTX_use_cert_and_key(ctx, cx, NULL, NULL, 1) == 1;
	X509_free(x);
	X509_free(cx);
	if (!ok) {
		log_openssl(LOG_ERR, "TLS: forgetting the key");
		return -1;
	}
	return 0;
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
	if (forget_key(t->ssl) < 0)
		goto fail;
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
