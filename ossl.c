#include "ossl.h"

#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stddef.h>

#include "log.h"
#include "sysutil.h"

/* The soname of OpenSSL 3's libssl: the ABI these prototypes are. */
_Static_assert(OPENSSL_VERSION_MAJOR == 3,
	       "ossl.c loads OpenSSL 3 (libssl.so.3): port it to this version");
#define OSSL_LIBSSL "libssl.so.3"

/* Every OpenSSL function pop3d calls, as the headers declare it: a
 * prototype that differs from OpenSSL's does not compile. */
static struct {
	__typeof__(BIO_free) *BIO_free;
	__typeof__(BIO_new_mem_buf) *BIO_new_mem_buf;
	__typeof__(CRYPTO_set_mem_functions) *CRYPTO_set_mem_functions;
	__typeof__(ERR_clear_error) *ERR_clear_error;
	__typeof__(ERR_error_string_n) *ERR_error_string_n;
	__typeof__(ERR_get_error) *ERR_get_error;
	__typeof__(ERR_peek_error) *ERR_peek_error;
	__typeof__(ERR_peek_last_error) *ERR_peek_last_error;
	__typeof__(EVP_DigestFinal_ex) *EVP_DigestFinal_ex;
	__typeof__(EVP_DigestInit_ex2) *EVP_DigestInit_ex2;
	__typeof__(EVP_DigestUpdate) *EVP_DigestUpdate;
	__typeof__(EVP_MD_CTX_free) *EVP_MD_CTX_free;
	__typeof__(EVP_MD_CTX_new) *EVP_MD_CTX_new;
	__typeof__(EVP_MD_fetch) *EVP_MD_fetch;
	__typeof__(EVP_MD_free) *EVP_MD_free;
	__typeof__(EVP_PKEY_free) *EVP_PKEY_free;
	__typeof__(PEM_read_bio_PrivateKey) *PEM_read_bio_PrivateKey;
	__typeof__(PEM_read_bio_X509) *PEM_read_bio_X509;
	__typeof__(PEM_read_bio_X509_AUX) *PEM_read_bio_X509_AUX;
	__typeof__(SSL_CTX_check_private_key) *SSL_CTX_check_private_key;
	__typeof__(SSL_CTX_ctrl) *SSL_CTX_ctrl;
	__typeof__(SSL_CTX_free) *SSL_CTX_free;
	__typeof__(SSL_CTX_get0_certificate) *SSL_CTX_get0_certificate;
	__typeof__(SSL_CTX_new) *SSL_CTX_new;
	__typeof__(SSL_CTX_set_num_tickets) *SSL_CTX_set_num_tickets;
	__typeof__(SSL_CTX_set_options) *SSL_CTX_set_options;
	__typeof__(SSL_CTX_use_PrivateKey) *SSL_CTX_use_PrivateKey;
	__typeof__(SSL_CTX_use_cert_and_key) *SSL_CTX_use_cert_and_key;
	__typeof__(SSL_CTX_use_certificate) *SSL_CTX_use_certificate;
	__typeof__(SSL_accept) *SSL_accept;
	__typeof__(SSL_free) *SSL_free;
	__typeof__(SSL_get_SSL_CTX) *SSL_get_SSL_CTX;
	__typeof__(SSL_get_certificate) *SSL_get_certificate;
	__typeof__(SSL_get_error) *SSL_get_error;
	__typeof__(SSL_get_version) *SSL_get_version;
	__typeof__(SSL_new) *SSL_new;
	__typeof__(SSL_pending) *SSL_pending;
	__typeof__(SSL_read) *SSL_read;
	__typeof__(SSL_set_rfd) *SSL_set_rfd;
	__typeof__(SSL_set_wfd) *SSL_set_wfd;
	__typeof__(SSL_shutdown) *SSL_shutdown;
	__typeof__(SSL_use_cert_and_key) *SSL_use_cert_and_key;
	__typeof__(SSL_write) *SSL_write;
	__typeof__(TLS_server_method) *TLS_server_method;
	__typeof__(X509_free) *X509_free;
	__typeof__(X509_up_ref) *X509_up_ref;
} fn;

#define SYMBOL(name)                                                           \
	{                                                                      \
#name, (void **)&fn.name                                       \
	}

