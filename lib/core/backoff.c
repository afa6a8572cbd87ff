/* backoff.c: see backoff.h. */
#include "core/backoff.h"

#include <uv.h>

#define BACKOFF_MAX_SHIFT 40 /* 2^40 · base is past any sane cap */

void backoff_seed(uint64_t *rng)
{
    if (uv_random(NULL, NULL, rng, sizeof(*rng), 0, NULL) != 0 || *rng == 0)
        *rng = uv_hrtime() | 1;
}

uint64_t backoff_next(uint64_t *rng)
{
    uint64_t x = *rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

uint64_t backoff_full_jitter(uint64_t *rng, uint64_t base, uint64_t cap, unsigned n)
{
    unsigned shift = n > 0 ? n - 1 : 0;
    uint64_t win;

    if (shift > BACKOFF_MAX_SHIFT)
        shift = BACKOFF_MAX_SHIFT;
    win = base << shift;
    if (win > cap || win >> shift != base)
        win = cap; /* capped, or the shift overflowed */
    /* win + 1 would wrap to 0: every value is in the window then. */
    return win == UINT64_MAX ? backoff_next(rng) : backoff_next(rng) % (win + 1);
}
