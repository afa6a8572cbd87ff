/*
 * fuzz_url.c: libFuzzer target for url_percent_decode, which reads the
 * REDIS_URL password and what digest-stub is sent in paths and forms, and
 * for url_query_uint, which reads the /admin/ routes' ?limit= and
 * ?minutes=. The first input byte picks '+' handling (odd: a space), the
 * rest is decoded, and read as a query string up to its first NUL.
 *
 * Besides the sanitizers it checks what the header promises, aborting when
 * a promise is broken: decoding never lengthens; a value that decoded has
 * no byte that came from %00; what url_encode_component writes for the
 * decoded value decodes back to it; and a query number is the default or
 * within its range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* Counts the bytes of s[0..len) that are NUL. */
static size_t nuls(const char *s, size_t len)
{
    size_t i, n = 0;

    for (i = 0; i < len; i++)
        n += s[i] == '\0';
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf dec, enc, again;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    if (size == 0)
        return 0;
    buf_init(&dec, 1 << 16);
    if (url_percent_decode(in, len, data[0] & 1, &dec) == 0) {
        check(dec.len <= len);
        check(nuls(dec.data ? dec.data : "", dec.len) == nuls(in, len)); /* raw NULs only */
        /* Round trip of a value without NULs (encode takes a C string). */
        if (nuls(in, len) == 0) {
            buf_init(&enc, 1 << 18);
            buf_init(&again, 1 << 16);
            check(url_encode_component(&enc, buf_cstr(&dec)) == 0);
            check(url_percent_decode(buf_cstr(&enc), enc.len, false, &again) == 0);
            check(again.len == dec.len && memcmp(buf_cstr(&again), buf_cstr(&dec), dec.len) == 0);
            buf_free(&enc);
            buf_free(&again);
        }
    }
    buf_free(&dec);
    {
        char *q = xstrndup(in, len);
        unsigned v;
        int rc = url_query_uint(q, "limit", 1, 1000, 20, &v);

        check(rc == 0 ? (v == 20 || (v >= 1 && v <= 1000)) : v == 20);
        xfree(q);
    }
    return 0;
}
