/*
 * test_json_scan.c: the strict scanner on its own. Every input is copied to
 * a heap block of exactly its length, so AddressSanitizer catches a read past
 * len; each refusal is checked for the byte it names (err_at).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/json_scan.h"
#include "core/buf.h"

/* A scan of a heap copy of exactly n bytes; xfree(t->buf) when done. */
struct scan_test {
    struct json_scan s;
    char *buf;
};

static void start(struct scan_test *t, const char *json, size_t n, int depth)
{
    t->buf = xmalloc(n ? n : 1);
    memcpy(t->buf, json, n);
    json_scan_init(&t->s, t->buf, n, depth);
}

/*
 * Validates the bytes as one value at the top, skipping it whole. Returns
 * the offset of the byte refused, or -1 when the text is good.
 */
static long verdict_n(const char *json, size_t n, int depth)
{
    struct scan_test t;
    long at = -1;

    start(&t, json, n, depth);
    json_scan_skip(&t.s);
    if (json_scan_end(&t.s) != 0) {
        assert_int_equal(t.s.err, DG_ERR_BAD_JSON);
        at = (long)t.s.err_at;
        assert_true((size_t)at <= n);
    }
    xfree(t.buf);
    return at;
}

static long verdict(const char *json)
{
    return verdict_n(json, strlen(json), 64);
}

/* The first string member's value of a one-member object, decoded. */
static void expect_decoded_n(const char *json, const char *want, size_t want_len, bool nul)
{
    struct scan_test t;
    struct json_scan_str key, v;

    start(&t, json, strlen(json), 8);
    assert_int_equal(json_scan_object(&t.s), 0);
    assert_int_equal(json_scan_member(&t.s, &key), 1);
    assert_int_equal(json_scan_peek(&t.s), JSON_SCAN_STRING);
    assert_int_equal(json_scan_string(&t.s, &v), 0);
    assert_int_equal(v.len, want_len);
    assert_memory_equal(v.ptr, want, want_len);
    assert_int_equal(v.ptr[v.len], '\0');
    assert_int_equal(v.has_nul, nul);
    assert_int_equal(json_scan_member(&t.s, &key), 0);
    assert_int_equal(json_scan_end(&t.s), 0);
    xfree(t.buf);
}

#define EXPECT_DECODED(json, want) expect_decoded_n(json, want, sizeof(want) - 1, false)

/* A document walked member by member, element by element; strings decoded in place. */
static void walk(void **state)
{
    static const char doc[] = " {\"a\" : \"x\\ny\", \"n\":[1, {\"b\":true}, \"s\"],\"o\":{}, "
                              "\"e\\u0041\":[] ,\"z\":null} \r\n";
    struct scan_test t;
    struct json_scan_str key, v;

    start(&t, doc, sizeof(doc) - 1, 64);
    assert_int_equal(json_scan_peek(&t.s), JSON_SCAN_OBJECT);
    assert_int_equal(json_scan_object(&t.s), 0);
    assert_int_equal(json_scan_member(&t.s, &key), 1);
    assert_string_equal(key.ptr, "a");
    assert_int_equal(json_scan_string(&t.s, &v), 0);
    assert_string_equal(v.ptr, "x\ny");
    assert_int_equal(json_scan_member(&t.s, &key), 1);
    assert_string_equal(key.ptr, "n");
    assert_int_equal(json_scan_peek(&t.s), JSON_SCAN_ARRAY);
    assert_int_equal(json_scan_array(&t.s), 0);
    assert_int_equal(json_scan_element(&t.s), 1);
    assert_int_equal(json_scan_peek(&t.s), JSON_SCAN_NUMBER);
    assert_int_equal(json_scan_skip(&t.s), 0);
    assert_int_equal(json_scan_element(&t.s), 1);
    assert_int_equal(json_scan_peek(&t.s), JSON_SCAN_OBJECT);
    assert_int_equal(json_scan_skip(&t.s), 0);
    assert_int_equal(json_scan_element(&t.s), 1);
    assert_int_equal(json_scan_string(&t.s, &v), 0);
    assert_string_equal(v.ptr, "s");
    assert_int_equal(json_scan_element(&t.s), 0);
    assert_int_equal(json_scan_member(&t.s, &key), 1);
    assert_string_equal(key.ptr, "o");
    assert_int_equal(json_scan_skip(&t.s), 0);
    assert_int_equal(json_scan_member(&t.s, &key), 1);
    assert_string_equal(key.ptr, "eA");
    assert_int_equal(json_scan_skip(&t.s), 0);
    assert_int_equal(json_scan_member(&t.s, &key), 1);
    assert_int_equal(json_scan_peek(&t.s), JSON_SCAN_NULL);
    assert_int_equal(json_scan_skip(&t.s), 0);
    assert_int_equal(json_scan_member(&t.s, &key), 0);
    assert_int_equal(json_scan_end(&t.s), 0);
    /* The earlier strings still read right: decoding later ones never wrote over them. */
    assert_string_equal(v.ptr, "s");
    xfree(t.buf);
}

