/* bench/readbench: how to read a warm spool, and how fast the encoder is
 * (issue 12, round 4; bench/RESULTS.md).
 *
 *   readbench [-r ROUNDS] read SPOOL
 *   readbench [-r ROUNDS] encode SPOOL
 *
 * read: the spool read front to back, each way below in turn per round,
 * with the same cheap pass over every octet (the login parse's body
 * work: LFs counted, LF + 'F' candidates found, 16 octets a step), and
 * once more with the encoder instead of the pass (what RETR does):
 *   pread:N        pread into an N-octet buffer (what pop3d does)
 *   mmap           one mapping of the whole file, no advice
 *   mmap-seq       the same, MADV_SEQUENTIAL
 *   mmap-will      the same, MADV_WILLNEED
 *   mmap-pop       the same, MAP_POPULATE
 *   mmap-huge      the same, MADV_HUGEPAGE
 *   win-pop:M      windows of M MiB, each mapped with MAP_POPULATE
 *   win-seq:M      windows of M MiB, each MADV_SEQUENTIAL
 *   mmap, again    one mapping, touched by a pass first: only the
 *                  second pass is timed (what the first touch costs)
 * encode: the spool read into memory once, then dotstuff.c's encoder
 * (the vector scan, "new") and its portable path ("old": one memchr per
 * line, as before round 4), message by message, with a writer that only
 * counts; the outputs' hashes must agree.
 *
 * Per way: the median over ROUNDS (the ways take turns within each
 * round) of wall time, user and system CPU (getrusage) and minor page
 * faults. Run it on a warm page cache under the heavy lock.
 */
#define _GNU_SOURCE
#include <emmintrin.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../dotstuff.h"
#include "../hash.h"

/* The portable path of dotstuff.c, built a second time by the Makefile
 * with DOTSTUFF_NO_SIMD and its names prefixed "old_". */
void old_dotstuff_init(struct dotstuff *ds, dotstuff_write_fn write, void *ctx);
int old_dotstuff_feed(struct dotstuff *ds, const char *data, size_t len);
int old_dotstuff_finish(struct dotstuff *ds);

#define MAX_WAYS 32
#define MAX_ROUNDS 64

struct sample {
	double wall, user, sys;
	long minflt;
};

struct way {
	char name[48];
	int kind; /* 0 pread, 1 whole mapping, 2 windows, 3 second pass */
	size_t size;
	int flags, advice;
	bool encode;
	struct sample s[MAX_ROUNDS];
};

static int fd;
static off_t file_size;
static uint64_t sink_total;

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

/* The parse's body pass: LFs counted and LF + 'F' found. */
static uint64_t lf_count, from_count;

static void
scan(const char *p, size_t n)
{
	const __m128i lf = _mm_set1_epi8('\n'), f = _mm_set1_epi8('F');
	uint64_t lfs = 0, fs = 0;
	size_t i = 0;

	for (; n - i >= 17; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(p + i));
		__m128i w = _mm_loadu_si128((const __m128i *)(p + i + 1));
		__m128i e = _mm_cmpeq_epi8(v, lf);

		lfs += __builtin_popcount(_mm_movemask_epi8(e));
		fs += __builtin_popcount(_mm_movemask_epi8(
			_mm_and_si128(e, _mm_cmpeq_epi8(w, f))));
	}
	for (; i < n; i++)
		lfs += p[i] == '\n';
	lf_count += lfs;
	from_count += fs;
}

static int
count_writer(void *ctx, const void *data, size_t len)
{
	(void)ctx;
	(void)data;
	sink_total += len;
	return 0;
}

static struct dotstuff ds;

static void
pass(const struct way *w, const char *p, size_t n)
{
	if (w->encode)
		dotstuff_feed(&ds, p, n);
	else
		scan(p, n);
}

