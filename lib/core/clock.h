/*
 * clock.h: the two clocks digestd uses. Wall time in milliseconds for what is
 * stored in Redis (created_ms, updated_ms), and a monotonic clock for
 * latencies and deadlines.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

uint64_t clock_wall_ms(void);
uint64_t clock_mono_ns(void);

/*
 * A span of ms as an operator reads an age or an idle time: "800ms",
 * "45s", "3m12s", "14m", "2h5m", "3d4h": the largest unit and the next
 * one, which is left out when it is 0. Writes at most size bytes
 * (NUL included) to out and returns out.
 */
char *clock_format_span(uint64_t ms, char *out, size_t size);
