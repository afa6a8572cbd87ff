/*
 * json_scan.h: a strict JSON scanner for a reader that needs a few values out
 * of a document and a verdict on all of it, without building a tree (the
 * webhook's activity, lib/teams/activity.c, and the upstream digest,
 * lib/digest/digest.c; everything else still reads JSON through
 * json_strict.h's json-c tree). The caller walks the document with
 * the calls below in the document's own order: an object's members, an
 * array's elements, and for each value either decodes it (strings), enters it
 * (objects, arrays) or skips it, which still validates every byte. It is in
 * core because nothing in it is the activity's: which members matter, and
 * json-c's rules for duplicates and odd types, are the schema in activity.c.
 *
 * Ownership: the scanner owns nothing and allocates nothing. The caller
 * hands it a writable buffer (its own copy of the bytes) that must outlive
 * every string it returns: a string is decoded in place, over its own bytes
 * (decoding never lengthens one), and NUL-terminated where its closing quote
 * was. Linear in the length; no recursion; never reads past len.
 *
 * The grammar is RFC 8259's, strictly (what is at the top is the caller's
 * first call: the activity wants an object there); white space is
 * space, tab, LF, CR only; numbers -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?;
 * true, false, null; strings in double quotes, with no raw byte below 0x20
 * and every escape one of \" \\ \/ \b \f \n \r \t \uXXXX; UTF-8 as RFC 3629
 * defines it (no overlong form, no UTF-16 surrogate, nothing past U+10FFFF);
 * objects and arrays nested at most max_depth deep, the top-level object at
 * depth 1. \uXXXX escapes decode as json-c 0.16 decodes them: a surrogate
 * pair to its code point (with json-c's quirk for code points whose low 16
 * bits look like a surrogate, json_scan.c put_unit), a lone surrogate of
 * either half to U+FFFD, \u0000
 * to a NUL byte inside the string (json_scan_str.has_nul says so).
 *
 * Two options (json_scan_init_flags) bend this for a reader that must agree
 * with json-c as it was called before the scanner (the upstream digest:
 * json_strict_object, UTF-8 unchecked): JSON_SCAN_RAW_UTF8 lets every byte
 * from 0x80 up through a string as it is, unchecked (json-c without
 * JSON_TOKENER_VALIDATE_UTF8; the reader repairs text itself), while
 * outside strings such a byte stays an error; JSON_SCAN_DEPTH_VALUES counts
 * depth as json-c does, every value a level, a scalar included: the
 * top-level value is level 1 and a member or element of a container at
 * level max_depth is an error, so an empty container may still sit there.
 *
 * Errors are sticky: after the first, every call returns DG_ERR_BAD_JSON
 * (json_scan_peek JSON_SCAN_BAD) and err_at holds the offset of the first
 * byte that no JSON text of this shape could have there (len when the text
 * ends too soon). So a reader may ignore what a call returns, as long as it
 * stops its loops on member and element and asks json_scan_end at the end.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/common.h"

/* The deepest nesting a scanner can track (max_depth is at most this). */
#define JSON_SCAN_DEPTH_MAX 128

enum json_scan_kind {
    JSON_SCAN_BAD = 0, /* no value can start here; the scanner is in error */
    JSON_SCAN_OBJECT,
    JSON_SCAN_ARRAY,
    JSON_SCAN_STRING,
    JSON_SCAN_NUMBER,
    JSON_SCAN_TRUE,
    JSON_SCAN_FALSE,
    JSON_SCAN_NULL,
};

/* A decoded string: ptr[len] is a NUL the scanner wrote; borrowed from the buffer. */
struct json_scan_str {
    char *ptr;
    size_t len;
    bool has_nul; /* a \u0000 made a NUL byte before ptr[len] */
};

/* Options for json_scan_init_flags; 0 is json_scan_init's strict default. */
enum json_scan_flags {
    JSON_SCAN_RAW_UTF8 = 1 << 0,     /* bytes >= 0x80 in strings pass unvalidated */
    JSON_SCAN_DEPTH_VALUES = 1 << 1, /* max_depth counts every value, as json-c's does */
};

