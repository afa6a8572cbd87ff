/*
 * clock.h: the two clocks digestd uses. Wall time in milliseconds for what is
 * stored in Redis (created_ms, updated_ms), and a monotonic clock for
 * latencies and deadlines.
 */
#pragma once

#include <stdint.h>

uint64_t clock_wall_ms(void);
uint64_t clock_mono_ns(void);
