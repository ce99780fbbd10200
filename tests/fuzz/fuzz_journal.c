/* libFuzzer: the recovery journal's reader (journal_load, journal.h). A
 * journal lives in a directory its user owns, so it is hostile input:
 * whatever it holds, recovery must bound every length, never read or
 * write past what the journal and the spool hold, and apply only a plan
 * that moves kept data down within the file.
 *
 * Input: a flag byte, then a journal image.
 *   bit 0  fix the hashes first (header, regions, both slots' bindings
 *          and their own), so that fuzzing reaches the checks behind them
 *   bit 1  then also run journal_recover on the image against a scratch
 *          spool whose identity and boundary digests the harness writes
 *          into the header (at most 64 KiB of spool)
 *
 * Checks:
 * - journal_load agrees with a reference reader written here from the
 *   format's description in journal.h and design.md §4.8 (accept or
 *   refuse, every field, every region, the chosen slot);
 * - what it accepts encodes back to the same octets (round trip);
 * - journal_recover never fails on a bad journal except by refusing it
 *   (the spool then untouched), and what it finishes equals the
 *   reference result: [0, done) as it was, the saved window, then each
 *   output byte taken from its source, cut at the new end. */
#include "fuzz.h"

#include "hash.h"
#include "journal.h"
#include "params.h"

/* --- the reference reader ---------------------------------------------- */

struct cursor {
	const uint8_t *p;
	size_t n, at;
	bool short_read;
};

static uint64_t
take(struct cursor *c, int bytes)
{
	uint64_t v = 0;

	if (c->at + bytes > c->n) {
		c->short_read = true;
		c->at = c->n;
		return 0;
	}
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)c->p[c->at + i] << (8 * i);
	c->at += bytes;
	return v;
}

static uint64_t
ref_hash(const uint8_t *p, size_t n)
{
	struct content_hash h;

	memset(&h, 0, sizeof(h));
	hash_update(&h, (const char *)p, n);
	return hash_final(&h);
}

struct ref {
	struct journal_plan plan;
	struct region reg[64];
	struct journal_slot slot;
};

#define REF_REGIONS 64
#define LIMIT ((uint64_t)1 << 62)

static bool
ref_header(const uint8_t *img, size_t n, struct journal_plan *p)
{
	struct cursor c = {img, n, 0, false};
	uint32_t window;

	memset(p, 0, sizeof(*p));
	if (n < 192 || memcmp(img, "pop3d journal 2", 16) != 0)
		return false;
	c.at = 16;
	p->flags = (uint32_t)take(&c, 4);
	p->mark_len = (uint32_t)take(&c, 4);
	p->ino = take(&c, 8);
	p->btime_sec = (int64_t)take(&c, 8);
	p->btime_nsec = (uint32_t)take(&c, 4);
	window = (uint32_t)take(&c, 4);
	p->window = window;
	p->dst = take(&c, 8);
	p->end = take(&c, 8);
	p->eof = take(&c, 8);
	p->nreg = take(&c, 8);
	p->head_from = take(&c, 8);
	p->head_digest = take(&c, 8);
	p->tail_from = take(&c, 8);
	p->tail_digest = take(&c, 8);
	memcpy(p->mark, img + 112, 32);
	c.at = 144;
	p->regions_hash = take(&c, 8);
	p->header_hash = take(&c, 8);
	if (p->header_hash != ref_hash(img, 152))
		return false;
	/* Flag 2: the dotlock's stamp at 160, then a hash of all before. */
	if (p->flags & 2) {
		c.at = 160;
		p->dotlock.ino = take(&c, 8);
		p->dotlock.ctime_sec = (int64_t)take(&c, 8);
		p->dotlock.ctime_nsec = (uint32_t)take(&c, 4);
		if (take(&c, 4) != 0)
			return false;
		c.at = 184;
		if (take(&c, 8) != ref_hash(img, 184) ||
		    p->dotlock.ctime_nsec > 999999999u)
			return false;
	} else {
		for (unsigned i = 160; i < 192; i++)
			if (img[i])
				return false;
	}
	/* Flag 4: each save area durable before its slot, no area hash. */
	if (p->flags > 7 || window == 0 || window > JOURNAL_WINDOW ||
	    p->btime_nsec > 999999999u || p->mark_len == 0 ||
	    p->mark_len > 32 || p->eof > LIMIT)
		return false;
	/* dst <= end < end + mark <= eof */
	if (!(p->dst <= p->end && p->end < p->eof &&
	      p->mark_len <= p->eof - p->end))
		return false;
	if ((p->nreg == 0 && p->dst != p->end) || p->nreg > JOURNAL_REGIONS_MAX)
		return false;
	if (p->head_from > p->dst || p->dst - p->head_from > 64)
		return false;
	if (p->tail_from > p->eof || p->tail_from < p->end + p->mark_len ||
	    p->eof - p->tail_from > 64)
		return false;
	for (unsigned i = p->mark_len; i < 32; i++)
		if (p->mark[i])
			return false;
	return true;
}