static void escapes(void **state)
{
    EXPECT_DECODED("{\"k\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"}", "\" \\ / \b \f \n \r \t");
    EXPECT_DECODED("{\"k\":\"\\u0041\\u00e9\\u00E9\\u20ac\\uFFFF\"}",
                   "A\xc3\xa9\xc3\xa9\xe2\x82\xac\xef\xbf\xbf");
    EXPECT_DECODED("{\"k\":\"\\u007f\\u0080\\u07ff\\u0800\"}", "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80");
    EXPECT_DECODED("{\"k\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}", "caf\xc3\xa9 \xf0\x9f\x98\x80");
    EXPECT_DECODED("{\"k\":\"\"}", "");
    expect_decoded_n("{\"k\":\"a\\u0000b\"}", "a\0b", 3, true);
    /* Errors name the byte: the escape letter, the hex digit, or the end. */
    assert_int_equal(verdict("{\"k\":\"\\x\"}"), 7);
    assert_int_equal(verdict("{\"k\":\"\\U0041\"}"), 7);
    assert_int_equal(verdict("{\"k\":\"\\'\"}"), 7);
    assert_int_equal(verdict("{\"k\":\"\\u12G4\"}"), 10);
    assert_int_equal(verdict("{\"k\":\"\\u12\"}"), 10);
    assert_int_equal(verdict("{\"k\":\"\\u12"), 10);
    assert_int_equal(verdict("{\"k\":\"\\"), 7);
    assert_int_equal(verdict("{\"k\":\"abc"), 9);
}

