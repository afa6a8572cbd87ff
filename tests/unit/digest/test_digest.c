/*
 * test_digest.c: the upstream reply parser (strict about shape, tolerant
 * about content, capped text, http(s)-only URLs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "digest/digest.h"

static int parse_str(struct digest *d, const char *s)
{
    return digest_parse(d, s, strlen(s));
}

/* Code points in valid UTF-8 s. */
static size_t count_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void test_full_reply(void **state)
{
    struct digest d;
    const char *body =
        "{\"audience\":\"advisors\",\"generated_at\":\"2025-03-01T08:00:00Z\",\"items\":["
        "{\"name\":\"Ada Lovelace\",\"title\":\"CTO\",\"company\":\"Engines Ltd\","
        "\"location\":\"London\",\"summary\":\"Analytical.\",\"url\":\"https://ex.com/a?x=1\"},"
        "{\"name\":\"Grace Hopper\"}]}";

    assert_int_equal(parse_str(&d, body), 0);
    assert_string_equal(d.audience, "advisors");
    assert_string_equal(d.generated_at, "2025-03-01T08:00:00Z");
    assert_int_equal(d.n_items, 2);
    assert_int_equal(d.n_total, 2);
    assert_string_equal(d.items[0].name, "Ada Lovelace");
    assert_string_equal(d.items[0].title, "CTO");
    assert_string_equal(d.items[0].company, "Engines Ltd");
    assert_string_equal(d.items[0].location, "London");
    assert_string_equal(d.items[0].summary, "Analytical.");
    assert_string_equal(d.items[0].url, "https://ex.com/a?x=1");
    /* Missing optional fields read as "", never NULL. */
    assert_string_equal(d.items[1].name, "Grace Hopper");
    assert_string_equal(d.items[1].title, "");
    assert_string_equal(d.items[1].summary, "");
    assert_string_equal(d.items[1].url, "");
    digest_free(&d);
}

static void test_empty_items_and_missing_header(void **state)
{
    struct digest d;

    assert_int_equal(parse_str(&d, "{\"items\":[]}"), 0);
    assert_int_equal(d.n_items, 0);
    assert_int_equal(d.n_total, 0);
    assert_string_equal(d.audience, "");
    assert_string_equal(d.generated_at, "");
    digest_free(&d);
}

static void test_wrong_types_are_ignored(void **state)
{
    struct digest d;
    const char *body = "{\"audience\":7,\"generated_at\":[1],\"items\":[42,\"x\",null,[],"
                       "{\"name\":42,\"title\":null,\"company\":{},\"location\":[],"
                       "\"summary\":true,\"url\":1.5},{\"name\":\"ok\"}],\"extra\":{\"a\":1}}";

    assert_int_equal(parse_str(&d, body), 0);
    assert_string_equal(d.audience, "");
    assert_string_equal(d.generated_at, "");
    /* Non-objects in items are skipped and not counted. */
    assert_int_equal(d.n_items, 2);
    assert_int_equal(d.n_total, 2);
    assert_string_equal(d.items[0].name, "");
    assert_string_equal(d.items[0].title, "");
    assert_string_equal(d.items[0].company, "");
    assert_string_equal(d.items[0].location, "");
    assert_string_equal(d.items[0].summary, "");
    assert_string_equal(d.items[0].url, "");
    assert_string_equal(d.items[1].name, "ok");
    digest_free(&d);
}

