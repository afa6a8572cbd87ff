/* json_scan.c: see json_scan.h. */
#include "core/json_scan.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

/*
 * Bytes a string may hold as they are, the ASCII part of RFC 8259's
 * unescaped = %x20-21 / %x23-5B / %x5D-10FFFF (GNU range designators).
 * Everything else takes the slow path: the quote, escapes, UTF-8 sequences,
 * and the control characters that must not appear raw.
 */
static const unsigned char plain[256] = {
    [0x20 ... 0x21] = 1,
    [0x23 ... 0x5B] = 1,
    [0x5D ... 0x7F] = 1,
};

/*
 * Eight bytes at once. For a word x, the lowest 0x80 bit of
 * (x - n) & ~x & 0x80... marks its first byte below n (n <= 128), and of
 * (x - n) | x the first byte below n or at 0x80 and up: a borrow only runs
 * from a byte that is itself a hit towards the bytes after it.
 */
#define BYTES(b) (0x0101010101010101ULL * (b))
#define ZERO_BYTE(x) (((x)-BYTES(1)) & ~(x)&BYTES(0x80))

/* The 0x80 bits of the bytes of x that are not plain; the lowest is exact. */
static uint64_t not_plain(uint64_t x)
{
    return (((x - BYTES(0x20)) | x) & BYTES(0x80)) | ZERO_BYTE(x ^ BYTES('"')) |
           ZERO_BYTE(x ^ BYTES('\\'));
}

/*
 * The first byte from p on that is not plain (see plain[]), or end. The
 * bulk of an activity is plain runs, so they go a word at a time.
 */
static char *plain_run(char *p, const char *end)
{
    uint64_t x, m;

    while (end - p >= 8) {
        memcpy(&x, p, 8);
        m = not_plain(x);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (m)
            return p + __builtin_ctzll(m) / 8; /* the first byte in memory is the lowest */
#else
        if (m)
            break;
#endif
        p += 8;
    }
    while (p < end && plain[(unsigned char)*p])
        p++;
    return p;
}

/* U+FFFD, what json-c 0.16 writes for a lone surrogate escape. */
static const char replacement[3] = {'\xef', '\xbf', '\xbd'};

void json_scan_init_flags(struct json_scan *s, char *buf, size_t len, int max_depth, unsigned flags)
{
    assert(max_depth >= 0 && max_depth <= JSON_SCAN_DEPTH_MAX);
    memset(s, 0, offsetof(struct json_scan, open));
    s->p = buf;
    s->start = buf;
    s->end = buf + len;
    s->max_depth = max_depth;
    s->flags = flags;
}

void json_scan_init(struct json_scan *s, char *buf, size_t len, int max_depth)
{
    json_scan_init_flags(s, buf, len, max_depth, 0);
}

