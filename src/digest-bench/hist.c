/*
 * hist.c: log-linear buckets. For v >= 2^S (S = HIST_SUB_BITS) let m be the
 * index of v's highest set bit and shift = m - (S - 1): v >> shift lies in
 * [2^(S-1), 2^S), so the bucket is 2^shift wide and starts at least
 * 2^(S-1+shift): width / lower bound <= 2^-(S-1), and the midpoint is within
 * 2^-S of anything in the bucket.
 */
#include "hist.h"

#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

size_t hist_bucket_of(uint64_t ns)
{
    unsigned msb, shift;

    if (ns > HIST_MAX_NS)
        ns = HIST_MAX_NS;
    if (ns < (1u << HIST_SUB_BITS))
        return (size_t)ns;
    msb = 63u - (unsigned)__builtin_clzll(ns);
    shift = msb - (HIST_SUB_BITS - 1);
    return (1u << HIST_SUB_BITS) + (size_t)(shift - 1) * HIST_HALF +
           (size_t)((ns >> shift) - HIST_HALF);
}

void hist_bucket_bounds(size_t idx, uint64_t *lo, uint64_t *hi)
{
    size_t above, shift;

    if (idx < (1u << HIST_SUB_BITS)) {
        *lo = *hi = idx;
        return;
    }
    above = idx - (1u << HIST_SUB_BITS);
    shift = above / HIST_HALF + 1;
    *lo = ((uint64_t)(HIST_HALF + above % HIST_HALF)) << shift;
    *hi = *lo + (UINT64_C(1) << shift) - 1;
}

void hist_record(struct hist *h, uint64_t ns)
{
    h->buckets[hist_bucket_of(ns)]++;
    h->count++;
    h->sum_ns += (double)ns;
    if (ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    size_t i;

    for (i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum_ns += src->sum_ns;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

/* Midpoint of bucket idx, clamped to what was actually recorded. */
static uint64_t representative(const struct hist *h, size_t idx)
{
    uint64_t lo, hi, mid;

    hist_bucket_bounds(idx, &lo, &hi);
    mid = lo + (hi - lo) / 2;
    if (mid < h->min_ns)
        mid = h->min_ns;
    if (mid > h->max_ns)
        mid = h->max_ns;
    return mid;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    uint64_t rank, seen = 0;
    size_t i;

    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max_ns;
    /* The rank-th smallest value, 1-based: ceil(p/100 * count), at least 1. */
    rank = (uint64_t)(p / 100.0 * (double)h->count);
    if ((double)rank < p / 100.0 * (double)h->count)
        rank++;
    if (rank == 0)
        rank = 1;
    for (i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank)
            return representative(h, i);
    }
    return h->max_ns;
}

double hist_mean_ns(const struct hist *h)
{
    return h->count ? h->sum_ns / (double)h->count : 0.0;
}
