/*
 * backoff.h: exponential backoff with full jitter (SPEC §2 RETRY_BASE_MS,
 * RETRY_MAX_MS): a random wait up to min(cap, base·2^(n−1)) for the n-th
 * retry. The generator is xorshift64*: jitter needs spread between
 * processes, not secrecy.
 */
#pragma once

#include <stdint.h>

/* Seeds *rng from the kernel (never 0). */
void backoff_seed(uint64_t *rng);
uint64_t backoff_next(uint64_t *rng);
/* A wait in [0, min(cap, base·2^(n−1))] ms; n = 0 counts as 1. */
uint64_t backoff_full_jitter(uint64_t *rng, uint64_t base, uint64_t cap, unsigned n);