/* As json-c 0.16 decodes them: a pair to its code point, a lone half to U+FFFD. */
static void surrogates(void **state)
{
    EXPECT_DECODED("{\"k\":\"\\ud83d\\ude00\"}", "\xf0\x9f\x98\x80");
    EXPECT_DECODED("{\"k\":\"\\uD800\\uDC00\\uDBFF\\uDFFF\"}", "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
    EXPECT_DECODED("{\"k\":\"\\ud800\"}", "\xef\xbf\xbd");
    EXPECT_DECODED("{\"k\":\"x\\ud800\"}", "x\xef\xbf\xbd");
    EXPECT_DECODED("{\"k\":\"\\ud800x\"}", "\xef\xbf\xbdx");
    EXPECT_DECODED("{\"k\":\"\\ud800\xc3\xa9\"}", "\xef\xbf\xbd\xc3\xa9");
    EXPECT_DECODED("{\"k\":\"\\ud800\\n\"}", "\xef\xbf\xbd\n");
    EXPECT_DECODED("{\"k\":\"\\ud800\\u0041\"}", "\xef\xbf\xbd"
                                                 "A");
    EXPECT_DECODED("{\"k\":\"\\ud800\\ud800\\udc00\"}", "\xef\xbf\xbd\xf0\x90\x80\x80");
    EXPECT_DECODED("{\"k\":\"\\udc00\"}", "\xef\xbf\xbd");
    EXPECT_DECODED("{\"k\":\"\\udc00\\ud800\\udc00\"}", "\xef\xbf\xbd\xf0\x90\x80\x80");
    EXPECT_DECODED("{\"k\":\"\\ud800\\\\u0041\"}", "\xef\xbf\xbd\\u0041");
    expect_decoded_n("{\"k\":\"\\ud800\\u0000\"}", "\xef\xbf\xbd\0", 4, true);
    /* json-c's quirk: a pair's code point tested by its low 16 bits (see put_unit). */
    EXPECT_DECODED("{\"k\":\"\\ud837\\ude80\"}", "\xef\xbf\xbd");
    EXPECT_DECODED("{\"k\":\"\\ud836\\udc00\"}", "\xef\xbf\xbd");
    EXPECT_DECODED("{\"k\":\"\\ud836\\udc00x\"}", "\xef\xbf\xbdx");
    EXPECT_DECODED("{\"k\":\"\\ud836\\udc00\\udc00\"}", "\xf0\x90\x80\x80");
    EXPECT_DECODED("{\"k\":\"\\ud836\\udfff\\udfff\\udc01\"}", "\xf4\x8f\xbf\xbf\xef\xbf\xbd");
    EXPECT_DECODED("{\"k\":\"\\udbf6\\udc00\\ud836\\udc00\\udc05\"}",
                   "\xef\xbf\xbd\xf0\x90\x80\x85");
    /* The escape after a high half is still checked. */
    assert_int_equal(verdict("{\"k\":\"\\ud800\\u00\"}"), 16);
    assert_int_equal(verdict("{\"k\":\"\\ud800\\uZZZZ\"}"), 14);
}

/* RFC 8259 §7: U+0000 to U+001F only escaped; DEL is fine raw. */
static void control_characters(void **state)
{
    char doc[] = "{\"k\":\"a?b\"}";
    int c;

    for (c = 0; c < 0x20; c++) {
        doc[7] = (char)c;
        assert_int_equal(verdict_n(doc, sizeof(doc) - 1, 8), 7);
    }
    doc[7] = 0x7f;
    assert_int_equal(verdict_n(doc, sizeof(doc) - 1, 8), -1);
    /* In a member name too. */
    assert_int_equal(verdict("{\"a\tb\":1}"), 3);
}

/* RFC 3629: each refusal at the first byte that no valid sequence could have. */
static void utf8(void **state)
{
    static const struct {
        const char *json;
        long at;
    } cases[] = {
        {"{\"k\":\"\xc2\x80\xdf\xbf\"}", -1},
        {"{\"k\":\"\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"}", -1},
        {"{\"k\":\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\xf3\xbf\xbf\xbf\"}", -1},
        {"{\"k\":\"\xc0\x80\"}", 6},             /* overlong, always */
        {"{\"k\":\"\xc1\xbf\"}", 6},             /* overlong, always */
        {"{\"k\":\"\xe0\x9f\xbf\"}", 7},         /* overlong */
        {"{\"k\":\"\xed\xa0\x80\"}", 7},         /* a UTF-16 surrogate */
        {"{\"k\":\"\xed\xbf\xbf\"}", 7},         /* a UTF-16 surrogate */
        {"{\"k\":\"\xf0\x8f\xbf\xbf\"}", 7},     /* overlong */
        {"{\"k\":\"\xf4\x90\x80\x80\"}", 7},     /* past U+10FFFF */
        {"{\"k\":\"\xf5\x80\x80\x80\"}", 6},     /* past U+10FFFF, always */
        {"{\"k\":\"\xf8\x88\x80\x80\x80\"}", 6}, /* no such lead */
        {"{\"k\":\"\xff\"}", 6},
        {"{\"k\":\"\x80\"}", 6}, /* a continuation byte alone */
        {"{\"k\":\"\xc3\"}", 7}, /* cut short by the quote */
        {"{\"k\":\"\xe2\x82\"}", 8},
        {"{\"k\":\"\xe2\x82", 8}, /* cut short by the end */
        {"{\"k\":\"\xe2(\xa1\"}", 7},
        {"{\"k\":\"\xf0\x9f\x98(\"}", 9},
        {"{\"k\":1 \xc2\xa0}", 7},    /* outside a string: not white space, not anything */
        {"\xef\xbb\xbf{\"k\":1}", 0}, /* no byte order mark */
        {"{\"\xff\":1}", 2},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        if (verdict(cases[i].json) != cases[i].at)
            fail_msg("case %zu: %ld, want %ld", i, verdict(cases[i].json), cases[i].at);
    }
}

/* RFC 8259 §6, and nothing json-c adds to it. */
static void numbers(void **state)
{
    static const char *const good[] = {
        "0",      "-0",
        "1",      "10",
        "-123",   "0.5",
        "-0.0",   "1e5",
        "1E5",    "1e+5",
        "1E-5",   "0e0",
        "1.5e10", "123456789012345678901234567890",
        "1e999",  "-1.7976931348623157e309",
    };
    static const struct {
        const char *num;
        long at; /* within "[<num>]" */
    } bad[] = {
        {"-", 2},    {"+1", 1},        {"01", 2},    {"00", 2},  {"-01", 3}, {"1.", 3},
        {".5", 1},   {"-.5", 2},       {"1.e5", 3},  {"1e", 3},  {"1e+", 4}, {"1.5e", 5},
        {"0x10", 2}, {"1.2.3", 4},     {"1e5.3", 4}, {"--1", 2}, {"NaN", 1}, {"Infinity", 1},
        {"1-", 2},   {"-Infinity", 2}, {"007e3", 2}, {"1ee", 3},
    };
    char doc[64];
    size_t i;

    for (i = 0; i < ARRAY_SIZE(good); i++) {
        snprintf(doc, sizeof(doc), "[%s]", good[i]);
        if (verdict(doc) != -1)
            fail_msg("%s refused at %ld", good[i], verdict(doc));
        snprintf(doc, sizeof(doc), "[%s", good[i]); /* a number cut by the end */
        assert_int_equal(verdict(doc), (long)strlen(doc));
    }
    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        snprintf(doc, sizeof(doc), "[%s]", bad[i].num);
        if (verdict(doc) != bad[i].at)
            fail_msg("%s: %ld, want %ld", bad[i].num, verdict(doc), bad[i].at);
    }
}

