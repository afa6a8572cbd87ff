/* test_json_write.c: the compact form of json-c objects, and the hand-written escaper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "core/json_write.h"

/* Escapes in as far as cap allows; checks the bytes written and what is left over. */
static void escape(const char *in, size_t cap, const char *want, const char *left)
{
    char out[64];
    const char *s = in;
    size_t n;

    assert_true(cap <= sizeof(out));
    n = json_escape(out, cap, &s);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    assert_string_equal(s, left);
}

static void specials_and_control_bytes(void **state)
{
    escape("plain", 64, "plain", "");
    escape("", 64, "", "");
    escape("a\"b\\c\nd", 64, "a\\\"b\\\\c\\nd", "");
    escape("\t\r\x01\x1f", 64, "\\u0009\\u000d\\u0001\\u001f", "");
    escape("/\x7f", 64, "/\x7f", ""); /* neither needs escaping */
}

/* Valid UTF-8 is copied; a byte that starts no valid sequence becomes '?'. */
static void utf8_kept_and_invalid_bytes_replaced(void **state)
{
    escape("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 64, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "");
    escape("a\xff\xfez", 64, "a??z", "");
    escape("\xe2\x82", 64, "??", ""); /* cut by the NUL */
    escape("\x80x", 64, "?x", "");    /* a lone continuation byte */
}

/* A cut never splits an escape or a character; *s tells where it stopped. */
static void cuts_fall_between_units(void **state)
{
    escape("ab\"c", 3, "ab", "\"c");
    escape("ab\x01", 7, "ab", "\x01");
    escape("ab\x01", 8, "ab\\u0001", "");
    escape("a\xe2\x82\xac", 3, "a", "\xe2\x82\xac");
    escape("abc", 0, "", "abc");
}

/* Every byte value, appended to a buf: the result parses back as the same text. */
static void every_byte_gives_valid_json(void **state)
{
    char in[128];
    struct buf b;
    struct json_object *o;
    int i;

    for (i = 1; i < 128; i++)
        in[i - 1] = (char)i;
    in[127] = '\0';
    buf_init(&b, 4096);
    assert_int_equal(buf_append_str(&b, "\""), 0);
    assert_int_equal(json_escape_buf(&b, in), 0);
    assert_int_equal(buf_append_str(&b, "\""), 0);
    o = json_tokener_parse(buf_cstr(&b));
    assert_non_null(o);
    assert_string_equal(json_object_get_string(o), in);
    json_object_put(o);
    buf_free(&b);
}

/* Longer than one chunk of json_escape_buf, and past the buffer's cap. */
static void buf_version_spans_chunks_and_keeps_the_cap(void **state)
{
    char in[1001];
    struct buf b;

    memset(in, '"', sizeof(in) - 1);
    in[sizeof(in) - 1] = '\0';
    buf_init(&b, 2000);
    assert_int_equal(json_escape_buf(&b, in), 0);
    assert_int_equal(b.len, 2000);
    assert_memory_equal(b.data, "\\\"\\\"", 4);
    buf_free(&b);
    buf_init(&b, 1999);
    assert_int_equal(json_escape_buf(&b, in), DG_ERR_TOO_LARGE);
    buf_free(&b);
}

/* Compact, and '/' as it is: what Teams and the upstream send. */
static void compact_with_slashes_unescaped(void **state)
{
    struct json_object *o = json_object_new_object();
    struct buf b;
    size_t len = 0;

    json_object_object_add(o, "url", json_object_new_string("https://a.example/x?y=1"));
    json_object_object_add(o, "n", json_object_new_array());
    json_object_array_add(json_object_object_get(o, "n"), json_object_new_int(1));
    assert_string_equal(json_write_compact(o, &len),
                        "{\"url\":\"https://a.example/x?y=1\",\"n\":[1]}");
    assert_int_equal(len, strlen(json_write_compact(o, NULL)));
    buf_init(&b, 64);
    assert_int_equal(buf_append_str(&b, "x"), 0);
    assert_int_equal(json_write_append(&b, o), 0);
    assert_string_equal(buf_cstr(&b), "x{\"url\":\"https://a.example/x?y=1\",\"n\":[1]}");
    buf_free(&b);
    buf_init(&b, 10);
    assert_int_equal(json_write_append(&b, o), DG_ERR_TOO_LARGE);
    buf_free(&b);
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compact_with_slashes_unescaped),
        cmocka_unit_test(specials_and_control_bytes),
        cmocka_unit_test(utf8_kept_and_invalid_bytes_replaced),
        cmocka_unit_test(cuts_fall_between_units),
        cmocka_unit_test(every_byte_gives_valid_json),
        cmocka_unit_test(buf_version_spans_chunks_and_keeps_the_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