static const struct sys_dlsym symbols[] = {
	SYMBOL(BIO_free),
	SYMBOL(BIO_new_mem_buf),
	SYMBOL(CRYPTO_set_mem_functions),
	SYMBOL(ERR_clear_error),
	SYMBOL(ERR_error_string_n),
	SYMBOL(ERR_get_error),
	SYMBOL(ERR_peek_error),
	SYMBOL(ERR_peek_last_error),
	SYMBOL(EVP_DigestFinal_ex),
	SYMBOL(EVP_DigestInit_ex2),
	SYMBOL(EVP_DigestUpdate),
	SYMBOL(EVP_MD_CTX_free),
	SYMBOL(EVP_MD_CTX_new),
	SYMBOL(EVP_MD_fetch),
	SYMBOL(EVP_MD_free),
	SYMBOL(EVP_PKEY_free),
	SYMBOL(PEM_read_bio_PrivateKey),
	SYMBOL(PEM_read_bio_X509),
	SYMBOL(PEM_read_bio_X509_AUX),
	SYMBOL(SSL_CTX_check_private_key),
	SYMBOL(SSL_CTX_ctrl),
	SYMBOL(SSL_CTX_free),
	SYMBOL(SSL_CTX_get0_certificate),
	SYMBOL(SSL_CTX_new),
	SYMBOL(SSL_CTX_set_num_tickets),
	SYMBOL(SSL_CTX_set_options),
	SYMBOL(SSL_CTX_use_PrivateKey),
	SYMBOL(SSL_CTX_use_cert_and_key),
	SYMBOL(SSL_CTX_use_certificate),
	SYMBOL(SSL_accept),
	SYMBOL(SSL_free),
	SYMBOL(SSL_get_SSL_CTX),
	SYMBOL(SSL_get_certificate),
	SYMBOL(SSL_get_error),
	SYMBOL(SSL_get_version),
	SYMBOL(SSL_new),
	SYMBOL(SSL_pending),
	SYMBOL(SSL_read),
	SYMBOL(SSL_set_rfd),
	SYMBOL(SSL_set_wfd),
	SYMBOL(SSL_shutdown),
	SYMBOL(SSL_use_cert_and_key),
	SYMBOL(SSL_write),
	SYMBOL(TLS_server_method),
	SYMBOL(X509_free),
	SYMBOL(X509_up_ref),
};

static bool loaded;

bool
ossl_loaded(void)
{
	return loaded;
}

/* Loading maps libssl and libcrypto and runs their constructors, as
 * linking them did at every start; the lookups are done all at once so
 * that a missing function shows at the first use, not in the middle of a
 * handshake. Neither library is ever unloaded. */
bool
ossl_load(void)
{
	const char *missing;
	void *lib;

	if (loaded)
		return true;
	lib = dlopen(OSSL_LIBSSL, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		log_msg(LOG_ERR, "cannot load OpenSSL: %s", dlerror());
		return false;
	}
	missing =
		sys_dlbind(lib, symbols, sizeof(symbols) / sizeof(symbols[0]));
	if (missing != NULL) {
		log_msg(LOG_ERR, "OpenSSL (%s) has no %s", OSSL_LIBSSL,
			missing);
		return false;
	}
	loaded = true;
	return true;
}

/* The functions themselves: each loads OpenSSL if need be. A process
 * that cannot load it cannot go on (a digest or a handshake half done
 * is worse than a clear end). */
static void
need(void)
{
	if (!ossl_load())
		fatal("OpenSSL is needed but cannot be loaded");
}

int
BIO_free(BIO *a)
{
	need();
	return fn.BIO_free(a);
}

BIO *
BIO_new_mem_buf(const void *buf, int len)
{
	need();
	return fn.BIO_new_mem_buf(buf, len);
}

int
CRYPTO_set_mem_functions(CRYPTO_malloc_fn malloc_fn,
			 CRYPTO_realloc_fn realloc_fn, CRYPTO_free_fn free_fn)
{
	need();
	return fn.CRYPTO_set_mem_functions(malloc_fn, realloc_fn, free_fn);
}

void
ERR_clear_error(void)
{
	need();
	fn.ERR_clear_error();
}

void
ERR_error_string_n(unsigned long e, char *buf, size_t len)
{
	need();
	fn.ERR_error_string_n(e, buf, len);
}

unsigned long
ERR_get_error(void)
{
	need();
	return fn.ERR_get_error();
}

unsigned long
ERR_peek_error(void)
{
	need();
	return fn.ERR_peek_error();
}

unsigned long
ERR_peek_last_error(void)
{
	need();
	return fn.ERR_peek_last_error();
}

int
EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s)
{
	need();
	return fn.EVP_DigestFinal_ex(ctx, md, s);
}

int
EVP_DigestInit_ex2(EVP_MD_CTX *ctx, const EVP_MD *type,
		   const OSSL_PARAM params[])
{
	need();
	return fn.EVP_DigestInit_ex2(ctx, type, params);
}

int
EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt)
{
	need();
	return fn.EVP_DigestUpdate(ctx, d, cnt);
}

void
EVP_MD_CTX_free(EVP_MD_CTX *ctx)
{
	need();
	fn.EVP_MD_CTX_free(ctx);
}

EVP_MD_CTX *
EVP_MD_CTX_new(void)
{
	need();
	return fn.EVP_MD_CTX_new();
}

EVP_MD *
EVP_MD_fetch(OSSL_LIB_CTX *ctx, const char *algorithm, const char *properties)
{
	need();
	return fn.EVP_MD_fetch(ctx, algorithm, properties);
}

