/* resp.c: see resp.h. */
#include "store/resp.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* hiredis's default functions, found through a reader it built (they are static there). */
static redisReplyObjectFunctions base;
static redisReplyObjectFunctions capped;
static bool ready;

static void *create_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > RESP_MAX_ARRAY)
        return NULL; /* the reader reports it as an error and stops */
    return base.createArray(task, elements);
}

/* Single-threaded programs: the first call fills the tables, later ones only read them. */
static void setup(void)
{
    redisReader *r;

    if (ready)
        return;
    r = redisReaderCreate();
    if (!r)
        return;
    base = *r->fn;
    redisReaderFree(r);
    capped = base;
    capped.createArray = create_array;
    ready = true;
}

redisReader *resp_reader_create(void)
{
    redisReader *r;

    setup();
    r = ready ? redisReaderCreateWithFunctions(&capped) : NULL;
    if (!r)
        abort(); /* out of memory: we are an application (STYLE rule 6) */
    return r;
}

const char *resp_reader_error(const redisReader *r)
{
    _Static_assert(RESP_MAX_ARRAY == 16777216, "the message below names the limit");
    if (r->err == REDIS_ERR_OOM)
        return "an array over 16777216 elements, or out of memory";
    return r->errstr;
}

void resp_put_count(struct buf *o, char c, size_t v, int *rc)
{
    char s[24];
    size_t i = sizeof(s);

    s[--i] = '\n';
    s[--i] = '\r';
    do {
        s[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    s[--i] = c;
    if (*rc == 0)
        *rc = buf_append(o, s + i, sizeof(s) - i);
}

void resp_put_bulk(struct buf *o, const char *s, size_t n, int *rc)
{
    resp_put_count(o, '$', n, rc);
    if (*rc == 0)
        *rc = buf_append(o, s, n);
    if (*rc == 0)
        *rc = buf_append(o, "\r\n", 2);
}

int resp_put_command(struct buf *o, int argc, const char *const *argv, const size_t *argvlen)
{
    int rc = 0;

    resp_put_count(o, '*', (size_t)argc, &rc);
    for (int i = 0; i < argc && rc == 0; i++)
        resp_put_bulk(o, argv[i], argvlen ? argvlen[i] : strlen(argv[i]), &rc);
    return rc;
}