/* Records the first error, at p; returns DG_ERR_BAD_JSON for the caller to return. */
static int fail(struct json_scan *s, const char *p)
{
    if (!s->err) {
        s->err = DG_ERR_BAD_JSON;
        s->err_at = (size_t)(p - s->start);
    }
    return DG_ERR_BAD_JSON;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline __attribute__((always_inline)) void skip_ws(struct json_scan *s)
{
    char *p = s->p;

    /* Bodies from a serializer rarely have any: one test, then out. */
    while (p < s->end && (unsigned char)*p <= ' ' && is_ws(*p))
        p++;
    s->p = p;
}

enum json_scan_kind json_scan_peek(struct json_scan *s)
{
    if (s->err)
        return JSON_SCAN_BAD;
    skip_ws(s);
    if (s->p == s->end) {
        fail(s, s->p);
        return JSON_SCAN_BAD;
    }
    switch (*s->p) {
    case '{':
        return JSON_SCAN_OBJECT;
    case '[':
        return JSON_SCAN_ARRAY;
    case '"':
        return JSON_SCAN_STRING;
    case 't':
        return JSON_SCAN_TRUE;
    case 'f':
        return JSON_SCAN_FALSE;
    case 'n':
        return JSON_SCAN_NULL;
    default:
        if (*s->p == '-' || is_digit(*s->p))
            return JSON_SCAN_NUMBER;
        fail(s, s->p);
        return JSON_SCAN_BAD;
    }
}

/* Opens a container of kind c ('{' or '['), which must be at the cursor. */
static int enter(struct json_scan *s, char c)
{
    if (s->err)
        return s->err;
    skip_ws(s);
    if (s->p == s->end || *s->p != c)
        return fail(s, s->p);
    /* The bracket that would be one level too deep (for JSON_SCAN_DEPTH_VALUES,
     * only a top-level value can get here at max_depth 0). */
    if (s->depth >= s->max_depth)
        return fail(s, s->p);
    s->p++;
    s->open[++s->depth] = c;
    s->first = true;
    return 0;
}

int json_scan_object(struct json_scan *s)
{
    return enter(s, '{');
}

int json_scan_array(struct json_scan *s)
{
    return enter(s, '[');
}

/*
 * Before a member or an element: 1 when one follows (the separating comma
 * consumed), 0 when the container closes with close (consumed), or an error.
 * A container that closes ends a value of its parent, so the parent is no
 * longer "first" whatever it was before.
 */
static int next_item(struct json_scan *s, char close)
{
    bool first = s->first;

    if (s->err)
        return s->err;
    assert(s->depth > 0 && s->open[s->depth] == (close == '}' ? '{' : '['));
    skip_ws(s);
    if (s->p == s->end)
        return fail(s, s->p);
    s->first = false;
    if (*s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    if (!first) {
        if (*s->p != ',')
            return fail(s, s->p);
        s->p++;
    }
    /*
     * Counted json-c's way, what follows is a value one level below its
     * container: past max_depth even when it is a scalar. (json-c refuses
     * at the value itself; the offset is this one, all readers of this
     * mode need is the verdict.)
     */
    if ((s->flags & JSON_SCAN_DEPTH_VALUES) && s->depth >= s->max_depth)
        return fail(s, s->p);
    return 1;
}

/*
 * The length of the well-formed UTF-8 sequence at p (RFC 3629, Unicode's
 * table 3-7), or 0 with *bad at the first byte that cannot continue one.
 */
static size_t utf8_len(char *p, char *end, char **bad)
{
    unsigned char c = (unsigned char)p[0];
    unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range */
    size_t n, i;

    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
    } else {
        *bad = p; /* a continuation byte, C0/C1 (always overlong), F5 and up */
        return 0;
    }
    if (c == 0xE0)
        lo = 0xA0; /* below: overlong */
    else if (c == 0xED)
        hi = 0x9F; /* above: a UTF-16 surrogate */
    else if (c == 0xF0)
        lo = 0x90; /* below: overlong */
    else if (c == 0xF4)
        hi = 0x8F; /* above: past U+10FFFF */
    for (i = 1; i < n; i++) {
        unsigned char b;

        if (p + i == end) {
            *bad = end;
            return 0;
        }
        b = (unsigned char)p[i];
        if (b < lo || b > hi) {
            *bad = p + i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return n;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The value of the 4 hex digits at p, or -1 with *bad at the first one missing or wrong. */
static int hex4(char *p, char *end, char **bad)
{
    int v = 0, i, d;

    for (i = 0; i < 4; i++) {
        if (p + i == end || (d = hex_digit(p[i])) < 0) {
            *bad = p + i;
            return -1;
        }
        v = v << 4 | d;
    }
    return v;
}

/* Decoding state of one string: where to write, and a high surrogate waiting for its low half. */
struct decode {
    char *w;
    unsigned pending; /* 0, or a high surrogate (its low 16 bits D800-DBFF, see put_unit) */
    bool has_nul;
};

/* Writes U+FFFD for a high surrogate that no low half followed, if one is waiting. */
static void flush_pending(struct decode *d)
{
    if (d->pending) {
        memcpy(d->w, replacement, sizeof(replacement));
        d->w += sizeof(replacement);
        d->pending = 0;
    }
}

/* Writes code point cp (at most U+10FFFF, never a surrogate) as UTF-8. */
static void put_utf8(struct decode *d, unsigned cp)
{
    char *w = d->w;

    if (cp < 0x80) {
        *w++ = (char)cp;
    } else if (cp < 0x800) {
        *w++ = (char)(0xC0 | cp >> 6);
        *w++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *w++ = (char)(0xE0 | cp >> 12);
        *w++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *w++ = (char)(0xF0 | cp >> 18);
        *w++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *w++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    }
    d->w = w;
}

/* json-c's tests, which look at the low 16 bits only (of a pair's code point, too). */
static bool is_high(unsigned u)
{
    return u >= 0x800 && (u & 0xFC00) == 0xD800;
}

static bool is_low(unsigned u)
{
    return u >= 0x800 && (u & 0xFC00) == 0xDC00;
}

/*
 * One \uXXXX escape's code unit, as json-c 0.16 decodes them: a high
 * surrogate waits for the escape after it; a low one right after a high one
 * makes the pair's code point; a surrogate half on its own becomes U+FFFD
 * (what was waiting is written first, then this unit goes on as usual).
 * json-c then tests the pair's code point as it tests a unit, by its low 16
 * bits: a code point whose low 16 bits are a low surrogate (U+1DC00-1DFFF,
 * U+1FC00-1FFFF, ...: high 0xD836 or 0xD837, 0xD876, ...) is written as
 * U+FFFD, and one whose low 16 bits are a high surrogate waits like one,
 * pairing with a low unit after it by its low 10 bits. Kept, so that the
 * scanner's strings are json-c's byte for byte (fuzz_digest_diff found it).
 */
static void put_unit(struct decode *d, unsigned u)
{
    if (d->pending && is_low(u)) {
        u = 0x10000 + ((d->pending & 0x3FF) << 10) + (u & 0x3FF);
        d->pending = 0;
    }
    flush_pending(d);
    if (is_high(u)) {
        d->pending = u;
    } else if (is_low(u)) {
        memcpy(d->w, replacement, sizeof(replacement));
        d->w += sizeof(replacement);
    } else {
        d->has_nul |= u == 0;
        put_utf8(d, u);
    }
}

/* The byte that the escape letter c stands for, or 0 when \c is no escape (\u aside). */
static char simple_escape(char c)
{
    switch (c) {
    case '"':
    case '\\':
    case '/':
        return c;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return 0;
    }
}

/*
 * The escape at p (its backslash): decoded into d, the position after it
 * returned; NULL with *bad set when it is not one.
 */
static char *escape(char *p, char *end, struct decode *d, char **bad)
{
    char c;
    int u;

    if (p + 1 == end) {
        *bad = end;
        return NULL;
    }
    if (p[1] == 'u') {
        u = hex4(p + 2, end, bad);
        if (u < 0)
            return NULL;
        put_unit(d, (unsigned)u);
        return p + 6;
    }
    c = simple_escape(p[1]);
    if (!c) {
        *bad = p + 1;
        return NULL;
    }
    flush_pending(d);
    *d->w++ = c;
    return p + 2;
}

/*
 * The rest of a string that holds more than plain bytes, from p (the first
 * such byte; begin..p is plain and stays where it is), decoded in place and
 * NUL-terminated. The write position never passes the read position: each
 * escape is at least as long as what it decodes to, and a waiting high
 * surrogate has consumed 6 bytes before its 3-byte U+FFFD is written.
 */
static int scan_string_rest(struct json_scan *s, char *begin, char *p, struct json_scan_str *out)
{
    char *end = s->end, *run, *bad = NULL;
    struct decode d = {p, 0, false};
    size_t n;

    for (;;) {
        run = p;
        p = plain_run(p, end);
        if (p > run) {
            flush_pending(&d);
            if (d.w != run)
                memmove(d.w, run, (size_t)(p - run));
            d.w += p - run;
        }
        if (p == end)
            return fail(s, p);
        if (*p == '\\') {
            p = escape(p, end, &d, &bad);
            if (!p)
                return fail(s, bad);
            continue;
        }
        flush_pending(&d);
        if (*p == '"')
            break;
        if ((unsigned char)*p < 0x20)
            return fail(s, p); /* RFC 8259 §7: control characters must be escaped */
        if (s->flags & JSON_SCAN_RAW_UTF8) {
            *d.w++ = *p++; /* unchecked, as json-c without its UTF-8 flag */
            continue;
        }
        n = utf8_len(p, end, &bad);
        if (!n)
            return fail(s, bad);
        memmove(d.w, p, n);
        d.w += n;
        p += n;
    }
    *d.w = '\0'; /* at most where the closing quote was */
    s->p = p + 1;
    out->ptr = begin;
    out->len = (size_t)(d.w - begin);
    out->has_nul = d.has_nul;
    return 0;
}

/* The string at the cursor (its opening quote): most are plain bytes, then a quote. */
static int scan_string(struct json_scan *s, struct json_scan_str *out)
{
    char *begin = s->p + 1, *p = plain_run(begin, s->end);

    if (p == s->end || *p != '"')
        return scan_string_rest(s, begin, p, out);
    *p = '\0';
    s->p = p + 1;
    out->ptr = begin;
    out->len = (size_t)(p - begin);
    out->has_nul = false;
    return 0;
}

int json_scan_string(struct json_scan *s, struct json_scan_str *out)
{
    if (s->err)
        return s->err;
    skip_ws(s);
    if (s->p == s->end || *s->p != '"')
        return fail(s, s->p);
    return scan_string(s, out);
}

int json_scan_member(struct json_scan *s, struct json_scan_str *key)
{
    int rc = next_item(s, '}');

    if (rc != 1)
        return rc;
    if (json_scan_string(s, key) != 0)
        return s->err;
    skip_ws(s);
    if (s->p == s->end || *s->p != ':')
        return fail(s, s->p);
    s->p++;
    return 1;
}

int json_scan_element(struct json_scan *s)
{
    return next_item(s, ']');
}

static void skip_digits(struct json_scan *s)
{
    while (s->p < s->end && is_digit(*s->p))
        s->p++;
}

/* At least one digit at the cursor, then all of them. */
static int digits(struct json_scan *s)
{
    if (s->p == s->end || !is_digit(*s->p))
        return fail(s, s->p);
    skip_digits(s);
    return 0;
}

/* RFC 8259 §6: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? at the cursor. */
static int scan_number(struct json_scan *s)
{
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++; /* a leading zero is the whole integer part */
    else if (digits(s) != 0)
        return s->err;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (digits(s) != 0)
            return s->err;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (digits(s) != 0)
            return s->err;
    }
    return 0;
}

/* The word w (true, false, null) at the cursor, byte for byte. */
static int scan_word(struct json_scan *s, const char *w)
{
    for (; *w; w++, s->p++) {
        if (s->p == s->end || *s->p != *w)
            return fail(s, s->p);
    }
    return 0;
}

/* One scalar at the cursor, of the kind peeked. */
static int skip_scalar(struct json_scan *s, enum json_scan_kind kind)
{
    struct json_scan_str str;

    switch (kind) {
    case JSON_SCAN_STRING:
        return scan_string(s, &str);
    case JSON_SCAN_NUMBER:
        return scan_number(s);
    case JSON_SCAN_TRUE:
        return scan_word(s, "true");
    case JSON_SCAN_FALSE:
        return scan_word(s, "false");
    case JSON_SCAN_NULL:
        return scan_word(s, "null");
    default:
        return fail(s, s->p);
    }
}

/*
 * Iterative: the nesting lives in s->open, bounded by max_depth, so a
 * skipped value never costs stack. Strings inside are decoded in place like
 * any other (nobody reads them; it keeps one path through the string code).
 */
int json_scan_skip(struct json_scan *s)
{
    struct json_scan_str key;
    int base = s->depth, rc;

    for (;;) {
        enum json_scan_kind kind = json_scan_peek(s);

        if (kind == JSON_SCAN_OBJECT)
            rc = json_scan_object(s);
        else if (kind == JSON_SCAN_ARRAY)
            rc = json_scan_array(s);
        else
            rc = skip_scalar(s, kind);
        if (rc != 0)
            return rc;
        /* Up to the next value still inside, or out of what was skipped. */
        do {
            if (s->depth == base)
                return 0;
            rc = s->open[s->depth] == '{' ? json_scan_member(s, &key) : json_scan_element(s);
            if (rc < 0)
                return rc;
        } while (rc == 0);
    }
}

int json_scan_end(struct json_scan *s)
{
    if (s->err)
        return s->err;
    if (s->depth != 0)
        return fail(s, s->p); /* the caller stopped inside the value */
    skip_ws(s);
    if (s->p != s->end)
        return fail(s, s->p);
    return 0;
}
