# pop3d: make, make check, make demo, make install.
# CFLAGS, LDFLAGS, PREFIX and DESTDIR may be overridden as usual.

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
CC ?= cc
PKG_CONFIG ?= pkg-config

CFLAGS ?= -O2 -g
BASE_WARN = -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wformat=2 \
	-Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
# A 64-bit off_t on 32-bit builds too (Debian's i386 and armhf do not ask
# for it), or spools past 2 GiB fail with EOVERFLOW (mbox.h asserts it).
# Only where off_t is not 64 bits already: on a 64-bit system
# -D_FILE_OFFSET_BITS=64 changes no type but binds pread to pread64 and
# so on, past the fault shim (tests/faults), which interposes the plain
# names; it is built without it.
LFS_CFLAGS := $(shell getconf LFS_CFLAGS 2>/dev/null)
WARN = $(BASE_WARN) $(LFS_CFLAGS)
# PAM's and OpenSSL's headers only: pamload.c and ossl.c load the
# libraries when they are first needed (a login; TLS, the UIDL digest),
# not at every start; likewise lockload.c liblockfile (a dotlock).
PKGS = pam libssl libcrypto
# libidn (GNU Libidn 1.x) is linked: its SASLprep prepares UTF-8 user
# names and passwords in the pre-auth process, which is chrooted before
# any USER arrives, so it could not be loaded on first use (utf8.c).
DEPCFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) libidn 2>/dev/null)
DEPLIBS = $(shell $(PKG_CONFIG) --libs libidn 2>/dev/null || echo -lidn)
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -lcheck)

SAN = -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all

# Hardening of the normal build (tests/hardening.sh checks the binary):
# stack canaries, fortified libc calls, a position-independent executable
# with read-only relocations bound at start-up. Not for the ASan build,
# where FORTIFY only gets in the sanitizers' way.
HARDEN_CFLAGS = -fstack-protector-strong -fstack-clash-protection \
	-D_FORTIFY_SOURCE=2 -fPIE
HARDEN_LDFLAGS = -pie -Wl,-z,relro,-z,now,-z,noexecstack

# Everything but main(), shared by the binary and the unit tests.
MODULES = session session_auth session_trans auth monitor preauth privsep_msg \
	proxyproto \
	relay tls sasl hash recover \
	journal fsroom sysutil lock \
	maildrop mbox uidl netio command dotstuff peer log server sdsock ossl \
	pamload logindelay lockload keeper lang utf8
# tests/unit/test_MODULE.c: the check tests of one module each.
UNIT_TESTS = test_command test_dotstuff test_maildrop test_mbox test_uidl \
	test_netio test_peer test_sasl test_journal test_privsep test_lock \
	test_sysutil test_sdsock test_ossl test_pamload test_logindelay \
	test_proxyproto test_lang test_utf8 test_hash
