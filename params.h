/*
 * Every limit and tunable of pop3d, each with the reason for its value.
 * (Not "limits.h": that name belongs to libc.)
 */
#ifndef POP3D_PARAMS_H
#define POP3D_PARAMS_H

#define POP3D_VERSION "0.1"

/* RFC 1939 §3: an autologout timer, if any, is at least 10 minutes. The
 * same bound applies to a client that stops reading our replies. */
#define IDLE_TIMEOUT_DEFAULT 600

/* The longest a connection may stay unauthenticated: long enough for a
 * person typing into telnet, short enough that idle pre-login
 * connections cannot pile up (a flag). */
#define PREAUTH_TIMEOUT_DEFAULT 180
/* The root monitor's own bound on the pre-auth process, past
 * --preauth-timeout: time for a login record sent just before that
 * deadline to be judged (PAM, then the failure delay). A pre-auth
 * process that is still there after it is wedged or hostile. */
#define MONITOR_GRACE_MS (AUTH_FAIL_DELAY_MS + 3000)
/* At the end of a TLS session the monitor, the user by then, polls this
 * often, for up to MONITOR_GRACE_MS, for the relay to exit (it cannot
 * kill a process of the pre-auth user). */
#define RELAY_REAP_POLL_MS 2

/* design.md §7: the pre-auth process has no log channel of its own; its
 * lines reach the log through the monitor, as records. A line's text
 * fits a log line with the monitor's prefix; a connection's pre-login
 * lines are a handful (STLS, a TLS error, the logout line), so more than
 * this many come from a hostile process, and the monitor ends it. */
#define PREAUTH_LOG_TEXT_MAX 512
#define PREAUTH_LOG_LINES_MAX 32

/* RFC 2449 §4: command lines up to 255 octets including CRLF. */
#define CMD_LINE_MAX 255

/* DEC-13, RFC 5034 §4: AUTH lines (the command with an initial response,
 * and continuation lines) may be longer; 8 KiB holds OAuth-style tokens
 * and still bounds every line. */
#define AUTH_LINE_MAX 8192

/* RFC 1939 §3: the first reply line, greeting included, is at most 512
 * octets including CRLF. Replies are built with snprintf into this. */
#define REPLY_LINE_MAX 512

/* R6856-13: the longest LANG argument looked up. RFC 5646 §4.4.1 asks
 * that tags of up to 35 characters be handled; a longer range is refused
 * unread rather than truncated into a different one. */
#define LANG_RANGE_MAX 64

/* Input read ahead of the command being run (pipelining, RFC 2449 §6.6).
 * Large enough for a burst of short commands and for the 8 KiB AUTH lines
 * the TLS/SASL work adds (DEC-13). */
#define INPUT_BUFFER_SIZE ((size_t)16 * 1024)

/* Replies are batched and flushed when input runs dry; a full buffer is
 * written at once. 64 KiB is the size of a Linux socket write that still
 * goes out without extra copies. */
#define OUTPUT_BUFFER_SIZE ((size_t)64 * 1024)

/* A message is encoded for the client (dotstuff.c) into a buffer of this
 * size, handed on whole: one write(2) per 64 KiB, not a call per line. A
 * run of the message that needs no change and is at least
 * DOTSTUFF_DIRECT_MIN long goes out from where it lies, uncopied. */
#define DOTSTUFF_BUFFER_SIZE ((size_t)64 * 1024)
#define DOTSTUFF_DIRECT_MIN ((size_t)16 * 1024)

/* netio writes a block at least this long that does not fit in its
 * output buffer straight from the caller's memory, after the queue. */
#define NET_DIRECT_WRITE_MIN ((size_t)16 * 1024)

/* design.md §3: a failed login costs at least this long, and the third
 * failure closes the connection (DEC-05). */
#define AUTH_FAIL_DELAY_MS 2000
#define AUTH_FAILS_MAX 3

/* DEC-05: 20 bad commands in a row close the session. */
#define BAD_COMMANDS_MAX 20

/* design.md §3, like Dovecot's first_valid_uid: system accounts below
 * this uid never log in. */
#define MIN_UID_DEFAULT 1000

/* A user name from PAM becomes part of a path; bound it (LOGIN_NAME_MAX
 * on Linux is 256, useradd allows 32). */
#define USER_NAME_MAX 64

/* The fields of a login request (privsep_msg.h): RFC 4616 §2 allows 255
 * octets for each SASL PLAIN field, more than a USER line can hold. */
#define AUTH_FIELD_MAX 255

/* The login method as the log names it ("USER", "PLAIN", "LOGIN") with
 * its NUL: a fixed-size field of the login record, kept by the monitor
 * and the session for the log lines. */
#define AUTH_METHOD_SIZE 8

/* Maildrop limits (design.md §6). Each message costs about 92 bytes of
 * memory at the peak of a login, so the default message cap bounds a
 * session near 190 MB; the
 * size cap keeps offsets and byte counters far from overflow and refuses
 * a spool nobody should be fetching over POP3 in one go. Both are flags. */