static void test_shape_errors(void **state)
{
    static const struct {
        const char *body;
        int rc;
    } cases[] = {
        {"", DG_ERR_BAD_JSON},
        {"   ", DG_ERR_BAD_JSON},
        {"[]", DG_ERR_BAD_JSON},
        {"\"items\"", DG_ERR_BAD_JSON},
        {"42", DG_ERR_BAD_JSON},
        {"null", DG_ERR_BAD_JSON},
        {"{\"items\":[]", DG_ERR_BAD_JSON},     /* truncated */
        {"{\"items\":[]}x", DG_ERR_BAD_JSON},   /* trailing garbage */
        {"{\"items\":[]} {}", DG_ERR_BAD_JSON}, /* two values */
        {"{\"items\":[1,]}", DG_ERR_BAD_JSON},  /* trailing comma */
        {"{}", DG_ERR_FIELD},
        {"{\"items\":null}", DG_ERR_FIELD},
        {"{\"items\":{}}", DG_ERR_FIELD},
        {"{\"items\":\"[]\"}", DG_ERR_FIELD},
        {"{\"Items\":[]}", DG_ERR_FIELD},
        {"{\"items\":[]}\n", 0}, /* a final newline is fine */
        {" \r\n\t{\"items\":[]} \r\n\t", 0},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        struct digest d;
        int rc = parse_str(&d, cases[i].body);

        if (rc != cases[i].rc)
            fail_msg("case %zu '%s': got %d, want %d", i, cases[i].body, rc, cases[i].rc);
        if (rc == 0)
            digest_free(&d);
        else
            assert_null(d.items);
    }
}

static void test_not_nul_terminated(void **state)
{
    struct digest d;
    const char body[] = "{\"items\":[]}GARBAGE";

    /* Only len bytes count: the rest of the memory is not part of the reply. */
    assert_int_equal(digest_parse(&d, body, 12), 0);
    digest_free(&d);
}

/* "[[[…]]]" depth levels deep inside an item. */
static char *nested(size_t depth)
{
    struct buf b;
    size_t i;

    buf_init(&b, 1u << 20);
    assert_int_equal(buf_append_str(&b, "{\"items\":[{\"deep\":"), 0);
    for (i = 0; i < depth; i++)
        assert_int_equal(buf_append_str(&b, "["), 0);
    for (i = 0; i < depth; i++)
        assert_int_equal(buf_append_str(&b, "]"), 0);
    assert_int_equal(buf_append_str(&b, ",\"name\":\"n\"}]}"), 0);
    return buf_take(&b);
}

static void test_deep_nesting(void **state)
{
    struct digest d;
    char *shallow = nested(20);
    char *deep = nested(100);
    char *very_deep = nested(100000);

    assert_int_equal(parse_str(&d, shallow), 0);
    assert_int_equal(d.n_items, 1);
    digest_free(&d);
    assert_int_equal(parse_str(&d, deep), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str(&d, very_deep), DG_ERR_BAD_JSON);
    xfree(shallow);
    xfree(deep);
    xfree(very_deep);
}

static void test_huge_body_refused(void **state)
{
    struct digest d;
    size_t len = DIGEST_MAX_BODY_BYTES + 1;
    char *body = xmalloc(len);

    memset(body, ' ', len);
    memcpy(body, "{\"items\":[]}", 12);
    assert_int_equal(digest_parse(&d, body, len), DG_ERR_TOO_LARGE);
    /* One byte less is within the cap, and trailing spaces are fine. */
    assert_int_equal(digest_parse(&d, body, len - 1), 0);
    digest_free(&d);
    xfree(body);
}

static void test_huge_summary_capped(void **state)
{
    struct digest d;
    struct buf b;
    size_t i;

    buf_init(&b, 4u << 20);
    assert_int_equal(buf_append_str(&b, "{\"items\":[{\"name\":\""), 0);
    for (i = 0; i < 300; i++)
        assert_int_equal(buf_append_str(&b, "\xc3\xa9"), 0); /* é, 2 bytes */
    assert_int_equal(buf_append_str(&b, "\",\"summary\":\""), 0);
    for (i = 0; i < (1u << 20); i++)
        assert_int_equal(buf_append(&b, "s", 1), 0);
    assert_int_equal(buf_append_str(&b, "\"}]}"), 0);

    assert_int_equal(digest_parse(&d, b.data, b.len), 0);
    assert_int_equal(count_chars(d.items[0].summary), DIGEST_MAX_SUMMARY_CHARS);
    assert_int_equal(strlen(d.items[0].summary), DIGEST_MAX_SUMMARY_CHARS - 1 + 3);
    assert_string_equal(d.items[0].summary + DIGEST_MAX_SUMMARY_CHARS - 1, "\xe2\x80\xa6");
    /* The name is cut between two-byte characters, never inside one. */
    assert_int_equal(count_chars(d.items[0].name), DIGEST_MAX_FIELD_CHARS);
    assert_int_equal(strlen(d.items[0].name), (DIGEST_MAX_FIELD_CHARS - 1) * 2 + 3);
    digest_free(&d);
    buf_free(&b);
}