# Linked into every unit test: the spool fixtures of test_maildrop,
# test_mbox and test_uidl, and the temporary directory and main() of
# those and of test_lock and test_sysutil.
UNIT_HELPERS = tests/unit/spool_helpers.c
UNIT_DEPS = $(UNIT_HELPERS) tests/unit/*.h *.h Makefile

B = build
BA = build-asan

# "make V=1" shows the commands.
Q = $(if $(V),,@)
SAY = $(if $(V),@true,@printf '  %-6s %s\n')

# Packages first: every goal but these makes sure the Debian packages it
# needs are installed (tests/deps.sh; as root it installs them, otherwise
# it names them), while the Makefile is read. That is before any rule
# runs, so no order of prerequisites and no make -j can compile first (an
# order-only "| deps" did not: "demo: $(B)/pop3d | deps" compiled before
# it). make and make install need only the build packages; check-systemd
# builds inside its container and has its own (tests/systemd/deps.sh).
NODEPS_GOALS = clean fuzz-clean format uninstall deps check-systemd deb \
	check-deb
BUILD_GOALS = all install $(B)/pop3d $(B)/%.o
GOALS = $(or $(MAKECMDGOALS),all)
ifneq ($(filter-out $(NODEPS_GOALS),$(GOALS)),)
ifeq ($(findstring n,$(firstword -$(MAKEFLAGS))),)
DEPS_OUT := $(shell tests/deps.sh $(if $(filter-out $(BUILD_GOALS),$(GOALS)),,build) >&2)
ifneq ($(.SHELLSTATUS),0)
$(error tests/deps.sh failed: see above)
endif
endif
endif

all: $(B)/pop3d

$(B) $(BA):
	mkdir -p $@

$(B)/%.o: %.c *.h Makefile | $(B)
	$(SAY) CC $@
	$(Q)$(CC) $(WARN) $(HARDEN_CFLAGS) $(CFLAGS) $(DEPCFLAGS) -c -o $@ $<
$(BA)/%.o: %.c *.h Makefile | $(BA)
	$(SAY) CC $@
	$(Q)$(CC) $(WARN) $(CFLAGS) $(SAN) $(DEPCFLAGS) -c -o $@ $<

$(B)/pop3d: $(B)/pop3d.o $(MODULES:%=$(B)/%.o)
	$(SAY) LD $@
	$(Q)$(CC) $(CFLAGS) $(HARDEN_LDFLAGS) $(LDFLAGS) -o $@ $^ $(DEPLIBS)
# libcrypt is linked in up front: ASan intercepts crypt() and finds no real
# one if pam_unix loads libcrypt later, and the call jumps to address 0.
ASAN_LIBS = -Wl,--no-as-needed -lcrypt -Wl,--as-needed
$(BA)/pop3d: $(BA)/pop3d.o $(MODULES:%=$(BA)/%.o)
	$(SAY) LD $@
	$(Q)$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $@ $^ $(DEPLIBS) $(ASAN_LIBS)

# build/pop3d-test (and build-asan/pop3d-test): pop3d with the test hooks
# of test_hooks.h, for the tests that play a hostile pre-login process
# against the real monitor and read the session's groups. Only monitor.c
# differs (-DPOP3D_TEST_HOOKS) and tests/hooks/test_hooks.c is added;
# never installed, and pop3d itself has no hook.
HOOKED = monitor
HOOK_OBJS = $(filter-out $(HOOKED),$(MODULES)) pop3d
$(B)/%.hooks.o: %.c *.h Makefile | $(B)
	$(SAY) CC $@
	$(Q)$(CC) $(WARN) $(HARDEN_CFLAGS) $(CFLAGS) $(DEPCFLAGS) \
		-DPOP3D_TEST_HOOKS -c -o $@ $<
$(BA)/%.hooks.o: %.c *.h Makefile | $(BA)
	$(SAY) CC $@
	$(Q)$(CC) $(WARN) $(CFLAGS) $(SAN) $(DEPCFLAGS) -DPOP3D_TEST_HOOKS \
		-c -o $@ $<
$(B)/test_hooks.o: tests/hooks/test_hooks.c *.h Makefile | $(B)
	$(SAY) CC $@
	$(Q)$(CC) $(WARN) $(HARDEN_CFLAGS) $(CFLAGS) $(DEPCFLAGS) -I. \
		-DPOP3D_TEST_HOOKS -c -o $@ $<
$(BA)/test_hooks.o: tests/hooks/test_hooks.c *.h Makefile | $(BA)
	$(SAY) CC $@
	$(Q)$(CC) $(WARN) $(CFLAGS) $(SAN) $(DEPCFLAGS) -I. -DPOP3D_TEST_HOOKS \
		-c -o $@ $<
$(B)/pop3d-test: $(HOOK_OBJS:%=$(B)/%.o) $(HOOKED:%=$(B)/%.hooks.o) \
		$(B)/test_hooks.o
	$(SAY) LD $@
	$(Q)$(CC) $(CFLAGS) $(HARDEN_LDFLAGS) $(LDFLAGS) -o $@ $^ $(DEPLIBS)
$(BA)/pop3d-test: $(HOOK_OBJS:%=$(BA)/%.o) $(HOOKED:%=$(BA)/%.hooks.o) \
		$(BA)/test_hooks.o
	$(SAY) LD $@
	$(Q)$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $@ $^ $(DEPLIBS) $(ASAN_LIBS)

$(B)/test_%: tests/unit/test_%.c $(MODULES:%=$(B)/%.o) $(UNIT_DEPS) | $(B)
	$(SAY) CC $@
	$(Q)$(CC) $(WARN) $(CFLAGS) $(DEPCFLAGS) $(CHECK_CFLAGS) -I. -Itests/unit \
		-o $@ $< $(UNIT_HELPERS) $(MODULES:%=$(B)/%.o) $(CHECK_LIBS) \
		$(DEPLIBS)
$(BA)/test_%: tests/unit/test_%.c $(MODULES:%=$(BA)/%.o) $(UNIT_DEPS) | $(BA)
	$(SAY) CC $@
	$(Q)$(CC) $(WARN) $(CFLAGS) $(SAN) $(DEPCFLAGS) $(CHECK_CFLAGS) -I. \
		-Itests/unit -o $@ $< $(UNIT_HELPERS) $(MODULES:%=$(BA)/%.o) \
		$(CHECK_LIBS) $(DEPLIBS)

# The test command of the README: unit tests and integration tests, on
# the normal build and again under AddressSanitizer + UBSan; and the
# checklist's coverage with every ID and design.md section cited in the
# tree resolved in docs/. The two builds and their runs go side by side
# (each one's output printed whole when it ends): on a 2-core machine
# where a fork and a page fault are dear (round 16 of issue 13) the two
# in turn took 436 s, side by side 266 s.
check:
	$(MAKE) -j2 --output-sync=target check-docs check-plain check-asan

check-docs:
	/usr/bin/python3 -B tests/integration/coverage.py -q

check-plain: $(B)/pop3d $(B)/pop3d-test $(UNIT_TESTS:%=$(B)/%)
	tests/hardening.sh $(B)/pop3d
	tests/run-unit.sh $(UNIT_TESTS:%=$(B)/%)
	tests/run-integration.sh $(B)/pop3d

check-asan: $(BA)/pop3d $(BA)/pop3d-test $(UNIT_TESTS:%=$(BA)/%)
	tests/run-unit.sh $(UNIT_TESTS:%=$(BA)/%)
	tests/run-integration.sh $(BA)/pop3d

# The integration scripts again, each pop3d under valgrind's memcheck
# (errors or definite leaks in any of its processes fail the test).
check-valgrind: $(B)/pop3d
	POP3D_TEST_WRAPPER=$(CURDIR)/tests/valgrind.sh \
		tests/run-integration.sh $(B)/pop3d -k scripts/

# Tests on the real system (root): real users, pam_unix, real clients,
# every socket mode. They clean up after themselves.
check-system: $(B)/pop3d
	tests/system/run.sh $(B)/pop3d

# pop3d behind Debian's HAProxy (issue 15): send-proxy, send-proxy-v2,
# health checks, implicit TLS passed through, a client in another network
# namespace. Root (namespaces) and haproxy; about 30 s.
check-proxy: $(B)/pop3d
	/usr/bin/python3 -B tests/proxy/run.py $(B)/pop3d

# The deployment on a booted system (root): Debian 12 with systemd as PID 1
# in a systemd-nspawn container, pop3d built and installed in it as
# INSTALL says, every unit and both inetds driven by real clients. Builds
# from the sources, not from build/; the Debian root is cached in
# /var/cache/pop3d-test.
check-systemd:
	tests/systemd/run.sh

# The Debian package (debian/; debian/README.Debian): make deb runs
# dpkg-buildpackage -us -uc -b in a copy of the sources under build/deb/,
# where the .deb, .changes and the source package land. make check-deb
# (root) lints it (lintian, hardening-check), then installs, uses,
# removes and purges it in the booted Debian 12 of check-systemd. Their
# host packages: tests/deb/deps.sh.
DEB_OUT = $(B)/deb
deb:
	tests/deb/build.sh $(DEB_OUT)
check-deb: deb
	tests/deb/check.sh $(DEB_OUT)

# Static analysis: cppcheck and clang-tidy (.clang-tidy) must be clean.
# clang-tidy runs one file per core: its analyzer takes 2-9 s a file
# (journal.c, maildrop.c the longest), about 55 s for the tree in turn
# on a 2-core machine. xargs fails if any file does.
lint:
	cppcheck --enable=warning,portability,performance --inline-suppr \
		--error-exitcode=1 -q --std=c11 -D_GNU_SOURCE -I. \
		--suppress=missingIncludeSystem *.c
	printf "%s\n" *.c | xargs -P "$$(nproc)" -I{} \
		clang-tidy --quiet {} -- -std=gnu11 -D_GNU_SOURCE $(DEPCFLAGS)

# A demo user and maildrop served on 127.0.0.1:1110.
demo: $(B)/pop3d
	tests/demo.sh $(B)/pop3d

# Install the Debian packages the build and tests need (as root), or say
# which are missing. Every other goal does this first anyway (above).
deps:
	@tests/deps.sh

MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/pop3d
PAMDIR ?= /etc/pam.d
# The pre-login process's empty chroot (pop3d --preauth-dir).
PREAUTH_DIR ?= /var/lib/pop3d/empty
# UPDATE's crash recovery journals, one directory per uid (--journal-dir).
JOURNAL_DIR ?= /var/lib/pop3d/journal
UNITDIR ?= $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd \
	2>/dev/null || echo /lib/systemd/system)
UNITS = pop3.socket pop3@.service pop3d.socket pop3d.service pop3s.socket \
	pop3s@.service pop3d-recover.service

# The units name /usr/local/sbin/pop3d; they are rewritten for SBINDIR.
# The PAM file is installed only where none exists: it is the admin's.
install: $(B)/pop3d
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(PAMDIR)
	install -m 0755 $(B)/pop3d $(DESTDIR)$(SBINDIR)/pop3d
	install -m 0644 pop3d.8 $(DESTDIR)$(MANDIR)/man8/pop3d.8
	for u in $(UNITS); do \
		sed 's|/usr/local/sbin/pop3d|$(SBINDIR)/pop3d|' units/$$u \
			>$(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	for f in inetd.conf xinetd.d/pop3 fail2ban/filter.d/pop3d.conf \
		cron.d/pop3d; do \
		sed 's|/usr/local/sbin/pop3d|$(SBINDIR)/pop3d|' units/$$f \
			>$(DESTDIR)$(DOCDIR)/$$(echo $$f | tr / -) || exit 1; \
	done
	[ -e $(DESTDIR)$(PAMDIR)/pop3 ] || \
		install -m 0644 units/pam.d/pop3 $(DESTDIR)$(PAMDIR)/pop3
	install -d -m 0555 $(DESTDIR)$(PREAUTH_DIR)
	install -d -m 0711 $(DESTDIR)$(JOURNAL_DIR)
	@# The pre-login process runs as this user; only on the real system.
	if [ -z "$(DESTDIR)" ] && ! getent passwd pop3d >/dev/null; then \
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin pop3d; \
	fi

# Leaves the PAM file, which may have been edited since.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/pop3d $(DESTDIR)$(MANDIR)/man8/pop3d.8
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	rm -f $(DESTDIR)$(DOCDIR)/inetd.conf $(DESTDIR)$(DOCDIR)/xinetd.d-pop3 \
		$(DESTDIR)$(DOCDIR)/fail2ban-filter.d-pop3d.conf \
		$(DESTDIR)$(DOCDIR)/cron.d-pop3d
	-rmdir $(DESTDIR)$(DOCDIR) $(DESTDIR)$(PREAUTH_DIR) \
		$(DESTDIR)$(JOURNAL_DIR)/* $(DESTDIR)$(JOURNAL_DIR) \
		$(dir $(DESTDIR)$(PREAUTH_DIR))

format:
	clang-format -i *.c *.h tests/unit/*.[ch] tests/fuzz/*.[ch] tests/hooks/*.c

clean:
	rm -rf $(B) $(BA) build-fuzz build-fuzz-cov

.PHONY: all check check-docs check-plain check-asan check-system check-proxy check-systemd \
	check-valgrind lint demo deps install uninstall format clean deb check-deb

# --- Reliability tests (issue 5): tests/stress/ and tests/faults/ ----------
# faultshim.so is an LD_PRELOAD fault injector for these tests only: built
# here, never linked into pop3d, never installed.
$(B)/faultshim.so: tests/faults/faultshim.c | $(B)
	$(SAY) CC $@
	$(Q)$(CC) $(BASE_WARN) $(CFLAGS) -fPIC -shared -o $@ $< -ldl

# A bounded stress run (CI): real MDAs (procmail, a local(8)-style writer)
# deliver while POP3 clients retrieve and delete; then the invariant.
STRESS_ARGS ?= --users 5 --clients 20 --deliveries 2000
stress: $(B)/pop3d
	tests/stress/deps.sh
	/usr/bin/python3 -B tests/stress/stress.py --binary $(B)/pop3d $(STRESS_ARGS)

# Two pop3d "hosts" over one spool directory (docs/multihost.md): each a
# listener with its own --preauth-dir, both --shared-spool over the same
# spools and --journal-dir, while procmail and a local(8)-style writer
# deliver; then the same invariant and figures as make stress.
STRESS_HOSTS_ARGS ?= --hosts 2 --users 3 --clients 12 --deliveries 1500
stress-hosts: $(B)/pop3d
	tests/stress/deps.sh
	/usr/bin/python3 -B tests/stress/stress.py --binary $(B)/pop3d $(STRESS_HOSTS_ARGS)

# Injected I/O faults, SIGKILL at random moments (200 runs), hang-ups and
# signals, spool problems, and a bounded run of the crash-state explorer
# (power cuts in UPDATE; tests/faults/crash_explore.py) with the check
# that it catches every sync left out. FAULT_ARGS e.g. "--kill-runs 500
# --seed 1".
FAULT_ARGS ?=
# The journal rolls UPDATE forward once it has begun (design.md §4.8), so
# the explorer is strict: no deleted message may come back. --undo-ok
# (CRASH_UNDO_OK=--undo-ok) allows a roll-back, for comparing old code.
CRASH_UNDO_OK ?=
check-faults: $(B)/pop3d $(B)/faultshim.so
	/usr/bin/python3 -B tests/faults/run.py --binary $(B)/pop3d \
		--shim $(B)/faultshim.so \
		$(if $(CRASH_UNDO_OK),--crash-undo-ok) $(FAULT_ARGS)

# The long exploration: every scenario, CRASH_STATES distinct states
# each, cuts during the recoveries of its 6 busiest crash states
# (CRASH_STATES/3 each), then every sync of every scenario and of its
# busiest recovery left out in turn.
CRASH_STATES ?= 3000
CRASH_ARGS ?=
check-crash: $(B)/pop3d $(B)/faultshim.so
	/usr/bin/python3 -B tests/faults/crash_explore.py --binary $(B)/pop3d \
		--shim $(B)/faultshim.so --states $(CRASH_STATES) --recovery 6 \
		$(CRASH_UNDO_OK) $(CRASH_ARGS)
	/usr/bin/python3 -B tests/faults/crash_explore.py --binary $(B)/pop3d \
		--shim $(B)/faultshim.so --teeth --states 1000 \
		$(CRASH_UNDO_OK) $(CRASH_ARGS)

# The same states cut at the block device of real file systems instead
# of from a model (root: a loop device on blklog's FUSE file, which logs
# every block write and cache flush): tests/faults/blkcrash.py. CI runs
# BLKCRASH_STATES states per scenario on each of BLKCRASH_FS (also
# ext4-journal, data=journal, and btrfs: 3 to 4 minutes each);
# BLKCRASH_ARGS=--teeth leaves out each of pop3d's syncs in turn.
BLKCRASH_STATES ?= 40
BLKCRASH_FS ?= ext4 xfs
BLKCRASH_ARGS ?=
$(B)/blklog: tests/faults/blklog.c | $(B)
	$(SAY) CC $@
	$(Q)$(CC) $(WARN) $(CFLAGS) $$(pkg-config --cflags fuse3) -o $@ $< \
		$$(pkg-config --libs fuse3)
check-blkcrash: $(B)/pop3d $(B)/faultshim.so $(B)/blklog
	/usr/bin/python3 -B tests/faults/blkcrash.py --binary $(B)/pop3d \
		--shim $(B)/faultshim.so --blklog $(B)/blklog \
		--states $(BLKCRASH_STATES) $(addprefix --fs ,$(BLKCRASH_FS)) \
		$(BLKCRASH_ARGS)

# Debian's Postfix as the MTA (root; it is installed "Local only" if
# missing, started and stopped by the run, its main.cf put back): local(8)
# with its default locks while clients retrieve and delete; every message
# accounted for in Postfix's own log. POSTFIX_MDA=procmail hands the mail
# to procmail instead (LOCKSLEEP 8 s) and reports its delivery latency.
POSTFIX_MDA ?= local
STRESS_POSTFIX_ARGS ?= --users 3 --clients 6 --deliveries 300 --min-seconds 10
stress-postfix: $(B)/pop3d
	tests/stress/deps.sh postfix
	/usr/bin/python3 -B tests/stress/stress.py --binary $(B)/pop3d --mta postfix \
		--postfix-mda $(POSTFIX_MDA) $(STRESS_POSTFIX_ARGS)

.PHONY: stress stress-hosts stress-postfix check-faults check-crash check-blkcrash

# ===========================================================================
# Fuzzing: make fuzz [FUZZ_SECONDS=60]       (tests/fuzz/README.md)
#
# libFuzzer harnesses in tests/fuzz/, built with clang under ASan+UBSan in
# build-fuzz/ from the same MODULES (the harnesses link the module objects
# directly). For each harness, fuzz-<harness> replays its seed corpus and
# regression inputs, then fuzzes for FUZZ_SECONDS seconds; a crash, leak or
# timeout (FUZZ_TIMEOUT seconds for one input) fails it and leaves the input
# in build-fuzz/artifacts/<harness>/. make -j runs harnesses side by side.
# make fuzz-coverage: llvm-cov line coverage of what the corpora reach.
# Everything fuzzing needs is in this block; it ends at the end of the file.
# ===========================================================================

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 10
FUZZ_HARNESSES = fuzz_session fuzz_mbox fuzz_sasl fuzz_records fuzz_uidl \
	fuzz_journal fuzz_dotstuff fuzz_proxy fuzz_lang
BF = build-fuzz
BFC = build-fuzz-cov
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZ_WARN = $(WARN)
FUZZ_CFLAGS = -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_COV_CFLAGS = -O1 -g -fprofile-instr-generate -fcoverage-mapping \
	-fsanitize=fuzzer-no-link
FUZZ_HEADERS = tests/fuzz/fuzz.h tests/fuzz/mbox_ref.h

$(BF) $(BFC):
	mkdir -p $@

$(BF)/%.o: %.c *.h | $(BF)
	$(SAY) FUZZCC $@
	$(Q)$(FUZZ_CC) $(FUZZ_WARN) $(FUZZ_CFLAGS) $(DEPCFLAGS) -c -o $@ $<
$(BF)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_HEADERS) $(MODULES:%=$(BF)/%.o) \
		*.h
	$(SAY) FUZZLD $@
	$(Q)$(FUZZ_CC) $(FUZZ_WARN) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(DEPCFLAGS) \
		-I. -o $@ $< $(MODULES:%=$(BF)/%.o) $(DEPLIBS)

$(BFC)/%.o: %.c *.h | $(BFC)
	$(SAY) COVCC $@
	$(Q)$(FUZZ_CC) $(FUZZ_WARN) $(FUZZ_COV_CFLAGS) $(DEPCFLAGS) -c -o $@ $<
$(BFC)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_HEADERS) $(MODULES:%=$(BFC)/%.o) \
		*.h
	$(SAY) COVLD $@
	$(Q)$(FUZZ_CC) $(FUZZ_WARN) $(FUZZ_COV_CFLAGS) -fsanitize=fuzzer \
		$(DEPCFLAGS) -I. -o $@ $< $(MODULES:%=$(BFC)/%.o) $(DEPLIBS)

# fuzz-session, fuzz-mbox, ...: one harness.
FUZZ_RUNS = $(FUZZ_HARNESSES:fuzz_%=fuzz-%)
fuzz: $(FUZZ_RUNS)
fuzz-build: $(FUZZ_HARNESSES:%=$(BF)/%)
$(FUZZ_RUNS): fuzz-%: $(BF)/fuzz_%
	FUZZ_TIMEOUT=$(FUZZ_TIMEOUT) tests/fuzz/run.sh $(BF)/fuzz_$* \
		$(FUZZ_SECONDS)

# Line coverage of the seed corpora and whatever make fuzz left in
# build-fuzz/corpus/.
fuzz-coverage: $(FUZZ_HARNESSES:%=$(BFC)/%)
	tests/fuzz/coverage.sh $(BFC)

fuzz-clean:
	rm -rf $(BF) $(BFC)

# The module objects are kept between runs (not intermediate files).
.SECONDARY: $(MODULES:%=$(BF)/%.o) $(MODULES:%=$(BFC)/%.o)
.PHONY: fuzz fuzz-build fuzz-coverage fuzz-clean $(FUZZ_RUNS)

# --- Benchmark (bench/, issue 6) -------------------------------------------
# make bench: pop3d alone under cwrap (no root needed), pipe and loopback
# TCP, spools of 10 MB, 100 MB and 1 GB; results in bench/out/.
# make bench-peers: as root, against Debian's dovecot-pop3d and popa3d
# with a throwaway real user. make bench-profile: perf profiles (needs
# perf, Debian package linux-perf). BENCH_ARGS passes options to the
# runner (e.g. BENCH_ARGS="--sets 10M,100M --runs 3"; see bench/run.py).
# The figures and their analysis: bench/RESULTS.md.
BENCH_CFLAGS = -O2 -g -std=gnu11 -Wall -Wextra -Werror
BENCH_TOOLS = $(B)/bench/popbench $(B)/bench/genspool $(B)/bench/movefloor

$(B)/bench/popbench: bench/popbench.c
	@mkdir -p $(@D)
	$(SAY) CC $@
	$(Q)$(CC) $(BENCH_CFLAGS) $(DEPCFLAGS) -o $@ $< -lssl -lcrypto
$(B)/bench/genspool: bench/genspool.c
	@mkdir -p $(@D)
	$(SAY) CC $@
	$(Q)$(CC) $(BENCH_CFLAGS) -o $@ $< -lm
$(B)/bench/movefloor: bench/movefloor.c params.h
	@mkdir -p $(@D)
	$(SAY) CC $@
	$(Q)$(CC) $(BENCH_CFLAGS) -o $@ $<

# make bench-read (issue 12, round 4): bench/readbench on the 1 GB spool
# of make bench (made once in build/bench/, then read warm): pread in
# chunks against mmap in its variants, and dotstuff.c's vector scan
# against its portable path (built again with DOTSTUFF_NO_SIMD, its
# names prefixed old_). READBENCH_ROUNDS rounds, the ways taking turns.
READBENCH_ROUNDS ?= 5
READBENCH_SPOOL = $(B)/bench/spool-1G
$(B)/bench/dotstuff-old.o: dotstuff.c dotstuff.h params.h
	@mkdir -p $(@D)
	$(SAY) CC $@
	$(Q)$(CC) $(WARN) $(CFLAGS) -DDOTSTUFF_NO_SIMD \
		$(foreach f,init feed finish sink,-Ddotstuff_$(f)=old_dotstuff_$(f)) \
		-c -o $@ $<
$(B)/bench/readbench: bench/readbench.c $(B)/bench/dotstuff-old.o \
		$(B)/dotstuff.o $(B)/hash.o
	@mkdir -p $(@D)
	$(SAY) CC $@
	$(Q)$(CC) $(BENCH_CFLAGS) -o $@ $^
$(READBENCH_SPOOL): | $(B)/bench/genspool
	$(B)/bench/genspool 100000 1000000000 $@
bench-read: $(B)/bench/readbench $(READBENCH_SPOOL)
	cat $(READBENCH_SPOOL) >/dev/null
	$(B)/bench/readbench -r $(READBENCH_ROUNDS) encode $(READBENCH_SPOOL)
	$(B)/bench/readbench -r $(READBENCH_ROUNDS) read $(READBENCH_SPOOL)

bench: $(B)/pop3d $(BENCH_TOOLS)
	python3 bench/run.py --build $(B) $(BENCH_ARGS)

bench-profile: $(B)/pop3d $(BENCH_TOOLS)
	python3 bench/run.py --build $(B) --profile-only $(BENCH_ARGS)

bench-peers: $(B)/pop3d $(BENCH_TOOLS)
	python3 bench/peers.py --build $(B) $(BENCH_ARGS)

.PHONY: bench bench-peers bench-profile bench-read
