/*
 * test_hist.c: digest-bench's latency histogram (src/digest-bench/hist.h).
 * Percentiles are checked against a sorted copy of the same random data at
 * many points, every bucket's bounds against the error bound, and a merge
 * against one histogram of all the values. Fixed seeds: deterministic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "core/buf.h"
#include "core/common.h"
#include "hist.h"

#define N 200000

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: good enough spread for test data. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Latency-like data: log-uniform from 1 ns to ~100 s, plus a cluster around 1 ms. */
static uint64_t sample(uint64_t *s)
{
    double u = (double)(rng_next(s) >> 11) / 9007199254740992.0;

    if (rng_next(s) % 4 == 0)
        return 1000000 + rng_next(s) % 50000;
    return (uint64_t)exp(u * log(1e11));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The rank-th smallest (rank = ceil(p/100 n), at least 1) of sorted v. */
static uint64_t reference(const uint64_t *v, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);

    return v[(rank ? rank : 1) - 1];
}

static void fill(struct hist *h, uint64_t *v, size_t n, uint64_t seed)
{
    hist_init(h);
    for (size_t i = 0; i < n; i++) {
        v[i] = sample(&seed);
        hist_record(h, v[i]);
    }
}

static void assert_close(uint64_t got, uint64_t want)
{
    double err = fabs((double)got - (double)want);

    if (err > (double)want * HIST_REL_ERROR)
        fail_msg("got %llu, want %llu: relative error %.5f > %.5f", (unsigned long long)got,
                 (unsigned long long)want, err / (double)want, HIST_REL_ERROR);
}

static void percentiles_match_sorted_reference(void **state)
{
    static const uint64_t seeds[] = {1, 0x9e3779b97f4a7c15ULL, 424242};
    static const double ps[] = {0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 99.999};
    uint64_t *v = xmalloc(N * sizeof(*v));
    struct hist *h = xmalloc(sizeof(*h));

    for (size_t s = 0; s < ARRAY_SIZE(seeds); s++) {
        fill(h, v, N, seeds[s]);
        qsort(v, N, sizeof(*v), cmp_u64);
        for (size_t i = 0; i < ARRAY_SIZE(ps); i++)
            assert_close(hist_percentile(h, ps[i]), reference(v, N, ps[i]));
        /* p100 and min are exact, and so is the count. */
        assert_int_equal(hist_percentile(h, 100), v[N - 1]);
        assert_int_equal(h->max_ns, v[N - 1]);
        assert_int_equal(h->min_ns, v[0]);
        assert_int_equal(h->count, N);
    }
    xfree(h);
    xfree(v);
}

/* Every bucket holds its bounds, touches its neighbours, and is narrow enough. */
static void every_bucket_holds_the_error_bound(void **state)
{
    uint64_t lo, hi, prev_hi = 0;

    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        hist_bucket_bounds(i, &lo, &hi);
        assert_int_equal(hist_bucket_of(lo), i);
        assert_int_equal(hist_bucket_of(hi), i);
        if (i > 0)
            assert_int_equal(lo, prev_hi + 1);
        /* Half the width over the lower bound: the midpoint's worst error. */
        if (lo > 0)
            assert_true((double)(hi - lo) / 2.0 <= (double)lo * HIST_REL_ERROR);
        prev_hi = hi;
    }
    assert_int_equal(prev_hi, HIST_MAX_NS);
    /* Past the top, values land in the last bucket; max stays exact. */
    assert_int_equal(hist_bucket_of(UINT64_MAX), HIST_BUCKETS - 1);
}

static void small_values_are_exact(void **state)
{
    struct hist *h = xmalloc(sizeof(*h));

    hist_init(h);
    for (uint64_t v = 1; v <= 100; v++)
        hist_record(h, v);
    assert_int_equal(hist_percentile(h, 50), 50);
    assert_int_equal(hist_percentile(h, 99), 99);
    assert_int_equal(hist_percentile(h, 99.9), 100);
    assert_int_equal(hist_percentile(h, 0.001), 1);
    assert_true(fabs(hist_mean_ns(h) - 50.5) < 1e-9);
    xfree(h);
}

static void empty_reads_zero(void **state)
{
    struct hist *h = xmalloc(sizeof(*h));

    hist_init(h);
    assert_int_equal(hist_percentile(h, 50), 0);
    assert_int_equal(hist_percentile(h, 100), 0);
    assert_true(hist_mean_ns(h) == 0.0);
    xfree(h);
}

/* Two halves merged equal one histogram of everything, bucket for bucket. */
static void merge_of_two_equals_one_of_all(void **state)
{
    uint64_t *v = xmalloc(N * sizeof(*v));
    struct hist *a = xmalloc(sizeof(*a)), *b = xmalloc(sizeof(*b)), *all = xmalloc(sizeof(*all));

    fill(a, v, N / 2, 7);
    fill(b, v + N / 2, N / 2, 8);
    hist_init(all);
    for (size_t i = 0; i < N; i++)
        hist_record(all, v[i]);
    hist_merge(a, b);
    assert_int_equal(a->count, all->count);
    assert_int_equal(a->min_ns, all->min_ns);
    assert_int_equal(a->max_ns, all->max_ns);
    assert_memory_equal(a->buckets, all->buckets, sizeof(a->buckets));
    qsort(v, N, sizeof(*v), cmp_u64);
    assert_close(hist_percentile(a, 99), reference(v, N, 99));
    assert_close(hist_percentile(a, 50), reference(v, N, 50));
    /* Merging an empty histogram changes nothing. */
    hist_init(b);
    hist_merge(a, b);
    assert_int_equal(a->count, N);
    assert_int_equal(a->min_ns, all->min_ns);
    xfree(all);
    xfree(b);
    xfree(a);
    xfree(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percentiles_match_sorted_reference),
        cmocka_unit_test(every_bucket_holds_the_error_bound),
        cmocka_unit_test(small_values_are_exact),
        cmocka_unit_test(empty_reads_zero),
        cmocka_unit_test(merge_of_two_equals_one_of_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
