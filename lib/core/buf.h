/*
 * buf.h: a growable byte buffer with a hard cap fixed at init (curl's dynbuf
 * idea), and the x-alloc family. Every buffer fed from the network is a
 * struct buf whose cap comes from config; an append that would cross the cap
 * fails with DG_ERR_TOO_LARGE and leaves the content as it was. The data is
 * always NUL-terminated so text can be read in place. The owner of a struct
 * buf frees it with buf_free(); buf_take() hands the bytes over instead.
 * Allocation failure aborts: we are an application (STYLE rule 6).
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/common.h"

struct buf {
    char *data; /* NULL until the first append; then NUL-terminated */
    size_t len; /* bytes used, not counting the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard limit on len */
};

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void xfree(void *p);

/* Sets up an empty buffer that will never hold more than max bytes. */
void buf_init(struct buf *b, size_t max);
/* buf_append when the bytes do not fit what is allocated: grows, or refuses past the cap. */
int buf_append_grow(struct buf *b, const void *p, size_t n) WARN_UNUSED;

/*
 * Appends n bytes; DG_ERR_TOO_LARGE (buffer unchanged) past the cap. Inline
 * for the case with room: the card writers and the Redis batch append some
 * 170 small pieces per webhook (bench/RESULTS.md). The room check alone is
 * the cap check too, since cap never exceeds max + 1.
 */
static inline WARN_UNUSED int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n < b->cap - b->len) {
        if (n)
            memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
    }
    return buf_append_grow(b, p, n);
}

/* buf_append of a C string's bytes (not its NUL). */
static inline WARN_UNUSED int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3) WARN_UNUSED;
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) PRINTF_LIKE(2, 0) WARN_UNUSED;
/* Drops the first n bytes (consumed input), keeping the rest. */
void buf_consume(struct buf *b, size_t n);
/* Empties the buffer but keeps its memory for reuse. */
void buf_reset(struct buf *b);
/* Room for n more bytes without a reallocation; DG_ERR_TOO_LARGE past max. */
int buf_reserve(struct buf *b, size_t n) WARN_UNUSED;
/*
 * Lengthens b by n bytes (NUL after them) and points *at to them for the
 * caller to fill: one writer's several pieces with one cap check.
 * DG_ERR_TOO_LARGE (buffer unchanged, *at NULL) past max.
 */
int buf_extend(struct buf *b, size_t n, char **at) WARN_UNUSED;
/* Releases the memory; the buffer is empty and reusable with the same cap. */
void buf_free(struct buf *b);
/* Returns the bytes (owned, free with xfree; "" when empty) and empties b. */
char *buf_take(struct buf *b);
/* The content as a C string; "" for an empty buffer. Borrowed. */
const char *buf_cstr(const struct buf *b);