static void words(void **state)
{
    assert_int_equal(verdict("[true,false,null]"), -1);
    assert_int_equal(verdict("[tru]"), 4);
    assert_int_equal(verdict("[True]"), 1);
    assert_int_equal(verdict("[nul"), 4);
    assert_int_equal(verdict("[nulll]"), 5);
    assert_int_equal(verdict("[falsey]"), 6);
    assert_int_equal(verdict("[undefined]"), 1);
}

/* Commas, colons, brackets and quotes where RFC 8259 has them, nowhere else. */
static void structure(void **state)
{
    assert_int_equal(verdict("{}"), -1);
    assert_int_equal(verdict("[]"), -1);
    assert_int_equal(verdict(" \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } } \t\r\n"), -1);
    assert_int_equal(verdict("{\"a\":1,}"), 7);
    assert_int_equal(verdict("[1,]"), 3);
    assert_int_equal(verdict("[,1]"), 1);
    assert_int_equal(verdict("{,}"), 1);
    assert_int_equal(verdict("{\"a\" 1}"), 5);
    assert_int_equal(verdict("{\"a\":}"), 5);
    assert_int_equal(verdict("{\"a\":1 \"b\":2}"), 7);
    assert_int_equal(verdict("[1 2]"), 3);
    assert_int_equal(verdict("{'a':1}"), 1);
    assert_int_equal(verdict("{a:1}"), 1);
    assert_int_equal(verdict("{\"a\":1]"), 6);
    assert_int_equal(verdict("[1}"), 2);
    assert_int_equal(verdict("{\"a\":1}/*c*/"), 7);
    assert_int_equal(verdict("{\"a\":1}\v"), 7); /* not JSON white space */
    assert_int_equal(verdict("\f{}"), 0);
    assert_int_equal(verdict(""), 0);
    assert_int_equal(verdict("   "), 3);
    assert_int_equal(verdict_n("{}\0", 3, 8), 2);
    assert_int_equal(verdict_n("{\"a\":\"x\0\"}", 10, 8), 7);
}

/* A text of depth nested containers, objects or arrays, with "x" inside. */
static char *nested(int depth, bool arrays)
{
    struct buf b;
    int i;

    buf_init(&b, 1 << 16);
    for (i = 0; i < depth; i++)
        assert_int_equal(buf_append_str(&b, arrays ? "[" : "{\"a\":"), 0);
    assert_int_equal(buf_append_str(&b, arrays ? "\"x\"" : "1"), 0);
    for (i = 0; i < depth; i++)
        assert_int_equal(buf_append_str(&b, arrays ? "]" : "}"), 0);
    return buf_take(&b);
}