static void
run_pread(const struct way *w)
{
	char *buf = malloc(w->size);
	off_t off = 0;
	ssize_t n;

	if (buf == NULL)
		die("malloc");
	while (off < file_size) {
		n = pread(fd, buf, w->size, off);
		if (n <= 0)
			die("pread");
		pass(w, buf, n);
		off += n;
	}
	free(buf);
}

static void
run_mapped(const struct way *w)
{
	size_t win = w->kind == 1 ? (size_t)file_size : w->size;

	for (off_t off = 0; off < file_size; off += win) {
		size_t n = file_size - off < (off_t)win
				   ? (size_t)(file_size - off)
				   : win;
		char *p = mmap(NULL, n, PROT_READ, MAP_SHARED | w->flags, fd,
			       off);

		if (p == MAP_FAILED)
			die("mmap");
		if (w->advice >= 0 && madvise(p, n, w->advice) < 0)
			die("madvise");
		pass(w, p, n);
		munmap(p, n);
	}
}

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static double
tv(const struct timeval *t)
{
	return t->tv_sec + t->tv_usec / 1e6;
}

static void
second_pass(struct way *w, int round)
{
	char *p = mmap(NULL, file_size, PROT_READ, MAP_SHARED, fd, 0);
	struct rusage a, b;
	double t0, t1;

	if (p == MAP_FAILED)
		die("mmap");
	pass(w, p, file_size);
	getrusage(RUSAGE_SELF, &a);
	t0 = now();
	pass(w, p, file_size);
	t1 = now();
	getrusage(RUSAGE_SELF, &b);
	munmap(p, file_size);
	w->s[round] = (struct sample){
		t1 - t0, tv(&b.ru_utime) - tv(&a.ru_utime),
		tv(&b.ru_stime) - tv(&a.ru_stime), b.ru_minflt - a.ru_minflt};
}

