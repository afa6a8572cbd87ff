/* dec.c: see dec.h. */
#include "core/dec.h"

#include <string.h>

size_t dec_u64(char *out, uint64_t v)
{
    char tmp[DEC_U64_SIZE];
    char *p = tmp + sizeof(tmp);
    size_t n;

    /* Right to left into a scratch buffer, then one copy: no length pass. */
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    n = (size_t)(tmp + sizeof(tmp) - p);
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}
