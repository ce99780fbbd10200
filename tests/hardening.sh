#!/bin/sh
# Check that a pop3d binary carries the hardening the Makefile asks for
# (checksec-style, from the ELF headers): PIE, full RELRO (RELRO plus
# BIND_NOW), a non-executable stack, stack canaries and fortified libc
# calls. Prints one line per property and "N passed, N failed".
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
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