void
EVP_MD_free(EVP_MD *md)
{
	need();
	fn.EVP_MD_free(md);
}

void
EVP_PKEY_free(EVP_PKEY *pkey)
{
	need();
	fn.EVP_PKEY_free(pkey);
}

EVP_PKEY *
PEM_read_bio_PrivateKey(BIO *out, EVP_PKEY **x, pem_password_cb *cb, void *u)
{
	need();
	return fn.PEM_read_bio_PrivateKey(out, x, cb, u);
}

X509 *
PEM_read_bio_X509(BIO *out, X509 **x, pem_password_cb *cb, void *u)
{
	need();
	return fn.PEM_read_bio_X509(out, x, cb, u);
}

X509 *
PEM_read_bio_X509_AUX(BIO *out, X509 **x, pem_password_cb *cb, void *u)
{
	need();
	return fn.PEM_read_bio_X509_AUX(out, x, cb, u);
}

int
SSL_CTX_check_private_key(const SSL_CTX *ctx)
{
	need();
	return fn.SSL_CTX_check_private_key(ctx);
}

long
SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg)
{
	need();
	return fn.SSL_CTX_ctrl(ctx, cmd, larg, parg);
}

void
SSL_CTX_free(SSL_CTX *ctx)
{
	need();
	fn.SSL_CTX_free(ctx);
}

X509 *
SSL_CTX_get0_certificate(const SSL_CTX *ctx)
{
	need();
	return fn.SSL_CTX_get0_certificate(ctx);
}

SSL_CTX *
SSL_CTX_new(const SSL_METHOD *meth)
{
	need();
	return fn.SSL_CTX_new(meth);
}

int
SSL_CTX_set_num_tickets(SSL_CTX *ctx, size_t num)
{
	need();
	return fn.SSL_CTX_set_num_tickets(ctx, num);
}

uint64_t
SSL_CTX_set_options(SSL_CTX *ctx, uint64_t op)
{
	need();
	return fn.SSL_CTX_set_options(ctx, op);
}

int
SSL_CTX_use_PrivateKey(SSL_CTX *ctx, EVP_PKEY *pkey)
{
	need();
	return fn.SSL_CTX_use_PrivateKey(ctx, pkey);
}

int
SSL_CTX_use_cert_and_key(SSL_CTX *ctx, X509 *x509, EVP_PKEY *privatekey,
			 STACK_OF(X509) * chain, int override)
{
	need();
	return fn.SSL_CTX_use_cert_and_key(ctx, x509, privatekey, chain,
					   override);
}

int
SSL_CTX_use_certificate(SSL_CTX *ctx, X509 *x)
{
	need();
	return fn.SSL_CTX_use_certificate(ctx, x);
}

int
SSL_accept(SSL *ssl)
{
	need();
	return fn.SSL_accept(ssl);
}

void
SSL_free(SSL *ssl)
{
	need();
	fn.SSL_free(ssl);
}

SSL_CTX *
SSL_get_SSL_CTX(const SSL *ssl)
{
	need();
	return fn.SSL_get_SSL_CTX(ssl);
}

X509 *
SSL_get_certificate(const SSL *ssl)
{
	need();
	return fn.SSL_get_certificate(ssl);
}

int
SSL_get_error(const SSL *s, int ret_code)
{
	need();
	return fn.SSL_get_error(s, ret_code);
}

const char *
SSL_get_version(const SSL *s)
{
	need();
	return fn.SSL_get_version(s);
}

SSL *
SSL_new(SSL_CTX *ctx)
{
	need();
	return fn.SSL_new(ctx);
}

int
SSL_pending(const SSL *s)
{
	need();
	return fn.SSL_pending(s);
}

int
SSL_read(SSL *ssl, void *buf, int num)
{
	need();
	return fn.SSL_read(ssl, buf, num);
}

int
SSL_set_rfd(SSL *s, int fd)
{
	need();
	return fn.SSL_set_rfd(s, fd);
}

int
SSL_set_wfd(SSL *s, int fd)
{
	need();
	return fn.SSL_set_wfd(s, fd);
}

int
SSL_shutdown(SSL *s)
{
	need();
	return fn.SSL_shutdown(s);
}

int
SSL_use_cert_and_key(SSL *ssl, X509 *x509, EVP_PKEY *privatekey,
		     STACK_OF(X509) * chain, int override)
{
	need();
	return fn.SSL_use_cert_and_key(ssl, x509, privatekey, chain, override);
}

int
SSL_write(SSL *ssl, const void *buf, int num)
{
	need();
	return fn.SSL_write(ssl, buf, num);
}

const SSL_METHOD *
TLS_server_method(void)
{
	need();
	return fn.TLS_server_method();
}

void
X509_free(X509 *a)
{
	need();
	fn.X509_free(a);
}

int
X509_up_ref(X509 *a)
{
	need();
	return fn.X509_up_ref(a);
}
