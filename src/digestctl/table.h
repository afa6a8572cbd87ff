/*
 * table.h: aligned text tables for digestctl's human output, and the way
 * it writes numbers people read (ages like 3m12s, sizes like 12.4MB, times
 * in UTC). A table is cut to a width by shortening its flexible column
 * (marked) first, then the widest others, so nothing is wider than 100
 * columns unless asked (--wide).
 * Cells are copied; the table owns them until table_free.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TABLE_MAX_COLS 12

struct table;

/*
 * headers: ncols names; a header starting with '>' is right-aligned (the
 * '>' is not printed), one starting with '~' is the column cut to fit.
 */
struct table *table_new(int ncols, const char *const *headers);
/* Adds a row of ncols cells (NULL is printed as "-"). */
void table_row(struct table *t, const char *const *cells);
/* Prints header and rows, indented by indent spaces, cut to width (0: no cut). */
void table_print(const struct table *t, FILE *out, int indent, int width);
void table_free(struct table *t);

/* s, cut to max bytes with ".." when longer (a name in a line of text). */
const char *fmt_cut(const char *s, size_t max, char *out, size_t size);
/* Text of ms as an age ("3m12s"), "-" for a negative (unknown) one. */
const char *fmt_span(int64_t ms, char *out, size_t size);
/* Bytes as "980B", "12.4KB", "3.1MB", "2.0GB"; "-" for a negative one. */
const char *fmt_bytes(int64_t n, char *out, size_t size);
/* Epoch ms as "2026-12-03 00:12:01.123Z"; "-" for 0 or less. */
const char *fmt_time(int64_t ms, char *out, size_t size);
/* A number, or "-" when negative (unknown). */
const char *fmt_int(int64_t n, char *out, size_t size);