static bool
ref_regions(const uint8_t *img, size_t n, const struct journal_plan *p,
	    struct region *reg)
{
	struct cursor c = {img, n, JOURNAL_BLOCK, false};
	uint64_t out = p->dst, prev_shift = 0;

	if (p->nreg > REF_REGIONS || JOURNAL_BLOCK + p->nreg * 16 > n ||
	    ref_hash(img + JOURNAL_BLOCK, p->nreg * 16) != p->regions_hash)
		return false;
	for (uint64_t i = 0; i < p->nreg; i++) {
		uint64_t s = take(&c, 8), l = take(&c, 8);

		if (l == 0 || s > p->eof || p->eof - s < l)
			return false;
		if (s <= out || s - out < prev_shift)
			return false;
		if (p->end - out < l)
			return false;
		prev_shift = s - out;
		reg[i].start = (off_t)s;
		reg[i].len = (off_t)l;
		out += l;
	}
	return out == p->end;
}

static uint64_t
slot_at(const struct journal_plan *p, int k)
{
	uint64_t r = (p->nreg * 16 + 4095) / 4096 * 4096;

	return 4096 + r + 4096 * (uint64_t)k;
}

static bool
ref_slot(const uint8_t *img, size_t n, const struct journal_plan *p, int k,
	 struct journal_slot *s)
{
	uint64_t at = slot_at(p, k);
	struct cursor c = {img, n, 0, false};

	if (at > n || n - at < 64 || memcmp(img + at, "pop3dslt", 8) != 0 ||
	    ref_hash(img + at, 56) !=
		    take(&(struct cursor){img, n, at + 56, 0}, 8))
		return false;
	c.at = at + 8;
	s->seq = take(&c, 8);
	s->phase = (uint32_t)take(&c, 4);
	s->area = (uint32_t)take(&c, 4);
	s->done = take(&c, 8);
	s->save_len = take(&c, 8);
	s->save_hash = take(&c, 8);
	if (take(&c, 8) != p->header_hash)
		return false;
	if (s->seq == 0 || s->seq > LIMIT || (s->seq & 1) != (uint64_t)k)
		return false;
	if (s->phase != 1 && s->phase != 2)
		return false;
	if (s->done < p->dst || s->done > p->end || s->area > 1)
		return false;
	if (s->save_len > p->window || s->save_len > p->end - s->done)
		return false;
	if (s->save_len == 0 ? s->area != 0 || s->save_hash != 0
			     : s->area != (s->seq & 1))
		return false;
	if ((p->flags & 4) && s->save_hash != 0)
		return false;
	if (s->phase == 2 && (s->done != p->end || s->save_len != 0))
		return false;
	return true;
}

static bool
ref_load(const uint8_t *img, size_t n, struct ref *r)
{
	struct journal_slot s[2];
	bool ok[2];

	if (!ref_header(img, n, &r->plan) ||
	    !ref_regions(img, n, &r->plan, r->reg))
		return false;
	for (int k = 0; k < 2; k++)
		ok[k] = ref_slot(img, n, &r->plan, k, &s[k]);
	if (!ok[0] && !ok[1])
		return false;
	r->slot = !ok[1] || (ok[0] && s[0].seq > s[1].seq) ? s[0] : s[1];
	return true;
}

/* --- fixing hashes, so that fuzzing gets past them -------------------- */

static void
put64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get64(const uint8_t *b)
{
	return take(&(struct cursor){b, 8, 0, false}, 8);
}

