/* url.c: percent-encoding. */
#include "url.h"

int url_encode_component(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p;
    int err = 0;

    /* Byte tests, not isalnum(): the result must not depend on the locale. */
    for (p = (const unsigned char *)s; *p && !err; p++) {
        char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};

        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~')
            err = buf_append(out, p, 1);
        else
            err = buf_append(out, enc, 3);
    }
    return err;
}
