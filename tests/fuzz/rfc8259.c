/* rfc8259.c: see rfc8259.h. Written for the fuzz targets alone. */
#include "rfc8259.h"

#include <string.h>

struct rfc {
    const unsigned char *s, *p, *e;
    size_t at;
    enum rfc_class cls;
    bool utf8;     /* check UTF-8 in strings (else bytes from 0x80 up pass) */
    int max_depth; /* 0: nesting unchecked */
};

static bool rfc_fail(struct rfc *r, const unsigned char *at, enum rfc_class cls)
{
    r->at = (size_t)(at - r->s);
    r->cls = cls;
    return false;
}

static void rfc_ws(struct rfc *r)
{
    while (r->p < r->e && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* Some Unicode scalar value of an n-byte UTF-8 sequence lies in [lo, hi]. */
static bool utf8_range_ok(uint32_t lo, uint32_t hi, int n)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint32_t a = lo > min[n] ? lo : min[n], b = hi < 0x10FFFF ? hi : 0x10FFFF;

    if (a > b)
        return false;
    return !(a >= 0xD800 && b <= 0xDFFF);
}

/*
 * One UTF-8 sequence at r->p (lead byte >= 0x80), judged byte by byte: after
 * each byte, is some scalar value still reachable with what has been read?
 */
static bool rfc_utf8(struct rfc *r)
{
    unsigned char b = *r->p;
    int n, k;
    uint32_t bits;

    if ((b & 0xE0) == 0xC0) {
        n = 2;
        bits = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
        n = 3;
        bits = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
        n = 4;
        bits = b & 0x07;
    } else {
        return rfc_fail(r, r->p, RFC_UTF8);
    }
    for (k = 1;; k++) {
        int rest = 6 * (n - k);

        if (!utf8_range_ok(bits << rest, (bits << rest) | ((1u << rest) - 1), n))
            return rfc_fail(r, r->p + k - 1, RFC_UTF8);
        if (k == n)
            break;
        if (r->p + k == r->e)
            return rfc_fail(r, r->e, RFC_SYNTAX);
        if ((r->p[k] & 0xC0) != 0x80)
            return rfc_fail(r, r->p + k, RFC_UTF8);
        bits = bits << 6 | (r->p[k] & 0x3F);
    }
    r->p += n;
    return true;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool rfc_string(struct rfc *r)
{
    int i;

    r->p++; /* the opening quote */
    for (;;) {
        if (r->p == r->e)
            return rfc_fail(r, r->p, RFC_SYNTAX);
        if (*r->p == '"') {
            r->p++;
            return true;
        }
        if (*r->p < 0x20)
            return rfc_fail(r, r->p, RFC_CONTROL);
        if (*r->p >= 0x80 && r->utf8) {
            if (!rfc_utf8(r))
                return false;
            continue;
        }
        if (*r->p != '\\') {
            r->p++;
            continue;
        }
        r->p++;
        if (r->p == r->e)
            return rfc_fail(r, r->p, RFC_SYNTAX);
        if (*r->p && strchr("\"\\/bfnrt", *r->p)) {
            r->p++;
            continue;
        }
        if (*r->p != 'u')
            return rfc_fail(r, r->p, RFC_SYNTAX);
        r->p++;
        for (i = 0; i < 4; i++, r->p++) {
            if (r->p == r->e || !is_hex(*r->p))
                return rfc_fail(r, r->p, RFC_SYNTAX);
        }
    }
}

static bool rfc_digit(const struct rfc *r)
{
    return r->p < r->e && *r->p >= '0' && *r->p <= '9';
}

static bool rfc_digits(struct rfc *r)
{
    if (!rfc_digit(r))
        return rfc_fail(r, r->p, RFC_NUMBER);
    while (rfc_digit(r))
        r->p++;
    return true;
}

static bool rfc_number(struct rfc *r)
{
    if (*r->p == '-')
        r->p++;
    if (r->p < r->e && *r->p == '0')
        r->p++;
    else if (!rfc_digits(r))
        return false;
    if (r->p < r->e && *r->p == '.') {
        r->p++;
        if (!rfc_digits(r))
            return false;
    }
    if (r->p < r->e && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->e && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!rfc_digits(r))
            return false;
    }
    /* What would make a longer number for json-c: "00", "1.2.3", "1e5e". */
    if (r->p < r->e && (rfc_digit(r) || *r->p == '.' || *r->p == 'e' || *r->p == 'E'))
        return rfc_fail(r, r->p, RFC_NUMBER);
    return true;
}

static bool rfc_word(struct rfc *r, const char *w)
{
    for (; *w; w++, r->p++) {
        if (r->p == r->e || *r->p != (unsigned char)*w)
            return rfc_fail(r, r->p, RFC_SYNTAX);
    }
    return true;
}

static bool rfc_value(struct rfc *r, int depth);

/* '{' or '[' at r->p, with its members or elements, up to its closing bracket. */
static bool rfc_container(struct rfc *r, int depth)
{
    bool object = *r->p == '{';
    char close = object ? '}' : ']';

    if (r->max_depth && depth > r->max_depth)
        return rfc_fail(r, r->p, RFC_DEPTH);
    r->p++;
    rfc_ws(r);
    if (r->p < r->e && *r->p == close) {
        r->p++;
        return true;
    }
    for (;;) {
        if (object) {
            if (r->p < r->e && *r->p == '\'')
                return rfc_fail(r, r->p, RFC_SQUOTE);
            if (r->p == r->e || *r->p != '"')
                return rfc_fail(r, r->p, RFC_SYNTAX);
            if (!rfc_string(r))
                return false;
            rfc_ws(r);
            if (r->p == r->e || *r->p != ':')
                return rfc_fail(r, r->p, RFC_SYNTAX);
            r->p++;
        }
        if (!rfc_value(r, depth))
            return false;
        rfc_ws(r);
        if (r->p < r->e && *r->p == close) {
            r->p++;
            return true;
        }
        if (r->p == r->e || *r->p != ',')
            return rfc_fail(r, r->p, RFC_SYNTAX);
        r->p++;
        rfc_ws(r);
    }
}

/* A value at r->p (white space before it skipped here), inside depth containers. */
static bool rfc_value(struct rfc *r, int depth)
{
    size_t left;

    rfc_ws(r);
    if (r->p == r->e)
        return rfc_fail(r, r->p, RFC_SYNTAX);
    left = (size_t)(r->e - r->p);
    switch (*r->p) {
    case '{':
    case '[':
        return rfc_container(r, depth + 1);
    case '"':
        return rfc_string(r);
    case 't':
        return rfc_word(r, "true");
    case 'f':
        return rfc_word(r, "false");
    case 'n':
        return rfc_word(r, "null");
    case 'N':
        return rfc_fail(r, r->p,
                        left >= 3 && memcmp(r->p, "NaN", 3) == 0 ? RFC_NUMBER : RFC_SYNTAX);
    case 'I':
        return rfc_fail(r, r->p,
                        left >= 8 && memcmp(r->p, "Infinity", 8) == 0 ? RFC_NUMBER : RFC_SYNTAX);
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
            return rfc_number(r);
        return rfc_fail(r, r->p, RFC_SYNTAX);
    }
}

struct rfc_verdict rfc8259_check(const uint8_t *data, size_t size, bool utf8, int max_depth)
{
    struct rfc r = {data, data, data + size, 0, RFC_OK, utf8, max_depth};
    struct rfc_verdict v;

    rfc_ws(&r);
    if (r.p == r.e || *r.p != '{')
        rfc_fail(&r, r.p, RFC_SYNTAX);
    else if (rfc_value(&r, 0)) {
        rfc_ws(&r);
        if (r.p != r.e)
            rfc_fail(&r, r.p, RFC_SYNTAX);
    }
    v.at = r.at;
    v.cls = r.cls;
    return v;
}
