/* Crash-consistent compaction of the spool (UPDATE), rolled forward from
 * a recovery journal after a crash (design.md §4.8).
 *
 * Compaction moves kept data down over deleted data in place (the
 * spool's inode, owner and mode must not change: MTAs may hold it open).
 * Once the journal is durable, UPDATE has begun and is always finished:
 * deleted messages stay deleted, kept ones end up once and byte-exact,
 * and mail delivered since is kept. Data is moved in steps that never
 * overwrite a byte whose copy is not yet durable: a step moves at most
 * the data's shift (then only a progress record is synced), or a window
 * whose bytes the journal saved first (where the shift is small). A
 * random marker past the new end tells "not yet truncated" from
 * "truncated, then new mail appended"; where nothing moves (the last
 * messages deleted), the deleted bytes at the old end tell it.
 *
 * The journal also records what identifies the spool (inode and birth
 * time, not the device number, which a reboot may change) and the state
 * it expects (sizes, digests of the bytes next to those it touches), and
 * is applied only to that file in that state. */
#ifndef POP3D_JOURNAL_H
#define POP3D_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sysutil.h"

/* A span of the spool to keep. */
struct region {
	off_t start, len;
};

/* The journal's path for the spool at spool_path, in the user's journal
 * directory dir: named after the path, which a reboot does not change
 * (the device number may). Returns 0, or -1 if it does not fit. */
int journal_path(const char *dir, const char *spool_path, char *out,
		 size_t size);

/* How compaction steps: a shift of at least direct_min moves without
 * saving bytes; a smaller one moves window octets at a time (at most
 * JOURNAL_WINDOW), saved first. NULL: JOURNAL_DIRECT_MIN and
 * JOURNAL_WINDOW (params.h); tests use small ones. */
struct journal_tuning {
	uint64_t direct_min;
	uint32_t window;
};

/* Move the regions, in order, down to start at dst (each region starts
 * after the one before, the first at or after dst, the last ends at or
 * before the end of the file; len < 0: to the end of the file), truncate
 * the spool after them and sync it, journaling in jpath. buf is scratch
 * space of size octets. dotlock: the stamp of the dotlock the caller
 * holds (NULL: none), which the journal records (journal_dotlock).
 * Returns 0,
 * or -1 with errno set: then either nothing was changed and no journal
 * is left (UPDATE did not begin), or the journal stays, to be finished
 * by journal_recover (UPDATE began); or JOURNAL_UNSYNCED with errno set:
 * a truncation to zero (nothing kept, no journal) was made, and its
 * fdatasync failed, so a crash may undo it. */
#define JOURNAL_UNSYNCED 1
int journal_compact(int fd, const char *jpath, off_t dst,
		    const struct region *r, size_t n, char *buf, size_t size,
		    const struct file_stamp *dotlock,
		    const struct journal_tuning *t);

/* Close the descriptor of the journal the last successful
 * journal_compact removed (a no-op if there is none): the freeing of its
 * blocks, left until after the client's +OK (maildrop_close). */
void journal_release(void);

/* <jpath> with this appended is the spool's session lock (maildrop.c,
 * session_lock): kept for good, empty, never a journal. */
#define JOURNAL_SESSION_SUFFIX ".session"
/* A journal set aside because its spool was replaced (JOURNAL_STALE):
 * kept for the admin to look at, pending nothing. */
#define JOURNAL_STALE_SUFFIX ".stale"

/* Is there anything at jpath for journal_recover to look at: a journal,
 * a half-written one to clear away, or one refused before? */
bool journal_pending(const char *jpath);

enum journal_outcome {
	JOURNAL_NONE,	  /* nothing was pending */
	JOURNAL_FINISHED, /* an interrupted UPDATE was completed */
	JOURNAL_STALE,	  /* the journal's spool no longer exists (replaced
			     by another file): moved aside to <jpath>.stale,
			     the spool untouched and whole */
	JOURNAL_REFUSED,  /* the journal does not match the spool's state,
			     or is damaged: moved aside to <jpath>.rejected,
			     the spool untouched; it may be half moved, so
			     serve nothing until the admin removes that file */
};

/* The stamp of the dotlock that the UPDATE which wrote the journal at
 * jpath held, as it recorded it: 1 with *s filled, 0 if there is no
 * valid journal there or it records none (older journals). A power cut
 * can leave that dotlock behind with its PID never written, which
 * liblockfile then takes as held for five minutes; recovery removes it
 * when its stamp still matches (lock_clear_left). */
int journal_dotlock(const char *jpath, struct file_stamp *s);

/* The recovery entry point, for a login and for pop3d --recover: fd is
 * the spool opened read-write, with the UPDATE locks held (dotlock, then
 * the fcntl write lock) so that no MTA writes meanwhile; jpath its
 * journal (journal_path); dotlock the held dotlock's stamp (NULL: none)
 * for the journal of its own that mail delivered after a crash needs.
 * Finishes the UPDATE the journal describes, or refuses it. Logs what it
 * did. Returns an enum journal_outcome, or -1 with errno set on an I/O
 * error (the journal stays; try again). */