static void depth(void **state)
{
    int arrays;

    for (arrays = 0; arrays < 2; arrays++) {
        char *ok = nested(64, arrays), *deep = nested(65, arrays), *far = nested(10000, arrays);
        size_t step = arrays ? 1 : 5; /* bytes per level before the innermost */

        assert_int_equal(verdict_n(ok, strlen(ok), 64), -1);
        /* Refused at the bracket that opens level 65, skipping iteratively. */
        assert_int_equal(verdict_n(deep, strlen(deep), 64), (long)(64 * step));
        assert_int_equal(verdict_n(far, strlen(far), 64), (long)(64 * step));
        assert_int_equal(verdict_n(deep, strlen(deep), 65), -1);
        assert_int_equal(verdict_n(ok, strlen(ok), 63), (long)(63 * step));
        xfree(ok);
        xfree(deep);
        xfree(far);
    }
    assert_int_equal(verdict_n("{}", 2, 0), 0);
    assert_int_equal(verdict_n("1 ", 2, 0), -1); /* scalars do not count */
}

/* The verdict under options: -1 for a good text, else the offset refused. */
static long verdict_flags(const char *json, int depth, unsigned flags)
{
    struct scan_test t;
    size_t n = strlen(json);
    long at = -1;

    t.buf = xmalloc(n ? n : 1);
    memcpy(t.buf, json, n);
    json_scan_init_flags(&t.s, t.buf, n, depth, flags);
    json_scan_skip(&t.s);
    if (json_scan_end(&t.s) != 0)
        at = (long)t.s.err_at;
    xfree(t.buf);
    return at;
}

/* JSON_SCAN_RAW_UTF8: any byte from 0x80 up inside a string, verbatim; elsewhere still refused. */
static void raw_utf8(void **state)
{
    static const char *const in_strings[] = {
        "{\"k\":\"\xc0\x80\"}",
        "{\"k\":\"\xed\xa0\x80\"}",
        "{\"k\":\"\xff\"}",
        "{\"k\":\"\x80\"}",
        "{\"k\":\"\xc3\"}",
        "{\"\xff\":1}",
        "{\"k\":\"a\\n\xfe\\u00e9\xc3\"}",
        "{\"k\":\"\xf4\x90\x80\x80\"}",
    };
    struct scan_test t;
    struct json_scan_str key, v;
    static const char doc[] = "{\"k\\u0000\xff\":\"A\xff\\u0042\xe2\x82\\\"\"}";
    size_t i;

    for (i = 0; i < ARRAY_SIZE(in_strings); i++) {
        assert_true(verdict(in_strings[i]) >= 0); /* the default stays strict */
        if (verdict_flags(in_strings[i], 64, JSON_SCAN_RAW_UTF8) != -1)
            fail_msg("case %zu refused", i);
    }
    assert_int_equal(verdict_flags("{\"k\":1 \xc2\xa0}", 64, JSON_SCAN_RAW_UTF8), 7);
    assert_int_equal(verdict_flags("\xef\xbb\xbf{\"k\":1}", 64, JSON_SCAN_RAW_UTF8), 0);
    assert_int_equal(verdict_flags("{\"k\":\xff}", 64, JSON_SCAN_RAW_UTF8), 5);
    assert_int_equal(verdict_flags("{\"k\":\"\xff\x01\"}", 64, JSON_SCAN_RAW_UTF8), 7);
    assert_int_equal(verdict_flags("{\"k\":\"\xff", 64, JSON_SCAN_RAW_UTF8), 7);

    /* Decoded like any string, the raw bytes copied where they stand. */
    t.buf = xmalloc(sizeof(doc) - 1);
    memcpy(t.buf, doc, sizeof(doc) - 1);
    json_scan_init_flags(&t.s, t.buf, sizeof(doc) - 1, 8, JSON_SCAN_RAW_UTF8);
    assert_int_equal(json_scan_object(&t.s), 0);
    assert_int_equal(json_scan_member(&t.s, &key), 1);
    assert_int_equal(key.len, 3);
    assert_memory_equal(key.ptr, "k\0\xff", 3);
    assert_true(key.has_nul);
    assert_int_equal(json_scan_string(&t.s, &v), 0);
    assert_int_equal(v.len, 6);
    assert_memory_equal(v.ptr,
                        "A\xff"
                        "B\xe2\x82\"",
                        6);
    assert_false(v.has_nul);
    assert_int_equal(json_scan_member(&t.s, &key), 0);
    assert_int_equal(json_scan_end(&t.s), 0);
    xfree(t.buf);
}

