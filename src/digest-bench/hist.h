/*
 * hist.h: a latency histogram with bounded relative error, in the manner of
 * HdrHistogram (log-linear buckets): values below 2^HIST_SUB_BITS ns are
 * counted exactly; above, each power of two is cut into 2^(HIST_SUB_BITS-1)
 * equal buckets, so a bucket is never wider than 1/2048 of its lower bound
 * and a percentile read back (the bucket's midpoint) is within
 * HIST_REL_ERROR (1/4096) of a value that was recorded. That fine, so that
 * a result card 5 s after its request still resolves its overhead to about
 * a millisecond (1/256 would leave 20 ms buckets there). Count, min, max and sum are
 * exact. Values above HIST_MAX_NS are counted in the last bucket (and
 * reported as such: max stays exact). A plain value that callers embed;
 * fixed size, no allocation, no I/O.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 12
#define HIST_MAX_BITS 42 /* 2^42 ns: 73 minutes, past any timeout */
#define HIST_HALF (1u << (HIST_SUB_BITS - 1))
/* Exact buckets, then HIST_HALF per power of two from 2^HIST_SUB_BITS to 2^HIST_MAX_BITS. */
#define HIST_BUCKETS ((1u << HIST_SUB_BITS) + (HIST_MAX_BITS - HIST_SUB_BITS) * HIST_HALF)
#define HIST_MAX_NS ((UINT64_C(1) << HIST_MAX_BITS) - 1)
/* Half a bucket over its lower bound: 2^-HIST_SUB_BITS. */
#define HIST_REL_ERROR (1.0 / (double)(1u << HIST_SUB_BITS))

struct hist {
    uint64_t count;
    uint64_t min_ns, max_ns; /* exact; min is UINT64_MAX while empty */
    double sum_ns;
    uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t ns);
/* Adds every value of src to dst, as if they had been recorded there. */
void hist_merge(struct hist *dst, const struct hist *src);

/*
 * The value at percentile p (0 < p <= 100): the smallest recorded value v
 * such that at least p % of the values are <= v, read as its bucket's
 * midpoint and clamped to [min, max]; p = 100 is max exactly. 0 when empty.
 */
uint64_t hist_percentile(const struct hist *h, double p);
double hist_mean_ns(const struct hist *h);

/* The bucket a value falls in, and that bucket's bounds [lo, hi] (for tests). */
size_t hist_bucket_of(uint64_t ns);
void hist_bucket_bounds(size_t idx, uint64_t *lo, uint64_t *hi);
