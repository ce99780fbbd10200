#!/bin/sh
# Check that a pop3d binary carries the hardening the Makefile asks for
# (checksec-style, from the ELF headers): PIE, full RELRO (RELRO plus
# BIND_NOW), a non-executable stack, stack canaries and fortified libc
# calls; and what start-up loads. Prints one line per property and "N
# passed, N failed".
set -u
bin=${1:?usage: tests/hardening.sh BINARY}
pass=0 fail=0

check() {
	if eval "$2"; then
		echo "ok   $1"
		pass=$((pass + 1))
	else
		echo "FAIL $1"
		fail=$((fail + 1))
	fi
}

headers=$(readelf -lhd -W "$bin") || exit 1
symbols=$(readelf --dyn-syms -W "$bin") || exit 1

check "position-independent executable" \
	'echo "$headers" | grep -q "Type:.*DYN" &&
	 echo "$headers" | grep -q "Flags:.*PIE"'
check "RELRO segment" 'echo "$headers" | grep -q "GNU_RELRO"'
check "BIND_NOW (full RELRO)" \
	'echo "$headers" | grep -Eq "\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW"'
check "non-executable stack" \
	'echo "$headers" | grep "GNU_STACK" | grep -vq "RWE"'
check "stack protector" 'echo "$symbols" | grep -q "__stack_chk_fail"'
check "fortified libc calls" 'echo "$symbols" | grep -q "__[a-z]*_chk@"'
# Start-up cost (issue 12): OpenSSL, PAM and liblockfile are loaded when
# first needed (ossl.c, pamload.c, lockload.c), libsystemd not at all
# (sdsock.c). The functions those files define in the libraries' names
# must stay private to the binary: exported, they would take the place
# of the libraries' own.
check "no libpam, libssl, libcrypto, liblockfile or libsystemd loaded at start" \
	'! echo "$headers" | grep -Eq "NEEDED.*(libpam|libssl|libcrypto|liblockfile|libsystemd)"'
check "OpenSSL's, PAM's and liblockfile's names not exported" \
	'! echo "$symbols" | grep -Eq "FUNC +GLOBAL +DEFAULT +[0-9]+ +(SSL|EVP|ERR|BIO|PEM|X509|CRYPTO|TLS|pam|lockfile)_"'
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