static void
fix_hashes(uint8_t *img, size_t n)
{
	uint64_t nreg, at;

	if (n < 160)
		return;
	nreg = get64(img + 72);
	if (nreg <= REF_REGIONS && JOURNAL_BLOCK + nreg * 16 <= n)
		put64(img + 144, ref_hash(img + JOURNAL_BLOCK, nreg * 16));
	put64(img + 152, ref_hash(img, 152));
	if (n >= 192 && (img[16] & 2))
		put64(img + 184, ref_hash(img, 184));
	if (nreg > REF_REGIONS)
		return;
	for (int k = 0; k < 2; k++) {
		at = 4096 + (nreg * 16 + 4095) / 4096 * 4096 + 4096 * k;
		if (at + 64 > n)
			continue;
		put64(img + at + 48, get64(img + 152));
		put64(img + at + 56, ref_hash(img + at, 56));
	}
}

/* --- journal_load through memory ------------------------------------------ */

struct image {
	const uint8_t *p;
	size_t n;
};

static ssize_t
read_image(void *ctx, void *buf, size_t n, uint64_t at)
{
	const struct image *im = ctx;
	size_t k;

	if (at >= im->n)
		return 0;
	k = im->n - at < n ? im->n - at : n;
	memcpy(buf, im->p + at, k);
	return (ssize_t)k;
}

static void
compare_load(const uint8_t *img, size_t n, bool *valid, struct ref *want)
{
	struct image im = {img, n};
	struct journal_plan p;
	struct journal_slot s;
	struct region *reg = NULL;
	int r;

	/* The reference keeps at most REF_REGIONS: larger plans are
	 * judged by journal_load alone (their size is bounded there). */
	if (n >= 160 && get64(img + 72) > REF_REGIONS) {
		r = journal_load(read_image, &im, &p, &reg, &s);
		check(r != -1, "journal_load failed on memory");
		free(reg);
		*valid = false;
		return;
	}
	*valid = ref_load(img, n, want);
	r = journal_load(read_image, &im, &p, &reg, &s);
	check(r == 0 || r == 1, "journal_load returned %d", r);
	check((r == 0) == *valid, "journal_load %s what the reference %s",
	      r == 0 ? "accepts" : "refuses", *valid ? "accepts" : "refuses");
	if (r != 0)
		return;
	check(memcmp(&p, &want->plan, sizeof(p)) == 0,
	      "the plan differs from the reference");
	for (uint64_t i = 0; i < p.nreg; i++)
		check(reg[i].start == want->reg[i].start &&
			      reg[i].len == want->reg[i].len,
		      "region %llu differs", (unsigned long long)i);
	check(memcmp(&s, &want->slot, sizeof(s)) == 0,
	      "the chosen slot differs");
	/* Round trip: the accepted parts encode to the same octets. */
	{
		uint8_t head[JOURNAL_HEADER_SIZE], slot[JOURNAL_SLOT_SIZE];
		uint8_t *raw = malloc(p.nreg * JOURNAL_REGION_SIZE);
		uint64_t at = journal_slot_offset(&p, (int)(s.seq & 1));

		check(raw != NULL, "out of memory");
		journal_encode_header(&p, head);
		check(memcmp(head, img, sizeof(head)) == 0,
		      "header does not round-trip");
		journal_encode_regions(reg, p.nreg, raw);
		check(memcmp(raw, img + JOURNAL_BLOCK,
			     p.nreg * JOURNAL_REGION_SIZE) == 0,
		      "regions do not round-trip");
		journal_encode_slot(&p, &s, slot);
		check(memcmp(slot, img + at, sizeof(slot)) == 0,
		      "slot does not round-trip");
		free(raw);
	}
	free(reg);
}

/* --- recovery against a scratch spool ------------------------------------- */

#define SPOOL_MAX 65536

static uint8_t spool0[SPOOL_MAX];

/* Where output byte x comes from. */
static uint64_t
source_of(const struct ref *r, uint64_t x)
{
	uint64_t out = r->plan.dst;

	for (uint64_t i = 0; i < r->plan.nreg; i++) {
		if (x < out + (uint64_t)r->reg[i].len)
			return (uint64_t)r->reg[i].start + (x - out);
		out += r->reg[i].len;
	}
	fuzz_fail("output %llu outside the plan", (unsigned long long)x);
}

