/*
 * json_escape.h: the one JSON string escaper for text digestd writes by
 * hand (log lines, the HTTP server's error bodies); everything else is
 * built with json-c. Text that is not valid UTF-8 still gives valid JSON:
 * a byte that does not start a well-formed sequence becomes '?'. Pure.
 */
#pragma once

#include <stddef.h>

#include "core/buf.h"

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
