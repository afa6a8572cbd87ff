/* url.c: percent-encoding and decoding, and the loopback test. */
#include "core/url.h"

#include <arpa/inet.h>
#include <string.h>

/* RFC 3986's unreserved bytes: ALPHA DIGIT - . _ ~ (byte tests, never the locale's). */
static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int url_encode_component(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    int err = 0;

    /* Runs of unreserved bytes go in one append: ids are mostly such runs. */
    while (*p && !err) {
        const unsigned char *run = p;

        while (*p && unreserved(*p))
            p++;
        if (p > run)
            err = buf_append(out, run, (size_t)(p - run));
        if (*p && !err) {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};

            err = buf_append(out, enc, 3);
            p++;
        }
    }
    return err;
}

/* The value of one hex digit, or -1 (byte tests: never the locale's). */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int url_percent_decode(const char *s, size_t len, bool plus_is_space, struct buf *out)
{
    size_t i;
    int err = 0;

    for (i = 0; i < len && !err; i++) {
        char c = s[i];

        if (c == '%') {
            int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;

            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return DG_ERR_INVALID;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        err = buf_append(out, &c, 1);
    }
    return err;
}

bool url_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

int url_query_uint(const char *query, const char *name, unsigned min, unsigned max, unsigned dflt,
                   unsigned *out)
{
    size_t n = strlen(name);
    unsigned v = dflt;

    *out = dflt;
    for (const char *p = query; *p; p += strcspn(p, "&"), p += *p == '&') {
        const char *d = p + n + 1;
        size_t digits;
        unsigned long x = 0;

        if (strncmp(p, name, n) != 0 || p[n] != '=')
            continue;
        digits = strspn(d, "0123456789");
        /* Nine digits fit any unsigned; more is out of range for every caller. */
        if (digits == 0 || digits > 9 || (d[digits] != '\0' && d[digits] != '&'))
            return DG_ERR_INVALID;
        for (size_t i = 0; i < digits; i++)
            x = x * 10 + (unsigned long)(d[i] - '0');
        if (x < min || x > max)
            return DG_ERR_INVALID;
        v = (unsigned)x;
    }
    *out = v;
    return 0;
}