static void
run_recovery(uint8_t *img, size_t n, struct ref *r)
{
	char spool[512], jpath[600];
	struct journal_plan *p = &r->plan;
	struct journal_slot *s = &r->slot;
	static char buf[777];
	uint8_t *want, head[JOURNAL_HEADER_SIZE], slot[JOURNAL_SLOT_SIZE];
	uint64_t want_len, area = 0;
	struct statx sx;
	struct fbuf got = {0};
	bool area_ok;
	int fd, res;

	if (p->eof > SPOOL_MAX)
		return;
	snprintf(spool, sizeof(spool), "%s/spool", fuzz_dir_init("journal"));
	snprintf(jpath, sizeof(jpath), "%s/journal", fuzz_dir);
	for (uint64_t i = 0; i < p->eof; i++)
		spool0[i] = (uint8_t)("From abc\n\n"[i % 10] + i / 10 % 7);
	write_file(spool, spool0, p->eof);
	/* Make the header name this spool, as it stands. */
	fd = open(spool, O_RDWR);
	check(fd >= 0 && statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME,
			       &sx) == 0,
	      "statx");
	p->ino = sx.stx_ino;
	p->flags = (p->flags & JOURNAL_AREA_SYNCED) |
		   (sx.stx_mask & STATX_BTIME ? JOURNAL_HAVE_BTIME : 0);
	p->btime_sec = p->flags & JOURNAL_HAVE_BTIME ? sx.stx_btime.tv_sec : 0;
	p->btime_nsec =
		p->flags & JOURNAL_HAVE_BTIME ? sx.stx_btime.tv_nsec : 0;
	p->head_digest = ref_hash(spool0 + p->head_from, p->dst - p->head_from);
	p->tail_digest = ref_hash(spool0 + p->tail_from, p->eof - p->tail_from);
	journal_encode_header(p, head);
	memcpy(img, head, sizeof(head));
	journal_encode_slot(p, s, slot);
	memcpy(img + journal_slot_offset(p, (int)(s->seq & 1)), slot,
	       sizeof(slot));
	write_file(jpath, img, n);
	if (s->save_len > 0)
		area = journal_area_offset(p, (int)s->area);
	area_ok = s->save_len == 0 ||
		  (area <= n && n - area >= s->save_len &&
		   ((p->flags & JOURNAL_AREA_SYNCED) ||
		    ref_hash(img + area, s->save_len) == s->save_hash));

	/* The reference result. */
	want = malloc(p->eof);
	check(want != NULL, "out of memory");
	memcpy(want, spool0, p->eof);
	want_len = p->eof;
	if (area_ok && s->phase == JOURNAL_MOVED) {
		if (memcmp(spool0 + p->end, p->mark, p->mark_len) == 0)
			want_len = p->end;
	} else if (area_ok) {
		uint64_t from = s->done + s->save_len;

		if (s->save_len > 0)
			memcpy(want + s->done, img + area, s->save_len);
		for (uint64_t x = from; x < p->end; x++)
			want[x] = spool0[source_of(r, x)];
		want_len = p->end;
	}

	res = journal_recover(fd, jpath, buf, sizeof(buf), NULL);
	check(res >= 0, "journal_recover failed: %s", strerror(errno));
	check(res == (area_ok ? JOURNAL_FINISHED : JOURNAL_REFUSED),
	      "journal_recover gave %d", res);
	{
		struct stat st;
		ssize_t k;

		check(fstat(fd, &st) == 0, "fstat");
		fbuf_add(&got, NULL, st.st_size);
		k = pread(fd, got.p, st.st_size, 0);
		check(k == st.st_size, "pread");
	}
	check(bytes_eq(got.p, got.len, area_ok ? want : spool0,
		       area_ok ? want_len : p->eof),
	      "the spool after recovery is not the reference's (%zu octets, "
	      "want %llu)",
	      got.len, (unsigned long long)(area_ok ? want_len : p->eof));
	check(!journal_pending(jpath) || !area_ok,
	      "journal left after a finished recovery");
	close(fd);
	fbuf_free(&got);
	free(want);
	{
		char aside[700];

		snprintf(aside, sizeof(aside), "%s.rejected", jpath);
		unlink(aside);
		unlink(jpath);
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ref want;
	uint8_t *img;
	size_t n;
	bool valid;

	if (size < 1)
		return 0;
	n = size - 1;
	img = malloc(n ? n : 1);
	check(img != NULL, "out of memory");
	memcpy(img, data + 1, n);
	if (data[0] & 1)
		fix_hashes(img, n);
	compare_load(img, n, &valid, &want);
	if (valid && (data[0] & 2))
		run_recovery(img, n, &want);
	free(img);
	return 0;
}
