#!/bin/sh
# Run pop3d under valgrind's memcheck, for make check-valgrind: the
# integration harness puts this in front of every pop3d command line
# (POP3D_TEST_WRAPPER). Every process of the connection is checked (the
# pre-login process is a fork, with a log of its own); any error or
# definite leak in any of them makes the exit status 99, which fails the
# test.
dir=$(mktemp -d /var/tmp/pop3d-vg.XXXXXX) || exit 98
valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --log-file="$dir/vg.%p" "$@"
status=$?
if grep -q "ERROR SUMMARY: [1-9]\|^==[0-9]*== [A-Z]" "$dir"/vg.* 2>/dev/null; then
	cat "$dir"/vg.* >&2
	status=99
fi
rm -rf "$dir"
exit $status