static void test_text_cap_edges(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        size_t max;
        const char *out;
    } cases[] = {
        {"abc", 3, 3, "abc"},
        {"abcd", 4, 3, "ab\xe2\x80\xa6"},
        {"ab", 2, 1, "\xe2\x80\xa6"},
        {"ab", 2, 0, ""},
        {"", 0, 5, ""},
        {"a\xf0\x9f\x8e\x89\x62", 6, 3, "a\xf0\x9f\x8e\x89\x62"}, /* 🎉 is one char */
        {"a\xf0\x9f\x8e\x89\x62\x63", 7, 3, "a\xf0\x9f\x8e\x89\xe2\x80\xa6"},
        {"x\xffy", 3, 10, "x\xef\xbf\xbdy"},                             /* invalid byte */
        {"x\0y", 3, 10, "x\xef\xbf\xbdy"},                               /* embedded NUL */
        {"\xc0\xaf", 2, 10, "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xed\xa0\x80", 3, 10, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf4\x90\x80\x80", 4, 10,
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* past U+10FFFF */
        {"ab\xe2\x82", 4, 10, "ab\xef\xbf\xbd\xef\xbf\xbd"},  /* truncated € */
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        char *got = digest_text_cap(cases[i].in, cases[i].len, cases[i].max);

        if (strcmp(got, cases[i].out) != 0)
            fail_msg("case %zu: got '%s', want '%s'", i, got, cases[i].out);
        xfree(got);
    }
}

/*
 * The reference for digest_text_cap: the code-point-at-a-time loop it had
 * before it copied ASCII runs whole, with a UTF-8 check of its own, written
 * from RFC 3629's rules on the decoded value rather than on byte ranges.
 */
static size_t ref_utf8_len(const unsigned char *p, size_t n)
{
    uint32_t v, min;
    size_t need, i;

    if (p[0] == 0)
        return 0;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        need = 2, v = p[0] & 0x1fu, min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        need = 3, v = p[0] & 0x0fu, min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        need = 4, v = p[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    return need;
}

static char *ref_text_cap(const char *s, size_t len, size_t max_chars)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out = xmalloc(len * 3 + 8);
    size_t o = 0, i = 0, chars = 0, cut = 0;

    while (i < len) {
        size_t n = ref_utf8_len(p + i, len - i);

        if (++chars > max_chars) {
            o = cut;
            if (max_chars > 0) {
                memcpy(out + o, "\xe2\x80\xa6", 3);
                o += 3;
            }
            break;
        }
        if (n == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        }
        if (chars + 1 == max_chars)
            cut = o;
    }
    out[o] = '\0';
    return out;
}

