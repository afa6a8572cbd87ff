/* resp.c: see resp.h. */
#include "store/resp.h"

#include <stdbool.h>
#include <stdlib.h>

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