/* Caller-allocated (on the stack is the idea); no field is for the caller but err and err_at. */
struct json_scan {
    char *p;        /* the next byte to read */
    char *start;    /* the buffer */
    char *end;      /* start + len */
    int err;        /* 0, or DG_ERR_BAD_JSON from the first error on */
    size_t err_at;  /* with err: offset of the byte that broke the grammar */
    int depth;      /* objects and arrays open */
    int max_depth;  /* deeper than this is an error */
    unsigned flags; /* enum json_scan_flags */
    bool first;     /* the innermost open container has no member or element yet */
    char open[JSON_SCAN_DEPTH_MAX + 1]; /* '{' or '[' for each open level, from 1 */
};

/*
 * Starts a scan of buf (len bytes, writable, borrowed for as long as the
 * strings returned are read; no NUL needed after it). max_depth is at most
 * JSON_SCAN_DEPTH_MAX.
 */
void json_scan_init(struct json_scan *s, char *buf, size_t len, int max_depth);

/* The same with options (enum json_scan_flags, or'ed). */
void json_scan_init_flags(struct json_scan *s, char *buf, size_t len, int max_depth,
                          unsigned flags);

/*
 * The kind of the value that starts at the cursor, white space skipped; it
 * is not consumed. JSON_SCAN_BAD (and the error set) when none can start
 * there. For JSON_SCAN_NUMBER and the three words only the first byte is
 * known to be right: json_scan_skip reads the rest.
 */
enum json_scan_kind json_scan_peek(struct json_scan *s);

/* Enters the object or array at the cursor. 0 or DG_ERR_BAD_JSON. */
int json_scan_object(struct json_scan *s);
int json_scan_array(struct json_scan *s);

/*
 * The next member of the object entered last: 1 with *key decoded and the
 * colon consumed (the caller then reads or skips exactly one value), 0 when
 * the object ended (its '}' consumed), DG_ERR_BAD_JSON on an error.
 */
int json_scan_member(struct json_scan *s, struct json_scan_str *key) WARN_UNUSED;

/* The same for the array entered last: 1 when an element follows, 0 at its ']'. */
int json_scan_element(struct json_scan *s) WARN_UNUSED;

/* Decodes the string value at the cursor into *out. 0 or DG_ERR_BAD_JSON. */
int json_scan_string(struct json_scan *s, struct json_scan_str *out);

/* Reads past the value at the cursor, validating all of it. 0 or DG_ERR_BAD_JSON. */
int json_scan_skip(struct json_scan *s);

/*
 * The value at the cursor as a C string (borrowed from the buffer, like
 * json_scan_string's), or NULL, after reading past it, when it is not a
 * string or an escaped NUL is in it: what json_strict_string gave. Inline:
 * as a function in json_scan.c it made GCC split json_scan_string and stop
 * inlining it into json_scan_member (+0.3k instructions a webhook).
 */
static inline const char *json_scan_cstring(struct json_scan *s)
{
    struct json_scan_str v;

    if (json_scan_peek(s) != JSON_SCAN_STRING) {
        json_scan_skip(s);
        return NULL;
    }
    return json_scan_string(s, &v) == 0 && !v.has_nul ? v.ptr : NULL;
}

/*
 * After the top-level value: nothing but white space may be left. 0 when the
 * whole scan was good, DG_ERR_BAD_JSON otherwise (also for any earlier error).
 */
int json_scan_end(struct json_scan *s) WARN_UNUSED;

/*
 * A member name's length as json-c kept it: up to its first NUL, since
 * json-c held names as C strings ("id\u0000x" is "id"). For the readers that
 * must agree with json-c's lookups (activity.c, digest.c, connector.c).
 * Inline: with a constant name, strlen folds away, and the digest's reader
 * compares six names for every member of every item (bench/RESULTS.md).
 */
static inline size_t json_scan_name_len(const struct json_scan_str *key)
{
    return key->has_nul ? strlen(key->ptr) : key->len;
}

/* True when key names name, compared as json_scan_name_len says. */
static inline bool json_scan_name_is(const struct json_scan_str *key, const char *name)
{
    size_t len = json_scan_name_len(key);

    return len == strlen(name) && memcmp(key->ptr, name, len) == 0;
}
