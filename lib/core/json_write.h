/*
 * json_write.h: the JSON digestd and its tools write. Most of it is built
 * with json-c and written in one form, compact with '/' left unescaped, as
 * Teams and the upstream write theirs ("\/" is legal but noisy, and URLs
 * stay readable in logs and captures). The few strings written by hand (log
 * lines, the HTTP server's error bodies) go through one escaper, so text
 * that is not valid UTF-8 still gives valid JSON. Pure.
 */
#pragma once

#include <stddef.h>

#include "core/buf.h"

struct json_object;

/*
 * o as compact JSON text, '/' unescaped. Borrowed from o: valid until o
 * changes or is freed. *len (may be NULL) gets its length.
 */
const char *json_write_compact(struct json_object *o, size_t *len);

/* Appends json_write_compact(o) to out; DG_ERR_TOO_LARGE past out's cap. */
int json_write_append(struct buf *out, struct json_object *o) WARN_UNUSED;

/*
 * Writes the NUL-terminated *s as the inside of a JSON string into
 * out[0..cap): '"', '\' and newline as \" \\ \n, other bytes below 0x20 as
 * \u00XX, a byte that does not start a valid UTF-8 sequence as '?', the
 * rest as it is. Stops before anything that would not fit whole, so a cut
 * never splits an escape or a character. Returns the bytes written (no NUL
 * is added) and moves *s past what they stand for: onto its NUL when all
 * of it fit.
 */
size_t json_escape(char *out, size_t cap, const char **s);

/* Appends all of s, escaped the same way, to b; DG_ERR_TOO_LARGE past b's cap. */
int json_escape_buf(struct buf *b, const char *s) WARN_UNUSED;
