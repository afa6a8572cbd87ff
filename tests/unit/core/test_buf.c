/* test_buf.c: the capped buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/buf.h"

static void empty_buffer_reads_as_empty_string(void **state)
{
    struct buf b;
    buf_init(&b, 16);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void append_up_to_cap_then_refuse(void **state)
{
    struct buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_append(&b, "12345", 5), 0);
    assert_int_equal(buf_append(&b, "678", 3), 0);
    assert_int_equal(buf_append(&b, "9", 1), DG_ERR_TOO_LARGE);
    /* A refused append leaves the content untouched. */
    assert_string_equal(buf_cstr(&b), "12345678");
    assert_int_equal(b.len, 8);
    buf_free(&b);
}

/* extend: the bytes are the caller's to fill, NUL after them; past the cap nothing changes. */
static void extend_hands_out_room_within_cap(void **state)
{
    struct buf b;
    char *at;

    (void)state;
    buf_init(&b, 8);
    assert_int_equal(buf_append(&b, "ab", 2), 0);
    assert_int_equal(buf_extend(&b, 3, &at), 0);
    assert_ptr_equal(at, b.data + 2);
    memcpy(at, "cde", 3);
    assert_int_equal(b.len, 5);
    assert_string_equal(buf_cstr(&b), "abcde");
    assert_int_equal(buf_extend(&b, 4, &at), DG_ERR_TOO_LARGE);
    assert_null(at);
    assert_string_equal(buf_cstr(&b), "abcde");
    assert_int_equal(buf_extend(&b, 3, &at), 0); /* exactly to the cap */
    memcpy(at, "fgh", 3);
    assert_string_equal(buf_cstr(&b), "abcdefgh");
    buf_free(&b);
}

static void printf_respects_cap(void **state)
{
    struct buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "abc"), 0);
    assert_string_equal(buf_cstr(&b), "42-abc");
    assert_int_equal(buf_printf(&b, "%s", "toolong"), DG_ERR_TOO_LARGE);
    assert_string_equal(buf_cstr(&b), "42-abc");
    buf_free(&b);
}

static void consume_keeps_the_tail(void **state)
{
    struct buf b;
    buf_init(&b, 64);
    assert_int_equal(buf_append_str(&b, "GET / HTTP/1.1\r\n"), 0);
    buf_consume(&b, 4);
    assert_string_equal(buf_cstr(&b), "/ HTTP/1.1\r\n");
    buf_consume(&b, 100);
    assert_string_equal(buf_cstr(&b), "");
    buf_free(&b);
}

static void take_transfers_ownership(void **state)
{
    struct buf b;
    char *s;
    buf_init(&b, 64);
    assert_int_equal(buf_append_str(&b, "hello"), 0);
    s = buf_take(&b);
    assert_string_equal(s, "hello");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    xfree(s);
    s = buf_take(&b); /* empty buffer: an owned "" */
    assert_string_equal(s, "");
    xfree(s);
}

static void binary_bytes_survive(void **state)
{
    struct buf b;
    const char bin[4] = {'a', '\0', 'b', '\0'};
    buf_init(&b, 64);
    assert_int_equal(buf_append(&b, bin, sizeof(bin)), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, bin, 4);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void grows_across_many_appends(void **state)
{
    struct buf b;
    int i;
    buf_init(&b, 100000);
    for (i = 0; i < 10000; i++)
        assert_int_equal(buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 100000);
    assert_int_equal(buf_append(&b, "x", 1), DG_ERR_TOO_LARGE);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_buffer_reads_as_empty_string),
        cmocka_unit_test(append_up_to_cap_then_refuse),
        cmocka_unit_test(extend_hands_out_room_within_cap),
        cmocka_unit_test(printf_respects_cap),
        cmocka_unit_test(consume_keeps_the_tail),
        cmocka_unit_test(take_transfers_ownership),
        cmocka_unit_test(binary_bytes_survive),
        cmocka_unit_test(grows_across_many_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
