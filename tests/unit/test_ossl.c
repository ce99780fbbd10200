/* Unit tests for ossl.c, OpenSSL loaded at its first use: nothing of it
 * is mapped before (a start that needs no TLS and no digest pays nothing
 * for it), the first call of any of its functions loads it, and the
 * calls reach OpenSSL with their arguments intact (a SHA-256 test vector
 * from FIPS 180-2, a TLS context). */
#include <check.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ossl.h"
#include "spool_helpers.h"

START_TEST(loaded_at_first_use)
{
	static const unsigned char abc_sha256[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
		0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
		0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
		0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
	};
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_MD_CTX *ctx;
	EVP_MD *sha;

	/* Each test runs in a fresh process (CK_FORK): nothing yet. */
	ck_assert(!ossl_loaded());
	ck_assert(!lib_mapped("libcrypto"));
	ck_assert(!lib_mapped("libssl"));

	ctx = EVP_MD_CTX_new();
	ck_assert_ptr_nonnull(ctx);
	ck_assert(ossl_loaded());
	ck_assert(lib_mapped("libcrypto"));
	sha = EVP_MD_fetch(NULL, "SHA256", NULL);
	ck_assert_ptr_nonnull(sha);
	ck_assert_int_eq(EVP_DigestInit_ex2(ctx, sha, NULL), 1);
	ck_assert_int_eq(EVP_DigestUpdate(ctx, "a", 1), 1);
	ck_assert_int_eq(EVP_DigestUpdate(ctx, "bc", 2), 1);
	ck_assert_int_eq(EVP_DigestFinal_ex(ctx, md, &len), 1);
	ck_assert_uint_eq(len, 32);
	ck_assert(memcmp(md, abc_sha256, 32) == 0);
	EVP_MD_free(sha);
	EVP_MD_CTX_free(ctx);
}
END_TEST

START_TEST(explicit_load_and_tls_context)
{
	SSL_CTX *ctx;

	ck_assert(!lib_mapped("libssl"));
	ck_assert(ossl_load());
	ck_assert(ossl_load()); /* once is enough; again is harmless */
	ck_assert(lib_mapped("libssl"));
	ctx = SSL_CTX_new(TLS_server_method());
	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION), 1);
	ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	SSL_CTX_free(ctx);
}
END_TEST

static Suite *
ossl_suite(void)
{
	Suite *s = suite_create("ossl");
	TCase *tc = tcase_create("load");

	tcase_add_test(tc, loaded_at_first_use);
	tcase_add_test(tc, explicit_load_and_tls_context);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ossl_suite());
	int failed;

	/* The tests look at what this process has mapped: each needs a
	 * process of its own, whatever CK_FORK says. */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
