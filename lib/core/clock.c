/* clock.c: wall and monotonic time. */
#include "core/clock.h"

#include <time.h>
#include <uv.h>

uint64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t clock_mono_ns(void)
{
    return uv_hrtime();
}
