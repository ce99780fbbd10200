/* A reference reading of an mbox spool for the fuzz harnesses, written
 * from maildrop.h's and tests/unit/spool_helpers.h's definition, not from
 * mbox.c, and kept simple rather than fast (whole file in memory):
 *
 *   - a non-empty spool starts with "From "; otherwise it is no mbox;
 *   - a message starts at a From_ line: the first line, or a line starting
 *     with "From " right after a blank line ("\n" or "\r\n");
 *   - its content is every line after its From_ line up to, not including,
 *     the blank line before the next From_ line; at the end of the file
 *     one last blank line is also a separator and not content;
 *   - the header section ends at the first blank line of the content (TOP
 *     0 sends it and that blank line); no blank line: all headers;
 *   - the body is the content after that blank line, in lines (the last
 *     one may lack its LF);
 *   - the size is that of the content in CRLF form: a bare LF counts two,
 *     a missing final line end two more;
 *   - RETR sends the content dot-stuffed: every line ends in CRLF, a line
 *     starting with "." gets another, then ".\r\n". */
#ifndef POP3D_MBOX_REF_H
#define POP3D_MBOX_REF_H

#include "fuzz.h"

struct ref_msg {
	size_t from;   /* its From_ line */
	size_t start;  /* the content */
	size_t end;    /* one past the content */
	size_t body;   /* the first body octet, or end */
	size_t next;   /* the next From_ line, or the end of the file */
	uint64_t size; /* CRLF form */
	size_t body_lines;
};

struct ref_mbox {
	bool is_mbox;
	size_t n;
	struct ref_msg *msg;
};

static inline size_t
ref_line_end(const char *p, size_t len, size_t at)
{
	const char *lf = memchr(p + at, '\n', len - at);

	return lf != NULL ? (size_t)(lf - p) + 1 : len;
}

static inline bool
ref_blank(const char *p, size_t at, size_t end)
{
	return (end - at == 1 && p[at] == '\n') ||
	       (end - at == 2 && p[at] == '\r' && p[at + 1] == '\n');
}

static inline bool
ref_from(const char *p, size_t at, size_t end)
{
	return end - at >= 5 && memcmp(p + at, "From ", 5) == 0;
}

/* Octets of [at, end) in CRLF form. */
static inline uint64_t
ref_crlf_size(const char *p, size_t at, size_t end)
{
	uint64_t size = 0;

	while (at < end) {
		size_t e = ref_line_end(p, end, at);

		size += e - at;
		if (p[e - 1] != '\n')
			size += 2;
		else if (e - at < 2 || p[e - 2] != '\r')
			size += 1;
		at = e;
	}
	return size;
}

static inline void
ref_finish(const char *p, struct ref_msg *m, size_t last_blank)
{
	size_t at;

	/* last_blank: where the blank line before m->next starts, if the
	 * content ends in one; it is the separator. */
	m->end = last_blank != (size_t)-1 ? last_blank : m->next;
	m->body = m->end;
	m->body_lines = 0;
	for (at = m->start; at < m->end;) {
		size_t e = ref_line_end(p, m->end, at);

		if (ref_blank(p, at, e)) {
			m->body = e;
			break;
		}
		at = e;
	}
	for (at = m->body; at < m->end; at = ref_line_end(p, m->end, at))
		m->body_lines++;
	m->size = ref_crlf_size(p, m->start, m->end);
}

static inline void
ref_parse(const char *p, size_t len, struct ref_mbox *mb)
{
	size_t at, e, prev_blank = (size_t)-1, cap = 0;
	struct ref_msg *m = NULL;

	memset(mb, 0, sizeof(*mb));
	if (len == 0) {
		mb->is_mbox = true;
		return;
	}
	if (!ref_from(p, 0, ref_line_end(p, len, 0)))
		return;
	mb->is_mbox = true;
	for (at = 0; at < len; at = e) {
		e = ref_line_end(p, len, at);
		if (at == 0 ||
		    (prev_blank != (size_t)-1 && ref_from(p, at, e))) {
			if (m != NULL) {
				m->next = at;
				ref_finish(p, m, prev_blank);
			}
			if (mb->n == cap) {
				cap = cap ? 2 * cap : 16;
				mb->msg = realloc(mb->msg, cap * sizeof(*m));
				check(mb->msg != NULL, "out of memory");
			}
			m = &mb->msg[mb->n++];
			memset(m, 0, sizeof(*m));
			m->from = at;
			m->start = e;
			prev_blank = (size_t)-1;
			continue;
		}
		prev_blank = ref_blank(p, at, e) ? at : (size_t)-1;
	}
	m->next = len;
	ref_finish(p, m, prev_blank);
}

static inline void
ref_free(struct ref_mbox *mb)
{
	free(mb->msg);
	memset(mb, 0, sizeof(*mb));
}

/* [at, end) as RETR sends it, dot-stuffed and terminated. */
static inline void
ref_stuff(const char *p, size_t at, size_t end, struct fbuf *out)
{
	while (at < end) {
		size_t e = ref_line_end(p, end, at), n = e - at;

		if (p[at] == '.')
			fbuf_add(out, ".", 1);
		if (p[e - 1] == '\n') {
			n--;
			if (n > 0 && p[at + n - 1] == '\r')
				n--;
		}
		fbuf_add(out, p + at, n);
		fbuf_add(out, "\r\n", 2);
		at = e;
	}
	fbuf_add(out, ".\r\n", 3);
}

#endif
