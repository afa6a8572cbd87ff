/* test_url.c: percent-encoding of path segments and query values, and decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/url.h"

static void encode(const char *in, const char *want)
{
    struct buf b;
    buf_init(&b, 1024);
    assert_int_equal(url_encode_component(&b, in), 0);
    assert_string_equal(buf_cstr(&b), want);
    buf_free(&b);
}

static void unreserved_bytes_pass_through(void **state)
{
    encode("AZaz09-._~", "AZaz09-._~");
    encode("", "");
}

static void teams_conversation_ids(void **state)
{
    /* research/botframework.md §4.1: ':' '@' ';' '=' must be escaped */
    encode("19:abc@thread.tacv2;messageid=1759881511856",
           "19%3Aabc%40thread.tacv2%3Bmessageid%3D1759881511856");
    encode("a:17I0kl9E", "a%3A17I0kl9E");
}

static void everything_else_is_escaped(void **state)
{
    encode("a b/c?d#e%f+g", "a%20b%2Fc%3Fd%23e%25f%2Bg");
    encode("\xc3\xa9", "%C3%A9");
}

static void cap_is_respected(void **state)
{
    struct buf b;
    buf_init(&b, 4);
    assert_int_equal(url_encode_component(&b, "::"), DG_ERR_TOO_LARGE);
    buf_free(&b);
}

/* Decodes len bytes of in and checks the result (want NULL: refused with want_err). */
static void decode(const char *in, bool plus_is_space, const char *want, int want_err)
{
    struct buf b;

    buf_init(&b, 1024);
    assert_int_equal(url_percent_decode(in, strlen(in), plus_is_space, &b), want_err);
    if (want)
        assert_string_equal(buf_cstr(&b), want);
    buf_free(&b);
}

static void escapes_decode_in_either_case(void **state)
{
    decode("19%3Aabc%40thread.tacv2%3bmessageid%3D1", false, "19:abc@thread.tacv2;messageid=1", 0);
    decode("%C3%a9", false, "\xc3\xa9", 0);
    decode("%25%2525", false, "%%25", 0); /* decoded once, never twice */
    decode("", false, "", 0);
}

/* '+' is a space only in form and query values; paths and user info keep it. */
static void plus_is_space_only_when_asked(void **state)
{
    decode("a+b%2B", true, "a b+", 0);
    decode("a+b%2B", false, "a+b+", 0);
}

static void malformed_escapes_are_refused(void **state)
{
    static const char *const bad[] = {"%", "%4", "a%4", "%G1", "%1G", "%%41", "% 41", "%-1"};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(bad); i++)
        decode(bad[i], false, NULL, DG_ERR_INVALID);
    /* %00 would cut the C string the value becomes. */
    decode("a%00b", false, NULL, DG_ERR_INVALID);
    decode("a%01b", false, "a\001b", 0);
}

/* Only len bytes are read: a caller may decode a slice of a longer string. */
static void only_len_bytes_are_read(void **state)
{
    struct buf b;

    buf_init(&b, 1024);
    assert_int_equal(url_percent_decode("ab%41&rest", 5, false, &b), 0);
    assert_string_equal(buf_cstr(&b), "abA");
    buf_reset(&b);
    /* An escape cut by len is malformed, even when the bytes after it would complete it. */
    assert_int_equal(url_percent_decode("ab%41", 4, false, &b), DG_ERR_INVALID);
    buf_free(&b);
    buf_init(&b, 2);
    assert_int_equal(url_percent_decode("abc", 3, false, &b), DG_ERR_TOO_LARGE);
    buf_free(&b);
}

/* What url_encode_component writes, url_percent_decode reads back. */
static void decode_inverts_encode(void **state)
{
    char in[256];
    struct buf enc, dec;
    int i;

    for (i = 1; i < 256; i++)
        in[i - 1] = (char)i;
    in[255] = '\0';
    buf_init(&enc, 4096);
    buf_init(&dec, 4096);
    assert_int_equal(url_encode_component(&enc, in), 0);
    assert_int_equal(url_percent_decode(enc.data, enc.len, true, &dec), 0);
    assert_int_equal(dec.len, 255);
    assert_memory_equal(dec.data, in, 255);
    buf_free(&enc);
    buf_free(&dec);
}

/* A request's numeric options: absent is the default, anything but digits in range is refused. */
static void query_numbers(void **state)
{
    static const struct {
        const char *query;
        int rc;
        unsigned want;
    } cases[] = {
        {"", 0, 20},
        {"limit=5", 0, 5},
        {"a=1&limit=1000&b", 0, 1000},
        {"limited=7", 0, 20}, /* another name that starts the same */
        {"xlimit=7", 0, 20},
        {"limit=5&limit=6", 0, 6}, /* the last one wins */
        {"limit=0", DG_ERR_INVALID, 20},
        {"limit=1001", DG_ERR_INVALID, 20},
        {"limit=", DG_ERR_INVALID, 20},
        {"limit=5x", DG_ERR_INVALID, 20},
        {"limit=-5", DG_ERR_INVALID, 20},
        {"limit=+5", DG_ERR_INVALID, 20},
        {"limit=9999999999999999999", DG_ERR_INVALID, 20},
        {"limit=5&limit=x", DG_ERR_INVALID, 20},
        {"limit", 0, 20},
    };
    unsigned v;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int rc = url_query_uint(cases[i].query, "limit", 1, 1000, 20, &v);

        if (rc != cases[i].rc || v != cases[i].want)
            print_error("'%s': rc %d, %u\n", cases[i].query, rc, v);
        assert_int_equal(rc, cases[i].rc);
        assert_int_equal(v, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unreserved_bytes_pass_through),
        cmocka_unit_test(teams_conversation_ids),
        cmocka_unit_test(everything_else_is_escaped),
        cmocka_unit_test(cap_is_respected),
        cmocka_unit_test(escapes_decode_in_either_case),
        cmocka_unit_test(plus_is_space_only_when_asked),
        cmocka_unit_test(malformed_escapes_are_refused),
        cmocka_unit_test(only_len_bytes_are_read),
        cmocka_unit_test(decode_inverts_encode),
        cmocka_unit_test(query_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
