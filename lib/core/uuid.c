/* uuid.c: xoshiro256** seeded from the kernel; formatted as RFC 4122 v4. */
#include "core/uuid.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static uint64_t s[4];
static bool seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next(void)
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* A forked child reseeds, so two processes never share a sequence. */
static void forget_seed(void)
{
    seeded = false;
}

static void seed(void)
{
    static bool hooked;

    if (seeded)
        return;
    /* Not getpid() per id: that is a system call on every request. */
    if (!hooked) {
        pthread_atfork(NULL, NULL, forget_seed);
        hooked = true;
    }
    if (uv_random(NULL, NULL, s, sizeof(s), 0, NULL) != 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
        s[1] = (uint64_t)ts.tv_sec * 0x9e3779b97f4a7c15ull;
        s[2] = uv_hrtime();
        s[3] = 0x2545f4914f6cdd1dull;
    }
    seeded = true;
}

void uuid_v4(char out[UUID_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    uint64_t a, c;
    int i, o = 0;

    seed();
    a = next();
    c = next();
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}