int journal_recover(int fd, const char *jpath, char *buf, size_t size,
		    const struct file_stamp *dotlock);

/* --- the journal's format, for the tests and the fuzzer ----------------
 *
 * A journal file: a header block, the regions, two progress slots (each
 * in a 4 KiB block of its own, so a torn write spoils one), then two save
 * areas of JOURNAL_WINDOW octets. Integers are little-endian. */

#define JOURNAL_BLOCK 4096
/* The header proper is 160 octets; with JOURNAL_HAVE_DOTLOCK it is
 * followed by the dotlock's stamp and a hash of all of it. */
#define JOURNAL_HEADER_SIZE 192
#define JOURNAL_REGION_SIZE 16
#define JOURNAL_SLOT_SIZE 64
#define JOURNAL_MARK_MAX 32
/* Bytes next to the ones UPDATE writes whose digest the header keeps. */
#define JOURNAL_BOUNDARY 64
/* A truncation zeroes the rest of the block (or page) its new end falls
 * in, and on ext4 that write can reach the disk while the new size does
 * not (tests/faults/blkcrash.py): recovery takes zeros at the marker's
 * place, and up to this far past it, for such a truncation begun. */
#define JOURNAL_ZEROED_MAX ((uint64_t)64 * 1024)

#define JOURNAL_HAVE_BTIME 1u
#define JOURNAL_HAVE_DOTLOCK 2u
/* Each save area is made durable before the slot that names it is
 * written, so that slot's save_hash is 0 and the area is not hashed
 * (since round 14 of issue 13; before, one fdatasync made both durable
 * and recovery took the hash to tell a torn area). */
#define JOURNAL_AREA_SYNCED 4u

enum journal_phase { JOURNAL_MOVING = 1, JOURNAL_MOVED };

struct journal_plan {
	uint32_t flags, mark_len;
	uint64_t ino;
	int64_t btime_sec;
	uint32_t btime_nsec;
	uint32_t window;	/* size of a save area */
	uint64_t dst, end, eof; /* first byte moved, new length, old length */
	uint64_t nreg;
	uint64_t head_from, head_digest; /* of [head_from, dst) */
	uint64_t tail_from, tail_digest; /* of [tail_from, eof) */
	unsigned char mark[JOURNAL_MARK_MAX];
	uint64_t regions_hash, header_hash;
	struct file_stamp dotlock; /* with JOURNAL_HAVE_DOTLOCK */
};

struct journal_slot {
	uint64_t seq;
	uint32_t phase, area;
	/* Output [dst, done) is in place; with save_len, the save area
	 * holds output [done, done + save_len) (digest save_hash). */
	uint64_t done, save_len, save_hash;
};

/* Decode and check a header block; fills p. 0, or -1 if it is not a
 * whole, consistent header (any field out of bounds). */
int journal_decode_header(const unsigned char *b, size_t n,
			  struct journal_plan *p);
/* Decode p->nreg regions from b (n octets) into r and check that they
 * fit the plan (ascending, each shifted no less than the one before,
 * inside the file, adding up to end - dst, matching regions_hash). */
int journal_decode_regions(const struct journal_plan *p, const unsigned char *b,
			   size_t n, struct region *r);
/* Decode and check a slot of plan p: 0, or -1 (torn, foreign, bad). */
int journal_decode_slot(const struct journal_plan *p, const unsigned char *b,
			size_t n, struct journal_slot *s);
/* The encoders; they fill in the hashes. */
void journal_encode_header(struct journal_plan *p,
			   unsigned char b[JOURNAL_HEADER_SIZE]);
void journal_encode_regions(const struct region *r, size_t n, unsigned char *b);
uint64_t journal_regions_hash(const unsigned char *b, size_t n);
void journal_encode_slot(const struct journal_plan *p,
			 const struct journal_slot *s,
			 unsigned char b[JOURNAL_SLOT_SIZE]);
/* Where slot k (0 or 1) and save area k start in a journal of plan p. */
uint64_t journal_slot_offset(const struct journal_plan *p, int k);
uint64_t journal_area_offset(const struct journal_plan *p, int k);

/* Read a journal image through rd (a pread-like reader) and pick its
 * newest valid slot: 0 with *p, *r_r (malloc'd, p->nreg entries) and *s
 * filled; 1 if it is not a valid journal; -1 on a read error (errno) or
 * out of memory. */
typedef ssize_t (*journal_read_fn)(void *ctx, void *buf, size_t n, uint64_t at);
int journal_load(journal_read_fn rd, void *ctx, struct journal_plan *p,
		 struct region **r_r, struct journal_slot *s);

#endif
