/*
 * test_backoff.c: full-jitter backoff (backoff.h). The bound is
 * min(cap, base·2^(n−1)); fixed seeds keep the statistical checks
 * deterministic, so they cannot flake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/backoff.h"
#include "core/common.h"

#define SAMPLES 4000

static const uint64_t seeds[] = {1, 2, 0x9e3779b97f4a7c15ULL, 42, 0xdeadbeefULL};

/* base·2^(n−1) capped, computed without shifting past 63 bits. */
static uint64_t bound(uint64_t base, uint64_t cap, unsigned n)
{
    uint64_t w = base;

    for (unsigned i = 1; i < n && w < cap; i++)
        w = w > cap / 2 ? cap : w * 2;
    return w < cap ? w : cap;
}

/* SAMPLES draws stay within the bound and reach both ends of the window. */
static void check_window(uint64_t seed, uint64_t base, uint64_t cap, unsigned n)
{
    uint64_t rng = seed, lo = UINT64_MAX, hi = 0, b = bound(base, cap, n);

    for (int i = 0; i < SAMPLES; i++) {
        uint64_t v = backoff_full_jitter(&rng, base, cap, n);
        assert_true(v <= b);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    /* With 4000 uniform draws, missing the outer 5% at either end is ~1e-89. */
    assert_true(lo <= b / 20);
    assert_true(hi >= b - b / 20);
}

static void stays_within_min_of_cap_and_doubling(void **state)
{
    for (size_t s = 0; s < ARRAY_SIZE(seeds); s++) {
        for (unsigned n = 1; n <= 12; n++)
            check_window(seeds[s], 1000, 60000, n);
        check_window(seeds[s], 1, 1, 3);
        check_window(seeds[s], 7, 1000000, 5); /* 112 */
    }
}

static void zero_base_waits_zero(void **state)
{
    uint64_t rng = 7;

    for (unsigned n = 0; n < 70; n++)
        assert_int_equal(backoff_full_jitter(&rng, 0, 60000, n), 0);
}

/* n = 0 counts as the first retry: same draws from the same state. */
static void n_zero_is_n_one(void **state)
{
    uint64_t a = 99, b = 99;

    for (int i = 0; i < 100; i++)
        assert_int_equal(backoff_full_jitter(&a, 1000, 60000, 0),
                         backoff_full_jitter(&b, 1000, 60000, 1));
    check_window(5, 1000, 60000, 0);
}

/* Past the shift limit, and where base·2^(n−1) wraps 64 bits: the cap. */
static void huge_n_and_big_base_cap(void **state)
{
    const uint64_t big = UINT64_MAX / 3; /* base<<2 wraps */
    const unsigned ns[] = {41, 42, 63, 64, 65, 100, UINT_MAX};

    for (size_t i = 0; i < ARRAY_SIZE(ns); i++) {
        check_window(3, 1000, 60000, ns[i]);
        check_window(3, 1, 7 * 86400000ULL, ns[i]);
    }
    for (unsigned n = 1; n <= 70; n++) {
        check_window(11, big, UINT64_MAX - 1, n);
        check_window(11, UINT64_MAX / 2 + 1, UINT64_MAX / 2 + 2, n);
        check_window(11, UINT64_MAX - 2, UINT64_MAX - 1, n);
    }
    /* 2^63 shifted once is exactly 2^64: wraps to 0, must not read as 0. */
    check_window(13, 1ULL << 63, UINT64_MAX - 1, 2);
}

/*
 * With cap == UINT64_MAX the window is UINT64_MAX, and `% (win + 1)` once
 * divided by zero (SIGFPE). Run in a child so a crash fails this test only.
 */
static void cap_at_uint64_max_does_not_divide_by_zero(void **state)
{
    int status = 0;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        uint64_t rng = 1;
        uint64_t v = backoff_full_jitter(&rng, 1000, UINT64_MAX, 80);
        v |= backoff_full_jitter(&rng, UINT64_MAX, UINT64_MAX, 1);
        _exit(v == 0 ? 2 : 0); /* both zero: astronomically unlikely */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void seeds_give_different_sequences(void **state)
{
    uint64_t a = 1, b = 2, k1, k2;
    int same = 0;

    for (int i = 0; i < 100; i++)
        same +=
            backoff_full_jitter(&a, 1000, 60000, 10) == backoff_full_jitter(&b, 1000, 60000, 10);
    assert_true(same < 5); /* chance agreement is 1 in 60001 per draw */

    /* Kernel seeds: never 0 (xorshift would stay at 0), and not equal. */
    backoff_seed(&k1);
    backoff_seed(&k2);
    assert_true(k1 != 0);
    assert_true(k2 != 0);
    assert_true(k1 != k2);
    assert_true(backoff_next(&k1) != backoff_next(&k2));
}

/* Uniform over the window: ten buckets each hold about a tenth. */
static void values_spread_evenly(void **state)
{
    for (size_t s = 0; s < ARRAY_SIZE(seeds); s++) {
        uint64_t rng = seeds[s], prev = UINT64_MAX;
        unsigned buckets[10] = {0}, repeats = 0;

        for (int i = 0; i < 10000; i++) {
            uint64_t v = backoff_full_jitter(&rng, 1000, 60000, 8); /* window 60000 */
            buckets[v * 10 / 60001]++;
            repeats += v == prev;
            prev = v;
        }
        for (size_t k = 0; k < ARRAY_SIZE(buckets); k++) {
            assert_true(buckets[k] > 800);
            assert_true(buckets[k] < 1200);
        }
        assert_true(repeats < 10);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stays_within_min_of_cap_and_doubling),
        cmocka_unit_test(zero_base_waits_zero),
        cmocka_unit_test(n_zero_is_n_one),
        cmocka_unit_test(huge_n_and_big_base_cap),
        cmocka_unit_test(cap_at_uint64_max_does_not_divide_by_zero),
        cmocka_unit_test(seeds_give_different_sequences),
        cmocka_unit_test(values_spread_evenly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