/* Against the reference: texts of ASCII runs, NULs, valid and broken UTF-8, every cap near them. */
static void test_text_cap_matches_reference(void **state)
{
    static const char *const pieces[] = {
        "a",
        "Bc",
        "hello world ",
        "\x7f",
        "",
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x8e\x89",
        "\xff",
        "\x80",
        "\xc0\xaf",
        "\xe2\x82",
        "\xed\xa0\x80",
        "\xf4\x90\x80\x80",
        "\xf5",
    };
    uint64_t x = 0x2545f4914f6cdd1du;
    char text[256];
    size_t iter, len, k, max;

    (void)state;
    for (iter = 0; iter < 20000; iter++) {
        size_t n_pieces;

        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        n_pieces = x % 24;
        len = 0;
        for (k = 0; k < n_pieces; k++) {
            size_t which = (x >> (k % 50)) % (ARRAY_SIZE(pieces) + 1);

            if (which == ARRAY_SIZE(pieces)) {
                text[len++] = '\0'; /* an embedded NUL (piece "" stands for nothing) */
            } else {
                memcpy(text + len, pieces[which], strlen(pieces[which]));
                len += strlen(pieces[which]);
            }
        }
        for (max = 0; max <= len + 2; max++) {
            char *want = ref_text_cap(text, len, max);
            char *got = digest_text_cap(text, len, max);

            if (strcmp(got, want) != 0)
                fail_msg("iteration %zu, cap %zu: got '%s', want '%s'", iter, max, got, want);
            xfree(want);
            xfree(got);
        }
    }
}

static void test_invalid_utf8_and_nul_in_json(void **state)
{
    struct digest d;
    const char body[] = "{\"items\":[{\"name\":\"A\xff\x42\",\"title\":\"x\\u0000y\"}]}";

    /* json-c does not check UTF-8 and keeps escaped NULs: both are repaired. */
    assert_int_equal(digest_parse(&d, body, sizeof(body) - 1), 0);
    assert_string_equal(d.items[0].name, "A\xef\xbf\xbd\x42");
    assert_string_equal(d.items[0].title, "x\xef\xbf\xbdy");
    digest_free(&d);
}

static void test_urls(void **state)
{
    static const struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"\"https://ex.com/p?q=1#f\"", "https://ex.com/p?q=1#f"},
        {"\"http://ex.com\"", "http://ex.com"},
        {"\"HTTPS://EX.COM/A\"", "HTTPS://EX.COM/A"},
        {"\"javascript:alert(1)\"", ""},
        {"\"ftp://ex.com/f\"", ""},
        {"\"file:///etc/passwd\"", ""},
        {"\"mailto:a@b.c\"", ""},
        {"\"//ex.com/p\"", ""},
        {"\"/relative\"", ""},
        {"\"https://\"", ""},
        {"\"https:///path\"", ""},
        {"\"https://ex.com/a b\"", ""},
        {"\"https://ex.com/\\n\"", ""},
        {"\"https://ex.com/\xc3\xa9\"", ""},
        {"\" https://ex.com\"", ""},
        {"42", ""},
        {"null", ""},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        struct digest d;
        struct buf b;

        buf_init(&b, 1024);
        assert_int_equal(buf_printf(&b, "{\"items\":[{\"url\":%s}]}", cases[i].json), 0);
        assert_int_equal(digest_parse(&d, b.data, b.len), 0);
        if (strcmp(d.items[0].url, cases[i].want) != 0)
            fail_msg("case %zu %s: got '%s'", i, cases[i].json, d.items[0].url);
        digest_free(&d);
        buf_free(&b);
    }
}

static void test_url_length_cap(void **state)
{
    struct digest d;
    struct buf b;
    size_t i;

    for (i = DIGEST_MAX_URL_BYTES; i <= DIGEST_MAX_URL_BYTES + 1; i++) {
        size_t start;

        buf_init(&b, 8192);
        assert_int_equal(buf_append_str(&b, "{\"items\":[{\"url\":\""), 0);
        start = b.len;
        assert_int_equal(buf_append_str(&b, "https://ex.com/"), 0);
        while (b.len - start < i)
            assert_int_equal(buf_append(&b, "a", 1), 0);
        assert_int_equal(buf_append_str(&b, "\"}]}"), 0);
        assert_int_equal(digest_parse(&d, b.data, b.len), 0);
        /* Exactly at the cap it stays; one byte over, it is dropped, never cut. */
        assert_int_equal(strlen(d.items[0].url), i == DIGEST_MAX_URL_BYTES ? i : 0);
        digest_free(&d);
        buf_free(&b);
    }
}

