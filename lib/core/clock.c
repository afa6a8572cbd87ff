/* clock.c: wall and monotonic time. */
#include "core/clock.h"

#include <inttypes.h>
#include <stdio.h>
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

char *clock_format_span(uint64_t ms, char *out, size_t size)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    size_t i;

    if (ms < 1000) {
        snprintf(out, size, "%" PRIu64 "ms", ms);
        return out;
    }
    for (i = 0; ms < units[i].ms; i++)
        ;
    /* The last unit (seconds) has no next one: the ms below it are dropped. */
    if (i + 1 < sizeof(units) / sizeof(units[0]) && (ms % units[i].ms) / units[i + 1].ms > 0)
        snprintf(out, size, "%" PRIu64 "%s%" PRIu64 "%s", ms / units[i].ms, units[i].name,
                 (ms % units[i].ms) / units[i + 1].ms, units[i + 1].name);
    else
        snprintf(out, size, "%" PRIu64 "%s", ms / units[i].ms, units[i].name);
    return out;
}