#define MAILDROP_MESSAGES_MAX_DEFAULT 2000000UL
#define MAILDROP_SIZE_MAX_DEFAULT (64ULL * 1024 * 1024 * 1024)

/* Spool reads go through a buffer of this size: large enough that the
 * system call count does not matter, small enough to stay in L2 cache. */
#define SPOOL_CHUNK_SIZE ((size_t)256 * 1024)

/* RETR and TOP read a message in pieces of this size, each under its own
 * short read lock (design.md §4.2, guarantee 2): the output buffer's
 * size, so one read feeds one write and a slow client holds no lock. */
#define SEND_CHUNK_SIZE ((size_t)64 * 1024)
/* While nothing has written the spool since login, RETR and TOP read on
 * past the message this far (at most SPOOL_CHUNK_SIZE, the buffer): the
 * next messages are then checked with one fstat and sent from it, not a
 * lock pair, an fstat and a pread each (maildrop.c, read_ahead). One
 * such read costs about as much as the syscalls it saves on 2-3 small
 * messages, little next to one large one. */
#define SEND_READ_AHEAD ((size_t)128 * 1024)

/* How long after a spool's last change its ctime and mtime are trusted
 * to move on the next write (design.md §4.6): a write within the same
 * clock tick, or the same second on a file system that keeps only
 * seconds, would leave them as they were. */
#define SNAPSHOT_SETTLE_NS (20LL * 1000 * 1000)
#define SNAPSHOT_SETTLE_COARSE_NS (2LL * 1000 * 1000 * 1000)
/* Sleeps allowed for the coarse clock to pass the settling point: the
 * first covers the 20 ms, each later one a tick (1-10 ms). */
#define SNAPSHOT_SETTLE_TICKS 5
/* The longest coarse clock tick believed (HZ=100): a larger resolution
 * reported is not waited for. */
#define SNAPSHOT_TICK_MAX_NS (10LL * 1000 * 1000)

/* The content hash that tells a message changed in place covers this
 * much of it from its first octet (design.md §4.6): the headers, where
 * MUAs edit, and the start of the body. Hashing every octet cost a third
 * of the parse at login. */
#define CONTENT_HASH_SPAN ((off_t)4096)

/* How many bytes at the start of a line the parser must see at once to
 * classify it ("From ", a header name, an empty line). A header name
 * longer than this is never one of the fields the UIDL digest selects. */
#define LINE_LOOKAHEAD 128

/* The rare UIDL fallback digest re-reads a message's headers through a
 * stack buffer this large; the reader refills it, so any size works. */
#define HEADER_REREAD_SIZE 8192

/* UPDATE looks this far past the old end of the spool for the blank line
 * an MDA may write before appending a From_ line (one LF or CRLF). */
#define APPEND_PEEK_SIZE 64

/* UPDATE's recovery journal (journal.c, design.md §4.8). Kept data that
 * moves down by at least JOURNAL_DIRECT_MIN moves in steps of at most its
 * shift, each needing only a synced progress record (about 0.3 ms of
 * fdatasync on ext4 against about 0.5 ms of writing 1 MiB: below this a
 * shift makes steps too small). A smaller shift moves up to
 * JOURNAL_WINDOW at a time, saved in the journal first: fewer, larger
 * windows mean fewer syncs; the journal holds two, allocated before
 * UPDATE begins and removed after it (at most 16 MiB while a large
 * spool is rewritten after a deletion near its start). */
#define JOURNAL_DIRECT_MIN (1024ULL * 1024)
#define JOURNAL_WINDOW (8ULL * 1024 * 1024)
/* UPDATE reads the kept bytes of a piece of output (up to its buffer)
 * with one preadv: a run of deleted bytes between two kept ones that is
 * at most JOURNAL_GATHER_GAP is read along into a scratch buffer rather
 * than end the read, since copying a few KB costs less than another
 * pread and pwrite (DELE every other on 100 MB: 5,000 messages kept, one
 * call each way per message before). At most JOURNAL_GATHER_IOV pieces
 * per read. */
#define JOURNAL_GATHER_GAP (64 * 1024)
#define JOURNAL_GATHER_IOV 128
/* On a copy-on-write file system (fsroom.c) a rewrite in place holds
 * the blocks it replaces until a whole extent is rewritten: btrfs's
 * extents are at most 128 MiB. The slack is for the file system's own
 * metadata (checksums, extent items) of such a rewrite. */
#define FSROOM_EXTENT_MAX (128ULL * 1024 * 1024)
#define FSROOM_SLACK (4ULL * 1024 * 1024)
/* A journal lists the kept regions: at most one per two messages (a run
 * of kept messages is one region), plus mail delivered since login. A
 * journal is hostile input: recovery reads no more than this many. */
