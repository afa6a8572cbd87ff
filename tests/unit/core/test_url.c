/* test_url.c: percent-encoding of path segments and query values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unreserved_bytes_pass_through),
        cmocka_unit_test(teams_conversation_ids),
        cmocka_unit_test(everything_else_is_escaped),
        cmocka_unit_test(cap_is_respected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