static void
measure(struct way *w, int round)
{
	struct rusage a, b;
	double t0, t1;

	if (w->encode)
		dotstuff_init(&ds, count_writer, NULL);
	if (w->kind == 3)
		return second_pass(w, round);
	getrusage(RUSAGE_SELF, &a);
	t0 = now();
	if (w->kind == 0)
		run_pread(w);
	else
		run_mapped(w);
	if (w->encode)
		dotstuff_finish(&ds);
	t1 = now();
	getrusage(RUSAGE_SELF, &b);
	w->s[round] = (struct sample){
		t1 - t0, tv(&b.ru_utime) - tv(&a.ru_utime),
		tv(&b.ru_stime) - tv(&a.ru_stime), b.ru_minflt - a.ru_minflt};
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(const struct way *w, int rounds, int field)
{
	double v[MAX_ROUNDS];

	for (int i = 0; i < rounds; i++)
		v[i] = field == 0   ? w->s[i].wall
		       : field == 1 ? w->s[i].user
		       : field == 2 ? w->s[i].sys
				    : (double)w->s[i].minflt;
	qsort(v, rounds, sizeof(v[0]), cmp_double);
	return rounds % 2 ? v[rounds / 2]
			  : (v[rounds / 2 - 1] + v[rounds / 2]) / 2;
}

static void
report(const struct way *w, int n, int rounds)
{
	printf("| way | wall | GB/s | user | sys | user+sys | minor faults |\n"
	       "|---|---|---|---|---|---|---|\n");
	for (int i = 0; i < n; i++) {
		double wall = median(&w[i], rounds, 0);
		double u = median(&w[i], rounds, 1),
		       s = median(&w[i], rounds, 2);

		printf("| %s | %.3f s | %.2f | %.3f s | %.3f s | %.3f s | %.0f "
		       "|\n",
		       w[i].name, wall, file_size / wall / 1e9, u, s, u + s,
		       median(&w[i], rounds, 3));
	}
}

static int
add(struct way *w, int n, bool encode, const char *name, int kind, size_t size,
    int flags, int advice)
{
	w[n] = (struct way){.kind = kind,
			    .size = size,
			    .flags = flags,
			    .advice = advice,
			    .encode = encode};
	snprintf(w[n].name, sizeof(w[n].name), "%s", name);
	return n + 1;
}

static int
read_ways(struct way *w, bool encode)
{
	static const size_t chunk[] = {64 << 10, 128 << 10, 256 << 10, 1 << 20};
	static const size_t win[] = {1 << 20, 4 << 20, 16 << 20, 64 << 20};
	char name[sizeof(w->name)];
	int n = 0;

	for (size_t i = 0; i < sizeof(chunk) / sizeof(chunk[0]); i++) {
		snprintf(name, sizeof(name), "pread %zu KiB", chunk[i] >> 10);
		n = add(w, n, encode, name, 0, chunk[i], 0, -1);
	}
	n = add(w, n, encode, "mmap", 1, 0, 0, -1);
	n = add(w, n, encode, "mmap, SEQUENTIAL", 1, 0, 0, MADV_SEQUENTIAL);
	n = add(w, n, encode, "mmap, WILLNEED", 1, 0, 0, MADV_WILLNEED);
	n = add(w, n, encode, "mmap, POPULATE", 1, 0, MAP_POPULATE, -1);
	n = add(w, n, encode, "mmap, MADV_HUGEPAGE", 1, 0, 0, MADV_HUGEPAGE);
	n = add(w, n, encode, "mmap, again (2nd pass only)", 3, 0, 0, -1);
	for (size_t i = 0; i < sizeof(win) / sizeof(win[0]); i++) {
		snprintf(name, sizeof(name), "%zu MiB windows, POPULATE",
			 win[i] >> 20);
		n = add(w, n, encode, name, 2, win[i], MAP_POPULATE, -1);
		snprintf(name, sizeof(name), "%zu MiB windows, SEQUENTIAL",
			 win[i] >> 20);
		n = add(w, n, encode, name, 2, win[i], 0, MADV_SEQUENTIAL);
	}
	return n;
}

static void
bench_read(int rounds)
{
	static struct way w[MAX_WAYS];
	int n;

	for (int pass_kind = 0; pass_kind < 2; pass_kind++) {
		n = read_ways(w, pass_kind == 1);
		for (int r = 0; r < rounds; r++)
			for (int i = 0; i < n; i++)
				measure(&w[i], r);
		printf("\n%s, %.1f MB, median of %d rounds:\n\n",
		       pass_kind ? "The encoder over the data"
				 : "The body scan over the data",
		       file_size / 1e6, rounds);
		report(w, n, rounds);
	}
}

/* --- encode ---------------------------------------------------------- */

struct hashing {
	struct content_hash h;
	uint64_t n;
};

static int
hash_writer(void *ctx, const void *data, size_t len)
{
	struct hashing *hw = ctx;

	hash_update(&hw->h, data, len);
	hw->n += len;
	return 0;
}

/* Message starts: "From " at 0 or after an empty line. */
static size_t *
split(const char *p, size_t n, size_t *count_r)
{
	size_t cap = 1024, count = 0, *at = malloc(cap * sizeof(*at));
	const char *q = p, *e = p + n;

	while (at != NULL && q < e) {
		if (count == cap)
			at = realloc(at, (cap *= 2) * sizeof(*at));
		at[count++] = q - p;
		q = memmem(q + 1, e - q - 1, "\n\nFrom ", 7);
		q = q == NULL ? e : q + 2;
	}
	if (at == NULL)
		die("malloc");
	*count_r = count;
	return at;
}

typedef void (*init_fn)(struct dotstuff *, dotstuff_write_fn, void *);
typedef int (*feed_fn)(struct dotstuff *, const char *, size_t);
typedef int (*finish_fn)(struct dotstuff *);

/* Each message fed from after its From_ line in pieces of at most
 * piece octets (what maildrop.c hands over: up to 64 KiB), as RETR. */
static void
encode_all(const char *p, const size_t *at, size_t count, size_t piece,
	   init_fn init, feed_fn feed, finish_fn finish, dotstuff_write_fn wr,
	   void *ctx)
{
	for (size_t m = 0; m < count; m++) {
		const char *s =
			memchr(p + at[m], '\n', (size_t)file_size - at[m]);
		const char *e =
			p + (m + 1 < count ? at[m + 1] : (size_t)file_size);

		s = s == NULL ? e : s + 1;
		init(&ds, wr, ctx);
		for (; s < e; s += piece)
			feed(&ds, s,
			     (size_t)(e - s) < piece ? (size_t)(e - s) : piece);
		finish(&ds);
	}
}

static void
bench_encode(int rounds)
{
	static struct way w[2];
	char *p = malloc(file_size);
	size_t count, *at;
	struct hashing h[2];
	uint64_t d[2];

	if (p == NULL)
		die("malloc");
	if (pread(fd, p, file_size, 0) != file_size)
		die("pread");
	at = split(p, file_size, &count);
	for (int k = 0; k < 2; k++) {
		memset(&h[k], 0, sizeof(h[k]));
		encode_all(p, at, count, 64 << 10,
			   k ? dotstuff_init : old_dotstuff_init,
			   k ? dotstuff_feed : old_dotstuff_feed,
			   k ? dotstuff_finish : old_dotstuff_finish,
			   hash_writer, &h[k]);
		d[k] = hash_final(&h[k].h);
	}
	printf("\n%zu messages; output %llu / %llu octets, hash %016llx / "
	       "%016llx: %s\n",
	       count, (unsigned long long)h[0].n, (unsigned long long)h[1].n,
	       (unsigned long long)d[0], (unsigned long long)d[1],
	       d[0] == d[1] && h[0].n == h[1].n ? "identical" : "DIFFERENT");
	if (d[0] != d[1] || h[0].n != h[1].n)
		exit(1);
	snprintf(w[0].name, sizeof(w[0].name), "old (memchr per line)");
	snprintf(w[1].name, sizeof(w[1].name), "new (vector scan)");
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < 2; k++) {
			struct rusage a, b;
			double t0 = now(), t1;

			getrusage(RUSAGE_SELF, &a);
			encode_all(p, at, count, 64 << 10,
				   k ? dotstuff_init : old_dotstuff_init,
				   k ? dotstuff_feed : old_dotstuff_feed,
				   k ? dotstuff_finish : old_dotstuff_finish,
				   count_writer, NULL);
			t1 = now();
			getrusage(RUSAGE_SELF, &b);
			w[k].s[r] = (struct sample){
				t1 - t0, tv(&b.ru_utime) - tv(&a.ru_utime),
				tv(&b.ru_stime) - tv(&a.ru_stime), 0};
		}
	}
	printf("\nThe encoder, message by message, 64 KiB pieces, %.1f MB, "
	       "median of %d rounds:\n\n",
	       file_size / 1e6, rounds);
	report(w, 2, rounds);
	free(at);
	free(p);
}

int
main(int argc, char **argv)
{
	int rounds = 5, c;
	struct stat st;

	while ((c = getopt(argc, argv, "r:")) != -1) {
		if (c != 'r')
			goto usage;
		rounds = atoi(optarg);
	}
	if (argc - optind != 2 || rounds < 1 || rounds > MAX_ROUNDS)
		goto usage;
	if ((fd = open(argv[optind + 1], O_RDONLY)) < 0 || fstat(fd, &st) < 0)
		die(argv[optind + 1]);
	file_size = st.st_size;
	if (strcmp(argv[optind], "read") == 0)
		bench_read(rounds);
	else if (strcmp(argv[optind], "encode") == 0)
		bench_encode(rounds);
	else
		goto usage;
	fprintf(stderr, "(LFs %llu, LF-F %llu, encoded %llu)\n",
		(unsigned long long)lf_count, (unsigned long long)from_count,
		(unsigned long long)sink_total);
	return 0;
usage:
	fprintf(stderr, "usage: readbench [-r ROUNDS] read|encode SPOOL\n");
	return 2;
}
