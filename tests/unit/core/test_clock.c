/*
 * test_clock.c: the two clocks move the way they should, and spans read
 * the way digestctl and the stats verdict print them ("3m12s", "14m").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/clock.h"

static void wall_is_epoch_ms_and_mono_does_not_go_back(void **state)
{
    uint64_t a = clock_mono_ns(), b = clock_mono_ns();

    assert_true(b >= a);
    /* Some time after 2023-11 and before 2100, in milliseconds. */
    assert_true(clock_wall_ms() > 1700000000000ull);
    assert_true(clock_wall_ms() < 4102444800000ull);
}

static void spans_read_as_two_units_at_most(void **state)
{
    static const struct {
        uint64_t ms;
        const char *want;
    } cases[] = {
        {0, "0ms"},
        {800, "800ms"},
        {999, "999ms"},
        {1000, "1s"},
        {45999, "45s"},
        {60000, "1m"},
        {192000, "3m12s"},
        {14 * 60000, "14m"},
        {14 * 60000 + 500, "14m"},
        {3600000, "1h"},
        {2 * 3600000 + 5 * 60000 + 30000, "2h5m"},
        {86400000, "1d"},
        {3 * 86400000ull + 4 * 3600000, "3d4h"},
        {400 * 86400000ull, "400d"},
    };
    char out[32];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(clock_format_span(cases[i].ms, out, sizeof(out)), cases[i].want);
}

/* A short buffer is cut, never overrun. */
static void short_buffer_is_cut(void **state)
{
    char out[4];

    assert_string_equal(clock_format_span(192000, out, sizeof(out)), "3m1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wall_is_epoch_ms_and_mono_does_not_go_back),
        cmocka_unit_test(spans_read_as_two_units_at_most),
        cmocka_unit_test(short_buffer_is_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