/* json-c's rules, kept by the scan: the last duplicate wins, a later "items" wholly. */
static void test_duplicates(void **state)
{
    struct digest d;
    const char body[] =
        "{\"audience\":\"a\",\"items\":[{\"name\":\"x\"},{}],\"audience\":7,"
        "\"items\":[1,{\"name\":\"b\",\"name\":\"c\",\"title\":\"t\",\"title\":null,"
        "\"url\":\"https://e.com\",\"url\\u0000q\":\"http://f.g\"},null],"
        "\"generated_at\":\"g\"}";
    const char gone[] = "{\"items\":[{\"name\":\"x\"}],\"items\":{}}";

    assert_int_equal(digest_parse(&d, body, sizeof(body) - 1), 0);
    assert_string_equal(d.audience, "");
    assert_string_equal(d.generated_at, "g");
    assert_int_equal(d.n_items, 1);
    assert_int_equal(d.n_total, 1);
    assert_string_equal(d.items[0].name, "c");
    assert_string_equal(d.items[0].title, "");
    assert_string_equal(d.items[0].url, "http://f.g"); /* a name ends at its first NUL */
    digest_free(&d);
    assert_int_equal(digest_parse(&d, gone, sizeof(gone) - 1), DG_ERR_FIELD);
}

/* JSON_MAX_DEPTH counted as json-c counts it: every value a level, the reply's object at 1. */
static void test_depth_boundary(void **state)
{
    struct buf b;
    int inner, i, rc;
    struct digest d;

    for (inner = 0; inner < 3; inner++) {
        buf_init(&b, 1 << 12);
        assert_int_equal(buf_append_str(&b, "{\"items\":[],\"x\":"), 0);
        /* 62 arrays under the object: level 64 is the innermost's content. */
        for (i = 0; i < 62; i++)
            assert_int_equal(buf_append_str(&b, "["), 0);
        assert_int_equal(buf_append_str(&b, inner == 0 ? "1" : inner == 1 ? "[]" : "[1]"), 0);
        for (i = 0; i < 62; i++)
            assert_int_equal(buf_append_str(&b, "]"), 0);
        assert_int_equal(buf_append_str(&b, "}"), 0);
        rc = digest_parse(&d, buf_cstr(&b), b.len);
        assert_int_equal(rc, inner < 2 ? 0 : DG_ERR_BAD_JSON);
        if (rc == 0)
            digest_free(&d);
        buf_free(&b);
    }
}

static void test_many_items_counted(void **state)
{
    struct digest d;
    struct buf b;
    size_t i;

    buf_init(&b, 1u << 20);
    assert_int_equal(buf_append_str(&b, "{\"items\":["), 0);
    for (i = 0; i < 150; i++)
        assert_int_equal(buf_printf(&b, "%s{\"name\":\"c%zu\"}", i ? "," : "", i), 0);
    assert_int_equal(buf_append_str(&b, "]}"), 0);
    assert_int_equal(digest_parse(&d, b.data, b.len), 0);
    assert_int_equal(d.n_items, DIGEST_MAX_ITEMS);
    assert_int_equal(d.n_total, 150);
    assert_string_equal(d.items[DIGEST_MAX_ITEMS - 1].name, "c99");
    digest_free(&d);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_reply),
        cmocka_unit_test(test_empty_items_and_missing_header),
        cmocka_unit_test(test_wrong_types_are_ignored),
        cmocka_unit_test(test_shape_errors),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_huge_body_refused),
        cmocka_unit_test(test_huge_summary_capped),
        cmocka_unit_test(test_text_cap_edges),
        cmocka_unit_test(test_text_cap_matches_reference),
        cmocka_unit_test(test_invalid_utf8_and_nul_in_json),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_url_length_cap),
        cmocka_unit_test(test_many_items_counted),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_depth_boundary),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
