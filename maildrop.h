/* The user's mbox spool: open it safely, lock it, parse it once, serve
 * message bytes, and expunge at UPDATE (design.md §4). Knows nothing of
 * POP3: messages are numbered from 0 here, and bytes come out raw. */
#ifndef POP3D_MAILDROP_H
#define POP3D_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "params.h"

struct maildrop;

enum md_status {
	MD_OK,
	MD_IN_USE,   /* another session holds the maildrop */
	MD_BUSY,     /* a lock wait ran out: another program holds it */
	MD_TEMPFAIL, /* I/O error, or the spool changed under us */
	MD_PERMFAIL, /* bad spool: symlink, owner, not mbox, over a limit */
};

struct md_limits {
	unsigned long max_messages;
	uint64_t max_size;
	/* Where UPDATE keeps its recovery journal (journal.h): a directory
	 * of the user's own. UPDATE refuses to run without one. */
	const char *journal_dir;
	/* --shared-spool: other hosts serve the spool (design.md §9), also
	 * where its file system does not say so (lock_spool_shared). */
	bool shared_spool;
};

/* Open, lock and parse the spool at path as the user who must own it
 * (already the effective uid). A missing file is an empty maildrop. An
 * UPDATE that a crash interrupted is finished first, from its
 * journal. On failure a log line says why; nothing is kept open or
 * locked. */
enum md_status maildrop_open(const char *path, uid_t owner,
			     const struct md_limits *limits,
			     struct maildrop **md_r);

/* Expand a spool path pattern: %u the user name, %h the home directory,
 * %% a percent sign. Returns 0, or -1 if the pattern has another % escape
 * or the result does not fit. */
int maildrop_path(const char *pattern, const char *user, const char *home,
		  char *out, size_t size);

/* At start-up: if pattern's directory is fixed (no % escape before its
 * last slash), log a warning when others may write to it. */
void maildrop_check_dir(const char *pattern);

/* Release the locks and memory. No changes are made to the spool. */
void maildrop_close(struct maildrop *md);

size_t maildrop_count(const struct maildrop *md);
/* Octets of message i in CRLF form: what a POP3 RETR sends before
 * dot-stuffing (R1939-38). */
uint64_t maildrop_size(const struct maildrop *md, size_t i);
/* The unique id of message i (R1939-48): 1-70 characters 0x21-0x7E.
 * The text is valid until the next call. */
const char *maildrop_uid(const struct maildrop *md, size_t i);

bool maildrop_deleted(const struct maildrop *md, size_t i);
/* Mark or unmark message i. Returns 0, or -1 (nothing changed) when out
 * of memory to remember the mark for maildrop_reset. */
int maildrop_set_deleted(struct maildrop *md, size_t i, bool deleted);
/* Unmark every message (RSET). Costs the number marked since the last
 * reset, not the number of messages. */
void maildrop_reset(struct maildrop *md);

struct md_totals {
	size_t count;
	uint64_t bytes; /* as maildrop_size counts them */
};

/* The messages not marked deleted: what STAT reports (R1939-35). Kept
 * current by maildrop_set_deleted, never recounted. */
struct md_totals maildrop_totals(const struct maildrop *md);

/* Receives message bytes as stored (without the From_ line); returns 0,
 * or -1 to stop. */
typedef int (*md_sink_fn)(void *ctx, const char *data, size_t len);

/* Is message i still the one parsed at login? MD_OK, MD_TEMPFAIL if
 * another program changed it (logged), MD_BUSY if a lock wait ran out.
 * Call before promising the message to the client. */
enum md_status maildrop_verify(struct maildrop *md, size_t i);

/* Send message i to sink: the whole message, or with body_lines set, the
 * header section, the blank line after it, and at most that many body
 * lines (TOP). After the last byte, checks that the message still sits
 * where it did: if not, MD_TEMPFAIL, and what was sent must not be
 * presented as complete. A sink failure also gives MD_TEMPFAIL. */
enum md_status maildrop_send(struct maildrop *md, size_t i,
			     const unsigned long *body_lines, md_sink_fn sink,
			     void *ctx);

struct md_update_stats {
	size_t deleted, left;
	uint64_t deleted_bytes, left_bytes;
	/* UPDATE began but could not finish: its journal is kept, and the
	 * next login or pop3d --recover completes the deletions. */
	bool pending;
};

/* UPDATE: remove the messages marked deleted, keep everything else and
 * any mail delivered since login. Deletes nothing if a message the
 * session knows has changed. *stats says what was done: on failure,
 * nothing deleted and every message left. */
enum md_status maildrop_update(struct maildrop *md,
			       struct md_update_stats *stats);

#endif
