/*
 * uuid.h: random version-4 UUIDs as text, for request ids. The generator is
 * a xoshiro256** seeded once from the kernel (uv_random without a loop,
 * which is getrandom(2) and does not block after boot). Request ids must be
 * unique, not secret, so a fast PRNG is the right tool on the hot path.
 */
#pragma once

#define UUID_STR_LEN 36

/* Writes 36 characters and a NUL into out. */
void uuid_v4(char out[UUID_STR_LEN + 1]);