/* n arrays, the innermost holding inner ("" for none). */
static char *arrays(int n, const char *inner)
{
    struct buf b;
    int i;

    buf_init(&b, 1 << 16);
    for (i = 0; i < n; i++)
        assert_int_equal(buf_append_str(&b, "["), 0);
    assert_int_equal(buf_append_str(&b, inner), 0);
    for (i = 0; i < n; i++)
        assert_int_equal(buf_append_str(&b, "]"), 0);
    return buf_take(&b);
}

/* JSON_SCAN_DEPTH_VALUES: json-c's count, every value a level, the top one at 1. */
static void depth_values(void **state)
{
    char *scalar63 = arrays(63, "1"), *scalar64 = arrays(64, "1");
    char *empty64 = arrays(64, ""), *empty65 = arrays(65, "");
    char *obj64 = nested(64, false), *obj63 = nested(63, false);

    assert_int_equal(verdict_flags(scalar63, 64, JSON_SCAN_DEPTH_VALUES), -1);
    assert_int_equal(verdict_flags(scalar64, 64, JSON_SCAN_DEPTH_VALUES), 64);
    assert_int_equal(verdict_flags(scalar64, 64, 0), -1); /* containers only */
    assert_int_equal(verdict_flags(empty64, 64, JSON_SCAN_DEPTH_VALUES), -1);
    assert_int_equal(verdict_flags(empty65, 64, JSON_SCAN_DEPTH_VALUES), 64);
    /* nested(n) holds a 1 inside n objects: n + 1 levels. */
    assert_true(verdict_flags(obj64, 64, JSON_SCAN_DEPTH_VALUES) >= 0);
    assert_int_equal(verdict_flags(obj63, 64, JSON_SCAN_DEPTH_VALUES), -1);
    assert_int_equal(verdict_flags("{\"a\":[]}", 2, JSON_SCAN_DEPTH_VALUES), -1);
    assert_int_equal(verdict_flags("{\"a\":[1]}", 2, JSON_SCAN_DEPTH_VALUES), 6);
    assert_int_equal(verdict_flags("{\"a\":1}", 1, JSON_SCAN_DEPTH_VALUES), 1);
    assert_int_equal(verdict_flags("{}", 1, JSON_SCAN_DEPTH_VALUES), -1);
    assert_int_equal(verdict_flags("\"s\"", 1, JSON_SCAN_DEPTH_VALUES), -1);
    xfree(scalar63);
    xfree(scalar64);
    xfree(empty64);
    xfree(empty65);
    xfree(obj64);
    xfree(obj63);
}

/* Every prefix of a good text is refused at its end: the text broke off there. */
static void truncated_everywhere(void **state)
{
    static const char doc[] = "{\"a\":[1,-2.5e+3,true,false,null,{\"b\":\"\\u00e9\\ud83d\\ude00"
                              "\xc3\xa9\\n\"}],\"c\":{}}";
    size_t n = sizeof(doc) - 1, i;

    assert_int_equal(verdict_n(doc, n, 8), -1);
    for (i = 0; i < n; i++) {
        if (verdict_n(doc, i, 8) != (long)i)
            fail_msg("prefix of %zu: %ld", i, verdict_n(doc, i, 8));
    }
}

/*
 * Plain runs go a word at a time: each kind of byte that ends one, at every
 * place in a word and near the end of the buffer, is still found.
 */
static void word_boundaries(void **state)
{
    /* What sits between the a's and the b's ("": nothing, the quote ends the run). */
    static const struct {
        const char *inner;
        const char *want; /* decoded, or NULL: refused at the inner's first byte */
    } kinds[] = {
        {"\\n", "\n"},  {"\xc3\xa9", "\xc3\xa9"}, {"\x7f", "\x7f"}, {"\\u0041", "A"},
        {"\x1f", NULL}, {"\x80", NULL},           {"", ""},
    };
    char doc[96], want[64];
    size_t k, na, nb;

    for (k = 0; k < ARRAY_SIZE(kinds); k++) {
        for (na = 0; na < 18; na++) {
            for (nb = 0; nb < 10; nb++) {
                int n = snprintf(doc, sizeof(doc), "{\"k\":\"%.*s%s%.*s\"}", (int)na,
                                 "aaaaaaaaaaaaaaaaaa", kinds[k].inner, (int)nb, "bbbbbbbbbb");

                if (!kinds[k].want) {
                    assert_int_equal(verdict_n(doc, (size_t)n, 8), (long)(6 + na));
                    continue;
                }
                snprintf(want, sizeof(want), "%.*s%s%.*s", (int)na, "aaaaaaaaaaaaaaaaaa",
                         kinds[k].want, (int)nb, "bbbbbbbbbb");
                expect_decoded_n(doc, want, strlen(want), false);
            }
        }
    }
}

