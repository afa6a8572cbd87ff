/*
 * test_dec.c: dec_u64 writes what printf's "%" PRIu64 writes, for the
 * edges (0, every power of ten and its neighbours, UINT64_MAX) and for a
 * spread of values from a fixed pseudo-random sequence.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/dec.h"

static void same_as_printf(uint64_t v)
{
    char want[32], got[DEC_U64_SIZE + 8];
    int n = snprintf(want, sizeof(want), "%" PRIu64, v);

    memset(got, 'x', sizeof(got));
    assert_int_equal(dec_u64(got, v), (size_t)n);
    assert_string_equal(got, want);
    assert_int_equal(got[DEC_U64_SIZE], 'x'); /* nothing past the documented room */
}

static void edges(void **state)
{
    uint64_t p = 1;
    int i;

    (void)state;
    same_as_printf(0);
    same_as_printf(UINT64_MAX);
    same_as_printf(UINT64_MAX - 1);
    for (i = 0; i < 20; i++, p *= 10) {
        same_as_printf(p);
        same_as_printf(p - 1);
        same_as_printf(p + 1);
    }
}

static void spread(void **state)
{
    uint64_t x = 0x9e3779b97f4a7c15u;
    int i;

    (void)state;
    for (i = 0; i < 100000; i++) {
        /* xorshift64, then a shift so short numbers come up as often as long ones */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        same_as_printf(x >> (x % 64));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edges),
        cmocka_unit_test(spread),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
