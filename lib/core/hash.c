/* hash.c: see hash.h. */
#include "core/hash.h"

#define FNV1A_OFFSET_BASIS 0xcbf29ce484222325ull
#define FNV1A_PRIME 0x100000001b3ull

uint64_t hash_fnv1a(const char *s)
{
    uint64_t h = FNV1A_OFFSET_BASIS;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * FNV1A_PRIME;
    return h;
}