/* After the first error every call fails the same way, and err_at stays put. */
static void errors_stick(void **state)
{
    struct scan_test t;
    struct json_scan_str key;

    start(&t, "{\"a\":x,\"b\":1}", 13, 8);
    assert_int_equal(json_scan_object(&t.s), 0);
    assert_int_equal(json_scan_member(&t.s, &key), 1);
    assert_int_equal(json_scan_skip(&t.s), DG_ERR_BAD_JSON);
    assert_int_equal(t.s.err_at, 5);
    assert_int_equal(json_scan_peek(&t.s), JSON_SCAN_BAD);
    assert_int_equal(json_scan_member(&t.s, &key), DG_ERR_BAD_JSON);
    assert_int_equal(json_scan_string(&t.s, &key), DG_ERR_BAD_JSON);
    assert_int_equal(json_scan_object(&t.s), DG_ERR_BAD_JSON);
    assert_int_equal(json_scan_end(&t.s), DG_ERR_BAD_JSON);
    assert_int_equal(t.s.err_at, 5);
    xfree(t.buf);
}

/* Member names compared as json-c kept them: up to the first NUL an escape made. */
static void names_as_json_c_kept_them(void **state)
{
    static const struct {
        const char *doc;
        size_t len;
    } names[] = {
        {"{\"id\":0}", 2},       {"{\"id\\u0000x\":0}", 2}, {"{\"\\u0000id\":0}", 0},
        {"{\"i\\u0064\":0}", 2}, {"{\"idx\":0}", 3},
    };
    struct scan_test t;
    struct json_scan_str key;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(names); i++) {
        start(&t, names[i].doc, strlen(names[i].doc), 8);
        assert_int_equal(json_scan_object(&t.s), 0);
        assert_int_equal(json_scan_member(&t.s, &key), 1);
        assert_int_equal(json_scan_name_len(&key), names[i].len);
        assert_int_equal(json_scan_name_is(&key, "id"), names[i].len == 2);
        assert_false(json_scan_name_is(&key, "i"));
        xfree(t.buf);
    }
}

/* A member's value as a C string: NULL, and read past, when not a string or when it holds a NUL. */
static void cstrings_as_json_c_gave_them(void **state)
{
    static const char doc[] = "{\"a\":\"x\\ty\",\"b\":\"n\\u0000o\",\"c\":[1,{\"d\":\"e\"}],"
                              "\"f\":7,\"g\":\"last\"}";
    static const char *const want[] = {"x\ty", NULL, NULL, NULL, "last"};
    struct scan_test t;
    struct json_scan_str key;
    const char *got;
    size_t i = 0;

    start(&t, doc, sizeof(doc) - 1, 8);
    assert_int_equal(json_scan_object(&t.s), 0);
    while (json_scan_member(&t.s, &key) == 1) {
        assert_true(i < ARRAY_SIZE(want));
        got = json_scan_cstring(&t.s);
        if (want[i])
            assert_string_equal(got, want[i]);
        else
            assert_null(got);
        i++;
    }
    assert_int_equal(i, ARRAY_SIZE(want));
    assert_int_equal(json_scan_end(&t.s), 0);
    xfree(t.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(walk),
        cmocka_unit_test(escapes),
        cmocka_unit_test(surrogates),
        cmocka_unit_test(control_characters),
        cmocka_unit_test(utf8),
        cmocka_unit_test(numbers),
        cmocka_unit_test(words),
        cmocka_unit_test(structure),
        cmocka_unit_test(depth),
        cmocka_unit_test(raw_utf8),
        cmocka_unit_test(depth_values),
        cmocka_unit_test(truncated_everywhere),
        cmocka_unit_test(word_boundaries),
        cmocka_unit_test(errors_stick),
        cmocka_unit_test(names_as_json_c_kept_them),
        cmocka_unit_test(cstrings_as_json_c_gave_them),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