#define JOURNAL_REGIONS_MAX (MAILDROP_MESSAGES_MAX_DEFAULT / 2 + 2)

/* Bounded lock waits (design.md §4): a delivery holding the spool for
 * longer than this means something is wrong; the client gets [IN-USE] or
 * [SYS/TEMP] and may retry. */
#define FCNTL_LOCK_WAIT_MS 10000
#define FCNTL_LOCK_POLL_MS 20
/* A held dotlock is tried again after DOTLOCK_POLL_MIN_MS, the interval
 * doubling every DOTLOCK_POLL_DOUBLE_EVERY tries up to DOTLOCK_POLL_MAX_MS,
 * for DOTLOCK_WAIT_MS in all (the 15 s that liblockfile's own 5 s + 10 s
 * sleeps gave before). MDAs hold it for one delivery, milliseconds: a
 * 5 s first sleep made QUIT's p99 5 s under delivery load. The backoff
 * bounds the tries (about 80, each a link(2) by the session or by its
 * dotlock keeper). A lock older than 5 minutes is stale (liblockfile). */
#define DOTLOCK_WAIT_MS 15000
#define DOTLOCK_POLL_MIN_MS 20
#define DOTLOCK_POLL_MAX_MS 320
#define DOTLOCK_POLL_DOUBLE_EVERY 8
/* The group whose members may create dotlocks in the spool directory:
 * Debian's dotlockfile is setgid to it, and /var/mail is 2775 root:mail.
 * The dotlock keeper (keeper.c) runs with it, and with no other group,
 * only where the directory is this group's and the user is not in it. */
#define KEEPER_GROUP "mail"

/* RFC 1939 §7: a unique-id is 1 to 70 characters. Our digests use 32 hex
 * characters, which leaves room for a "-N" duplicate suffix. */
#define UIDL_MAX 70
#define UIDL_DIGEST_BYTES 16

/* Each direction of the TLS relay buffers one TLS record's worth of
 * plaintext (2^14 octets, RFC 8446 §5.1): one tls_read fills it, one
 * write empties it. */
#define RELAY_BUFFER_SIZE ((size_t)16 * 1024)

/* --tls-cert and --tls-key are read whole into memory that is wiped
 * after parsing (the key must leave no copy in a stdio buffer). A 16384
 * bit RSA key is about 13 KiB of PEM, a long chain a few times that. */
#define TLS_PEM_FILE_MAX ((size_t)1024 * 1024)

/* After a TLS session has ended, its relay gives the client this long
 * beyond the idle timeout to take the last output, then gives up. */
#define RELAY_GRACE_MS 5000

/* Upper bounds of the numeric options, against typos rather than for
 * resources: a timeout beyond a day, or more sessions than one host's
 * process table serves, is a mistake to refuse at start-up. A day of
 * seconds also stays far inside netio's int milliseconds, and the
 * Accept=no listener allocates one slot per --max-children. */
#define OPTION_SECONDS_MAX (24UL * 3600)
#define OPTION_SESSIONS_MAX 100000UL

/* RFC 2449 §6.5 and §6.7, against typos as above: a login delay beyond
 * a day would be a mistake (clients poll more often than that), and a
 * retention beyond a century is what EXPIRE NEVER says. */
#define LOGIN_DELAY_MAX OPTION_SECONDS_MAX
#define EXPIRE_DAYS_MAX 36500UL

/* Accept=no mode (server.c): how many sessions at once, and from one
 * source address (an IPv6 /64 counts as one source, since one host
 * usually owns a whole /64). systemd's MaxConnections= and
 * MaxConnectionsPerSource= play this role with Accept=yes. */
#define MAX_CHILDREN_DEFAULT 100
#define MAX_PER_SOURCE_DEFAULT 10

/* The PROXY protocol (proxyproto.c, design.md §13). A v1 line is at most
 * 107 octets with its CRLF (HAProxy's spec, §2.1: "PROXY UNKNOWN" with two
 * IPv6 addresses and two ports; PROXY-05). A v2 header may announce up to
 * 16 + 65535 octets; HAProxy sends 28 or 52 plus a few TLVs (ALPN, SNI,
 * the TLS details, a unique id: a few hundred octets at most), so more
 * than this is refused rather than read. */
#define PROXY_V1_LINE_MAX 107
#define PROXY_HEADER_MAX 1024
/* The balancer sends the header at once on connecting (PROXY-01), so a
 * connection from it that has not sent a whole one by then never will:
 * short, so that half-open connections cannot hold pre-login slots. */
#define PROXY_HEADER_TIMEOUT_MS 3000
/* --proxy-from lists the balancers: a handful of hosts or networks. */
#define PROXY_FROM_MAX 16

/* A log line, priority prefix included: RFC 3164 §4.1 bounds a syslog
 * message to 1024 octets, and journald's stderr lines stay readable.
 * Longer lines are cut, never split. */
#define LOG_LINE_MAX 1024

#endif
